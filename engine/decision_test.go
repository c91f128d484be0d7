package engine_test

import (
	"context"
	"strings"
	"testing"

	"github.com/c1b99f93/cleanroom/engine"
	"github.com/c1b99f93/cleanroom/engine/plan"
	"github.com/c1b99f93/cleanroom/errcode"
	"github.com/c1b99f93/cleanroom/sandbox"
)

// A rejected output stays rejected for every query the cache would answer with it — another
// ORDER BY, alias or LIMIT — with the reviewer's reason, at no cost, across a restart; and it
// can no longer be released by later approvals.
func TestRejectedOutputAnswersEveryRepeatAtNoCost(t *testing.T) {
	ctx := context.Background()
	dir, pol := t.TempDir(), testPolicy(t)
	open := func() *engine.Engine {
		e, err := engine.Open(ctx, engine.Config{DataDir: dir, PolicyDir: pol, WorkerDB: sandbox.DBLimits{MemoryLimit: "2GB"}})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	e := open()
	register(t, e, loadDataset(t, "residents"))
	grant(t, e, "g", 10)
	job := func(sql string) engine.Job {
		return engine.Job{Principal: applicant, Grant: "g", SQL: sql, Options: plan.Options{Epsilon: 1}}
	}
	out, err := e.Run(ctx, job("SELECT gender, COUNT(*) AS n FROM residents GROUP BY gender"))
	if err != nil || out.Held == nil {
		t.Fatalf("the L3 output was not held: %v", err)
	}
	const reason = "gender split not covered by the stated purpose"
	if err := e.Withhold(ctx, out.Result.Job, errcode.ReviewRejected, reason); err != nil {
		t.Fatal(err)
	}
	if _, err := e.ReleaseHeld(ctx, out.Result.Job, out.Held, out.Result, []string{"rev-1", "rev-2"}); errcode.Of(err) != errcode.Conflict {
		t.Fatalf("a rejected output was released by later approvals: %v", err)
	}
	repeats := []string{
		"SELECT gender, COUNT(*) AS n FROM residents GROUP BY gender ORDER BY n DESC",
		"SELECT gender AS g, COUNT(*) AS how_many FROM residents GROUP BY 1",
		"select gender, count(*) as n from residents group by gender order by gender limit 1",
	}
	check := func(e *engine.Engine, when string) {
		t.Helper()
		before := spent(t, e, "g")
		for _, sql := range repeats {
			_, err := e.Run(ctx, job(sql))
			if errcode.Of(err) != errcode.ReviewRejected || !strings.Contains(errcode.Public(err).Message, reason) ||
				!strings.Contains(errcode.Public(err).Message, out.Result.Job) {
				t.Fatalf("%s, %s: %v; want review_rejected naming the job and the reason", when, sql, err)
			}
		}
		if after := spent(t, e, "g"); after != before {
			t.Fatalf("%s the repeats spent budget: %v → %v", when, before, after)
		}
	}
	check(e, "before a restart")
	if n := countRecords(t, e, "decision_recalled"); n != len(repeats) {
		t.Fatalf("%d decision_recalled records, want one per repeat", n)
	}
	e.Close()
	e = open()
	defer e.Close()
	check(e, "after a restart")
}

// A denial by the egress policy (here a raw value in a data-derived key: a high finding)
// sticks to the output: a repeat with a LIMIT that would leave the offending row out, or
// another ORDER BY, is denied with the same reasons and costs nothing.
func TestEgressDenialSticksToTheOutput(t *testing.T) {
	e := openEngine(t)
	register(t, e, wardsCSV(t, "Zhang Sanfeng"))
	grant(t, e, "g", 100)
	_, err := submit(e, "g", "SELECT ward, COUNT(*) AS n FROM wards GROUP BY ward", plan.Options{Epsilon: 1})
	if errcode.Of(err) != errcode.EgressDenied {
		t.Fatalf("the leaking output: %v, want egress_denied", err)
	}
	before := spent(t, e, "g")
	for _, sql := range []string{
		"SELECT ward, COUNT(*) AS n FROM wards GROUP BY ward ORDER BY ward LIMIT 1",
		"SELECT ward AS w, COUNT(*) AS visits FROM wards GROUP BY ward ORDER BY visits DESC",
	} {
		_, err := submit(e, "g", sql, plan.Options{Epsilon: 1})
		if errcode.Of(err) != errcode.EgressDenied || !strings.Contains(errcode.Public(err).Message, "raw_value_in_output") {
			t.Fatalf("%s: %v; want the stored denial with its reasons", sql, err)
		}
	}
	if after := spent(t, e, "g"); after != before {
		t.Fatalf("repeats of a denied output spent budget: %v → %v", before, after)
	}
	if n := countRecords(t, e, "execution"); n != 1 {
		t.Fatalf("%d executions, want only the first", n)
	}
}
