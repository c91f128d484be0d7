package server_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/c1b99f93/cleanroom/catalog"
	"github.com/c1b99f93/cleanroom/engine"
	"github.com/c1b99f93/cleanroom/engine/provenance"
	"github.com/c1b99f93/cleanroom/errcode"
	"github.com/c1b99f93/cleanroom/policy/bundletest"
	"github.com/c1b99f93/cleanroom/sandbox"
	"github.com/c1b99f93/cleanroom/server"
	"github.com/c1b99f93/cleanroom/server/api"
)

func TestMain(m *testing.M) {
	// Workers are this test binary started as "<binary> worker" (sandbox.Start's default).
	if sandbox.IsWorkerInvocation(os.Args) {
		os.Exit(sandbox.RunWorker())
	}
	os.Exit(m.Run())
}

// Tokens of the test principals: each is its name padded to the minimum token length.
func token(name string) string { return name + "-token-0123456789" }

var principalsYAML = `principals:
  - {name: hospital-a, role: provider,  org: health-commission,     token: "hospital-a-token-0123456789"}
  - {name: psb-1,      role: provider,  org: public-security-bureau, token: "psb-1-token-0123456789"}
  - {name: op-1,       role: operator,  org: platform,              token: "op-1-token-0123456789"}
  - {name: insurer-1,  role: applicant, org: acme-insurance,        token: "insurer-1-token-0123456789"}
  - {name: insurer-2,  role: applicant, org: beta-insurance,        token: "insurer-2-token-0123456789"}
  - {name: rev-1,      role: reviewer,  org: platform,              token: "rev-1-token-0123456789"}
  - {name: rev-2,      role: reviewer,  org: platform,              token: "rev-2-token-0123456789"}
  - {name: rev-acme,   role: reviewer,  org: acme-insurance,        token: "rev-acme-token-0123456789"}
  - {name: aud-1,      role: auditor,   org: audit-office,          token: "aud-1-token-0123456789"}
`

// clock is a settable clock for grant periods.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Set(t time.Time) { c.mu.Lock(); c.now = t; c.mu.Unlock() }

// platform is a server on a loopback port.
type platform struct {
	t       *testing.T
	base    string
	srv     *server.Server
	stop    func()
	dataDir string
	roots   map[string]string // the providers' import roots, by organisation (when start made them)
}

func datasetsDir(t *testing.T) string {
	d, err := filepath.Abs(filepath.Join("..", "testdata", "datasets"))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// importRoots gives each provider organisation of the testdata its own import root: a copy,
// for this test, of the folder of testdata/datasets named for it (so a test may add files).
func importRoots(t *testing.T) map[string]string {
	t.Helper()
	ents, err := os.ReadDir(datasetsDir(t))
	if err != nil {
		t.Fatal(err)
	}
	base := t.TempDir()
	roots := map[string]string{}
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		roots[e.Name()] = filepath.Join(base, e.Name())
		files, err := os.ReadDir(filepath.Join(datasetsDir(t), e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			copyFile(t, filepath.Join(datasetsDir(t), e.Name(), f.Name()), filepath.Join(roots[e.Name()], f.Name()))
		}
	}
	return roots
}

// start runs a server over dataDir until the test ends (or stop is called).
func start(t *testing.T, dataDir string, clk *clock) *platform {
	t.Helper()
	ps, err := server.ParsePrincipals([]byte(principalsYAML))
	if err != nil {
		t.Fatal(err)
	}
	roots := importRoots(t)
	srv, err := server.New(context.Background(), server.Config{DataDir: dataDir, Principals: ps,
		ImportRoots: roots, Now: clk.Now, Logger: slog.New(slog.NewTextHandler(os.Stderr, nil)), WorkerDB: sandbox.DBLimits{MemoryLimit: "2GB"}})
	if err != nil {
		t.Fatal(err)
	}
	p := serveOn(t, srv, dataDir)
	p.roots = roots
	return p
}

// serveOn serves a created server on a loopback port until the test ends (or stop is called).
func serveOn(t *testing.T, srv *server.Server, dataDir string) *platform {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	p := &platform{t: t, base: "http://" + ln.Addr().String(), srv: srv, dataDir: dataDir}
	var once sync.Once
	p.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("serve: %v", err)
			}
			if err := srv.Close(); err != nil {
				t.Errorf("close: %v", err)
			}
		})
	}
	t.Cleanup(p.stop)
	return p
}

// do sends a request as who (empty: no token) and decodes the JSON answer into out (if not
// nil). It returns the status and, for errors, the error code.
func (p *platform) do(who, method, path string, body, out any) (int, string) {
	p.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			p.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, p.base+path, rd)
	if err != nil {
		p.t.Fatal(err)
	}
	if who != "" {
		req.Header.Set("Authorization", "Bearer "+token(who))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		p.t.Fatal(err)
	}
	if resp.StatusCode >= 300 {
		var e api.ErrorBody
		if err := json.Unmarshal(raw, &e); err != nil || e.Error.Code == "" {
			p.t.Fatalf("%s %s: status %d with a body that is not an API error: %s", method, path, resp.StatusCode, raw)
		}
		if eb, ok := out.(*api.ErrorBody); ok { // the caller reads the error document
			*eb = e
		}
		return resp.StatusCode, e.Error.Code
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			p.t.Fatalf("%s %s: %v: %s", method, path, err, raw)
		}
	}
	return resp.StatusCode, ""
}

// must is do that fails the test unless the status is 2xx.
func (p *platform) must(who, method, path string, body, out any) {
	p.t.Helper()
	if status, code := p.do(who, method, path, body, out); status >= 300 {
		p.t.Fatalf("%s %s as %s: %d %s", method, path, who, status, code)
	}
}

// refused asserts a request fails with status and code.
func (p *platform) refused(who, method, path string, body any, status int, code errcode.Code) {
	p.t.Helper()
	gotStatus, gotCode := p.do(who, method, path, body, nil)
	if gotStatus != status || gotCode != string(code) {
		p.t.Fatalf("%s %s as %s: got %d %q, want %d %q", method, path, who, gotStatus, gotCode, status, code)
	}
}

func specJSON(t *testing.T, name string) map[string]any {
	t.Helper()
	spec, err := catalog.LoadFile(filepath.Join(datasetsDir(t), name+".yaml"))
	if err != nil {
		t.Fatal(err)
	}
	spec.Source.Path = filepath.Base(spec.Source.Path) // relative: resolved within the provider's import root
	b, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// waitJob long-polls a job until it leaves queued/running.
func (p *platform) waitJob(who, id string) api.Job {
	p.t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		var j api.Job
		p.must(who, "GET", "/v1/jobs/"+id+"?wait=20s", nil, &j)
		if j.State != api.JobQueued && j.State != api.JobRunning {
			return j
		}
	}
	p.t.Fatalf("job %s did not finish", id)
	return api.Job{}
}

func (p *platform) submit(who, grant, sql string) api.Job {
	p.t.Helper()
	var j api.Job
	p.must(who, "POST", "/v1/jobs", api.JobRequest{Grant: grant, SQL: sql, Options: api.JobOptions{Epsilon: 0.5}}, &j)
	if j.State != api.JobQueued || j.ID == "" {
		p.t.Fatalf("a submitted job is %+v, want queued with an id", j)
	}
	return j
}

// setupGrant registers visits and residents, and has insurer-1 apply and op-1 approve. The
// grant's epsilon is carved out of both datasets' lifetime budgets (residents has 10).
func setupGrant(t *testing.T, p *platform, epsilon float64) string {
	t.Helper()
	var reg api.Registered
	p.must("hospital-a", "POST", "/v1/datasets", specJSON(t, "medical_visits"), &reg)
	if reg.Name != "medical_visits" || !strings.HasPrefix(reg.Digest, "sha256:") || reg.Rows == 0 {
		t.Fatalf("registration answered %+v", reg)
	}
	p.must("psb-1", "POST", "/v1/datasets", specJSON(t, "residents"), nil)
	var app api.Application
	p.must("insurer-1", "POST", "/v1/applications", api.ApplicationRequest{
		Purpose: "price outpatient cover", Scenario: "visits by district and income band",
		Datasets: []string{"medical_visits", "residents"}, Start: "2026-01-01", End: "2026-12-31",
		Epsilon: epsilon * 2, Delta: 2e-7, JobKinds: []string{"sql"},
	}, &app)
	if app.State != api.ApplicationPending || app.Org != "acme-insurance" || app.Applicant != "insurer-1" {
		t.Fatalf("application is %+v", app)
	}
	// The operator halves the delta asked for: the grant takes a tenth of the residents'
	// lifetime delta, leaving the rest for other grants.
	var ok api.Approved
	delta := 1e-7
	p.must("op-1", "POST", "/v1/applications/"+app.ID+"/approve", api.ApproveRequest{Epsilon: &epsilon, Delta: &delta}, &ok)
	if ok.GrantID == "" {
		t.Fatal("approval returned no grant id")
	}
	return ok.GrantID
}

const (
	byDistrict = "SELECT district, COUNT(*) AS visits FROM medical_visits GROUP BY district"
	byIncome   = "SELECT r.income_band, COUNT(*) AS visits FROM medical_visits v JOIN residents r ON v.person_id = r.person_id GROUP BY r.income_band"
)

// TestLifecycleOverHTTP walks the whole governance path on a real server on loopback:
// register, apply, approve, query, hold, two-person review, release, audit — and restarts the
// server on the same data directory with everything intact.
func TestLifecycleOverHTTP(t *testing.T) {
	dataDir := t.TempDir()
	clk := &clock{now: time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)}
	p := start(t, dataDir, clk)

	p.refused("", "GET", "/v1/whoami", nil, 401, "unauthenticated")
	var me api.Principal
	p.must("insurer-1", "GET", "/v1/whoami", nil, &me)
	if me != (api.Principal{Name: "insurer-1", Role: "applicant", Org: "acme-insurance"}) {
		t.Fatalf("whoami = %+v", me)
	}
	// A provider registers only its own organisation's datasets.
	p.refused("hospital-a", "POST", "/v1/datasets", specJSON(t, "residents"), 403, "forbidden")
	grant := setupGrant(t, p, 3)

	// Released: the applicant sees the result; another org sees nothing of the job; the
	// operator sees the job without its result; the auditor reads everything.
	j := p.waitJob("insurer-1", p.submit("insurer-1", grant, byDistrict).ID)
	if j.State != api.JobReleased || len(j.Result) == 0 {
		t.Fatalf("job is %s with error %+v, want released with a result", j.State, j.Error)
	}
	p.refused("insurer-2", "GET", "/v1/jobs/"+j.ID, nil, 404, "not_found") // another org's job answers as a missing one
	var seen api.Job
	p.must("op-1", "GET", "/v1/jobs/"+j.ID, nil, &seen)
	if seen.Result != nil {
		t.Fatal("the operator was shown a result")
	}
	p.must("aud-1", "GET", "/v1/jobs/"+j.ID, nil, &seen)
	if seen.Result == nil {
		t.Fatal("the auditor was not shown the released result")
	}

	// Held: an L3 dataset's output needs two independent reviewers.
	held := p.waitJob("insurer-1", p.submit("insurer-1", grant, byIncome).ID)
	if held.State != api.JobInReview || held.Result != nil || held.Review == nil || held.Review.Required != 2 {
		t.Fatalf("job is %+v, want in_review for two reviewers without a result", held)
	}
	var queue api.Reviews
	p.must("rev-1", "GET", "/v1/reviews", nil, &queue)
	if len(queue.Reviews) != 1 || queue.Reviews[0].Job.ID != held.ID || len(queue.Reviews[0].Result) == 0 {
		t.Fatalf("review queue = %+v", queue)
	}
	// The applicant's own org never sees the held result, even as a reviewer.
	p.must("rev-acme", "GET", "/v1/reviews", nil, &queue)
	if len(queue.Reviews) != 0 {
		t.Fatal("a reviewer of the applicant's org was shown the held result")
	}
	p.refused("rev-acme", "POST", "/v1/reviews/"+held.ID+"/approve", nil, 403, "separation_of_duties")
	p.refused("insurer-1", "POST", "/v1/reviews/"+held.ID+"/approve", nil, 403, "forbidden")
	var after api.Job
	p.must("rev-1", "POST", "/v1/reviews/"+held.ID+"/approve", api.ReasonRequest{Reason: "bands are coarse"}, &after)
	if after.State != api.JobInReview {
		t.Fatalf("after one approval the job is %s, want still in_review", after.State)
	}
	p.refused("rev-1", "POST", "/v1/reviews/"+held.ID+"/approve", nil, 403, "separation_of_duties")
	p.must("rev-2", "POST", "/v1/reviews/"+held.ID+"/approve", nil, &after)
	if after.State != api.JobReleased {
		t.Fatalf("after two approvals the job is %s, want released", after.State)
	}
	p.must("insurer-1", "GET", "/v1/jobs/"+held.ID, nil, &seen)
	if seen.Result == nil || len(seen.Review.Reviews) != 2 {
		t.Fatalf("the released job shows result=%v reviews=%+v", seen.Result != nil, seen.Review)
	}

	// The grant's budget shows what the jobs spent.
	var g api.Grant
	p.must("insurer-1", "GET", "/v1/grants/"+grant, nil, &g)
	if g.State != api.GrantActive || g.Budget.EpsilonTotal != 3 || !(g.Budget.EpsilonSpent >= 1 && g.Budget.EpsilonSpent <= 3) {
		t.Fatalf("grant = %+v", g)
	}

	// The auditor verifies the log and reads a job's records.
	var rep struct {
		Records uint64 `json:"records"`
		Problem string `json:"problem"`
	}
	p.must("aud-1", "GET", "/v1/audit/verify", nil, &rep)
	if rep.Problem != "" || rep.Records == 0 {
		t.Fatalf("audit verify = %+v", rep)
	}
	var recs api.AuditJob
	p.must("aud-1", "GET", "/v1/audit/jobs/"+held.ID, nil, &recs)
	types := map[string]bool{}
	for _, e := range recs.Records {
		var r struct{ Type string }
		_ = json.Unmarshal(e.Record, &r)
		types[r.Type] = true
	}
	for _, want := range []string{"job_submitted", "held", "review", "release"} {
		if !types[want] {
			t.Fatalf("the held job's provenance lacks %q: %v", want, types)
		}
	}
	p.refused("insurer-1", "GET", "/v1/audit/verify", nil, 403, "forbidden")
	// The auditor replays the held-then-released job: every stage matches.
	var replay api.ReplayReport
	p.must("aud-1", "POST", "/v1/audit/jobs/"+held.ID+"/replay", nil, &replay)
	if !replay.Match || len(replay.Stages) < 5 {
		t.Fatalf("replay = %+v", replay)
	}

	// Restart on the same data directory: datasets, grants, budgets, jobs and reviews are intact,
	// and new jobs run.
	p.stop()
	p2 := start(t, dataDir, clk)
	var g2 api.Grant
	p2.must("insurer-1", "GET", "/v1/grants/"+grant, nil, &g2)
	if g2.Budget != g.Budget || g2.State != g.State {
		t.Fatalf("after restart the grant is %+v, was %+v", g2, g)
	}
	p2.must("insurer-1", "GET", "/v1/jobs/"+held.ID, nil, &seen)
	if seen.State != api.JobReleased || seen.Result == nil || len(seen.Review.Reviews) != 2 {
		t.Fatalf("after restart the reviewed job is %+v", seen)
	}
	var ds api.Datasets
	p2.must("insurer-2", "GET", "/v1/datasets", nil, &ds)
	if len(ds.Datasets) != 2 {
		t.Fatalf("after restart %d datasets are registered, want 2", len(ds.Datasets))
	}
	// Same query as before: answered from its release, free.
	again := p2.waitJob("insurer-1", p2.submit("insurer-1", grant, byDistrict).ID)
	if again.State != api.JobReleased {
		t.Fatalf("after restart a job is %s (%+v)", again.State, again.Error)
	}
	fresh := p2.waitJob("insurer-1", p2.submit("insurer-1", grant, "SELECT COUNT(*) AS n FROM medical_visits").ID)
	if fresh.State != api.JobReleased {
		t.Fatalf("after restart a new job is %s (%+v)", fresh.State, fresh.Error)
	}
}

// TestGrantStatesTakeEffectOnTheNextJob: suspension, resumption, expiry and revocation.
func TestGrantStatesTakeEffectOnTheNextJob(t *testing.T) {
	clk := &clock{now: time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)}
	p := start(t, t.TempDir(), clk)
	grant := setupGrant(t, p, 3)
	job := api.JobRequest{Grant: grant, SQL: byDistrict}

	p.refused("insurer-1", "POST", "/v1/grants/"+grant+"/suspend", nil, 403, "forbidden")
	p.must("op-1", "POST", "/v1/grants/"+grant+"/suspend", api.ReasonRequest{Reason: "audit in progress"}, nil)
	p.refused("insurer-1", "POST", "/v1/jobs", job, 403, "grant_suspended")
	p.refused("op-1", "POST", "/v1/grants/"+grant+"/suspend", nil, 409, "conflict")
	p.must("op-1", "POST", "/v1/grants/"+grant+"/resume", nil, nil)
	if j := p.waitJob("insurer-1", p.submit("insurer-1", grant, byDistrict).ID); j.State != api.JobReleased {
		t.Fatalf("after resume a job is %s (%+v)", j.State, j.Error)
	}
	// A job for a kind outside the grant, or a dataset outside its scope, is forbidden.
	p.refused("insurer-1", "POST", "/v1/jobs", api.JobRequest{Grant: grant, Kind: api.KindModel, Model: &api.ModelRequest{Type: api.ModelLinearRegression,
		SQL: "SELECT person_id, cost, inpatient FROM medical_visits", Features: []string{"cost"}, Label: "inpatient"}}, 403, "forbidden")
	// (A copy of a granted dataset's file cannot be registered at all: one data, one dataset.)
	p.refused("hospital-a", "POST", "/v1/datasets", map[string]any{
		"name": "visits_copy", "provider": "health-commission", "grade": "L2", "privacy_unit": "person_id",
		"source": map[string]any{"kind": "parquet", "path": "medical_visits.parquet"}, "budget": map[string]any{"epsilon": 5, "delta": 1e-5},
		"columns": specJSON(t, "medical_visits")["columns"],
	}, 409, "dataset_already_registered")
	writeCSV(t, filepath.Join(p.roots["health-commission"], "other_visits.csv"), 0, 20, false)
	p.must("hospital-a", "POST", "/v1/datasets", csvSpec("visits_copy", "health-commission", "other_visits.csv"), nil)
	// The gate refuses it at submission (403, not a job).
	p.refused("insurer-1", "POST", "/v1/jobs", api.JobRequest{Grant: grant, SQL: "SELECT COUNT(*) AS n FROM visits_copy"}, 403, "forbidden")
	// Another org's applicant cannot use the grant, nor learn that it exists.
	p.refused("insurer-2", "POST", "/v1/jobs", job, 404, "not_found")

	// After the period: expired.
	clk.Set(time.Date(2027, 1, 1, 0, 0, 1, 0, time.UTC))
	p.refused("insurer-1", "POST", "/v1/jobs", job, 403, "grant_expired")
	var g api.Grant
	p.must("op-1", "GET", "/v1/grants/"+grant, nil, &g)
	if g.State != api.GrantExpired {
		t.Fatalf("a grant past its end reads as %s", g.State)
	}
	clk.Set(time.Date(2026, 6, 2, 0, 0, 0, 0, time.UTC))
	held := p.waitJob("insurer-1", p.submit("insurer-1", grant, byIncome).ID)
	if held.State != api.JobInReview {
		t.Fatalf("an L3 output is %s, want in_review", held.State)
	}
	p.must("op-1", "POST", "/v1/grants/"+grant+"/revoke", nil, nil)
	// Revocation ends the held output too: it is never released.
	if j := p.waitJob("insurer-1", held.ID); j.State != api.JobDenied || j.Error == nil || j.Error.Code != "grant_revoked" || j.Result != nil {
		t.Fatalf("a held job of a revoked grant is %+v", j)
	}
	p.refused("rev-1", "POST", "/v1/reviews/"+held.ID+"/approve", nil, 409, "conflict")
	p.refused("insurer-1", "POST", "/v1/jobs", job, 403, "grant_revoked")
	p.refused("op-1", "POST", "/v1/grants/"+grant+"/resume", nil, 409, "conflict")
}

// TestServerRefusesABundleWhoseTestsFail: an operator's bundle is loaded only if it compiles
// and its Rego tests pass; the error names the failing test.
func TestServerRefusesABundleWhoseTestsFail(t *testing.T) {
	dir := bundleWith(t, func(b []byte) []byte {
		return bytes.Replace(b, []byte(`"max_rows": 10000`), []byte(`"max_rows": 1`), 1)
	})
	ps, err := server.ParsePrincipals([]byte(principalsYAML))
	if err != nil {
		t.Fatal(err)
	}
	_, err = server.New(context.Background(), server.Config{DataDir: t.TempDir(), Principals: ps, PolicyDir: dir})
	if err == nil || !strings.Contains(err.Error(), "tests fail") || !strings.Contains(err.Error(), "data.cleanroom.") {
		t.Fatalf("a bundle with failing tests was not refused: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "broken.rego"), []byte("package cleanroom.x\nallow if {"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err = server.New(context.Background(), server.Config{DataDir: t.TempDir(), Principals: ps, PolicyDir: dir}); err == nil {
		t.Fatal("a bundle that does not compile was not refused")
	}
}

// TestPrincipalsFileIsChecked: bad principals files are refused without quoting tokens, and
// tokens authenticate only their principal.
func TestPrincipalsFileIsChecked(t *testing.T) {
	secret := "s3cret-token-abcdefgh"
	for name, doc := range map[string]string{
		"unknown role":   `principals: [{name: a, role: admin, org: o, token: "` + secret + `"}]`,
		"duplicate name": `principals: [{name: a, role: auditor, org: o, token: "` + secret + `"}, {name: a, role: auditor, org: o, token: "other-token-abcdefgh"}]`,
		"shared token":   `principals: [{name: a, role: auditor, org: o, token: "` + secret + `"}, {name: b, role: auditor, org: o, token: "` + secret + `"}]`,
		"short token":    `principals: [{name: a, role: auditor, org: o, token: "short"}]`,
		"both":           `principals: [{name: a, role: auditor, org: o, token: "` + secret + `", token_sha256: "00"}]`,
		"bad hash":       `principals: [{name: a, role: auditor, org: o, token_sha256: "xyz"}]`,
		"unknown key":    `principals: [{name: a, role: auditor, org: o, token: "` + secret + `", admin: true}]`,
		"empty":          `principals: []`,
	} {
		_, err := server.ParsePrincipals([]byte(doc))
		if err == nil {
			t.Errorf("%s: accepted", name)
		} else if strings.Contains(err.Error(), secret) {
			t.Errorf("%s: the error quotes the token: %v", name, err)
		}
	}
	tok, digest, err := server.NewToken()
	if err != nil {
		t.Fatal(err)
	}
	ps, err := server.ParsePrincipals([]byte(`principals:
  - {name: a, role: auditor, org: o, token_sha256: "` + digest + `"}
  - {name: b, role: operator, org: p, token: "` + secret + `"}`))
	if err != nil {
		t.Fatal(err)
	}
	if who, ok := ps.Authenticate(tok); !ok || who.Name != "a" {
		t.Fatalf("a hashed token authenticates as %+v, %v", who, ok)
	}
	if who, ok := ps.Authenticate(secret); !ok || who.Name != "b" {
		t.Fatalf("a clear token authenticates as %+v, %v", who, ok)
	}
	for _, bad := range []string{"", secret + "x", secret[:len(secret)-1], tok[:len(tok)-1]} {
		if _, ok := ps.Authenticate(bad); ok {
			t.Fatalf("token %q authenticated", bad)
		}
	}
}

// TestShutdownLeavesNothingHalfDone: jobs in flight when the server is told to stop finish
// (or stay queued, untouched); none is left running, the log verifies, and a restarted server
// runs the queued ones.
func TestShutdownLeavesNothingHalfDone(t *testing.T) {
	dataDir := t.TempDir()
	clk := &clock{now: time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)}
	p := start(t, dataDir, clk)
	grant := setupGrant(t, p, 8)
	var ids []string
	for i := range 6 {
		// Distinct queries with one filter: filters that differ by a few persons would rightly
		// be held for differencing.
		sql := fmt.Sprintf("SELECT district, COUNT(*) AS n, QUANTILE_CONT(cost, 0.%d) AS q FROM medical_visits GROUP BY district", i+1)
		ids = append(ids, p.submit("insurer-1", grant, sql).ID)
	}
	p.stop()

	p2 := start(t, dataDir, clk)
	var rep struct{ Problem string }
	p2.must("aud-1", "GET", "/v1/audit/verify", nil, &rep)
	if rep.Problem != "" {
		t.Fatalf("after shutdown the log has a problem: %s", rep.Problem)
	}
	for _, id := range ids {
		if j := p2.waitJob("insurer-1", id); j.State != api.JobReleased {
			t.Fatalf("job %s is %s (%+v) after a graceful shutdown and restart", id, j.State, j.Error)
		}
	}
}

// text GETs a plain-text audit route as who.
func (p *platform) text(who, path string) string {
	p.t.Helper()
	req, _ := http.NewRequest("GET", p.base+path, nil)
	req.Header.Set("Authorization", "Bearer "+token(who))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		p.t.Fatalf("GET %s as %s: %d %s", path, who, resp.StatusCode, b)
	}
	return string(b)
}

func unb64(t *testing.T, hs []string) []tlog.Hash {
	t.Helper()
	out := make([]tlog.Hash, len(hs))
	for i, h := range hs {
		b, err := base64.StdEncoding.DecodeString(h)
		if err != nil || len(b) != 32 {
			t.Fatalf("hash %q", h)
		}
		copy(out[i][:], b)
	}
	return out
}

// TestAuditProofsAndReceiptsOverHTTP: the public key, a signed checkpoint, inclusion and
// consistency proofs and a job's records with proofs all check out with public tools, and a
// released job's receipt verifies offline against the result with the public key alone.
func TestAuditProofsAndReceiptsOverHTTP(t *testing.T) {
	clk := &clock{now: time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)}
	p := start(t, t.TempDir(), clk)
	grant := setupGrant(t, p, 3)
	j := p.waitJob("insurer-1", p.submit("insurer-1", grant, byDistrict).ID)
	if j.State != api.JobReleased || j.Receipt == "" {
		t.Fatalf("a released job came without a receipt: %+v", j)
	}
	pub := strings.TrimSpace(p.text("insurer-1", "/v1/audit/pubkey")) // any role may fetch the key
	body, err := engine.VerifyReceipt([]byte(j.Receipt), j.Result, pub)
	if err != nil || body.Job != j.ID || body.Grant != grant {
		t.Fatalf("the receipt does not verify: %+v, %v", body, err)
	}
	var other api.Job
	p.must("op-1", "GET", "/v1/jobs/"+j.ID, nil, &other)
	if other.Receipt != "" {
		t.Fatal("the operator was shown the receipt (it carries the output digest of a result it may not read)")
	}

	cp1, err := provenance.ParseCheckpoint([]byte(p.text("aud-1", "/v1/audit/checkpoint")), pub)
	if err != nil {
		t.Fatal(err)
	}
	var inc api.InclusionProof
	p.must("aud-1", "GET", fmt.Sprintf("/v1/audit/proof/inclusion?index=%d&size=%d", body.LogIndex, cp1.Size), nil, &inc)
	if err := provenance.CheckInclusion(unb64(t, inc.Hashes), cp1.Size, cp1.Root, inc.Index, []byte(inc.Line)); err != nil {
		t.Fatalf("inclusion proof: %v", err)
	}
	p.refused("aud-1", "GET", fmt.Sprintf("/v1/audit/proof/inclusion?index=%d&size=%d", cp1.Size, cp1.Size), nil, 400, "invalid_request")
	p.refused("insurer-1", "GET", "/v1/audit/checkpoint", nil, 403, "forbidden")

	p.waitJob("insurer-1", p.submit("insurer-1", grant, "SELECT COUNT(*) AS n FROM medical_visits").ID)
	cp2, err := provenance.ParseCheckpoint([]byte(p.text("aud-1", "/v1/audit/checkpoint")), pub)
	if err != nil || cp2.Size <= cp1.Size {
		t.Fatalf("second checkpoint %+v, %v", cp2, err)
	}
	var cons api.ConsistencyProof
	p.must("aud-1", "GET", fmt.Sprintf("/v1/audit/proof/consistency?old=%d&new=%d", cp1.Size, cp2.Size), nil, &cons)
	if err := provenance.CheckConsistency(unb64(t, cons.Hashes), cp1.Size, cp1.Root, cp2.Size, cp2.Root); err != nil {
		t.Fatalf("consistency proof: %v", err)
	}

	var aj api.AuditJob
	p.must("aud-1", "GET", "/v1/audit/jobs/"+j.ID, nil, &aj)
	cp, err := provenance.ParseCheckpoint([]byte(aj.Checkpoint), pub)
	if err != nil || len(aj.Inclusion) != len(aj.Records) {
		t.Fatalf("audit job: %v, %d proofs for %d records", err, len(aj.Inclusion), len(aj.Records))
	}
	for i, e := range aj.Records {
		if err := provenance.CheckInclusion(unb64(t, aj.Inclusion[i]), cp.Size, cp.Root, e.Index, []byte(aj.Lines[i])); err != nil {
			t.Fatalf("record %d of the job: %v", e.Index, err)
		}
	}
}

// bundleWith copies the default policy bundle with its data.json edited.
func bundleWith(t *testing.T, edit func([]byte) []byte) string {
	t.Helper()
	return bundletest.Copy(t, func(data string) string { return string(edit([]byte(data))) })
}

// TestRateLimitPerGrant: the operator's limit of jobs per grant and hour refuses the job over
// it (free: nothing ran), and lapses an hour later.
func TestRateLimitPerGrant(t *testing.T) {
	bundle := bundleWith(t, func(b []byte) []byte {
		return bytes.Replace(b, []byte(`"max_jobs_per_grant_per_hour": 120`), []byte(`"max_jobs_per_grant_per_hour": 2`), 1)
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
	run := func(i int) api.Job {
		// Distinct queries with one filter, so none is answered from another's release and
		// none is held for differencing.
		return p.waitJob("insurer-1", p.submit("insurer-1", grant, fmt.Sprintf("SELECT COUNT(*) AS n, QUANTILE_CONT(cost, 0.%d) AS q FROM medical_visits", i+1)).ID)
	}
	for i := range 2 {
		if j := run(i); j.State != api.JobReleased {
			t.Fatalf("job %d within the limit is %s (%+v)", i, j.State, j.Error)
		}
	}
	var before api.Grant
	p.must("insurer-1", "GET", "/v1/grants/"+grant, nil, &before)
	j := run(2)
	if j.State != api.JobDenied || j.Error == nil || !strings.Contains(j.Error.Message, "rate_limited") {
		t.Fatalf("the job over the hourly limit is %s (%+v)", j.State, j.Error)
	}
	var after api.Grant
	p.must("insurer-1", "GET", "/v1/grants/"+grant, nil, &after)
	if after.Budget != before.Budget {
		t.Fatalf("a rate-limited job spent budget: %+v → %+v", before.Budget, after.Budget)
	}
	clk.Set(clk.Now().Add(2 * time.Hour))
	if j := run(3); j.State != api.JobReleased {
		t.Fatalf("an hour later a job is %s (%+v)", j.State, j.Error)
	}
}
