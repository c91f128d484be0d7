package engine_test

import (
	"database/sql"
	"fmt"
	"math"
	"testing"

	"github.com/c1b99f93/cleanroom/engine/plan"
	"github.com/c1b99f93/cleanroom/server/api"
)

// distinctBands are, for COUNT(DISTINCT diagnosis) at contribution bounds (l0, lInf), per
// district ("" without keys): the truth (every row) and a lower bound on the number of distinct
// diagnoses among the rows bounding keeps, whatever its keyed hash picks — the diagnoses of
// persons with at most l0 districts and at most lInf visits, all of whose rows are kept.
// Bounding only drops rows, so the kept rows' count lies in [lower, truth].
func distinctBands(t *testing.T, db *sql.DB, byDistrict bool, l0, lInf int64) (truth, lower map[string]float64) {
	t.Helper()
	key, group := "''", ""
	if byDistrict {
		key, group = "district", "GROUP BY district"
	}
	read := func(q string) map[string]float64 {
		rows, err := db.Query(q)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		out := map[string]float64{}
		for rows.Next() {
			var k string
			var n int64
			if err := rows.Scan(&k, &n); err != nil {
				t.Fatal(err)
			}
			out[k] = float64(n)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		return out
	}
	truth = read(fmt.Sprintf("SELECT %s, COUNT(DISTINCT diagnosis) FROM medical_visits %s", key, group))
	lower = read(fmt.Sprintf(`WITH p AS (SELECT person_id, COUNT(*) AS n, COUNT(DISTINCT district) AS g FROM medical_visits GROUP BY person_id)
		SELECT %s, COUNT(DISTINCT diagnosis) FROM medical_visits JOIN p USING (person_id) WHERE p.n <= %d AND p.g <= %d %s`, key, lInf, l0, group))
	return truth, lower
}

// TestCountDistinctDiagnosesOnTestdata is the statistical tier for COUNT(DISTINCT col) on the
// committed testdata at epsilon 1, bounds explicit (one district per person, as the data has).
// Each released cell is D + X: D the distinct diagnoses among the kept rows, which lies in
// [lower, truth] (distinctBands: bounding can only lower it), and X the library's Laplace noise
// of scale b = L∞ / ε_cell (a count's, L0 = 1), with ε_cell read from the released cell. The
// library's noise cannot be seeded, so the bands are set where a failure has probability below
// 1e-6 per run:
//   - overall (one cell, L∞ 1): |X| ≤ ln(10⁶)·b, P(|X| > that) = 10⁻⁶;
//   - by district (14 public cells, L∞ 2): the mean of the 14 cells within 3b of the mean of
//     their bands; by the Chernoff bound with E[e^{sX}] = 1/(1 − s²b²) at s = 1/(2b),
//     P(|mean X| > 3b) ≤ 2·e^{−21}·(4/3)^14 < 10⁻⁷. One cell alone at that scale would need a
//     band wider than the count.
//
// Beside the band, every district is released, and the distinct count is noised exactly like the
// COUNT(*) beside it (same epsilon, same interval half-width: the same mechanism at the same
// bounds).
func TestCountDistinctDiagnosesOnTestdata(t *testing.T) {
	e := openEngine(t)
	register(t, e, loadDataset(t, "medical_visits"))
	grant(t, e, "g", 100)
	db := truthDB(t)

	t.Run("overall", func(t *testing.T) {
		truth, lower := distinctBands(t, db, false, 1, 1)
		res, err := submitReviewed(e, "g", "SELECT COUNT(DISTINCT diagnosis) AS diagnoses FROM medical_visits",
			plan.Options{Epsilon: 1, MaxGroupsContributed: 1, MaxContributionsPerGroup: 1})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Rows) != 1 {
			t.Fatalf("%d rows, want 1", len(res.Rows))
		}
		c := res.Rows[0][0].DP
		b := 1 / c.Epsilon
		tol := math.Log(1e6) * b
		t.Logf("true %v, kept rows hold at least %v; released %.0f [%.0f, %.0f] (ε %.3g, b %.3g, band ±%.3g)", truth[""], lower[""], c.Value, c.CILow, c.CIHigh, c.Epsilon, b, tol)
		if c.Value < lower[""]-tol || c.Value > truth[""]+tol {
			t.Errorf("released %v, outside [%v, %v]", c.Value, lower[""]-tol, truth[""]+tol)
		}
	})

	t.Run("by district", func(t *testing.T) {
		const lInf = 2
		truth, lower := distinctBands(t, db, true, 1, lInf)
		res, err := submitReviewed(e, "g", "SELECT district, COUNT(DISTINCT diagnosis) AS diagnoses, COUNT(*) AS visits FROM medical_visits GROUP BY district",
			plan.Options{Epsilon: 1, MaxGroupsContributed: 1, MaxContributionsPerGroup: lInf})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Rows) != len(truth) {
			t.Fatalf("%d districts released, want %d", len(res.Rows), len(truth))
		}
		var sum, lo, hi, b float64
		for _, row := range res.Rows {
			d, n := row[1].DP, row[2].DP
			k := *row[0].Key
			t.Logf("%s: true %v, kept ≥ %v; released %.0f [%.0f, %.0f]", k, truth[k], lower[k], d.Value, d.CILow, d.CIHigh)
			if d.Epsilon != n.Epsilon || d.Mechanism != n.Mechanism {
				t.Errorf("%s: distinct count at ε %v (%s), COUNT(*) at ε %v (%s)", k, d.Epsilon, d.Mechanism, n.Epsilon, n.Mechanism)
			}
			if d.Value > 0 && !sameHalfWidth(d, n) {
				t.Errorf("%s: distinct count's interval [%v, %v] around %v is not COUNT(*)'s width (%v above %v)", k, d.CILow, d.CIHigh, d.Value, n.CIHigh-n.Value, n.Value)
			}
			sum += d.Value
			lo += lower[k]
			hi += truth[k]
			b = lInf / d.Epsilon
		}
		m := float64(len(res.Rows))
		t.Logf("mean released %.2f, band [%.2f, %.2f] (b %.3g)", sum/m, lo/m-3*b, hi/m+3*b, b)
		if mean := sum / m; mean < lo/m-3*b || mean > hi/m+3*b {
			t.Errorf("mean released %.2f outside [%.2f, %.2f]", mean, lo/m-3*b, hi/m+3*b)
		}
	})
}

// sameHalfWidth reports whether two cells' intervals reach equally far above their values (the
// upper side, which clamping at 0 does not cut for a positive value).
func sameHalfWidth(a, b *api.Released) bool {
	return math.Abs((a.CIHigh-a.Value)-(b.CIHigh-b.Value)) < 1e-6
}
