package dp_test

import (
	"bytes"
	"testing"

	"github.com/c1b99f93/cleanroom/dp"
)

func selectorState(t *testing.T, s dp.Selection, n int) []byte {
	t.Helper()
	sel, err := s.NewSelector()
	if err != nil {
		t.Fatalf("NewSelector(%+v): %v", s, err)
	}
	for i := 0; i < n; i++ {
		if err := sel.AddUnit(); err != nil {
			t.Fatal(err)
		}
	}
	b, err := sel.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestKeepNeverKeepsOneUnitPartition: with one unit, the library keeps a partition with
// probability at most delta (exactly delta/L0 on the L0 ≤ 3 path, at most delta on the Gaussian
// path used for L0 > 3). With delta 1e−10, a single keep anywhere in 2000 trials has
// probability at most 2000·1e−10 = 2e−7. (At delta 1e−6 the same bound would be 2e−3, one
// spurious failure in 500 runs: too flaky, hence the smaller delta.)
func TestKeepNeverKeepsOneUnitPartition(t *testing.T) {
	const trials = 2000
	for _, s := range []dp.Selection{
		{Epsilon: 1, Delta: 1e-10, MaxPartitions: 1},
		{Epsilon: 1, Delta: 1e-10, MaxPartitions: 5}, // L0 > 3: the library's Gaussian thresholding
	} {
		for _, n := range []int{0, 1} {
			state := selectorState(t, s, n)
			for i := 0; i < trials; i++ {
				keep, err := s.Keep(state)
				if err != nil {
					t.Fatal(err)
				}
				if keep {
					t.Fatalf("%+v: kept a partition of %d unit(s) at trial %d", s, n, i)
				}
			}
		}
	}
}

// TestKeepAlwaysKeepsLargePartition: on the L0 1 path 10,000 units is far above the library's
// hard threshold (GetHardThreshold: 28 units at epsilon 1, delta 1e−6; 46 at delta 1e−10),
// beyond which keeping is certain. On the L0 5 path (Gaussian thresholding, σ ≈ 9.8) the
// threshold is below 100 units, so 10,000 units is about 1000σ above it.
func TestKeepAlwaysKeepsLargePartition(t *testing.T) {
	const trials = 2000
	for _, s := range []dp.Selection{
		{Epsilon: 1, Delta: 1e-6, MaxPartitions: 1},
		{Epsilon: 1, Delta: 1e-10, MaxPartitions: 1},
		{Epsilon: 1, Delta: 1e-6, MaxPartitions: 5},
	} {
		state := selectorState(t, s, 10_000)
		for i := 0; i < trials; i++ {
			keep, err := s.Keep(state)
			if err != nil {
				t.Fatal(err)
			}
			if !keep {
				t.Fatalf("%+v: dropped a partition of 10,000 units at trial %d", s, i)
			}
		}
	}
}

func TestKeepRefusesStateOfAnotherSelection(t *testing.T) {
	plan := dp.Selection{Epsilon: 1, Delta: 1e-6, MaxPartitions: 2}
	for _, tc := range []struct {
		name   string
		worker dp.Selection
	}{
		{"larger epsilon", dp.Selection{Epsilon: 10, Delta: 1e-6, MaxPartitions: 2}},
		{"larger delta", dp.Selection{Epsilon: 1, Delta: 1e-2, MaxPartitions: 2}},
		{"smaller L0", dp.Selection{Epsilon: 1, Delta: 1e-6, MaxPartitions: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if keep, err := plan.Keep(selectorState(t, tc.worker, 10_000)); err == nil {
				t.Errorf("decided keep=%v from a state built under %+v", keep, tc.worker)
			}
		})
	}
	for _, state := range [][]byte{nil, {}, []byte("not a gob")} {
		if keep, err := plan.Keep(state); err == nil {
			t.Errorf("decided keep=%v from %q", keep, state)
		}
	}
}

func TestSelectorMergeEqualsOneSelectorFedBoth(t *testing.T) {
	s := dp.Selection{Epsilon: 1, Delta: 1e-6, MaxPartitions: 1}
	a, _ := s.NewSelector()
	b, _ := s.NewSelector()
	both, _ := s.NewSelector()
	for i := 0; i < 7; i++ {
		half := a
		if i%2 == 0 {
			half = b
		}
		if err := half.AddUnit(); err != nil {
			t.Fatal(err)
		}
		if err := both.AddUnit(); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Merge(b); err != nil {
		t.Fatal(err)
	}
	merged, _ := a.Encode()
	single, _ := both.Encode()
	if !bytes.Equal(merged, single) {
		t.Errorf("merged selector state differs from one selector fed both halves")
	}
	other, _ := dp.Selection{Epsilon: 2, Delta: 1e-6, MaxPartitions: 1}.NewSelector()
	c, _ := s.NewSelector()
	if err := c.Merge(other); err == nil {
		t.Errorf("merged selectors of different epsilon")
	}
}

func TestSelectionValidateRefusesBadParameters(t *testing.T) {
	for _, tc := range []struct {
		name string
		sel  dp.Selection
		ok   bool
	}{
		{"valid", dp.Selection{Epsilon: 1, Delta: 1e-6, MaxPartitions: 1}, true},
		{"delta zero", dp.Selection{Epsilon: 1, Delta: 0, MaxPartitions: 1}, false},
		{"delta one", dp.Selection{Epsilon: 1, Delta: 1, MaxPartitions: 1}, false},
		{"epsilon zero", dp.Selection{Epsilon: 0, Delta: 1e-6, MaxPartitions: 1}, false},
		{"L0 zero", dp.Selection{Epsilon: 1, Delta: 1e-6, MaxPartitions: 0}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.sel.Validate(); (err == nil) != tc.ok {
				t.Errorf("Validate() = %v, want ok=%v", err, tc.ok)
			}
		})
	}
}
