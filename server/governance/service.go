package governance

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/c1b99f93/cleanroom/engine/provenance"
	"github.com/c1b99f93/cleanroom/errcode"
	"github.com/c1b99f93/cleanroom/server/api"
)

// Service makes governance decisions: approving and rejecting applications, moving grants
// between states, deciding held outputs. Who may ask is the caller's business (the policy);
// what may move to what, and what a decision may change, is decided here.
//
// Every decision is written in one order: its intent (governance_intent, with the id that keys
// its effects), then its effects (ledger, store, engine holds), then its outcome (the
// decision's own record, such as application_approved, and governance_outcome). The store
// write is the point of no return: a failure before it rolls the decision back (what was
// allocated is cancelled), a failure after it leaves the decision to be completed. A decision
// that a crash or a failed write left without its outcome is settled by Reconcile when the
// server starts, from what the store and the ledger show, so that store, ledger and log agree.
type Service struct {
	log     Log
	budget  Budget
	holds   Holds
	store   State
	rules   Rules
	now     func() time.Time
	changed func()
	logger  *slog.Logger

	settleMu sync.Mutex // one settlement of ended grants at a time, so an expiry is decided once
}

// NewService returns a Service over d.
func NewService(d Deps) *Service {
	s := &Service{log: d.Log, budget: d.Budget, holds: d.Holds, store: d.Store, rules: d.Rules,
		now: d.Now, changed: d.Changed, logger: d.Logger}
	if s.now == nil {
		s.now = time.Now
	}
	if s.changed == nil {
		s.changed = func() {}
	}
	if s.logger == nil {
		s.logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return s
}

// Actions a governance intent names.
const (
	ActionApproveApplication = "approve_application"
	ActionRejectApplication  = "reject_application"
	ActionSuspendGrant       = "suspend_grant"
	ActionResumeGrant        = "resume_grant"
	ActionRevokeGrant        = "revoke_grant"
	ActionExpireGrant        = "expire_grant"
	ActionApproveOutput      = "approve_output"
	ActionRejectOutput       = "reject_output"
)

// Outcomes of a decision (governance_outcome).
const (
	OutcomeCompleted  = "completed"
	OutcomeRolledBack = "rolled_back"
)

// platform is who decides what no person decides (a grant's period ending).
func platform() provenance.Principal {
	return provenance.Principal{Name: "platform", Role: "platform", Org: "platform"}
}

// begin records a decision's intent under its own id: nothing takes effect before it.
func (s *Service) begin(ctx context.Context, action, subject string, by provenance.Principal, reason string, detail any) (*provenance.GovernanceIntent, error) {
	in := &provenance.GovernanceIntent{ID: NewID("gov-"), Action: action, Subject: subject, By: by, Reason: reason, Detail: provenance.DocOf(detail)}
	if _, err := s.log.Record(ctx, in.ID, in); err != nil {
		return nil, err
	}
	return in, nil
}

// complete writes a decision's own record (if any) and its completed outcome.
func (s *Service) complete(ctx context.Context, in *provenance.GovernanceIntent, rec provenance.Event, reconciled bool) error {
	if rec != nil {
		if _, err := s.log.Record(ctx, "", rec); err != nil {
			return err
		}
	}
	_, err := s.log.Record(ctx, in.ID, &provenance.GovernanceOutcome{ID: in.ID, Action: in.Action, Subject: in.Subject,
		Outcome: OutcomeCompleted, Reconciled: reconciled})
	return err
}

// rollBack undoes what a decision did before its point of no return and records that it was
// rolled back, then returns cause. If undoing fails, the outcome is left for Reconcile.
func (s *Service) rollBack(ctx context.Context, in *provenance.GovernanceIntent, cause error, undo func(context.Context) error, reconciled bool) error {
	ctx = context.WithoutCancel(ctx)
	if undo != nil {
		if err := undo(ctx); err != nil {
			return errors.Join(cause, err)
		}
	}
	code := ""
	if cause != nil {
		code = string(errcode.Of(cause))
	}
	if _, err := s.log.Record(ctx, in.ID, &provenance.GovernanceOutcome{ID: in.ID, Action: in.Action, Subject: in.Subject,
		Outcome: OutcomeRolledBack, Code: code, Reconciled: reconciled}); err != nil {
		return errors.Join(cause, err)
	}
	return cause
}

// --- applications ---

// ApproveTerms are what an approval may change: it may lower epsilon and delta and end the
// period earlier, never widen what was applied for. Nil and "" keep the application's.
type ApproveTerms struct {
	Epsilon *float64
	Delta   *float64
	End     string
}

// Approve turns a pending application into an active grant. The grant's budget is carved out
// of its datasets' lifetime budgets before the grant exists (a dataset with too little left
// refuses the approval, and no grant is made).
func (s *Service) Approve(ctx context.Context, by provenance.Principal, a api.Application, t ApproveTerms) (api.Grant, error) {
	if a.State != api.ApplicationPending {
		return api.Grant{}, errcode.New(errcode.Conflict, "application %s is already %s", a.ID, a.State)
	}
	eps, delta, end := a.Epsilon, a.Delta, a.End
	if t.Epsilon != nil {
		if !(*t.Epsilon > 0 && *t.Epsilon <= a.Epsilon) {
			return api.Grant{}, errcode.New(errcode.InvalidRequest, "an approval may lower epsilon (to a positive value at most %g), never raise it", a.Epsilon)
		}
		eps = *t.Epsilon
	}
	if t.Delta != nil {
		if !(*t.Delta >= 0 && *t.Delta <= a.Delta) {
			return api.Grant{}, errcode.New(errcode.InvalidRequest, "an approval may lower delta (to a value in [0, %g]), never raise it", a.Delta)
		}
		delta = *t.Delta
	}
	if t.End != "" {
		var err error
		if end, err = ParseTime("end", t.End, true); err != nil {
			return api.Grant{}, err
		}
		if !end.After(a.Start) || end.After(a.End) {
			return api.Grant{}, errcode.New(errcode.InvalidRequest, "an approval may end the period earlier (after its start), never later")
		}
	}
	now := s.now().UTC()
	g := api.Grant{ID: NewID("grant-"), State: api.GrantActive, Org: a.Org, Application: a.ID, Purpose: a.Purpose,
		Scenario: a.Scenario, Datasets: a.Datasets, JobKinds: a.JobKinds, Start: a.Start, End: end,
		Budget: api.GrantBudget{EpsilonTotal: eps, DeltaTotal: delta, Allocated: true}, CreatedAt: now, UpdatedAt: now}
	// Budget that expired grants never spent goes back first, so it can be allocated again.
	if err := s.Settle(ctx, false); err != nil {
		return api.Grant{}, err
	}
	in, err := s.begin(ctx, ActionApproveApplication, a.ID, by, "", g)
	if err != nil {
		return api.Grant{}, err
	}
	cancel := func(ctx context.Context) error { return s.budget.CloseGrant(ctx, g.ID, CloseCancelled, true) }
	if err := s.budget.OpenGrant(ctx, g.ID, eps, delta, a.Datasets); err != nil {
		return api.Grant{}, s.rollBack(ctx, in, err, cancel, false)
	}
	if err := s.store.DecideApplication(ctx, a.ID, func(a *api.Application) {
		a.State, a.Grant, a.DecidedBy, a.DecidedAt = api.ApplicationApproved, g.ID, by.Name, &now
	}, &g); err != nil {
		return api.Grant{}, s.rollBack(ctx, in, err, cancel, false)
	}
	return g, s.complete(ctx, in, approved(in, g), false)
}

func approved(in *provenance.GovernanceIntent, g api.Grant) provenance.Event {
	return &provenance.ApplicationApproved{Application: in.Subject, Grant: provenance.DocOf(g), By: in.By}
}

// Reject settles a pending application as rejected, for a reason the applicant reads.
func (s *Service) Reject(ctx context.Context, by provenance.Principal, a api.Application, reason string) (api.Application, error) {
	if strings.TrimSpace(reason) == "" {
		return a, errcode.New(errcode.InvalidRequest, "a rejection gives its reason")
	}
	if a.State != api.ApplicationPending {
		return a, errcode.New(errcode.Conflict, "application %s is already %s", a.ID, a.State)
	}
	in, err := s.begin(ctx, ActionRejectApplication, a.ID, by, reason, nil)
	if err != nil {
		return a, err
	}
	now := s.now().UTC()
	if err := s.store.DecideApplication(ctx, a.ID, func(a *api.Application) {
		a.State, a.Reason, a.DecidedBy, a.DecidedAt = api.ApplicationRejected, reason, by.Name, &now
	}, nil); err != nil {
		return a, s.rollBack(ctx, in, err, nil, false)
	}
	if err := s.complete(ctx, in, rejected(in), false); err != nil {
		return a, err
	}
	return s.store.Application(ctx, a.ID)
}

func rejected(in *provenance.GovernanceIntent) provenance.Event {
	return &provenance.ApplicationRejected{Application: in.Subject, By: in.By, Reason: in.Reason}
}

// --- grants ---

// GrantAction is a grant state change an operator may ask for.
type GrantAction string

// The grant state changes an operator may ask for.
const (
	Suspend GrantAction = ActionSuspendGrant
	Resume  GrantAction = ActionResumeGrant
	Revoke  GrantAction = ActionRevokeGrant
)

// states is what a grant may move from, and to, under act: a suspended grant resumes, an
// active one is suspended, either is revoked, and a revoked grant stays revoked.
func (act GrantAction) states() (from []string, to string) {
	switch act {
	case Suspend:
		return []string{api.GrantActive}, api.GrantSuspended
	case Resume:
		return []string{api.GrantSuspended}, api.GrantActive
	case Revoke:
		return []string{api.GrantActive, api.GrantSuspended}, api.GrantRevoked
	}
	return nil, ""
}

// transition is a grant intent's detail: the state the grant was in and the one it moves to.
type transition struct {
	From string `json:"from"`
	To   string `json:"to"`
}

// Transition suspends, resumes or revokes a grant; it applies to the next job the grant's
// runners claim. A revocation withholds the grant's held outputs for good and closes its
// allocation (what it never spent goes back when the policy says so).
func (s *Service) Transition(ctx context.Context, by provenance.Principal, g api.Grant, act GrantAction, reason string) (api.Grant, error) {
	from, to := act.states()
	if to == "" {
		return g, fmt.Errorf("governance: no grant transition %q", act)
	}
	if !slices.Contains(from, g.State) {
		return g, errcode.New(errcode.Conflict, "grant %s is %s", g.ID, g.State)
	}
	in, err := s.begin(ctx, string(act), g.ID, by, reason, transition{From: g.State, To: to})
	if err != nil {
		return g, err
	}
	moved, err := s.store.SetGrantState(ctx, g.ID, from, to, s.now())
	if err != nil {
		return g, s.rollBack(ctx, in, err, nil, false)
	}
	if err := s.afterTransition(ctx, g.ID, to); err != nil {
		return moved, err // in force; Reconcile completes what is left
	}
	return moved, s.complete(ctx, in, &provenance.GrantState{Grant: g.ID, From: g.State, To: to, By: by, Reason: reason}, false)
}

// afterTransition does what follows a grant's new state in the store; each step is idempotent.
func (s *Service) afterTransition(ctx context.Context, grant, to string) error {
	if to != api.GrantRevoked {
		return nil
	}
	if err := s.withholdHeld(ctx, grant); err != nil {
		return err
	}
	return s.budget.CloseGrant(ctx, grant, CloseRevoked, s.rules.ReturnUnspent(CloseRevoked))
}

// Settle closes the allocations of grants that ended: a grant past its end (an expiry, decided
// by the platform and recorded as one), and a revoked grant whose revocation did not reach the
// ledger, returning what they never spent when the policy says so. With orphans (at start,
// after Reconcile), it also cancels allocations left without a grant by an approval made before
// approvals recorded intents; the store is then read after the ledger, so an approval in flight
// cannot be mistaken for one.
func (s *Service) Settle(ctx context.Context, orphans bool) error {
	s.settleMu.Lock()
	defer s.settleMu.Unlock()
	open, err := s.budget.AllocatedGrants(ctx)
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
	now := s.now()
	for _, id := range open {
		g, ok := byID[id]
		switch {
		case !ok && orphans:
			err = s.budget.CloseGrant(ctx, id, CloseCancelled, true)
		case !ok:
			continue
		case g.State == api.GrantRevoked:
			err = s.budget.CloseGrant(ctx, id, CloseRevoked, s.rules.ReturnUnspent(CloseRevoked))
		case !now.Before(g.End):
			err = s.expire(ctx, id)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// expire closes an ended grant's allocation.
func (s *Service) expire(ctx context.Context, grant string) error {
	in, err := s.begin(ctx, ActionExpireGrant, grant, platform(), "", nil)
	if err != nil {
		return err
	}
	if err := s.budget.CloseGrant(ctx, grant, CloseExpired, s.rules.ReturnUnspent(CloseExpired)); err != nil {
		return err // Reconcile completes it
	}
	return s.complete(ctx, in, nil, false)
}

// --- held outputs ---

// review is an output intent's detail: how the output ends if the decision withholds it.
type review struct {
	Approve bool         `json:"approve"`
	Code    errcode.Code `json:"code,omitempty"`
	Reason  string       `json:"reason,omitempty"`
	Message string       `json:"message,omitempty"`
}

// RevokedWhileHeld is the reason a held output of a revoked grant is withheld.
const RevokedWhileHeld = "the grant was revoked while the output waited for review; it is never released"

// MayReview is the four-eyes rule, enforced whatever the policy says (and 双人复核: a second
// reviewer differs from the first): a reviewer is never the job's submitter, never of the
// applicant's organisation, and never reviews a job twice.
func MayReview(by provenance.Principal, j Job) error {
	switch {
	case by.Name == j.SubmittedBy:
		return errcode.New(errcode.SeparationOfDuties, "a job is never reviewed by its submitter")
	case by.Org == j.Org:
		return errcode.New(errcode.SeparationOfDuties, "a job is never reviewed by the applicant's own organisation (%s)", j.Org)
	}
	if j.Review != nil {
		for _, r := range j.Review.Reviews {
			if r.Reviewer == by.Name {
				return errcode.New(errcode.SeparationOfDuties, "%s has already reviewed this job; another reviewer must", by.Name)
			}
		}
	}
	return nil
}

// Decide records a reviewer's decision on a held job. Enough approvals release the result
// (recorded first); one rejection, or a revoked grant, withholds it for good.
func (s *Service) Decide(ctx context.Context, by provenance.Principal, j Job, approve bool, reason string) (Job, error) {
	if !approve && strings.TrimSpace(reason) == "" {
		return j, errcode.New(errcode.InvalidRequest, "a rejection gives its reason")
	}
	if j.State != api.JobInReview {
		return j, errcode.New(errcode.Conflict, "job %s is %s, not in review", j.ID, j.State)
	}
	if err := MayReview(by, j); err != nil {
		return j, err
	}
	g, err := s.store.Grant(ctx, j.Grant)
	if err != nil {
		return j, err
	}
	if approve && g.State == api.GrantSuspended {
		return j, errcode.New(errcode.GrantSuspended, "grant %s is suspended; its held outputs wait until it is resumed", g.ID)
	}
	decision := "reject"
	if approve {
		decision = "approve"
	}
	r := api.Review{Reviewer: by.Name, Org: by.Org, Decision: decision, Reason: reason, At: s.now().UTC()}
	if !approve || g.State == api.GrantRevoked {
		d := review{Approve: approve, Code: errcode.ReviewRejected, Reason: reason, Message: "a reviewer rejected the output: " + reason}
		if g.State == api.GrantRevoked {
			d.Code, d.Reason, d.Message = errcode.GrantRevoked, RevokedWhileHeld, RevokedWhileHeld
		}
		in, err := s.begin(ctx, ActionRejectOutput, j.ID, by, reason, d)
		if err != nil {
			return j, err
		}
		return s.withholdReviewed(ctx, in, j, r, d, false)
	}
	in, err := s.begin(ctx, ActionApproveOutput, j.ID, by, reason, review{Approve: true})
	if err != nil {
		return j, err
	}
	j, err = s.store.AddReview(ctx, j.ID, r, func(sj *Job) error {
		if err := s.holds.RecordReview(ctx, sj.ID, by, true, reason); err != nil {
			return err
		}
		now := s.now().UTC()
		var approvers []string
		for _, rv := range sj.Review.Reviews {
			if rv.Decision == "approve" {
				approvers = append(approvers, rv.Reviewer)
			}
		}
		if len(approvers) < sj.Review.Required {
			sj.UpdatedAt = now
			return nil
		}
		out, receipt, err := s.holds.Release(ctx, sj.ID, sj.Hold, sj.Output, approvers)
		if err != nil {
			return err
		}
		sj.Output, sj.State, sj.UpdatedAt, sj.Receipt = out, api.JobReleased, now, string(receipt)
		return nil
	})
	if err != nil {
		return j, s.rollBack(ctx, in, err, nil, false)
	}
	s.changed()
	if j.State == api.JobReleased {
		// The stored hold ends after the release is stored (the engine writes to the same
		// database). Should this fail, repeats of the query keep answering output_held with
		// this released job's id — nothing is withheld or released by it — until Reconcile
		// ends the hold and writes the outcome.
		if err := s.holds.EndHold(ctx, j.ID); err != nil {
			s.logger.Error("ending a released job's hold failed", "job", j.ID, "err", err)
			return j, nil
		}
	}
	return j, s.complete(ctx, in, nil, false)
}

// withholdReviewed ends a held job that a reviewer rejected, or whose grant was revoked
// meanwhile. The review and the decision are recorded, and the decision stored with the
// output (every repeat of the query then gets it, at no cost, and is never queued again),
// before the job is marked denied: should storing the job fail, the output is still never
// released, and Reconcile completes the rejection.
func (s *Service) withholdReviewed(ctx context.Context, in *provenance.GovernanceIntent, j Job, r api.Review, d review, reconciled bool) (Job, error) {
	if err := s.holds.RecordReview(ctx, j.ID, in.By, d.Approve, in.Reason); err != nil {
		return j, s.rollBack(ctx, in, err, nil, reconciled)
	}
	if err := s.holds.Withhold(ctx, j.ID, d.Code, d.Reason); err != nil {
		return j, s.rollBack(ctx, in, err, nil, reconciled)
	}
	return s.denyReviewed(ctx, in, j, r, d, reconciled)
}

// denyReviewed stores a withheld output's review and its job as denied, then the outcome.
func (s *Service) denyReviewed(ctx context.Context, in *provenance.GovernanceIntent, j Job, r api.Review, d review, reconciled bool) (Job, error) {
	j, err := s.store.AddReview(ctx, j.ID, r, func(sj *Job) error {
		sj.State, sj.UpdatedAt = api.JobDenied, s.now().UTC()
		sj.Error = &api.Error{Code: string(d.Code), Message: d.Message}
		return nil
	})
	if err != nil {
		return j, err // withheld for good already; Reconcile stores it
	}
	s.changed()
	return j, s.complete(ctx, in, nil, reconciled)
}

// withholdHeld ends every held job of a revoked grant: cooperation ended, so its outputs are
// never released (recorded first, then the job is denied).
func (s *Service) withholdHeld(ctx context.Context, grant string) error {
	held, err := s.store.Jobs(ctx, JobFilter{Grant: grant, State: api.JobInReview})
	if err != nil {
		return err
	}
	for _, j := range held {
		if err := s.holds.Withhold(ctx, j.ID, errcode.GrantRevoked, RevokedWhileHeld); err != nil && errcode.Of(err) != errcode.Conflict {
			return err // conflict: a reviewer settled it meanwhile
		}
		_, err := s.store.UpdateJob(ctx, j.ID, []string{api.JobInReview}, func(sj *Job) error {
			sj.State, sj.UpdatedAt = api.JobDenied, s.now().UTC()
			sj.Error = &api.Error{Code: string(errcode.GrantRevoked), Message: RevokedWhileHeld}
			return nil
		})
		if err != nil && !errors.Is(err, ErrConflict) { // a reviewer settled it meanwhile
			return err
		}
	}
	if len(held) > 0 {
		s.changed()
	}
	return nil
}

// decodeDetail reads an intent's detail into v.
func decodeDetail(in *provenance.GovernanceIntent, v any) error {
	if in.Detail.IsNull() {
		return nil
	}
	raw, err := in.Detail.Raw()
	if err != nil {
		return err
	}
	return json.Unmarshal(raw, v)
}
