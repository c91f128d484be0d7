package sandbox

import (
	"math/rand/v2"
	"testing"

	"github.com/c1b99f93/cleanroom/dp"
	"github.com/c1b99f93/cleanroom/sandbox/wire"
)

// TestProfileFastPathCountsAsTheGeneralPath: a unit whose run is complete in one batch goes
// through fastProfile, the same unit cut into one-row batches through flush and profileUnit;
// the histograms' pre-noise states must be the same either way (random units with one or
// several groups, a filter that keeps some rows, both forms of the rows histogram). Seeded:
// the data are the same every run.
func TestProfileFastPathCountsAsTheGeneralPath(t *testing.T) {
	rng := rand.New(rand.NewPCG(19, 8))
	keys := []string{"a", "b", "c", "d"}
	var rows []row
	for u := range int64(300) {
		n, spread := 1+rng.IntN(40), 1+rng.IntN(3)
		if rng.IntN(2) == 0 {
			spread = 1 // most units, as in the data, in one group
		}
		for range n {
			rows = append(rows, row{unit: u, key: keys[rng.IntN(spread)], val: float64(rng.IntN(10))})
		}
	}
	keep := func(r row) bool { return r.val != 3 }
	for _, total := range []bool{false, true} {
		p := testPlan(1, 1)
		p.Selection, p.Aggregates = nil, nil // the value column stays: the test batches have one
		p.Filter = wire.Col("", "keep")
		p.Profile = &wire.Profile{MaxGroups: 2, MaxRows: 16, TotalRows: total,
			Spec: dp.Spec{Kind: dp.CountDistinct, Value: -1, Epsilon: 1, MaxPartitions: 2, MaxPerPartition: 1}}
		one := profilePass(t, p, [][]row{rows}, keep)
		cut := make([][]row, len(rows))
		for i, r := range rows {
			cut[i] = []row{r}
		}
		each := profilePass(t, p, cut, keep)
		if len(one.profile) != len(each.profile) || len(one.profile) < 4 {
			t.Fatalf("total rows %v: bins %d in one batch, %d row by row", total, len(one.profile), len(each.profile))
		}
		for name, acc := range one.profile {
			a, err := acc.Encode()
			if err != nil {
				t.Fatal(err)
			}
			other := each.profile[name]
			if other == nil {
				t.Fatalf("total rows %v: bin %s only in one batch", total, name)
			}
			b, err := other.Encode()
			if err != nil {
				t.Fatal(err)
			}
			if string(a) != string(b) {
				t.Errorf("total rows %v: bin %s differs between the fast and the general path", total, name)
			}
		}
	}
}

// profilePass runs a profile plan over the batches in order.
func profilePass(t *testing.T, p *wire.Plan, batches [][]row, keep func(row) bool) *boundPass {
	t.Helper()
	b, err := newPass(p, 0, 300, 300, nil)
	if err != nil {
		t.Fatal(err)
	}
	var next int64
	for _, rows := range batches {
		rec := batchKeep(t, rows, &next, keep)
		err := b.add(rec)
		rec.Release()
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := b.finish(); err != nil {
		t.Fatal(err)
	}
	return b
}

// TestProfileSlotNamesTheBinProfileBinNames: two values share a slot exactly when
// wire.ProfileBin gives them the same bin.
func TestProfileSlotNamesTheBinProfileBinNames(t *testing.T) {
	for _, max := range []int64{1, 2, 16, 100, 128} {
		bySlot := map[int]string{}
		for v := int64(1); v <= 600; v++ {
			name, slot := wire.ProfileBin("rows", v, max), profileSlot(v, max)
			if prev, ok := bySlot[slot]; ok && prev != name {
				t.Fatalf("max %d: slot %d holds %s and %s", max, slot, prev, name)
			}
			bySlot[slot] = name
		}
		names := map[string]bool{}
		for _, n := range bySlot {
			if names[n] {
				t.Fatalf("max %d: bin %s has two slots", max, n)
			}
			names[n] = true
		}
	}
}
