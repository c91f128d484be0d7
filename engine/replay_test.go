package engine_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/c1b99f93/cleanroom/engine"
	"github.com/c1b99f93/cleanroom/engine/plan"
	"github.com/c1b99f93/cleanroom/errcode"
	"github.com/c1b99f93/cleanroom/sandbox"
	"github.com/c1b99f93/cleanroom/server/api"
)

func stage(rep *api.ReplayReport, name string) api.ReplayStage {
	for _, s := range rep.Stages {
		if s.Stage == name {
			return s
		}
	}
	return api.ReplayStage{}
}

func mustReplay(t *testing.T, e *engine.Engine, job string) *api.ReplayReport {
	t.Helper()
	rep, err := e.Replay(context.Background(), job)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// TestReplayMatchesEveryJobKind: released jobs with public partitions, partition selection, a
// join held for review and released, a per-unit subquery, distinct counts of values, a repeat
// answered from its release and a refusal all replay without a mismatch; the ones that ran recompute the recorded
// pre-noise digest.
func TestReplayMatchesEveryJobKind(t *testing.T) {
	ctx := context.Background()
	e := openEngine(t)
	for _, name := range []string{"medical_visits", "residents"} {
		register(t, e, loadDataset(t, name))
	}
	grant(t, e, "g", 100)
	o := plan.Options{Epsilon: 1}
	run := func(sql string) string {
		t.Helper()
		out, err := e.Run(ctx, engine.Job{Principal: applicant, Grant: "g", SQL: sql, Options: o})
		if err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		if out.Held != nil {
			if _, err := e.ReleaseHeld(ctx, out.Result.Job, out.Held, out.Result, []string{"rev-1", "rev-2"}); err != nil {
				t.Fatal(err)
			}
		}
		return out.Result.Job
	}
	executed := []string{
		run("SELECT district, COUNT(*) AS n, SUM(cost) AS s FROM medical_visits GROUP BY district"),
		run("SELECT hospital_id, COUNT(*) AS n FROM medical_visits GROUP BY hospital_id"),
		run("SELECT r.income_band, AVG(v.cost) FROM medical_visits v JOIN residents r ON v.person_id = r.person_id GROUP BY r.income_band"),
		run("SELECT n, COUNT(*) FROM (SELECT person_id, GREATEST(LEAST(COUNT(*), 10), 1) AS n FROM medical_visits GROUP BY person_id) AS t GROUP BY n"),
		// The first query with a filter: a differencing check against it runs, and is replayed.
		run("SELECT district, COUNT(*) AS n, SUM(cost) AS s FROM medical_visits WHERE cost > 1000 GROUP BY district"),
		// Distinct counts of values: the worker's per-group value sets end as counts whose
		// digest the replay recomputes.
		run("SELECT age_band, COUNT(DISTINCT diagnosis) AS d, COUNT(DISTINCT hospital_id) AS h FROM medical_visits GROUP BY age_band"),
	}
	repeat := run("select district, count(*) as n, sum(cost) as s from medical_visits group by 1")
	for _, job := range executed {
		rep, err := e.Replay(ctx, job)
		if err != nil {
			t.Fatal(err)
		}
		if !rep.Match || stage(rep, "execution").Result != api.ReplayMatch || stage(rep, "snapshots").Result != api.ReplayMatch ||
			stage(rep, "access_decision").Result != api.ReplayMatch || stage(rep, "egress_decision").Result != api.ReplayMatch {
			t.Fatalf("replay of %s: %+v", job, rep)
		}
		// Every one chose its bounds under DP: the histograms re-run to the recorded digest, and
		// the execution above re-ran at the recorded bounds.
		if cb := stage(rep, "choose_bounds"); cb.Result != api.ReplayMatch {
			t.Fatalf("replay of %s: choose_bounds %+v", job, cb)
		}
	}
	if d := stage(mustReplay(t, e, executed[4]), "execution").Detail; !strings.Contains(d, "1 differencing check(s)") {
		t.Fatalf("replay of a job with a differencing check: %q", d)
	}
	rep, err := e.Replay(ctx, repeat)
	if err != nil || !rep.Match || stage(rep, "execution").Result != api.ReplayNotRun {
		t.Fatalf("replay of a repeat answered from its release: %+v, %v", rep, err)
	}
	_, err = e.Submit(ctx, engine.Job{Principal: applicant, Grant: "g", SQL: "SELECT person_id FROM medical_visits", Options: o})
	if errcode.Of(err) != errcode.IdentifierInOutput {
		t.Fatalf("refusal: %v", err)
	}
	if _, err := e.Replay(ctx, "job-does-not-exist"); errcode.Of(err) != errcode.NotFound {
		t.Fatalf("replay of an unknown job: %v", err)
	}
}

// TestReplayReportsChangedDataAndAGoneBundle: after one byte of a snapshot changes on disk the
// replay reports the data mismatch and does not re-run; when the bundle that decided is gone,
// it says so.
func TestReplayReportsChangedDataAndAGoneBundle(t *testing.T) {
	ctx := context.Background()
	dataDir := t.TempDir()
	policyDir := testPolicy(t)
	e, err := engine.Open(ctx, engine.Config{DataDir: dataDir, PolicyDir: policyDir, WorkerDB: sandbox.DBLimits{MemoryLimit: "2GB"}})
	if err != nil {
		t.Fatal(err)
	}
	register(t, e, loadDataset(t, "medical_visits"))
	grant(t, e, "g", 10)
	res, err := submit(e, "g", "SELECT district, COUNT(*) AS n FROM medical_visits GROUP BY district", plan.Options{Epsilon: 1})
	if err != nil {
		t.Fatal(err)
	}
	d, _ := e.Dataset("medical_visits")
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}

	// The operator switches to the embedded default bundle and the kept copy of the old one is
	// deleted: the decisions can no longer be re-evaluated.
	matches, _ := filepath.Glob(filepath.Join(dataDir, "bundles", "*"))
	for _, m := range matches {
		if !strings.HasPrefix(filepath.Base(m), ".") {
			os.RemoveAll(m)
		}
	}
	e2, err := engine.Open(ctx, engine.Config{DataDir: dataDir, WorkerDB: sandbox.DBLimits{MemoryLimit: "2GB"}})
	if err != nil {
		t.Fatal(err)
	}
	defer e2.Close()
	rep, err := e2.Replay(ctx, res.Job)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Match || stage(rep, "policy_bundle").Result != api.ReplayMismatch || !strings.Contains(stage(rep, "policy_bundle").Detail, "gone") ||
		stage(rep, "execution").Result != api.ReplayMatch {
		t.Fatalf("replay with the bundle gone: %+v", rep)
	}

	// Change one byte of the snapshot at rest.
	snap := filepath.Join(dataDir, "domains", "platform", "snapshots", strings.TrimPrefix(d.Snapshot.Digest, "sha256:")+".arrow")
	b, err := os.ReadFile(snap)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 1
	if err := os.WriteFile(snap, b, 0o600); err != nil {
		t.Fatal(err)
	}
	rep, err = e2.Replay(ctx, res.Job)
	if err != nil {
		t.Fatal(err)
	}
	if s := stage(rep, "snapshots"); rep.Match || s.Result != api.ReplayMismatch || !strings.Contains(s.Detail, "data changed") ||
		stage(rep, "execution").Result != api.ReplayNotRun {
		t.Fatalf("replay after the data changed: %+v", rep)
	}
}
