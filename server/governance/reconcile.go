package governance

import (
	"context"
	"errors"
	"fmt"

	"github.com/c1b99f93/cleanroom/engine/provenance"
	"github.com/c1b99f93/cleanroom/errcode"
	"github.com/c1b99f93/cleanroom/server/api"
)

// Reconcile settles every decision the log holds an intent of and no outcome, as the store
// shows it went, so that store, ledger and log agree again. It runs when the server starts,
// before any request, and its rule is deterministic:
//
//   - a decision whose store write took place (the application approved with the intent's
//     grant or rejected by its decider, the grant in the intent's new state, the reviewer's
//     review stored) is completed: what follows the store write is re-run (each step is
//     idempotent), then its own record — unless the log already holds it — and its outcome;
//   - a rejection of a held output whose withholding took place is completed (the output is
//     never released in any case; the store is brought to say so);
//   - an expiry is completed (closing an allocation is idempotent);
//   - any other decision is rolled back: what it allocated is cancelled, and its outcome says
//     rolled_back.
//
// It returns how many decisions it settled.
func (s *Service) Reconcile(ctx context.Context) (int, error) {
	recs, err := s.log.Decisions(ctx)
	if err != nil {
		return 0, fmt.Errorf("governance: reconcile: %w", err)
	}
	type pending struct {
		in  *provenance.GovernanceIntent
		pos int
	}
	var order []pending
	closed := map[string]bool{}
	for i, r := range recs {
		switch ev := r.Event.(type) {
		case *provenance.GovernanceIntent:
			order = append(order, pending{ev, i})
		case *provenance.GovernanceOutcome:
			closed[ev.ID] = true
		}
	}
	n := 0
	for _, p := range order {
		if closed[p.in.ID] {
			continue
		}
		if err := s.reconcile(ctx, p.in, recs[p.pos+1:]); err != nil {
			return n, fmt.Errorf("governance: reconcile %s (%s %s): %w", p.in.ID, p.in.Action, p.in.Subject, err)
		}
		n++
	}
	return n, nil
}

// reconcile settles one open decision; later are the log's records after its intent.
func (s *Service) reconcile(ctx context.Context, in *provenance.GovernanceIntent, later []provenance.Record) error {
	switch in.Action {
	case ActionApproveApplication:
		var g api.Grant
		if err := decodeDetail(in, &g); err != nil || g.ID == "" {
			return errors.Join(errors.New("the intent names no grant"), err)
		}
		a, err := s.store.Application(ctx, in.Subject)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
		if a.State == api.ApplicationApproved && a.Grant == g.ID {
			return s.complete(ctx, in, unless(later, approved(in, g), func(ev *provenance.ApplicationApproved) bool {
				return ev.Application == in.Subject
			}), true)
		}
		return s.rollBack(ctx, in, nil, func(ctx context.Context) error {
			return s.budget.CloseGrant(ctx, g.ID, CloseCancelled, true)
		}, true)

	case ActionRejectApplication:
		a, err := s.store.Application(ctx, in.Subject)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
		if a.State == api.ApplicationRejected && a.DecidedBy == in.By.Name && a.Reason == in.Reason {
			return s.complete(ctx, in, unless(later, rejected(in), func(ev *provenance.ApplicationRejected) bool {
				return ev.Application == in.Subject
			}), true)
		}
		return s.rollBack(ctx, in, nil, nil, true)

	case ActionSuspendGrant, ActionResumeGrant, ActionRevokeGrant:
		var t transition
		if err := decodeDetail(in, &t); err != nil {
			return err
		}
		g, err := s.store.Grant(ctx, in.Subject)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
		if g.ID == "" || g.State != t.To {
			return s.rollBack(ctx, in, nil, nil, true)
		}
		if err := s.afterTransition(ctx, g.ID, t.To); err != nil {
			return err
		}
		rec := &provenance.GrantState{Grant: g.ID, From: t.From, To: t.To, By: in.By, Reason: in.Reason}
		return s.complete(ctx, in, unless(later, rec, func(ev *provenance.GrantState) bool {
			return ev.Grant == g.ID && ev.To == t.To
		}), true)

	case ActionExpireGrant:
		if err := s.budget.CloseGrant(ctx, in.Subject, CloseExpired, s.rules.ReturnUnspent(CloseExpired)); err != nil {
			return err
		}
		return s.complete(ctx, in, nil, true)

	case ActionApproveOutput, ActionRejectOutput:
		return s.reconcileReview(ctx, in, later)
	}
	return fmt.Errorf("unknown action %q", in.Action)
}

// reconcileReview settles a reviewer's decision on a held output.
func (s *Service) reconcileReview(ctx context.Context, in *provenance.GovernanceIntent, later []provenance.Record) error {
	var d review
	if err := decodeDetail(in, &d); err != nil {
		return err
	}
	j, err := s.store.Job(ctx, in.Subject)
	if err != nil {
		return err
	}
	if j.Review != nil && reviewedBy(j.Review.Reviews, in.By.Name) { // stored: completed
		if j.State == api.JobReleased {
			if err := s.holds.EndHold(ctx, j.ID); err != nil {
				return err
			}
		}
		return s.complete(ctx, in, nil, true)
	}
	if in.Action != ActionRejectOutput || j.State != api.JobInReview {
		return s.rollBack(ctx, in, nil, nil, true)
	}
	// A rejection is completed: withholding is the direction that releases nothing.
	reviewed := has(later, func(r provenance.Record) bool {
		ev, ok := r.Event.(*provenance.Review)
		return ok && r.Job == j.ID && ev.Reviewer.Name == in.By.Name
	})
	withheld := has(later, func(r provenance.Record) bool {
		_, ok := r.Event.(*provenance.Withheld)
		return ok && r.Job == j.ID
	})
	if !reviewed {
		if err := s.holds.RecordReview(ctx, j.ID, in.By, d.Approve, in.Reason); err != nil {
			return err
		}
	}
	if !withheld {
		if err := s.holds.Withhold(ctx, j.ID, d.Code, d.Reason); err != nil {
			if errcode.Of(err) == errcode.Conflict { // released or decided otherwise meanwhile
				return s.rollBack(ctx, in, nil, nil, true)
			}
			return err
		}
	}
	decision := "reject"
	if d.Approve {
		decision = "approve"
	}
	r := api.Review{Reviewer: in.By.Name, Org: in.By.Org, Decision: decision, Reason: in.Reason, At: s.now().UTC()}
	_, err = s.denyReviewed(ctx, in, j, r, d, true)
	return err
}

func reviewedBy(rs []api.Review, name string) bool {
	for _, r := range rs {
		if r.Reviewer == name {
			return true
		}
	}
	return false
}

// has reports whether any record satisfies ok.
func has(recs []provenance.Record, ok func(provenance.Record) bool) bool {
	for _, r := range recs {
		if ok(r) {
			return true
		}
	}
	return false
}

// unless returns rec, or nil when the log already holds a record of its type that same says
// is the same decision's (it was written before the crash).
func unless[E provenance.Event](later []provenance.Record, rec provenance.Event, same func(E) bool) provenance.Event {
	if has(later, func(r provenance.Record) bool {
		ev, ok := r.Event.(E)
		return ok && same(ev)
	}) {
		return nil
	}
	return rec
}
