package engine_test

import (
	"context"
	"fmt"
	"math"
	"sync"
	"testing"

	"github.com/c1b99f93/cleanroom/engine"
	"github.com/c1b99f93/cleanroom/engine/plan"
)

func values(r *engine.Result) []float64 {
	var out []float64
	for _, row := range r.Rows {
		for _, c := range row {
			if c.DP != nil {
				out = append(out, c.DP.Value)
			}
		}
	}
	return out
}

func countRecords(t *testing.T, e *engine.Engine, typ string) int {
	n := 0
	for _, r := range records(t, e) {
		if r["type"] == typ {
			n++
		}
	}
	return n
}

// Repeating a query must not average the noise away: the same normalized query on the same
// grant gets the first release back, at no cost, whatever its spelling, aliases or ORDER BY.
func TestIdenticalQueryIsAnsweredFromItsReleaseAtNoCost(t *testing.T) {
	e := openEngine(t)
	register(t, e, visits(t, "visits", 200, false))
	grant(t, e, "g", 10)
	o := plan.Options{Epsilon: 1}
	first, err := submit(e, "g", "SELECT district, COUNT(*), SUM(cost) FROM visits GROUP BY district", o)
	if err != nil {
		t.Fatal(err)
	}
	for _, sql := range []string{
		"SELECT district, COUNT(*), SUM(cost) FROM visits GROUP BY district",
		"select  district AS d, count(*) AS n,  sum(cost) AS total from visits group by 1",
		"SELECT district, COUNT(*), SUM(cost) FROM visits GROUP BY district ORDER BY 2 DESC LIMIT 2",
	} {
		again, err := submit(e, "g", sql, o)
		if err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		firstRows := map[string]string{}
		for _, row := range first.Rows {
			firstRows[*row[0].Key] = fmt.Sprint(row[1].DP.Value, row[2].DP.Value)
		}
		if len(again.Rows) == 0 {
			t.Fatalf("%s: no rows", sql)
		}
		for _, row := range again.Rows {
			if got := fmt.Sprint(row[1].DP.Value, row[2].DP.Value); got != firstRows[*row[0].Key] {
				t.Fatalf("%s: row %s released %s, first release %s", sql, *row[0].Key, got, firstRows[*row[0].Key])
			}
		}
		if again.Spent.Epsilon != 0 || again.Job == first.Job {
			t.Fatalf("%s: spent %v as job %s, want nothing spent under a new job id", sql, again.Spent, again.Job)
		}
	}
	if got := spent(t, e, "g"); math.Abs(got-1) > 1e-12 {
		t.Fatalf("grant spent %v, want 1 (one computation)", got)
	}
	if n := countRecords(t, e, "execution"); n != 1 {
		t.Fatalf("%d executions, want 1", n)
	}
	if n := countRecords(t, e, "answered_from_release"); n != 3 {
		t.Fatalf("%d answers from the release, want 3", n)
	}
	// Other privacy parameters draw (and pay for) fresh noise.
	if _, err := submit(e, "g", "SELECT district, COUNT(*), SUM(cost) FROM visits GROUP BY district", plan.Options{Epsilon: 2}); err != nil {
		t.Fatal(err)
	}
	if got := spent(t, e, "g"); math.Abs(got-3) > 1e-12 {
		t.Fatalf("grant spent %v, want 3", got)
	}
	// The answer belongs to the grant: another grant computes and pays.
	grant(t, e, "h", 10)
	if _, err := submit(e, "h", "SELECT district, COUNT(*), SUM(cost) FROM visits GROUP BY district", o); err != nil {
		t.Fatal(err)
	}
	if got := spent(t, e, "h"); math.Abs(got-1) > 1e-12 {
		t.Fatalf("grant h spent %v, want 1", got)
	}
}

// Identical jobs in flight at once compute once: the others wait and get the same answer.
func TestConcurrentIdenticalQueriesComputeOnce(t *testing.T) {
	e := openEngine(t)
	register(t, e, visits(t, "visits", 200, false))
	grant(t, e, "g", 10)
	var wg sync.WaitGroup
	results := make([]*engine.Result, 8)
	errs := make([]error, len(results))
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = e.Submit(context.Background(), engine.Job{Principal: applicant, Grant: "g",
				SQL: "SELECT district, COUNT(*) FROM visits GROUP BY district", Options: plan.Options{Epsilon: 1}})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("job %d: %v", i, err)
		}
		if fmt.Sprint(values(results[i])) != fmt.Sprint(values(results[0])) {
			t.Fatalf("job %d released %v, job 0 %v", i, values(results[i]), values(results[0]))
		}
	}
	if got := spent(t, e, "g"); math.Abs(got-1) > 1e-12 {
		t.Fatalf("grant spent %v, want 1", got)
	}
}
