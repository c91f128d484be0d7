package dp

import (
	"fmt"
	"math"

	"github.com/google/differential-privacy/go/v3/noise"
)

// BlockMean is the mechanism of a custom model job (sample-and-aggregate, sandbox/wasm): the
// element-wise average over Blocks disjoint blocks of privacy units of a module's output
// vectors, each element i clamped to Bounds[i] = [lo, hi] in the worker. A unit lies in one
// block, so adding or removing it changes one block's vector arbitrarily within the bounds:
// element i of the average moves by at most Δᵢ = (hiᵢ − loᵢ)/k, whatever the module computes.
//
// Accounting, for the vector as one release:
//   - Delta = 0: Laplace noise on each element with sensitivity Δᵢ and ε/n (n elements); the
//     L1 sensitivities compose to ε.
//   - Delta > 0: Gaussian noise on each element with the same σ, calibrated by the library to
//     the vector's L2 sensitivity √(Σ Δᵢ²) at (ε, δ): the Gaussian mechanism on the vector.
//
// All noise is the library's (noise.Laplace, noise.Gaussian); none comes from the module.
type BlockMean struct {
	Epsilon float64
	Delta   float64
	Blocks  int
	Bounds  [][2]float64
}

// Validate reports whether the parameters are ones the library accepts.
func (b BlockMean) Validate() error {
	if !(b.Epsilon > 0 && b.Epsilon <= MaxEpsilon) {
		return fmt.Errorf("dp: epsilon must be in (0, %d]", MaxEpsilon)
	}
	if !(b.Delta >= 0 && b.Delta < 1) {
		return fmt.Errorf("dp: delta must be in [0, 1)")
	}
	if b.Blocks < 1 || len(b.Bounds) == 0 {
		return fmt.Errorf("dp: a block mean needs at least one block and one element")
	}
	for i, bd := range b.Bounds {
		if !(bd[0] < bd[1]) || math.IsInf(bd[1]-bd[0], 0) {
			return fmt.Errorf("dp: the bounds of element %d must be finite with lower < upper", i+1)
		}
	}
	return nil
}

// Mechanism names the noise: laplace for delta 0, gaussian otherwise.
func (b BlockMean) Mechanism() string {
	if b.Delta == 0 {
		return "laplace"
	}
	return "gaussian"
}

// Sensitivity is element i's L∞ sensitivity Δᵢ = (hiᵢ − loᵢ)/k.
func (b BlockMean) Sensitivity(i int) float64 {
	return (b.Bounds[i][1] - b.Bounds[i][0]) / float64(b.Blocks)
}

// params returns the library arguments for element i: L∞ sensitivity, epsilon and delta.
func (b BlockMean) params(i int) (lInf, eps, delta float64) {
	if b.Delta == 0 {
		return b.Sensitivity(i), b.Epsilon / float64(len(b.Bounds)), 0
	}
	var l2 float64
	for j := range b.Bounds {
		l2 += b.Sensitivity(j) * b.Sensitivity(j)
	}
	return math.Sqrt(l2), b.Epsilon, b.Delta
}

func (b BlockMean) noise() noise.Noise {
	if b.Delta == 0 {
		return noise.Laplace()
	}
	return noise.Gaussian()
}

// NoiseScale is the standard deviation of element i's noise (the library's formulas, as
// Spec.NoiseScale).
func (b BlockMean) NoiseScale(i int) float64 {
	lInf, eps, delta := b.params(i)
	if delta == 0 {
		return math.Sqrt2 * lInf / eps
	}
	return noise.SigmaForGaussian(1, lInf, eps, delta)
}

// Release adds the noise to the worker's pre-noise average and returns each element with its
// 95% interval, clamped to the element's bounds (post-processing). Every element states the
// whole vector's epsilon and delta.
func (b BlockMean) Release(mean []float64) ([]Released, error) {
	if err := b.Validate(); err != nil {
		return nil, err
	}
	if len(mean) != len(b.Bounds) {
		return nil, fmt.Errorf("dp: the worker returned %d elements, the job declares %d", len(mean), len(b.Bounds))
	}
	nz := b.noise()
	out := make([]Released, len(mean))
	for i, m := range mean {
		lo, hi := b.Bounds[i][0], b.Bounds[i][1]
		if math.IsNaN(m) || m < lo || m > hi {
			return nil, fmt.Errorf("dp: element %d of the worker's average lies outside its bounds", i+1)
		}
		lInf, eps, delta := b.params(i)
		v, err := nz.AddNoiseFloat64(m, 1, lInf, eps, delta)
		if err != nil {
			return nil, err
		}
		ci, err := nz.ComputeConfidenceIntervalFloat64(v, 1, lInf, eps, delta, 1-Confidence)
		if err != nil {
			return nil, err
		}
		clamp := func(x float64) float64 { return min(max(x, lo), hi) }
		out[i] = Released{Value: clamp(v), CILow: clamp(ci.LowerBound), CIHigh: clamp(ci.UpperBound),
			Mechanism: b.Mechanism(), Epsilon: b.Epsilon, Delta: b.Delta}
	}
	return out, nil
}

// Components are the noise additions of the release, for the ledger and the result: with
// Laplace one per element (ε/n each, L∞ sensitivity Δᵢ); with Gaussian one for the vector
// (ε and δ whole, its L2 sensitivity, the σ every element gets).
func (b BlockMean) Components() []Component {
	if b.Delta == 0 {
		out := make([]Component, len(b.Bounds))
		for i := range b.Bounds {
			lInf, eps, _ := b.params(i)
			out[i] = Component{Name: fmt.Sprintf("element_%d", i+1), Mechanism: b.Mechanism(), Epsilon: eps, L0: 1, LInf: lInf, NoiseScale: b.NoiseScale(i)}
		}
		return out
	}
	l2, eps, delta := b.params(0)
	return []Component{{Name: "vector", Mechanism: b.Mechanism(), Epsilon: eps, Delta: delta, L0: 1, LInf: l2, NoiseScale: b.NoiseScale(0)}}
}
