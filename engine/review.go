package engine

import (
	"context"

	"github.com/c1b99f93/cleanroom/engine/ledger"
	"github.com/c1b99f93/cleanroom/engine/plan"
	"github.com/c1b99f93/cleanroom/engine/provenance"
	"github.com/c1b99f93/cleanroom/errcode"
	"github.com/c1b99f93/cleanroom/policy"
	"github.com/c1b99f93/cleanroom/server/api"
)

// Review is a reviewer's decision on a held result. Reason must not quote data values; it is
// shown to the applicant and kept in provenance.
type Review struct {
	Reviewer policy.Principal `json:"reviewer"`
	Approve  bool             `json:"approve"`
	Reason   string           `json:"reason,omitempty"`
}

// RecordReview appends a reviewer's decision on a held job to provenance. Who may review, and
// how many approvals a hold needs, is the governance layer's business; this only records.
func (e *Engine) RecordReview(ctx context.Context, job string, r Review) error {
	_, err := e.record(ctx, job, &provenance.Review{Reviewer: provenance.Principal(r.Reviewer), Approve: r.Approve, Reason: r.Reason})
	return err
}

// ReleaseHeld releases a held result after its approving reviews: the result must be the one
// held (its digest is checked against the hold's) and not rejected or withheld meanwhile
// (conflict), the release is recorded with the reviewers, the result is stamped with the
// release's log index, and the signed receipt is returned. It writes nothing to the
// control-plane store, so it may run inside the governance store's transaction; once the
// release is stored, the caller ends the hold with EndHold. A held model is released with
// ReleaseHeldModel.
func (e *Engine) ReleaseHeld(ctx context.Context, job string, hold *Hold, res *Result, reviewers []string) ([]byte, error) {
	if hold.Kind != "" {
		return nil, errcode.New(errcode.Internal, "job %s holds a %s output, not a result; nothing is released", job, hold.Kind)
	}
	res.LogIndex = 0 // the digest covers the result as held, before it had a release index
	digest, err := e.heldOutput(ctx, job, hold, res)
	if err != nil {
		return nil, err
	}
	return e.recordRelease(ctx, job, hold.Grant, res, digest, &provenance.Release{OutputDigest: digest, Rows: len(res.Rows), Reviewers: reviewers}, reviewers)
}

// ReleaseHeldModel is ReleaseHeld for a held model (hold.Kind KindModel): the model must be
// the one held, digest for digest, and not rejected or withheld meanwhile; the release is
// recorded with the reviewers and the model stamped with its log index; the signed receipt is
// returned.
func (e *Engine) ReleaseHeldModel(ctx context.Context, job string, hold *Hold, res *api.ModelResult, reviewers []string) ([]byte, error) {
	if hold.Kind != KindModel {
		return nil, errcode.New(errcode.Internal, "job %s holds no model; nothing is released", job)
	}
	res.LogIndex = 0
	digest, err := e.heldOutput(ctx, job, hold, res)
	if err != nil {
		return nil, err
	}
	ent, err := e.record(ctx, job, &provenance.Release{OutputDigest: digest, Rows: 1, Reviewers: reviewers})
	if err != nil {
		return nil, err
	}
	res.LogIndex = ent.Index
	return e.modelReceipt(ctx, hold.Grant, res, digest, reviewers)
}

// heldOutput checks that out is exactly the output held (its canonical digest is the hold's)
// and that the hold was not settled as a refusal; it returns the digest.
func (e *Engine) heldOutput(ctx context.Context, job string, hold *Hold, out any) (string, error) {
	digest, err := canonicalDigest(out)
	if err != nil {
		return "", errcode.Wrap(errcode.Internal, err, "the held output of job %s could not be encoded; nothing is released", job)
	}
	if digest != hold.OutputDigest {
		return "", errcode.New(errcode.Internal, "the stored result of job %s does not match the held output; nothing is released", job)
	}
	// A hold that was already rejected or withheld is never released. (The stored hold ends
	// with EndHold, once the caller has stored the release.)
	if err := e.holdOpen(ctx, job); err != nil {
		return "", err
	}
	return digest, nil
}

// Withhold records that a held result will never be released (a reviewer rejected it, code
// review_rejected, or the grant was revoked while it waited, grant_revoked), and makes that
// the decision on the output: every repeat of the query — whatever its aliases, ORDER BY or
// LIMIT — is refused with code and reason at no cost, and never reviewed again. Reason is
// shown to the applicant and kept in provenance; it must not quote data values.
func (e *Engine) Withhold(ctx context.Context, job string, code errcode.Code, reason string) error {
	state := ledger.DecisionWithheld
	if code == errcode.ReviewRejected {
		state = ledger.DecisionRejected
	}
	if d, ok, err := e.ledger.DecisionOfJob(ctx, job); err != nil {
		return errcode.Wrap(errcode.Internal, err, "the decision on the output of job %s could not be read", job)
	} else if ok && d.State != ledger.DecisionHeld && d.State != state {
		return errcode.New(errcode.Conflict, "the output of job %s was already %s", job, d.State)
	}
	if _, err := e.record(ctx, job, &provenance.Withheld{Code: string(code), Reason: reason}); err != nil {
		return err
	}
	return e.settleHeld(ctx, job, ledger.Decision{State: state, Code: code, Reason: reason})
}

// Record appends a governance event (application, grant state, a red-team report, ...) of job
// ("" for none) to provenance before the caller acts on it, and returns the record's log index.
// Events hold names and parameters, never data values; their types are provenance's registry.
func (e *Engine) Record(ctx context.Context, job string, ev provenance.Event) (uint64, error) {
	ent, err := e.record(ctx, job, ev)
	return ent.Index, err
}

// ReconcileInterrupted makes the log show what the ledger reserved for a job a previous
// process left running: when the process died after the ledger reserved for the job and
// before budget_reserved was appended, it appends that record now, from the ledger, marked
// reconciled. Call it before the job's job_interrupted record. A job the ledger never reserved
// for, or whose reservation is recorded, is left as it is.
func (e *Engine) ReconcileInterrupted(ctx context.Context, job string) error {
	r, ok, err := e.ledger.Reservation(ctx, job)
	if err != nil || !ok {
		return err
	}
	ents, err := provenance.ReadJob(e.logPath, job)
	if err != nil {
		return err
	}
	for _, ent := range ents {
		rec, err := ent.Decode()
		if err != nil {
			return err
		}
		if rec.Type == provenance.TypeBudgetReserved {
			return nil
		}
	}
	_, err = e.record(ctx, job, &provenance.BudgetReserved{Accounts: r.Accounts, Reconciled: true,
		Cost: provenance.DocOf(plan.Cost{Epsilon: r.Cost.Epsilon, Delta: r.Cost.Delta})})
	return err
}
