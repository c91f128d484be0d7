package engine

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/c1b99f93/cleanroom/engine/ledger"
	"github.com/c1b99f93/cleanroom/engine/plan"
	"github.com/c1b99f93/cleanroom/engine/provenance"
	"github.com/c1b99f93/cleanroom/errcode"
)

// phase is how far a job has gone with the budget; it alone decides what a failure costs.
type phase int

const (
	// phaseFree: nothing is reserved; a refusal costs nothing.
	phaseFree phase = iota
	// phaseReserved: the budget is reserved and no row has been read; a failure is refunded.
	phaseReserved
	// phaseReading: rows are being (or were) read; a failure could depend on the data, so it
	// stays charged — unless the worker says it stopped before reading (readNothing).
	phaseReading
	// phaseDebited: the debit is final; a failure releases nothing and costs nothing more.
	phaseDebited
)

var phaseNames = [...]string{"free", "reserved", "reading", "debited"}

func (p phase) String() string { return phaseNames[p] }

// stage is one named step of a job kind. Its function does the step's work on the job's
// state and returns the events that say what it decided; the runner writes them, in order,
// before the next stage begins, and alone decides from the job's phase what a failure costs.
type stage struct {
	name string
	// enters is the phase the job is in from the moment the stage begins (the zero phase
	// keeps the current one): execution enters phaseReading before the worker reads a row.
	enters phase
	// reaches is the phase the job is in once the stage's work succeeded, before its events
	// are written (zero keeps it): the reservation reaches phaseReserved, the debit
	// phaseDebited.
	reaches phase
	// dryRun marks the stages an explanation runs: they read no data, touch no budget and,
	// in a dry run, record nothing.
	dryRun bool
	// local marks a stage that may run while the job's earlier records are not yet durable:
	// it acts on nothing outside the job's state and the log, or only on what a machine crash
	// that lost those records leaves harmless (the plan's note of a filter only makes later
	// differencing checks stricter). The runner fsyncs the log before every other stage and
	// when the job ends, so nothing outside the log — the ledger, the worker, the caller —
	// acts on a record a crash could lose; a repeat's records cost one fsync, not one each.
	local bool
	// skip, when set, says the stage does not apply to this job (an answer from an earlier
	// release skips the budget and the worker).
	skip func(*jobState) bool
	// records are the events the stage may write (prototypes, for their types): the runner
	// refuses any other, so the documented list stays true.
	records []provenance.Event
	// run does the stage's work. Events it returns are written even when it also returns an
	// error (a policy denial is recorded, then the job ends).
	run func(context.Context, *Engine, *jobState) ([]provenance.Event, error)
	// replay, when set, re-checks what the stage recorded (Engine.Replay walks the list).
	replay func(context.Context, *Engine, *replayState)
	// doc is the stage's one-line description, in the package doc and docs/architecture.md.
	doc string
}

// runStages runs a job kind's stages in order over s. On a failure it ends the job: it
// refunds or charges the reservation as the job's phase says, and writes job_refused (nothing
// was reserved) or job_failed.
func (e *Engine) runStages(ctx context.Context, stages []stage, s *jobState) error {
	defer s.cleanup()
	for _, st := range stages {
		if st.skip != nil && st.skip(s) {
			continue
		}
		if s.dryRun && !st.dryRun {
			return nil
		}
		if !st.local && !s.dryRun {
			if err := e.syncLog(ctx); err != nil {
				return e.endJob(ctx, s, err)
			}
		}
		if st.enters != 0 {
			s.phase = st.enters
		}
		evs, err := st.run(ctx, e, s)
		if err == nil && st.reaches != 0 {
			s.phase = st.reaches
		}
		if !s.dryRun {
			for _, ev := range evs {
				if !declared(st, ev) {
					err = errors.Join(err, errcode.New(errcode.Internal, "stage %s wrote an undeclared %s record; nothing was released", st.name, ev.EventType()))
					break
				}
				ent, rerr := e.recordDeferred(ctx, s.id, ev)
				if rerr != nil {
					err = errors.Join(err, rerr)
					break
				}
				s.last = ent
			}
		}
		if err != nil {
			if s.dryRun {
				return err
			}
			return e.endJob(ctx, s, err)
		}
	}
	if s.dryRun {
		return nil
	}
	if err := e.syncLog(ctx); err != nil {
		return e.endJob(ctx, s, err)
	}
	return nil
}

func declared(st stage, ev provenance.Event) bool {
	for _, r := range st.records {
		if r.EventType() == ev.EventType() {
			return true
		}
	}
	return false
}

// endJob settles the budget of a job that failed in its current phase and records how it
// ended. The returned error is the cause, joined with any failure to settle or record.
func (e *Engine) endJob(ctx context.Context, s *jobState, cause error) error {
	ctx = context.WithoutCancel(ctx)
	err := cause
	// The job's deferred records become durable before the ledger settles (its write barrier
	// syncs the log), and job_refused or job_failed is written durably below.
	switch s.phase {
	case phaseReserved:
		err = e.refund(ctx, s.id, cause)
	case phaseReading:
		if readNothing(cause) {
			err = e.refund(ctx, s.id, cause)
		} else {
			err = e.charge(ctx, s.id, cause)
		}
	}
	pub := errcode.Public(cause)
	end := provenance.JobEnd{Code: string(pub.Code), Message: pub.Message, Position: pub.Position}
	var ev provenance.Event = &provenance.JobRefused{JobEnd: end}
	if s.phase != phaseFree {
		ev = &provenance.JobFailed{JobEnd: end}
	}
	if _, rerr := e.record(ctx, s.id, ev); rerr != nil {
		return errors.Join(err, rerr)
	}
	return err
}

// readNothing says a worker failure happened before any row was read (the plan was invalid,
// or a custom model's module failed its trial instantiation) or was the applicant's own
// cancellation: nothing about the data was learned.
func readNothing(err error) bool {
	switch errcode.Of(err) {
	case errcode.QueryInvalid, errcode.Canceled, errcode.WasmInvalidModule:
		return true
	}
	return false
}

// charge makes a reservation final after a failure that may depend on the data; nothing was
// released.
func (e *Engine) charge(ctx context.Context, id string, cause error) error {
	if err := e.ledger.Commit(ctx, id); err != nil {
		return errors.Join(cause, err)
	}
	if _, err := e.record(ctx, id, &provenance.BudgetDebited{Reason: string(errcode.Of(cause)), Released: new(bool)}); err != nil {
		return errors.Join(cause, err)
	}
	return cause
}

// refund returns a reservation after a failure that released nothing and read no data.
func (e *Engine) refund(ctx context.Context, id string, cause error) error {
	if err := e.ledger.Refund(ctx, id, string(errcode.Of(cause))); err != nil {
		return errors.Join(cause, err)
	}
	if _, err := e.record(ctx, id, &provenance.BudgetRefunded{Reason: string(errcode.Of(cause))}); err != nil {
		return errors.Join(cause, err)
	}
	return cause
}

// jobKinds are the stage lists by job kind, as job_submitted names it (an empty kind is SQL:
// logs written before job kinds existed hold only SQL jobs).
func jobKinds() map[string][]stage {
	return map[string][]stage{KindSQL: sqlStages(), KindVerify: verifyStages(), KindFederated: federatedStages(), KindModel: modelStages(),
		KindWasm: wasmStages()}
}

// KindSQL is the kind of a DP SQL job.
const KindSQL = "sql"

// reserveCost reserves cost on the job's accounts — the grant and every dataset it reads — with
// the mechanism record mech (the ledger's entry, for the accountant). what names the job in a
// refusal ("job", "model", …); hint, when not nil, says from what is left what would still run.
func (e *Engine) reserveCost(ctx context.Context, s *jobState, cost plan.Cost, mech any, what string, hint func(left ledger.Budget) string) ([]provenance.Event, error) {
	record, _ := json.Marshal(mech)
	accounts := s.ds.accounts(s.job.Grant)
	if err := e.ledger.Reserve(ctx, s.id, accounts, ledger.Budget{Epsilon: cost.Epsilon, Delta: cost.Delta}, record); err != nil {
		var ex *ledger.ExhaustedError
		switch {
		case errors.As(err, &ex):
			more := ""
			if hint != nil {
				more = hint(ex.Remaining)
			}
			return nil, errcode.Wrap(errcode.BudgetExhausted, err,
				"the budget of %s cannot cover this %s (needs epsilon %.4g, delta %.3g; remaining epsilon %.4g, delta %.3g); nothing was run or charged%s",
				ex.Account, what, cost.Epsilon, cost.Delta, ex.Remaining.Epsilon, ex.Remaining.Delta, more)
		case errors.Is(err, ledger.ErrUnknownAccount):
			return nil, errcode.Wrap(errcode.PolicyDenied, err, "grant %q has no budget account", s.job.Grant)
		}
		return nil, errcode.Wrap(errcode.Internal, err, "the budget ledger is unavailable")
	}
	return events(&provenance.BudgetReserved{Accounts: accounts, Cost: provenance.DocOf(cost)}), nil
}

// debitCost makes the job's reservation final, before anything is released.
func (e *Engine) debitCost(ctx context.Context, s *jobState, cost plan.Cost) ([]provenance.Event, error) {
	if err := e.ledger.Commit(ctx, s.id); err != nil {
		return nil, errcode.Wrap(errcode.Internal, err, "the budget could not be debited; nothing was released")
	}
	return events(&provenance.BudgetDebited{Cost: ptr(provenance.DocOf(cost))}), nil
}
