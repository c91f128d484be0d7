package sandbox

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/c1b99f93/cleanroom/dp"
	"github.com/c1b99f93/cleanroom/sandbox/wire"
)

// tuningPlans are the two plans the engine sends to choose automatic bounds for COUNT(*),
// SUM(cost) by district (engine/plan ClampPlan and ProfilePlan, as a job records them): the
// clamping-bounds quantile tree of cost, one row per unit, and the contribution histograms
// (an L1 bound over the 14 public districts).
func tuningPlans(p *wire.Plan) (clamp, profile wire.Plan) {
	clamp = wire.Plan{Snapshot: p.Snapshot, Values: []*wire.Expr{wire.Col("", "cost")},
		Aggregates: []dp.Spec{{Kind: dp.Quantiles, Value: 0, Lower: 0, Upper: 50000, Ranks: []float64{0.01, 0.5, 0.9, 0.95, 0.99, 0.999},
			Epsilon: 0.1, MaxPartitions: 1, MaxPerPartition: 1}},
		Bounds: wire.Bounds{MaxGroupsContributed: 1, MaxContributionsPerGroup: 1}, SamplingKey: p.SamplingKey}
	rows := dp.Spec{Kind: dp.CountDistinct, Value: -1, Epsilon: 0.075, MaxPartitions: 1, MaxPerPartition: 1}
	profile = wire.Plan{Snapshot: p.Snapshot, Keys: p.Keys, Domains: p.Domains,
		Bounds:      wire.Bounds{MaxGroupsContributed: 14, MaxContributionsPerGroup: 100, MaxRowsPerUnit: 100},
		SamplingKey: p.SamplingKey,
		Profile: &wire.Profile{MaxGroups: 16, MaxRows: 128, TotalRows: true, RowsSpec: &rows,
			Spec: dp.Spec{Kind: dp.CountDistinct, Value: -1, Epsilon: 0.025, MaxPartitions: 1, MaxPerPartition: 1}}}
	return clamp, profile
}

// BenchmarkTuningPasses times the worker's passes for automatic bounds in-process: each
// tuning plan alone, and the execution at the bounds such a job chooses (an L1 bound of 100
// rows per unit), against the execution at fixed bounds (1 × 5).
func BenchmarkTuningPasses(b *testing.B) {
	w, _, p := benchWorker(b)
	ctx := context.Background()
	clamp, profile := tuningPlans(p)
	chosen := *p
	chosen.Bounds = wire.Bounds{MaxGroupsContributed: 1, MaxContributionsPerGroup: 100, MaxRowsPerUnit: 100}
	chosen.Aggregates = nil
	for _, s := range p.Aggregates {
		s.MaxPartitions, s.MaxPerPartition = chosen.Bounds.Calibration(s.Kind == dp.CountDistinct, false)
		chosen.Aggregates = append(chosen.Aggregates, s)
	}
	for _, c := range []struct {
		name string
		plan *wire.Plan
	}{{"execute_fixed", p}, {"execute_chosen", &chosen}, {"clamp", &clamp}, {"profile", &profile}} {
		b.Run(c.name, func(b *testing.B) {
			cpu0 := processCPU()
			for b.Loop() {
				if _, _, err := w.executePass(ctx, c.plan); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64((processCPU()-cpu0).Microseconds())/1e3/float64(b.N), "cpu-ms/op")
		})
	}
}

// processCPU is the CPU time this process has used, user and system, in all its threads
// (DuckDB's included): a figure that holds better than wall time on a shared machine.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
