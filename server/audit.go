package server

import (
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"strconv"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/c1b99f93/cleanroom/engine/provenance"
	"github.com/c1b99f93/cleanroom/errcode"
	"github.com/c1b99f93/cleanroom/policy"
	"github.com/c1b99f93/cleanroom/server/api"
)

func (s *Server) auditVerify(_ http.ResponseWriter, r *http.Request, who policy.Principal) (int, any, error) {
	if err := s.authorize(r.Context(), who, policy.ActionAuditVerify, policy.Resource{Kind: "audit"}); err != nil {
		return 0, nil, err
	}
	rep, err := s.eng.Audit().Verify()
	if err != nil && rep.OK() { // the log could not be read at all: that is not a verified log
		return 0, nil, errcode.Wrap(errcode.Internal, err, "the provenance log could not be read")
	}
	return http.StatusOK, api.VerifyReport(rep), nil
}

func (s *Server) auditJob(_ http.ResponseWriter, r *http.Request, who policy.Principal) (int, any, error) {
	id := r.PathValue("id")
	if err := s.authorize(r.Context(), who, policy.ActionAuditJob, policy.Resource{Kind: "job", ID: id}); err != nil {
		return 0, nil, err
	}
	ja, err := s.eng.Audit().Job(id)
	if err != nil {
		return 0, nil, err
	}
	if len(ja.Records) == 0 {
		return 0, nil, errcode.New(errcode.NotFound, "the provenance log has no record of job %s", id)
	}
	out := api.AuditJob{Job: id, Records: make([]api.AuditEntry, len(ja.Records))}
	for i, e := range ja.Records {
		out.Records[i] = api.AuditEntry(e)
	}
	if ja.Checkpoint != nil {
		out.Checkpoint, out.Size = string(ja.Checkpoint.Note), ja.Checkpoint.Size
		for i := range ja.Records {
			var hashes []string
			if ja.Records[i].Index < ja.Checkpoint.Size { // covered by the checkpoint: proved
				hashes = b64Hashes(ja.Inclusion[i])
			}
			out.Lines = append(out.Lines, string(ja.Lines[i]))
			out.Inclusion = append(out.Inclusion, hashes)
		}
	}
	return http.StatusOK, out, nil
}

func b64Hashes(hs []tlog.Hash) []string {
	out := make([]string, len(hs))
	for i, h := range hs {
		out[i] = base64.StdEncoding.EncodeToString(h[:])
	}
	return out
}

// auditPubkey serves the platform's verifier key as text; auditors keep it out of band and
// check checkpoints, archives and receipts with it.
func (s *Server) auditPubkey(w http.ResponseWriter, r *http.Request, who policy.Principal) (int, any, error) {
	if err := s.authorize(r.Context(), who, policy.ActionAuditPubkey, policy.Resource{Kind: "audit"}); err != nil {
		return 0, nil, err
	}
	writeText(w, s.eng.Audit().PublicKey()+"\n")
	return 0, nil, nil
}

// auditCheckpoint serves the latest signed checkpoint (a C2SP signed note), making one first
// if the log grew since the last.
func (s *Server) auditCheckpoint(w http.ResponseWriter, r *http.Request, who policy.Principal) (int, any, error) {
	if err := s.authorize(r.Context(), who, policy.ActionAuditCheckpoint, policy.Resource{Kind: "audit"}); err != nil {
		return 0, nil, err
	}
	cp, err := s.eng.Audit().Checkpoint(r.Context())
	if err != nil {
		return 0, nil, errcode.Wrap(errcode.ProvenanceFailed, err, "the log could not be checkpointed")
	}
	writeText(w, string(cp.Note))
	return 0, nil, nil
}

func writeText(w http.ResponseWriter, text string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, text)
}

func uintParam(r *http.Request, name string) (uint64, error) {
	v, err := strconv.ParseUint(r.URL.Query().Get(name), 10, 64)
	if err != nil {
		return 0, errcode.New(errcode.InvalidRequest, "query parameter %s must be a whole number", name)
	}
	return v, nil
}

func (s *Server) auditInclusion(_ http.ResponseWriter, r *http.Request, who policy.Principal) (int, any, error) {
	if err := s.authorize(r.Context(), who, policy.ActionAuditProof, policy.Resource{Kind: "audit"}); err != nil {
		return 0, nil, err
	}
	index, err := uintParam(r, "index")
	if err != nil {
		return 0, nil, err
	}
	size, err := uintParam(r, "size")
	if err != nil {
		return 0, nil, err
	}
	p, err := s.eng.Audit().Inclusion(index, size)
	if err != nil {
		return 0, nil, proofError(err)
	}
	return http.StatusOK, api.InclusionProof{Index: index, Size: size, Root: base64.StdEncoding.EncodeToString(p.Root[:]),
		Line: string(p.Line), Hashes: b64Hashes(p.Hashes)}, nil
}

func (s *Server) auditConsistency(_ http.ResponseWriter, r *http.Request, who policy.Principal) (int, any, error) {
	if err := s.authorize(r.Context(), who, policy.ActionAuditProof, policy.Resource{Kind: "audit"}); err != nil {
		return 0, nil, err
	}
	oldSize, err := uintParam(r, "old")
	if err != nil {
		return 0, nil, err
	}
	newSize, err := uintParam(r, "new")
	if err != nil {
		return 0, nil, err
	}
	p, err := s.eng.Audit().Consistency(oldSize, newSize)
	if err != nil {
		return 0, nil, proofError(err)
	}
	return http.StatusOK, api.ConsistencyProof{Old: oldSize, New: newSize, OldRoot: base64.StdEncoding.EncodeToString(p.OldRoot[:]),
		NewRoot: base64.StdEncoding.EncodeToString(p.NewRoot[:]), Hashes: b64Hashes(p.Hashes)}, nil
}

// proofError: an index or size beyond the log is the caller's mistake.
func proofError(err error) error {
	if errors.Is(err, provenance.ErrOutOfRange) {
		return errcode.Wrap(errcode.InvalidRequest, err, "index or size is beyond the log (or out of order)")
	}
	return errcode.Wrap(errcode.Internal, err, "the proof could not be made")
}

func (s *Server) auditReplay(_ http.ResponseWriter, r *http.Request, who policy.Principal) (int, any, error) {
	id := r.PathValue("id")
	if err := s.authorize(r.Context(), who, policy.ActionAuditReplay, policy.Resource{Kind: "job", ID: id}); err != nil {
		return 0, nil, err
	}
	rep, err := s.eng.Replay(r.Context(), id)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, rep, nil
}
