package engine

import (
	"context"

	"github.com/c1b99f93/cleanroom/engine/plan"
	"github.com/c1b99f93/cleanroom/errcode"
	"github.com/c1b99f93/cleanroom/policy/screen"
)

// jobScreener returns the output screen for one job over the datasets ds: its options
// depend on the job (the raw values of the datasets it touched, the plan's minimum of units
// per group, the noisy counts of its differencing checks).
func (e *Engine) jobScreener(ctx context.Context, ds sources, p *plan.Planned, probes []screen.DifferenceProbe) (*screen.Screener, error) {
	// The raw values of every dataset the job read, as keyed hashes built by the worker.
	raw, err := e.rawSets(ctx, ds)
	if err != nil {
		return nil, err
	}
	opts := []screen.Option{
		screen.WithLimits(screen.Limits{MinUnitsPerGroup: p.MinUnitsPerGroup}),
		screen.WithDifferencing(e.policy.Params().DifferencingMinUnits, probes),
		screen.WithRawValues(e.raw.keyer, raw),
	}
	r, err := screen.New(opts...)
	if err != nil {
		return nil, errcode.Wrap(errcode.Internal, err, "the output screen could not be set up; nothing was released")
	}
	return r, nil
}
