package server_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/c1b99f93/cleanroom/errcode"
	"github.com/c1b99f93/cleanroom/server/api"
)

// rawDo sends a request as who and returns the status, the Content-Type and the body as sent.
func rawDo(t *testing.T, p *platform, who, method, path string, body any) (int, string, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, p.base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token(who))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header.Get("Content-Type"), raw
}

// TestHiddenObjectsAnswerLikeMissingOnes: for every route that names an application, grant or
// job, a caller who may not see the object gets exactly the answer — status, content type and
// body, byte for byte — that a missing object gets, so the answer tells nothing of another
// organisation's objects. A caller who may see the object but not act on it still gets 403.
func TestHiddenObjectsAnswerLikeMissingOnes(t *testing.T) {
	clk := &clock{now: time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)}
	p := start(t, t.TempDir(), clk)
	grant := setupGrant(t, p, 8)
	job := p.waitJob("insurer-1", p.submit("insurer-1", grant, byDistrict).ID).ID
	var app api.Application
	p.must("insurer-1", "POST", "/v1/applications", api.ApplicationRequest{Purpose: "p", Scenario: "s",
		Datasets: []string{"medical_visits"}, Start: "2026-01-01", End: "2026-12-31", Epsilon: 0.1, JobKinds: []string{"sql"}}, &app)
	const (
		noApp   = "app-00000000deadbeef"
		noGrant = "grant-00000000deadbeef"
		noJob   = "job-00000000deadbeef"
	)
	reason := api.ReasonRequest{Reason: "because"}
	redteam := api.RedteamRequest{ReportSHA256: strings.Repeat("ab", 32),
		Attacks: []api.RedteamAttack{{Name: "averaging", Jobs: 3, Blocked: true, Epsilon: 0.2}}}
	routes := []struct {
		method          string
		path            func(id string) string
		body            func(id string) any
		existing, gone  string
		seerMayNotActAs string // a principal who sees the object but may not do this: 403
	}{
		{"GET", func(id string) string { return "/v1/applications/" + id }, nil, app.ID, noApp, ""},
		{"POST", func(id string) string { return "/v1/applications/" + id + "/approve" }, nil, app.ID, noApp, "insurer-1"},
		{"POST", func(id string) string { return "/v1/applications/" + id + "/reject" }, func(string) any { return reason }, app.ID, noApp, "aud-1"},
		{"GET", func(id string) string { return "/v1/grants/" + id }, nil, grant, noGrant, ""},
		{"GET", func(id string) string { return "/v1/grants/" + id + "/budget" }, nil, grant, noGrant, ""},
		{"POST", func(id string) string { return "/v1/grants/" + id + "/suspend" }, nil, grant, noGrant, "insurer-1"},
		{"POST", func(id string) string { return "/v1/grants/" + id + "/resume" }, nil, grant, noGrant, "insurer-1"},
		{"POST", func(id string) string { return "/v1/grants/" + id + "/revoke" }, nil, grant, noGrant, "aud-1"},
		{"POST", func(id string) string { return "/v1/grants/" + id + "/redteam" }, func(string) any { return redteam }, grant, noGrant, "insurer-1"},
		{"POST", func(string) string { return "/v1/jobs" }, func(id string) any { return api.JobRequest{Grant: id, SQL: byDistrict} }, grant, noGrant, "op-1"},
		{"POST", func(string) string { return "/v1/explain" }, func(id string) any { return api.JobRequest{Grant: id, SQL: byDistrict} }, grant, noGrant, "aud-1"},
		{"GET", func(id string) string { return "/v1/jobs/" + id }, nil, job, noJob, ""},
		{"POST", func(id string) string { return "/v1/reviews/" + id + "/approve" }, nil, job, noJob, "insurer-1"},
		{"POST", func(id string) string { return "/v1/reviews/" + id + "/reject" }, func(string) any { return reason }, job, noJob, "op-1"},
	}
	for _, rt := range routes {
		body := func(id string) any {
			if rt.body == nil {
				return nil
			}
			return rt.body(id)
		}
		// insurer-2 is another applicant organisation; hospital-a a provider, who reads no grants.
		for _, who := range []string{"insurer-2", "hospital-a"} {
			name := rt.method + " " + rt.path(rt.existing) + " as " + who
			hs, hct, hidden := rawDo(t, p, who, rt.method, rt.path(rt.existing), body(rt.existing))
			ms, mct, missing := rawDo(t, p, who, rt.method, rt.path(rt.gone), body(rt.gone))
			if hs != http.StatusNotFound || ms != http.StatusNotFound {
				t.Errorf("%s: %d for another org's object and %d for a missing one, want 404 for both", name, hs, ms)
			}
			if hct != mct || !bytes.Equal(hidden, missing) {
				t.Errorf("%s: another org's object answers %s %q, a missing one %s %q; want the same bytes", name, hct, hidden, mct, missing)
			}
			var e api.ErrorBody
			if err := json.Unmarshal(missing, &e); err != nil || e.Error.Code != string(errcode.NotFound) {
				t.Errorf("%s: body %q, want a not_found error document", name, missing)
			}
		}
		if who := rt.seerMayNotActAs; who != "" {
			if st, _, b := rawDo(t, p, who, rt.method, rt.path(rt.existing), body(rt.existing)); st != http.StatusForbidden {
				t.Errorf("%s %s as %s, who sees the object: %d %s, want 403", rt.method, rt.path(rt.existing), who, st, b)
			}
		}
	}
	// The object is intact and still the owner's.
	var g api.Grant
	p.must("insurer-1", "GET", "/v1/grants/"+grant, nil, &g)
	if g.State != api.GrantActive {
		t.Fatalf("the grant is %s after the refused requests", g.State)
	}
}

// TestDatesOutOfRangeAre400: an application ending 9999-12-31 (whose end, the next midnight,
// lies in year 10000 and cannot be written into a provenance record) once answered 500
// provenance_unavailable. Every time a request gives — an application's start and end, an
// approval's end — must lie in 2000-01-01..2200-01-01 (UTC), or the request is 400
// date_out_of_range and nothing is recorded or stored; the last day of the range is accepted.
func TestDatesOutOfRangeAre400(t *testing.T) {
	clk := &clock{now: time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)}
	p := start(t, t.TempDir(), clk)
	setupGrant(t, p, 1)
	apply := func(start, end string) api.ApplicationRequest {
		return api.ApplicationRequest{Purpose: "p", Scenario: "s", Datasets: []string{"medical_visits"}, Start: start, End: end,
			Epsilon: 0.1, JobKinds: []string{"sql"}}
	}
	var before api.Applications
	p.must("op-1", "GET", "/v1/applications", nil, &before)
	for _, c := range []struct{ start, end string }{
		{"2026-01-01", "9999-12-31"},
		{"2026-01-01", "9999-12-31T23:59:59-23:00"},
		{"2026-01-01", "2200-01-01"}, // as an end date: the end of that day, past the range
		{"2026-01-01", "2200-01-01T00:00:01Z"},
		{"0001-01-01", "2026-12-31"},
		{"1999-12-31T23:59:59Z", "2026-12-31"},
		{"0000-01-01", "9999-12-31"},
	} {
		p.refused("insurer-1", "POST", "/v1/applications", apply(c.start, c.end), http.StatusBadRequest, errcode.DateOutOfRange)
	}
	var after api.Applications
	p.must("op-1", "GET", "/v1/applications", nil, &after)
	if len(after.Applications) != len(before.Applications) {
		t.Fatalf("refused applications were stored: %d → %d", len(before.Applications), len(after.Applications))
	}
	var a api.Application
	p.must("insurer-1", "POST", "/v1/applications", apply("2000-01-01", "2199-12-31"), &a)
	if want := time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC); !a.End.Equal(want) {
		t.Fatalf("an application ending 2199-12-31 ends %v, want %v", a.End, want)
	}
	// An approval's end arrives the same way.
	p.refused("op-1", "POST", "/v1/applications/"+a.ID+"/approve", map[string]any{"end": "9999-12-31"}, http.StatusBadRequest, errcode.DateOutOfRange)
	var ok api.Approved
	p.must("op-1", "POST", "/v1/applications/"+a.ID+"/approve", map[string]any{"end": "2199-12-30"}, &ok)
	if ok.GrantID == "" {
		t.Fatal("an approval within the range made no grant")
	}
}

// TestMillionPublicPartitionsAreRefusedAtSubmission: two 998-bucket width_bucket keys (a
// million public partitions, once 45–54 s of CPU and 1.5–1.8 GB in the server) are answered at
// once, 400 too_many_partitions, and never become a job; explaining the query is refused alike.
func TestMillionPublicPartitionsAreRefusedAtSubmission(t *testing.T) {
	clk := &clock{now: time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)}
	p := start(t, t.TempDir(), clk)
	grant := setupGrant(t, p, 8)
	sql := "SELECT width_bucket(cost, 0, 50000, 998) AS a, width_bucket(cost, 0, 10000, 998) AS b, COUNT(*) AS n FROM medical_visits GROUP BY 1, 2"
	req := api.JobRequest{Grant: grant, SQL: sql, Options: api.JobOptions{Epsilon: 1e-3}}
	begin := time.Now()
	p.refused("insurer-1", "POST", "/v1/jobs", req, http.StatusBadRequest, errcode.TooManyPartitions)
	p.refused("insurer-1", "POST", "/v1/explain", req, http.StatusBadRequest, errcode.TooManyPartitions)
	if d := time.Since(begin); d > 10*time.Second {
		t.Errorf("the refusals took %v", d)
	}
	var jobs api.Jobs
	p.must("insurer-1", "GET", "/v1/jobs?grant="+grant, nil, &jobs)
	if len(jobs.Jobs) != 0 {
		t.Fatalf("the refused query became %d job(s)", len(jobs.Jobs))
	}
}
