package engine_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"sort"
	"testing"

	"github.com/c1b99f93/cleanroom/catalog"
)

// TestTotalRowsBoundSimulatedOnTestdata is the measured plan for issue 15's unmet target
// (counts by a public key within 10% at the median cell at epsilon 1; docs/accuracy.md §5),
// simulated on the committed visits with a fixed seed (math/rand PCG 7, 9: deterministic, so
// it cannot flake). Instead of L0 groups × L∞ rows per group, each unit keeps at most C rows
// in total (an L1 bound: the cells' Laplace scale is C/ε, not L0·L∞/ε), and C is chosen from
// one DP histogram of rows per unit (octave bins, Laplace at epsilon 0.1, sensitivity 1) by
// the same objective as today's chooser, E|β + X| over the average cell. The table (-v)
// compares the tail floor the shipped chooser uses (a tail of k bins counts only above
// 3σ·√k) with reading every bin as it is (floor 0), at maxima of 64 and 128 rows: the released
// count's noise is simulated at the count's epsilon today (0.68) on the exact rows each cell
// keeps at C. It asserts what the plan rests on: with the shipped floor the median run misses
// 10% on both queries, and with an L1 bound, floor 0 and a maximum of 128 it meets it on both.
// Under an L1 bound a phantom tail of noise can only raise C, whose noise the objective weighs
// and the maximum caps (the worst run at floor 0 and 128 is about 18% off), unlike the joint
// L0 × L∞ choice, where a phantom traded groups for rows and lost half the answer.
func TestTotalRowsBoundSimulatedOnTestdata(t *testing.T) {
	spec, err := catalog.LoadFile(filepath.Join("..", "testdata", "datasets", "medical_visits.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	visits := readVisits(t, spec)
	rng := rand.New(rand.NewPCG(7, 9))
	laplace := func(b float64) float64 {
		u := rng.Float64() - 0.5
		return -b * math.Copysign(math.Log(1-2*math.Abs(u)), u)
	}
	edges := []int{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024}
	candidates := []int{1, 2, 4, 8, 16, 32, 48, 64, 96, 128}
	const epsProfile, epsCount, reps = 0.1, 0.68, 400
	for _, key := range []string{"district", "month"} {
		perUnit := map[string][]string{}
		truth := map[string]float64{}
		for _, r := range visits {
			k := r.district
			if key == "month" {
				k = r.month
			}
			perUnit[r.person] = append(perUnit[r.person], k)
			truth[k]++
		}
		hist, mids := make([]float64, len(edges)), make([]float64, len(edges))
		for i, e := range edges {
			lo := 1.0
			if i > 0 {
				lo = float64(edges[i-1]) + 1
			}
			mids[i] = (lo + float64(e)) / 2
		}
		for _, ks := range perUnit {
			for i, e := range edges {
				if len(ks) <= e {
					hist[i]++
					break
				}
			}
		}
		kept := map[int]map[string]float64{} // the exact count each cell keeps at C
		for _, c := range candidates {
			kept[c] = map[string]float64{}
			for _, ks := range perUnit {
				for _, k := range ks[:min(len(ks), c)] {
					kept[c][k]++
				}
			}
		}
		for _, tc := range []struct {
			floor float64
			maxC  int
		}{{3, 64}, {3, 128}, {0, 64}, {0, 128}} {
			var medians []float64
			chosen := map[int]int{}
			for range reps {
				read := make([]float64, len(hist))
				noisy := make([]float64, len(hist))
				for i := range hist {
					noisy[i] = hist[i] + laplace(1/epsProfile)
					read[i] = math.Max(noisy[i], 0)
				}
				for top := len(noisy) - 1; top >= 0; top-- { // the tail test, from the top
					var sum float64
					for _, v := range noisy[top:] {
						sum += v
					}
					if sum > tc.floor*math.Sqrt2/epsProfile*math.Sqrt(float64(len(noisy)-top)) {
						break
					}
					read[top] = 0
				}
				var rows float64
				for i := range read {
					rows += read[i] * mids[i]
				}
				best, bestErr := 1, math.Inf(1)
				for _, c := range candidates {
					if c > tc.maxC {
						continue
					}
					var drop float64
					for i := range read {
						drop += read[i] * math.Max(0, mids[i]-float64(c))
					}
					beta, x := drop/rows, float64(c)/epsCount/(rows/float64(len(truth)))
					if e := beta + x*math.Exp(-beta/x); e < bestErr {
						best, bestErr = c, e
					}
				}
				chosen[best]++
				var errs []float64
				for k, v := range truth {
					errs = append(errs, math.Abs(kept[best][k]+laplace(float64(best)/epsCount)-v)/v)
				}
				sort.Float64s(errs)
				medians = append(medians, errs[len(errs)/2])
			}
			sort.Float64s(medians)
			p50, p90 := medians[reps/2], medians[reps*9/10]
			t.Log(fmt.Sprintf("visits by %s, floor %.0fσ, max %d rows: median-cell error p50 %.1f%%, p90 %.1f%%, worst %.1f%%; C chosen %v",
				key, tc.floor, tc.maxC, 100*p50, 100*p90, 100*medians[reps-1], chosen))
			switch {
			case tc.floor == 3 && p50 <= 0.10:
				t.Errorf("visits by %s: the shipped floor's median run is %.1f%% off; the plan assumed it misses 10%%", key, 100*p50)
			case tc.floor == 0 && tc.maxC == 128 && p50 > 0.10:
				t.Errorf("visits by %s: an L1 bound read at floor 0 up to 128 rows is %.1f%% off at the median run; the plan assumed within 10%%", key, 100*p50)
			}
		}
	}
}
