package engine

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/c1b99f93/cleanroom/engine/accountant"
	"github.com/c1b99f93/cleanroom/engine/ledger"
)

// BudgetReport is an account's balance, its per-job history and, beside the basic
// composition the ledger enforces, a tighter bound over the same debits (for information).
type BudgetReport struct {
	Balance ledger.Balance    `json:"balance"`
	History []ledger.Entry    `json:"history"`
	Tighter accountant.Report `json:"accounting"`
}

// Budget reports an account (GrantAccount or DatasetAccount). Reserved and debited jobs are
// composed (a reservation left by a crash counts as spent); refunded ones are not.
func (e *Engine) Budget(ctx context.Context, account string) (*BudgetReport, error) {
	bal, err := e.ledger.Balance(ctx, account)
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
	return &BudgetReport{Balance: bal, History: hist, Tighter: rep}, nil
}
