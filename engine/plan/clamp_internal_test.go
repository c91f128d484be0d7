package plan

import (
	"math"
	"testing"
)

// The log scale is continuous, increasing and inverted exactly, so a quantile read on it and
// mapped back is the quantile of the values.
func TestLogScaleIsMonotoneAndInvertible(t *testing.T) {
	prev := -1.0
	for x := 0.0; x < 5e7; x = x*1.37 + 0.25 {
		y := logScale(x)
		if y < prev {
			t.Fatalf("logScale(%g) = %g below the previous %g", x, y, prev)
		}
		prev = y
		if back := logScaleInverse(y); math.Abs(back-x) > 1e-9*math.Max(1, x) {
			t.Fatalf("logScaleInverse(logScale(%g)) = %g", x, back)
		}
	}
	for k := range 30 {
		p := math.Exp2(float64(k))
		if got := logScale(p); got != float64(k+1) {
			t.Fatalf("logScale(2^%d) = %g, want %d", k, got, k+1)
		}
		if below := logScale(p * (1 - 1e-12)); math.Abs(below-float64(k+1)) > 1e-9 {
			t.Fatalf("logScale jumps at 2^%d: %g just below", k, below)
		}
	}
	// Resolution: over 5e7 the tree's 65,536 leaves are each about 0.03% of the value wide.
	leaf := logScale(5e7) / 65536
	if r := logScaleInverse(20+leaf)/logScaleInverse(20) - 1; r > 1e-3 {
		t.Fatalf("a leaf near 2^19 spans %.2g of the value", r)
	}
}
