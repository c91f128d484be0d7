package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/c1b99f93/cleanroom/errcode"
	"github.com/c1b99f93/cleanroom/sandbox"
	"github.com/c1b99f93/cleanroom/server"
	"github.com/c1b99f93/cleanroom/server/api"
)

// byHospital groups by a key without a public domain: it needs DP partition selection (delta).
const byHospital = "SELECT hospital_id, COUNT(*) AS visits FROM medical_visits GROUP BY hospital_id"

// TestExplainRefusalsAndRateLimitsOverHTTP pins, on one real server whose policy allows one job
// per grant and hour: an explanation is free, is not a job and is not rate-limited, but is
// authorized and refused like a submission (other org, operator, suspended grant); delta 0 is
// pure DP (public partitions, no delta; a selecting query is refused with what would work); a
// request the gate refuses is answered at once with 400 and its position, is not a job, does
// not count against the rate limit, and is recorded as request_refused without the SQL.
func TestExplainRefusalsAndRateLimitsOverHTTP(t *testing.T) {
	bundle := bundleWith(t, func(b []byte) []byte {
		return bytes.Replace(b, []byte(`"max_jobs_per_grant_per_hour": 120`), []byte(`"max_jobs_per_grant_per_hour": 1`), 1)
	})
	ps, err := server.ParsePrincipals([]byte(principalsYAML))
	if err != nil {
		t.Fatal(err)
	}
	clk := &clock{now: time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)}
	dataDir := t.TempDir()
	srv, err := server.New(context.Background(), server.Config{DataDir: dataDir, Principals: ps, PolicyDir: bundle,
		ImportRoots: importRoots(t), Now: clk.Now, WorkerDB: sandbox.DBLimits{MemoryLimit: "2GB"}})
	if err != nil {
		t.Fatal(err)
	}
	p := serveOn(t, srv, dataDir)
	grant := setupGrant(t, p, 8)
	var before api.Grant
	p.must("insurer-1", "GET", "/v1/grants/"+grant, nil, &before)
	noJobs := func(when string) {
		t.Helper()
		var js api.Jobs
		p.must("insurer-1", "GET", "/v1/jobs", nil, &js)
		if len(js.Jobs) != 0 {
			t.Fatalf("%s: the job list holds %d job(s): %+v", when, len(js.Jobs), js.Jobs)
		}
	}

	// The dry run: plan, cost, noise, expected error, partitions, policy — and nothing spent.
	var x api.Explanation
	p.must("insurer-1", "POST", "/v1/explain", api.JobRequest{Grant: grant, SQL: byDistrict}, &x)
	if !x.Policy.Allowed() || !x.PublicPartitions || x.Cost.Epsilon != 1 || x.Cost.Delta != 0 || len(x.Aggregates) == 0 ||
		x.Aggregates[0].ExpectedError == nil || len(x.Aggregates[0].Components) == 0 || x.Aggregates[0].Components[0].NoiseScale <= 0 ||
		x.Partitions == "" || x.BoundsChoice == "" || len(x.Plan) == 0 || len(x.Budget) == 0 {
		t.Fatalf("explanation %+v", x)
	}
	var sel api.Explanation
	p.must("insurer-1", "POST", "/v1/explain", api.JobRequest{Grant: grant, SQL: byHospital}, &sel)
	if sel.PublicPartitions || math.Abs(sel.Cost.Delta-1e-9) > 1e-18 || !strings.Contains(sel.Partitions, "selection") {
		t.Fatalf("a selecting query explained as public %v, cost %+v, %q (want the default delta, 1/100 of the grant's)", sel.PublicPartitions, sel.Cost, sel.Partitions)
	}
	// Authorized like a submission: another org's grant answers as a missing one.
	p.refused("insurer-2", "POST", "/v1/explain", api.JobRequest{Grant: grant, SQL: byDistrict}, http.StatusNotFound, errcode.NotFound)
	p.refused("op-1", "POST", "/v1/explain", api.JobRequest{Grant: grant, SQL: byDistrict}, http.StatusForbidden, errcode.Forbidden)
	p.refused("insurer-1", "POST", "/v1/explain", api.JobRequest{Grant: "grant-nope", SQL: byDistrict}, http.StatusNotFound, errcode.NotFound)

	// delta 0: pure DP. Public partitions explain at no delta; a selecting query is refused.
	zero := 0.0
	var pure api.Explanation
	p.must("insurer-1", "POST", "/v1/explain", api.JobRequest{Grant: grant, SQL: byDistrict, Options: api.JobOptions{Delta: &zero}}, &pure)
	if pure.Cost.Delta != 0 || !pure.PublicPartitions {
		t.Fatalf("delta 0 explained as %+v", pure.Cost)
	}
	p.refused("insurer-1", "POST", "/v1/explain", api.JobRequest{Grant: grant, SQL: byHospital, Options: api.JobOptions{Delta: &zero}},
		http.StatusBadRequest, errcode.InvalidOptions)

	// Requests the gate refuses: 400 at once, with a position; no job; recorded without the SQL.
	const secret = "ZZQ-literal-9417"
	for _, sql := range []string{
		"SELECT * FROM medical_visits WHERE diagnosis = '" + secret + "'",
		"SELECT COUNT(*) FROM medical_visit WHERE diagnosis = '" + secret + "'",
	} {
		body, _ := json.Marshal(api.JobRequest{Grant: grant, SQL: sql})
		req, _ := http.NewRequest("POST", p.base+"/v1/jobs", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token("insurer-1"))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var e api.ErrorBody
		err = json.NewDecoder(resp.Body).Decode(&e)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusBadRequest || e.Error.Code == "" || e.Error.Position == nil || e.Error.Message == "" {
			t.Fatalf("%s: answered %d %+v (%v), want 400 with the gate's code, message and position", sql, resp.StatusCode, e, err)
		}
	}
	noJobs("after refused requests")
	log, err := os.ReadFile(filepath.Join(dataDir, "provenance.log"))
	if err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(log, []byte(`"request_refused"`)); n != 2 {
		t.Fatalf("%d request_refused records, want 2", n)
	}
	if bytes.Contains(log, []byte(secret)) {
		t.Fatal("the provenance log holds a literal of a refused request")
	}

	// One job per hour: the refused requests did not count, so this one runs — with delta 0.
	var j api.Job
	p.must("insurer-1", "POST", "/v1/jobs", api.JobRequest{Grant: grant, SQL: byDistrict, Options: api.JobOptions{Epsilon: 0.5, Delta: &zero}}, &j)
	if j = p.waitJob("insurer-1", j.ID); j.State != api.JobReleased {
		t.Fatalf("the first job of the hour is %s (%+v)", j.State, j.Error)
	}
	var after api.Grant
	p.must("insurer-1", "GET", "/v1/grants/"+grant, nil, &after)
	if after.Budget.DeltaSpent != before.Budget.DeltaSpent || after.Budget.EpsilonSpent-before.Budget.EpsilonSpent != 0.5 {
		t.Fatalf("a delta-0 job spent %+v → %+v", before.Budget, after.Budget)
	}
	// The hour's limit is reached, yet explaining is not rate-limited.
	p.must("insurer-1", "POST", "/v1/explain", api.JobRequest{Grant: grant, SQL: byIncome}, &x)
	if !x.Policy.Allowed() {
		t.Fatalf("an explanation past the rate limit: %+v", x.Policy)
	}
	var limited api.Job
	p.must("insurer-1", "POST", "/v1/jobs", api.JobRequest{Grant: grant, SQL: byIncome, Options: api.JobOptions{Epsilon: 0.5}}, &limited)
	if limited = p.waitJob("insurer-1", limited.ID); limited.State != api.JobDenied || !strings.Contains(limited.Error.Message, "rate_limited") {
		t.Fatalf("the second job of the hour is %s (%+v)", limited.State, limited.Error)
	}

	// A suspended grant refuses an explanation as it refuses a job.
	p.must("op-1", "POST", "/v1/grants/"+grant+"/suspend", api.ReasonRequest{Reason: "audit"}, nil)
	p.refused("insurer-1", "POST", "/v1/explain", api.JobRequest{Grant: grant, SQL: byDistrict}, http.StatusForbidden, errcode.GrantSuspended)
	p.refused("insurer-1", "POST", "/v1/jobs", api.JobRequest{Grant: grant, SQL: byDistrict}, http.StatusForbidden, errcode.GrantSuspended)
	p.must("op-1", "POST", "/v1/grants/"+grant+"/resume", api.ReasonRequest{}, nil)
	clk.Set(time.Date(2027, 1, 2, 0, 0, 0, 0, time.UTC))
	p.refused("insurer-1", "POST", "/v1/explain", api.JobRequest{Grant: grant, SQL: byDistrict}, http.StatusForbidden, errcode.GrantExpired)
}

// TestDatasetShowOverHTTP: GET /v1/datasets/{name} gives any principal the columns with their
// snapshot types and catalog tags, bounds and domains, the size (the shipped policy discloses
// it), the dataset's remaining budget, and the caller's own grants on it — another org's
// applicant sees none of them. An unknown name is 404.
func TestDatasetShowOverHTTP(t *testing.T) {
	clk := &clock{now: time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)}
	p := start(t, t.TempDir(), clk)
	grant := setupGrant(t, p, 3)
	var d api.DatasetDetail
	p.must("insurer-1", "GET", "/v1/datasets/medical_visits", nil, &d)
	if d.Name != "medical_visits" || d.PrivacyUnit != "person_id" || d.Size != api.SizePublic || d.Rows == nil || *d.Rows == 0 ||
		d.Units == nil || *d.Units == 0 || *d.Units > *d.Rows || d.Budget == nil || d.Remaining == nil || len(d.Columns) == 0 {
		t.Fatalf("dataset %+v", d)
	}
	cols := map[string]api.DatasetColumn{}
	for _, c := range d.Columns {
		if c.Type == "" {
			t.Fatalf("column %s has no type", c.Name)
		}
		cols[c.Name] = c
	}
	if !cols["person_id"].PrivacyUnit || len(cols["diagnosis_chapter"].Domain) == 0 || len(cols["cost"].Bounds) != 2 || len(cols["person_id"].Tags) == 0 {
		t.Fatalf("columns %+v", cols)
	}
	if len(d.Grants) != 1 || d.Grants[0].ID != grant || d.Grants[0].State != api.GrantActive || d.Grants[0].Remaining.Epsilon != 3 {
		t.Fatalf("the applicant's grants on the dataset: %+v", d.Grants)
	}
	if d.Remaining.Epsilon != d.Budget.Epsilon-3 {
		t.Fatalf("remaining %+v of cap %+v after a grant of epsilon 3", d.Remaining, d.Budget)
	}
	var other api.DatasetDetail
	p.must("insurer-2", "GET", "/v1/datasets/medical_visits", nil, &other)
	if len(other.Grants) != 0 {
		t.Fatalf("another org's applicant sees grants %+v", other.Grants)
	}
	p.refused("insurer-1", "GET", "/v1/datasets/medical_visit", nil, http.StatusNotFound, errcode.NotFound)
	var typo api.ErrorBody
	p.do("insurer-1", "GET", "/v1/datasets/medical_visit", nil, &typo)
	if !strings.Contains(typo.Error.Message, `did you mean "medical_visits"?`) {
		t.Fatalf("a misspelt dataset name gets %q, want a did-you-mean", typo.Error.Message)
	}
	p.refused("", "GET", "/v1/datasets/medical_visits", nil, http.StatusUnauthorized, errcode.Unauthenticated)
}
