package server

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"strings"
	"time"

	"github.com/c1b99f93/cleanroom/engine"
	"github.com/c1b99f93/cleanroom/engine/plan"
	"github.com/c1b99f93/cleanroom/errcode"
	"github.com/c1b99f93/cleanroom/policy"
	"github.com/c1b99f93/cleanroom/server/api"
	"github.com/c1b99f93/cleanroom/server/governance"
)

func jobResource(j api.Job) policy.Resource {
	res := policy.Resource{Kind: "job", ID: j.ID, Org: j.Org, Submitter: j.SubmittedBy}
	if j.Review != nil {
		for _, r := range j.Review.Reviews {
			res.Reviewers = append(res.Reviewers, r.Reviewer)
		}
	}
	return res
}

// jobRequest decodes and checks a job request (POST /v1/jobs and /v1/explain take the same
// body), authorizes who to do action on its grant, and enforces the grant's state, period and
// job kinds: an explanation is refused exactly as the job would be.
func (s *Server) jobRequest(r *http.Request, who policy.Principal, action string) (api.JobRequest, api.Grant, error) {
	var req api.JobRequest
	if err := decode(r, &req, false); err != nil {
		return req, api.Grant{}, err
	}
	if req.Kind == "" {
		req.Kind = api.KindSQL
	}
	o := req.Options
	switch {
	case req.Grant == "":
		return req, api.Grant{}, errcode.New(errcode.InvalidRequest, "a job names its grant")
	case req.Kind == api.KindVerify && (req.Verify == nil || req.SQL != ""):
		return req, api.Grant{}, errcode.New(errcode.InvalidRequest, "a verification carries its claims in verify, and no SQL")
	case req.Kind != api.KindVerify && req.Verify != nil:
		return req, api.Grant{}, errcode.New(errcode.InvalidRequest, "only a verification (kind verify) carries claims")
	case (req.Kind == api.KindFederated) != (req.Federated != nil):
		return req, api.Grant{}, errcode.New(errcode.InvalidRequest, "a federated job (kind federated_sql) names its datasets in federated.datasets, and only it does")
	case (req.Kind == api.KindModel) != (req.Model != nil):
		return req, api.Grant{}, errcode.New(errcode.InvalidRequest, "a model job (kind model) carries its model in model, and only it does")
	case req.Kind == api.KindModel && req.SQL != "":
		return req, api.Grant{}, errcode.New(errcode.InvalidRequest, "a model job's SQL goes in model.sql")
	case (req.Kind == api.KindWasm) != (req.Wasm != nil):
		return req, api.Grant{}, errcode.New(errcode.InvalidRequest, "a custom model job (kind wasm) carries its module and shape in wasm, and only it does")
	case req.Kind == api.KindWasm && req.SQL != "":
		return req, api.Grant{}, errcode.New(errcode.InvalidRequest, "a custom model job's SQL goes in wasm.sql")
	case req.Kind == api.KindVerify:
	case req.Kind != api.KindModel && req.Kind != api.KindWasm && strings.TrimSpace(req.SQL) == "":
		return req, api.Grant{}, errcode.New(errcode.InvalidRequest, "a job carries its SQL")
	case len(req.SQL) > 64<<10:
		return req, api.Grant{}, errcode.New(errcode.InvalidRequest, "the SQL is longer than 64 KiB")
	case o.Epsilon < 0 || o.MaxGroupsContributed < 0 || o.MaxContributionsPerGroup < 0 || math.IsInf(o.Epsilon, 0) ||
		(o.Delta != nil && (*o.Delta < 0 || math.IsInf(*o.Delta, 0))):
		return req, api.Grant{}, errcode.New(errcode.InvalidOptions,
			"job options must be non-negative finite numbers (zero means the default, except delta: absent means the default and 0 means pure DP)")
	}
	if req.Kind == api.KindWasm {
		if err := engine.CheckWasmRequest(req.Wasm); err != nil {
			return req, api.Grant{}, err
		}
	}
	ctx := r.Context()
	g, err := s.grantFor(ctx, who, req.Grant, action)
	if errors.Is(err, governance.ErrNotFound) { // missing, or not the caller's to see: one answer
		return req, api.Grant{}, errcode.New(errcode.NotFound, "no such grant")
	}
	if err != nil {
		return req, g, err
	}
	return req, g, s.jobAllowed(g, req.Kind)
}

// planOptions are a request's options as the engine takes them: an absent delta is unset (the
// engine's default), a delta given — even 0 — is kept.
func planOptions(o api.JobOptions) plan.Options {
	opts := plan.Options{Epsilon: o.Epsilon, MaxGroupsContributed: o.MaxGroupsContributed, MaxContributionsPerGroup: o.MaxContributionsPerGroup}
	if o.Delta != nil {
		opts.Delta, opts.DeltaSet = *o.Delta, true
	}
	return opts
}

// engineJob is the engine's view of a job on grant g; usage (the rate-limit counts) is nil for
// a dry run or an admission check, which no rate limit applies to.
func engineJob(id string, who policy.Principal, g api.Grant, req api.JobRequest, usage *policy.GrantUsage) engine.Job {
	return engine.Job{ID: id, Principal: who, Grant: g.ID, Kind: req.Kind, SQL: req.SQL, Options: planOptions(req.Options), Verify: req.Verify, Federated: req.Federated, Model: req.Model, Wasm: req.Wasm,
		Terms: &policy.Grant{ID: g.ID, Org: g.Org, Purpose: g.Purpose, Scenario: g.Scenario, Datasets: g.Datasets, JobKinds: g.JobKinds, Usage: usage}}
}

// submitJob queues a job. The SQL gate runs first: a request it refuses is answered at once
// (400, with the refusal's code and position), recorded in provenance as request_refused, and
// never becomes a job — it is not listed, not run and not counted against the grant's rate
// limits; it takes a token of the principal's denied-request bucket, so a flood of refused SQL
// meets 429 rate_limited like a flood of denials. The gate reads no data (it parses the SQL and
// checks names against the catalog), so answering at once tells nothing about the data
// (docs/threat-model.md). Refusals by later stages (access policy, budget) are the job's
// outcome, as before.
func (s *Server) submitJob(_ http.ResponseWriter, r *http.Request, who policy.Principal) (int, any, error) {
	req, g, err := s.jobRequest(r, who, policy.ActionJobSubmit)
	if err != nil {
		return 0, nil, err
	}
	select {
	case <-s.stopping:
		return 0, nil, errcode.New(errcode.Unavailable, "the server is shutting down; submit the job again later")
	default:
	}
	ctx := r.Context()
	// A module sent with the job is checked and stored first (the job keeps its digest); a
	// module refused there is a refused request like refused SQL.
	err = s.storeJobModule(ctx, &req)
	ej := engineJob("", who, g, req, nil)
	if err == nil {
		err = s.eng.Admit(ctx, ej)
	}
	if err != nil {
		if statusOf(errcode.Of(err)) >= 500 { // the gate could not run: not a refusal
			return 0, nil, err
		}
		if rerr := s.eng.RecordRefusedRequest(ctx, ej, req.Kind, err); rerr != nil {
			return 0, nil, rerr
		}
		s.denied.spend(who)
		return 0, nil, refusedRequest{err}
	}
	now := s.now().UTC()
	j := api.Job{ID: governance.NewID("job-"), State: api.JobQueued, Grant: g.ID, Org: g.Org, SubmittedBy: who.Name, Kind: req.Kind,
		SQL: req.SQL, Options: req.Options, Federated: req.Federated, Model: req.Model, Wasm: req.Wasm, CreatedAt: now, UpdatedAt: now}
	var input []byte
	if req.Verify != nil {
		// The claims wait with the job (not in its document, which lists would carry): the
		// store drops them when the job's outcome is shown.
		if input, err = json.Marshal(req.Verify); err != nil {
			return 0, nil, err
		}
	}
	if err := s.store.Enqueue(ctx, j, input, s.sched.cfg.limits()); err != nil {
		return 0, nil, s.sched.queueFull(err)
	}
	s.kick()
	return http.StatusAccepted, j, nil
}

// refusedRequest is a request the gate refused: whatever its code, it is answered 400 (the
// request is wrong; no resource is missing or forbidden), except that a dataset outside the
// grant stays 403.
type refusedRequest struct{ error }

func (e refusedRequest) Unwrap() error { return e.error }

// explain answers POST /v1/explain: the job's dry run. It is authorized and checked against
// the grant exactly like a submission, but it reads no data, reserves and records nothing, is
// not a job and is not rate-limited (the engine's Explain runs the gate, plan and access
// policy only, and the policy sees no usage counts).
func (s *Server) explain(_ http.ResponseWriter, r *http.Request, who policy.Principal) (int, any, error) {
	req, g, err := s.jobRequest(r, who, policy.ActionJobExplain)
	if err != nil {
		return 0, nil, err
	}
	if req.Kind != api.KindSQL {
		return 0, nil, errcode.New(errcode.InvalidRequest, "explain is for SQL jobs (a verification's cost is its number of checks; a federated job's, its epsilon on each dataset)")
	}
	x, err := s.eng.Explain(r.Context(), engineJob("", who, g, req, nil))
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, x.Explanation, nil
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
	if err := s.authorizeSeen(ctx, who, policy.ActionJobRead, jobResource(j.Job)); err != nil {
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
