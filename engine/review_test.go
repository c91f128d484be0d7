package engine_test

import (
	"context"
	"reflect"
	"testing"

	"github.com/c1b99f93/cleanroom/engine"
	"github.com/c1b99f93/cleanroom/engine/plan"
	"github.com/c1b99f93/cleanroom/errcode"
	"github.com/c1b99f93/cleanroom/policy"
	"github.com/c1b99f93/cleanroom/server/api"
)

// TestHeldOutputIsReleasedOnlyAsHeld: an L3 dataset's output is held for two reviewers, not
// released; a repeat while it is held is answered by the hold (output_held, no second hold,
// no cost); it is released only unchanged (its digest is checked); after its release a repeat
// of the query gets the same noisy rows, held again, at no cost.
func TestHeldOutputIsReleasedOnlyAsHeld(t *testing.T) {
	ctx := context.Background()
	e := openEngine(t)
	register(t, e, loadDataset(t, "residents"))
	grant(t, e, "g", 10)
	const sql = "SELECT gender, COUNT(*) AS n FROM residents GROUP BY gender"
	job := engine.Job{Principal: applicant, Grant: "g", SQL: sql, Options: plan.Options{Epsilon: 1}}

	out, err := e.Run(ctx, job)
	if err != nil {
		t.Fatal(err)
	}
	if out.Held == nil || out.Held.Reviewers != 2 || out.Result.LogIndex != 0 {
		t.Fatalf("an L3 output was not held for two reviewers: held=%+v log_index=%d", out.Held, out.Result.LogIndex)
	}
	if _, err := e.Submit(ctx, job); errcode.Of(err) != errcode.OutputHeld {
		t.Fatalf("Submit of a held job's repeat: %v, want output_held", err)
	}

	tampered := *out.Result
	tampered.Rows = [][]api.Cell{out.Result.Rows[0]}
	if _, err := e.ReleaseHeld(ctx, out.Result.Job, out.Held, &tampered, []string{"rev-1", "rev-2"}); err == nil {
		t.Fatal("a result different from the held one was released")
	}
	if _, err := e.ReleaseHeld(ctx, out.Result.Job, out.Held, out.Result, []string{"rev-1", "rev-2"}); err != nil {
		t.Fatal(err)
	}
	if out.Result.LogIndex == 0 {
		t.Fatal("the released result carries no release index")
	}
	if _, err := e.Run(ctx, job); errcode.Of(err) != errcode.OutputHeld {
		t.Fatalf("a repeat before the hold ended: %v, want output_held (naming the released job)", err)
	}
	if err := e.EndHold(ctx, out.Result.Job); err != nil {
		t.Fatal(err)
	}

	before, err := e.Balance(ctx, engine.GrantAccount("g"))
	if err != nil {
		t.Fatal(err)
	}
	again, err := e.Run(ctx, job)
	if err != nil {
		t.Fatal(err)
	}
	after, err := e.Balance(ctx, engine.GrantAccount("g"))
	if err != nil {
		t.Fatal(err)
	}
	if again.Held == nil || !reflect.DeepEqual(again.Result.Rows, out.Result.Rows) || after.Spent != before.Spent {
		t.Fatalf("a repeat of the held query: held=%v same rows=%v spent %v → %v", again.Held != nil,
			reflect.DeepEqual(again.Result.Rows, out.Result.Rows), before.Spent, after.Spent)
	}
}

// TestJobOutsideItsScopeIsForbidden: a grant's scope lists its datasets; public lookup tables
// need not be listed.
func TestJobOutsideItsScopeIsForbidden(t *testing.T) {
	ctx := context.Background()
	e := openEngine(t)
	register(t, e, loadDataset(t, "medical_visits"))
	register(t, e, loadDataset(t, "districts"))
	grant(t, e, "g", 10)
	run := func(scope []string, sql string) error {
		terms := &policy.Grant{ID: "g", Org: applicant.Org, Purpose: "test", Datasets: scope, JobKinds: []string{"sql"}}
		_, err := e.Submit(ctx, engine.Job{Principal: applicant, Grant: "g", Terms: terms, SQL: sql, Options: plan.Options{Epsilon: 0.5}})
		return err
	}
	if err := run([]string{"residents"}, "SELECT COUNT(*) FROM medical_visits"); errcode.Of(err) != errcode.Forbidden {
		t.Fatalf("out of scope: %v, want forbidden", err)
	}
	join := "SELECT d.name, COUNT(*) FROM medical_visits v JOIN districts d ON v.district = d.code GROUP BY d.name"
	if err := run([]string{"medical_visits"}, join); err != nil {
		t.Fatalf("a lookup join within scope: %v", err)
	}
}
