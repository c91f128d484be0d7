package server

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"io"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/c1b99f93/cleanroom/catalog"
	"github.com/c1b99f93/cleanroom/engine"
	"github.com/c1b99f93/cleanroom/engine/ledger"
	"github.com/c1b99f93/cleanroom/engine/provenance"
	"github.com/c1b99f93/cleanroom/errcode"
	"github.com/c1b99f93/cleanroom/policy"
	"github.com/c1b99f93/cleanroom/server/api"
	"github.com/c1b99f93/cleanroom/server/governance"
)

// maxWait bounds a job long-poll.
const maxWait = 60 * time.Second

// Handler is the HTTP API.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", s.health)
	mux.HandleFunc("GET /v1/openapi.json", serveOpenAPI)
	for _, rt := range s.routes() {
		mux.Handle(rt.pattern, s.authed(rt.h))
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.writeError(w, r, errcode.New(errcode.NotFound, "no such route: %s %s", r.Method, r.URL.Path))
	})
	return mux
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
		{"GET /v1/datasets/{name}/budget", s.datasetBudget},
		{"POST /v1/applications", s.createApplication},
		{"GET /v1/applications", s.listApplications},
		{"GET /v1/applications/{id}", s.getApplication},
		{"POST /v1/applications/{id}/approve", s.approveApplication},
		{"POST /v1/applications/{id}/reject", s.rejectApplication},
		{"GET /v1/grants", s.listGrants},
		{"GET /v1/grants/{id}", s.getGrant},
		{"GET /v1/grants/{id}/budget", s.grantBudget},
		{"POST /v1/grants/{id}/suspend", s.grantTransition(policy.ActionGrantSuspend, []string{api.GrantActive}, api.GrantSuspended)},
		{"POST /v1/grants/{id}/resume", s.grantTransition(policy.ActionGrantResume, []string{api.GrantSuspended}, api.GrantActive)},
		{"POST /v1/grants/{id}/revoke", s.grantTransition(policy.ActionGrantRevoke, []string{api.GrantActive, api.GrantSuspended}, api.GrantRevoked)},
		{"POST /v1/grants/{id}/redteam", s.recordRedteam},
		{"POST /v1/jobs", s.submitJob},
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

// --- datasets ---

func (s *Server) registerDataset(_ http.ResponseWriter, r *http.Request, who policy.Principal) (int, any, error) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil || len(body) > maxBody {
		return 0, nil, errcode.New(errcode.InvalidRequest, "the catalog spec must be a JSON document of at most %d bytes", maxBody)
	}
	spec, err := catalog.ParseJSON(body)
	if err != nil {
		return 0, nil, errcode.Wrap(errcode.InvalidSpec, err, "%s", err.Error())
	}
	if err := s.authorize(r.Context(), who, policy.ActionDatasetRegister, policy.Resource{Kind: "dataset", ID: spec.Name, Provider: spec.Provider}); err != nil {
		return 0, nil, err
	}
	if spec.Provider != who.Org { // whatever the bundle says: a provider registers for its own org
		return 0, nil, s.refuseRegistration(r.Context(), who, spec, errcode.New(errcode.Forbidden,
			"%s may register datasets only for its own organisation", who.Name))
	}
	root, ok := s.roots[who.Org]
	if !ok {
		return 0, nil, s.refuseRegistration(r.Context(), who, spec, errcode.New(errcode.NoImportRoot,
			"organisation %s has no import root on this server, so its providers cannot register from files; the operator assigns one with --import-root %s=DIR", who.Org, who.Org))
	}
	src, path, err := root.open(spec.Source.Path)
	if err != nil {
		return 0, nil, s.refuseRegistration(r.Context(), who, spec, err)
	}
	defer src.Close()
	spec.Source.Path = path
	d, err := s.eng.RegisterDataset(r.Context(), spec, src)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusCreated, api.Registered{Name: d.Spec.Name, Digest: d.Snapshot.Digest, Rows: d.Snapshot.Rows}, nil
}

// refuseRegistration records in provenance that who's registration was refused before its
// source was read (who, which dataset, the code; never the path) and returns err.
func (s *Server) refuseRegistration(ctx context.Context, who policy.Principal, spec *catalog.Spec, err error) error {
	if _, rerr := s.eng.Record(context.WithoutCancel(ctx), "", &provenance.DatasetRegistrationRefused{
		Principal: ptr(provenance.Principal(who)), Name: spec.Name, Provider: spec.Provider, Grade: string(spec.Grade), Code: string(errcode.Of(err)),
	}); rerr != nil {
		return rerr
	}
	return err
}

func datasetDoc(d *engine.Dataset) api.Dataset {
	out := api.Dataset{Name: d.Spec.Name, Provider: d.Spec.Provider, Grade: string(d.Spec.Grade), Domain: d.Spec.Domain,
		PrivacyUnit: d.Spec.PrivacyUnit, Public: d.Spec.Public, Digest: d.Snapshot.Digest, Rows: d.Snapshot.Rows, Columns: d.Spec.Columns}
	if !d.Spec.Public {
		out.Budget = &api.Budget{Epsilon: d.Spec.Budget.Epsilon, Delta: d.Spec.Budget.Delta}
	}
	return out
}

func (s *Server) listDatasets(_ http.ResponseWriter, r *http.Request, who policy.Principal) (int, any, error) {
	if err := s.authorize(r.Context(), who, policy.ActionDatasetList, policy.Resource{Kind: "dataset"}); err != nil {
		return 0, nil, err
	}
	out := api.Datasets{Datasets: []api.Dataset{}}
	for _, d := range s.eng.Datasets() {
		out.Datasets = append(out.Datasets, datasetDoc(d))
	}
	return http.StatusOK, out, nil
}

func (s *Server) datasetBudget(_ http.ResponseWriter, r *http.Request, who policy.Principal) (int, any, error) {
	name := r.PathValue("name")
	d, ok := s.eng.Dataset(name)
	if !ok {
		return 0, nil, errcode.New(errcode.NotFound, "no dataset named %q is registered", name)
	}
	if err := s.authorize(r.Context(), who, policy.ActionDatasetUsage, policy.Resource{Kind: "dataset", ID: name, Provider: d.Spec.Provider}); err != nil {
		return 0, nil, err
	}
	if d.Spec.Public {
		return 0, nil, errcode.New(errcode.NotFound, "dataset %q is a public lookup table and has no budget", name)
	}
	if err := s.settleGrants(r.Context(), false); err != nil {
		return 0, nil, err
	}
	rep, err := s.eng.Budget(r.Context(), engine.DatasetAccount(name))
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, rep, nil
}

// --- applications ---

func newID(prefix string) string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// parseTime reads an RFC 3339 time or a date; a date as an end means the end of that day.
func parseTime(field, v string, end bool) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t.UTC(), nil
	}
	if t, err := time.Parse(time.DateOnly, v); err == nil {
		if end {
			t = t.AddDate(0, 0, 1)
		}
		return t, nil
	}
	return time.Time{}, errcode.New(errcode.InvalidRequest, "%s must be an RFC 3339 time or a date (YYYY-MM-DD)", field)
}

var jobKinds = []string{api.KindSQL, api.KindVerify, api.KindModel}

func (s *Server) createApplication(_ http.ResponseWriter, r *http.Request, who policy.Principal) (int, any, error) {
	var req api.ApplicationRequest
	if err := decode(r, &req, false); err != nil {
		return 0, nil, err
	}
	if err := s.authorize(r.Context(), who, policy.ActionApplicationCreate, policy.Resource{Kind: "application", Org: who.Org}); err != nil {
		return 0, nil, err
	}
	a, err := s.validApplication(req)
	if err != nil {
		return 0, nil, err
	}
	a.ID, a.State, a.Org, a.Applicant, a.CreatedAt = newID("app-"), api.ApplicationPending, who.Org, who.Name, s.now().UTC()
	if _, err := s.eng.Record(r.Context(), "", ptr(provenance.ApplicationSubmitted(a))); err != nil {
		return 0, nil, err
	}
	if err := s.store.CreateApplication(r.Context(), a); err != nil {
		return 0, nil, err
	}
	return http.StatusCreated, a, nil
}

func (s *Server) validApplication(req api.ApplicationRequest) (api.Application, error) {
	a := api.Application{Purpose: strings.TrimSpace(req.Purpose), Scenario: strings.TrimSpace(req.Scenario),
		Epsilon: req.Epsilon, Delta: req.Delta}
	switch {
	case a.Purpose == "" || a.Scenario == "":
		return a, errcode.New(errcode.InvalidRequest, "an application states its purpose and scenario")
	case len(a.Purpose) > 4000 || len(a.Scenario) > 4000:
		return a, errcode.New(errcode.InvalidRequest, "purpose and scenario are at most 4000 bytes each")
	case !(req.Epsilon > 0) || math.IsInf(req.Epsilon, 0):
		return a, errcode.New(errcode.InvalidRequest, "epsilon must be a positive number")
	case !(req.Delta >= 0 && req.Delta < 1):
		return a, errcode.New(errcode.InvalidRequest, "delta must be in [0, 1)")
	case len(req.Datasets) == 0:
		return a, errcode.New(errcode.InvalidRequest, "an application names the datasets it needs")
	case len(req.JobKinds) == 0:
		return a, errcode.New(errcode.InvalidRequest, "an application names the job kinds it needs (%s)", strings.Join(jobKinds, ", "))
	}
	for _, name := range req.Datasets {
		d, ok := s.eng.Dataset(name)
		if !ok {
			return a, errcode.New(errcode.UnknownDataset, "no dataset named %q is registered", name)
		}
		if !d.Spec.Operable() {
			return a, errcode.New(errcode.NotOperable, "dataset %q is graded L4 (不予开放) and is never operated", name)
		}
		if slices.Contains(a.Datasets, name) {
			return a, errcode.New(errcode.InvalidRequest, "dataset %q is listed twice", name)
		}
		a.Datasets = append(a.Datasets, name)
	}
	for _, k := range req.JobKinds {
		if !slices.Contains(jobKinds, k) {
			return a, errcode.New(errcode.InvalidRequest, "job kind %q is not one of %s", k, strings.Join(jobKinds, ", "))
		}
		if !slices.Contains(a.JobKinds, k) {
			a.JobKinds = append(a.JobKinds, k)
		}
	}
	var err error
	if a.Start, err = parseTime("start", req.Start, false); err != nil {
		return a, err
	}
	if a.End, err = parseTime("end", req.End, true); err != nil {
		return a, err
	}
	if !a.End.After(a.Start) {
		return a, errcode.New(errcode.InvalidRequest, "end must be after start")
	}
	if !a.End.After(s.now()) {
		return a, errcode.New(errcode.InvalidRequest, "end is in the past")
	}
	return a, nil
}

func applicationResource(a api.Application) policy.Resource {
	return policy.Resource{Kind: "application", ID: a.ID, Org: a.Org}
}

func (s *Server) listApplications(_ http.ResponseWriter, r *http.Request, who policy.Principal) (int, any, error) {
	if err := s.authorize(r.Context(), who, policy.ActionApplicationList, policy.Resource{Kind: "application"}); err != nil {
		return 0, nil, err
	}
	all, err := s.store.Applications(r.Context(), "")
	if err != nil {
		return 0, nil, err
	}
	out := api.Applications{Applications: []api.Application{}}
	for _, a := range all {
		if s.allowed(r.Context(), who, policy.ActionApplicationRead, applicationResource(a)) {
			out.Applications = append(out.Applications, a)
		}
	}
	return http.StatusOK, out, nil
}

func (s *Server) getApplication(_ http.ResponseWriter, r *http.Request, who policy.Principal) (int, any, error) {
	a, err := s.store.Application(r.Context(), r.PathValue("id"))
	if err != nil {
		return 0, nil, err
	}
	if err := s.authorize(r.Context(), who, policy.ActionApplicationRead, applicationResource(a)); err != nil {
		return 0, nil, err
	}
	return http.StatusOK, a, nil
}

func (s *Server) approveApplication(_ http.ResponseWriter, r *http.Request, who policy.Principal) (int, any, error) {
	var req api.ApproveRequest
	if err := decode(r, &req, true); err != nil {
		return 0, nil, err
	}
	ctx := r.Context()
	a, err := s.store.Application(ctx, r.PathValue("id"))
	if err != nil {
		return 0, nil, err
	}
	if err := s.authorize(ctx, who, policy.ActionApplicationApprove, applicationResource(a)); err != nil {
		return 0, nil, err
	}
	if a.State != api.ApplicationPending {
		return 0, nil, errcode.New(errcode.Conflict, "application %s is already %s", a.ID, a.State)
	}
	eps, delta, end := a.Epsilon, a.Delta, a.End
	if req.Epsilon != nil {
		if !(*req.Epsilon > 0 && *req.Epsilon <= a.Epsilon) {
			return 0, nil, errcode.New(errcode.InvalidRequest, "an approval may lower epsilon (to a positive value at most %g), never raise it", a.Epsilon)
		}
		eps = *req.Epsilon
	}
	if req.Delta != nil {
		if !(*req.Delta >= 0 && *req.Delta <= a.Delta) {
			return 0, nil, errcode.New(errcode.InvalidRequest, "an approval may lower delta (to a value in [0, %g]), never raise it", a.Delta)
		}
		delta = *req.Delta
	}
	if req.End != "" {
		if end, err = parseTime("end", req.End, true); err != nil {
			return 0, nil, err
		}
		if !end.After(a.Start) || end.After(a.End) {
			return 0, nil, errcode.New(errcode.InvalidRequest, "an approval may end the period earlier (after its start), never later")
		}
	}
	now := s.now().UTC()
	g := api.Grant{ID: newID("grant-"), State: api.GrantActive, Org: a.Org, Application: a.ID, Purpose: a.Purpose,
		Scenario: a.Scenario, Datasets: a.Datasets, JobKinds: a.JobKinds, Start: a.Start, End: end,
		Budget: api.GrantBudget{EpsilonTotal: eps, DeltaTotal: delta, Allocated: true}, CreatedAt: now, UpdatedAt: now}
	// Budget that expired grants never spent goes back first, so it can be allocated again.
	if err := s.settleGrants(ctx, false); err != nil {
		return 0, nil, err
	}
	// The grant's budget is carved out of its datasets' lifetime budgets before the grant
	// exists (a dataset with too little left refuses the approval, and no grant is made); the
	// approval is recorded before it takes effect. If it cannot take effect, the allocation is
	// cancelled; one left behind by a crash is cancelled when the server starts.
	if err := s.eng.OpenGrant(ctx, g.ID, ledger.Budget{Epsilon: eps, Delta: delta}, a.Datasets...); err != nil {
		return 0, nil, err
	}
	cancel := func(cause error) error {
		if _, err := s.eng.CloseGrant(context.WithoutCancel(ctx), g.ID, engine.CloseCancelled, true); err != nil {
			return errors.Join(cause, err)
		}
		return cause
	}
	if _, err := s.eng.Record(ctx, "", &provenance.ApplicationApproved{Application: a.ID, Grant: provenance.DocOf(g), By: provenance.Principal(who)}); err != nil {
		return 0, nil, cancel(err)
	}
	err = s.store.DecideApplication(ctx, a.ID, func(a *api.Application) {
		a.State, a.Grant, a.DecidedBy, a.DecidedAt = api.ApplicationApproved, g.ID, who.Name, &now
	}, &g)
	if err != nil {
		return 0, nil, cancel(err)
	}
	return http.StatusCreated, api.Approved{GrantID: g.ID}, nil
}

func (s *Server) rejectApplication(_ http.ResponseWriter, r *http.Request, who policy.Principal) (int, any, error) {
	var req api.ReasonRequest
	if err := decode(r, &req, false); err != nil {
		return 0, nil, err
	}
	ctx := r.Context()
	a, err := s.store.Application(ctx, r.PathValue("id"))
	if err != nil {
		return 0, nil, err
	}
	if err := s.authorize(ctx, who, policy.ActionApplicationReject, applicationResource(a)); err != nil {
		return 0, nil, err
	}
	if strings.TrimSpace(req.Reason) == "" {
		return 0, nil, errcode.New(errcode.InvalidRequest, "a rejection gives its reason")
	}
	if a.State != api.ApplicationPending {
		return 0, nil, errcode.New(errcode.Conflict, "application %s is already %s", a.ID, a.State)
	}
	if _, err := s.eng.Record(ctx, "", &provenance.ApplicationRejected{Application: a.ID, By: provenance.Principal(who), Reason: req.Reason}); err != nil {
		return 0, nil, err
	}
	now := s.now().UTC()
	err = s.store.DecideApplication(ctx, a.ID, func(a *api.Application) {
		a.State, a.Reason, a.DecidedBy, a.DecidedAt = api.ApplicationRejected, req.Reason, who.Name, &now
	}, nil)
	if err != nil {
		return 0, nil, err
	}
	a, err = s.store.Application(ctx, a.ID)
	return http.StatusOK, a, err
}

// --- grants ---

func grantResource(g api.Grant) policy.Resource {
	return policy.Resource{Kind: "grant", ID: g.ID, Org: g.Org}
}

// grantDoc fills in what the store does not keep: the grant's allocation, spent, remaining and
// returned budget from the ledger, and "expired" for an active grant past its end.
func (s *Server) grantDoc(ctx context.Context, g api.Grant) (api.Grant, error) {
	bal, allocs, err := s.eng.GrantBalance(ctx, g.ID)
	if err != nil {
		return g, err
	}
	g.Budget = api.GrantBudget{EpsilonTotal: bal.Total.Epsilon, EpsilonSpent: bal.Spent.Epsilon,
		EpsilonRemaining: bal.Remaining.Epsilon, DeltaTotal: bal.Total.Delta, DeltaSpent: bal.Spent.Delta,
		DeltaRemaining: bal.Remaining.Delta, Allocated: len(allocs) > 0}
	if len(allocs) > 0 { // every dataset's allocation to the grant returns the same part
		g.Budget.EpsilonReturned, g.Budget.DeltaReturned = allocs[0].Returned.Epsilon, allocs[0].Returned.Delta
	}
	if g.State == api.GrantActive && !s.now().Before(g.End) {
		g.State = api.GrantExpired
	}
	return g, nil
}

// settleGrants closes the allocations of grants that ended: a revoked grant whose revocation
// did not reach the ledger, and a grant past its end, returning what they never spent when the
// policy says so (return_unspent_on_revoke, return_unspent_on_expiry). At start (orphans) it
// also cancels allocations left without a grant by an approval that crashed half-way; the
// store is then read after the ledger, so an approval in flight in another request cannot be
// mistaken for one.
func (s *Server) settleGrants(ctx context.Context, orphans bool) error {
	open, err := s.eng.AllocatedGrants(ctx)
	if err != nil || len(open) == 0 {
		return err
	}
	grants, err := s.store.Grants(ctx, "")
	if err != nil {
		return err
	}
	byID := make(map[string]api.Grant, len(grants))
	for _, g := range grants {
		byID[g.ID] = g
	}
	params := s.eng.Policy().Params()
	now := s.now()
	for _, id := range open {
		g, ok := byID[id]
		switch {
		case !ok && orphans:
			_, err = s.eng.CloseGrant(ctx, id, engine.CloseCancelled, true)
		case !ok:
			continue
		case g.State == api.GrantRevoked:
			_, err = s.eng.CloseGrant(ctx, id, engine.CloseRevoked, params.ReturnUnspentOnRevoke)
		case !now.Before(g.End):
			_, err = s.eng.CloseGrant(ctx, id, engine.CloseExpired, params.ReturnUnspentOnExpiry)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (s *Server) listGrants(_ http.ResponseWriter, r *http.Request, who policy.Principal) (int, any, error) {
	if err := s.authorize(r.Context(), who, policy.ActionGrantList, policy.Resource{Kind: "grant"}); err != nil {
		return 0, nil, err
	}
	all, err := s.store.Grants(r.Context(), "")
	if err != nil {
		return 0, nil, err
	}
	out := api.Grants{Grants: []api.Grant{}}
	for _, g := range all {
		if !s.allowed(r.Context(), who, policy.ActionGrantRead, grantResource(g)) {
			continue
		}
		if g, err = s.grantDoc(r.Context(), g); err != nil {
			return 0, nil, err
		}
		out.Grants = append(out.Grants, g)
	}
	return http.StatusOK, out, nil
}

func (s *Server) getGrant(_ http.ResponseWriter, r *http.Request, who policy.Principal) (int, any, error) {
	g, err := s.store.Grant(r.Context(), r.PathValue("id"))
	if err != nil {
		return 0, nil, err
	}
	if err := s.authorize(r.Context(), who, policy.ActionGrantRead, grantResource(g)); err != nil {
		return 0, nil, err
	}
	g, err = s.grantDoc(r.Context(), g)
	return http.StatusOK, g, err
}

func (s *Server) grantBudget(_ http.ResponseWriter, r *http.Request, who policy.Principal) (int, any, error) {
	g, err := s.store.Grant(r.Context(), r.PathValue("id"))
	if err != nil {
		return 0, nil, err
	}
	if err := s.authorize(r.Context(), who, policy.ActionGrantBudget, grantResource(g)); err != nil {
		return 0, nil, err
	}
	if err := s.settleGrants(r.Context(), false); err != nil {
		return 0, nil, err
	}
	rep, err := s.eng.GrantBudget(r.Context(), g.ID)
	return http.StatusOK, rep, err
}

// grantTransition suspends, resumes or revokes a grant. It is recorded before it takes effect,
// and it applies to the next job the grant's runners claim.
func (s *Server) grantTransition(action string, from []string, to string) handler {
	return func(_ http.ResponseWriter, r *http.Request, who policy.Principal) (int, any, error) {
		var req api.ReasonRequest
		if err := decode(r, &req, true); err != nil {
			return 0, nil, err
		}
		ctx := r.Context()
		g, err := s.store.Grant(ctx, r.PathValue("id"))
		if err != nil {
			return 0, nil, err
		}
		if err := s.authorize(ctx, who, action, grantResource(g)); err != nil {
			return 0, nil, err
		}
		if !slices.Contains(from, g.State) {
			return 0, nil, errcode.New(errcode.Conflict, "grant %s is %s", g.ID, g.State)
		}
		if _, err := s.eng.Record(ctx, "", &provenance.GrantState{Grant: g.ID, From: string(g.State), To: string(to), By: provenance.Principal(who), Reason: req.Reason}); err != nil {
			return 0, nil, err
		}
		if g, err = s.store.SetGrantState(ctx, g.ID, from, to, s.now()); err != nil {
			return 0, nil, err
		}
		if to == api.GrantRevoked {
			if err := s.withholdHeld(ctx, g.ID); err != nil {
				return 0, nil, err
			}
			// What the grant never spent goes back to its datasets if the policy says so
			// (a failure here is retried by settleGrants).
			if _, err := s.eng.CloseGrant(ctx, g.ID, engine.CloseRevoked, s.eng.Policy().Params().ReturnUnspentOnRevoke); err != nil {
				return 0, nil, err
			}
		}
		g, err = s.grantDoc(ctx, g)
		return http.StatusOK, g, err
	}
}

// recordRedteam records an operator's red-team report on a grant in provenance, under an id of
// its own so that an auditor reads it like a job's records (GET /v1/audit/jobs/{id}).
func (s *Server) recordRedteam(_ http.ResponseWriter, r *http.Request, who policy.Principal) (int, any, error) {
	var req api.RedteamRequest
	if err := decode(r, &req, false); err != nil {
		return 0, nil, err
	}
	ctx := r.Context()
	g, err := s.store.Grant(ctx, r.PathValue("id"))
	if err != nil {
		return 0, nil, err
	}
	if err := s.authorize(ctx, who, policy.ActionGrantRedteam, grantResource(g)); err != nil {
		return 0, nil, err
	}
	if err := validRedteam(req); err != nil {
		return 0, nil, err
	}
	id := newID("redteam-")
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

// --- jobs ---

func jobResource(j api.Job) policy.Resource {
	res := policy.Resource{Kind: "job", ID: j.ID, Org: j.Org, Submitter: j.SubmittedBy}
	if j.Review != nil {
		for _, r := range j.Review.Reviews {
			res.Reviewers = append(res.Reviewers, r.Reviewer)
		}
	}
	return res
}

// allowed asks the policy without recording a denial: for filtering lists and for deciding
// whether a document includes a result.
func (s *Server) allowed(ctx context.Context, who policy.Principal, action string, res policy.Resource) bool {
	d, err := s.eng.Policy().Authorize(ctx, policy.RequestInput{Principal: who, Action: action, Resource: res})
	return err == nil && d.Allowed()
}

func (s *Server) submitJob(_ http.ResponseWriter, r *http.Request, who policy.Principal) (int, any, error) {
	var req api.JobRequest
	if err := decode(r, &req, false); err != nil {
		return 0, nil, err
	}
	if req.Kind == "" {
		req.Kind = api.KindSQL
	}
	o := req.Options
	switch {
	case req.Grant == "":
		return 0, nil, errcode.New(errcode.InvalidRequest, "a job names its grant")
	case strings.TrimSpace(req.SQL) == "":
		return 0, nil, errcode.New(errcode.InvalidRequest, "a job carries its SQL")
	case len(req.SQL) > 64<<10:
		return 0, nil, errcode.New(errcode.InvalidRequest, "the SQL is longer than 64 KiB")
	case o.Epsilon < 0 || o.Delta < 0 || o.MaxGroupsContributed < 0 || o.MaxContributionsPerGroup < 0 ||
		math.IsInf(o.Epsilon, 0) || math.IsInf(o.Delta, 0):
		return 0, nil, errcode.New(errcode.InvalidOptions, "job options must be non-negative finite numbers (zero means the default)")
	}
	ctx := r.Context()
	g, err := s.store.Grant(ctx, req.Grant)
	if err != nil {
		return 0, nil, err
	}
	if err := s.authorize(ctx, who, policy.ActionJobSubmit, grantResource(g)); err != nil {
		return 0, nil, err
	}
	if err := s.jobAllowed(g, req.Kind); err != nil {
		return 0, nil, err
	}
	select {
	case <-s.stopping:
		return 0, nil, errcode.New(errcode.Unavailable, "the server is shutting down; submit the job again later")
	default:
	}
	now := s.now().UTC()
	j := api.Job{ID: newID("job-"), State: api.JobQueued, Grant: g.ID, Org: g.Org, SubmittedBy: who.Name, Kind: req.Kind,
		SQL: req.SQL, Options: req.Options, CreatedAt: now, UpdatedAt: now}
	if err := s.store.CreateJob(ctx, j); err != nil {
		return 0, nil, err
	}
	s.kick()
	return http.StatusAccepted, j, nil
}

// jobDoc is a job as who may see it: the result only when released and when the policy lets
// who read results.
func (s *Server) jobDoc(ctx context.Context, who policy.Principal, j governance.Job) api.Job {
	doc := j.Job
	doc.Receipt = ""
	if j.State == api.JobReleased && s.allowed(ctx, who, policy.ActionJobResult, jobResource(j.Job)) {
		doc.Result, doc.Receipt = j.Output, j.Receipt
	}
	return doc
}

func (s *Server) listJobs(_ http.ResponseWriter, r *http.Request, who policy.Principal) (int, any, error) {
	if err := s.authorize(r.Context(), who, policy.ActionJobList, policy.Resource{Kind: "job"}); err != nil {
		return 0, nil, err
	}
	all, err := s.store.Jobs(r.Context(), governance.JobFilter{Grant: r.URL.Query().Get("grant"), State: r.URL.Query().Get("state")})
	if err != nil {
		return 0, nil, err
	}
	out := api.Jobs{Jobs: []api.Job{}}
	for _, j := range all {
		if s.allowed(r.Context(), who, policy.ActionJobRead, jobResource(j.Job)) {
			j.Receipt = ""
			out.Jobs = append(out.Jobs, j.Job) // lists carry no results or receipts
		}
	}
	return http.StatusOK, out, nil
}

func (s *Server) getJob(_ http.ResponseWriter, r *http.Request, who policy.Principal) (int, any, error) {
	ctx := r.Context()
	j, err := s.store.Job(ctx, r.PathValue("id"))
	if err != nil {
		return 0, nil, err
	}
	if err := s.authorize(ctx, who, policy.ActionJobRead, jobResource(j.Job)); err != nil {
		return 0, nil, err
	}
	if w := r.URL.Query().Get("wait"); w != "" {
		d, err := time.ParseDuration(w)
		if err != nil || d < 0 {
			return 0, nil, errcode.New(errcode.InvalidRequest, "wait must be a duration such as 30s")
		}
		if j, err = s.waitJob(ctx, j.ID, min(d, maxWait)); err != nil {
			return 0, nil, err
		}
	}
	return http.StatusOK, s.jobDoc(ctx, who, j), nil
}

// --- reviews ---

func (s *Server) listReviews(_ http.ResponseWriter, r *http.Request, who policy.Principal) (int, any, error) {
	if err := s.authorize(r.Context(), who, policy.ActionReviewList, policy.Resource{Kind: "review"}); err != nil {
		return 0, nil, err
	}
	held, err := s.store.Jobs(r.Context(), governance.JobFilter{State: api.JobInReview})
	if err != nil {
		return 0, nil, err
	}
	out := api.Reviews{Reviews: []api.ReviewItem{}}
	for _, j := range held {
		// A reviewer who may not decide a job does not see its held result either: an
		// unreleased output never reaches the applicant's org through the queue.
		if separationOfDuties(who, j) != nil {
			continue
		}
		j.Receipt = ""
		out.Reviews = append(out.Reviews, api.ReviewItem{Job: j.Job, Result: j.Output})
	}
	return http.StatusOK, out, nil
}

func (s *Server) decideReview(approve bool) handler {
	return func(_ http.ResponseWriter, r *http.Request, who policy.Principal) (int, any, error) {
		var req api.ReasonRequest
		if err := decode(r, &req, approve); err != nil {
			return 0, nil, err
		}
		if !approve && strings.TrimSpace(req.Reason) == "" {
			return 0, nil, errcode.New(errcode.InvalidRequest, "a rejection gives its reason")
		}
		ctx := r.Context()
		j, err := s.store.Job(ctx, r.PathValue("job"))
		if err != nil {
			return 0, nil, err
		}
		if err := s.authorize(ctx, who, policy.ActionReviewDecide, jobResource(j.Job)); err != nil {
			return 0, nil, err
		}
		if j.State != api.JobInReview {
			return 0, nil, errcode.New(errcode.Conflict, "job %s is %s, not in review", j.ID, j.State)
		}
		if j, err = s.review(ctx, who, j.ID, approve, req.Reason); err != nil {
			return 0, nil, err
		}
		j.Receipt = "" // the reviewer releases the result to the applicant, not to itself
		return http.StatusOK, j.Job, nil
	}
}

// --- audit ---

func (s *Server) auditVerify(_ http.ResponseWriter, r *http.Request, who policy.Principal) (int, any, error) {
	if err := s.authorize(r.Context(), who, policy.ActionAuditVerify, policy.Resource{Kind: "audit"}); err != nil {
		return 0, nil, err
	}
	rep, err := s.eng.VerifyLog()
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
	ents, err := provenance.ReadJob(s.eng.LogPath(), id)
	if err != nil {
		return 0, nil, errcode.Wrap(errcode.Internal, err, "the provenance log could not be read")
	}
	if len(ents) == 0 {
		return 0, nil, errcode.New(errcode.NotFound, "the provenance log has no record of job %s", id)
	}
	out := api.AuditJob{Job: id, Records: ents}
	if cp, ok := s.eng.Log().LatestCheckpoint(); ok {
		out.Checkpoint, out.Size = string(cp.Note), cp.Size
		for _, e := range ents {
			var hashes []string
			line := ""
			if e.Index < cp.Size {
				proof, err := s.eng.Log().InclusionProof(e.Index, cp.Size)
				if err != nil {
					return 0, nil, errcode.Wrap(errcode.Internal, err, "an inclusion proof could not be made")
				}
				hashes = b64Hashes(proof)
				b, err := s.eng.Log().Line(e.Index)
				if err != nil {
					return 0, nil, errcode.Wrap(errcode.Internal, err, "the provenance log could not be read")
				}
				line = string(b)
			}
			out.Lines = append(out.Lines, line)
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
	writeText(w, s.eng.PublicKey()+"\n")
	return 0, nil, nil
}

// auditCheckpoint serves the latest signed checkpoint (a C2SP signed note), making one first
// if the log grew since the last.
func (s *Server) auditCheckpoint(w http.ResponseWriter, r *http.Request, who policy.Principal) (int, any, error) {
	if err := s.authorize(r.Context(), who, policy.ActionAuditCheckpoint, policy.Resource{Kind: "audit"}); err != nil {
		return 0, nil, err
	}
	cp, err := s.eng.Log().Checkpoint(r.Context())
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
	proof, err := s.eng.Log().InclusionProof(index, size)
	if err != nil {
		return 0, nil, proofError(err)
	}
	root, err := s.eng.Log().TreeHead(size)
	if err != nil {
		return 0, nil, proofError(err)
	}
	line, err := s.eng.Log().Line(index)
	if err != nil {
		return 0, nil, proofError(err)
	}
	return http.StatusOK, api.InclusionProof{Index: index, Size: size, Root: base64.StdEncoding.EncodeToString(root[:]),
		Line: string(line), Hashes: b64Hashes(proof)}, nil
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
	proof, err := s.eng.Log().ConsistencyProof(oldSize, newSize)
	if err != nil {
		return 0, nil, proofError(err)
	}
	oldRoot, err := s.eng.Log().TreeHead(oldSize)
	if err != nil {
		return 0, nil, proofError(err)
	}
	newRoot, err := s.eng.Log().TreeHead(newSize)
	if err != nil {
		return 0, nil, proofError(err)
	}
	return http.StatusOK, api.ConsistencyProof{Old: oldSize, New: newSize, OldRoot: base64.StdEncoding.EncodeToString(oldRoot[:]),
		NewRoot: base64.StdEncoding.EncodeToString(newRoot[:]), Hashes: b64Hashes(proof)}, nil
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

func ptr[T any](v T) *T { return &v }
