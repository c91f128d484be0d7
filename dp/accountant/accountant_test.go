package accountant_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/c1b99f93/cleanroom/dp"
	"github.com/c1b99f93/cleanroom/dp/accountant"
	"github.com/google/differential-privacy/go/v3/noise"
)

// near reports whether got is within a relative tolerance tol of want.
func near(got, want, tol float64) bool {
	return math.Abs(got-want) <= tol*math.Max(math.Abs(want), 1e-300)
}

// gaussianEvent is the event dp.Component records for Gaussian noise calibrated by the library.
func gaussianEvent(l0 int64, lInf, eps, delta float64) accountant.Event {
	return accountant.Event{Mechanism: accountant.MechanismGaussian, Epsilon: eps, Delta: delta, L0: l0, LInf: lInf,
		NoiseStddev: noise.SigmaForGaussian(l0, lInf, eps, delta)}
}

func laplaceEvent(eps float64) accountant.Event {
	return accountant.Event{Mechanism: accountant.MechanismLaplace, Epsilon: eps, L0: 1, LInf: 1, NoiseStddev: math.Sqrt2 / eps}
}

func selectionEvent(eps, delta float64) accountant.Event {
	return accountant.Event{Mechanism: "preagg_select_partition", Epsilon: eps, Delta: delta, L0: 3, LInf: 1}
}

// muOf is the GDP parameter of a Gaussian event, computed here independently of the package.
func muOf(e accountant.Event) float64 { return math.Sqrt(float64(e.L0)) * e.LInf / e.NoiseStddev }

// Published values of the Gaussian mechanism's privacy profile. Source: Google's dp_accounting,
// python/dp_accounting/dp_accounting/pld/privacy_loss_mechanism_test.py (github.com/google/
// differential-privacy), rows with sampling_prob 1 of test_gaussian_get_delta_for_epsilon and
// (ε ≤ 0) test_gaussian_get_delta_for_epsilon_vectorized: (standard_deviation, sensitivity,
// epsilon) → delta, given there to 8 decimals and checked with assertAlmostEqual (7 places).
// μ = sensitivity / standard_deviation.
var publishedGaussianDeltas = []struct {
	sigma, sensitivity, eps, delta float64
}{
	{1, 1, 1, 0.12693674},
	{2, 2, 1, 0.12693674},
	{1, 3, 1, 0.78760074},
	{2, 6, 1, 0.78760074},
	{1, 1, 2, 0.02092364},
	{5, 5, 2, 0.02092364},
	{1, 1, 0, 0.38292492}, // = 2Φ(1/2) − 1, the ε = 0 identity below
	{1, 1, -1, 0.67881797},
	{1, 1, -2, 0.86749642},
}

func TestGaussianDeltaMatchesGoogleDPAccounting(t *testing.T) {
	for _, tc := range publishedGaussianDeltas {
		t.Run(fmt.Sprintf("sigma=%g/s=%g/eps=%g", tc.sigma, tc.sensitivity, tc.eps), func(t *testing.T) {
			got := accountant.GaussianDelta(tc.sensitivity/tc.sigma, tc.eps)
			if math.Abs(got-tc.delta) > 5e-9 {
				t.Errorf("GaussianDelta(%g, %g) = %.10f, published %.8f", tc.sensitivity/tc.sigma, tc.eps, got, tc.delta)
			}
		})
	}
}

func TestGaussianEpsilonInvertsGoogleDPAccounting(t *testing.T) {
	for _, tc := range publishedGaussianDeltas {
		if tc.eps <= 0 {
			continue // ε ≥ 0 only: at δ(0) GaussianEpsilon answers 0
		}
		t.Run(fmt.Sprintf("sigma=%g/s=%g/delta=%g", tc.sigma, tc.sensitivity, tc.delta), func(t *testing.T) {
			got, err := accountant.GaussianEpsilon(tc.sensitivity/tc.sigma, tc.delta)
			if err != nil {
				t.Fatal(err)
			}
			// The published δ is rounded to 5e-9; |dδ/dε| ≥ 0.02 here, so ε is good to 3e-7.
			if math.Abs(got-tc.eps) > 1e-6 {
				t.Errorf("GaussianEpsilon(%g, %g) = %.9f, want %g", tc.sensitivity/tc.sigma, tc.delta, got, tc.eps)
			}
		})
	}
}

// At ε = 0, δ is the total variation distance between N(0, 1) and N(μ, 1), which has the closed
// form 2Φ(μ/2) − 1 = erf(μ/(2√2)) (Dong, Roth & Su 2019: the trade-off curve G_μ at its symmetric
// point; for μ = 1 it is 0.3829, the value the brief and dp_accounting give). math.Erf is a path
// independent of the package's erfc-based Φ.
func TestGaussianDeltaAtZeroIsTotalVariationDistance(t *testing.T) {
	for _, mu := range []float64{1e-4, 0.1, 0.5, 1, 2, 5, 10} {
		t.Run(fmt.Sprint(mu), func(t *testing.T) {
			want := math.Erf(mu / (2 * math.Sqrt2))
			if got := accountant.GaussianDelta(mu, 0); !near(got, want, 1e-9) {
				t.Errorf("GaussianDelta(%g, 0) = %.15g, want erf(μ/2√2) = %.15g", mu, got, want)
			}
		})
	}
	if got := accountant.GaussianDelta(1, 0); math.Abs(got-0.3829) > 5e-5 {
		t.Errorf("GaussianDelta(1, 0) = %g, want ≈ 0.3829", got)
	}
}

// GaussianEpsilon must land on the profile from the safe side: δ(ε) ≤ target at the ε returned
// and above it one float lower, over a range of μ that crosses e^ε's overflow (μ ≥ 40 at these
// deltas needs ε > 709), which a naive e^ε·Φ(·) would get wrong.
func TestGaussianEpsilonIsTheSmallestEpsilonMeetingDelta(t *testing.T) {
	for _, mu := range []float64{1e-6, 1e-3, 0.3, 1, 10, 100, 1000, 1e5} {
		for _, delta := range []float64{1e-12, 1e-6, 1e-2} {
			t.Run(fmt.Sprintf("mu=%g/delta=%g", mu, delta), func(t *testing.T) {
				eps, err := accountant.GaussianEpsilon(mu, delta)
				if err != nil {
					t.Fatal(err)
				}
				if eps == 0 {
					if d0 := accountant.GaussianDelta(mu, 0); d0 > delta {
						t.Fatalf("ε = 0 but δ(0) = %g > %g", d0, delta)
					}
					return
				}
				if d := accountant.GaussianDelta(mu, eps); !(d <= delta) {
					t.Errorf("δ(%g) = %g exceeds target %g", eps, d, delta)
				}
				if d := accountant.GaussianDelta(mu, eps*(1-1e-9)); !(d > delta) {
					t.Errorf("δ(ε·(1−1e-9)) = %g already meets %g: ε = %g is not the smallest", d, delta, eps)
				}
				// For large μ the privacy loss is N(μ²/2, μ²), so ε ≈ μ²/2 + μ·z with z of order √(2 ln 1/δ).
				if mu >= 100 && (eps < mu*mu/2 || eps > mu*mu/2+mu*10) {
					t.Errorf("ε = %g, outside [μ²/2, μ²/2 + 10μ] for μ = %g", eps, mu)
				}
			})
		}
	}
}

// Published values of the Canonne–Kamath–Steinke conversion. Source: OpenDP,
// rust/src/combinators/measure_cast/zCDP_to_approxDP/test.rs and cdp_delta/test.rs (github.com/
// opendp/opendp), whose cdp_epsilon/cdp_delta implement CKS 2020 Section 2.3 with conservative
// rounding: ρ = (1/4)²/2, δ = 1e-3 → ε = 0.6880024554878086; cdp_delta(ρ, ε) pairs
// (1/32, 0) → 0.1508457845622862, (0.05, 0.25) → 8.17727531036956e-2, (0.5, 0) →
// 0.5588356393474351, read here in the ε direction.
func TestZCDPEpsilonMatchesOpenDP(t *testing.T) {
	for _, tc := range []struct {
		name            string
		rho, delta, eps float64
	}{
		{"gaussian scale 4 at 1e-3", 1.0 / 32, 1e-3, 0.6880024554878086},
		{"delta at eps 0 rho 1/32", 1.0 / 32, 0.1508457845622862, 0},
		{"delta at eps 0.25 rho 0.05", 0.05, 8.17727531036956e-2, 0.25},
		{"delta at eps 0 rho 0.5", 0.5, 0.5588356393474351, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := accountant.ZCDPEpsilon(tc.rho, tc.delta)
			if err != nil {
				t.Fatal(err)
			}
			if math.Abs(got-tc.eps) > 1e-9 {
				t.Errorf("ZCDPEpsilon(%g, %g) = %.16g, OpenDP %.16g", tc.rho, tc.delta, got, tc.eps)
			}
		})
	}
}

// Any ρ-zCDP → (ε, δ) conversion is bounded on both sides: it cannot beat the exact profile of
// the Gaussian mechanism with μ = √(2ρ), which is exactly ρ-zCDP (Bun & Steinke 2016), and CKS
// must beat Bun–Steinke's ρ + 2√(ρ ln 1/δ) (Proposition 1.3), whose value at ρ = 0.5, δ = 1e-5 is
// 0.5 + 2√(0.5·ln 1e5) ≈ 5.2985.
func TestZCDPEpsilonLiesBetweenExactGaussianAndBunSteinke(t *testing.T) {
	bs := func(rho, delta float64) float64 { return rho + 2*math.Sqrt(rho*math.Log(1/delta)) }
	if got := bs(0.5, 1e-5); math.Abs(got-5.2985) > 1e-4 {
		t.Fatalf("Bun–Steinke(0.5, 1e-5) = %g, want ≈ 5.2985", got)
	}
	for _, rho := range []float64{1e-6, 1e-3, 0.05, 0.5, 2, 50} {
		for _, delta := range []float64{1e-12, 1e-5, 1e-2} {
			t.Run(fmt.Sprintf("rho=%g/delta=%g", rho, delta), func(t *testing.T) {
				got, err := accountant.ZCDPEpsilon(rho, delta)
				if err != nil {
					t.Fatal(err)
				}
				exact, err := accountant.GaussianEpsilon(math.Sqrt(2*rho), delta)
				if err != nil {
					t.Fatal(err)
				}
				if !(got >= exact*(1-1e-12)) {
					t.Errorf("ZCDPEpsilon = %.12g below the exact Gaussian %.12g: unsound", got, exact)
				}
				if !(got < bs(rho, delta)) {
					t.Errorf("ZCDPEpsilon = %.12g, not below Bun–Steinke %.12g", got, bs(rho, delta))
				}
			})
		}
	}
}

func TestConversionsRefuseParametersOutsideTheirDomain(t *testing.T) {
	for _, tc := range []struct {
		name string
		call func() (float64, error)
	}{
		{"gaussian negative mu", func() (float64, error) { return accountant.GaussianEpsilon(-1, 1e-5) }},
		{"gaussian NaN mu", func() (float64, error) { return accountant.GaussianEpsilon(math.NaN(), 1e-5) }},
		{"gaussian zero delta", func() (float64, error) { return accountant.GaussianEpsilon(1, 0) }},
		{"gaussian delta above 1", func() (float64, error) { return accountant.GaussianEpsilon(1, 1.5) }},
		{"gaussian NaN delta", func() (float64, error) { return accountant.GaussianEpsilon(1, math.NaN()) }},
		{"zcdp negative rho", func() (float64, error) { return accountant.ZCDPEpsilon(-0.1, 1e-5) }},
		{"zcdp NaN rho", func() (float64, error) { return accountant.ZCDPEpsilon(math.NaN(), 1e-5) }},
		{"zcdp zero delta", func() (float64, error) { return accountant.ZCDPEpsilon(0.1, 0) }},
		{"zcdp negative delta", func() (float64, error) { return accountant.ZCDPEpsilon(0.1, -1e-5) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := tc.call(); !errors.Is(err, accountant.ErrInvalidParameter) {
				t.Errorf("err = %v, want ErrInvalidParameter", err)
			}
		})
	}
	if !math.IsNaN(accountant.GaussianDelta(-1, 0)) {
		t.Error("GaussianDelta(-1, 0) is not NaN")
	}
}

// The library calibrates σ with the same analytic Gaussian profile, searching σ to a relative
// accuracy of 1e-3 (noise.gaussianSigmaAccuracy) and returning the upper end of its bracket. So
// the ε recovered from its σ is at most the ε asked for, and the σ it returned is within that
// accuracy of the exact one: with μ enlarged by 1e-3 the asked ε must be reached again.
func TestSingleGaussianRoundTripsThroughSigmaForGaussian(t *testing.T) {
	const sigmaAccuracy = 1e-3
	for _, tc := range []struct {
		l0         int64
		lInf       float64
		eps, delta float64
	}{
		{1, 1, 1, 1e-5},
		{1, 1, 0.1, 1e-6},
		{1, 1, 0.01, 1e-5},
		{3, 2, 0.5, 1e-9},
		{10, 5, 5, 1e-10},
		{4, 100, 2, 1e-7},
		{1, 1, 20, 1e-12},
	} {
		t.Run(fmt.Sprintf("l0=%d/linf=%g/eps=%g/delta=%g", tc.l0, tc.lInf, tc.eps, tc.delta), func(t *testing.T) {
			ev := gaussianEvent(tc.l0, tc.lInf, tc.eps, tc.delta)
			r, err := accountant.Compose([]accountant.Event{ev})
			if err != nil {
				t.Fatal(err)
			}
			got := r.Tighter.Epsilon
			if r.Method != accountant.MethodGDP || r.Tighter.Delta != tc.delta {
				t.Fatalf("method %s at δ %g, want gdp at %g", r.Method, r.Tighter.Delta, tc.delta)
			}
			if got > tc.eps*(1+1e-12) {
				t.Errorf("ε = %.9g above the %g the library calibrated for: σ would be too small", got, tc.eps)
			}
			if !near(got, tc.eps, 2e-3) {
				t.Errorf("ε = %.9g, want %g within 2e-3", got, tc.eps)
			}
			upper, err := accountant.GaussianEpsilon(muOf(ev)*(1+sigmaAccuracy), tc.delta)
			if err != nil {
				t.Fatal(err)
			}
			if upper < tc.eps {
				t.Errorf("with μ·(1+%g) ε = %.9g still below %g: profile and library disagree", sigmaAccuracy, upper, tc.eps)
			}
		})
	}
}

// Gaussian events compose as GDP with μ = √Σμᵢ² (Dong, Roth & Su 2019, Corollary 3.3): k copies
// of one event must give the same report as a single event whose σ is divided by √k, charged k
// times the budget. And for k ≥ 2 the tighter figure must be strictly below the basic one.
func TestKIdenticalGaussiansComposeAsOneWithMuTimesSqrtK(t *testing.T) {
	ev := gaussianEvent(2, 3, 0.3, 1e-7)
	for _, k := range []int{1, 2, 5, 10, 100} {
		t.Run(fmt.Sprint(k), func(t *testing.T) {
			events := make([]accountant.Event, k)
			for i := range events {
				events[i] = ev
			}
			got, err := accountant.Compose(events)
			if err != nil {
				t.Fatal(err)
			}
			one := ev
			one.NoiseStddev /= math.Sqrt(float64(k))
			one.Epsilon *= float64(k)
			one.Delta *= float64(k)
			want, err := accountant.Compose([]accountant.Event{one})
			if err != nil {
				t.Fatal(err)
			}
			if !near(got.Tighter.Epsilon, want.Tighter.Epsilon, 1e-9) || !near(got.Tighter.Delta, want.Tighter.Delta, 1e-12) {
				t.Errorf("%d events: tighter %+v, one event with μ√k: %+v", k, got.Tighter, want.Tighter)
			}
			if got.Events != k || !near(got.Basic.Epsilon, float64(k)*0.3, 1e-12) || !near(got.Basic.Delta, float64(k)*1e-7, 1e-12) {
				t.Errorf("basic %+v over %d events, want k·(0.3, 1e-7)", got.Basic, got.Events)
			}
			if k >= 2 && !(got.Tighter.Epsilon < got.Basic.Epsilon) {
				t.Errorf("k = %d: tighter ε %g not below basic %g", k, got.Tighter.Epsilon, got.Basic.Epsilon)
			}
		})
	}
}

// A randomized property test over mixed histories: the tighter figure is never looser than the
// basic one, is at the same delta, and is a bound the test can re-derive from the events: for
// "gdp" the Gaussian profile at the figure (minus the basically added ε) meets the noise delta;
// for "zcdp" the figure is never below the exact Gaussian with the same total ρ.
func TestTighterIsNeverLooserThanBasicAndIsSound(t *testing.T) {
	rng := rand.New(rand.NewPCG(20240601, 1))
	methods := map[string]int{}
	for n := 0; n < 400; n++ {
		var events []accountant.Event
		var muSq, rho, lapEps, otherEps, otherDelta, noiseDelta float64
		for i := rng.IntN(8); i >= 0; i-- {
			switch rng.IntN(4) {
			case 0, 1:
				ev := gaussianEvent(1+rng.Int64N(5), 0.5+10*rng.Float64(), 0.05+2*rng.Float64(), math.Pow(10, -4-6*rng.Float64()))
				// Some noise scales below what the charge calibrates for, so that some
				// histories' composed figure exceeds the basic one and must not be reported.
				ev.NoiseStddev *= 0.6 + 0.6*rng.Float64()
				events = append(events, ev)
				mu := muOf(ev)
				muSq += mu * mu
				rho += mu * mu / 2
				noiseDelta += ev.Delta
			case 2:
				// Laplace releases come in bursts (a job with many aggregates), which is where
				// zCDP can beat adding their ε basically.
				for j := rng.IntN(40); j >= 0; j-- {
					ev := laplaceEvent(0.01 + 0.3*rng.Float64())
					events = append(events, ev)
					rho += ev.Epsilon * ev.Epsilon / 2
					lapEps += ev.Epsilon
				}
			case 3:
				ev := selectionEvent(0.1*rng.Float64(), 1e-9*rng.Float64())
				events = append(events, ev)
				otherEps += ev.Epsilon
				otherDelta += ev.Delta
			}
		}
		r, err := accountant.Compose(events)
		if err != nil {
			t.Fatalf("history %d: %v", n, err)
		}
		methods[r.Method]++
		if r.Events != len(events) || r.Tighter.Delta != r.Basic.Delta || !near(r.Basic.Delta, noiseDelta+otherDelta, 1e-12) {
			t.Fatalf("history %d: report %+v, %d events, deltas %g + %g", n, r, len(events), noiseDelta, otherDelta)
		}
		if !(r.Tighter.Epsilon <= r.Basic.Epsilon) || r.Tighter.Epsilon < 0 {
			t.Fatalf("history %d: tighter ε %g vs basic %g", n, r.Tighter.Epsilon, r.Basic.Epsilon)
		}
		switch r.Method {
		case accountant.MethodBasic:
			if r.Tighter != r.Basic {
				t.Fatalf("history %d: method basic but tighter %+v ≠ basic %+v", n, r.Tighter, r.Basic)
			}
		case accountant.MethodGDP:
			gaussEps := r.Tighter.Epsilon - lapEps - otherEps
			if d := accountant.GaussianDelta(math.Sqrt(muSq), gaussEps); !(d <= noiseDelta*(1+1e-9)) {
				t.Fatalf("history %d: gdp figure %g leaves δ = %g above %g", n, r.Tighter.Epsilon, d, noiseDelta)
			}
		case accountant.MethodZCDP:
			exact, err := accountant.GaussianEpsilon(math.Sqrt(2*rho), noiseDelta)
			if err != nil {
				t.Fatal(err)
			}
			if r.Tighter.Epsilon-otherEps < exact*(1-1e-12) {
				t.Fatalf("history %d: zcdp figure %g below the exact Gaussian bound %g for ρ = %g", n, r.Tighter.Epsilon, exact+otherEps, rho)
			}
		default:
			t.Fatalf("history %d: unknown method %q", n, r.Method)
		}
	}
	t.Logf("methods over %d histories: %v", 400, methods)
	// The generator must have exercised every method, or the checks above prove little.
	for _, m := range []string{accountant.MethodBasic, accountant.MethodGDP, accountant.MethodZCDP} {
		if methods[m] == 0 {
			t.Errorf("no history produced method %s (%v)", m, methods)
		}
	}
}

// Laplace, Gaussian and a partition selection together: many Laplace releases make zCDP the best
// composition; the selection's ε and δ are added basically, and its δ is kept out of the delta
// the zCDP bound is converted at.
func TestMixedHistoryUsesZCDPAndAddsSelectionBasically(t *testing.T) {
	var events []accountant.Event
	for i := 0; i < 100; i++ {
		events = append(events, laplaceEvent(0.05))
	}
	g := gaussianEvent(3, 2, 0.5, 1e-6)
	sel := selectionEvent(0.3, 1e-7)
	events = append(events, g, sel)

	r, err := accountant.Compose(events)
	if err != nil {
		t.Fatal(err)
	}
	if !near(r.Basic.Epsilon, 100*0.05+0.5+0.3, 1e-12) || !near(r.Basic.Delta, 1e-6+1e-7, 1e-12) {
		t.Fatalf("basic %+v, want (5.8, 1.1e-6)", r.Basic)
	}
	rho := 100*0.05*0.05/2 + muOf(g)*muOf(g)/2
	zcdp, err := accountant.ZCDPEpsilon(rho, 1e-6) // target minus the selection's δ
	if err != nil {
		t.Fatal(err)
	}
	if r.Method != accountant.MethodZCDP || !near(r.Tighter.Epsilon, zcdp+0.3, 1e-12) || r.Tighter.Delta != r.Basic.Delta {
		t.Errorf("report %+v, want zcdp with ε = %g + 0.3 at δ = %g", r, zcdp, r.Basic.Delta)
	}
	if r.Tighter.Epsilon > r.Basic.Epsilon/2 {
		t.Errorf("tighter ε %g is not well below basic %g: the zCDP path gains nothing", r.Tighter.Epsilon, r.Basic.Epsilon)
	}
}

// A little Laplace beside Gaussian noise: the exact GDP bound of the Gaussian part plus the
// Laplace ε (which uses no delta) beats converting everything through zCDP.
func TestSmallLaplaceBesideGaussiansKeepsTheExactGaussianBound(t *testing.T) {
	gs := []accountant.Event{gaussianEvent(1, 1, 1, 1e-6), gaussianEvent(1, 1, 1, 1e-6), gaussianEvent(1, 1, 1, 1e-6)}
	events := append([]accountant.Event{laplaceEvent(0.01)}, gs...)
	r, err := accountant.Compose(events)
	if err != nil {
		t.Fatal(err)
	}
	mu := math.Sqrt(3) * muOf(gs[0])
	gdp, err := accountant.GaussianEpsilon(mu, 3e-6)
	if err != nil {
		t.Fatal(err)
	}
	if r.Method != accountant.MethodGDP || !near(r.Tighter.Epsilon, gdp+0.01, 1e-12) {
		t.Errorf("report %+v, want gdp with ε = %g + 0.01", r, gdp)
	}
}

// Without delta to convert at, with all of it taken by basic-only events, or when the composed
// bound is worse than the charge (noise smaller than its budget share calibrates for), the
// tighter figure is the basic one.
func TestHistoriesWithoutNoiseDeltaStayBasic(t *testing.T) {
	for _, tc := range []struct {
		name   string
		events []accountant.Event
		want   accountant.Cost
	}{
		{"empty", nil, accountant.Cost{}},
		{"laplace only", []accountant.Event{laplaceEvent(0.5), laplaceEvent(0.25)}, accountant.Cost{Epsilon: 0.75}},
		{"laplace and selection", []accountant.Event{laplaceEvent(0.5), selectionEvent(0.25, 1e-8)}, accountant.Cost{Epsilon: 0.75, Delta: 1e-8}},
		{"selection only", []accountant.Event{selectionEvent(0.5, 1e-8), selectionEvent(0.25, 1e-8)}, accountant.Cost{Epsilon: 0.75, Delta: 2e-8}},
		{"gaussian noisier than its charge", []accountant.Event{{Mechanism: "gaussian", Epsilon: 0.1, Delta: 1e-6, L0: 1, LInf: 1, NoiseStddev: 1}},
			accountant.Cost{Epsilon: 0.1, Delta: 1e-6}},
		{"gaussian charged no delta", []accountant.Event{{Mechanism: "gaussian", Epsilon: 1, L0: 1, LInf: 1, NoiseStddev: 3}, selectionEvent(0.1, 1e-9)},
			accountant.Cost{Epsilon: 1.1, Delta: 1e-9}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := accountant.Compose(tc.events)
			if err != nil {
				t.Fatal(err)
			}
			if r.Method != accountant.MethodBasic || r.Tighter != r.Basic || !near(r.Basic.Epsilon, tc.want.Epsilon, 1e-12) ||
				!near(r.Basic.Delta, tc.want.Delta, 1e-12) || r.Events != len(tc.events) {
				t.Errorf("report %+v, want basic %+v for both", r, tc.want)
			}
		})
	}
}

func TestComposeRefusesInvalidEvents(t *testing.T) {
	good := gaussianEvent(1, 1, 1, 1e-6)
	with := func(f func(*accountant.Event)) accountant.Event { e := good; f(&e); return e }
	nan, inf := math.NaN(), math.Inf(1)
	for _, tc := range []struct {
		name  string
		event accountant.Event
		field string
	}{
		{"unnamed mechanism", with(func(e *accountant.Event) { e.Mechanism = "" }), "mechanism"},
		{"negative epsilon", with(func(e *accountant.Event) { e.Epsilon = -0.1 }), "epsilon"},
		{"NaN epsilon", with(func(e *accountant.Event) { e.Epsilon = nan }), "epsilon"},
		{"infinite epsilon", with(func(e *accountant.Event) { e.Epsilon = inf }), "epsilon"},
		{"negative delta", with(func(e *accountant.Event) { e.Delta = -1e-9 }), "delta"},
		{"NaN delta", with(func(e *accountant.Event) { e.Delta = nan }), "delta"},
		{"delta above 1", with(func(e *accountant.Event) { e.Delta = 1.5 }), "delta"},
		{"negative l0", with(func(e *accountant.Event) { e.L0 = -1 }), "l0_sensitivity"},
		{"negative linf", with(func(e *accountant.Event) { e.LInf = -1 }), "linf_sensitivity"},
		{"NaN linf", with(func(e *accountant.Event) { e.LInf = nan }), "linf_sensitivity"},
		{"gaussian infinite linf", with(func(e *accountant.Event) { e.LInf = inf }), "linf_sensitivity"},
		{"gaussian zero stddev", with(func(e *accountant.Event) { e.NoiseStddev = 0 }), "noise_stddev"},
		{"gaussian infinite stddev", with(func(e *accountant.Event) { e.NoiseStddev = inf }), "noise_stddev"},
		{"negative stddev", with(func(e *accountant.Event) { e.NoiseStddev = -2 }), "noise_stddev"},
		{"laplace NaN stddev", accountant.Event{Mechanism: "laplace", Epsilon: 1, NoiseStddev: nan}, "noise_stddev"},
		{"selection negative delta", selectionEvent(0.1, -1e-9), "delta"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := accountant.Compose([]accountant.Event{good, tc.event})
			var ee *accountant.EventError
			if !errors.Is(err, accountant.ErrInvalidEvent) || !errors.As(err, &ee) {
				t.Fatalf("err = %v, want an *EventError wrapping ErrInvalidEvent", err)
			}
			if ee.Index != 1 || ee.Field != tc.field {
				t.Errorf("refused event %d field %q, want event 1 field %q", ee.Index, ee.Field, tc.field)
			}
		})
	}
	// Zero is not invalid: a zero-ε Laplace records an infinite scale, a selection no noise.
	ok := []accountant.Event{{Mechanism: "laplace", NoiseStddev: inf}, selectionEvent(0, 0)}
	if _, err := accountant.Compose(ok); err != nil {
		t.Errorf("zero-cost events refused: %v", err)
	}
}

// The events are persisted as dp.Component JSON: decoding them into Event must carry every field
// the accountant reads, and a real Gaussian aggregate (three noise additions of a variance) must
// come out tighter than its basic cost.
func TestEventDecodesFromDPComponents(t *testing.T) {
	spec := dp.Spec{Kind: dp.Variance, Value: 0, Lower: 0, Upper: 10, Epsilon: 1, Delta: 1e-6, MaxPartitions: 2, MaxPerPartition: 3}
	comps := spec.Components()
	raw, err := json.Marshal(comps)
	if err != nil {
		t.Fatal(err)
	}
	var events []accountant.Event
	if err := json.Unmarshal(raw, &events); err != nil {
		t.Fatal(err)
	}
	if len(events) != len(comps) || len(events) != 3 {
		t.Fatalf("decoded %d events from %d components", len(events), len(comps))
	}
	for i, c := range comps {
		e := events[i]
		if e.Mechanism != c.Mechanism || e.Epsilon != c.Epsilon || e.Delta != c.Delta || e.L0 != c.L0 || e.LInf != c.LInf || e.NoiseStddev != c.NoiseScale {
			t.Errorf("event %d = %+v, component %+v", i, e, c)
		}
	}
	r, err := accountant.Compose(events)
	if err != nil {
		t.Fatal(err)
	}
	if r.Method != accountant.MethodGDP || !(r.Tighter.Epsilon < r.Basic.Epsilon) || !near(r.Basic.Epsilon, 1, 1e-12) {
		t.Errorf("report %+v, want gdp below the basic ε 1", r)
	}
}
