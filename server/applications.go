package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"math"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/c1b99f93/cleanroom/engine"
	"github.com/c1b99f93/cleanroom/engine/ledger"
	"github.com/c1b99f93/cleanroom/engine/provenance"
	"github.com/c1b99f93/cleanroom/errcode"
	"github.com/c1b99f93/cleanroom/policy"
	"github.com/c1b99f93/cleanroom/server/api"
)

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
