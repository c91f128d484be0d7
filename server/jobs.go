package server

import (
	"context"
	"math"
	"net/http"
	"strings"
	"time"

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
	j := api.Job{ID: governance.NewID("job-"), State: api.JobQueued, Grant: g.ID, Org: g.Org, SubmittedBy: who.Name, Kind: req.Kind,
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
