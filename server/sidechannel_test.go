package server_test

import (
	"fmt"
	"testing"
	"time"
)

// The attack of issue 13's first finding, through the public API: a key or per-unit value that
// overflows (or otherwise fails) only on rows matching a predicate used to end the job failed
// exactly when some row matched — a binary search read any cell at epsilon 1e-6 a job. Now
// each pair below, one predicate matching rows and one matching none, must end without failing.
// (engine's TestJobOutcomeDoesNotDependOnOneUnit proves the property itself on neighbouring
// datasets.)
func TestFailingExpressionIsNotAnOracleOverHTTP(t *testing.T) {
	p := start(t, t.TempDir(), &clock{now: time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)})
	g := setupGrant(t, p, 5) // 8 jobs at epsilon 0.5
	// Keys with public domains, so no job needs partition selection's delta.
	shapes := map[string]string{
		"overflow in a key":                       "SELECT CASE WHEN (CASE WHEN %s THEN 9223372036854775807 + year(visit_date) ELSE 0 END) > 0 THEN 'big' ELSE 'small' END AS k, COUNT(*) FROM medical_visits GROUP BY 1",
		"abs of the smallest integer in a filter": "SELECT district, COUNT(*) FROM medical_visits WHERE abs(CASE WHEN %s THEN -9223372036854775807 - 1 ELSE 0 END) >= 0 GROUP BY district",
		"invalid date part in a per-unit key":     "SELECT k, COUNT(*) FROM (SELECT person_id, width_bucket(date_part(CASE WHEN %s THEN 'no-such-part' ELSE 'year' END, visit_date), 2000, 2030, 3) AS k, COUNT(*) AS n FROM medical_visits GROUP BY person_id, k) s GROUP BY k",
		"overflow in a key over a join":           "SELECT CASE WHEN (CASE WHEN v.%s THEN 9223372036854775807 + year(v.visit_date) ELSE 0 END) > 0 THEN 'big' ELSE 'small' END AS k, COUNT(*) FROM medical_visits v JOIN residents r ON v.person_id = r.person_id GROUP BY 1",
	}
	for name, shape := range shapes {
		t.Run(name, func(t *testing.T) {
			var states [2]string
			for i, pred := range []string{"cost < 0", "cost > 0"} { // no row; most rows
				j := p.waitJob("insurer-1", p.submit("insurer-1", g, fmt.Sprintf(shape, pred)).ID)
				states[i] = j.State
				if j.Error != nil {
					states[i] += "/" + j.Error.Code
				}
			}
			// Where failing rows drop out of a filter the two answers differ, and a reviewer
			// may hold one (by noisy counts); what must never happen is a failed job.
			for i, st := range states {
				if st != "released" && st != "in_review" {
					t.Fatalf("predicate %d ends %s; a failure here answers whether a row matches", i, st)
				}
			}
		})
	}
}
