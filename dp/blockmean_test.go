package dp

import (
	"math"
	"testing"

	"github.com/google/differential-privacy/go/v3/noise"
)

// TestBlockMeanNoiseScales pins the calibration: Laplace splits ε over the elements with
// Δᵢ = (hiᵢ − loᵢ)/k; Gaussian uses the vector's L2 sensitivity for every element.
func TestBlockMeanNoiseScales(t *testing.T) {
	bounds := [][2]float64{{0, 10}, {-5, 5}, {0, 40}}
	cases := []struct {
		name  string
		delta float64
		want  []float64
	}{
		// b = Δᵢ/(ε/3), stddev = √2·b, with k = 50, ε = 1.
		{"laplace", 0, []float64{math.Sqrt2 * 0.2 * 3, math.Sqrt2 * 0.2 * 3, math.Sqrt2 * 0.8 * 3}},
		{"gaussian", 1e-6, func() []float64 {
			s := noise.SigmaForGaussian(1, math.Sqrt(0.2*0.2+0.2*0.2+0.8*0.8), 1, 1e-6)
			return []float64{s, s, s}
		}()},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := BlockMean{Epsilon: 1, Delta: c.delta, Blocks: 50, Bounds: bounds}
			for i, w := range c.want {
				if got := b.NoiseScale(i); math.Abs(got-w) > 1e-9*w {
					t.Errorf("element %d: stddev %g, want %g", i, got, w)
				}
			}
		})
	}
}

// TestBlockMeanReleaseStaysInBoundsAndNearTheMean: released values and intervals lie within
// the bounds, and at ε = 10 and k = 100 they fall within 1 of a mean of 5 (the noise stddev is
// 0.028 for this element: 35 standard deviations, so this never flakes); 200 repetitions.
func TestBlockMeanReleaseStaysInBoundsAndNearTheMean(t *testing.T) {
	b := BlockMean{Epsilon: 10, Blocks: 100, Bounds: [][2]float64{{0, 10}, {0, 1}}}
	for range 200 {
		rel, err := b.Release([]float64{5, 1})
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range rel {
			lo, hi := b.Bounds[i][0], b.Bounds[i][1]
			if r.Value < lo || r.Value > hi || r.CILow < lo || r.CIHigh > hi || r.CILow > r.CIHigh {
				t.Fatalf("element %d: %+v outside [%g, %g]", i, r, lo, hi)
			}
		}
		if math.Abs(rel[0].Value-5) > 1 {
			t.Fatalf("element 0 released %g, far from 5", rel[0].Value)
		}
	}
}

// TestBlockMeanRefusesBadInput: wrong parameters or a worker average outside the bounds (a
// broken worker) are errors, never a release.
func TestBlockMeanRefusesBadInput(t *testing.T) {
	good := BlockMean{Epsilon: 1, Blocks: 10, Bounds: [][2]float64{{0, 1}}}
	cases := map[string]struct {
		b    BlockMean
		mean []float64
	}{
		"zero_epsilon":    {BlockMean{Epsilon: 0, Blocks: 10, Bounds: good.Bounds}, []float64{0.5}},
		"no_blocks":       {BlockMean{Epsilon: 1, Bounds: good.Bounds}, []float64{0.5}},
		"empty_bounds":    {BlockMean{Epsilon: 1, Blocks: 10, Bounds: [][2]float64{{1, 1}}}, []float64{1}},
		"wrong_length":    {good, []float64{0.5, 0.5}},
		"outside_bounds":  {good, []float64{2}},
		"nan":             {good, []float64{math.NaN()}},
		"delta_too_large": {BlockMean{Epsilon: 1, Delta: 1, Blocks: 10, Bounds: good.Bounds}, []float64{0.5}},
	}
	for name, c := range cases {
		if _, err := c.b.Release(c.mean); err == nil {
			t.Errorf("%s: released", name)
		}
	}
}
