package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/c1b99f93/cleanroom/server/api"
	"github.com/c1b99f93/cleanroom/server/redteam"
)

// TestRedteamAgainstTheDefaultPolicy runs every attack against a real server over the committed
// test data with the default policy, scored against the raw datasets, and checks that none
// recovers more than its baseline beyond its stated margin (the margins are in
// server/redteam/score.go), that no raw identifier value reached the attacker, and that the
// report is recorded in provenance where an auditor reads it.
func TestRedteamAgainstTheDefaultPolicy(t *testing.T) {
	url, _ := serveForCLI(t)
	as := runAs(t, url)
	datasets := filepath.Join("..", "..", "testdata", "datasets")
	as("hospital-a", "dataset", "add", filepath.Join(datasets, "medical_visits.yaml"))
	var app api.Application
	if err := json.Unmarshal([]byte(as("insurer-1", "application", "new", "--purpose", "red team", "--scenario", "attacks",
		"--datasets", "medical_visits", "--start", "2026-01-01", "--end", "2099-12-31", "--epsilon", "15", "--delta", "1e-5", "--json")), &app); err != nil {
		t.Fatal(err)
	}
	var approved api.Approved
	if err := json.Unmarshal([]byte(as("op-1", "application", "approve", app.ID, "--json")), &approved); err != nil {
		t.Fatal(err)
	}

	t.Setenv("CLEANROOM_OPERATOR_TOKEN", "op-1-token-0123456789")
	began := time.Now()
	raw := as("insurer-1", "redteam", "--grant", approved.GrantID, "--truth-dir", datasets, "--record", "--json")
	t.Logf("redteam run: %s", time.Since(began).Round(time.Millisecond))
	var out struct {
		Report   redteam.Report       `json:"report"`
		SHA256   string               `json:"report_sha256"`
		Recorded *api.RedteamRecorded `json:"recorded"`
	}
	if err := json.Unmarshal([]byte(raw), &out); err != nil {
		t.Fatalf("redteam --json does not parse: %v\n%s", err, raw)
	}
	rep := out.Report
	if got, want := len(rep.Attacks), len(redteam.AttackNames()); got != want {
		t.Fatalf("%d attacks reported, want %d", got, want)
	}
	for _, a := range rep.Attacks {
		t.Logf("%s: jobs %d released %d held %d %v refused %v blocked %v cost %.3g noise ±%.3g need ±%.3g score %+v\n  %s",
			a.Name, a.Jobs, a.Released, a.Held, a.HeldFor, a.Refused, a.Blocked, a.Cost.Epsilon, a.Noise, a.Need, a.Score, a.Estimate)
		if a.Score == nil {
			t.Errorf("%s was not scored", a.Name)
			continue
		}
		if a.Score.Exceeds() {
			t.Errorf("%s recovered %.3g, more than its baseline %.3g + margin %.3g", a.Name, a.Score.Attack, a.Score.Baseline, a.Score.Margin)
		}
		if a.Jobs == 0 {
			t.Errorf("%s submitted no job", a.Name)
		}
	}
	if rep.IdentifierLeaks == nil || *rep.IdentifierLeaks != 0 {
		t.Errorf("identifier leaks: %v", rep.IdentifierLeaks)
	}
	if sum, err := rep.SHA256(); err != nil || sum != out.SHA256 {
		t.Errorf("report_sha256 %s is not the report's (%s, %v)", out.SHA256, sum, err)
	}

	// Without the raw data the table still shows what was blocked and says scoring was skipped.
	table := as("insurer-1", "redteam", "--grant", approved.GrantID, "--attacks", "exfiltration")
	for _, want := range []string{"scoring skipped", "exfiltration", "identifier_in_output", "not scored"} {
		if !strings.Contains(table, want) {
			t.Errorf("the unscored table lacks %q:\n%s", want, table)
		}
	}

	// The auditor reads the record under its id: the summary and the report's digest.
	if out.Recorded == nil || out.Recorded.Index == 0 || out.Recorded.Grant != approved.GrantID {
		t.Fatalf("recorded: %+v", out.Recorded)
	}
	var aj api.AuditJob
	if err := json.Unmarshal([]byte(as("aud-1", "audit", "show", out.Recorded.ID, "--json")), &aj); err != nil {
		t.Fatal(err)
	}
	if len(aj.Records) != 1 || aj.Records[0].Index != out.Recorded.Index || !strings.Contains(string(aj.Records[0].Record), out.SHA256) ||
		!strings.Contains(string(aj.Records[0].Record), `"redteam_report"`) {
		t.Fatalf("the audit of %s does not show the report: %+v", out.Recorded.ID, aj.Records)
	}
}

// TestRedteamVerdictFailsOnAnAttackAboveItsBaseline: the command's exit decision.
func TestRedteamVerdictFailsOnAnAttackAboveItsBaseline(t *testing.T) {
	zero := 0
	ok := &redteam.Report{IdentifierLeaks: &zero, Attacks: []redteam.Attack{
		{Name: "differencing", Score: &redteam.Score{Attack: 0.9, Baseline: 0.85, Margin: 0.1}},
		{Name: "averaging"}, // not scored
	}}
	if err := redteamVerdict(ok); err != nil {
		t.Errorf("a report within its margins fails: %v", err)
	}
	over := &redteam.Report{Attacks: []redteam.Attack{
		{Name: "differencing", Score: &redteam.Score{Attack: 0.9, Baseline: 0.85, Margin: 0.1}},
		{Name: "reconstruction", Score: &redteam.Score{Attack: 0.99, Baseline: 0.85, Margin: 0.1}},
	}}
	if err := redteamVerdict(over); err == nil || !strings.Contains(err.Error(), "reconstruction") || strings.Contains(err.Error(), "differencing") {
		t.Errorf("a report above its margin: %v", err)
	}
	leak := 1
	if err := redteamVerdict(&redteam.Report{IdentifierLeaks: &leak}); err == nil {
		t.Error("a report with an identifier leak passes")
	}
}
