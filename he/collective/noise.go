package collective

import (
	"fmt"
	"math"

	"github.com/google/differential-privacy/go/v3/noise"
)

// Budget is what a job may spend on one release of a partition vector, and the sensitivity of
// that vector: one privacy unit changes at most L0 partitions, each by at most LInf (counts: 1;
// clamped sums: the larger absolute clamp bound, in the integer unit the domains encode).
type Budget struct {
	Epsilon float64
	Delta   float64
	L0      int64
	LInf    int64
}

// ShareNoise is one domain's share of the distributed DP noise. Every domain draws its share with
// Google's Gaussian mechanism, noise.Gaussian().AddNoiseInt64(x, L0, LInf, Epsilon, Delta), where
// Epsilon is the weakened per-share epsilon computed by NoiseShares, not the job's epsilon.
type ShareNoise struct {
	Parties int     // n, the number of domains
	L0      int64   // as in the Budget
	LInf    int64   // as in the Budget
	Epsilon float64 // per-share epsilon passed to the library (≥ the job's epsilon)
	Delta   float64 // as in the Budget
	// ShareSigma is the standard deviation of one share (the library's σ for the above).
	ShareSigma float64
	// TotalSigma is the standard deviation of the released noise, the sum of n shares: √n·ShareSigma.
	TotalSigma float64
	// TargetSigma is the σ that the Gaussian mechanism needs for the job's (ε, δ); any n−1 shares
	// together have at least this standard deviation.
	TargetSigma float64
}

// NoiseShares computes each domain's noise parameters for a release with the given budget summed
// over parties domains.
//
// The released value is x + Σᵢ Zᵢ with Zᵢ independent, each the library's Gaussian of σₛ. Their sum
// is Gaussian with variance n·σₛ² (for the library's integer samples, a sum of discretised Gaussians,
// close to a discrete Gaussian of that variance: Kairouz, Liu, Steinke, ICML 2021). The Gaussian
// mechanism needs σ* = SigmaForGaussian(L0, LInf, ε, δ) (Balle–Wang analytic calibration).
//
// A domain that colludes with the receiver knows its own share and can subtract it; what protects
// the others is then the sum of the remaining n−1 shares. So σₛ is chosen with (n−1)·σₛ² ≥ σ*²,
// i.e. σₛ = σ*/√(n−1): any n−1 shares alone meet (ε, δ). Cost: the released noise has standard
// deviation √(n/(n−1))·σ* instead of σ* — ×1.41 for two domains, ×1.22 for three, ×1.03 for 16.
// Two or more colluding domains are out of scope (see docs/he-collective.md).
//
// The per-share epsilon is the largest ε' ≥ ε with SigmaForGaussian(L0, LInf, ε', δ) ≥ σₛ, found
// by bisection; the share is then drawn by the library at (ε', δ) and is never hand-rolled.
func NoiseShares(b Budget, parties int) (ShareNoise, error) {
	if parties < 2 || parties > MaxParties {
		return ShareNoise{}, fmt.Errorf("%w: parties must be between 2 and %d", ErrConfig, MaxParties)
	}
	if !(b.Epsilon > 0) || math.IsInf(b.Epsilon, 0) || !(b.Delta > 0) || !(b.Delta < 1) || b.L0 < 1 || b.LInf < 1 {
		return ShareNoise{}, fmt.Errorf("%w: budget needs epsilon > 0, 0 < delta < 1, L0 ≥ 1, LInf ≥ 1", ErrConfig)
	}
	target := noise.SigmaForGaussian(b.L0, float64(b.LInf), b.Epsilon, b.Delta)
	share := target / math.Sqrt(float64(parties-1))
	sigma := func(eps float64) float64 { return noise.SigmaForGaussian(b.L0, float64(b.LInf), eps, b.Delta) }
	// sigma is decreasing in eps; lo always satisfies sigma(lo) ≥ share.
	lo, hi := b.Epsilon, b.Epsilon
	for sigma(hi) >= share {
		lo = hi
		hi *= 2
		if hi > 1e6 {
			return ShareNoise{}, fmt.Errorf("%w: noise share calibration did not converge", ErrConfig)
		}
	}
	for i := 0; i < 100 && hi-lo > 1e-12*lo; i++ {
		mid := (lo + hi) / 2
		if sigma(mid) >= share {
			lo = mid
		} else {
			hi = mid
		}
	}
	s := sigma(lo)
	return ShareNoise{
		Parties: parties, L0: b.L0, LInf: b.LInf, Epsilon: lo, Delta: b.Delta,
		ShareSigma: s, TotalSigma: math.Sqrt(float64(parties)) * s, TargetSigma: target,
	}, nil
}

// validate checks a ShareNoise received in a job description before a domain draws from it: it
// must be exactly what NoiseShares computes for some budget (so a caller cannot shrink the noise by
// editing Epsilon alone) — the share σ must reach the target over n−1 shares.
func (s ShareNoise) validate() error {
	if s.Parties < 2 || s.Parties > MaxParties || s.L0 < 1 || s.LInf < 1 || !(s.Epsilon > 0) || math.IsInf(s.Epsilon, 0) || !(s.Delta > 0) || !(s.Delta < 1) {
		return fmt.Errorf("%w: noise share parameters", ErrConfig)
	}
	got := noise.SigmaForGaussian(s.L0, float64(s.LInf), s.Epsilon, s.Delta)
	if got*math.Sqrt(float64(s.Parties-1)) < s.TargetSigma*(1-1e-9) || !(s.TargetSigma > 0) {
		return fmt.Errorf("%w: noise share below its target", ErrConfig)
	}
	return nil
}

// addNoise draws one domain's noise share for one partition. It is a variable only so that the
// package's own tests can switch noise off (export_test.go); nothing outside the tests assigns it.
var addNoise = func(x int64, s ShareNoise) (int64, error) {
	return noise.Gaussian().AddNoiseInt64(x, s.L0, s.LInf, s.Epsilon, s.Delta)
}

// Interval is a confidence interval for a released total.
type Interval struct {
	Lower, Upper int64
}

// CI returns the interval that contains the pre-noise total with probability at least 1 − alpha,
// given the released (noisy) total: the summed noise is Gaussian with standard deviation
// s.TotalSigma, so the interval is released ± z·TotalSigma with z the (1 − alpha/2) normal
// quantile, rounded outwards to integers. alpha must lie in (0, 1).
func CI(released int64, s ShareNoise, alpha float64) (Interval, error) {
	if !(alpha > 0 && alpha < 1) || !(s.TotalSigma > 0) {
		return Interval{}, fmt.Errorf("%w: confidence level or noise parameters", ErrConfig)
	}
	half := math.Ceil(s.TotalSigma * math.Sqrt2 * math.Erfcinv(alpha))
	if half > float64(math.MaxInt64/4) {
		return Interval{}, fmt.Errorf("%w: interval too wide", ErrOutOfRange)
	}
	h := int64(half)
	return Interval{Lower: satAdd(released, -h), Upper: satAdd(released, h)}, nil
}

func satAdd(a, b int64) int64 {
	c := a + b
	if (b > 0 && c < a) || (b < 0 && c > a) {
		if b > 0 {
			return math.MaxInt64
		}
		return math.MinInt64
	}
	return c
}
