package model

import (
	"math"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/mat"
)

// unit is one privacy unit's rows, as a test feeds them.
type unit struct {
	rows   [][]float64
	labels []float64
}

// linearData is a generated dataset with a known linear relation and its public spec.
type linearData struct {
	spec  LinearSpec
	units []unit
	truth []float64 // intercept, then one coefficient per feature (original units)
}

// genLinear generates n units of 1–3 rows (MaxRowsPerUnit 2, so some rows are dropped) over
// four features with different bounds; the label is a linear function plus Gaussian noise.
// A small share of values falls outside the bounds, so clipping is exercised. Fixed seed.
func genLinear(n int, seed uint64) linearData {
	rng := rand.New(rand.NewPCG(seed, 7))
	spec := LinearSpec{
		Features: []Feature{
			{"age", Bounds{18, 90}},
			{"income", Bounds{0, 200}},
			{"score", Bounds{-1, 1}},
			{"visits", Bounds{0, 50}},
		},
		Label:          Bounds{-100, 300},
		MaxRowsPerUnit: 2,
	}
	truth := []float64{10, 1.5, 0.4, 25, -1.2}
	data := linearData{spec: spec, truth: truth, units: make([]unit, n)}
	for i := range data.units {
		k := 1 + rng.IntN(3)
		u := unit{rows: make([][]float64, k), labels: make([]float64, k)}
		for r := 0; r < k; r++ {
			x := []float64{
				18 + 72*rng.Float64(),
				math.Max(0, 60+40*rng.NormFloat64()), // some above 200 after the tail
				rng.NormFloat64() * 0.6,              // some outside [−1, 1]
				float64(rng.IntN(55)),                // some above 50
			}
			y := truth[0] + 8*rng.NormFloat64()
			for j, v := range x {
				y += truth[j+1] * v
			}
			u.rows[r], u.labels[r] = x, y
		}
		data.units[i] = u
	}
	return data
}

// clipped returns the kept rows, clipped to the bounds, in original units: what the
// non-private reference fit sees.
func (d linearData) clipped() (X [][]float64, y []float64) {
	m := d.spec.MaxRowsPerUnit
	for _, u := range d.units {
		for r := 0; r < min(m, len(u.rows)); r++ {
			x := make([]float64, len(u.rows[r]))
			for j, v := range u.rows[r] {
				b := d.spec.Features[j].Bounds
				x[j] = math.Min(math.Max(v, b.Lo), b.Hi)
			}
			X = append(X, x)
			y = append(y, math.Min(math.Max(u.labels[r], d.spec.Label.Lo), d.spec.Label.Hi))
		}
	}
	return X, y
}

// ols is the non-private least-squares fit with an intercept (intercept first), by QR.
func ols(t testing.TB, X [][]float64, y []float64) []float64 {
	t.Helper()
	n, d := len(X), len(X[0])
	A := mat.NewDense(n, d+1, nil)
	for i, x := range X {
		A.Set(i, 0, 1)
		for j, v := range x {
			A.Set(i, j+1, v)
		}
	}
	var beta mat.VecDense
	if err := beta.SolveVec(A, mat.NewVecDense(n, y)); err != nil {
		t.Fatal(err)
	}
	return beta.RawVector().Data
}

func (d linearData) stats(t testing.TB) *Stats {
	t.Helper()
	s, err := NewStats(d.spec)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range d.units {
		if err := s.AddUnit(u.rows, u.labels); err != nil {
			t.Fatal(err)
		}
	}
	return s
}
