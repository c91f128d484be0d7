package server

import (
	"math"
	"net/http"
	"strings"

	"github.com/c1b99f93/cleanroom/engine/provenance"
	"github.com/c1b99f93/cleanroom/errcode"
	"github.com/c1b99f93/cleanroom/policy"
	"github.com/c1b99f93/cleanroom/server/api"
	"github.com/c1b99f93/cleanroom/server/governance"
)

// recordRedteam records an operator's red-team report on a grant in provenance, under an id of
// its own so that an auditor reads it like a job's records (GET /v1/audit/jobs/{id}).
func (s *Server) recordRedteam(_ http.ResponseWriter, r *http.Request, who policy.Principal) (int, any, error) {
	var req api.RedteamRequest
	if err := decode(r, &req, false); err != nil {
		return 0, nil, err
	}
	ctx := r.Context()
	g, err := s.grantFor(ctx, who, r.PathValue("id"), policy.ActionGrantRedteam)
	if err != nil {
		return 0, nil, err
	}
	if err := validRedteam(req); err != nil {
		return 0, nil, err
	}
	id := governance.NewID("redteam-")
	index, err := s.eng.Record(ctx, id, &provenance.RedteamReport{
		Grant: g.ID, By: provenance.Principal(who), ReportSHA256: req.ReportSHA256, Scored: req.Scored, Attacks: provenance.DocOf(req.Attacks)})
	if err != nil {
		return 0, nil, err
	}
	return http.StatusCreated, api.RedteamRecorded{ID: id, Grant: g.ID, Index: index, ReportSHA256: req.ReportSHA256}, nil
}

// validRedteam checks a red-team summary's shape: it goes into the log as it is, so it must be
// small and hold names and numbers only.
func validRedteam(req api.RedteamRequest) error {
	if len(req.ReportSHA256) != 64 || strings.Trim(strings.ToLower(req.ReportSHA256), "0123456789abcdef") != "" {
		return errcode.New(errcode.InvalidRequest, "report_sha256 must be a SHA-256 in hex (64 digits)")
	}
	if len(req.Attacks) == 0 || len(req.Attacks) > 64 {
		return errcode.New(errcode.InvalidRequest, "a report lists between 1 and 64 attacks")
	}
	finite := func(vs ...*float64) bool {
		for _, v := range vs {
			if v != nil && (math.IsNaN(*v) || math.IsInf(*v, 0)) {
				return false
			}
		}
		return true
	}
	for _, a := range req.Attacks {
		switch {
		case a.Name == "" || len(a.Name) > 64 || strings.ContainsFunc(a.Name, func(c rune) bool { return c < ' ' || c > '~' }):
			return errcode.New(errcode.InvalidRequest, "an attack's name is 1 to 64 printable ASCII characters")
		case a.Jobs < 0 || a.Epsilon < 0 || a.Delta < 0 || !finite(&a.Epsilon, &a.Delta, a.Score, a.Baseline, a.Margin):
			return errcode.New(errcode.InvalidRequest, "an attack's jobs, epsilon and delta are non-negative and its figures finite")
		}
	}
	return nil
}
