package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/c1b99f93/cleanroom/sandbox"
	"github.com/c1b99f93/cleanroom/server"
)

// serveForCLI starts a real server on a loopback port for the CLI to talk to; it returns the
// URL and the data directory.
func serveForCLI(t *testing.T) (string, string) {
	t.Helper()
	ps, err := server.ParsePrincipals([]byte(`principals:
  - {name: hospital-a, role: provider,  org: health-commission, token: "hospital-a-token-0123456789"}
  - {name: op-1,       role: operator,  org: platform,          token: "op-1-token-0123456789"}
  - {name: insurer-1,  role: applicant, org: acme-insurance,    token: "insurer-1-token-0123456789"}
  - {name: aud-1,      role: auditor,   org: audit-office,      token: "aud-1-token-0123456789"}
`))
	if err != nil {
		t.Fatal(err)
	}
	root, err := filepath.Abs(filepath.Join("..", "..", "testdata", "datasets", "health-commission"))
	if err != nil {
		t.Fatal(err)
	}
	dataDir := t.TempDir()
	srv, err := server.New(context.Background(), server.Config{DataDir: dataDir, Principals: ps,
		ImportRoots: map[string]string{"health-commission": root},
		WorkerDB:    sandbox.DBLimits{MemoryLimit: "2GB"}})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		<-done
		srv.Close()
	})
	return "http://" + ln.Addr().String(), dataDir
}

// runAs returns a runner of the CLI against the server at url as a principal of serveForCLI
// (by name); a failing command fails the test.
func runAs(t *testing.T, url string) func(who string, args ...string) string {
	return func(who string, args ...string) string {
		t.Helper()
		t.Setenv("CLEANROOM_SERVER", url)
		t.Setenv("CLEANROOM_TOKEN", who+"-token-0123456789")
		out, err := run(t, args...)
		if err != nil {
			t.Fatalf("cleanroom %s as %s: %v\n%s", strings.Join(args, " "), who, err, out)
		}
		return out
	}
}

// TestCLIAgainstARealServer drives the governance path with the client commands against a
// real server: a provider adds a dataset from its spec file, an applicant applies, the
// operator approves, the applicant queries and reads its budget, an auditor verifies the log.
func TestCLIAgainstARealServer(t *testing.T) {
	url, dataDir := serveForCLI(t)
	as := runAs(t, url)
	// The spec's relative source path resolves against the spec file's folder.
	as("hospital-a", "dataset", "add", filepath.Join("..", "..", "testdata", "datasets", "medical_visits.yaml"))
	var app struct{ ID string }
	if err := json.Unmarshal([]byte(as("insurer-1", "application", "new", "--purpose", "price cover", "--scenario", "visits by district",
		"--datasets", "medical_visits", "--start", "2026-01-01", "--end", "2099-12-31", "--epsilon", "3", "--delta", "1e-6", "--json")), &app); err != nil || app.ID == "" {
		t.Fatalf("application new --json: %v", err)
	}
	var approved struct {
		GrantID string `json:"grant_id"`
	}
	if err := json.Unmarshal([]byte(as("op-1", "application", "approve", app.ID, "--epsilon", "2", "--json")), &approved); err != nil || approved.GrantID == "" {
		t.Fatalf("application approve --json: %v", err)
	}
	table := as("insurer-1", "query", "--grant", approved.GrantID, "--epsilon", "1",
		"SELECT district, COUNT(*) AS visits FROM medical_visits GROUP BY district")
	if !strings.Contains(table, "visits") || !strings.Contains(table, "530102") {
		t.Fatalf("query printed no table of visits by district:\n%s", table)
	}
	csv := as("insurer-1", "query", "--grant", approved.GrantID, "--csv",
		"SELECT district, COUNT(*) AS visits FROM medical_visits GROUP BY district")
	if !strings.HasPrefix(csv, "district,") {
		t.Fatalf("query --csv:\n%s", csv)
	}
	// The applicant saves the result with its receipt; anyone with the public key checks them
	// offline, and a changed result fails.
	dir := t.TempDir()
	as("insurer-1", "query", "--grant", approved.GrantID, "--save", filepath.Join(dir, "visits"),
		"SELECT age_band, COUNT(*) AS visits FROM medical_visits GROUP BY age_band")
	key := filepath.Join(dir, "platform.pub")
	if err := os.WriteFile(key, []byte(as("insurer-1", "audit", "pubkey")), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := run(t, "audit", "receipt", "verify", filepath.Join(dir, "visits.receipt"), "--result", filepath.Join(dir, "visits.json"), "--pubkey", key); err != nil || !strings.Contains(out, "receipt ok") {
		t.Fatalf("receipt verify: %v\n%s", err, out)
	}
	res, _ := os.ReadFile(filepath.Join(dir, "visits.json"))
	if err := os.WriteFile(filepath.Join(dir, "forged.json"), bytes.Replace(res, []byte(`"value":`), []byte(`"value":1`), 1), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := run(t, "audit", "receipt", "verify", filepath.Join(dir, "visits.receipt"), "--result", filepath.Join(dir, "forged.json"), "--pubkey", key); err == nil {
		t.Fatal("a changed result verified against its receipt")
	}
	// The auditor checkpoints the log, verifies the data directory offline with the key, exports
	// the checkpointed entries and verifies the archive with nothing but the key.
	cp := as("aud-1", "audit", "checkpoint")
	size := strings.Split(cp, "\n")[1]
	if out := as("aud-1", "audit", "verify", "--data-dir", dataDir, "--pubkey", key); !strings.Contains(out, "signed checkpoint(s) verified") {
		t.Fatalf("offline verify:\n%s", out)
	}
	archive := filepath.Join(t.TempDir(), "audit.tar")
	as("aud-1", "audit", "export", "--data-dir", dataDir, "--from", "0", "--to", size, archive)
	if out := as("aud-1", "audit", "verify", "--archive", archive, "--pubkey", key); !strings.Contains(out, "archive ok") {
		t.Fatalf("archive verify:\n%s", out)
	}
	if budget := as("insurer-1", "budget", "show", "--grant", approved.GrantID); !strings.Contains(budget, "2") ||
		!strings.Contains(budget, "medical_visits") {
		t.Fatalf("budget show (the grant's allocation from medical_visits):\n%s", budget)
	}
	// The dataset shows what it allocated to the grant at approval.
	if budget := as("op-1", "budget", "show", "--dataset", "medical_visits"); !strings.Contains(budget, "allocated to grants") ||
		!strings.Contains(budget, approved.GrantID) {
		t.Fatalf("budget show --dataset:\n%s", budget)
	}
	if out := as("aud-1", "audit", "verify"); !strings.Contains(out, "ok") {
		t.Fatalf("audit verify against the server:\n%s", out)
	}
	var jobs struct {
		Jobs []struct{ ID, State string }
	}
	if err := json.Unmarshal([]byte(as("insurer-1", "job", "list", "--json")), &jobs); err != nil || len(jobs.Jobs) == 0 {
		t.Fatalf("job list --json: %v", err)
	}
	replay := as("aud-1", "audit", "replay", jobs.Jobs[len(jobs.Jobs)-1].ID) // the first job: it ran
	if !strings.Contains(replay, "execution") || !strings.Contains(replay, "match") || strings.Contains(replay, "mismatch") {
		t.Fatalf("audit replay:\n%s", replay)
	}
	// An identifier in the output is refused with its code, and the command fails.
	t.Setenv("CLEANROOM_TOKEN", "insurer-1-token-0123456789")
	out, err := run(t, "query", "--grant", approved.GrantID, "SELECT person_id, COUNT(*) FROM medical_visits GROUP BY person_id")
	if err == nil || !strings.Contains(out+err.Error(), "identifier_in_output") {
		t.Fatalf("a refused query: err=%v\n%s", err, out)
	}
}
