package accountant

import (
	"fmt"
	"math"
)

// GaussianDelta returns the smallest δ for which a μ-GDP mechanism (for instance Gaussian noise
// of standard deviation σ on a query of L2 sensitivity μ·σ) is (ε, δ)-DP:
//
//	δ(ε) = Φ(−ε/μ + μ/2) − e^ε·Φ(−ε/μ − μ/2)
//
// (Balle & Wang 2018, Theorem 8; Dong, Roth & Su 2019, Corollary 2.13). It is exact, not a
// bound: it is the privacy profile of the Gaussian mechanism. It returns NaN for a negative or
// NaN μ or a NaN ε; ε may be negative, where the same formula holds.
func GaussianDelta(mu, eps float64) float64 {
	switch {
	case math.IsNaN(mu) || math.IsNaN(eps) || mu < 0:
		return math.NaN()
	case math.IsInf(eps, 1):
		return 0
	case mu == 0:
		// Identical output distributions: the hockey-stick divergence is max(0, 1 − e^ε).
		return math.Max(0, -math.Expm1(eps))
	case math.IsInf(mu, 1):
		return 1
	}
	// The second term is a product of e^ε, which overflows past ε ≈ 709, and a Gaussian tail
	// that underflows past 38 standard deviations; a large μ needs both at once (ε ≈ μ²/2), so
	// the product is formed in log space where neither does.
	d := phi(-eps/mu+mu/2) - math.Exp(eps+logPhi(-eps/mu-mu/2))
	return math.Min(1, math.Max(0, d))
}

// GaussianEpsilon returns the smallest ε ≥ 0 for which a μ-GDP mechanism is (ε, δ)-DP, the
// inverse of GaussianDelta, found by bisection. The result errs upwards: GaussianDelta(μ, ε) ≤ δ
// holds for the ε returned (to the precision of the floating-point evaluation of δ). μ = +Inf
// gives +Inf for δ < 1. It wraps ErrInvalidParameter for a negative or NaN μ, or δ outside (0, 1].
func GaussianEpsilon(mu, delta float64) (float64, error) {
	if !(mu >= 0) {
		return 0, fmt.Errorf("gaussian epsilon: mu must be non-negative: %w", ErrInvalidParameter)
	}
	if !(delta > 0 && delta <= 1) {
		return 0, fmt.Errorf("gaussian epsilon: delta must be in (0, 1]: %w", ErrInvalidParameter)
	}
	switch {
	case delta == 1 || mu == 0:
		return 0, nil
	case math.IsInf(mu, 1):
		return math.Inf(1), nil
	case GaussianDelta(mu, 0) <= delta:
		return 0, nil
	}
	// δ(ε) decreases in ε: grow hi until δ(hi) ≤ δ, then halve [lo, hi] keeping δ(lo) > δ ≥ δ(hi)
	// down to adjacent floats. Returning hi keeps the side that satisfies the target.
	lo, hi := 0.0, math.Max(1, mu)
	for GaussianDelta(mu, hi) > delta {
		lo, hi = hi, 2*hi
	}
	for i := 0; i < maxBisections; i++ {
		mid := lo + (hi-lo)/2
		if mid <= lo || mid >= hi {
			break
		}
		if GaussianDelta(mu, mid) > delta {
			lo = mid
		} else {
			hi = mid
		}
	}
	return hi, nil
}

// maxBisections bounds a bisection that stops on its own once its bounds are adjacent floats
// (about 60–1100 halvings, depending on the exponent range crossed).
const maxBisections = 2000

// phi is the standard normal CDF, Φ(x) = ½·erfc(−x/√2). Written through erfc so that the lower
// tail — where the δ of a private mechanism lives — keeps full relative precision; 1 − Φ(|x|)
// would cancel to zero long before the tail does.
func phi(x float64) float64 { return 0.5 * math.Erfc(-x/math.Sqrt2) }

// logPhi is log Φ(x), finite far into the lower tail where Φ itself underflows.
func logPhi(x float64) float64 {
	switch {
	case x > 0:
		return math.Log1p(-0.5 * math.Erfc(x/math.Sqrt2))
	case x > -37:
		// erfc(37/√2) ≈ 6e-300 is still a normal float.
		return math.Log(phi(x))
	}
	// Mills-ratio expansion (Abramowitz & Stegun 26.2.12):
	// Φ(x) = φ(x)/|x| · (1 − 1/x² + 3/x⁴ − 15/x⁶ + 105/x⁸ − …); the first omitted term,
	// 945/x¹⁰, is below 3e-13 relative for x ≤ −37.
	z := 1 / (x * x)
	series := 1 - z*(1-3*z*(1-5*z*(1-7*z)))
	return -x*x/2 - math.Log(-x) - 0.5*math.Log(2*math.Pi) + math.Log(series)
}
