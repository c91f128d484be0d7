package server

import (
	"net/http"

	"github.com/c1b99f93/cleanroom/errcode"
	"github.com/c1b99f93/cleanroom/policy"
	"github.com/c1b99f93/cleanroom/server/api"
)

// The verification cut-and-choose routes (docs/he.md): the applicant commits to key
// candidates or claim shares, the engine answers with a challenge drawn after the commitment
// is stored, the applicant opens what the challenge did not pick. Both the applicant and the
// operator read a grant's verification state, suspension included.

// verifyGrant resolves the grant of a cut-and-choose request for who: the grant must be
// usable now and cover verify, as a verification job's would.
func (s *Server) verifyGrant(r *http.Request, who policy.Principal) (api.Grant, error) {
	g, err := s.grantFor(r.Context(), who, r.PathValue("id"), policy.ActionJobSubmit)
	if err != nil {
		return g, err
	}
	return g, s.jobAllowed(g, api.KindVerify)
}

func (s *Server) verifyStatus(_ http.ResponseWriter, r *http.Request, who policy.Principal) (int, any, error) {
	g, err := s.grantFor(r.Context(), who, r.PathValue("id"), policy.ActionGrantRead)
	if err != nil {
		return 0, nil, err
	}
	st, err := s.eng.VerifyStatus(r.Context(), g.ID)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, st, nil
}

func (s *Server) verifyKeyCommit(_ http.ResponseWriter, r *http.Request, who policy.Principal) (int, any, error) {
	var req api.VerifyKeyCommitRequest
	if err := decode(r, &req, false); err != nil {
		return 0, nil, err
	}
	g, err := s.verifyGrant(r, who)
	if err != nil {
		return 0, nil, err
	}
	ch, err := s.eng.CommitVerifyKey(r.Context(), who, g.ID, req.Candidates)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusCreated, ch, nil
}

func (s *Server) verifyKeyOpen(_ http.ResponseWriter, r *http.Request, who policy.Principal) (int, any, error) {
	var req api.VerifyKeyOpenRequest
	if err := decode(r, &req, false); err != nil {
		return 0, nil, err
	}
	if len(req.PublicKey) == 0 {
		return 0, nil, errcode.New(errcode.InvalidRequest, "an opening carries the challenged candidate's public key")
	}
	g, err := s.verifyGrant(r, who)
	if err != nil {
		return 0, nil, err
	}
	st, err := s.eng.OpenVerifyKey(r.Context(), g.ID, req.PublicKey, req.Openings)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, st, nil
}

func (s *Server) verifyClaimsCommit(_ http.ResponseWriter, r *http.Request, who policy.Principal) (int, any, error) {
	var req api.VerifyClaimsCommitRequest
	if err := decode(r, &req, false); err != nil {
		return 0, nil, err
	}
	g, err := s.verifyGrant(r, who)
	if err != nil {
		return 0, nil, err
	}
	ch, err := s.eng.CommitVerifyClaims(r.Context(), who, g.ID, req.Ciphertexts)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusCreated, ch, nil
}
