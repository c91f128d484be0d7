package server

import (
	"math"
	"net/http"
	"slices"
	"strings"

	"github.com/c1b99f93/cleanroom/engine/provenance"
	"github.com/c1b99f93/cleanroom/errcode"
	"github.com/c1b99f93/cleanroom/policy"
	"github.com/c1b99f93/cleanroom/server/api"
	"github.com/c1b99f93/cleanroom/server/governance"
)

var jobKinds = []string{api.KindSQL, api.KindVerify, api.KindFederated, api.KindModel, api.KindWasm}

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
	a.ID, a.State, a.Org, a.Applicant, a.CreatedAt = governance.NewID("app-"), api.ApplicationPending, who.Org, who.Name, s.now().UTC()
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
	if a.Start, err = governance.ParseTime("start", req.Start, false); err != nil {
		return a, err
	}
	if a.End, err = governance.ParseTime("end", req.End, true); err != nil {
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
	if err := s.authorizeSeen(r.Context(), who, policy.ActionApplicationRead, applicationResource(a)); err != nil {
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
	if err := s.authorizeSeen(ctx, who, policy.ActionApplicationApprove, applicationResource(a),
		readable(policy.ActionApplicationRead, applicationResource(a))); err != nil {
		return 0, nil, err
	}
	g, err := s.gov.Approve(ctx, provenance.Principal(who), a, governance.ApproveTerms{Epsilon: req.Epsilon, Delta: req.Delta, End: req.End})
	if err != nil {
		return 0, nil, err
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
	if err := s.authorizeSeen(ctx, who, policy.ActionApplicationReject, applicationResource(a),
		readable(policy.ActionApplicationRead, applicationResource(a))); err != nil {
		return 0, nil, err
	}
	a, err = s.gov.Reject(ctx, provenance.Principal(who), a, req.Reason)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, a, nil
}
