package main

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/c1b99f93/cleanroom/engine"
	"github.com/c1b99f93/cleanroom/engine/ledger"
	"github.com/c1b99f93/cleanroom/engine/provenance"
	"github.com/c1b99f93/cleanroom/server/api"
	"github.com/c1b99f93/cleanroom/server/client"
)

const cmdTestToken = "tok-cmd-7c1e-secret"

// seen is one request the fake server received.
type seen struct {
	method, path, query string
	body                []byte
}

// handler answers one route: it may inspect the request and returns a status and a document.
type handler func(r *http.Request, body []byte) (int, any)

// fakeServer serves canned API documents by "METHOD /path", checks every request carries the
// bearer token, and records what it received. An unexpected route fails the test.
type fakeServer struct {
	t      *testing.T
	url    string
	mu     sync.Mutex
	routes map[string]handler
	reqs   []seen
}

func newFakeServer(t *testing.T, routes map[string]handler) *fakeServer {
	t.Helper()
	fs := &fakeServer{t: t, routes: routes}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		fs.mu.Lock()
		fs.reqs = append(fs.reqs, seen{r.Method, r.URL.EscapedPath(), r.URL.RawQuery, body})
		h := fs.routes[r.Method+" "+r.URL.EscapedPath()]
		fs.mu.Unlock()
		if got := r.Header.Get("Authorization"); got != "Bearer "+cmdTestToken {
			t.Errorf("%s %s: Authorization %q, want the bearer token", r.Method, r.URL.Path, got)
		}
		status, doc := http.StatusNotFound, any(api.ErrorBody{Error: api.Error{Code: "not_found", Message: "no such route"}})
		if h == nil {
			t.Errorf("unexpected request %s %s", r.Method, r.URL)
		} else {
			status, doc = h(r, body)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(doc)
	}))
	t.Cleanup(srv.Close)
	fs.url = srv.URL
	return fs
}

func (fs *fakeServer) requests() []seen {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return append([]seen(nil), fs.reqs...)
}

// only returns the single request received, failing the test otherwise.
func (fs *fakeServer) only() seen {
	fs.t.Helper()
	reqs := fs.requests()
	if len(reqs) != 1 {
		fs.t.Fatalf("server received %d requests, want 1: %+v", len(reqs), reqs)
	}
	return reqs[0]
}

func ok(doc any) handler { return func(*http.Request, []byte) (int, any) { return http.StatusOK, doc } }

// runClientCmd runs the CLI with the client commands against server (via CLEANROOM_SERVER when
// server is not "") with the token from CLEANROOM_TOKEN, and returns stdout and stderr.
func runClientCmd(t *testing.T, server string, args ...string) (string, string, error) {
	t.Helper()
	t.Setenv(envToken, cmdTestToken)
	t.Setenv(envServer, server)
	root := &cobra.Command{Use: "cleanroom", SilenceUsage: true, SilenceErrors: true}
	addClientCommands(root)
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetIn(strings.NewReader(""))
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), errOut.String(), err
}

func jsonEqual(t *testing.T, got []byte, want string) {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(got, &x); err != nil {
		t.Fatalf("body is not JSON: %v: %s", err, got)
	}
	if err := json.Unmarshal([]byte(want), &y); err != nil {
		t.Fatalf("bad expectation %s: %v", want, err)
	}
	if !reflect.DeepEqual(x, y) {
		t.Errorf("body %s\nwant %s", got, want)
	}
}

func wantContains(t *testing.T, text string, parts ...string) {
	t.Helper()
	for _, p := range parts {
		if !strings.Contains(text, p) {
			t.Errorf("output lacks %q:\n%s", p, text)
		}
	}
}

// testResult is a released result with a group key and one aggregate per group.
func testResult() *engine.Result {
	north, south := "north", "south"
	return &engine.Result{Result: api.Result{Job: "j-1", Dataset: "visits",
		Columns: []api.ResultCol{{Name: "district", Kind: "group_key"}, {Name: "visits", Kind: "aggregate"}},
		Rows: [][]api.Cell{
			{{Key: &north}, {DP: &api.Released{Value: 120, CILow: 112, CIHigh: 128, Mechanism: "laplace", Epsilon: 1}}},
			{{Key: &south}, {DP: &api.Released{Value: 7.25, CILow: 4.75, CIHigh: 9.75, Mechanism: "laplace", Epsilon: 1}}},
		},
		Spent: api.Budget{Epsilon: 1}, Split: "visits: epsilon 1 (count)", Bounds: "1 group per person", LogIndex: 41}}
}

func releasedJob(t *testing.T) api.Job {
	t.Helper()
	raw, err := json.Marshal(testResult())
	if err != nil {
		t.Fatal(err)
	}
	return api.Job{ID: "j-1", State: api.JobReleased, Grant: "g-1", Kind: api.KindSQL, SQL: "SELECT ...", Result: raw}
}

// dataset add loads the spec and sends its source path made absolute against the spec file's
// folder, also when the spec is named by a relative path.
func TestCmdDatasetAddSendsSourcePathResolvedAgainstTheSpecFolder(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "specs"), 0o755); err != nil {
		t.Fatal(err)
	}
	spec := `name: visits
provider: health-bureau
grade: L2
privacy_unit: person_id
source: {kind: csv, path: data/visits.csv}
budget: {epsilon: 10, delta: 1e-6}
columns:
  person_id: {tags: [identifier]}
  district:  {tags: [quasi_identifier], domain: ["north", "south"]}
`
	if err := os.WriteFile(filepath.Join(dir, "specs", "visits.yaml"), []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
	fs := newFakeServer(t, map[string]handler{"POST /v1/datasets": ok(api.Registered{Name: "visits", Digest: "sha256:feed", Rows: 1000})})
	t.Chdir(dir)
	out, _, err := runClientCmd(t, fs.url, "dataset", "add", filepath.Join("specs", "visits.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var sent struct {
		Name   string `json:"name"`
		Source struct{ Kind, Path string }
	}
	if err := json.Unmarshal(fs.only().body, &sent); err != nil {
		t.Fatal(err)
	}
	abs, err := filepath.Abs(filepath.Join(dir, "specs", "data", "visits.csv"))
	if err != nil {
		t.Fatal(err)
	}
	if sent.Name != "visits" || sent.Source.Kind != "csv" || sent.Source.Path != abs {
		t.Errorf("sent %+v; want visits, csv, source path %s", sent, abs)
	}
	wantContains(t, out, "registered dataset visits: 1000 rows, digest sha256:feed", abs)
}

func TestCmdDatasetAddRefusesAnInvalidSpecWithoutCallingTheServer(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(path, []byte("name: Visits\nprovider: x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	fs := newFakeServer(t, nil)
	_, _, err := runClientCmd(t, fs.url, "dataset", "add", path)
	if err == nil || !strings.Contains(err.Error(), "invalid_spec") {
		t.Fatalf("error %v, want invalid_spec", err)
	}
	if n := len(fs.requests()); n != 0 {
		t.Errorf("%d requests sent for an invalid spec", n)
	}
}

func TestCmdDatasetListTableAndJSON(t *testing.T) {
	docs := api.Datasets{Datasets: []api.Dataset{
		{Name: "visits", Provider: "health-bureau", Grade: "L2", Domain: "platform", PrivacyUnit: "person_id", Rows: new(int64(1000)),
			Budget: &api.Budget{Epsilon: 10, Delta: 1e-6}},
		{Name: "districts", Provider: "civil-affairs", Grade: "L1", Domain: "platform", Public: true, Rows: new(int64(14))},
	}}
	fs := newFakeServer(t, map[string]handler{"GET /v1/datasets": ok(docs)})
	out, _, err := runClientCmd(t, fs.url, "dataset", "list")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 {
		t.Fatalf("want a header and 2 rows:\n%s", out)
	}
	wantContains(t, lines[0], "NAME", "GRADE", "ROWS")
	if f := strings.Fields(lines[1]); f[0] != "visits" || f[5] != "1000" || f[6] != "10" || f[7] != "1e-06" {
		t.Errorf("visits row %q", lines[1])
	}
	wantContains(t, lines[2], "districts", "(public table)")

	out, _, err = runClientCmd(t, fs.url, "dataset", "list", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var back api.Datasets
	if err := json.Unmarshal([]byte(out), &back); err != nil || len(back.Datasets) != 2 || back.Datasets[0].Budget.Epsilon != 10 {
		t.Errorf("--json printed %s (%v)", out, err)
	}
	if !strings.Contains(out, "\n  \"datasets\"") {
		t.Errorf("--json is not indented:\n%s", out)
	}
}

func TestCmdApplicationNewEncodesTheFlags(t *testing.T) {
	fs := newFakeServer(t, map[string]handler{"POST /v1/applications": ok(api.Application{ID: "a-1", State: api.ApplicationPending, Purpose: "claims"})})
	out, _, err := runClientCmd(t, fs.url, "application", "new", "--purpose", "claims", "--scenario", "insurance",
		"--datasets", "visits,residents", "--start", "2026-01-01", "--end", "2026-06-30T23:00:00Z",
		"--epsilon", "2.5", "--delta", "1e-6", "--kinds", "sql,verify")
	if err != nil {
		t.Fatal(err)
	}
	jsonEqual(t, fs.only().body, `{"purpose":"claims","scenario":"insurance","datasets":["visits","residents"],
		"start":"2026-01-01","end":"2026-06-30T23:00:00Z","epsilon":2.5,"delta":1e-6,"job_kinds":["sql","verify"]}`)
	wantContains(t, out, "a-1", "pending", "claims")
}

func TestCmdApplicationNewValidatesBeforeSending(t *testing.T) {
	fs := newFakeServer(t, nil)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--datasets", "visits", "--end", "2026-06-30", "--epsilon", "1"}, `"purpose", "scenario"`},
		{[]string{"--purpose", "p", "--scenario", "s", "--datasets", "visits", "--end", "30/06/2026", "--epsilon", "1"}, "--end"},
		{[]string{"--purpose", "p", "--scenario", "s", "--datasets", "visits", "--end", "2026-06-30", "--epsilon", "0"}, "--epsilon"},
		{[]string{"--purpose", "p", "--scenario", "s", "--datasets", "visits", "--end", "2026-06-30", "--epsilon", "1", "--delta", "1"}, "--delta"},
		{[]string{"--purpose", "p", "--scenario", "s", "--datasets", "visits", "--end", "2026-06-30", "--epsilon", "1", "--kinds", "shell"}, "--kinds"},
	} {
		_, _, err := runClientCmd(t, fs.url, append([]string{"application", "new"}, tc.args...)...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want one naming %s", tc.args, err, tc.want)
		}
	}
	if n := len(fs.requests()); n != 0 {
		t.Errorf("%d requests sent for invalid applications", n)
	}
}

// approve sends only the limits the operator set: an unset flag must not lower a budget to 0.
func TestCmdApplicationApproveSendsOnlyTheLimitsGiven(t *testing.T) {
	for _, tc := range []struct {
		args []string
		body string
	}{
		{nil, `{}`},
		{[]string{"--epsilon", "2"}, `{"epsilon":2}`},
		{[]string{"--delta", "0", "--end", "2026-03-31"}, `{"delta":0,"end":"2026-03-31"}`},
	} {
		fs := newFakeServer(t, map[string]handler{"POST /v1/applications/a-1/approve": ok(api.Approved{GrantID: "g-9"})})
		out, _, err := runClientCmd(t, fs.url, append([]string{"application", "approve", "a-1"}, tc.args...)...)
		if err != nil {
			t.Fatal(err)
		}
		jsonEqual(t, fs.only().body, tc.body)
		wantContains(t, out, "application a-1 approved: grant g-9")
	}
}

func TestCmdApplicationRejectSendsTheReason(t *testing.T) {
	fs := newFakeServer(t, map[string]handler{"POST /v1/applications/a-1/reject": ok(api.Application{ID: "a-1", State: api.ApplicationRejected, Reason: "too broad"})})
	if _, _, err := runClientCmd(t, fs.url, "application", "reject", "a-1"); err == nil || !strings.Contains(err.Error(), "reason") {
		t.Fatalf("reject without --reason: %v", err)
	}
	out, _, err := runClientCmd(t, fs.url, "application", "reject", "a-1", "--reason", "too broad", "--json")
	if err != nil {
		t.Fatal(err)
	}
	jsonEqual(t, fs.only().body, `{"reason":"too broad"}`)
	var a api.Application
	if err := json.Unmarshal([]byte(out), &a); err != nil || a.State != api.ApplicationRejected {
		t.Errorf("--json printed %s (%v)", out, err)
	}
}

func TestCmdGrantActionsPostToTheirRoutes(t *testing.T) {
	g := api.Grant{ID: "g-1", State: api.GrantSuspended, Org: "acme", Datasets: []string{"visits"},
		Budget: api.GrantBudget{EpsilonTotal: 5, EpsilonSpent: 1.5, DeltaTotal: 1e-5}}
	for _, verb := range []string{"suspend", "resume", "revoke"} {
		fs := newFakeServer(t, map[string]handler{"POST /v1/grants/g-1/" + verb: ok(g)})
		out, _, err := runClientCmd(t, fs.url, "grant", verb, "g-1", "--reason", "audit")
		if err != nil {
			t.Fatal(err)
		}
		jsonEqual(t, fs.only().body, `{"reason":"audit"}`)
		wantContains(t, out, "g-1", "suspended", "1.5 spent of 5 (3.5 left)")
	}
	fs := newFakeServer(t, map[string]handler{"GET /v1/grants": ok(api.Grants{Grants: []api.Grant{g}})})
	out, _, err := runClientCmd(t, fs.url, "grant", "list")
	if err != nil {
		t.Fatal(err)
	}
	wantContains(t, out, "EPSILON SPENT/TOTAL", "1.5/5")
}

// query submits the job, long-polls it, and prints the released result as a table: group keys,
// value and ± half the 95% interval, and a footer with mechanism, spend and split.
func TestCmdQueryPrintsTheReleasedResultAsATable(t *testing.T) {
	fs := newFakeServer(t, map[string]handler{
		"POST /v1/jobs": func(*http.Request, []byte) (int, any) {
			return http.StatusAccepted, api.Job{ID: "j-1", State: api.JobQueued}
		},
		"GET /v1/jobs/j-1": func(r *http.Request, _ []byte) (int, any) {
			if r.URL.Query().Get("wait") == "" {
				t.Errorf("GET %s does not long-poll", r.URL)
			}
			return http.StatusOK, releasedJob(t)
		},
	})
	sql := "SELECT district, COUNT(*) AS visits FROM visits GROUP BY district"
	out, errOut, err := runClientCmd(t, fs.url, "query", "--grant", "g-1", "--epsilon", "0.5", "--max-groups", "1",
		"--max-contributions", "5", sql)
	if err != nil {
		t.Fatal(err)
	}
	reqs := fs.requests()
	if len(reqs) != 2 || reqs[0].method != "POST" || reqs[1].path != "/v1/jobs/j-1" {
		t.Fatalf("requests %+v; want the submission then a poll", reqs)
	}
	jsonEqual(t, reqs[0].body, `{"grant":"g-1","kind":"sql","sql":"`+sql+`",
		"options":{"epsilon":0.5,"max_groups_contributed":1,"max_contributions_per_group":5}}`)
	lines := strings.Split(out, "\n")
	if f := strings.Fields(lines[0]); !reflect.DeepEqual(f, []string{"district", "visits", "±"}) {
		t.Errorf("header %q", lines[0])
	}
	if f := strings.Fields(lines[1]); !reflect.DeepEqual(f, []string{"north", "120", "±8"}) {
		t.Errorf("first row %q", lines[1])
	}
	if f := strings.Fields(lines[2]); !reflect.DeepEqual(f, []string{"south", "7.25", "±2.50"}) {
		t.Errorf("second row %q", lines[2])
	}
	wantContains(t, out, "2 row(s) released, job j-1", "mechanism: laplace (visits)",
		"spent: epsilon 1, delta 0", "budget split: visits: epsilon 1 (count)")
	wantContains(t, errOut, "submitted job j-1")
}

func TestCmdQueryJSONPrintsTheJobAndCSVTheFlatResult(t *testing.T) {
	routes := map[string]handler{
		// Released at once: the command must not poll.
		"POST /v1/jobs": func(*http.Request, []byte) (int, any) { return http.StatusAccepted, releasedJob(t) },
	}
	fs := newFakeServer(t, routes)
	out, _, err := runClientCmd(t, fs.url, "query", "--grant", "g-1", "--json", "SELECT 1")
	if err != nil {
		t.Fatal(err)
	}
	var j api.Job
	if err := json.Unmarshal([]byte(out), &j); err != nil {
		t.Fatalf("--json printed %s: %v", out, err)
	}
	var res engine.Result
	if err := json.Unmarshal(j.Result, &res); err != nil || j.ID != "j-1" || len(res.Rows) != 2 || res.Rows[0][1].DP.Value != 120 {
		t.Errorf("--json job %+v result %+v (%v)", j, res, err)
	}
	if n := len(fs.requests()); n != 1 {
		t.Errorf("%d requests for a job released at submission; want 1", n)
	}

	out, _, err = runClientCmd(t, fs.url, "query", "--grant", "g-1", "--csv", "SELECT 1")
	if err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil {
		t.Fatalf("--csv printed %q: %v", out, err)
	}
	want := [][]string{
		{"district", "visits", "visits_ci_low", "visits_ci_high", "visits_mechanism", "visits_epsilon", "visits_delta"},
		{"north", "120", "112", "128", "laplace", "1", "0"},
		{"south", "7.25", "4.75", "9.75", "laplace", "1", "0"},
	}
	if !reflect.DeepEqual(recs, want) {
		t.Errorf("--csv records %q\nwant %q", recs, want)
	}
}

func TestCmdQueryHeldForReviewExitsNonZeroNamingTheJob(t *testing.T) {
	fs := newFakeServer(t, map[string]handler{
		"POST /v1/jobs": ok(api.Job{ID: "j-5", State: api.JobQueued}),
		"GET /v1/jobs/j-5": ok(api.Job{ID: "j-5", State: api.JobInReview,
			Review: &api.JobReview{Required: 2, Reasons: []string{"small_group: a group has fewer than 10 units"}}}),
	})
	out, _, err := runClientCmd(t, fs.url, "query", "--grant", "g-1", "SELECT 1")
	if err == nil {
		t.Fatal("a held job exited zero")
	}
	wantContains(t, err.Error(), "j-5", "review")
	wantContains(t, out, "job j-5 is held for review", "2 approval(s) needed", "small_group")
}

func TestCmdQueryDeniedOrFailedReportsTheCode(t *testing.T) {
	for _, state := range []string{api.JobDenied, api.JobFailed} {
		fs := newFakeServer(t, map[string]handler{
			"POST /v1/jobs": ok(api.Job{ID: "j-6", State: api.JobRunning}),
			"GET /v1/jobs/j-6": ok(api.Job{ID: "j-6", State: state,
				Error: &api.Error{Code: "budget_exhausted", Message: "the budget of grant:g-1 cannot cover this job"}}),
		})
		out, _, err := runClientCmd(t, fs.url, "query", "--grant", "g-1", "SELECT 1")
		if err == nil {
			t.Fatalf("a %s job exited zero", state)
		}
		wantContains(t, err.Error(), "j-6", state, "budget_exhausted", "cannot cover this job")
		if out != "" {
			t.Errorf("a %s job printed a result: %q", state, out)
		}
	}
}

func TestCmdQueryReadsSQLFromStdin(t *testing.T) {
	fs := newFakeServer(t, map[string]handler{"POST /v1/jobs": ok(releasedJob(t))})
	t.Setenv(envToken, cmdTestToken)
	t.Setenv(envServer, fs.url)
	root := &cobra.Command{Use: "cleanroom", SilenceUsage: true, SilenceErrors: true}
	addClientCommands(root)
	root.SetOut(io.Discard)
	root.SetErr(io.Discard)
	root.SetIn(strings.NewReader("SELECT COUNT(*) AS n FROM visits\n"))
	root.SetArgs([]string{"query", "--grant", "g-1", "-"})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	var sent api.JobRequest
	if err := json.Unmarshal(fs.only().body, &sent); err != nil || sent.SQL != "SELECT COUNT(*) AS n FROM visits\n" {
		t.Errorf("sent %+v (%v)", sent, err)
	}
}

// A server error reaches the caller as a *client.Error with its code, through the command.
func TestCmdServerErrorsKeepTheirCode(t *testing.T) {
	fs := newFakeServer(t, map[string]handler{"GET /v1/grants/g-2": func(*http.Request, []byte) (int, any) {
		return http.StatusForbidden, api.ErrorBody{Error: api.Error{Code: "forbidden", Message: "grant g-2 belongs to another org"}}
	}})
	_, _, err := runClientCmd(t, fs.url, "grant", "show", "g-2")
	var e *client.Error
	if !errors.As(err, &e) || e.Code != "forbidden" || e.Status != http.StatusForbidden {
		t.Fatalf("error %v; want a forbidden *client.Error", err)
	}
}

func TestCmdJobShowWaitsAndPrintsTheResult(t *testing.T) {
	fs := newFakeServer(t, map[string]handler{"GET /v1/jobs/j-1": ok(releasedJob(t))})
	out, _, err := runClientCmd(t, fs.url, "job", "show", "j-1", "--wait", "5s")
	if err != nil {
		t.Fatal(err)
	}
	if q := fs.only().query; q != "wait=5s" {
		t.Errorf("query %q, want wait=5s", q)
	}
	wantContains(t, out, "state", "released", "north", "±8", "mechanism: laplace (visits)")

	fs = newFakeServer(t, map[string]handler{"GET /v1/jobs": ok(api.Jobs{Jobs: []api.Job{
		{ID: "j-2", State: api.JobDenied, Grant: "g-1", Error: &api.Error{Code: "identifier_in_output"}}}})})
	out, _, err = runClientCmd(t, fs.url, "job", "list")
	if err != nil {
		t.Fatal(err)
	}
	wantContains(t, out, "j-2", "denied", "identifier_in_output")
}

func TestCmdReviewDecisions(t *testing.T) {
	held := api.Job{ID: "j-3", State: api.JobInReview, Review: &api.JobReview{Required: 2,
		Reviews: []api.Review{{Reviewer: "rita", Org: "ethics", Decision: "approve"}}}}
	raw, _ := json.Marshal(testResult())
	fs := newFakeServer(t, map[string]handler{
		"GET /v1/reviews":              ok(api.Reviews{Reviews: []api.ReviewItem{{Job: held, Result: raw}}}),
		"POST /v1/reviews/j-3/approve": ok(held),
		"POST /v1/reviews/j-3/reject":  ok(api.Job{ID: "j-3", State: api.JobDenied, Error: &api.Error{Code: "review_rejected", Message: "rejected"}}),
	})
	out, _, err := runClientCmd(t, fs.url, "review", "list")
	if err != nil {
		t.Fatal(err)
	}
	wantContains(t, out, "j-3", "1/2", "north", "±8", "2 row(s) held for review, job j-1")

	if _, _, err := runClientCmd(t, fs.url, "review", "approve", "j-3"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := runClientCmd(t, fs.url, "review", "reject", "j-3"); err == nil {
		t.Error("reject without --reason accepted")
	}
	out, _, err = runClientCmd(t, fs.url, "review", "reject", "j-3", "--reason", "small groups")
	if err != nil {
		t.Fatal(err)
	}
	reqs := fs.requests()
	if len(reqs) != 3 {
		t.Fatalf("requests %+v; want list, approve, reject", reqs)
	}
	jsonEqual(t, reqs[1].body, `{"reason":""}`)
	if reqs[2].path != "/v1/reviews/j-3/reject" {
		t.Errorf("reject went to %s", reqs[2].path)
	}
	jsonEqual(t, reqs[2].body, `{"reason":"small groups"}`)
	wantContains(t, out, "denied", "review_rejected")
}

func TestCmdBudgetShowNeedsExactlyOneAccount(t *testing.T) {
	at := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	rep := api.BudgetReport{
		Balance: api.LedgerBalance{Account: "grant:g-1", Total: api.Budget{Epsilon: 5, Delta: 1e-5},
			Spent: api.Budget{Epsilon: 1.5}, Remaining: api.Budget{Epsilon: 3.5, Delta: 1e-5}},
		History: []api.LedgerEntry{{Job: "j-1", Account: "grant:g-1", Cost: api.Budget{Epsilon: 1.5}, State: ledger.StateDebited, CreatedAt: at}},
		Tighter: api.AccountingReport{Basic: api.Budget{Epsilon: 1.5}, Tighter: api.Budget{Epsilon: 1.2}, Method: "zcdp", Events: 3},
	}
	fs := newFakeServer(t, map[string]handler{
		"GET /v1/grants/g-1/budget":      ok(rep),
		"GET /v1/datasets/visits/budget": ok(rep),
	})
	out, _, err := runClientCmd(t, fs.url, "budget", "show", "--grant", "g-1")
	if err != nil {
		t.Fatal(err)
	}
	wantContains(t, out, "grant:g-1", "remaining", "epsilon 3.5", "tighter epsilon 1.2", "zcdp", "j-1", "debited")
	out, _, err = runClientCmd(t, fs.url, "budget", "show", "--dataset", "visits", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var back api.BudgetReport
	if err := json.Unmarshal([]byte(out), &back); err != nil || back.Tighter.Method != "zcdp" || len(back.History) != 1 {
		t.Errorf("--json printed %s (%v)", out, err)
	}
	for _, args := range [][]string{{}, {"--grant", "g-1", "--dataset", "visits"}} {
		if _, _, err := runClientCmd(t, fs.url, append([]string{"budget", "show"}, args...)...); err == nil {
			t.Errorf("budget show %v accepted", args)
		}
	}
	if reqs := fs.requests(); len(reqs) != 2 || reqs[1].path != "/v1/datasets/visits/budget" {
		t.Errorf("requests %+v", reqs)
	}
}

func TestCmdAuditVerifyAsksTheServerWithoutDataDir(t *testing.T) {
	fs := newFakeServer(t, map[string]handler{"GET /v1/audit/verify": ok(api.VerifyReport{Records: 12, Head: "ab12", FirstBad: -1})})
	out, _, err := runClientCmd(t, fs.url, "audit", "verify")
	if err != nil {
		t.Fatal(err)
	}
	wantContains(t, out, "provenance log ok: 12 records, head ab12")

	fs = newFakeServer(t, map[string]handler{"GET /v1/audit/verify": ok(api.VerifyReport{Records: 4, FirstBad: 4, Problem: "hash_mismatch"})})
	out, _, err = runClientCmd(t, fs.url, "audit", "verify", "--json")
	if err == nil || !strings.Contains(err.Error(), "hash_mismatch") {
		t.Fatalf("a corrupt log: error %v", err)
	}
	var rep api.VerifyReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil || rep.FirstBad != 4 {
		t.Errorf("--json printed %s (%v)", out, err)
	}
}

func TestCmdAuditShowPrintsATimeline(t *testing.T) {
	rec := func(typ string, data string) json.RawMessage {
		return json.RawMessage(`{"type":"` + typ + `","job":"j-1","time":"2026-03-01T10:00:00.5Z","data":` + data + `}`)
	}
	doc := api.AuditJob{Job: "j-1", Records: []api.AuditEntry{
		{Index: 7, Record: rec("job_submitted", `{"grant":"g-1","principal":{"name":"ana","role":"applicant","org":"acme"},"sql":"SELECT 1","options":{"epsilon":1}}`)},
		{Index: 9, Record: rec("policy_access", `{"result":"allow","reasons":[],"bundle_digest":"sha256:1","input":{"huge":true}}`)},
		{Index: 12, Record: rec("release", `{"output_digest":"sha256:beef","rows":2}`)},
	}}
	fs := newFakeServer(t, map[string]handler{"GET /v1/audit/jobs/j-1": ok(doc)})
	out, _, err := runClientCmd(t, fs.url, "audit", "show", "j-1")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 {
		t.Fatalf("want a header and 3 records:\n%s", out)
	}
	wantContains(t, lines[1], "7", "2026-03-01 10:00:00.500", "job_submitted", "grant=g-1", "principal=ana", "sql=SELECT 1")
	wantContains(t, lines[2], "9", "policy_access", "result=allow")
	wantContains(t, lines[3], "12", "release", "rows=2", "output_digest=sha256:beef")
	if strings.Contains(out, "huge") {
		t.Errorf("the policy input is summarized:\n%s", out)
	}
}

// The token comes from --token before CLEANROOM_TOKEN; without either, nothing is sent; and it
// never shows in help (it is not a flag default).
func TestCmdTokenFlagEnvAndHelp(t *testing.T) {
	var gotAuth []string
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		gotAuth = append(gotAuth, r.Header.Get("Authorization"))
		mu.Unlock()
		json.NewEncoder(w).Encode(api.Grants{})
	}))
	defer srv.Close()
	if _, _, err := runClientCmd(t, srv.URL, "grant", "list", "--token", "flag-token"); err != nil {
		t.Fatal(err)
	}
	if len(gotAuth) != 1 || gotAuth[0] != "Bearer flag-token" {
		t.Errorf("Authorization %q; want the --token value over the environment's", gotAuth)
	}

	root := &cobra.Command{Use: "cleanroom", SilenceUsage: true, SilenceErrors: true}
	addClientCommands(root)
	t.Setenv(envToken, "")
	t.Setenv(envServer, srv.URL)
	root.SetArgs([]string{"grant", "list"})
	root.SetOut(io.Discard)
	if err := root.Execute(); err == nil || !strings.Contains(err.Error(), envToken) {
		t.Errorf("no token: error %v, want one naming %s", err, envToken)
	}
	if len(gotAuth) != 1 {
		t.Errorf("a request was sent without a token")
	}

	out, _, err := runClientCmd(t, srv.URL, "query", "--help")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out, cmdTestToken) {
		t.Errorf("help shows the token:\n%s", out)
	}
	wantContains(t, out, "--server", "--token", "--output", "--json", "--csv", "Examples:")
}

func TestCmdOutputFlagValidation(t *testing.T) {
	fs := newFakeServer(t, nil)
	for _, args := range [][]string{
		{"grant", "list", "--output", "yaml"},
		{"grant", "list", "--output", "csv"}, // csv is a query format only
		{"job", "list", "--json", "--output", "table"},
		{"query", "--grant", "g", "--json", "--csv", "SELECT 1"},
	} {
		if _, _, err := runClientCmd(t, fs.url, args...); err == nil || !strings.Contains(err.Error(), "output") && !strings.Contains(err.Error(), "contradicts") {
			t.Errorf("%v: error %v, want an output error", args, err)
		}
	}
	if n := len(fs.requests()); n != 0 {
		t.Errorf("%d requests sent with bad output flags", n)
	}
}

// The offline verify still reads the log under --data-dir without asking any server.
func TestCmdAuditVerifyOfflineStillWorks(t *testing.T) {
	dir := t.TempDir()
	l, err := provenance.Open(filepath.Join(dir, "provenance.log"))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if _, err := l.Append(t.Context(), "j", &provenance.JobInterrupted{}); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	out, _, err := runClientCmd(t, "http://127.0.0.1:1", "audit", "verify", "--data-dir", dir)
	if err != nil {
		t.Fatal(err)
	}
	wantContains(t, out, "provenance log ok: 3 records")
}

// The table says how many rows were withheld as small groups when the result tells, and says
// nothing when it does not (the policy did not allow it) or none were.
func TestResultTableSaysHowManyRowsWereWithheld(t *testing.T) {
	key, two, none := "530102", 2, 0
	for _, tc := range []struct {
		suppressed *int
		want       string
	}{
		{&two, "1 row(s) released (2 more withheld: fewer privacy units than the policy's minimum)"},
		{&none, "1 row(s) released, job"},
		{nil, "1 row(s) released, job"},
	} {
		r := &engine.Result{Result: api.Result{Job: "job-1", Columns: []api.ResultCol{{Name: "district", Kind: "group_key"}},
			Rows: [][]api.Cell{{{Key: &key}}}, Suppressed: tc.suppressed}}
		var b strings.Builder
		if err := writeResultTable(&b, r, "released"); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(b.String(), tc.want) {
			t.Errorf("suppressed %v: table\n%s\nwant %q", tc.suppressed, b.String(), tc.want)
		}
	}
}

// A post-processed column prints its value and ± half its interval; an undefined value prints
// NULL and an unbounded interval ±∞, never NaN or a panic on a nil end.
func TestResultTablePrintsDerivedCells(t *testing.T) {
	key, v, lo, hi := "530102", 0.25, 0.2, 0.3
	r := &engine.Result{Result: api.Result{Job: "job-1",
		Columns: []api.ResultCol{{Name: "district", Kind: "group_key"}, {Name: "share", Kind: "derived"}, {Name: "ratio", Kind: "derived"}},
		Rows:    [][]api.Cell{{{Key: &key}, {Derived: &api.Derived{Value: &v, CILow: &lo, CIHigh: &hi}}, {Derived: &api.Derived{CILow: &lo}}}}}}
	var b strings.Builder
	if err := writeResultTable(&b, r, "released"); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"0.25", "±0.05", "NULL", "±∞"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("table\n%s\nwant %q", b.String(), want)
		}
	}
}

// The table states the bias of bounding with each share's 95% tolerance and warns, naming
// what to do, when any dropped-rows estimate passes the threshold (the bounds' model, which
// sees heavy units; the mean over units of their dropped fractions; the share of units that
// lost rows, which catches a heavy tail the mean misses); a cell at its clamping bound says so.
func TestResultTableWarnsWhenBoundingDropsMuch(t *testing.T) {
	key := "530102"
	model := 0.3
	r := &engine.Result{Result: api.Result{Job: "job-1", Columns: []api.ResultCol{{Name: "district", Kind: "group_key"}, {Name: "max", Kind: "aggregate"}},
		Rows: [][]api.Cell{{{Key: &key}, {DP: &api.Released{Value: 49990, CILow: 49000, CIHigh: 49990}, AtClampBound: "upper"}}},
		Bias: &api.Bias{Epsilon: 0.05, Units: 8000, UnitsWithDroppedRows: 0.1, UnitsWithDroppedRowsTolerance: 0.031, RowsDropped: 0.02, RowsDroppedTolerance: 0.012,
			ModelRowsDropped: &model,
			Clamped:          []api.ClampedShare{{Aggregate: "MAX(cost)", Lower: 0, Upper: 50000, Units: 0.081, UnitsTolerance: 0.025}},
			Chosen:           api.ChosenBounds{MaxGroupsContributed: 1, MaxContributionsPerGroup: 64, GroupsAutomatic: true, RowsAutomatic: true, MaxGroups: 32, MaxRows: 64}}}}
	table := func() string {
		var b strings.Builder
		if err := writeResultTable(&b, r, "released"); err != nil {
			t.Fatal(err)
		}
		return b.String()
	}
	out := table()
	for _, want := range []string{"49990 (at upper bound)", "10.0% ± 3.1% of units", "2.0% ± 1.2% of a unit's rows on average",
		"MAX(cost) clamped values of 8.1% ± 2.5% of units",
		"warning: contribution bounding dropped about 30% of all rows by the bounds' model (2.0% ± 1.2% of a unit's rows on average; rows of 10.0% ± 3.1% of units)",
		"chosen automatically within the operator's maxima (32 groups, 64 rows)",
		"warning: MAX(cost) clamped values of 8.1% ± 2.5% of units to [0, 50000]"} {
		if !strings.Contains(out, want) {
			t.Errorf("table\n%s\nwant %q", out, want)
		}
	}
	// The mean over units alone passing the threshold warns too, leading with it.
	r.Bias.ModelRowsDropped, r.Bias.Chosen.GroupsAutomatic, r.Bias.Chosen.RowsAutomatic = nil, false, false
	r.Bias.RowsDropped, r.Bias.Clamped = 0.081, nil
	out = table()
	for _, want := range []string{"warning: contribution bounding dropped 8.1% ± 1.2% of a unit's rows on average (rows of 10.0% ± 3.1% of units)",
		"raise max_groups_contributed (now 1) or max_contributions_per_group (now 64)"} {
		if !strings.Contains(out, want) {
			t.Errorf("table\n%s\nwant %q", out, want)
		}
	}
	// A share of units that lost rows above the threshold warns even when their mean dropped
	// fraction is small: the units that lose rows are the heavy ones.
	r.Bias.RowsDropped = 0.02
	if out := table(); !strings.Contains(out, "warning: contribution bounding dropped rows of 10.0% ± 3.1% of units (2.0% ± 1.2% of a unit's rows on average; units with many rows lose the most") {
		t.Errorf("no warning led by the share of units:\n%s", out)
	}
	r.Bias.UnitsWithDroppedRows = 0.03
	if out := table(); strings.Contains(out, "warning:") {
		t.Errorf("warned below the threshold:\n%s", out)
	}
	// A result released before tolerances were stated prints its shares without one.
	r.Bias.RowsDroppedTolerance, r.Bias.UnitsWithDroppedRowsTolerance = 0, 0
	if out := table(); !strings.Contains(out, "(2.0% of a unit's rows on average") || strings.Contains(out, "% ±") || strings.Contains(out, "tolerance") {
		t.Errorf("a share without a stated tolerance:\n%s", out)
	}
}
