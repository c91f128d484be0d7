package engine

import (
	"context"
	"fmt"
	"math"

	"github.com/c1b99f93/cleanroom/dp"
	"github.com/c1b99f93/cleanroom/engine/ledger"
	"github.com/c1b99f93/cleanroom/engine/plan"
	"github.com/c1b99f93/cleanroom/policy"
	"github.com/c1b99f93/cleanroom/sandbox/wire"
)

// Explanation is a dry run of a job: the bounded plan the worker would run, each aggregate's
// mechanism and expected error, and what the job would cost — computed without reading data or
// touching the budget.
type Explanation struct {
	Dataset   string            `json:"dataset"`
	Snapshots map[string]string `json:"snapshots"`
	Plan      wire.Plan         `json:"plan"`
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

// Explain runs a job's dry-run stages (gate, plan, access policy) exactly as Run would, then
// stops before the budget and the worker: nothing is reserved, read or recorded. A denial by
// the access policy is reported as the policy's decision, not as an error.
func (e *Engine) Explain(ctx context.Context, j Job) (*Explanation, error) {
	opts := e.options(ctx, j)
	s := &jobState{job: j, opts: opts, dryRun: true}
	if err := e.runStages(ctx, sqlStages(), s); err != nil && (s.decision == nil || s.decision.Allowed()) {
		return nil, err
	}
	q, ds, p, access := s.q, s.ds, s.p, *s.decision
	x := &Explanation{Dataset: ds.name(), Snapshots: ds.snapshots(), Plan: p.Worker, PublicPartitions: p.Public,
		Cost: p.Cost, Split: p.Split, Bounds: boundsText(ds, p), Policy: access}
	for i, s := range p.Worker.Aggregates {
		a := ExplainedAggregate{Name: aggregateName(p, i), Kind: s.Kind, Mechanism: s.Mechanism(), Epsilon: s.Epsilon,
			Delta: s.Delta, Components: s.Components()}
		if s.Kind != dp.Count && s.Kind != dp.CountDistinct {
			lo, hi := s.Lower, s.Upper
			a.Lower, a.Upper = &lo, &hi
		}
		a.ExpectedError, a.Note = expectedError(s)
		x.Aggregates = append(x.Aggregates, a)
	}
	if fp, err := fingerprintOf(j.Grant, q, ds, opts); err == nil {
		if prior, ok, err := e.ledger.Recall(ctx, j.Grant, fp); err == nil && ok {
			x.AnsweredFromRelease = prior.Job
			x.Cost = plan.Cost{}
		}
	}
	for _, acct := range ds.accounts(j.Grant) {
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

func boundsText(ds sources, p *plan.Planned) string {
	after := ""
	if r := p.Worker.Relation; r != nil && r.PerUnit {
		after = " of the per-unit subquery"
	} else if r != nil {
		after = " of the join"
	}
	auto := ""
	if a := p.Auto; a != nil {
		auto = fmt.Sprintf(" (chosen under DP from histograms of contributions, within the operator's maxima of %d group(s) and %d row(s))", a.MaxGroups, a.MaxRows)
	}
	return fmt.Sprintf("each %s contributes to at most %d group(s) and at most %d row(s)%s per group%s; values clamped to their bounds",
		ds.primary().Spec.PrivacyUnit, p.Worker.Bounds.MaxGroupsContributed, p.Worker.Bounds.MaxContributionsPerGroup, after, auto)
}
