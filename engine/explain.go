package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"math"

	"github.com/c1b99f93/cleanroom/engine/accountant"
	"github.com/c1b99f93/cleanroom/engine/dp"
	"github.com/c1b99f93/cleanroom/engine/gate"
	"github.com/c1b99f93/cleanroom/engine/ledger"
	"github.com/c1b99f93/cleanroom/engine/plan"
	"github.com/c1b99f93/cleanroom/policy"
	"github.com/c1b99f93/cleanroom/sandbox"
)

// Explanation is a dry run of a job: the bounded plan the worker would run, each aggregate's
// mechanism and expected error, and what the job would cost — computed without reading data or
// touching the budget.
type Explanation struct {
	Dataset  string       `json:"dataset"`
	Snapshot string       `json:"snapshot"`
	Plan     sandbox.Plan `json:"plan"`
	// PublicPartitions says whether every declared key value is released (no selection).
	PublicPartitions bool                 `json:"public_partitions"`
	Aggregates       []ExplainedAggregate `json:"aggregates"`
	Cost             plan.Cost            `json:"cost"`
	Split            string               `json:"budget_split"`
	Bounds           string               `json:"bounds"`
	// AnsweredFromRelease is set when an identical query was already released on the grant:
	// submitting would return that answer and cost nothing.
	AnsweredFromRelease string           `json:"answered_from_release,omitempty"`
	Policy              policy.Decision  `json:"policy"`
	Budget              []ledger.Balance `json:"budget"`
}

// ExplainedAggregate is one aggregate of a dry run.
type ExplainedAggregate struct {
	Name      string  `json:"name"`
	Kind      dp.Kind `json:"kind"`
	Mechanism string  `json:"mechanism"`
	Epsilon   float64 `json:"epsilon"`
	Delta     float64 `json:"delta"`
	// Lower and Upper are the clamping bounds of each value (for kinds that read values).
	Lower *float64 `json:"lower,omitempty"`
	Upper *float64 `json:"upper,omitempty"`
	// Components are the elementary noise additions with their standard deviations.
	Components []dp.Component `json:"components"`
	// ExpectedError is the half-width of the 95% interval the noise alone gives, where it does
	// not depend on the data (counts and sums); Note says how to read it otherwise.
	ExpectedError *float64 `json:"expected_error_95,omitempty"`
	Note          string   `json:"note,omitempty"`
}

// Explain gates and plans a job and asks the access policy about it, exactly as Submit would,
// but stops before the budget and the worker: nothing is reserved, read or recorded.
func (e *Engine) Explain(ctx context.Context, j Job) (*Explanation, error) {
	opts := j.Options.Defaults()
	q, err := gate.Admit(ctx, e.parser, e, j.SQL)
	if err != nil {
		return nil, err
	}
	e.mu.RLock()
	ds := e.datasets[q.Dataset.Name]
	e.mu.RUnlock()
	p, err := plan.Build(q, ds.Snapshot.Digest, opts, 0)
	if err != nil {
		return nil, err
	}
	access, err := e.policy.Access(ctx, e.accessInput(j, ds, q, p, opts))
	if err != nil {
		return nil, err
	}
	x := &Explanation{Dataset: ds.Spec.Name, Snapshot: ds.Snapshot.Digest, Plan: p.Worker, PublicPartitions: p.Public,
		Cost: p.Cost, Split: p.Split, Bounds: boundsText(ds, p), Policy: access}
	x.Plan.SamplingKey = 0
	for i, s := range p.Worker.Aggregates {
		a := ExplainedAggregate{Name: q.Aggregates[i].Name, Kind: s.Kind, Mechanism: s.Mechanism(), Epsilon: s.Epsilon,
			Delta: s.Delta, Components: s.Components()}
		if s.Kind != dp.Count && s.Kind != dp.CountDistinct {
			lo, hi := s.Lower, s.Upper
			a.Lower, a.Upper = &lo, &hi
		}
		a.ExpectedError, a.Note = expectedError(s)
		x.Aggregates = append(x.Aggregates, a)
	}
	if fp, err := queryFingerprint(j.Grant, q, p); err == nil {
		if prior, ok, err := e.ledger.Recall(ctx, j.Grant, fp); err == nil && ok {
			x.AnsweredFromRelease = prior.Job
			x.Cost = plan.Cost{}
		}
	}
	for _, acct := range []string{GrantAccount(j.Grant), DatasetAccount(ds.Spec.Name)} {
		if b, err := e.ledger.Balance(ctx, acct); err == nil {
			x.Budget = append(x.Budget, b)
		}
	}
	return x, nil
}

// expectedError is the noise-only 95% half-width for counts and sums: the Laplace quantile
// b·ln(1/α) with b = σ/√2, or the Gaussian z·σ.
func expectedError(s dp.Spec) (*float64, string) {
	sigma := s.NoiseScale()
	var w float64
	if s.Delta == 0 {
		w = sigma / math.Sqrt2 * math.Log(1/(1-dp.Confidence))
	} else {
		w = math.Sqrt2 * math.Erfinv(dp.Confidence) * sigma
	}
	switch s.Kind {
	case dp.Count, dp.CountDistinct, dp.Sum:
		return &w, ""
	case dp.Mean:
		return nil, fmt.Sprintf("about ±%.4g/n for a group of n values (noisy sum over noisy count)", w)
	case dp.Variance, dp.StdDev:
		return nil, "shrinks as 1/n with the group's n values; the interval combines its count, sum and sum of squares"
	case dp.Quantiles:
		return nil, "the rank error is about ±(noise of up to 64 tree nodes)/n; small groups give wide intervals"
	}
	return nil, ""
}

func boundsText(ds *Dataset, p *plan.Planned) string {
	return fmt.Sprintf("each %s contributes to at most %d group(s) and at most %d row(s) per group; values clamped to catalog bounds",
		ds.Spec.PrivacyUnit, p.Worker.Bounds.MaxGroupsContributed, p.Worker.Bounds.MaxContributionsPerGroup)
}

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

// accessInput is the access policy's input for a job.
func (e *Engine) accessInput(j Job, ds *Dataset, q *gate.Query, p *plan.Planned, opts plan.Options) policy.AccessInput {
	dref := []policy.DatasetRef{{Name: ds.Spec.Name, Provider: ds.Spec.Provider, Grade: string(ds.Spec.Grade), Domain: ds.Spec.Domain, PrivacyUnit: ds.Spec.PrivacyUnit}}
	var uses []policy.ColumnUse
	for _, u := range q.Uses {
		uses = append(uses, e.columnUse(ds.Spec, u.Column, string(u.Usage)))
	}
	return policy.AccessInput{Principal: j.Principal, Action: policy.ActionSubmitJob, Datasets: dref, Columns: uses, Job: jobParams(opts, p)}
}

func jobParams(opts plan.Options, p *plan.Planned) policy.JobParams {
	return policy.JobParams{Kind: "sql", Epsilon: opts.Epsilon, Delta: opts.Delta,
		MaxGroupsContributed: int(opts.MaxGroupsContributed), MaxContributionsPerGroup: int(opts.MaxContributionsPerGroup), PublicPartitions: p.Public}
}
