package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/c1b99f93/cleanroom/engine"
	"github.com/c1b99f93/cleanroom/engine/ledger"
	"github.com/c1b99f93/cleanroom/engine/provenance"
	"github.com/c1b99f93/cleanroom/sandbox"
	"github.com/c1b99f93/cleanroom/server"
	"github.com/c1b99f93/cleanroom/server/api"
)

// residents' lifetime budget (testdata/datasets/residents.yaml).
var residentsLifetime = api.Budget{Epsilon: 10, Delta: 1e-6}

// byBirthDate groups by a key without a public domain: DP partition selection, which spends
// the job's whole delta whatever its epsilon.
const byBirthDate = "SELECT birth_date, COUNT(*) AS n FROM residents GROUP BY birth_date"

// apply has who apply for residents alone and returns the application's id.
func (p *platform) apply(who string, epsilon, delta float64) string {
	p.t.Helper()
	var a api.Application
	p.must(who, "POST", "/v1/applications", api.ApplicationRequest{Purpose: "population statistics", Scenario: "births by day",
		Datasets: []string{"residents"}, Start: "2026-01-01", End: "2026-12-31", Epsilon: epsilon, Delta: delta,
		JobKinds: []string{"sql"}}, &a)
	return a.ID
}

// approve has op-1 approve an application and returns the grant.
func (p *platform) approve(app string) string {
	p.t.Helper()
	var ok api.Approved
	p.must("op-1", "POST", "/v1/applications/"+app+"/approve", nil, &ok)
	return ok.GrantID
}

func (p *platform) datasetBudget(name string) api.BudgetReport {
	p.t.Helper()
	var rep api.BudgetReport
	p.must("op-1", "GET", "/v1/datasets/"+name+"/budget", nil, &rep)
	return rep
}

func (p *platform) grant(id string) api.Grant {
	p.t.Helper()
	var g api.Grant
	p.must("op-1", "GET", "/v1/grants/"+id, nil, &g)
	return g
}

// run submits sql on grant as who with options and waits for the job.
func (p *platform) run(who, grant, sql string, o api.JobOptions) api.Job {
	p.t.Helper()
	var j api.Job
	p.must(who, "POST", "/v1/jobs", api.JobRequest{Grant: grant, SQL: sql, Options: o}, &j)
	return p.waitJob(who, j.ID)
}

func near(a, b float64) bool {
	return math.Abs(a-b) <= 1e-12*math.Max(1, math.Max(math.Abs(a), math.Abs(b)))
}

func nearBudget(a, b api.Budget) bool {
	return near(a.Epsilon, b.Epsilon) && math.Abs(a.Delta-b.Delta) <= 1e-20
}

func exhausted(j api.Job) bool {
	return j.State == api.JobDenied && j.Error != nil && j.Error.Code == "budget_exhausted"
}

// ran says the job was computed (and charged): released, or held for the two-person review
// residents (L3) asks for.
func ran(j api.Job) bool { return j.State == api.JobReleased || j.State == api.JobInReview }

// TestOneApplicantCannotSpendAnothersLifetimeBudget is issue 13's finding 6 through the public
// API of a real server: one organisation's partition-selection jobs at a negligible epsilon
// used to spend the resident register's whole lifetime delta and lock every other grant out of
// keys without a public domain. Now each grant's budget is carved out of the dataset when it is
// approved, jobs spend from their own grant's allocation, a job at defaults spends a hundredth
// of its grant's delta, an approval beyond what the dataset has left is refused with
// dataset_budget_insufficient (and two racing for the last budget cannot both win), and a
// revoked or expired grant gives back what it never spent.
func TestOneApplicantCannotSpendAnothersLifetimeBudget(t *testing.T) {
	clk := &clock{now: time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)}
	dataDir := t.TempDir()
	p := start(t, dataDir, clk)
	p.must("psb-1", "POST", "/v1/datasets", specJSON(t, "residents"), nil)

	// Two organisations, each granted 2/10 of the epsilon and 4/10 of the delta.
	grantA := p.approve(p.apply("insurer-1", 2, 4e-7))
	grantB := p.approve(p.apply("insurer-2", 2, 4e-7))
	rep := p.datasetBudget("residents")
	if b := rep.Balance; !nearBudget(b.Total, residentsLifetime) || !nearBudget(b.Allocated, api.Budget{Epsilon: 4, Delta: 8e-7}) ||
		!nearBudget(b.Remaining, api.Budget{Epsilon: 6, Delta: 2e-7}) || len(rep.Allocations) != 2 {
		t.Fatalf("residents after two approvals: %+v, allocations %+v", b, rep.Allocations)
	}
	if g := p.grant(grantA); !g.Budget.Allocated || g.Budget.DeltaTotal != 4e-7 || g.Budget.DeltaRemaining != 4e-7 {
		t.Fatalf("grant A's budget: %+v", g.Budget)
	}

	// The attack: org A at the policy's least epsilon (1e-3) groups by birth date again and again (each a fresh
	// query: the epsilon differs, so none is answered from an earlier release).
	for i := 1; i <= 3; i++ {
		if j := p.run("insurer-1", grantA, byBirthDate, api.JobOptions{Epsilon: float64(i) * 1e-3}); !ran(j) {
			t.Fatalf("A's job %d at defaults is %s (%+v)", i, j.State, j.Error)
		}
	}
	// At defaults a job spends a hundredth of its grant's delta.
	gA := p.grant(grantA)
	if !near(gA.Budget.DeltaSpent, 3*4e-9) {
		t.Fatalf("three default jobs spent delta %g of grant A, want %g", gA.Budget.DeltaSpent, 3*4e-9)
	}
	// A delta beyond what the grant has left is refused at no cost; what is left can be spent.
	if j := p.run("insurer-1", grantA, byBirthDate, api.JobOptions{Epsilon: 4e-3, Delta: new(5e-7)}); !exhausted(j) {
		t.Fatalf("a delta beyond grant A's: %s (%+v)", j.State, j.Error)
	}
	if g := p.grant(grantA); g.Budget != gA.Budget {
		t.Fatalf("a refused job spent budget: %+v → %+v", gA.Budget, g.Budget)
	}
	if j := p.run("insurer-1", grantA, byBirthDate, api.JobOptions{Epsilon: 5e-3, Delta: new(gA.Budget.DeltaRemaining)}); !ran(j) {
		t.Fatalf("A spending the rest of its delta: %s (%+v)", j.State, j.Error)
	}
	if j := p.run("insurer-1", grantA, byBirthDate, api.JobOptions{Epsilon: 6e-3}); !exhausted(j) {
		t.Fatalf("A past its allocation: %s (%+v)", j.State, j.Error)
	}

	// Org B's grant still runs its own partition-selection jobs, through review to release.
	jb := p.run("insurer-2", grantB, byBirthDate, api.JobOptions{Epsilon: 0.5})
	if jb.State != api.JobInReview {
		t.Fatalf("B's partition-selection job is %s (%+v), want in_review", jb.State, jb.Error)
	}
	p.must("rev-1", "POST", "/v1/reviews/"+jb.ID+"/approve", nil, nil)
	p.must("rev-2", "POST", "/v1/reviews/"+jb.ID+"/approve", nil, nil)
	if j := p.waitJob("insurer-2", jb.ID); j.State != api.JobReleased || j.Result == nil {
		t.Fatalf("B's reviewed job is %s", j.State)
	}
	if g := p.grant(grantB); !near(g.Budget.DeltaSpent, 4e-9) || !near(g.Budget.EpsilonSpent, 0.5) {
		t.Fatalf("grant B spent %+v, want epsilon 0.5 and delta 4e-9", g.Budget)
	}
	// The dataset's unallocated remainder was never touched by either.
	rep = p.datasetBudget("residents")
	if b := rep.Balance; !nearBudget(b.Remaining, api.Budget{Epsilon: 6, Delta: 2e-7}) || !near(b.Spent.Delta, 4e-7+4e-9) {
		t.Fatalf("residents after the jobs: %+v", b)
	}

	// An approval beyond what the dataset has left is refused with the stable code, and no
	// grant is made.
	big := p.apply("insurer-2", 50, 1e-7)
	p.refused("op-1", "POST", "/v1/applications/"+big+"/approve", nil, http.StatusConflict, "dataset_budget_insufficient")
	var a api.Application
	p.must("op-1", "GET", "/v1/applications/"+big, nil, &a)
	var grants api.Grants
	p.must("op-1", "GET", "/v1/grants", nil, &grants)
	if a.State != api.ApplicationPending || a.Grant != "" || len(grants.Grants) != 2 {
		t.Fatalf("a refused approval left application %s (grant %q) and %d grants", a.State, a.Grant, len(grants.Grants))
	}

	// Four approvals race for the last budget (epsilon 6 left, each asks for 4): exactly one wins.
	apps := []string{p.apply("insurer-1", 4, 1e-8), p.apply("insurer-2", 4, 1e-8), p.apply("insurer-1", 4, 1e-8), p.apply("insurer-2", 4, 1e-8)}
	statuses := make([]int, len(apps))
	var wg sync.WaitGroup
	for i, app := range apps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses[i] = rawPost(p, "op-1", "/v1/applications/"+app+"/approve")
		}()
	}
	wg.Wait()
	won := 0
	for _, s := range statuses {
		switch s {
		case http.StatusCreated:
			won++
		case http.StatusConflict:
		default:
			t.Errorf("a racing approval answered %d", s)
		}
	}
	if won != 1 {
		t.Fatalf("%d of %d racing approvals succeeded (%v), want exactly 1", won, len(apps), statuses)
	}
	if b := p.datasetBudget("residents").Balance; !nearBudget(b.Remaining, api.Budget{Epsilon: 2, Delta: 2e-7 - 1e-8}) {
		t.Fatalf("residents after the race: %+v", b)
	}

	// Revoking B returns what it never spent (the default policy says so).
	p.must("op-1", "POST", "/v1/grants/"+grantB+"/revoke", api.ReasonRequest{Reason: "purpose fulfilled"}, nil)
	gB := p.grant(grantB)
	if !near(gB.Budget.EpsilonReturned, 1.5) || !near(gB.Budget.DeltaReturned, 4e-7-4e-9) ||
		!near(gB.Budget.EpsilonTotal, 0.5) || gB.Budget.EpsilonRemaining != 0 || gB.Budget.DeltaRemaining != 0 {
		t.Fatalf("grant B after revocation: %+v", gB.Budget)
	}
	if b := p.datasetBudget("residents").Balance; !nearBudget(b.Remaining, api.Budget{Epsilon: 3.5, Delta: 2e-7 - 1e-8 + 4e-7 - 4e-9}) {
		t.Fatalf("residents after B's revocation: %+v", b)
	}

	// Past its end, A gives back the epsilon it never spent (its delta is all spent).
	clk.Set(time.Date(2027, 1, 1, 0, 0, 1, 0, time.UTC))
	rep = p.datasetBudget("residents")
	var closedA *api.LedgerAllocation
	for i, al := range rep.Allocations {
		if al.Holder == engine.GrantAccount(grantA) {
			closedA = &rep.Allocations[i]
		}
	}
	if closedA == nil || closedA.Closed != engine.CloseExpired || !near(closedA.Returned.Epsilon, 2-11e-3) || closedA.Returned.Delta != 0 {
		t.Fatalf("grant A's allocation after its end: %+v", closedA)
	}

	// Each allocation and each return is in provenance.
	ents, err := provenance.Read(filepath.Join(dataDir, "provenance.log"), func(typ, _ string) bool {
		return typ == provenance.TypeBudgetAllocated || typ == provenance.TypeBudgetReturned
	})
	if err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	for _, e := range ents {
		var r struct {
			Type string `json:"type"`
			Data struct {
				Grant  string `json:"grant"`
				Reason string `json:"reason"`
			} `json:"data"`
		}
		if err := json.Unmarshal(e.Record, &r); err != nil {
			t.Fatal(err)
		}
		count[r.Type+"/"+r.Data.Reason]++
	}
	// 3 grants made; B revoked; A and the race's winner expired.
	want := map[string]int{"budget_allocated/": 3, "budget_returned/revoked": 1, "budget_returned/expired": 2}
	if fmt.Sprint(count) != fmt.Sprint(want) {
		t.Fatalf("provenance has %v, want %v", count, want)
	}
}

// rawPost POSTs an empty body as who and returns the status (safe from any goroutine).
func rawPost(p *platform, who, path string) int {
	req, err := http.NewRequest("POST", p.base+path, bytes.NewReader(nil))
	if err != nil {
		return -1
	}
	req.Header.Set("Authorization", "Bearer "+token(who))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return -1
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestRevokedGrantKeepsItsAllocationWhenThePolicySaysSo: with return_unspent_on_revoke false a
// revoked grant's unspent budget stays allocated to it; and an allocation whose approval
// crashed before the grant was stored is cancelled when the server starts again.
func TestRevokedGrantKeepsItsAllocationWhenThePolicySaysSo(t *testing.T) {
	bundle := bundleWith(t, func(b []byte) []byte {
		return bytes.Replace(b, []byte(`"return_unspent_on_revoke": true`), []byte(`"return_unspent_on_revoke": false`), 1)
	})
	ps, err := server.ParsePrincipals([]byte(principalsYAML))
	if err != nil {
		t.Fatal(err)
	}
	clk := &clock{now: time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)}
	dataDir := t.TempDir()
	cfg := server.Config{DataDir: dataDir, Principals: ps, PolicyDir: bundle, ImportRoots: importRoots(t), Now: clk.Now,
		WorkerDB: sandbox.DBLimits{MemoryLimit: "2GB"}}
	srv, err := server.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	p := serveOn(t, srv, dataDir)
	p.must("psb-1", "POST", "/v1/datasets", specJSON(t, "residents"), nil)
	g := p.approve(p.apply("insurer-1", 3, 3e-7))
	p.must("op-1", "POST", "/v1/grants/"+g+"/revoke", api.ReasonRequest{Reason: "ended early"}, nil)
	if gb := p.grant(g).Budget; gb.EpsilonReturned != 0 || gb.EpsilonTotal != 3 {
		t.Fatalf("a revoked grant returned budget against the policy: %+v", gb)
	}
	rep := p.datasetBudget("residents")
	if !nearBudget(rep.Balance.Allocated, api.Budget{Epsilon: 3, Delta: 3e-7}) || len(rep.Allocations) != 1 ||
		rep.Allocations[0].Closed != engine.CloseRevoked {
		t.Fatalf("residents after the revocation: %+v %+v", rep.Balance, rep.Allocations)
	}
	p.stop()

	// An approval that crashed after carving its allocation and before storing its grant.
	eng, err := engine.Open(context.Background(), engine.Config{DataDir: dataDir, PolicyDir: bundle})
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.OpenGrant(context.Background(), "grant-crashed", ledger.Budget{Epsilon: 1, Delta: 1e-7}, "residents"); err != nil {
		t.Fatal(err)
	}
	if err := eng.Close(); err != nil {
		t.Fatal(err)
	}
	srv, err = server.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	p = serveOn(t, srv, dataDir)
	rep = p.datasetBudget("residents")
	if !nearBudget(rep.Balance.Allocated, api.Budget{Epsilon: 3, Delta: 3e-7}) || len(rep.Allocations) != 2 {
		t.Fatalf("residents after restart: %+v %+v", rep.Balance, rep.Allocations)
	}
	for _, a := range rep.Allocations {
		if a.Holder == engine.GrantAccount("grant-crashed") && (a.Closed != engine.CloseCancelled || a.Outstanding != (api.Budget{})) {
			t.Fatalf("the orphaned allocation is %+v, want cancelled and returned whole", a)
		}
	}
}
