package engine

import (
	"context"
	"errors"

	"github.com/c1b99f93/cleanroom/engine/ledger"
	"github.com/c1b99f93/cleanroom/errcode"
)

// Decisions that stick. A repeat of a query — the same fingerprint, whatever its aliases,
// ORDER BY or LIMIT — is answered from the first computation's stored output (cache.go), so
// a decision on that output must answer every such repeat, or an applicant could resubmit
// until some reviewer agreed:
//
//   - held for review: a repeat is refused with output_held, naming the held job, and is not
//     queued (no second entry for other reviewers to approve); the held job's decision will be
//     the answer;
//   - rejected by a reviewer, or withheld because the grant was revoked: a repeat is refused
//     with review_rejected (or grant_revoked) and the reason, and never reviewed again;
//   - denied by the egress policy: a repeat is refused with egress_denied and the reasons;
//   - released after review: a repeat is reviewed as usual (it may be held again).
//
// A repeat refused this way runs nothing and costs nothing. The decision is kept in the
// control-plane store (ledger.Decision, which survives a restart) and recorded in provenance
// ("output_decision" when it is made, "decision_recalled" when it answers a repeat).

// recalledRefusal is the refusal of a repeat answered by a decision that sticks (nothing ran,
// nothing is charged).
func recalledRefusal(d ledger.Decision) error {
	reason := d.Reason
	if reason == "" {
		reason = "no reason was given"
	}
	switch d.State {
	case ledger.DecisionHeld:
		return errcode.New(errcode.OutputHeld, "this query's output is held for review as job %s; it is not queued again (whatever its aliases, ORDER BY or LIMIT): job %s's decision will be its answer; nothing was charged", d.Job, d.Job)
	case ledger.DecisionRejected:
		return errcode.New(orCode(d.Code, errcode.ReviewRejected), "a reviewer rejected this query's output as job %s (%s); it is not released or reviewed again, whatever its aliases, ORDER BY or LIMIT; nothing was charged", d.Job, reason)
	case ledger.DecisionWithheld:
		return errcode.New(orCode(d.Code, errcode.GrantRevoked), "this query's output was withheld for good as job %s (%s); nothing was charged", d.Job, reason)
	}
	return errcode.New(orCode(d.Code, errcode.EgressDenied), "the output was withheld by egress review as job %s: %s; it is not reviewed again, whatever its aliases, ORDER BY or LIMIT; nothing was charged", d.Job, reason)
}

func orCode(code, def errcode.Code) errcode.Code {
	if code != "" {
		return code
	}
	return def
}

// EndHold ends the hold of a held output that ReleaseHeld released: from now on a repeat of
// the query is reviewed as usual (it may be held again). Call it once the release is stored,
// outside any transaction on the control-plane store (it writes there). Until it is called, a
// repeat is answered with output_held naming the released job, which the applicant can read:
// a failure here withholds nothing and releases nothing.
func (e *Engine) EndHold(ctx context.Context, job string) error {
	return e.settleHeld(ctx, job, ledger.Decision{State: ledger.DecisionReleased})
}

// holdOpen refuses (conflict) to release job's output when its stored hold was settled as a
// refusal: a rejected or withheld output is never released, whoever approves it later. It
// only reads, so it may run inside a transaction of the governance store.
func (e *Engine) holdOpen(ctx context.Context, job string) error {
	d, ok, err := e.ledger.DecisionOfJob(ctx, job)
	if err != nil {
		return errcode.Wrap(errcode.Internal, err, "the decision on the output of job %s could not be read; nothing is released", job)
	}
	if ok && d.State != ledger.DecisionHeld && d.State != ledger.DecisionReleased {
		return errcode.New(errcode.Conflict, "the output of job %s was %s; it is never released", job, d.State)
	}
	return nil
}

// settleHeld ends job's stored hold. A hold already settled as a refusal cannot be released.
func (e *Engine) settleHeld(ctx context.Context, job string, d ledger.Decision) error {
	if _, err := e.ledger.SettleHeld(ctx, job, d); err != nil {
		if errors.Is(err, ledger.ErrDecided) {
			return errcode.Wrap(errcode.Conflict, err, "the output of job %s was already decided; it is not released", job)
		}
		return errcode.Wrap(errcode.Internal, err, "the decision on the output of job %s could not be stored", job)
	}
	return nil
}
