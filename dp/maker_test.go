package dp

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// makerSpecs are one spec of every kind, under Laplace (delta 0) and Gaussian noise.
func makerSpecs() []Spec {
	var out []Spec
	for _, delta := range []float64{0, 1e-6} {
		out = append(out,
			Spec{Kind: Count, Value: -1, Epsilon: 0.7, Delta: delta, MaxPartitions: 2, MaxPerPartition: 3},
			Spec{Kind: Count, Value: 0, Epsilon: 0.7, Delta: delta, MaxPartitions: 2, MaxPerPartition: 3},
			Spec{Kind: CountDistinct, Value: -1, Epsilon: 0.7, Delta: delta, MaxPartitions: 2, MaxPerPartition: 3},
			Spec{Kind: CountDistinctValues, Value: 0, Epsilon: 0.7, Delta: delta, MaxPartitions: 2, MaxPerPartition: 3},
			Spec{Kind: Sum, Value: 0, Lower: -20, Upper: 100, Epsilon: 0.7, Delta: delta, MaxPartitions: 2, MaxPerPartition: 3},
			Spec{Kind: Mean, Value: 0, Lower: 0, Upper: 100, Epsilon: 0.7, Delta: delta, MaxPartitions: 2, MaxPerPartition: 3},
			Spec{Kind: Variance, Value: 0, Lower: 0, Upper: 100, Epsilon: 0.7, Delta: delta, MaxPartitions: 2, MaxPerPartition: 3},
			Spec{Kind: StdDev, Value: 0, Lower: 0, Upper: 100, Epsilon: 0.7, Delta: delta, MaxPartitions: 2, MaxPerPartition: 3},
			Spec{Kind: Quantiles, Value: 0, Lower: 0, Upper: 100, Ranks: []float64{0.5, 0.9}, Epsilon: 0.7, Delta: delta, MaxPartitions: 2, MaxPerPartition: 3},
		)
	}
	return out
}

// addUnits adds n seeded random units (one to three rows, values in and out of the bounds,
// some NaN for SQL NULL) to a.
func addUnits(t *testing.T, a Accumulator, seed uint64, n int) {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 5))
	for range n {
		rows := 1 + r.IntN(3)
		vals := make([]float64, rows)
		for i := range vals {
			vals[i] = float64(r.IntN(160) - 30)
			if r.IntN(10) == 0 {
				vals[i] = math.NaN()
			}
		}
		if err := a.AddUnit(int64(rows), vals); err != nil {
			t.Fatal(err)
		}
	}
}

// encoded is a's state in the spec's canonical form (a quantile tree's gob encoding follows
// Go's map order, which varies; its canonical form does not).
func encoded(t *testing.T, s Spec, a Accumulator) []byte {
	t.Helper()
	b, err := a.Encode()
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.Canonical(b)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestCopiesAreNewAccumulators is the property behind Maker: for every kind and both noises,
// an accumulator the maker copies from its prototype ends in exactly the state (the library's
// state in its canonical form, byte for byte) of one the constructor made, after the same units; and
// accumulators of one maker share nothing — adding to one changes neither another nor the
// prototype. Seeded.
func TestCopiesAreNewAccumulators(t *testing.T) {
	for _, s := range makerSpecs() {
		t.Run(fmt.Sprintf("%s/%s", s.Kind, s.Mechanism()), func(t *testing.T) {
			const units = 1000
			m, err := s.NewMaker(units)
			if err != nil {
				t.Fatal(err)
			}
			// (Encoding a library aggregation ends it, so the prototype itself is never encoded.)
			blank, err := s.NewAccumulator(units)
			if err != nil {
				t.Fatal(err)
			}
			empty := encoded(t, s, blank)
			for seed := range uint64(5) {
				made, err := m.New()
				if err != nil {
					t.Fatal(err)
				}
				other, err := m.New()
				if err != nil {
					t.Fatal(err)
				}
				fresh, err := s.NewAccumulator(units)
				if err != nil {
					t.Fatal(err)
				}
				addUnits(t, made, seed, 200)
				addUnits(t, fresh, seed, 200)
				if got, want := encoded(t, s, made), encoded(t, s, fresh); !bytes.Equal(got, want) {
					t.Fatalf("seed %d: a copied accumulator's state differs from a constructed one's", seed)
				}
				later, err := m.New() // a copy of the prototype as it is now
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(encoded(t, s, other), empty) || !bytes.Equal(encoded(t, s, later), empty) {
					t.Fatalf("seed %d: adding to one accumulator changed another of the same maker, or the prototype", seed)
				}
			}
		})
	}
}

// A maker's releases are the spec's: the same state released through both, under the same
// mechanism and budget, with values within a few widths of their 95% intervals of each other
// (the two draws of noise are independent: this bound fails with negligible probability).
func TestMakerReleasesAsTheSpec(t *testing.T) {
	for _, s := range makerSpecs() {
		if s.Kind == Quantiles {
			continue // the tree's noise is per node; its release is checked through Spec elsewhere
		}
		s.Epsilon = MaxEpsilon
		t.Run(fmt.Sprintf("%s/%s", s.Kind, s.Mechanism()), func(t *testing.T) {
			a, err := s.NewAccumulator(1000)
			if err != nil {
				t.Fatal(err)
			}
			addUnits(t, a, 7, 300)
			st, err := a.Encode()
			if err != nil {
				t.Fatal(err)
			}
			m, err := s.NewMaker(0)
			if err != nil {
				t.Fatal(err)
			}
			for range 3 {
				got, err := m.Release(st)
				if err != nil {
					t.Fatal(err)
				}
				want, err := s.Release(st)
				if err != nil {
					t.Fatal(err)
				}
				if len(got) != len(want) || got[0].Mechanism != want[0].Mechanism || got[0].Epsilon != want[0].Epsilon ||
					got[0].Delta != want[0].Delta || math.Abs(got[0].Value-want[0].Value) > 3*(want[0].CIHigh-want[0].CILow)+1 {
					t.Fatalf("maker released %+v, spec %+v", got, want)
				}
			}
		})
	}
}
