package accountant

import (
	"fmt"
	"math"
)

// ZCDPEpsilon returns an ε for which a ρ-zCDP mechanism is (ε, δ)-DP, by the conversion of
// Canonne, Kamath & Steinke 2020 (Section 2.3; the cdp_eps routine of their public code):
//
//	ε = inf over α > 1 of  αρ + (ln(1/δ) + (α−1)·ln(1 − 1/α) − ln α) / (α − 1)
//
// capped by Bun & Steinke's ρ + 2√(ρ·ln(1/δ)) (2016, Proposition 1.3), which it never exceeds in
// exact arithmetic. Any α > 1 gives a valid bound, so an imprecise search for the best α can only
// make the result looser, never unsound. ρ = +Inf gives +Inf for δ < 1. It wraps
// ErrInvalidParameter for a negative or NaN ρ, or δ outside (0, 1].
func ZCDPEpsilon(rho, delta float64) (float64, error) {
	if !(rho >= 0) {
		return 0, fmt.Errorf("zcdp epsilon: rho must be non-negative: %w", ErrInvalidParameter)
	}
	if !(delta > 0 && delta <= 1) {
		return 0, fmt.Errorf("zcdp epsilon: delta must be in (0, 1]: %w", ErrInvalidParameter)
	}
	switch {
	case rho == 0 || delta == 1:
		return 0, nil
	case math.IsInf(rho, 1):
		return math.Inf(1), nil
	}
	l := -math.Log(delta)
	bunSteinke := rho + 2*math.Sqrt(rho*l)

	// With x = α − 1 the objective is f(x) = (1+x)ρ + (L − ln(1+x))/x − ln(1 + 1/x), L = ln(1/δ),
	// and f'(x) = ρ − (L − ln(1+x))/x². Its sign is that of g(x) = ρx² + ln(1+x) − L, which
	// increases strictly from g(0) = −L < 0 to g(√(L/ρ)) = ln(1+√(L/ρ)) > 0: f falls then rises,
	// and its minimiser is the one root of g, found by bisection on that bracket. Writing the
	// terms with log1p keeps them accurate when α is close to 1 (large ρ) or very large (tiny ρ).
	lo, hi := 0.0, math.Sqrt(l/rho)
	for i := 0; i < maxBisections; i++ {
		mid := lo + (hi-lo)/2
		if mid <= lo || mid >= hi {
			break
		}
		if rho*mid*mid+math.Log1p(mid) < l {
			lo = mid
		} else {
			hi = mid
		}
	}
	x := hi
	eps := (1+x)*rho + (l-math.Log1p(x))/x - math.Log1p(1/x)
	if !(eps < bunSteinke) { // also catches a NaN from an extreme x
		eps = bunSteinke
	}
	return math.Max(0, eps), nil
}
