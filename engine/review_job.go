package engine

import (
	"context"

	"github.com/c1b99f93/cleanroom/engine/plan"
	"github.com/c1b99f93/cleanroom/errcode"
	"github.com/c1b99f93/cleanroom/policy/reviewer"
)

// jobReviewer returns the egress reviewer for one job over the datasets ds: its options
// depend on the job (the raw values of the datasets it touched, the plan's minimum of units
// per group, the noisy counts of its differencing checks).
func (e *Engine) jobReviewer(ctx context.Context, ds sources, p *plan.Planned, probes []reviewer.DifferenceProbe) (*reviewer.Reviewer, error) {
	// The raw values of every dataset the job read, as keyed hashes built by the worker.
	raw, err := e.rawSets(ctx, ds)
	if err != nil {
		return nil, err
	}
	opts := []reviewer.Option{
		reviewer.WithLimits(reviewer.Limits{MinUnitsPerGroup: p.MinUnitsPerGroup}),
		reviewer.WithDifferencing(e.policy.Params().DifferencingMinUnits, probes),
		reviewer.WithRawValues(e.raw.keyer, raw),
	}
	r, err := reviewer.New(opts...)
	if err != nil {
		return nil, errcode.Wrap(errcode.Internal, err, "the egress reviewer could not be set up; nothing was released")
	}
	return r, nil
}
