package sandbox

import (
	"math"
	"testing"

	"github.com/c1b99f93/cleanroom/dp"
	"github.com/c1b99f93/cleanroom/sandbox/wire"
)

// runExtras runs one batch through a pass set up with the plan's profile or bias counts.
func runExtras(t *testing.T, p *wire.Plan, rows []row) *boundPass {
	t.Helper()
	b, err := newPass(p, 0, 10, 10, nil)
	if err != nil {
		t.Fatal(err)
	}
	var next int64
	rec := batch(t, rows, &next)
	defer rec.Release()
	if err := b.add(rec); err != nil {
		t.Fatal(err)
	}
	if err := b.finish(); err != nil {
		t.Fatal(err)
	}
	return b
}

// released reads a count's state at an epsilon so large that the noise (Laplace scale 0.01 or
// less) cannot move it by 0.5: the pre-noise value, for the test.
func released(t *testing.T, s dp.Spec, acc dp.Accumulator) float64 {
	t.Helper()
	var enc []byte
	if acc != nil {
		var err error
		if enc, err = acc.Encode(); err != nil {
			t.Fatal(err)
		}
	}
	r, err := s.Release(enc)
	if err != nil {
		t.Fatal(err)
	}
	return r[0].Value
}

// The bounding pass counts, per unit at most once each: units, units with dropped rows, the
// units' dropped fractions, and units with a value clamped by an aggregate.
func TestBoundPassCountsWhatBoundingDropsAndClamps(t *testing.T) {
	p := testPlan(1, 2)
	p.Selection = nil
	count := dp.Spec{Kind: dp.CountDistinct, Value: -1, Epsilon: 100, MaxPartitions: 1, MaxPerPartition: 1}
	p.Bias = &wire.BiasSpecs{Count: count, DroppedFraction: dp.Spec{Kind: dp.Sum, Value: 0, Lower: 0, Upper: 1, Epsilon: 100, MaxPartitions: 1, MaxPerPartition: 1},
		Clamped: []dp.Spec{count}, ClampedAggregates: []int{1}}
	b := runExtras(t, p, []row{
		{0, "a", 150}, {0, "a", 150}, {0, "a", 150}, // 3 rows in one group, L∞ 2: a third dropped; values above 100
		{1, "a", 10},               // nothing dropped or clamped
		{2, "a", 10}, {2, "b", 10}, // two groups, L0 1: half dropped
	})
	if got := released(t, count, b.bias.units); got != 3 {
		t.Errorf("units %v, want 3", got)
	}
	if got := released(t, count, b.bias.dropping); got != 2 {
		t.Errorf("units with dropped rows %v, want 2", got)
	}
	if got := released(t, p.Bias.DroppedFraction, b.bias.fraction); math.Abs(got-(1.0/3+1.0/2)) > 0.2 {
		t.Errorf("dropped fractions sum to %v, want 5/6", got)
	}
	if got := released(t, count, b.bias.clamped[0]); got != 1 {
		t.Errorf("units with a clamped value %v, want 1", got)
	}
}

// A profile puts each unit in exactly one bin of each histogram: its number of groups, and its
// rows in one group.
func TestProfilePutsEachUnitInOneBinOfEachHistogram(t *testing.T) {
	p := testPlan(1, 1)
	p.Selection, p.Aggregates, p.Values = nil, nil, nil
	spec := dp.Spec{Kind: dp.CountDistinct, Value: -1, Epsilon: 100, MaxPartitions: 2, MaxPerPartition: 1}
	p.Profile = &wire.Profile{MaxGroups: 4, MaxRows: 4, Spec: spec}
	b := runExtras(t, p, []row{
		{0, "a", 0}, {0, "a", 0}, {0, "a", 0},
		{1, "a", 0},
		{2, "a", 0}, {2, "b", 0},
		{3, "a", 0}, {3, "b", 0}, {3, "c", 0}, {3, "d", 0}, {3, "e", 0},
	})
	want := map[string]float64{"groups/1": 2, "groups/2": 1, "groups/over": 1, "rows/1": 3, "rows/4": 1}
	for name, acc := range b.profile {
		if got := released(t, spec, acc); got != want[name] {
			t.Errorf("bin %s: %v units, want %v", name, got, want[name])
		}
		delete(want, name)
	}
	if len(want) > 0 {
		t.Errorf("bins missing: %v", want)
	}
}
