package sandbox

import (
	"math/rand/v2"
	"testing"

	"github.com/c1b99f93/cleanroom/dp"
	"github.com/c1b99f93/cleanroom/sandbox/wire"
)

// totalPlan is testPlan with an L1 bound: at most l0 groups, l∞ rows per group and c rows in
// all per unit, its mechanisms calibrated as the planner calibrates them.
func totalPlan(l0, lInf, c int64) *wire.Plan {
	p := testPlan(l0, lInf)
	p.Bounds.MaxRowsPerUnit = c
	for i := range p.Aggregates {
		p.Aggregates[i].MaxPartitions, p.Aggregates[i].MaxPerPartition = p.Bounds.Calibration(false, false)
	}
	p.Selection.MaxPartitions, _ = p.Bounds.Calibration(true, true)
	return p
}

// TestBoundPassKeepsAtMostCRowsPerUnitInAllGroups is the L1 bound's property test (seeded:
// math/rand PCG 3, 5): over random units with random rows in up to eight groups and random
// bounds, every unit keeps at most C rows in all, at most L∞ in a group and at most L0 groups;
// no unit keeps fewer than min(C, what L0 × L∞ alone keeps) (the cap drops only what it must);
// and which rows unit 0 keeps does not change when other units are added.
func TestBoundPassKeepsAtMostCRowsPerUnitInAllGroups(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 5))
	keys := []string{"a", "b", "c", "d", "e", "f", "A", "B"}
	for trial := range 200 {
		l0, lInf, c := 1+r.Int64N(8), 1+r.Int64N(12), 1+r.Int64N(40)
		var rows []row
		perUnit := map[int64]map[string]int64{}
		for u := int64(0); u < 20; u++ {
			perUnit[u] = map[string]int64{}
			for range r.IntN(60) {
				k := keys[r.IntN(1+r.IntN(len(keys)))]
				rows = append(rows, row{unit: u, key: k, val: float64(u)})
				perUnit[u][k]++
			}
		}
		kept := map[int64]int64{}
		groups := map[int64]int64{}
		// Each unit through a pass of its own (bounding depends only on the unit's rows), so
		// its kept rows are the partitions' plain totals.
		for u := int64(0); u < 20; u++ {
			var ur []row
			for _, x := range rows {
				if x.unit == u {
					ur = append(ur, x)
				}
			}
			if len(ur) == 0 {
				continue
			}
			for _, p := range runPass(t, totalPlan(l0, lInf, c), ur).parts {
				if p.rows > lInf {
					t.Fatalf("trial %d: unit %d kept %d rows in one group (L∞ %d)", trial, u, p.rows, lInf)
				}
				kept[u] += p.rows
				groups[u] += p.units
			}
		}
		for u, ks := range perUnit {
			var byL0L int64 // what L0 × L∞ alone keeps at least, over the unit's groups
			var sizes []int64
			for _, cnt := range ks {
				sizes = append(sizes, min(cnt, lInf))
			}
			// L0 keeps some l0 of the groups (by keyed rank, not by size): at least the l0
			// smallest capped sizes.
			for i := range sizes {
				for j := i + 1; j < len(sizes); j++ {
					if sizes[j] < sizes[i] {
						sizes[i], sizes[j] = sizes[j], sizes[i]
					}
				}
			}
			for i := 0; i < len(sizes) && int64(i) < l0; i++ {
				byL0L += sizes[i]
			}
			switch {
			case kept[u] > c:
				t.Fatalf("trial %d: unit %d kept %d rows in all (C %d)", trial, u, kept[u], c)
			case groups[u] > l0:
				t.Fatalf("trial %d: unit %d reached %d groups (L0 %d)", trial, u, groups[u], l0)
			case kept[u] < min(c, byL0L):
				t.Fatalf("trial %d: unit %d kept %d rows, fewer than min(C %d, %d)", trial, u, kept[u], c, byL0L)
			}
		}
	}
}

// TestTotalBoundChoiceDependsOnlyOnTheUnitsOwnRows: the rows the total cap keeps are chosen by
// the unit's own keyed ranks, so adding other units leaves unit 0's contribution as it was.
func TestTotalBoundChoiceDependsOnlyOnTheUnitsOwnRows(t *testing.T) {
	var base []row
	for i := range 30 {
		base = append(base, row{0, []string{"a", "b", "c"}[i%3], float64(i % 10)})
	}
	own := func(b *boundPass) map[string]float64 {
		out := map[string]float64{}
		for _, p := range b.parts {
			out[keyName(p.g)] = float64(int(p.sums[1]) % 100)
		}
		return out
	}
	p := totalPlan(3, 8, 7)
	one := own(runPass(t, p, base))
	two := own(runPass(t, p, base, []row{{1, "a", 1000}, {1, "b", 1000}, {1, "c", 1000}}))
	var rows int
	for k, v := range one {
		if two[k] != v {
			t.Fatalf("unit 0's contribution to %s changed from %v to %v when unit 1 was added", k, v, two[k])
		}
	}
	for _, pt := range runPass(t, p, base).parts {
		rows += int(pt.rows)
	}
	if rows != 7 {
		t.Fatalf("unit 0 kept %d rows, want C = 7", rows)
	}
}

// TestWorkerRefusesAMechanismCalibratedBelowItsBounds: the worker checks the plan's noise
// against the bounds it enforces, so a plan whose total cap was dropped, or whose count was
// calibrated to fewer groups than a unit may reach, does not run.
func TestWorkerRefusesAMechanismCalibratedBelowItsBounds(t *testing.T) {
	ok := totalPlan(4, 8, 10)
	if err := checkCalibration(ok); err != nil {
		t.Fatalf("a plan calibrated by Calibration: %v", err)
	}
	noTotal := totalPlan(4, 8, 10)
	noTotal.Bounds.MaxRowsPerUnit = 0 // now up to 32 rows per unit; the count covers 10
	lowSel := totalPlan(4, 8, 10)
	lowSel.Selection.MaxPartitions = 3
	lowInf := totalPlan(4, 8, 10)
	lowInf.Aggregates[1].MaxPerPartition = 4
	profile := func(l0 int64, rows *dp.Spec) *wire.Plan {
		p := totalPlan(4, 8, 10)
		p.Profile = &wire.Profile{MaxGroups: 8, MaxRows: 16, Spec: dp.Spec{Kind: dp.CountDistinct, Value: -1, Epsilon: 0.1, MaxPartitions: l0, MaxPerPartition: 1}, RowsSpec: rows}
		return p
	}
	for _, p := range []*wire.Plan{profile(2, nil), profile(1, &dp.Spec{Kind: dp.CountDistinct, Value: -1, Epsilon: 0.1, MaxPartitions: 1, MaxPerPartition: 1})} {
		if err := checkCalibration(p); err != nil {
			t.Errorf("a profile calibrated as the planner does: %v", err)
		}
	}
	for name, p := range map[string]*wire.Plan{"cap dropped": noTotal, "selection below L0": lowSel, "L∞ below the group's cap": lowInf,
		"one spec for two histograms at L0 1": profile(1, nil)} {
		if err := checkCalibration(p); err == nil {
			t.Errorf("%s: the worker accepted an under-calibrated plan", name)
		}
	}
}
