package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/c1b99f93/cleanroom/errcode"
	"github.com/c1b99f93/cleanroom/server/api"
	"github.com/c1b99f93/cleanroom/server/client"
)

// TestFederatedJobOverHTTP: two providers register visits in two data domains; an applicant
// with a federated_sql grant asks one count by district over both through the Go client. The
// job releases, each district's total lies within its interval's reach of the true sum, both
// datasets' budgets are charged, and requests that break the federated rules are refused at
// once without becoming jobs.
func TestFederatedJobOverHTTP(t *testing.T) {
	clk := &clock{now: time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)}
	p := start(t, t.TempDir(), clk)
	// person i has i%3+1 visits, in district A for even i, B for odd; the health commission
	// holds persons 0..599, the public security bureau 400..999 (an overlap of 200 persons).
	truth := map[string]float64{}
	write := func(org, name, domain string, from, to int) {
		var b strings.Builder
		b.WriteString("person_id,district\n")
		for i := from; i < to; i++ {
			d := []string{"A", "B"}[i%2]
			for range i%3 + 1 {
				fmt.Fprintf(&b, "P%06d,%s\n", i, d)
				truth[d]++
			}
		}
		if err := os.WriteFile(filepath.Join(p.roots[org], name+".csv"), []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		p.must(map[string]string{"health-commission": "hospital-a", "public-security-bureau": "psb-1"}[org], "POST", "/v1/datasets", map[string]any{
			"name": name, "provider": org, "grade": "L2", "domain": domain, "privacy_unit": "person_id",
			"source": map[string]any{"kind": "csv", "path": name + ".csv"}, "budget": map[string]any{"epsilon": 10, "delta": 1e-6},
			"columns": map[string]any{"person_id": map[string]any{"tags": []string{"identifier"}},
				"district": map[string]any{"tags": []string{"quasi_identifier"}, "domain": []string{"A", "B"}}},
		}, nil)
	}
	write("health-commission", "visits_hc", "health", 0, 600)
	write("public-security-bureau", "visits_psb", "security", 400, 1000)

	var app api.Application
	p.must("insurer-1", "POST", "/v1/applications", api.ApplicationRequest{Purpose: "pricing", Scenario: "visits by district across bureaus",
		Datasets: []string{"visits_hc", "visits_psb"}, Start: "2026-01-01", End: "2026-12-31", Epsilon: 5, Delta: 1e-7,
		JobKinds: []string{api.KindFederated}}, &app)
	var ok api.Approved
	p.must("op-1", "POST", "/v1/applications/"+app.ID+"/approve", api.ApproveRequest{}, &ok)

	c, err := client.New(p.base, token("insurer-1"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	const sql = "SELECT district, COUNT(*) AS visits FROM visits_hc GROUP BY district"
	req := api.JobRequest{Grant: ok.GrantID, Kind: api.KindFederated, SQL: sql,
		Federated: &api.FederatedRequest{Datasets: []string{"visits_hc", "visits_psb"}},
		Options:   api.JobOptions{Epsilon: 1, MaxGroupsContributed: 1, MaxContributionsPerGroup: 3}}
	j, err := c.SubmitJob(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if j, err = c.WaitJob(ctx, j.ID); err != nil || j.State != api.JobReleased {
		t.Fatalf("federated job: %+v, %v", j.Error, err)
	}
	var res api.Result
	if err := json.Unmarshal(j.Result, &res); err != nil {
		t.Fatal(err)
	}
	if len(res.Rows) != 2 {
		t.Fatalf("%d rows, want A and B", len(res.Rows))
	}
	for _, row := range res.Rows {
		key, cell := *row[0].Key, row[1].DP
		// The interval is 95%; 6σ either way (σ from its half-width) never misses by chance
		// (about 2·10⁻⁹ a cell).
		sigma := (cell.CIHigh - cell.CILow) / 2 / 1.96
		if math.Abs(cell.Value-truth[key]) > 6*sigma {
			t.Errorf("district %s: released %.1f [%.1f, %.1f], true %v", key, cell.Value, cell.CILow, cell.CIHigh, truth[key])
		}
	}
	// Both domains' datasets were charged.
	for _, ds := range []string{"visits_hc", "visits_psb"} {
		var b api.BudgetReport
		p.must("op-1", "GET", "/v1/datasets/"+ds+"/budget", nil, &b)
		if b.Balance.Spent.Epsilon <= 0 {
			t.Errorf("dataset %s was not charged: %+v", ds, b.Balance)
		}
	}
	// Refused at once, never a job: one dataset, two in one domain, no federated list.
	for name, bad := range map[string]api.JobRequest{
		"one dataset":      {Grant: ok.GrantID, Kind: api.KindFederated, SQL: sql, Federated: &api.FederatedRequest{Datasets: []string{"visits_hc"}}, Options: req.Options},
		"no dataset list":  {Grant: ok.GrantID, Kind: api.KindFederated, SQL: sql, Options: req.Options},
		"a list on sql":    {Grant: ok.GrantID, Kind: api.KindSQL, SQL: sql, Federated: req.Federated, Options: req.Options},
		"an unknown table": {Grant: ok.GrantID, Kind: api.KindFederated, SQL: sql, Federated: &api.FederatedRequest{Datasets: []string{"visits_hc", "nope"}}, Options: req.Options},
	} {
		if _, err := c.SubmitJob(ctx, bad); codeOf(err) == "" || codeOf(err) == errcode.Internal {
			t.Errorf("%s: %v, want a refusal with its code", name, err)
		}
	}
	js, err := c.Jobs(ctx)
	if err != nil || len(js.Jobs) != 1 {
		t.Fatalf("jobs after the refusals: %d, %v; want the one federated job", len(js.Jobs), err)
	}
}
