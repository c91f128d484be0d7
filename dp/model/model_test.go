package model

import (
	"bytes"
	"errors"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/c1b99f93/cleanroom/errcode"
	"github.com/google/differential-privacy/go/v3/noise"
)

// noNoise is the test-only seam: the library's Gaussian with AddNoiseFloat64 returning x, so
// the deterministic tier can check bounding and plumbing exactly.
type noNoise struct{ noise.Noise }

func (noNoise) AddNoiseFloat64(x float64, _ int64, _, _, _ float64) (float64, error) { return x, nil }

func withoutNoise(t *testing.T) {
	t.Helper()
	saved := gaussianNoise
	gaussianNoise = noNoise{saved}
	t.Cleanup(func() { gaussianNoise = saved })
}

// scaledStats returns the state's three statistics in scaled units: the upper triangle of
// XᵀX, Xᵀy and yᵀy.
func scaledStats(s *Stats) (xtx, xty []float64, yty float64) {
	p := s.d + 1
	for a := 0; a < p; a++ {
		for b := a; b < p; b++ {
			xtx = append(xtx, s.at(a, b))
		}
		xty = append(xty, s.at(a, p))
	}
	return xtx, xty, s.at(p, p)
}

func l2diff(a, b []float64) float64 {
	var s float64
	for i := range a {
		s += (a[i] - b[i]) * (a[i] - b[i])
	}
	return math.Sqrt(s)
}

// randomUnit draws a unit of up to 2M rows: values at the bounds, inside them or far outside,
// so that clipping and the row cap are both exercised.
func randomUnit(rng *rand.Rand, fs []Feature, label Bounds, m int) ([][]float64, []float64, []bool) {
	k := 1 + rng.IntN(2*m)
	rows, labels, classes := make([][]float64, k), make([]float64, k), make([]bool, k)
	pick := func(b Bounds) float64 {
		switch rng.IntN(4) {
		case 0:
			return b.Lo
		case 1:
			return b.Hi
		case 2:
			return b.Lo + (b.Hi-b.Lo)*rng.Float64()
		}
		return (rng.Float64() - 0.5) * 1e6
	}
	for r := range rows {
		rows[r] = make([]float64, len(fs))
		for j, f := range fs {
			rows[r][j] = pick(f.Bounds)
		}
		labels[r], classes[r] = pick(label), rng.IntN(2) == 0
	}
	return rows, labels, classes
}

// Adding one unit (at most MaxRowsPerUnit rows kept, values anywhere) to any dataset moves each
// pre-noise statistic by at most its stated L2 sensitivity, and a unit whose rows all sit at
// the upper corner of the bounds reaches each bound exactly.
func TestOneUnitMovesEachStatisticByAtMostItsSensitivity(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for trial := 0; trial < 200; trial++ {
		d, m := 1+rng.IntN(5), 1+rng.IntN(4)
		data := genLinear(0, 0)
		spec := LinearSpec{Features: data.spec.Features[:min(d, 4)], Label: data.spec.Label, MaxRowsPerUnit: m}
		if d == 5 {
			spec.Features = append(spec.Features, Feature{"extra", Bounds{-3, 7}})
		}
		base, _ := NewStats(spec)
		for i := rng.IntN(20); i > 0; i-- {
			rows, labels, _ := randomUnit(rng, spec.Features, spec.Label, m)
			if err := base.AddUnit(rows, labels); err != nil {
				t.Fatal(err)
			}
		}
		with, _ := DecodeStats(base.Encode(), spec)
		rows, labels, _ := randomUnit(rng, spec.Features, spec.Label, m)
		if trial%10 == 0 { // the extreme unit: M rows at the upper corner
			rows, labels = nil, nil
			for r := 0; r < m; r++ {
				x := make([]float64, len(spec.Features))
				for j, f := range spec.Features {
					x[j] = f.Bounds.Hi
				}
				rows, labels = append(rows, x), append(labels, spec.Label.Hi)
			}
		}
		if err := with.AddUnit(rows, labels); err != nil {
			t.Fatal(err)
		}
		x0, b0, y0 := scaledStats(base)
		x1, b1, y1 := scaledStats(with)
		sens := spec.Sensitivity()
		got := []float64{l2diff(x0, x1), l2diff(b0, b1), math.Abs(y1 - y0)}
		bound := []float64{sens.XTX, sens.XTY, sens.YTY}
		for i, name := range []string{"xtx", "xty", "yty"} {
			if got[i] > bound[i]*(1+1e-12) {
				t.Fatalf("trial %d (d=%d, M=%d): %s moved by %g, sensitivity %g", trial, d, m, name, got[i], bound[i])
			}
			if trial%10 == 0 && math.Abs(got[i]-bound[i]) > 1e-9*bound[i] {
				t.Errorf("trial %d: the corner unit moved %s by %g, not the bound %g: the bound is not tight", trial, name, got[i], bound[i])
			}
		}
	}
}

// Adding one unit moves a gradient sum by at most Clip and the confusion counts by at most
// MaxRowsPerUnit (L2).
func TestOneUnitMovesGradientAndConfusionByAtMostTheirSensitivity(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	data := genLogistic(0, 0)
	for trial := 0; trial < 200; trial++ {
		m := 1 + rng.IntN(4)
		spec := data.spec
		spec.MaxRowsPerUnit, spec.Clip = m, []float64{0.1, 1, 3, 100}[rng.IntN(4)]
		theta := make([]float64, len(spec.Features)+1)
		for j := range theta {
			theta[j] = 4 * rng.NormFloat64()
		}
		step := Step{Iteration: rng.IntN(5), Theta: theta}
		g0, _ := NewGradient(spec, step)
		c0, _ := NewConfusion(spec, step)
		for i := rng.IntN(20); i > 0; i-- {
			rows, _, cls := randomUnit(rng, spec.Features, Bounds{0, 1}, m)
			if g0.AddUnit(rows, cls) != nil || c0.AddUnit(rows, cls) != nil {
				t.Fatal("AddUnit failed")
			}
		}
		g1, err := DecodeGradient(g0.Encode(), spec, step)
		if err != nil {
			t.Fatal(err)
		}
		c1, err := DecodeConfusion(c0.Encode(), spec, step)
		if err != nil {
			t.Fatal(err)
		}
		rows, _, cls := randomUnit(rng, spec.Features, Bounds{0, 1}, m)
		if g1.AddUnit(rows, cls) != nil || c1.AddUnit(rows, cls) != nil {
			t.Fatal("AddUnit failed")
		}
		if got := l2diff(g0.sum(), g1.sum()); got > spec.Clip*(1+1e-12) {
			t.Fatalf("trial %d: gradient sum moved by %g, clip %g", trial, got, spec.Clip)
		}
		var cs0, cs1 []float64
		for i := range c0.st.s {
			cs0, cs1 = append(cs0, float64(c0.st.s[i])), append(cs1, float64(c1.st.s[i]))
		}
		if got := l2diff(cs0, cs1); got > float64(m) {
			t.Fatalf("trial %d: confusion counts moved by %g, M = %d", trial, got, m)
		}
	}
}

// A state survives Encode and Decode bit for bit; merging is order-independent (exact integer
// sums); a state computed for another spec or step is refused.
func TestStateRoundTripsAndMergesExactly(t *testing.T) {
	data := genLinear(3000, 9)
	all, _ := NewStats(data.spec)
	a, _ := NewStats(data.spec)
	b, _ := NewStats(data.spec)
	for i, u := range data.units {
		_ = all.AddUnit(u.rows, u.labels)
		if i%3 == 0 {
			_ = a.AddUnit(u.rows, u.labels)
		} else {
			_ = b.AddUnit(u.rows, u.labels)
		}
	}
	rev, _ := NewStats(data.spec)
	for i := len(data.units) - 1; i >= 0; i-- {
		_ = rev.AddUnit(data.units[i].rows, data.units[i].labels)
	}
	if err := b.Merge(a); err != nil {
		t.Fatal(err)
	}
	enc := all.Encode()
	if !bytes.Equal(enc, b.Encode()) || !bytes.Equal(enc, rev.Encode()) {
		t.Fatal("the state depends on the order units were added or merged")
	}
	dec, err := DecodeStats(enc, data.spec)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(dec.Encode(), enc) {
		t.Fatal("decode and encode do not round-trip")
	}
	other := data.spec
	other.MaxRowsPerUnit = 3
	if _, err := DecodeStats(enc, other); !errors.Is(err, ErrStateMismatch) {
		t.Errorf("state decoded for another spec: %v", err)
	}
	o, _ := NewStats(other)
	if err := o.Merge(all); !errors.Is(err, ErrStateMismatch) {
		t.Errorf("merged states of different specs: %v", err)
	}

	ld := genLogistic(500, 2)
	step := Step{Iteration: 3, Theta: []float64{0.1, -0.2, 0.3, 0.4, -0.5}}
	g, err := GradientSum(ld.spec, step, ld.units())
	if err != nil {
		t.Fatal(err)
	}
	gd, err := DecodeGradient(g.Encode(), ld.spec, step)
	if err != nil || !bytes.Equal(gd.Encode(), g.Encode()) {
		t.Fatalf("gradient state does not round-trip: %v", err)
	}
	next := Step{Iteration: 4, Theta: step.Theta}
	if _, err := DecodeGradient(g.Encode(), ld.spec, next); !errors.Is(err, ErrStateMismatch) {
		t.Errorf("gradient of step 3 decoded as step 4: %v", err)
	}
	c, err := ConfusionCounts(ld.spec, step, ld.units())
	if err != nil {
		t.Fatal(err)
	}
	cd, err := DecodeConfusion(c.Encode(), ld.spec, step)
	if err != nil || !bytes.Equal(cd.Encode(), c.Encode()) {
		t.Fatalf("confusion state does not round-trip: %v", err)
	}
	if _, err := DecodeGradient(c.Encode(), ld.spec, step); !errors.Is(err, ErrStateMismatch) && !errors.Is(err, ErrMalformedState) {
		t.Errorf("confusion counts decoded as a gradient: %v", err)
	}
}

// With the noise switched off, the release is OLS on the clipped data (to the quantisation of
// the sums), N is the row count and the RMSE the non-private one; the logistic fit's count and
// confusion counts are the exact ones. This pins the plumbing: scaling, the triangle layout,
// the unscaling and the metrics.
func TestReleaseWithoutNoiseIsTheExactFit(t *testing.T) {
	withoutNoise(t)
	data, ref, rmse, st := linearFixture(t)
	m, err := ReleaseLinear(st, Params{Epsilon: 1, Delta: 1e-6, Draws: -1})
	if err != nil {
		t.Fatal(err)
	}
	all := append([]Coefficient{m.Intercept}, m.Coefficients...)
	for j, c := range all {
		if e := scaledError(data.spec, j, c.Value, ref[j]); e > 1e-4 {
			t.Errorf("%s = %g, OLS %g (scaled error %g)", c.Name, c.Value, ref[j], e)
		}
		if c.Lower != c.Value || c.Upper != c.Value {
			t.Errorf("%s has an interval without draws", c.Name)
		}
	}
	if m.Ridge != 0 || m.N != float64(st.st.rows) || math.Abs(m.RMSE-rmse)/rmse > 1e-3 || !(m.R2 > 0.9 && m.R2 < 1) {
		t.Errorf("ridge %g, n %g (rows %d), rmse %g (want %g), r2 %g", m.Ridge, m.N, st.st.rows, m.RMSE, rmse, m.R2)
	}

	ld := genLogistic(2000, 3)
	lm, err := FitLogistic(ld.spec, LogisticParams{Epsilon: 1, Delta: 1e-6, Iterations: 20}, ld.units())
	if err != nil {
		t.Fatal(err)
	}
	exact := ld.accuracyOf(lm)
	cm := lm.Confusion
	total := cm.TruePositives + cm.FalsePositives + cm.FalseNegatives + cm.TrueNegatives
	if total != lm.N || math.Abs(lm.Accuracy-exact) > 1e-12 || len(lm.Components) != 22 {
		t.Errorf("confusion total %g, n %g, accuracy %g (exact %g), %d components", total, lm.N, lm.Accuracy, exact, len(lm.Components))
	}
}

// The components of a release are charged exactly the job's (ε, δ), and the noise drawn
// composes (exact GDP, dp/accountant) to no more than ε.
func TestComponentsComposeToTheJobsBudget(t *testing.T) {
	_, _, _, st := linearFixture(t)
	for _, eps := range []float64{0.1, 1, 5} {
		m, err := ReleaseLinear(st, Params{Epsilon: eps, Delta: 1e-7, Draws: -1})
		if err != nil {
			t.Fatal(err)
		}
		f, err := NewLogisticFit(genLogistic(0, 0).spec, LogisticParams{Epsilon: eps, Delta: 1e-7, Iterations: 250})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range []struct {
			name string
			rep  struct{ basicEps, basicDelta, tighter float64 }
		}{
			{"linear", struct{ basicEps, basicDelta, tighter float64 }{m.Accounting.Basic.Epsilon, m.Accounting.Basic.Delta, m.Accounting.Tighter.Epsilon}},
			{"logistic", struct{ basicEps, basicDelta, tighter float64 }{f.rep.Basic.Epsilon, f.rep.Basic.Delta, f.rep.Tighter.Epsilon}},
		} {
			if math.Abs(r.rep.basicEps-eps) > 1e-9*eps || math.Abs(r.rep.basicDelta-1e-7) > 1e-15 || r.rep.tighter > eps*(1+1e-9) {
				t.Errorf("%s at ε=%g: basic (%g, %g), tighter ε %g", r.name, eps, r.rep.basicEps, r.rep.basicDelta, r.rep.tighter)
			}
		}
	}
}

// Bad input gives a sentinel error with a stable code, never a panic, and a refused unit
// leaves the accumulator unchanged.
func TestBadInputGivesSentinelErrors(t *testing.T) {
	good := genLinear(0, 0).spec
	lgood := genLogistic(0, 0).spec
	nan, inf := math.NaN(), math.Inf(1)
	specWith := func(f func(*LinearSpec)) LinearSpec {
		s := good
		s.Features = append([]Feature(nil), good.Features...)
		f(&s)
		return s
	}
	for _, tc := range []struct {
		name string
		spec LinearSpec
		want error
	}{
		{"zero features", specWith(func(s *LinearSpec) { s.Features = nil }), ErrNoFeatures},
		{"lo equals hi", specWith(func(s *LinearSpec) { s.Features[0].Bounds = Bounds{1, 1} }), ErrInvalidBounds},
		{"lo above hi", specWith(func(s *LinearSpec) { s.Features[1].Bounds = Bounds{2, 1} }), ErrInvalidBounds},
		{"NaN bound", specWith(func(s *LinearSpec) { s.Features[0].Bounds.Lo = nan }), ErrInvalidBounds},
		{"infinite bound", specWith(func(s *LinearSpec) { s.Features[0].Bounds.Hi = inf }), ErrInvalidBounds},
		{"range overflows", specWith(func(s *LinearSpec) { s.Features[0].Bounds = Bounds{-math.MaxFloat64, math.MaxFloat64} }), ErrInvalidBounds},
		{"label lo above hi", specWith(func(s *LinearSpec) { s.Label = Bounds{5, -5} }), ErrInvalidBounds},
		{"repeated name", specWith(func(s *LinearSpec) { s.Features[1].Name = s.Features[0].Name }), ErrInvalidSpec},
		{"empty name", specWith(func(s *LinearSpec) { s.Features[1].Name = "" }), ErrInvalidSpec},
		{"zero max rows", specWith(func(s *LinearSpec) { s.MaxRowsPerUnit = 0 }), ErrInvalidSpec},
	} {
		t.Run("spec/"+tc.name, func(t *testing.T) {
			_, err := NewStats(tc.spec)
			if !errors.Is(err, tc.want) || errcode.Of(err) != errcode.InvalidOptions {
				t.Errorf("err = %v (code %s), want %v with invalid_options", err, errcode.Of(err), tc.want)
			}
		})
	}
	for _, tc := range []struct {
		name string
		spec LogisticSpec
	}{
		{"zero clip", LogisticSpec{Features: lgood.Features, MaxRowsPerUnit: 1}},
		{"NaN clip", LogisticSpec{Features: lgood.Features, MaxRowsPerUnit: 1, Clip: nan}},
		{"infinite clip", LogisticSpec{Features: lgood.Features, MaxRowsPerUnit: 1, Clip: inf}},
	} {
		t.Run("logistic spec/"+tc.name, func(t *testing.T) {
			if _, err := NewLogisticFit(tc.spec, LogisticParams{Epsilon: 1, Delta: 1e-6}); !errors.Is(err, ErrInvalidSpec) {
				t.Errorf("err = %v, want ErrInvalidSpec", err)
			}
		})
	}

	s, _ := NewStats(good)
	before := s.Encode()
	row := []float64{30, 50, 0, 3}
	for _, tc := range []struct {
		name   string
		rows   [][]float64
		labels []float64
		want   error
	}{
		{"NaN value", [][]float64{row, {30, nan, 0, 3}}, []float64{1, 2}, ErrNonFinite},
		{"Inf value", [][]float64{{inf, 50, 0, 3}}, []float64{1}, ErrNonFinite},
		{"-Inf label", [][]float64{row}, []float64{-inf}, ErrNonFinite},
		{"NaN label", [][]float64{row}, []float64{nan}, ErrNonFinite},
		{"short row", [][]float64{row, {1, 2}}, []float64{1, 2}, ErrShape},
		{"labels missing", [][]float64{row, row}, []float64{1}, ErrShape},
	} {
		t.Run("unit/"+tc.name, func(t *testing.T) {
			err := s.AddUnit(tc.rows, tc.labels)
			if !errors.Is(err, tc.want) || errcode.Of(err) != errcode.MalformedInput {
				t.Errorf("err = %v (code %s), want %v with malformed_input", err, errcode.Of(err), tc.want)
			}
			if !bytes.Equal(s.Encode(), before) {
				t.Error("a refused unit changed the state")
			}
		})
	}
	// Rows beyond MaxRowsPerUnit are not read: a NaN there is not an error.
	if err := s.AddUnit([][]float64{row, row, {nan, nan}}, []float64{1, 2, nan}); err != nil {
		t.Errorf("a dropped row was read: %v", err)
	}
	if _, err := NewGradient(lgood, Step{Theta: []float64{1}}); !errors.Is(err, ErrInvalidParams) {
		t.Errorf("a step with the wrong number of coefficients: %v", err)
	}
	g, _ := NewGradient(lgood, Step{Theta: make([]float64, 5)})
	if err := g.AddUnit([][]float64{{nan, 1, 1, 1}}, []bool{true}); !errors.Is(err, ErrNonFinite) {
		t.Errorf("gradient of a NaN row: %v", err)
	}

	for _, tc := range []struct {
		name string
		p    Params
	}{
		{"zero epsilon", Params{Epsilon: 0, Delta: 1e-6}},
		{"negative epsilon", Params{Epsilon: -1, Delta: 1e-6}},
		{"NaN epsilon", Params{Epsilon: nan, Delta: 1e-6}},
		{"infinite epsilon", Params{Epsilon: inf, Delta: 1e-6}},
		{"zero delta", Params{Epsilon: 1, Delta: 0}},
		{"delta one", Params{Epsilon: 1, Delta: 1}},
		{"NaN delta", Params{Epsilon: 1, Delta: nan}},
		{"confidence one", Params{Epsilon: 1, Delta: 1e-6, Confidence: 1}},
		{"too many draws", Params{Epsilon: 1, Delta: 1e-6, Draws: maxDraws + 1}},
	} {
		t.Run("params/"+tc.name, func(t *testing.T) {
			_, err := ReleaseLinear(s, tc.p)
			if !errors.Is(err, ErrInvalidParams) || errcode.Of(err) != errcode.InvalidOptions {
				t.Errorf("err = %v (code %s), want ErrInvalidParams with invalid_options", err, errcode.Of(err))
			}
			_, err = NewLogisticFit(lgood, LogisticParams{Epsilon: tc.p.Epsilon, Delta: tc.p.Delta})
			if tc.p.Confidence == 0 && tc.p.Draws == 0 && !errors.Is(err, ErrInvalidParams) {
				t.Errorf("logistic: err = %v, want ErrInvalidParams", err)
			}
		})
	}
	for _, p := range []LogisticParams{
		{Epsilon: 1, Delta: 1e-6, Iterations: -1},
		{Epsilon: 1, Delta: 1e-6, Iterations: MaxIterations + 1},
		{Epsilon: 1, Delta: 1e-6, StepSize: -1},
		{Epsilon: 1, Delta: 1e-6, StepSize: inf},
		{Epsilon: 1, Delta: 1e-6, L2: nan},
	} {
		if _, err := NewLogisticFit(lgood, p); !errors.Is(err, ErrInvalidParams) {
			t.Errorf("%+v: err = %v, want ErrInvalidParams", p, err)
		}
	}
}

// A logistic fit refuses to be driven out of order: a gradient of another step, a second
// confusion release, a confusion state before the last gradient.
func TestLogisticFitRefusesStepsOutOfOrder(t *testing.T) {
	ld := genLogistic(200, 4)
	f, err := NewLogisticFit(ld.spec, LogisticParams{Epsilon: 1, Delta: 1e-6, Iterations: 2})
	if err != nil {
		t.Fatal(err)
	}
	step, _ := f.Next()
	c, _ := ConfusionCounts(ld.spec, step, ld.units())
	if _, err := f.Finish(c); !errors.Is(err, ErrOutOfOrder) {
		t.Errorf("confusion before the gradients: %v", err)
	}
	wrong, _ := GradientSum(ld.spec, Step{Iteration: 1, Theta: step.Theta}, ld.units())
	if err := f.Apply(wrong); !errors.Is(err, ErrStateMismatch) {
		t.Errorf("gradient of another step: %v", err)
	}
	for i := 0; i < 2; i++ {
		step, _ = f.Next()
		g, _ := GradientSum(ld.spec, step, ld.units())
		if err := f.Apply(g); err != nil {
			t.Fatal(err)
		}
	}
	step, more := f.Next()
	if more {
		t.Fatal("Next reports a gradient step after the last")
	}
	g, _ := GradientSum(ld.spec, step, ld.units())
	if err := f.Apply(g); !errors.Is(err, ErrOutOfOrder) {
		t.Errorf("a gradient after the last step: %v", err)
	}
	c, _ = ConfusionCounts(ld.spec, step, ld.units())
	if _, err := f.Finish(c); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Finish(c); !errors.Is(err, ErrOutOfOrder) {
		t.Errorf("a second confusion release: %v", err)
	}
}
