package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/c1b99f93/cleanroom/dp/accountant"
	"github.com/c1b99f93/cleanroom/engine/ledger"
	"github.com/c1b99f93/cleanroom/engine/provenance"
	"github.com/c1b99f93/cleanroom/errcode"
	"github.com/c1b99f93/cleanroom/server/api"
)

// Closing reasons of a grant's allocations (CloseGrant).
const (
	CloseRevoked   = "revoked"
	CloseExpired   = "expired"
	CloseCancelled = "cancelled" // allocated, but the grant was never put in force
)

// OpenGrant opens a grant's budget account. Given the grant's datasets, it carves the grant's
// budget out of each one's lifetime budget (public lookup tables have none) in one ledger
// transaction, so no grant is in force without its allocation and two approvals racing for the
// last budget cannot both succeed: a dataset with too little left — after its other grants'
// allocations and any charges outside them — refuses the whole grant with
// dataset_budget_insufficient and nothing is allocated. The grant's jobs then spend from its
// allocation only. Without datasets the account is opened (or confirmed) with no allocation,
// and its jobs draw on the unallocated remainder of the datasets they read, as every grant did
// before allocations existed. The allocation is recorded in provenance; if the record cannot
// be written, the allocation is cancelled (returned whole) and the error returned.
func (e *Engine) OpenGrant(ctx context.Context, id string, b ledger.Budget, datasets ...string) error {
	var sources, names []string
	for _, name := range datasets {
		d, ok := e.Dataset(name)
		if !ok {
			return errcode.New(errcode.UnknownDataset, "no dataset named %q is registered", name)
		}
		if d.Spec.Public {
			continue
		}
		sources, names = append(sources, DatasetAccount(name)), append(names, name)
	}
	if len(sources) == 0 {
		if err := e.ledger.EnsureAccount(ctx, GrantAccount(id), b); err != nil {
			return err
		}
		_, err := e.record(ctx, "", &provenance.GrantOpened{Grant: id, Epsilon: b.Epsilon, Delta: b.Delta})
		return err
	}
	if err := e.ledger.Allocate(ctx, GrantAccount(id), b, sources); err != nil {
		var ins *ledger.InsufficientError
		if errors.As(err, &ins) {
			return errcode.Wrap(errcode.DatasetBudgetInsufficient, err,
				"dataset %s has epsilon %.6g, delta %.3g of its lifetime budget left to allocate; the grant asks for epsilon %.6g, delta %.3g; no grant was made",
				strings.TrimPrefix(ins.Account, datasetAccountPrefix), ins.Remaining.Epsilon, ins.Remaining.Delta, b.Epsilon, b.Delta)
		}
		if errors.Is(err, ledger.ErrInvalidBudget) {
			return errcode.Wrap(errcode.InvalidRequest, err, "the grant's budget is out of range")
		}
		return errcode.Wrap(errcode.Internal, err, "the budget ledger is unavailable; no grant was made")
	}
	if _, err := e.record(ctx, "", &provenance.BudgetAllocated{
		Grant: id, Epsilon: b.Epsilon, Delta: b.Delta, Datasets: names}); err != nil {
		if _, cerr := e.CloseGrant(context.WithoutCancel(ctx), id, CloseCancelled, true); cerr != nil {
			return errors.Join(err, cerr)
		}
		return err
	}
	return nil
}

// CloseGrant closes a grant's allocations for reason (CloseRevoked, CloseExpired,
// CloseCancelled). When returnUnspent, what the grant never spent goes back to each of its
// datasets and the grant can be charged nothing more; otherwise the datasets keep it allocated.
// Closing happens once: a grant already closed, or approved before allocations existed, is
// left as it is and nil is returned. The ledger keeps the return (amounts, reason, time) in the
// same transaction as the change; provenance records it after, as budget_returned.
func (e *Engine) CloseGrant(ctx context.Context, id, reason string, returnUnspent bool) (*ledger.Closing, error) {
	c, ok, err := e.ledger.CloseAllocations(ctx, GrantAccount(id), reason, returnUnspent)
	if err != nil {
		return nil, errcode.Wrap(errcode.Internal, err, "the budget ledger is unavailable")
	}
	if !ok {
		return nil, nil
	}
	names := make([]string, len(c.Sources))
	for i, s := range c.Sources {
		names[i] = strings.TrimPrefix(s, datasetAccountPrefix)
	}
	if _, err := e.record(ctx, "", &provenance.BudgetReturned{
		Grant: id, Reason: reason, ReturnUnspent: returnUnspent, Returned: provenance.DocOf(c.Returned), Kept: provenance.DocOf(c.Kept),
		Datasets: names}); err != nil {
		return &c, err
	}
	return &c, nil
}

// GrantBudget reports a grant's account (Budget of GrantAccount(id)).
func (e *Engine) GrantBudget(ctx context.Context, id string) (*api.BudgetReport, error) {
	return e.Budget(ctx, GrantAccount(id))
}

// GrantBalance is a grant's balance and the allocations it holds (none for a grant approved
// before allocations existed), without the history and accounting of GrantBudget.
func (e *Engine) GrantBalance(ctx context.Context, id string) (ledger.Balance, []ledger.Allocation, error) {
	bal, err := e.ledger.Balance(ctx, GrantAccount(id))
	if err != nil {
		return bal, nil, err
	}
	allocs, err := e.ledger.Allocations(ctx, GrantAccount(id))
	return bal, allocs, err
}

// AllocatedGrants lists the grants whose allocations are still open.
func (e *Engine) AllocatedGrants(ctx context.Context) ([]string, error) {
	holders, err := e.ledger.OpenHolders(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, h := range holders {
		if id, ok := strings.CutPrefix(h, grantAccountPrefix); ok {
			out = append(out, id)
		}
	}
	return out, nil
}

// Budget reports an account (GrantAccount or DatasetAccount) as the API's document: its
// balance, its allocations (a dataset's to its grants, or a grant's from its datasets), its
// per-job history and, beside the basic composition the ledger enforces, a tighter bound over
// the same debits (for information). Reserved and debited jobs are composed (a reservation
// left by a crash counts as spent); refunded ones are not.
func (e *Engine) Budget(ctx context.Context, account string) (*api.BudgetReport, error) {
	bal, err := e.ledger.Balance(ctx, account)
	if err != nil {
		return nil, err
	}
	allocs, err := e.ledger.Allocations(ctx, account)
	if err != nil {
		return nil, err
	}
	hist, err := e.ledger.History(ctx, account)
	if err != nil {
		return nil, err
	}
	var events []accountant.Event
	for _, h := range hist {
		if h.State == ledger.StateRefunded || len(h.Mechanism) == 0 {
			continue
		}
		var recs []mechanismRecord
		if err := json.Unmarshal(h.Mechanism, &recs); err != nil {
			return nil, fmt.Errorf("engine: job %s has an unreadable mechanism record: %w", h.Job, err)
		}
		for _, r := range recs {
			for _, c := range r.Components {
				events = append(events, accountant.Event{Mechanism: c.Mechanism, Epsilon: c.Epsilon, Delta: c.Delta,
					L0: c.L0, LInf: c.LInf, NoiseStddev: c.NoiseScale})
			}
		}
	}
	rep, err := accountant.Compose(events)
	if err != nil {
		return nil, err
	}
	return budgetReport(bal, allocs, hist, rep), nil
}

// budgetReport converts the ledger's and the accountant's records into the API's document.
func budgetReport(bal ledger.Balance, allocs []ledger.Allocation, hist []ledger.Entry, rep accountant.Report) *api.BudgetReport {
	out := &api.BudgetReport{
		Balance: api.LedgerBalance{Account: bal.Account, Total: api.Budget(bal.Total), Allocated: api.Budget(bal.Allocated),
			Spent: api.Budget(bal.Spent), Remaining: api.Budget(bal.Remaining), Reserved: api.Budget(bal.Reserved)},
		Tighter: api.AccountingReport{Basic: api.Budget(rep.Basic), Tighter: api.Budget(rep.Tighter), Method: rep.Method, Events: rep.Events},
	}
	if allocs != nil { // an empty list stays empty, none stays null
		out.Allocations = []api.LedgerAllocation{}
	}
	if hist != nil {
		out.History = []api.LedgerEntry{}
	}
	for _, a := range allocs {
		out.Allocations = append(out.Allocations, api.LedgerAllocation{Holder: a.Holder, Source: a.Source,
			Amount: api.Budget(a.Amount), Returned: api.Budget(a.Returned), Outstanding: api.Budget(a.Outstanding),
			Closed: a.Closed, CreatedAt: a.CreatedAt, UpdatedAt: a.UpdatedAt})
	}
	for _, h := range hist {
		out.History = append(out.History, api.LedgerEntry{Job: h.Job, Account: h.Account, Cost: api.Budget(h.Cost),
			State: h.State, Mechanism: h.Mechanism, Reason: h.Reason, CreatedAt: h.CreatedAt, UpdatedAt: h.UpdatedAt})
	}
	return out
}
