package model

import (
	"math/rand/v2"
	"testing"
	"time"

	"gonum.org/v1/gonum/mat"
)

// benchUnits is 1M rows in 250k units of 4 rows over four features (MaxRowsPerUnit 4, so
// every row is kept), with a linear label.
func benchUnits(nUnits, perUnit int) (LinearSpec, []unit) {
	rng := rand.New(rand.NewPCG(42, 1))
	spec := genLinear(0, 0).spec
	spec.MaxRowsPerUnit = perUnit
	units := make([]unit, nUnits)
	for i := range units {
		u := unit{rows: make([][]float64, perUnit), labels: make([]float64, perUnit)}
		for r := range u.rows {
			x := []float64{18 + 72*rng.Float64(), 200 * rng.Float64(), 2*rng.Float64() - 1, 50 * rng.Float64()}
			u.rows[r] = x
			u.labels[r] = 10 + 1.5*x[0] + 0.4*x[1] + 25*x[2] - 1.2*x[3] + 8*rng.NormFloat64()
		}
		units[i] = u
	}
	return spec, units
}

// plainSolve is the non-private baseline over the same rows: the float64 upper triangle of
// ZᵀZ for z = (1, x, y), without clipping or scaling, and a Cholesky solve of XᵀXβ = Xᵀy.
func plainSolve(b *testing.B, units []unit, d int) []float64 {
	n := d + 2
	acc := make([]float64, n*(n+1)/2)
	z := make([]float64, n)
	z[0] = 1
	for _, u := range units {
		for r, row := range u.rows {
			copy(z[1:], row)
			z[n-1] = u.labels[r]
			k := 0
			for a := range z {
				za := z[a]
				for _, zb := range z[a:] {
					acc[k] += za * zb
					k++
				}
			}
		}
	}
	A := mat.NewSymDense(d+1, nil)
	rhs := mat.NewVecDense(d+1, nil)
	k := 0
	for a := 0; a < n; a++ {
		for c := a; c < n; c++ {
			switch {
			case c < n-1:
				A.SetSym(a, c, acc[k])
			case a < n-1:
				rhs.SetVec(a, acc[k])
			}
			k++
		}
	}
	var ch mat.Cholesky
	if !ch.Factorize(A) {
		b.Fatal("baseline XᵀX not positive definite")
	}
	var beta mat.VecDense
	if err := ch.SolveVecTo(&beta, rhs); err != nil {
		b.Fatal(err)
	}
	return beta.RawVector().Data
}

// BenchmarkLinear1MRows times, over the same 1M rows in the same run, the private path
// (accumulate per unit with clipping, scaling and exact sums; encode; decode; release with
// noise, ridge check, solve, metrics and 1000 bootstrap draws) against a plain float64 XᵀX
// accumulation and solve, and reports the ratio (the target: within 3×).
func BenchmarkLinear1MRows(b *testing.B) {
	spec, units := benchUnits(250000, 4)
	var private, plain time.Duration
	for b.Loop() {
		t0 := time.Now()
		s, err := NewStats(spec)
		if err != nil {
			b.Fatal(err)
		}
		for _, u := range units {
			if err := s.AddUnit(u.rows, u.labels); err != nil {
				b.Fatal(err)
			}
		}
		dec, err := DecodeStats(s.Encode(), spec)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := ReleaseLinear(dec, Params{Epsilon: 1, Delta: 1e-6}); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		plainSolve(b, units, len(spec.Features))
		private += t1.Sub(t0)
		plain += time.Since(t1)
	}
	n := float64(b.N)
	b.ReportMetric(float64(private.Milliseconds())/n, "private-ms/op")
	b.ReportMetric(float64(plain.Milliseconds())/n, "plain-ms/op")
	b.ReportMetric(private.Seconds()/plain.Seconds(), "ratio")
}

// BenchmarkLinearReleaseOnly is the engine's share alone: noise, solve, metrics, 1000 draws.
func BenchmarkLinearReleaseOnly(b *testing.B) {
	_, _, _, st := linearFixture(b)
	for b.Loop() {
		if _, err := ReleaseLinear(st, Params{Epsilon: 1, Delta: 1e-6}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLogistic100kRows times a whole fit of T = 100 iterations over 100k rows (100k
// units of one row): 100 gradient passes and one confusion pass, in process, with the noise.
func BenchmarkLogistic100kRows(b *testing.B) {
	d := genLogistic(0, 0)
	rng := rand.New(rand.NewPCG(43, 1))
	d.rows, d.labels = make([][][]float64, 100000), make([][]bool, 100000)
	for i := range d.rows {
		x := []float64{18 + 72*rng.Float64(), 200 * rng.Float64(), 2*rng.Float64() - 1, 50 * rng.Float64()}
		z := -3 + 0.05*x[0] + 0.01*x[1] + 2*x[2] - 0.08*x[3]
		d.rows[i], d.labels[i] = [][]float64{x}, []bool{rng.Float64() < sigmoid(z)}
	}
	d.spec.MaxRowsPerUnit = 1
	const T = 100
	for b.Loop() {
		if _, err := FitLogistic(d.spec, LogisticParams{Epsilon: 1, Delta: 1e-6, Iterations: T}, d.units()); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N)/T, "ms/iteration")
}
