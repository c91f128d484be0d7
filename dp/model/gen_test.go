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

// logisticData is a generated classification dataset and its spec.
type logisticData struct {
	spec   LogisticSpec
	rows   [][][]float64 // per unit
	labels [][]bool
}

func (d logisticData) units() Units {
	return func(yield func([][]float64, []bool) bool) {
		for i := range d.rows {
			if !yield(d.rows[i], d.labels[i]) {
				return
			}
		}
	}
}

// genLogistic generates n units of 1–3 rows (MaxRowsPerUnit 2) over four features; the label
// is Bernoulli(σ(linear function)). Fixed seed.
func genLogistic(n int, seed uint64) logisticData {
	rng := rand.New(rand.NewPCG(seed, 11))
	spec := LogisticSpec{
		Features: []Feature{
			{"age", Bounds{18, 90}},
			{"income", Bounds{0, 200}},
			{"score", Bounds{-1, 1}},
			{"visits", Bounds{0, 50}},
		},
		MaxRowsPerUnit: 2,
		Clip:           1,
	}
	truth := []float64{-3, 0.05, 0.01, 2, -0.08}
	d := logisticData{spec: spec, rows: make([][][]float64, n), labels: make([][]bool, n)}
	for i := 0; i < n; i++ {
		k := 1 + rng.IntN(3)
		for r := 0; r < k; r++ {
			x := []float64{18 + 72*rng.Float64(), math.Max(0, 60+40*rng.NormFloat64()), rng.NormFloat64() * 0.6, float64(rng.IntN(55))}
			z := truth[0]
			for j, v := range x {
				z += truth[j+1] * v
			}
			d.rows[i] = append(d.rows[i], x)
			d.labels[i] = append(d.labels[i], rng.Float64() < 1/(1+math.Exp(-z)))
		}
	}
	return d
}

// nonPrivateLogistic fits the unregularised logistic regression on the kept rows, scaled as
// the mechanism scales them, by Newton's method, and returns θ (scaled, intercept first) and
// its accuracy on the same rows.
func nonPrivateLogistic(t testing.TB, d logisticData) (theta []float64, accuracy float64) {
	t.Helper()
	fs := d.spec.Features
	p := len(fs) + 1
	var X [][]float64
	var y []float64
	for i := range d.rows {
		for r := 0; r < min(len(d.rows[i]), d.spec.MaxRowsPerUnit); r++ {
			x := make([]float64, p)
			x[0] = 1
			for j, v := range d.rows[i][r] {
				x[j+1] = fs[j].Bounds.scale(v)
			}
			X = append(X, x)
			yv := 0.0
			if d.labels[i][r] {
				yv = 1
			}
			y = append(y, yv)
		}
	}
	theta = make([]float64, p)
	for it := 0; it < 25; it++ {
		H := mat.NewSymDense(p, nil)
		g := mat.NewVecDense(p, nil)
		for i, x := range X {
			z := 0.0
			for j := range x {
				z += theta[j] * x[j]
			}
			pr := sigmoid(z)
			w := pr * (1 - pr)
			for a := 0; a < p; a++ {
				g.SetVec(a, g.AtVec(a)+(pr-y[i])*x[a])
				for b := a; b < p; b++ {
					H.SetSym(a, b, H.At(a, b)+w*x[a]*x[b])
				}
			}
		}
		var ch mat.Cholesky
		if !ch.Factorize(H) {
			t.Fatal("Hessian not positive definite")
		}
		var step mat.VecDense
		if err := ch.SolveVecTo(&step, g); err != nil {
			t.Fatal(err)
		}
		for j := range theta {
			theta[j] -= step.AtVec(j)
		}
	}
	correct := 0
	for i, x := range X {
		z := 0.0
		for j := range x {
			z += theta[j] * x[j]
		}
		if (z > 0) == (y[i] == 1) {
			correct++
		}
	}
	return theta, float64(correct) / float64(len(X))
}
