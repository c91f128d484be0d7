package engine

import (
	"context"
	"fmt"
	"math"
	"slices"
	"testing"

	"github.com/c1b99f93/cleanroom/engine/ledger"
	"github.com/c1b99f93/cleanroom/engine/plan"
	"github.com/c1b99f93/cleanroom/policy"
	"github.com/c1b99f93/cleanroom/server/api"
)

// The bias estimate's oracle: on the committed medical_visits testdata, with explicit
// contribution bounds so that what bounding drops follows from each person's rows alone, the
// truth is computed here, outside the engine, and every released share must lie within its
// stated 95% tolerance of it.

// biasReleases is how many times each job's pre-noise bias states are released. The library's
// noise cannot be seeded, so the query runs once in the worker and its states are noised
// again and again (noise is drawn only at release).
const biasReleases = 1000

// openVisitsForBias opens an engine (closed when the test ends) with the committed
// medical_visits registered and a grant "g" with room for a few jobs, and returns the rows.
func openVisitsForBias(t *testing.T) (*Engine, []TestVisit) {
	t.Helper()
	e, spec, _ := openTestdataEngine(t, "medical_visits")
	if err := e.OpenGrant(context.Background(), "g", ledger.Budget{Epsilon: 10, Delta: 1e-6}); err != nil {
		t.Fatal(err)
	}
	return e, ReadTestVisits(t, spec)
}

// runToExecution runs a job's stages up to and including execute, so that its bias states
// can be released many times; the bounds must be explicit (nothing chosen under DP).
func runToExecution(t *testing.T, e *Engine, id, sql string, opts plan.Options) *jobState {
	t.Helper()
	ctx := context.Background()
	j := Job{ID: id, Principal: policy.Principal{Name: "a", Role: "applicant", Org: "o"}, Grant: "g", SQL: sql, Options: opts}
	s := &jobState{id: j.ID, job: j, opts: e.options(ctx, j)}
	stages := sqlStages()
	last := slices.IndexFunc(stages, func(st stage) bool { return st.name == "execute" })
	if err := e.runStages(ctx, stages[:last+1], s); err != nil {
		t.Fatal(err)
	}
	if s.p.Auto != nil || s.choice != nil {
		t.Fatal("the job's bounds were chosen under DP; the oracle needs them explicit")
	}
	if s.bias == nil || s.p.Worker.Bias == nil {
		t.Fatal("the execution returned no bias states")
	}
	return s
}

// shareCoverage counts releases whose stated share ± tolerance holds a truth known to lie in
// [lo, hi] (lo = hi when the truth is exact; a release counts only if it holds the whole
// range), and keeps the tolerances for their median.
type shareCoverage struct {
	name   string
	lo, hi float64
	hits   int
	tols   []float64
}

func (c *shareCoverage) add(share, tol float64) {
	if share-tol <= c.lo && c.hi <= share+tol {
		c.hits++
	}
	c.tols = append(c.tols, tol)
}

// check requires coverage of at least 90% over the releases, and a median tolerance below
// maxTol so that a vacuous tolerance (the whole of [0, 1]) cannot pass.
func (c *shareCoverage) check(t *testing.T, maxTol float64) {
	t.Helper()
	n := len(c.tols)
	slices.Sort(c.tols)
	med := c.tols[n/2]
	t.Logf("%s: truth %s, coverage %.3f over %d releases, median tolerance %.4f", c.name, truthText(c.lo, c.hi), float64(c.hits)/float64(n), n, med)
	if c.hits < n*9/10 {
		t.Errorf("%s: share ± tolerance held the truth %s in %d of %d releases", c.name, truthText(c.lo, c.hi), c.hits, n)
	}
	if !(med > 0 && med < maxTol) {
		t.Errorf("%s: median tolerance %v, want in (0, %v)", c.name, med, maxTol)
	}
}

func truthText(lo, hi float64) string {
	if lo == hi {
		return fmt.Sprintf("%.4f", lo)
	}
	return fmt.Sprintf("in [%.4f, %.4f]", lo, hi)
}

// TestBiasEstimateWithinToleranceOfTheTruth: SELECT district, COUNT(*) … GROUP BY district
// with max_groups_contributed 1 and max_contributions_per_group C in {2, 8, 32}. Each person
// has exactly one district (checked), so bounding keeps min(n, C) of a person's n rows
// whichever rows the keyed hash picks: a person loses rows iff n > C, and its dropped fraction
// is (n − C)/n. The true share of units with dropped rows and the true mean dropped fraction
// are computed from rows per person alone; each job runs once in the worker and its bias
// states are released biasReleases times. Every release's units_with_dropped_rows_share and
// rows_dropped_share must hold the truth within its tolerance in at least 90% of releases.
// The tolerance is a 95% statement with no approximation (the library's intervals at 96% and
// 99%, union bound), so each release covers with probability at least 0.95, independently
// given the states: fewer than 900 of 1000 has probability below 4e-11 per check (binomial
// tail), about 3e-10 over the test's six checks. The median tolerance must also stay below
// 0.1 at epsilon 1 (bias epsilon 0.05 over about 8,100 units: about 0.03–0.05 expected), so a
// vacuous tolerance fails.
func TestBiasEstimateWithinToleranceOfTheTruth(t *testing.T) {
	e, rows := openVisitsForBias(t)
	perPerson := map[string]int{}
	district := map[string]string{}
	for _, r := range rows {
		if r.Person == "" || r.District == "" {
			t.Fatal("a visit without a person or a district: the truth below assumes none")
		}
		if d, ok := district[r.Person]; ok && d != r.District {
			t.Fatal("a person with visits in two districts: which rows bounding keeps would depend on the keyed hash")
		}
		district[r.Person] = r.District
		perPerson[r.Person]++
	}
	units := float64(len(perPerson))
	for _, c := range []int64{2, 8, 32} {
		t.Run(fmt.Sprintf("L∞=%d", c), func(t *testing.T) {
			var dropping, frac, rowsDropped float64
			for _, n := range perPerson {
				if int64(n) > c {
					dropping++
					frac += float64(int64(n)-c) / float64(n)
					rowsDropped += float64(int64(n) - c)
				}
			}
			// Not what rows_dropped_share estimates, logged for the docs: the share of all rows
			// dropped weighs a person by its rows.
			t.Logf("share of all rows dropped %.4f; mean over persons of the dropped fraction %.4f", rowsDropped/float64(len(rows)), frac/units)
			s := runToExecution(t, e, fmt.Sprintf("job-bias-%d", c), "SELECT district, COUNT(*) AS visits FROM medical_visits GROUP BY district",
				plan.Options{Epsilon: 1, MaxGroupsContributed: 1, MaxContributionsPerGroup: c})
			unitsCov := shareCoverage{name: "units_with_dropped_rows_share", lo: dropping / units, hi: dropping / units}
			fracCov := shareCoverage{name: "rows_dropped_share", lo: frac / units, hi: frac / units}
			for range biasReleases {
				b, err := releaseBias(s.p, s.choice, s.bias)
				if err != nil {
					t.Fatal(err)
				}
				unitsCov.add(b.UnitsWithDroppedRows, b.UnitsWithDroppedRowsTolerance)
				fracCov.add(b.RowsDropped, b.RowsDroppedTolerance)
			}
			unitsCov.check(t, 0.1)
			fracCov.check(t, 0.1)
		})
	}
}

// TestBiasClampedShareWithinToleranceOfTheTruth: SELECT AVG(cost) FROM medical_visits with
// max_contributions_per_group 100 (the policy's explicit maximum) clamps cost to the catalog's
// [0, 50000] (explicit contribution bounds: no clamping bounds are chosen). A person is
// counted in clamped[].units_share iff a cost bounding kept lies outside the bounds. For a
// person with n ≤ 100 visits every row is kept, so that is known here; for one with n > 100
// and k costs outside, the 100 rows kept by the keyed hash surely hold one iff k > n − 100,
// surely hold none iff k = 0, and otherwise may or may not: the truth is a range, and a
// release counts as covering only if share ± tolerance holds the whole range. Coverage of at
// least 90% over biasReleases releases, as above (failure probability below 4e-11 when the
// range is a point; a wider range only lowers coverage, so the test errs towards failing).
func TestBiasClampedShareWithinToleranceOfTheTruth(t *testing.T) {
	const c = 100
	e, rows := openVisitsForBias(t)
	type person struct{ n, outside int }
	people := map[string]*person{}
	for _, r := range rows {
		p := people[r.Person]
		if p == nil {
			p = &person{}
			people[r.Person] = p
		}
		p.n++
		if r.Cost < 0 || r.Cost > 50000 { // false for NULL (NaN), as in the worker
			p.outside++
		}
	}
	var sure, maybe float64
	for _, p := range people {
		switch {
		case p.outside == 0:
		case p.n <= c || p.outside > p.n-c:
			sure++
		default:
			maybe++
		}
	}
	units := float64(len(people))
	s := runToExecution(t, e, "job-bias-clamp", "SELECT AVG(cost) AS mean_cost FROM medical_visits",
		plan.Options{Epsilon: 1, MaxGroupsContributed: 1, MaxContributionsPerGroup: c})
	if len(s.p.Worker.Bias.Clamped) != 1 {
		t.Fatalf("%d clamped-unit counts, want 1 (AVG)", len(s.p.Worker.Bias.Clamped))
	}
	if a := s.p.Worker.Aggregates[s.p.Worker.Bias.ClampedAggregates[0]]; a.Lower != 0 || a.Upper != 50000 {
		t.Fatalf("AVG(cost) clamps to [%v, %v], want the catalog's [0, 50000]", a.Lower, a.Upper)
	}
	cov := shareCoverage{name: "clamped[AVG(cost)].units_share", lo: sure / units, hi: (sure + maybe) / units}
	var last *api.Bias
	for range biasReleases {
		b, err := releaseBias(s.p, s.choice, s.bias)
		if err != nil {
			t.Fatal(err)
		}
		cov.add(b.Clamped[0].Units, b.Clamped[0].UnitsTolerance)
		last = b
	}
	t.Logf("%v units surely clamped, %v may be; last release: %s", sure, maybe, api.ShareText(last.Clamped[0].Units, last.Clamped[0].UnitsTolerance))
	cov.check(t, 0.1)
}

// TestBiasShareStatesAnIntervalThatHoldsEveryConsistentTruth pins biasShare on the edges: the
// stated share ± tolerance contains [max(D_lo, 0)/N_hi, D_hi/N_lo] ∩ [0, 1], reaches 1 when the
// units' interval reaches 0, and stays within [0, 1] whatever the noise did.
func TestBiasShareStatesAnIntervalThatHoldsEveryConsistentTruth(t *testing.T) {
	for _, tc := range []struct {
		name          string
		part, units   biasTotal
		share, lo, hi float64
	}{
		{"inside", biasTotal{100, 80, 120}, biasTotal{1000, 950, 1050}, 0.1, 80.0 / 1050, 120.0 / 950},
		{"part below 0", biasTotal{-20, -40, 0}, biasTotal{1000, 950, 1050}, 0, 0, 0},
		{"part above units", biasTotal{1200, 1100, 1300}, biasTotal{1000, 950, 1050}, 1, 1, 1},
		{"units may be 0", biasTotal{3, 0, 6}, biasTotal{2, -1, 5}, 1, 0, 1},
		{"no units at all", biasTotal{0, -5, 5}, biasTotal{-3, -8, 2}, 0, 0, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			share, tol := biasShare(tc.part, tc.units)
			if math.Abs(share-tc.share) > 1e-12 || !(tol >= 0) || share < 0 || share > 1 {
				t.Fatalf("share %v ± %v, want share %v", share, tol, tc.share)
			}
			if share-tol > tc.lo+1e-12 || share+tol < tc.hi-1e-12 {
				t.Errorf("share %v ± %v does not hold [%v, %v]", share, tol, tc.lo, tc.hi)
			}
		})
	}
}
