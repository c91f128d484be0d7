package server

import (
	"context"
	"net/http"

	"github.com/c1b99f93/cleanroom/engine/provenance"
	"github.com/c1b99f93/cleanroom/policy"
	"github.com/c1b99f93/cleanroom/server/api"
	"github.com/c1b99f93/cleanroom/server/governance"
)

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
	if err := s.authorizeSeen(r.Context(), who, policy.ActionGrantRead, grantResource(g)); err != nil {
		return 0, nil, err
	}
	g, err = s.grantDoc(r.Context(), g)
	return http.StatusOK, g, err
}

func (s *Server) grantBudget(_ http.ResponseWriter, r *http.Request, who policy.Principal) (int, any, error) {
	g, err := s.grantFor(r.Context(), who, r.PathValue("id"), policy.ActionGrantBudget)
	if err != nil {
		return 0, nil, err
	}
	if err := s.gov.Settle(r.Context(), false); err != nil {
		return 0, nil, err
	}
	rep, err := s.eng.GrantBudget(r.Context(), g.ID)
	return http.StatusOK, rep, err
}

// grantTransition suspends, resumes or revokes a grant (the governance service decides which
// states may move where); it applies to the next job the grant's runners claim.
func (s *Server) grantTransition(action string, act governance.GrantAction) handler {
	return func(_ http.ResponseWriter, r *http.Request, who policy.Principal) (int, any, error) {
		var req api.ReasonRequest
		if err := decode(r, &req, true); err != nil {
			return 0, nil, err
		}
		ctx := r.Context()
		g, err := s.grantFor(ctx, who, r.PathValue("id"), action)
		if err != nil {
			return 0, nil, err
		}
		if g, err = s.gov.Transition(ctx, provenance.Principal(who), g, act, req.Reason); err != nil {
			return 0, nil, err
		}
		g, err = s.grantDoc(ctx, g)
		return http.StatusOK, g, err
	}
}
