package wire

import (
	"math"
	"testing"
)

// TestCalibrationCoversEveryContributionTheBoundsAllow enumerates, for every small bound
// (L0 ≤ 4, L∞ ≤ 4, C ≤ 12 or none), every contribution vector a unit may make — up to L0
// partitions of up to L∞ each, summing to at most C — and checks that both calibrations
// (Laplace and Gaussian) cover its L1 norm, its L2 norm and its largest entry as the library
// reads them (a·m, √a·m, m), that Covers agrees, and that the Laplace calibration of a row
// mechanism costs exactly min(C, L0·L∞) when C is set: the L1 bound's whole point.
func TestCalibrationCoversEveryContributionTheBoundsAllow(t *testing.T) {
	for l0 := int64(1); l0 <= 4; l0++ {
		for lInf := int64(1); lInf <= 4; lInf++ {
			for c := int64(0); c <= 12; c++ {
				b := Bounds{MaxGroupsContributed: l0, MaxContributionsPerGroup: lInf, MaxRowsPerUnit: c}
				var maxL1, maxL2sq, maxParts float64
				var walk func(i int, sum, sq, parts int64)
				walk = func(i int, sum, sq, parts int64) {
					if c > 0 && sum > c {
						return
					}
					maxL1, maxL2sq, maxParts = math.Max(maxL1, float64(sum)), math.Max(maxL2sq, float64(sq)), math.Max(maxParts, float64(parts))
					if i == int(l0) {
						return
					}
					for x := int64(0); x <= lInf; x++ {
						p := parts
						if x > 0 {
							p++
						}
						walk(i+1, sum+x, sq+x*x, p)
					}
				}
				walk(0, 0, 0, 0)
				for _, gaussian := range []bool{false, true} {
					a, m := b.Calibration(false, gaussian)
					if float64(a*m) < maxL1 || float64(a*m*m) < maxL2sq || (m < lInf && (c == 0 || m < c)) {
						t.Errorf("%+v gaussian=%v: calibration %d×%d does not cover L1 %v, L2² %v", b, gaussian, a, m, maxL1, maxL2sq)
					}
					if !b.Covers(a, m, false) {
						t.Errorf("%+v: Covers refuses its own calibration %d×%d", b, a, m)
					}
					if !gaussian && c > 0 && float64(a*m) != math.Min(float64(c), float64(l0*min(lInf, c))) {
						t.Errorf("%+v: Laplace calibration %d×%d costs %d, want min(C, L0·L∞)", b, a, m, a*m)
					}
				}
				if u, _ := b.Calibration(true, false); float64(u) < maxParts || !b.Covers(u, 1, true) {
					t.Errorf("%+v: unit-count calibration %d below the %v partitions a unit reaches", b, u, maxParts)
				}
				if c > 0 && l0 > 1 && b.Covers(1, 1, false) && maxL1 > 1 {
					t.Errorf("%+v: Covers accepts 1×1", b)
				}
			}
		}
	}
}
