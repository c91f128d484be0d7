package engine_test

import (
	"context"
	"encoding/json"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/c1b99f93/cleanroom/engine"
	"github.com/c1b99f93/cleanroom/engine/plan"
	"github.com/c1b99f93/cleanroom/errcode"
)

// In visits(200) district A holds the 100 odd persons; cost is 100 + i%50, so "cost <> 101"
// leaves out 4 of them (i = 1, 51, 101, 151) and "cost < 125" about half. At epsilon 10 a
// differencing check's share is at least 2.5 (Laplace scale 0.4 on a count of units), so 4
// units never read as 10 and 50 never as under 10.
const differencingEpsilon = 10

func run(t *testing.T, e *engine.Engine, sql string) *engine.Outcome {
	t.Helper()
	out, err := e.Run(context.Background(), engine.Job{Principal: applicant, Grant: "g", SQL: sql, Options: plan.Options{Epsilon: differencingEpsilon}})
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return out
}

func heldForDifferencing(out *engine.Outcome) bool {
	return out.Held != nil && strings.Contains(strings.Join(out.Held.Reasons, ";"), "differencing_suspected")
}

func TestDifferencingPairIsHeldForReview(t *testing.T) {
	e := openEngine(t)
	register(t, e, visits(t, "visits", 200, false))
	grant(t, e, "g", 1000)
	const base = "SELECT COUNT(*) AS n, SUM(cost) AS total FROM visits WHERE district = 'A'"
	if out := run(t, e, base); out.Held != nil {
		t.Fatalf("the first query was held: %v", out.Held.Reasons)
	}
	// Decoys in between, with the same source and keys, do not push the first query out of
	// the comparison: it contains the new filter's text and ranks first.
	for _, decoy := range []string{"district = 'B'", "cost > 110", "visit_date = '2024-01-02'", "cost < 130"} {
		if out := run(t, e, "SELECT COUNT(*) AS n, SUM(cost) AS total FROM visits WHERE "+decoy); heldForDifferencing(out) {
			t.Fatalf("decoy %s was held for differencing", decoy)
		}
	}
	before := spent(t, e, "g")
	const minusFour = base + " AND cost <> 101"
	out := run(t, e, minusFour)
	if !heldForDifferencing(out) {
		t.Fatalf("a query differing from an earlier one by 4 persons was not held for differencing: %+v", out.Held)
	}
	// The check is paid from the job's own epsilon, and recorded with the budget's mechanisms.
	if got := spent(t, e, "g") - before; got != differencingEpsilon {
		t.Fatalf("the held job cost %v, want its epsilon %v", got, differencingEpsilon)
	}
	mech, _ := json.Marshal(lastRecord(t, e, "mechanism"))
	if !strings.Contains(string(mech), "differencing_check against") {
		t.Fatalf("mechanism record %s does not list the differencing check", mech)
	}
	rv, _ := json.Marshal(lastRecord(t, e, "reviewer"))
	if !strings.Contains(string(rv), `"code":"differencing_suspected"`) || !strings.Contains(string(rv), `"severity":"medium"`) {
		t.Fatalf("reviewer record %s", rv)
	}

	// Asking again while it is held is answered by the hold: output_held, not a second
	// queue entry, nothing charged.
	before = spent(t, e, "g")
	_, err := e.Run(context.Background(), engine.Job{Principal: applicant, Grant: "g", SQL: minusFour + " LIMIT 5", Options: plan.Options{Epsilon: differencingEpsilon}})
	if errcode.Of(err) != errcode.OutputHeld || spent(t, e, "g") != before {
		t.Fatalf("the repeat while held: %v, spent %v → %v; want %s for free", err, before, spent(t, e, "g"), errcode.OutputHeld)
	}

	// A filter that differs by about fifty persons is an ordinary query.
	if out := run(t, e, base+" AND cost < 125"); heldForDifferencing(out) {
		t.Fatalf("a query differing by about 50 persons was held for differencing")
	}

	// A filter equivalent to an earlier one (both keep every row) differs by no one, which is
	// flagged too: rewriting a filter is how one would draw fresh noise on the same answer.
	if out := run(t, e, "SELECT COUNT(*) AS n, SUM(cost) AS total FROM visits WHERE cost < 1000"); !heldForDifferencing(out) {
		t.Fatalf("a filter equivalent to an earlier one was not held")
	}

	// Submit (no governance layer) reports the hold as held_for_review.
	_, err = submit(e, "g", base+" AND cost <> 102", plan.Options{Epsilon: differencingEpsilon})
	if errcode.Of(err) != errcode.HeldForReview {
		t.Fatalf("Submit: %v, want %s", err, errcode.HeldForReview)
	}
}

func TestDifferencingCheckFollowsThePolicy(t *testing.T) {
	e := openEngineWithParams(t, `"differencing_min_units": 10`, `"differencing_min_units": 0`)
	register(t, e, visits(t, "visits", 200, false))
	grant(t, e, "g", 1000)
	const base = "SELECT COUNT(*) AS n FROM visits WHERE district = 'A'"
	run(t, e, base)
	out := run(t, e, base+" AND cost <> 101")
	if out.Held != nil || strings.Contains(out.Result.Split, "differencing") {
		t.Fatalf("with differencing_min_units 0 the pair was checked: held %+v, split %q", out.Held, out.Result.Split)
	}
}

// runAt runs sql on grant g at epsilon 20 (a differencing check's noise is then well under a
// unit's worth next to the threshold of 10).
func runAt(t *testing.T, e *engine.Engine, sql string) *engine.Outcome {
	t.Helper()
	out, err := e.Run(context.Background(), engine.Job{Principal: applicant, Grant: "g", SQL: sql, Options: plan.Options{Epsilon: 20}})
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return out
}

// TestDifferencingDecoysDoNotPushThePartnerOut: three decoys whose text contains the new
// filter's (and so ranked above the real partner by textual likeness) are checked too, and so
// is the partner: the pair is held.
func TestDifferencingDecoysDoNotPushThePartnerOut(t *testing.T) {
	e := openEngine(t)
	register(t, e, visits(t, "visits", 200, false))
	grant(t, e, "g", 1000)
	const q = "SELECT COUNT(*) AS n, SUM(cost) AS total FROM visits WHERE "
	runAt(t, e, q+"district = 'A'")
	// Each decoy is the target filter OR some of district B: it differs from the target, the
	// partner and the other decoys by at least 20 persons.
	for _, c := range []string{"cost < 110", "cost < 120", "cost < 130"} {
		if out := runAt(t, e, q+"(district = 'A' AND cost <> 101) OR "+c); heldForDifferencing(out) {
			t.Fatalf("decoy %s was held for differencing", c)
		}
	}
	out := runAt(t, e, q+"district = 'A' AND cost <> 101")
	if !heldForDifferencing(out) {
		t.Fatalf("with three decoys before it, a query differing from an earlier one by 4 persons was not held: %+v", out.Held)
	}
	if n := checkedAgainst(t, e); n != 4 {
		t.Fatalf("the differencing check compared %d earlier queries, want 4 (the partner and three decoys)", n)
	}
}

var checkName = regexp.MustCompile(`"differencing_check against ([^"]*)"`)

// checkedAgainst is how many earlier jobs the last job's one differencing check compared, from
// its mechanism record (0 without a check).
func checkedAgainst(t *testing.T, e *engine.Engine) int {
	t.Helper()
	mech, _ := json.Marshal(lastRecord(t, e, "mechanism"))
	checks := checkName.FindAllStringSubmatch(string(mech), -1)
	if len(checks) > 1 {
		t.Fatalf("mechanism record %s has %d differencing checks, want one for every earlier query", mech, len(checks))
	}
	jobs := 0
	for _, c := range checks {
		jobs += len(strings.Split(c[1], ", "))
	}
	return jobs
}

// TestDifferencingConcurrentPairIsCaught: two jobs of a differencing pair submitted together
// are compared with each other — the filter is noted when a job is planned, not after it ran.
func TestDifferencingConcurrentPairIsCaught(t *testing.T) {
	e := openEngine(t)
	register(t, e, visits(t, "visits", 200, false))
	grant(t, e, "g", 1000)
	const q = "SELECT COUNT(*) AS n, SUM(cost) AS total FROM visits WHERE district = 'A'"
	outs := make([]*engine.Outcome, 2)
	var wg sync.WaitGroup
	for i, sql := range []string{q, q + " AND cost <> 101"} {
		wg.Go(func() { outs[i] = runAt(t, e, sql) })
	}
	wg.Wait()
	if !heldForDifferencing(outs[0]) && !heldForDifferencing(outs[1]) {
		t.Fatal("a differencing pair run at once: neither job was held")
	}
}

// shippedMaxDifferencingChecks is max_differencing_checks in the shipped data.json
// (TestEngineParams in policy pins it there).
const shippedMaxDifferencingChecks = 64

// TestDifferencingRefusesMoreCandidatesThanItChecks: filters on one column that cannot meet
// (district = 'A', 'B', 'C') are not candidates for each other; a query that could pair with
// more earlier filters than a job is checked against is refused before it reserves anything,
// in an explanation as in a job.
func TestDifferencingRefusesMoreCandidatesThanItChecks(t *testing.T) {
	e := openEngine(t)
	register(t, e, visits(t, "visits", 200, false))
	grant(t, e, "g", 1000)
	const q = "SELECT COUNT(*) AS n FROM visits WHERE "
	for _, d := range []string{"A", "B", "C"} {
		out := runAt(t, e, q+"district = '"+d+"'")
		if strings.Contains(out.Result.Split, "differencing") {
			t.Fatalf("district %s was checked against a disjoint slice: %s", d, out.Result.Split)
		}
	}
	// Overlapping filters: each could pair with every one before it and the district ones, so
	// the next query has shippedMaxDifferencingChecks+1 candidates.
	for i := range shippedMaxDifferencingChecks - 2 {
		// At epsilon 1: the checks' noise does not matter here, the dataset's budget does.
		if _, err := e.Run(context.Background(), engine.Job{Principal: applicant, Grant: "g", SQL: q + "cost < " + strconv.Itoa(110+5*i), Options: plan.Options{Epsilon: 1}}); err != nil {
			t.Fatal(err)
		}
	}
	before := spent(t, e, "g")
	_, err := e.Run(context.Background(), engine.Job{Principal: applicant, Grant: "g", SQL: q + "cost < 1000", Options: plan.Options{Epsilon: 20}})
	if errcode.Of(err) != errcode.DifferencingLimit {
		t.Fatalf("a query with %d candidates: %v, want %s", shippedMaxDifferencingChecks+1, err, errcode.DifferencingLimit)
	}
	if spent(t, e, "g") != before {
		t.Fatal("the refused job was charged")
	}
	if _, err := e.Explain(context.Background(), engine.Job{Principal: applicant, Grant: "g", SQL: q + "cost < 1000", Options: plan.Options{Epsilon: 20}}); errcode.Of(err) != errcode.DifferencingLimit {
		t.Fatalf("explain: %v, want %s", err, errcode.DifferencingLimit)
	}
	// A query pinned to district B pairs only with the filters that can meet it: still checked.
	if _, err := e.Run(context.Background(), engine.Job{Principal: applicant, Grant: "g", SQL: q + "district = 'B' AND cost < 200", Options: plan.Options{Epsilon: 20}}); errcode.Of(err) == errcode.DifferencingLimit {
		t.Fatalf("a query disjoint from two of the district filters was refused: %v", err)
	}
}

// TestDifferencingCapIsThePolicysParameter: how many earlier filters a job is checked against
// is the operator's max_differencing_checks. With 2, a query whose filter overlaps three
// earlier ones is refused, and one overlapping two is checked against both; with 16, one
// overlapping nine is checked against all nine and runs.
func TestDifferencingCapIsThePolicysParameter(t *testing.T) {
	const q = "SELECT COUNT(*) AS n FROM visits WHERE cost < "
	// afterOverlapping runs n overlapping filters on a fresh grant, then a query whose filter
	// overlaps all n; it returns that query's error, or how many checks its mechanism record lists.
	afterOverlapping := func(t *testing.T, e *engine.Engine, g string, n int) (int, error) {
		t.Helper()
		grant(t, e, g, 1000)
		for i := range n {
			if _, err := e.Run(context.Background(), engine.Job{Principal: applicant, Grant: g, SQL: q + strconv.Itoa(110+5*i), Options: plan.Options{Epsilon: 20}}); err != nil {
				t.Fatalf("overlapping filter %d: %v", i+1, err)
			}
		}
		if _, err := e.Run(context.Background(), engine.Job{Principal: applicant, Grant: g, SQL: q + "400", Options: plan.Options{Epsilon: 20}}); err != nil {
			return 0, err
		}
		return checkedAgainst(t, e), nil
	}
	t.Run("two", func(t *testing.T) {
		e := openEngineWithParams(t, `"max_differencing_checks": 64`, `"max_differencing_checks": 2`)
		register(t, e, visits(t, "visits", 200, false))
		if n, err := afterOverlapping(t, e, "g2", 2); err != nil || n != 2 {
			t.Fatalf("a query overlapping two earlier filters with a cap of 2: %d checks, %v; want 2 checks", n, err)
		}
		if _, err := afterOverlapping(t, e, "g3", 3); errcode.Of(err) != errcode.DifferencingLimit {
			t.Fatalf("a query overlapping three earlier filters with a cap of 2: %v, want %s", err, errcode.DifferencingLimit)
		}
	})
	t.Run("sixteen", func(t *testing.T) {
		e := openEngineWithParams(t, `"max_differencing_checks": 64`, `"max_differencing_checks": 16`)
		register(t, e, visits(t, "visits", 200, false))
		const want = 9
		if n, err := afterOverlapping(t, e, "g9", want); err != nil || n != want {
			t.Fatalf("a query overlapping %d earlier filters with a cap of 16: %d checks, %v; want %d checks", want, n, err, want)
		}
	})
}
