package server

import (
	"net/http"
	"strings"

	"github.com/c1b99f93/cleanroom/engine/provenance"
	"github.com/c1b99f93/cleanroom/errcode"
	"github.com/c1b99f93/cleanroom/policy"
	"github.com/c1b99f93/cleanroom/server/api"
	"github.com/c1b99f93/cleanroom/server/governance"
)

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
		if governance.MayReview(provenance.Principal(who), j) != nil {
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
		// Reviewers see the review queue, so a job id is no secret to them (a reviewer who may
		// not decide a job hears separation_of_duties); to anyone else a job they may not read
		// answers like a missing one.
		if err := s.authorizeSeen(ctx, who, policy.ActionReviewDecide, jobResource(j.Job), readable(policy.ActionJobRead, jobResource(j.Job)),
			readable(policy.ActionReviewList, policy.Resource{Kind: "review"})); err != nil {
			return 0, nil, err
		}
		if j, err = s.gov.Decide(ctx, provenance.Principal(who), j, approve, req.Reason); err != nil {
			return 0, nil, err
		}
		j.Receipt = "" // the reviewer releases the result to the applicant, not to itself
		return http.StatusOK, j.Job, nil
	}
}
