package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/c1b99f93/cleanroom/sandbox"
)

func TestMain(m *testing.M) {
	sandbox.MaybeRunWorker()
	os.Exit(m.Run())
}

// The demo is the README's main job: it must release DP tables, refuse the attacks with their
// codes, show the budget and verify the log.
func TestDemoRunsTheFlagshipScenario(t *testing.T) {
	var out bytes.Buffer
	dataDir := t.TempDir()
	if err := runDemo(context.Background(), &out, filepath.Join("..", "..", "testdata", "datasets"), dataDir); err != nil {
		t.Fatalf("demo failed: %v\n%s", err, out.String())
	}
	text := out.String()
	for _, want := range []string{
		"network namespace=true",
		"visits", "total_cost", "persons", "95% CI",
		"refused: identifier_in_output",
		"refused: unsupported_sql",
		"refused: policy_denied",
		"grant:demo-insurer",
		"hash chain verified",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("demo output lacks %q", want)
		}
	}
	if got := strings.Count(text, "released job"); got != 3 {
		t.Errorf("released %d jobs, want 3\n%s", got, text)
	}
	if t.Failed() {
		t.Log(text)
	}
}

func TestAuditVerifyDetectsTampering(t *testing.T) {
	var out bytes.Buffer
	dataDir := t.TempDir()
	if err := runDemo(context.Background(), &out, filepath.Join("..", "..", "testdata", "datasets"), dataDir); err != nil {
		t.Fatal(err)
	}
	verify := func() error {
		cmd := newRootCmd()
		cmd.SetOut(&bytes.Buffer{})
		cmd.SetArgs([]string{"audit", "verify", "--data-dir", dataDir})
		return cmd.Execute()
	}
	if err := verify(); err != nil {
		t.Fatalf("untouched log: %v", err)
	}
	path := filepath.Join(dataDir, "provenance.log")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	tampered := bytes.Replace(data, []byte(`"rows":`), []byte(`"rowz":`), 1)
	if err := os.WriteFile(path, tampered, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := verify(); err == nil {
		t.Fatal("tampered log verified")
	}
}
