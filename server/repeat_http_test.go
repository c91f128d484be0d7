package server_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/c1b99f93/cleanroom/server"
	"github.com/c1b99f93/cleanroom/server/api"
)

// TestARepeatIsShownWithoutTheCompletionQuantum: a job that computes becomes visible only at
// the end of its completion quantum; the same query repeated on its grant, answered from the
// stored release without reading a row (the raw-value sets already in memory), is shown as
// soon as it is stored — its duration depends on nothing the data holds. The quantum is 3 s,
// some fifty times what a repeat takes here, so the assertion does not depend on this
// machine's speed.
func TestARepeatIsShownWithoutTheCompletionQuantum(t *testing.T) {
	const quantum = 3 * time.Second
	clk := &clock{now: time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)}
	p := startWith(t, t.TempDir(), clk, func(c *server.Config) { c.CompletionQuantum = quantum })
	g := setupGrant(t, p, 5)
	visible := func() (api.Job, time.Duration) {
		t0 := time.Now()
		j := p.waitJob("insurer-1", p.submitAt("insurer-1", g, byDistrict, 0.5).ID)
		if j.State != api.JobReleased {
			t.Fatalf("job ended %s: %+v", j.State, j.Error)
		}
		return j, time.Since(t0)
	}
	first, took := visible()
	if took < quantum {
		t.Fatalf("a computed job was visible after %v, before its completion quantum %v", took, quantum)
	}
	for range 3 {
		again, took := visible()
		if took >= quantum {
			t.Fatalf("a repeat was visible only after %v: it waited for the completion quantum", took)
		}
		var a, b api.Result
		if err := json.Unmarshal(first.Result, &a); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(again.Result, &b); err != nil {
			t.Fatal(err)
		}
		if len(a.Rows) == 0 || len(a.Rows) != len(b.Rows) || a.Rows[0][1].DP == nil || b.Rows[0][1].DP == nil || a.Rows[0][1].DP.Value != b.Rows[0][1].DP.Value {
			t.Fatalf("the repeat's rows differ from the release's")
		}
		if again.Receipt == "" {
			t.Fatalf("the repeat has no receipt")
		}
	}
}
