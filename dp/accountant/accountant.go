package accountant

import "math"

// Mechanism names of the events this package composes better than basically. They are the names
// dp.Spec.Mechanism records; any other name is composed basically.
const (
	MechanismGaussian = "gaussian"
	MechanismLaplace  = "laplace"
)

// Methods that can produce a Report's tighter figure.
const (
	MethodBasic = "basic" // sequential composition: the enforced figure itself
	MethodGDP   = "gdp"   // Gaussian events as μ-GDP, everything else added basically
	MethodZCDP  = "zcdp"  // Gaussian and Laplace events as ρ-zCDP, the rest added basically
)

// Event is one elementary noise addition of a job, as persisted with its budget debit (the JSON
// form of dp.Component). Epsilon and Delta are the budget share the event was charged; L0, LInf
// and NoiseStddev describe the noise actually added, which is what the tighter figure uses for
// Gaussian events.
type Event struct {
	Mechanism   string  `json:"mechanism"`
	Epsilon     float64 `json:"epsilon"`
	Delta       float64 `json:"delta"`
	L0          int64   `json:"l0_sensitivity"`
	LInf        float64 `json:"linf_sensitivity"`
	NoiseStddev float64 `json:"noise_stddev"`
}

// Cost is an (epsilon, delta) pair.
type Cost struct {
	Epsilon float64 `json:"epsilon"`
	Delta   float64 `json:"delta"`
}

// Report gives the cost of a history twice, at the same delta: Basic is what the ledger enforces;
// Tighter is a valid bound that is never looser, reported for information. Method says which
// composition produced Tighter.
type Report struct {
	Basic   Cost   `json:"basic"`
	Tighter Cost   `json:"tighter"`
	Method  string `json:"method"`
	Events  int    `json:"events"`
}

// Compose accounts for a history of events. It refuses (with an *EventError wrapping
// ErrInvalidEvent) any event it cannot account for: an unnamed mechanism, a negative or NaN
// parameter, an infinite epsilon, a delta above 1, or a Gaussian event without a positive finite
// noise_stddev and finite sensitivity.
//
// Tighter is computed at the target delta Basic.Delta, so the two figures compare directly. The
// basic-only events (neither Gaussian nor Laplace) keep their own δ out of that target; the noise
// events get the rest, δ' = Basic.Delta − Σδ_other, and their bound is the best of the GDP and
// zCDP compositions (see the package documentation); the basic-only ε are then added on top.
// When δ' is 0 — no delta to convert at, as with pure Laplace histories — Tighter is Basic.
func Compose(events []Event) (Report, error) {
	var (
		noise, other Cost    // basic sums of the noise events and of the basic-only events
		lapEps       float64 // Σε of Laplace events: their basic composition
		muSq, rho    float64 // Σμᵢ² of Gaussian events; Σρᵢ of all noise events
		nGauss, nLap int
	)
	for i, e := range events {
		if err := validate(i, e); err != nil {
			return Report{}, err
		}
		switch e.Mechanism {
		case MechanismGaussian:
			// A unit moves at most L0 partitions by at most L∞ each: L2 sensitivity √L0·L∞, over σ.
			mu := math.Sqrt(float64(e.L0)) * e.LInf / e.NoiseStddev
			muSq += mu * mu
			rho += mu * mu / 2
			noise.Epsilon += e.Epsilon
			noise.Delta += e.Delta
			nGauss++
		case MechanismLaplace:
			// ε-DP implies (ε²/2)-zCDP (Bun & Steinke 2016, Proposition 1.4).
			rho += e.Epsilon * e.Epsilon / 2
			lapEps += e.Epsilon
			noise.Epsilon += e.Epsilon
			noise.Delta += e.Delta
			nLap++
		default:
			other.Epsilon += e.Epsilon
			other.Delta += e.Delta
		}
	}
	basic := Cost{Epsilon: noise.Epsilon + other.Epsilon, Delta: noise.Delta + other.Delta}
	r := Report{Basic: basic, Tighter: basic, Method: MethodBasic, Events: len(events)}
	// δ' is the noise events' own deltas; summing them directly equals Basic.Delta − Σδ_other
	// without the cancellation of the subtraction.
	target := noise.Delta
	if nGauss+nLap == 0 || !(target > 0) {
		return r, nil
	}

	best, method := math.Inf(1), MethodBasic
	if nGauss > 0 {
		// The Gaussian events are exactly √Σμᵢ²-GDP; the Laplace ones are (Σε, 0)-DP and add
		// basically without using any of δ'.
		if eps, err := GaussianEpsilon(math.Sqrt(muSq), math.Min(target, 1)); err == nil && eps+lapEps < best {
			best, method = eps+lapEps, MethodGDP
		}
	}
	if nLap > 0 {
		// With Gaussian events only, the exact GDP conversion above is never beaten by zCDP,
		// which describes the same mechanism less precisely; so zCDP is tried when Laplace events
		// are present.
		if eps, err := ZCDPEpsilon(rho, math.Min(target, 1)); err == nil && eps < best {
			best, method = eps, MethodZCDP
		}
	}
	if total := best + other.Epsilon; total < basic.Epsilon {
		r.Tighter.Epsilon, r.Method = total, method
	}
	return r, nil
}

// validate refuses an event whose cost cannot be accounted for. Zero is accepted everywhere but
// in a Gaussian's noise_stddev: a zero ε or sensitivity costs nothing. The sensitivities and the
// noise scale are read only for Gaussian events, so only there must they be finite (a Laplace
// component records its scale, which is infinite for ε = 0).
func validate(i int, e Event) error {
	bad := func(field, reason string) error { return &EventError{Index: i, Field: field, Reason: reason} }
	finite := func(v float64) bool { return !math.IsInf(v, 0) && !math.IsNaN(v) }
	gaussian := e.Mechanism == MechanismGaussian
	switch {
	case e.Mechanism == "":
		return bad("mechanism", "must be named")
	case !(e.Epsilon >= 0) || !finite(e.Epsilon): // !(x >= 0) also refuses NaN
		return bad("epsilon", "must be non-negative and finite")
	case !(e.Delta >= 0 && e.Delta <= 1):
		return bad("delta", "must be in [0, 1]")
	case e.L0 < 0:
		return bad("l0_sensitivity", "must be non-negative")
	case !(e.LInf >= 0) || gaussian && !finite(e.LInf):
		return bad("linf_sensitivity", "must be non-negative and finite")
	case !(e.NoiseStddev >= 0):
		return bad("noise_stddev", "must be non-negative")
	case gaussian && !(e.NoiseStddev > 0 && finite(e.NoiseStddev)):
		return bad("noise_stddev", "must be positive and finite for a gaussian event")
	}
	return nil
}
