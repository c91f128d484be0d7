package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/c1b99f93/cleanroom/errcode"
	"github.com/c1b99f93/cleanroom/sandbox"
	"github.com/c1b99f93/cleanroom/server"
	"github.com/c1b99f93/cleanroom/server/api"
)

// startWith is start with a configuration edited by edit.
func startWith(t *testing.T, dataDir string, clk *clock, edit func(*server.Config)) *platform {
	t.Helper()
	ps, err := server.ParsePrincipals([]byte(principalsYAML))
	if err != nil {
		t.Fatal(err)
	}
	roots := importRoots(t)
	cfg := server.Config{DataDir: dataDir, Principals: ps, ImportRoots: roots, Now: clk.Now,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, nil)), WorkerDB: sandbox.DBLimits{MemoryLimit: "2GB"}}
	edit(&cfg)
	srv, err := server.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	p := serveOn(t, srv, dataDir)
	p.roots = roots
	return p
}

// betaGrant has insurer-2 (beta-insurance) apply for medical_visits, registered before, and
// op-1 approve.
func betaGrant(t *testing.T, p *platform) string {
	t.Helper()
	var app api.Application
	p.must("insurer-2", "POST", "/v1/applications", api.ApplicationRequest{
		Purpose: "visit counts", Scenario: "visits by district", Datasets: []string{"medical_visits"},
		Start: "2026-01-01", End: "2026-12-31", Epsilon: 1, Delta: 1e-7, JobKinds: []string{"sql"},
	}, &app)
	var ok api.Approved
	p.must("op-1", "POST", "/v1/applications/"+app.ID+"/approve", api.ApproveRequest{}, &ok)
	return ok.GrantID
}

// selfJoin is the most expensive kind of admitted job: a three-way self-join of medical_visits.
const selfJoin = "SELECT a.district, COUNT(*) AS n FROM medical_visits a JOIN medical_visits b ON a.person_id = b.person_id JOIN medical_visits c ON a.person_id = c.person_id GROUP BY a.district"

// submitAt queues a job with an epsilon of its own (so that no two share an output).
func (p *platform) submitAt(who, grant, sql string, epsilon float64) api.Job {
	p.t.Helper()
	var j api.Job
	p.must(who, "POST", "/v1/jobs", api.JobRequest{Grant: grant, SQL: sql, Options: api.JobOptions{Epsilon: epsilon}}, &j)
	return j
}

// spans are each job's first and last record index in the log, and the jobs in the order
// they started (their job_submitted records).
func spans(t *testing.T, p *platform) (first, last map[string]uint64, started []string) {
	t.Helper()
	ents, err := p.srv.Engine().Audit().Records(func(string, string) bool { return true })
	if err != nil {
		t.Fatal(err)
	}
	first, last = map[string]uint64{}, map[string]uint64{}
	for _, ent := range ents {
		r, err := ent.Decode()
		if err != nil {
			t.Fatal(err)
		}
		if r.Job == "" {
			continue
		}
		if _, ok := first[r.Job]; !ok {
			first[r.Job] = ent.Index
		}
		last[r.Job] = ent.Index
		if r.Type == "job_submitted" {
			started = append(started, r.Job)
		}
	}
	return first, last, started
}

// TestFloodingOrganisationDoesNotStarveAnother: acme floods the queue with three-way self-joins;
// beta's one-line count, submitted after the flood, starts before any more of acme's queued
// jobs: it waits for no runner slot (acme may hold only one of the two runners). And acme's
// jobs never run two at once.
func TestFloodingOrganisationDoesNotStarveAnother(t *testing.T) {
	clk := &clock{now: time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)}
	// Each job visibly runs for at least 3 s: the flood's first job is still running when
	// beta submits, whatever this machine's speed.
	p := startWith(t, t.TempDir(), clk, func(c *server.Config) { c.CompletionQuantum = 3 * time.Second })
	acme := setupGrant(t, p, 5)
	beta := betaGrant(t, p)
	var flood []string
	for i := range 3 {
		flood = append(flood, p.submitAt("insurer-1", acme, selfJoin, 0.01+float64(i)*0.001).ID)
	}
	small := p.submitAt("insurer-2", beta, "SELECT COUNT(*) AS n FROM medical_visits", 0.5).ID
	if j := p.waitJob("insurer-2", small); j.State != api.JobReleased {
		t.Fatalf("beta's job ended %s: %+v", j.State, j.Error)
	}
	for _, id := range flood { // released, or failed at its deadline: either way it ended
		p.waitJob("insurer-1", id)
	}
	first, last, started := spans(t, p)
	if pos := slices.Index(started, small); pos != 1 {
		t.Fatalf("start order %v: beta's job started at position %d, want 1 (after the flood's running job, before its queued ones)", started, pos)
	}
	slices.SortFunc(flood, func(a, b string) int { return int(first[a]) - int(first[b]) })
	for i := 1; i < len(flood); i++ {
		if first[flood[i]] < last[flood[i-1]] {
			t.Fatalf("acme ran %s and %s at once (records %d–%d and %d–%d); its cap is one", flood[i-1], flood[i],
				first[flood[i-1]], last[flood[i-1]], first[flood[i]], last[flood[i]])
		}
	}
}

// TestQueueFullIsRefusedWithRetryAfter: an organisation at its queue cap gets 429 queue_full
// with a Retry-After hint, the refused job is not stored, and another organisation's job is
// still admitted.
func TestQueueFullIsRefusedWithRetryAfter(t *testing.T) {
	clk := &clock{now: time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)}
	// No job finishes during the test (the server stops it when the test ends): one of acme's
	// runs, the others wait.
	p := startWith(t, t.TempDir(), clk, func(c *server.Config) {
		c.CompletionQuantum = 10 * time.Minute
		c.Scheduling = server.Scheduling{MaxQueuedPerOrg: 2, RetryAfter: 7 * time.Second}
	})
	acme := setupGrant(t, p, 5)
	beta := betaGrant(t, p)
	accepted, refused := 0, 0
	for i := range 6 {
		body, _ := json.Marshal(api.JobRequest{Grant: acme, SQL: byDistrict, Options: api.JobOptions{Epsilon: 0.01 + float64(i)*0.001}})
		req, _ := http.NewRequest("POST", p.base+"/v1/jobs", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token("insurer-1"))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		switch resp.StatusCode {
		case http.StatusAccepted:
			accepted++
		case http.StatusTooManyRequests:
			refused++
			var e api.ErrorBody
			if err := json.Unmarshal(raw, &e); err != nil || e.Error.Code != string(errcode.QueueFull) {
				t.Fatalf("429 with %s", raw)
			}
			if ra := resp.Header.Get("Retry-After"); ra != "7" {
				t.Fatalf("Retry-After %q, want 7", ra)
			}
		default:
			t.Fatalf("submission %d: %d %s", i, resp.StatusCode, raw)
		}
	}
	// One running (acme's cap of one running job) and two queued.
	if accepted != 3 || refused != 3 {
		t.Fatalf("accepted %d, refused %d; want 3 and 3", accepted, refused)
	}
	var list api.Jobs
	p.must("insurer-1", "GET", "/v1/jobs", nil, &list)
	if len(list.Jobs) != 3 {
		t.Fatalf("acme has %d jobs stored, want the 3 accepted", len(list.Jobs))
	}
	p.submitAt("insurer-2", beta, byDistrict, 0.5)
}
