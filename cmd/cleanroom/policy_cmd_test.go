package main

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/c1b99f93/cleanroom/policy/bundletest"
)

// copyBundle copies the default bundle into a temporary directory, applying edit to data.json.
func copyBundle(t *testing.T, edit func(string) string) string {
	t.Helper()
	return bundletest.Copy(t, edit)
}

// run runs the CLI and returns what it printed on stdout; progress on stderr is dropped.
func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	cmd := newRootCmd()
	cmd.SetOut(&out)
	cmd.SetErr(&bytes.Buffer{})
	cmd.SetArgs(args)
	err := cmd.Execute()
	return out.String(), err
}

// TestPolicyWhatIfListsTheDecisionsACandidateWouldChange: after the demo, a candidate that
// lowers the per-job epsilon cap below the demo's jobs flips exactly the access decisions of
// the jobs that spent more, and the default bundle itself changes nothing.
func TestPolicyWhatIfListsTheDecisionsACandidateWouldChange(t *testing.T) {
	dataDir := t.TempDir()
	if err := runDemo(context.Background(), &bytes.Buffer{}, filepath.Join("..", "..", "testdata", "datasets"), dataDir, "table"); err != nil {
		t.Fatal(err)
	}
	strict := copyBundle(t, func(s string) string {
		return strings.Replace(s, `"max_epsilon_per_job": 2.0`, `"max_epsilon_per_job": 0.75`, 1)
	})
	out, err := run(t, "policy", "whatif", strict, "--data-dir", dataDir, "--json")
	if err != nil {
		t.Fatal(err, out)
	}
	var rep struct {
		Decisions int `json:"decisions"`
		Changes   []struct {
			Job, Query, From, To string
		} `json:"changes"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err, out)
	}
	// The demo runs seven jobs at epsilon 1 and one at 0.5 that reach the access policy allowed.
	if rep.Decisions == 0 || len(rep.Changes) != 7 {
		t.Fatalf("%d decisions, %d changes, want 7: %s", rep.Decisions, len(rep.Changes), out)
	}
	for _, c := range rep.Changes {
		if c.Query != "data.cleanroom.access.decision" || c.From != "allow" || c.To != "deny" {
			t.Fatalf("unexpected change %+v", c)
		}
	}
	same, err := run(t, "policy", "whatif", filepath.Join("..", "..", "policy", "bundle"), "--data-dir", dataDir)
	if err != nil || !strings.Contains(same, ": 0 would change") {
		t.Fatalf("the default bundle against its own decisions: %v\n%s", err, same)
	}
}

// TestPolicyTestRunsTheBundlesTests: the default bundle passes; a bundle whose data breaks
// its tests fails with the failing test named.
func TestPolicyTestRunsTheBundlesTests(t *testing.T) {
	if out, err := run(t, "policy", "test"); err != nil || !strings.Contains(out, " 0 failed") {
		t.Fatalf("default bundle: %v\n%s", err, out)
	}
	broken := copyBundle(t, func(s string) string {
		return strings.Replace(s, `"max_rows": 10000`, `"max_rows": 1`, 1)
	})
	out, err := run(t, "policy", "test", broken)
	if err == nil || !strings.Contains(out, "FAIL data.cleanroom.") {
		t.Fatalf("a bundle with failing tests: err=%v\n%s", err, out)
	}
}
