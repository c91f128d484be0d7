package server

import (
	"net/http"
	"time"

	"github.com/c1b99f93/cleanroom/errcode"
	"github.com/c1b99f93/cleanroom/policy"
	"github.com/c1b99f93/cleanroom/server/api"
	"github.com/c1b99f93/cleanroom/server/governance"
)

// maxWait bounds a job long-poll.
const maxWait = 60 * time.Second

// isLongRoute: the route works synchronously on data of unbounded size (a snapshot, the whole
// log, a replay), so it gets Limits.LongWriteTimeout instead of WriteTimeout. Every other route
// answers from the store or long-polls at most maxWait; jobs run asynchronously.
func isLongRoute(pattern string) bool {
	switch pattern {
	case "POST /v1/datasets", "GET /v1/audit/verify", "GET /v1/audit/jobs/{id}", "POST /v1/audit/jobs/{id}/replay":
		return true
	}
	return false
}

// Handler is the HTTP API. Every request passes guard first (body size, no draining of an
// unread body).
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", s.health)
	mux.HandleFunc("GET /v1/openapi.json", serveOpenAPI)
	for _, rt := range s.routes() {
		mux.Handle(rt.pattern, s.authed(rt.h, isLongRoute(rt.pattern)))
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.writeError(w, r, errcode.New(errcode.NotFound, "no such route: %s %s", r.Method, r.URL.Path))
	})
	return s.guard(mux)
}

type route struct {
	pattern string
	h       handler
}

// routes are the authenticated routes; the OpenAPI test checks this list against the document.
func (s *Server) routes() []route {
	return []route{
		{"GET /v1/whoami", s.whoami},
		{"POST /v1/datasets", s.registerDataset},
		{"GET /v1/datasets", s.listDatasets},
		{"GET /v1/datasets/{name}", s.getDataset},
		{"GET /v1/datasets/{name}/budget", s.datasetBudget},
		{"POST /v1/applications", s.createApplication},
		{"GET /v1/applications", s.listApplications},
		{"GET /v1/applications/{id}", s.getApplication},
		{"POST /v1/applications/{id}/approve", s.approveApplication},
		{"POST /v1/applications/{id}/reject", s.rejectApplication},
		{"GET /v1/grants", s.listGrants},
		{"GET /v1/grants/{id}", s.getGrant},
		{"GET /v1/grants/{id}/budget", s.grantBudget},
		{"POST /v1/grants/{id}/suspend", s.grantTransition(policy.ActionGrantSuspend, governance.Suspend)},
		{"POST /v1/grants/{id}/resume", s.grantTransition(policy.ActionGrantResume, governance.Resume)},
		{"POST /v1/grants/{id}/revoke", s.grantTransition(policy.ActionGrantRevoke, governance.Revoke)},
		{"POST /v1/grants/{id}/redteam", s.recordRedteam},
		{"GET /v1/grants/{id}/verify", s.verifyStatus},
		{"POST /v1/grants/{id}/verify/key", s.verifyKeyCommit},
		{"POST /v1/grants/{id}/verify/key/open", s.verifyKeyOpen},
		{"POST /v1/grants/{id}/verify/commitments", s.verifyClaimsCommit},
		{"POST /v1/wasm/modules", s.uploadWasmModule},
		{"POST /v1/jobs", s.submitJob},
		{"POST /v1/explain", s.explain},
		{"GET /v1/jobs", s.listJobs},
		{"GET /v1/jobs/{id}", s.getJob},
		{"GET /v1/reviews", s.listReviews},
		{"POST /v1/reviews/{job}/approve", s.decideReview(true)},
		{"POST /v1/reviews/{job}/reject", s.decideReview(false)},
		{"GET /v1/audit/verify", s.auditVerify},
		{"GET /v1/audit/jobs/{id}", s.auditJob},
		{"POST /v1/audit/jobs/{id}/replay", s.auditReplay},
		{"GET /v1/audit/pubkey", s.auditPubkey},
		{"GET /v1/audit/checkpoint", s.auditCheckpoint},
		{"GET /v1/audit/proof/inclusion", s.auditInclusion},
		{"GET /v1/audit/proof/consistency", s.auditConsistency},
	}
}

func (s *Server) health(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, api.Health{Status: "ok", PolicyDigest: s.eng.PolicyDigest()})
}

func (s *Server) whoami(_ http.ResponseWriter, r *http.Request, who policy.Principal) (int, any, error) {
	if err := s.authorize(r.Context(), who, policy.ActionWhoami, policy.Resource{Kind: "self"}); err != nil {
		return 0, nil, err
	}
	return http.StatusOK, api.Principal{Name: who.Name, Role: who.Role, Org: who.Org}, nil
}
