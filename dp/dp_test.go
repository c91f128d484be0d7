package dp_test

import (
	"bytes"
	"fmt"
	"math"
	"reflect"
	"testing"

	"github.com/google/differential-privacy/go/v3/noise"

	"github.com/c1b99f93/cleanroom/dp"
)

// Noise-free tier. At a large epsilon the noise is negligible next to the totals, so the
// released value is compared with the true total within tolerance(s) = 50·NoiseScale + 1: 50
// standard deviations (P(|Laplace| > 50σ) = exp(−50·√2) ≈ 2e−31; Gaussian far less) plus one for
// the integer rounding of count noise. These tests cannot flake.
//
// The large epsilon is 1e4 for Laplace but 500 for Gaussian: above ε ≈ 709.78 (where exp(ε)
// overflows) the library's SigmaForGaussian returns 0 and its binomial sampler loops forever,
// already inside the dpagg constructors (see the report on Spec.Validate / Selection.Keep).
const bigEpsilon = 1e4

func largeEpsilon(delta float64) float64 {
	if delta > 0 {
		return 500
	}
	return bigEpsilon
}

func tolerance(s dp.Spec) float64 { return 50*s.NoiseScale() + 1 }

// unit is one privacy unit's bounded contribution to a partition.
type unit struct {
	rows int64
	sum  float64
}

// units returns n units with 1..L∞ rows and whole-number sums spread over [0, rows·upper]
// (whole numbers, so that float sums are exact whatever the order of addition).
func units(n int, s dp.Spec) []unit {
	out := make([]unit, n)
	for i := range out {
		rows := int64(i)%s.MaxPerPartition + 1
		out[i] = unit{rows: rows, sum: float64(int64(i%7) * rows * int64(s.Upper) / 6)}
	}
	return out
}

// truth is what the mechanism estimates for these units (the units are already within bounds).
func truth(s dp.Spec, us []unit) float64 {
	var t float64
	for _, u := range us {
		switch s.Kind {
		case dp.Count:
			t += float64(u.rows)
		case dp.CountDistinct:
			t++
		case dp.Sum:
			t += u.sum
		}
	}
	return t
}

// values spreads the unit's sum evenly over its rows (the accumulators take per-row values).
func (u unit) values() []float64 {
	vs := make([]float64, u.rows)
	for i := range vs {
		vs[i] = u.sum / float64(u.rows)
	}
	return vs
}

// one returns the single released value of a scalar aggregate.
func one(rs []dp.Released, err error) (dp.Released, error) {
	if err != nil {
		return dp.Released{}, err
	}
	if len(rs) != 1 {
		return dp.Released{}, fmt.Errorf("released %d values, want 1", len(rs))
	}
	return rs[0], nil
}

func encode(t *testing.T, s dp.Spec, us []unit) []byte {
	t.Helper()
	acc, err := s.NewAccumulator(1000)
	if err != nil {
		t.Fatalf("NewAccumulator(%+v): %v", s, err)
	}
	for _, u := range us {
		if err := acc.AddUnit(u.rows, u.values()); err != nil {
			t.Fatal(err)
		}
	}
	b, err := acc.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func specs(epsilon, delta float64) []dp.Spec {
	return []dp.Spec{
		{Kind: dp.Count, Value: -1, Epsilon: epsilon, Delta: delta, MaxPartitions: 1, MaxPerPartition: 5},
		{Kind: dp.CountDistinct, Value: -1, Epsilon: epsilon, Delta: delta, MaxPartitions: 1, MaxPerPartition: 5},
		{Kind: dp.Sum, Value: 0, Lower: 0, Upper: 100, Epsilon: epsilon, Delta: delta, MaxPartitions: 2, MaxPerPartition: 5},
	}
}

func name(s dp.Spec) string { return string(s.Kind) + "/" + s.Mechanism() }

func TestReleaseOfWorkerStateIsTrueTotalAtLargeEpsilon(t *testing.T) {
	for _, delta := range []float64{0, 1e-5} {
		for _, s := range specs(largeEpsilon(delta), delta) {
			t.Run(name(s), func(t *testing.T) {
				us := units(1000, s)
				want := truth(s, us)
				r, err := one(s.Release(encode(t, s, us)))
				if err != nil {
					t.Fatal(err)
				}
				if tol := tolerance(s); math.Abs(r.Value-want) > tol {
					t.Errorf("released %v, true total %v, tolerance %v", r.Value, want, tol)
				}
				if r.Mechanism != s.Mechanism() || r.Epsilon != s.Epsilon || r.Delta != s.Delta {
					t.Errorf("released under %s ε=%v δ=%v, spec says %s ε=%v δ=%v", r.Mechanism, r.Epsilon, r.Delta, s.Mechanism(), s.Epsilon, s.Delta)
				}
				if !(r.CILow <= r.Value && r.Value <= r.CIHigh) {
					t.Errorf("value %v outside its interval [%v, %v]", r.Value, r.CILow, r.CIHigh)
				}
			})
		}
	}
}

func TestReleaseOfNegativeSumIsNotClampedToZero(t *testing.T) {
	s := dp.Spec{Kind: dp.Sum, Lower: -50, Upper: 100, Epsilon: bigEpsilon, MaxPartitions: 1, MaxPerPartition: 2}
	us := []unit{{2, -100}, {1, -50}, {1, 20}} // true total −130, within the unit range [−100, 200]
	r, err := one(s.Release(encode(t, s, us)))
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(r.Value-(-130)) > tolerance(s) {
		t.Errorf("released %v, want −130 ± %v", r.Value, tolerance(s))
	}
}

func TestReleaseOfEmptyPartitionWorksAndCountsAreNonNegative(t *testing.T) {
	// Noise at epsilon 1 is large next to 0, so half of the raw noisy values are negative: the
	// clamp to zero is exercised on every other repetition; 200 repetitions.
	for _, delta := range []float64{0, 1e-5} {
		for _, s := range specs(1, delta) {
			t.Run(name(s), func(t *testing.T) {
				for i := 0; i < 200; i++ {
					r, err := one(s.Release(nil))
					if err != nil {
						t.Fatal(err)
					}
					if r.Value < 0 {
						t.Fatalf("repetition %d: released %v for a non-negative aggregate", i, r.Value)
					}
					if !(r.CILow <= r.CIHigh) || math.IsNaN(r.CILow) || math.IsNaN(r.CIHigh) {
						t.Fatalf("repetition %d: interval [%v, %v]", i, r.CILow, r.CIHigh)
					}
				}
			})
		}
	}
}

func TestReleaseAtLargeEpsilonOfEmptyPartitionIsZero(t *testing.T) {
	for _, s := range specs(bigEpsilon, 0) {
		t.Run(name(s), func(t *testing.T) {
			r, err := one(s.Release(nil))
			if err != nil {
				t.Fatal(err)
			}
			if r.Value > tolerance(s) {
				t.Errorf("released %v for an empty partition, tolerance %v", r.Value, tolerance(s))
			}
		})
	}
}

// TestReleaseRefusesStateOfAnotherSpec pins the guarantee that a worker cannot weaken the
// mechanism: the engine releases only state built under exactly the plan's parameters.
func TestReleaseRefusesStateOfAnotherSpec(t *testing.T) {
	count := dp.Spec{Kind: dp.Count, Value: -1, Epsilon: 1, MaxPartitions: 2, MaxPerPartition: 5}
	distinct := dp.Spec{Kind: dp.CountDistinct, Value: -1, Epsilon: 1, MaxPartitions: 2, MaxPerPartition: 5}
	sum := dp.Spec{Kind: dp.Sum, Lower: 0, Upper: 100, Epsilon: 1, MaxPartitions: 2, MaxPerPartition: 5}
	with := func(s dp.Spec, f func(*dp.Spec)) dp.Spec { f(&s); return s }
	for _, tc := range []struct {
		name         string
		plan, worker dp.Spec
		ok           bool
	}{
		{"count identical spec accepted", count, count, true},
		{"count_distinct identical spec accepted", distinct, distinct, true},
		{"sum identical spec accepted", sum, sum, true},
		{"sum other value index accepted", sum, with(sum, func(s *dp.Spec) { s.Value = 3 }), true},
		{"count_distinct other L∞ accepted (L∞ is not in its mechanism)", distinct, with(distinct, func(s *dp.Spec) { s.MaxPerPartition = 50 }), true},
		{"count larger epsilon", count, with(count, func(s *dp.Spec) { s.Epsilon = 10 }), false},
		{"count smaller epsilon", count, with(count, func(s *dp.Spec) { s.Epsilon = 0.5 }), false},
		{"count gaussian instead of laplace", count, with(count, func(s *dp.Spec) { s.Delta = 1e-5 }), false},
		{"count other delta", with(count, func(s *dp.Spec) { s.Delta = 1e-5 }), with(count, func(s *dp.Spec) { s.Delta = 1e-3 }), false},
		{"count smaller L0", count, with(count, func(s *dp.Spec) { s.MaxPartitions = 1 }), false},
		{"count smaller L∞", count, with(count, func(s *dp.Spec) { s.MaxPerPartition = 1 }), false},
		{"count larger L∞", count, with(count, func(s *dp.Spec) { s.MaxPerPartition = 50 }), false},
		{"count_distinct larger epsilon", distinct, with(distinct, func(s *dp.Spec) { s.Epsilon = 10 }), false},
		{"count_distinct smaller L0", distinct, with(distinct, func(s *dp.Spec) { s.MaxPartitions = 1 }), false},
		{"count_distinct gaussian instead of laplace", distinct, with(distinct, func(s *dp.Spec) { s.Delta = 1e-5 }), false},
		{"sum larger epsilon", sum, with(sum, func(s *dp.Spec) { s.Epsilon = 10 }), false},
		{"sum smaller upper bound", sum, with(sum, func(s *dp.Spec) { s.Upper = 10 }), false},
		{"sum larger upper bound", sum, with(sum, func(s *dp.Spec) { s.Upper = 1000 }), false},
		{"sum negative lower bound", sum, with(sum, func(s *dp.Spec) { s.Lower = -100 }), false},
		{"sum smaller L0", sum, with(sum, func(s *dp.Spec) { s.MaxPartitions = 1 }), false},
		{"sum smaller L∞", sum, with(sum, func(s *dp.Spec) { s.MaxPerPartition = 1 }), false},
		{"count state released as count_distinct", distinct, count, false},
		{"count state released as sum", sum, count, false},
		{"count_distinct state released as count", count, distinct, false},
		{"count_distinct state released as sum", sum, distinct, false},
		{"sum state released as count", count, sum, false},
		{"sum state released as count_distinct", distinct, sum, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			state := encode(t, tc.worker, []unit{{1, 1}, {2, 3}})
			r, err := one(tc.plan.Release(state))
			if tc.ok && err != nil {
				t.Fatalf("refused a state built under a matching spec: %v", err)
			}
			if !tc.ok && err == nil {
				t.Fatalf("released %+v from a state built under %+v", r, tc.worker)
			}
		})
	}
}

func TestReleaseRefusesUndecodableState(t *testing.T) {
	for _, s := range specs(1, 0) {
		for _, state := range [][]byte{{}, []byte("not a gob"), {0xff, 0x00, 0x13}} {
			if r, err := one(s.Release(state)); err == nil {
				t.Errorf("%s: released %+v from %q", s.Kind, r, state)
			}
		}
	}
}

func TestMechanismIsLaplaceForDeltaZeroAndGaussianOtherwise(t *testing.T) {
	for _, tc := range []struct {
		delta float64
		want  string
	}{
		{0, "laplace"},
		{1e-12, "gaussian"},
		{1e-5, "gaussian"},
		{0.5, "gaussian"},
	} {
		for _, s := range specs(1, tc.delta) {
			if got := s.Mechanism(); got != tc.want {
				t.Errorf("%s δ=%v: Mechanism() = %s, want %s", s.Kind, tc.delta, got, tc.want)
			}
		}
	}
}

func TestLaplaceNoiseScaleIsSqrt2L0LInfOverEpsilon(t *testing.T) {
	for _, tc := range []struct {
		name string
		spec dp.Spec
		lInf float64
	}{
		{"count L∞ is rows per unit", dp.Spec{Kind: dp.Count, Epsilon: 0.5, MaxPartitions: 3, MaxPerPartition: 5}, 5},
		{"count_distinct L∞ is one", dp.Spec{Kind: dp.CountDistinct, Epsilon: 0.5, MaxPartitions: 3, MaxPerPartition: 5}, 1},
		{"sum L∞ is rows times upper", dp.Spec{Kind: dp.Sum, Lower: 0, Upper: 100, Epsilon: 2, MaxPartitions: 4, MaxPerPartition: 5}, 500},
		{"sum L∞ is rows times |lower| when larger", dp.Spec{Kind: dp.Sum, Lower: -300, Upper: 100, Epsilon: 2, MaxPartitions: 4, MaxPerPartition: 5}, 1500},
		{"sum with positive lower bound", dp.Spec{Kind: dp.Sum, Lower: 10, Upper: 20, Epsilon: 1, MaxPartitions: 1, MaxPerPartition: 2}, 40},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := math.Sqrt2 * float64(tc.spec.MaxPartitions) * tc.lInf / tc.spec.Epsilon
			if got := tc.spec.NoiseScale(); math.Abs(got-want) > 1e-9*want {
				t.Errorf("NoiseScale() = %v, want %v", got, want)
			}
			l0, lInf := tc.spec.Sensitivity()
			if l0 != tc.spec.MaxPartitions || lInf != tc.lInf {
				t.Errorf("Sensitivity() = %d, %v; want %d, %v", l0, lInf, tc.spec.MaxPartitions, tc.lInf)
			}
		})
	}
}

func TestGaussianNoiseScaleIsTheLibrarySigma(t *testing.T) {
	s := dp.Spec{Kind: dp.Sum, Lower: 0, Upper: 100, Epsilon: 1, Delta: 1e-5, MaxPartitions: 2, MaxPerPartition: 5}
	if got, want := s.NoiseScale(), noise.SigmaForGaussian(2, 500, 1, 1e-5); got != want {
		t.Errorf("NoiseScale() = %v, want σ = %v", got, want)
	}
}

// TestNoiseScaleIsTheStandardDeviationOfReleasedNoise is the statistical tier: 4000 releases of
// an empty partition whose bounds straddle zero (so no clamping), sample standard deviation
// within 15% of NoiseScale. The sample s.d. of n = 4000 draws has relative s.d. about
// sqrt((κ−1)/4n) — 0.018 for Laplace (κ = 6), 0.011 for Gaussian (κ = 3) — so 15% is more
// than 8 standard errors: it does not flake.
func TestNoiseScaleIsTheStandardDeviationOfReleasedNoise(t *testing.T) {
	const n = 4000
	for _, delta := range []float64{0, 1e-5} {
		s := dp.Spec{Kind: dp.Sum, Lower: -100, Upper: 100, Epsilon: 70, Delta: delta, MaxPartitions: 1, MaxPerPartition: 5}
		t.Run(s.Mechanism(), func(t *testing.T) {
			var sum, sq float64
			for i := 0; i < n; i++ {
				r, err := one(s.Release(nil))
				if err != nil {
					t.Fatal(err)
				}
				sum += r.Value
				sq += r.Value * r.Value
			}
			mean := sum / n
			sd := math.Sqrt(sq/n - mean*mean)
			if want := s.NoiseScale(); math.Abs(sd-want) > 0.15*want {
				t.Errorf("sample s.d. %v, NoiseScale %v", sd, want)
			}
			if se := s.NoiseScale() / math.Sqrt(n); math.Abs(mean) > 6*se {
				t.Errorf("noise mean %v, more than 6 standard errors (%v) from 0", mean, se)
			}
		})
	}
}

// TestReleaseAddsNoise guards against a release path that forgets the noise: at epsilon 0.1 a
// count with L∞ 5 has Laplace scale b = 50, so the rounded noise is 0 with probability
// 1 − exp(−0.5/50) ≈ 0.01; 20 exact releases in a row have probability 1e−40.
func TestReleaseAddsNoise(t *testing.T) {
	s := dp.Spec{Kind: dp.Count, Epsilon: 0.1, MaxPartitions: 1, MaxPerPartition: 5}
	us := units(1000, s)
	want := truth(s, us)
	state := encode(t, s, us)
	for i := 0; i < 20; i++ {
		r, err := one(s.Release(state))
		if err != nil {
			t.Fatal(err)
		}
		if r.Value != want {
			return
		}
	}
	t.Errorf("20 releases all returned the true total %v", want)
}

func TestAccumulatorClampsUnitContribution(t *testing.T) {
	for _, tc := range []struct {
		name string
		spec dp.Spec
		unit unit
		want float64
	}{
		{"count rows above L∞", dp.Spec{Kind: dp.Count, MaxPerPartition: 5}, unit{rows: 100}, 5},
		{"sum above L∞·upper", dp.Spec{Kind: dp.Sum, Lower: 0, Upper: 100, MaxPerPartition: 5}, unit{rows: 5, sum: 1e9}, 500},
		{"sum below L∞·lower", dp.Spec{Kind: dp.Sum, Lower: -10, Upper: 100, MaxPerPartition: 5}, unit{rows: 5, sum: -1e9}, -50},
		{"sum below zero with non-negative bounds", dp.Spec{Kind: dp.Sum, Lower: 0, Upper: 100, MaxPerPartition: 5}, unit{rows: 1, sum: -1e9}, 0},
		{"sum within bounds kept", dp.Spec{Kind: dp.Sum, Lower: 0, Upper: 100, MaxPerPartition: 5}, unit{rows: 3, sum: 250}, 250},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.spec
			s.Epsilon, s.MaxPartitions = bigEpsilon, 1
			r, err := one(s.Release(encode(t, s, []unit{tc.unit})))
			if err != nil {
				t.Fatal(err)
			}
			if math.Abs(r.Value-tc.want) > tolerance(s) {
				t.Errorf("released %v, want %v ± %v", r.Value, tc.want, tolerance(s))
			}
		})
	}
}

// TestMergeEqualsOneAccumulatorFedBoth compares the pre-noise states byte for byte; no noise.
func TestMergeEqualsOneAccumulatorFedBoth(t *testing.T) {
	for _, s := range specs(1, 1e-5) {
		t.Run(string(s.Kind), func(t *testing.T) {
			us := units(301, s)
			a, _ := s.NewAccumulator(1000)
			b, _ := s.NewAccumulator(1000)
			both, _ := s.NewAccumulator(1000)
			for i, u := range us {
				half := a
				if i%3 == 0 {
					half = b
				}
				if err := half.AddUnit(u.rows, u.values()); err != nil {
					t.Fatal(err)
				}
				if err := both.AddUnit(u.rows, u.values()); err != nil {
					t.Fatal(err)
				}
			}
			if err := a.Merge(b); err != nil {
				t.Fatal(err)
			}
			merged, err := a.Encode()
			if err != nil {
				t.Fatal(err)
			}
			single, err := both.Encode()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(merged, single) {
				t.Errorf("merged state differs from one accumulator fed both halves")
			}
		})
	}
}

func TestMergeRefusesAccumulatorOfAnotherKindOrSpec(t *testing.T) {
	all := specs(1, 0)
	for _, s := range all {
		for _, o := range append(all, dp.Spec{Kind: s.Kind, Lower: s.Lower, Upper: s.Upper, Epsilon: 2, MaxPartitions: s.MaxPartitions, MaxPerPartition: s.MaxPerPartition}) {
			if reflect.DeepEqual(o, s) {
				continue
			}
			a, _ := s.NewAccumulator(1000)
			b, _ := o.NewAccumulator(1000)
			if err := a.Merge(b); err == nil {
				t.Errorf("merged a %s (ε=%v) accumulator into a %s (ε=%v) one", o.Kind, o.Epsilon, s.Kind, s.Epsilon)
			}
		}
	}
}

func TestSpecValidateRefusesParametersTheLibraryRejects(t *testing.T) {
	ok := dp.Spec{Kind: dp.Count, Epsilon: 1, MaxPartitions: 1, MaxPerPartition: 1}
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid spec refused: %v", err)
	}
	with := func(f func(*dp.Spec)) dp.Spec { s := ok; f(&s); return s }
	for _, tc := range []struct {
		name string
		spec dp.Spec
	}{
		{"unknown kind", with(func(s *dp.Spec) { s.Kind = "median" })},
		{"epsilon zero", with(func(s *dp.Spec) { s.Epsilon = 0 })},
		{"epsilon negative", with(func(s *dp.Spec) { s.Epsilon = -1 })},
		{"epsilon infinite", with(func(s *dp.Spec) { s.Epsilon = math.Inf(1) })},
		{"delta one", with(func(s *dp.Spec) { s.Delta = 1 })},
		{"delta negative", with(func(s *dp.Spec) { s.Delta = -1e-6 })},
		{"L0 zero", with(func(s *dp.Spec) { s.MaxPartitions = 0 })},
		{"sum with infinite bound", dp.Spec{Kind: dp.Sum, Upper: math.Inf(1), Epsilon: 1, MaxPartitions: 1, MaxPerPartition: 1}},
		// Equal bounds would hand the library a zero sensitivity; it never returns from that.
		{"sum with equal bounds", dp.Spec{Kind: dp.Sum, Lower: 0, Upper: 0, Epsilon: 1, MaxPartitions: 1, MaxPerPartition: 1}},
		{"sum with lower above upper", dp.Spec{Kind: dp.Sum, Lower: 5, Upper: 1, Epsilon: 1, MaxPartitions: 1, MaxPerPartition: 1}},
		{"epsilon above the cap", with(func(s *dp.Spec) { s.Epsilon = dp.MaxEpsilon * 2 })},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.spec.Validate(); err == nil {
				t.Errorf("Validate accepted %+v", tc.spec)
			}
		})
	}
}
