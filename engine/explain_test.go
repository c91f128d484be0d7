package engine_test

import (
	"context"
	"math"
	"strings"
	"testing"

	"github.com/c1b99f93/cleanroom/dp"
	"github.com/c1b99f93/cleanroom/engine"
	"github.com/c1b99f93/cleanroom/engine/ledger"
	"github.com/c1b99f93/cleanroom/engine/plan"
	"github.com/c1b99f93/cleanroom/errcode"
	"github.com/c1b99f93/cleanroom/server/api"
)

// A dry run shows the plan, mechanisms and cost without reading data or touching the budget,
// and its cost is what the job then pays.
func TestExplainTouchesNeitherDataNorBudget(t *testing.T) {
	e := openEngine(t)
	register(t, e, visits(t, "visits", 100, false))
	grant(t, e, "g", 10)
	job := engine.Job{Principal: applicant, Grant: "g", SQL: "SELECT district, COUNT(*), AVG(cost), MEDIAN(cost) FROM visits GROUP BY district",
		Options: plan.Options{Epsilon: 1.5, MaxGroupsContributed: 1, MaxContributionsPerGroup: 5}}
	before := len(records(t, e))
	x, err := e.Explain(context.Background(), job)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(records(t, e)); n != before {
		t.Fatalf("explain appended %d provenance records", n-before)
	}
	if got := spent(t, e, "g"); got != 0 {
		t.Fatalf("explain spent %v", got)
	}
	// Three aggregates and the hidden unit count that small-group suppression needs.
	if !x.Policy.Allowed() || !x.PublicPartitions || x.Cost.Epsilon != 1.5 || len(x.Aggregates) != 4 || x.Aggregates[3].Name != "units_per_group (hidden)" {
		t.Fatalf("explanation = %+v", x)
	}
	count := x.Aggregates[0]
	if count.Kind != string(dp.Count) || count.ExpectedError == nil || len(count.Components) != 1 {
		t.Fatalf("count explained as %+v", count)
	}
	// Laplace, ε = 1.5·(1 − BiasShare)/(3 + HiddenUnitCountWeight) per aggregate, L0 = 1, L∞ = 5:
	// b = 5/ε, 95% half-width b·ln 20.
	if want := 5 / (1.5 * (1 - plan.BiasShare) / (3 + plan.HiddenUnitCountWeight)) * math.Log(20); math.Abs(*count.ExpectedError-want) > 1e-9 {
		t.Fatalf("expected error %v, want %v", *count.ExpectedError, want)
	}
	if mean := x.Aggregates[1]; mean.Lower == nil || *mean.Upper != 1000 || len(mean.Components) != 2 || mean.Note == "" {
		t.Fatalf("mean explained as %+v", mean)
	}
	if !strings.Contains(x.BoundsChoice, "fixed: 1 group(s) per unit, 5 row(s)") {
		t.Fatalf("bounds choice %q for the job's own bounds", x.BoundsChoice)
	}
	auto := job
	auto.Options.MaxGroupsContributed, auto.Options.MaxContributionsPerGroup = 0, 0
	ax, err := e.Explain(context.Background(), auto)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(ax.BoundsChoice, "will be chosen under DP") || !strings.Contains(ax.BoundsChoice, "max_groups_contributed (at most") {
		t.Fatalf("bounds choice %q for automatic bounds", ax.BoundsChoice)
	}
	r, err := e.Submit(context.Background(), job)
	if err != nil {
		t.Fatal(err)
	}
	if r.Spent != api.Budget(x.Cost) {
		t.Fatalf("job spent %+v, dry run said %+v", r.Spent, x.Cost)
	}
	again, err := e.Explain(context.Background(), job)
	if err != nil {
		t.Fatal(err)
	}
	if again.AnsweredFromRelease != r.Job || again.Cost.Epsilon != 0 {
		t.Fatalf("after release, explain says answered from %q at %+v", again.AnsweredFromRelease, again.Cost)
	}
}

// The budget report shows the enforced basic composition and, beside it, a tighter bound over
// the same debits.
func TestBudgetReportsBasicAndTighterComposition(t *testing.T) {
	e := openEngineWithoutDifferencing(t)
	register(t, e, visits(t, "visits", 200, false))
	grant(t, e, "g", 100)
	for i := range 5 {
		// No public domain for diagnosis: Gaussian aggregates and partition selection (delta).
		sql := "SELECT diagnosis, COUNT(*) FROM visits WHERE cost >= " + string(rune('0'+i)) + " GROUP BY diagnosis"
		if _, err := submit(e, "g", sql, plan.Options{Epsilon: 1, Delta: 1e-6}); err != nil {
			t.Fatal(err)
		}
	}
	rep, err := e.Budget(context.Background(), engine.GrantAccount("g"))
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.History) != 5 || math.Abs(rep.Balance.Spent.Epsilon-5) > 1e-9 {
		t.Fatalf("history %d entries, spent %+v", len(rep.History), rep.Balance.Spent)
	}
	if math.Abs(rep.Tighter.Basic.Epsilon-rep.Balance.Spent.Epsilon) > 1e-9 {
		t.Fatalf("accountant's basic total %v differs from the ledger's %v", rep.Tighter.Basic.Epsilon, rep.Balance.Spent.Epsilon)
	}
	if rep.Tighter.Tighter.Epsilon > rep.Tighter.Basic.Epsilon || rep.Tighter.Method == "" {
		t.Fatalf("tighter bound %+v", rep.Tighter)
	}
}

// Delta 0 is pure DP, not "the default": a query over public partitions runs at no delta, and
// one that needs partition selection is refused before anything runs, naming what would work.
// A budget refusal for want of delta names the same ways round, and a smaller delta.
func TestDeltaZeroIsPureDPAndRefusalsNameWhatWorks(t *testing.T) {
	e := openEngine(t)
	register(t, e, visits(t, "visits", 100, false))
	grant(t, e, "g", 10)
	pure := plan.Options{Epsilon: 1, DeltaSet: true}
	x, err := e.Explain(context.Background(), engine.Job{Principal: applicant, Grant: "g", Options: pure,
		SQL: "SELECT width_bucket(cost, 0, 1000, 4) AS b, COUNT(*) FROM visits GROUP BY b"})
	if err != nil || x.Cost.Delta != 0 || !x.PublicPartitions {
		t.Fatalf("delta 0 over public partitions: %+v, %v", x, err)
	}
	_, err = submit(e, "g", "SELECT diagnosis, COUNT(*) FROM visits GROUP BY diagnosis", pure)
	if errcode.Of(err) != errcode.InvalidOptions || !strings.Contains(err.Error(), "width_bucket") || !strings.Contains(err.Error(), "pure DP") {
		t.Fatalf("delta 0 with partition selection: %v", err)
	}
	if got := spent(t, e, "g"); got != 0 {
		t.Fatalf("the refused job spent %v", got)
	}
	// Without DeltaSet, 0 is still "unset": the default delta applies and the query runs.
	if _, err := submit(e, "g", "SELECT diagnosis, COUNT(*) FROM visits GROUP BY diagnosis", plan.Options{Epsilon: 1}); err != nil {
		t.Fatalf("default delta: %v", err)
	}

	if err := e.OpenGrant(context.Background(), "tiny", ledger.Budget{Epsilon: 10, Delta: 1e-9}); err != nil {
		t.Fatal(err)
	}
	_, err = submit(e, "tiny", "SELECT diagnosis, COUNT(*) FROM visits GROUP BY diagnosis", plan.Options{Epsilon: 1, Delta: 5e-9, DeltaSet: true})
	if errcode.Of(err) != errcode.BudgetExhausted || !strings.Contains(err.Error(), "smaller delta") || !strings.Contains(err.Error(), "width_bucket") {
		t.Fatalf("delta beyond the grant's: %v", err)
	}
}

// A dry run explains COUNT(DISTINCT col) as the count it is noised like: the same noise and
// expected error as the COUNT(*) beside it, and no clamping bounds (its values are not clamped).
func TestExplainShowsADistinctCountAsACount(t *testing.T) {
	e := openEngine(t)
	register(t, e, visits(t, "visits", 100, false))
	grant(t, e, "g", 10)
	x, err := e.Explain(context.Background(), engine.Job{Principal: applicant, Grant: "g",
		SQL:     "SELECT district, COUNT(DISTINCT diagnosis) AS diagnoses, COUNT(*) FROM visits GROUP BY district",
		Options: plan.Options{Epsilon: 1, MaxGroupsContributed: 1, MaxContributionsPerGroup: 3}})
	if err != nil {
		t.Fatal(err)
	}
	d, c := x.Aggregates[0], x.Aggregates[1]
	if d.Kind != string(dp.CountDistinctValues) || d.Name != "diagnoses" || c.Kind != string(dp.Count) {
		t.Fatalf("aggregates explained as %+v and %+v", d, c)
	}
	if d.ExpectedError == nil || c.ExpectedError == nil || *d.ExpectedError != *c.ExpectedError || d.Note != "" {
		t.Fatalf("distinct count's expected error %v (%q), COUNT(*)'s %v", d.ExpectedError, d.Note, c.ExpectedError)
	}
	if len(d.Components) != 1 || d.Components[0] != c.Components[0] || d.Components[0].LInf != 3 {
		t.Fatalf("distinct count's noise %+v, COUNT(*)'s %+v", d.Components, c.Components)
	}
	if d.Lower != nil || d.Upper != nil {
		t.Fatalf("distinct count explained with clamping bounds [%v, %v]", d.Lower, d.Upper)
	}
}
