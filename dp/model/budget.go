package model

import (
	"math"

	"github.com/c1b99f93/cleanroom/dp"
	"github.com/c1b99f93/cleanroom/dp/accountant"
	"github.com/google/differential-privacy/go/v3/noise"
)

// gaussianNoise draws every noise this package adds. It is Google's secure Gaussian; tests of
// plumbing in this package replace it (an unexported variable: no production caller can).
var gaussianNoise noise.Noise = noise.Gaussian()

// budget is a job's (ε, δ) and how its noise additions share it.
//
// A job's noise additions are Gaussian and are split in GDP terms: the whole job is one μ-GDP
// mechanism with μ = 1/σ₁, where σ₁ = noise.SigmaForGaussian(1, 1, ε, δ) is the library's
// calibration of one Gaussian release of L2 sensitivity 1 at (ε, δ). Component i receives a
// share wᵢ (Σwᵢ = 1) of μ², i.e. μᵢ = √wᵢ·μ, so its noise is σᵢ = Δᵢ·σ₁/√wᵢ — which is what
// the library draws when asked for sensitivity Δᵢ/√wᵢ at the job's full (ε, δ). GDP composes
// exactly (Dong, Roth & Su 2019, Corollary 3.3): √Σμᵢ² = μ, so the job is (ε, δ)-DP. Shares of
// μ² are shares of zCDP's ρ = μ²/2 as well.
//
// For the ledger each component is recorded as a dp.Component charged (wᵢε, wᵢδ), summing to
// the job's (ε, δ); checkAccounting re-derives the job's cost from the σᵢ actually drawn with
// dp/accountant before anything is released.
type budget struct{ eps, delta float64 }

func validateBudget(eps, delta float64) error {
	if !(eps > 0) || math.IsInf(eps, 0) || eps < 1e-9 {
		return fail(ErrInvalidParams, "epsilon must be positive and finite (at least 1e-9)")
	}
	if !(delta > 0 && delta < 1) {
		return fail(ErrInvalidParams, "delta must be in (0, 1)")
	}
	return nil
}

// inflated is the sensitivity the library is asked for so that it draws σᵢ = Δ·σ₁/√w.
func inflated(sens, share float64) float64 { return sens / math.Sqrt(share) }

// sigma is the standard deviation of the noise on a component of L2 sensitivity sens and
// budget share share.
func (b budget) sigma(sens, share float64) float64 {
	return noise.SigmaForGaussian(1, inflated(sens, share), b.eps, b.delta)
}

// add returns x plus Gaussian noise of standard deviation sigma(sens, share).
func (b budget) add(x, sens, share float64) (float64, error) {
	v, err := gaussianNoise.AddNoiseFloat64(x, 1, inflated(sens, share), b.eps, b.delta)
	if err != nil {
		return 0, fail(ErrAccounting, "the noise library refused the parameters")
	}
	return v, nil
}

// component records a noise addition for the ledger and the accountant: a Gaussian of L2
// sensitivity sens (L0 1, L∞ sens) and the σ drawn, charged its share of (ε, δ).
func (b budget) component(name string, sens, share float64) dp.Component {
	return dp.Component{Name: name, Mechanism: accountant.MechanismGaussian, Epsilon: share * b.eps, Delta: share * b.delta,
		L0: 1, LInf: sens, NoiseScale: b.sigma(sens, share)}
}

// checkAccounting refuses (ErrAccounting) unless the components' basic charge is within the
// job's (ε, δ) and the exact GDP composition of the noise actually drawn, μ = √Σ(Δᵢ/σᵢ)²
// converted with accountant.GaussianEpsilon at the job's δ, is within its ε: the noise must be
// worth no more than what is debited. It returns the accountant's report of the components
// (the figure a ledger history would show for this job alone).
func (b budget) checkAccounting(comps []dp.Component) (accountant.Report, error) {
	events := make([]accountant.Event, len(comps))
	var muSq float64
	for i, c := range comps {
		events[i] = accountant.Event{Mechanism: c.Mechanism, Epsilon: c.Epsilon, Delta: c.Delta, L0: c.L0, LInf: c.LInf, NoiseStddev: c.NoiseScale}
		mu := math.Sqrt(float64(c.L0)) * c.LInf / c.NoiseScale
		muSq += mu * mu
	}
	r, err := accountant.Compose(events)
	if err != nil {
		return r, fail(ErrAccounting, "the accountant refused the noise events")
	}
	const slack = 1e-9 // the shares' float sums
	if r.Basic.Epsilon > b.eps*(1+slack) || r.Basic.Delta > b.delta*(1+slack) {
		return r, fail(ErrAccounting, "the components are charged more than the job's budget")
	}
	eps, err := accountant.GaussianEpsilon(math.Sqrt(muSq), b.delta)
	if err != nil || eps > b.eps*(1+slack) {
		return r, fail(ErrAccounting, "the noise drawn composes to more than the job's epsilon")
	}
	return r, nil
}
