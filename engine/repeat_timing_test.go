package engine_test

import (
	"context"
	"strings"
	"testing"

	"github.com/c1b99f93/cleanroom/engine"
	"github.com/c1b99f93/cleanroom/sandbox"
)

// TestARepeatIsTimingFreeOnlyWithItsRawSetsInMemory: Outcome.Repeat (the server then shows the
// job without the completion quantum) is set on a repeat answered from its release, but not on
// the job that computed, and not on a repeat whose screen had to load a raw-value set — as the
// first after a restart does: that load takes a time that grows with the data.
func TestARepeatIsTimingFreeOnlyWithItsRawSetsInMemory(t *testing.T) {
	ctx := context.Background()
	dataDir, policyDir := t.TempDir(), testPolicy(t)
	open := func() *engine.Engine {
		e, err := engine.Open(ctx, engine.Config{DataDir: dataDir, PolicyDir: policyDir, WorkerDB: sandbox.DBLimits{MemoryLimit: "2GB"}})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	e := open()
	register(t, e, visits(t, "visits", 200, false))
	grant(t, e, "g", 10)
	job := engine.Job{Principal: applicant, Grant: "g", SQL: "SELECT district, COUNT(*) AS n FROM visits GROUP BY district"}
	job.Options.Epsilon = 1
	run := func(e *engine.Engine) *engine.Outcome {
		t.Helper()
		out, err := e.Run(ctx, job)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	if out := run(e); out.Repeat {
		t.Fatal("the job that computed is marked a repeat")
	}
	if out := run(e); !out.Repeat {
		t.Fatal("a repeat with its raw-value set in memory is not marked timing-free")
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	e = open()
	defer e.Close()
	if out := run(e); out.Repeat || out.Result == nil || !strings.HasPrefix(out.Result.Split, "identical to job") {
		t.Fatalf("the first repeat after a restart (its raw-value set loaded from disk) is marked timing-free, or not answered: %+v", out)
	}
	if out := run(e); !out.Repeat {
		t.Fatal("the second repeat after a restart is not marked timing-free")
	}
}
