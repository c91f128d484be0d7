package server

import (
	"context"
	"net/http"
	"slices"

	"github.com/c1b99f93/cleanroom/engine"
	"github.com/c1b99f93/cleanroom/engine/provenance"
	"github.com/c1b99f93/cleanroom/errcode"
	"github.com/c1b99f93/cleanroom/policy"
	"github.com/c1b99f93/cleanroom/server/api"
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
	params := s.eng.Params()
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
			if _, err := s.eng.CloseGrant(ctx, g.ID, engine.CloseRevoked, s.eng.Params().ReturnUnspentOnRevoke); err != nil {
				return 0, nil, err
			}
		}
		g, err = s.grantDoc(ctx, g)
		return http.StatusOK, g, err
	}
}
