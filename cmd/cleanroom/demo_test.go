package main

import (
	"bytes"
	"context"
	"encoding/json"
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
	if err := runDemo(context.Background(), &out, filepath.Join("..", "..", "testdata", "datasets"), dataDir, "table"); err != nil {
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
	if got := strings.Count(text, "released job"); got != 7 {
		t.Errorf("released %d jobs, want 7\n%s", got, text)
	}
	if t.Failed() {
		t.Log(text)
	}
}

func TestAuditVerifyDetectsTampering(t *testing.T) {
	var out bytes.Buffer
	dataDir := t.TempDir()
	if err := runDemo(context.Background(), &out, filepath.Join("..", "..", "testdata", "datasets"), dataDir, "table"); err != nil {
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

func TestDemoJSONOutputIsAReport(t *testing.T) {
	var out bytes.Buffer
	if err := runDemo(context.Background(), &out, filepath.Join("..", "..", "testdata", "datasets"), t.TempDir(), "json"); err != nil {
		t.Fatal(err)
	}
	var r demoReport
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatalf("output is not JSON: %v", err)
	}
	released, refused := 0, 0
	for _, j := range r.Jobs {
		switch {
		case j.Result != nil && len(j.Result.Rows) > 0:
			released++
		case j.Error != nil && j.Error.Code != "":
			refused++
		}
	}
	if released != 7 || refused != 3 || !r.Provenance.OK() || len(r.Budget) == 0 {
		t.Fatalf("report: %d released, %d refused, provenance %+v, %d budget lines", released, refused, r.Provenance, len(r.Budget))
	}
}
