package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/c1b99f93/cleanroom/catalog"
	"github.com/c1b99f93/cleanroom/engine"
	"github.com/c1b99f93/cleanroom/server/api"
	"github.com/c1b99f93/cleanroom/server/client"
)

// envTestMain makes the test binary run the CLI with the JSON-encoded arguments it holds (for
// tests that need a real `cleanroom serve` process to kill).
const envTestMain = "CLEANROOM_TEST_MAIN"

// maybeRunMain is called from TestMain.
func maybeRunMain() {
	raw := os.Getenv(envTestMain)
	if raw == "" {
		return
	}
	var args []string
	if err := json.Unmarshal([]byte(raw), &args); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	os.Exit(runMain(args))
}

// startServe runs `cleanroom serve` as a child process and waits until it answers.
func startServe(t *testing.T, args ...string) (*exec.Cmd, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	raw, _ := json.Marshal(append([]string{"serve", "--listen", addr}, args...))
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envTestMain+"="+string(raw))
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	url := "http://" + addr
	c, _ := client.New(url, "")
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if _, err := c.Health(context.Background()); err == nil {
			return cmd, url
		}
	}
	cmd.Process.Kill()
	t.Fatal("cleanroom serve did not come up")
	return nil, ""
}

// TestKilledServerReleasesNothingHalfWay kills `cleanroom serve` (SIGKILL) while jobs run, then
// restarts it on the same data directory: the log verifies (chain, tree, checkpoints), and
// every job either was released — with a receipt that verifies — or failed without a result;
// none is left running, and queued ones run after the restart.
func TestKilledServerReleasesNothingHalfWay(t *testing.T) {
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	principals := filepath.Join(dir, "principals.yaml")
	if err := os.WriteFile(principals, []byte(`principals:
  - {name: hospital-a, role: provider,  org: health-commission, token: "hospital-a-token-0123456789"}
  - {name: op-1,       role: operator,  org: platform,          token: "op-1-token-0123456789"}
  - {name: insurer-1,  role: applicant, org: acme-insurance,    token: "insurer-1-token-0123456789"}
  - {name: aud-1,      role: auditor,   org: audit-office,      token: "aud-1-token-0123456789"}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	datasets, _ := filepath.Abs(filepath.Join("..", "..", "testdata", "datasets"))
	args := []string{"--data-dir", dataDir, "--principals", principals, "--import-root", "health-commission=" + filepath.Join(datasets, "health-commission")}
	ctx := context.Background()
	as := func(url, who string) *client.Client {
		c, err := client.New(url, who+"-token-0123456789")
		if err != nil {
			t.Fatal(err)
		}
		return c
	}

	proc, url := startServe(t, args...)
	spec, err := catalog.LoadFile(filepath.Join(datasets, "medical_visits.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := as(url, "hospital-a").RegisterDataset(ctx, spec); err != nil {
		t.Fatal(err)
	}
	app, err := as(url, "insurer-1").CreateApplication(ctx, api.ApplicationRequest{Purpose: "p", Scenario: "s", Datasets: []string{"medical_visits"},
		Start: "2020-01-01", End: "2099-12-31", Epsilon: 20, Delta: 1e-5, JobKinds: []string{"sql"}})
	if err != nil {
		t.Fatal(err)
	}
	ok, err := as(url, "op-1").ApproveApplication(ctx, app.ID, api.ApproveRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for i := range 8 {
		j, err := as(url, "insurer-1").SubmitJob(ctx, api.JobRequest{Grant: ok.GrantID,
			SQL: fmt.Sprintf("SELECT hospital_id, COUNT(*) AS n, AVG(cost) AS c, QUANTILE_CONT(cost, 0.%d) AS q FROM medical_visits GROUP BY hospital_id", i+1)})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, j.ID)
	}
	time.Sleep(150 * time.Millisecond) // let a job get under way
	if err := proc.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = proc.Wait()

	proc, url = startServe(t, args...)
	defer func() {
		_ = proc.Process.Signal(syscall.SIGTERM)
		_ = proc.Wait()
	}()
	pub, err := as(url, "aud-1").PublicKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	released, failed := 0, 0
	for _, id := range ids {
		j, err := as(url, "insurer-1").WaitJob(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		switch j.State {
		case api.JobReleased:
			if _, err := engine.VerifyReceipt([]byte(j.Receipt), j.Result, pub); err != nil {
				t.Fatalf("released job %s: receipt: %v", id, err)
			}
			released++
		case api.JobFailed:
			if j.Result != nil || j.Receipt != "" {
				t.Fatalf("failed job %s carries a result", id)
			}
			failed++
		default:
			t.Fatalf("job %s is %s after the restart", id, j.State)
		}
	}
	rep, err := as(url, "aud-1").VerifyAudit(ctx)
	if err != nil || !rep.OK() || rep.Checkpoints == 0 {
		t.Fatalf("after the kill the log verifies: %+v, %v", rep, err)
	}
	t.Logf("after SIGKILL and restart: %d released, %d failed (interrupted)", released, failed)
}
