package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/c1b99f93/cleanroom/catalog"
	"github.com/c1b99f93/cleanroom/errcode"
	"github.com/c1b99f93/cleanroom/server/api"
)

const testToken = "tok-3f9a-secret"

// recorded is one request as the test server saw it.
type recorded struct {
	method, path, query, auth, contentType string
	body                                   []byte
}

// recorder is an httptest server that records every request and answers with a canned
// status and document.
type recorder struct {
	srv    *httptest.Server
	mu     sync.Mutex
	reqs   []recorded
	status int
	answer []byte
}

func newRecorder(t *testing.T) *recorder {
	t.Helper()
	rec := &recorder{status: http.StatusOK, answer: []byte("{}")}
	rec.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rec.mu.Lock()
		rec.reqs = append(rec.reqs, recorded{r.Method, r.URL.EscapedPath(), r.URL.RawQuery,
			r.Header.Get("Authorization"), r.Header.Get("Content-Type"), body})
		status, answer := rec.status, rec.answer
		rec.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		w.Write(answer)
	}))
	t.Cleanup(rec.srv.Close)
	return rec
}

func (rec *recorder) serve(status int, doc any) {
	b, err := json.Marshal(doc)
	if err != nil {
		panic(err)
	}
	rec.mu.Lock()
	rec.status, rec.answer = status, b
	rec.mu.Unlock()
}

func (rec *recorder) last(t *testing.T) recorded {
	t.Helper()
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.reqs) == 0 {
		t.Fatal("no request reached the server")
	}
	return rec.reqs[len(rec.reqs)-1]
}

func (rec *recorder) count() int {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return len(rec.reqs)
}

func newTestClient(t *testing.T, base string, opts ...Option) *Client {
	t.Helper()
	c, err := New(base, testToken, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// sameJSON reports whether two JSON texts hold the same value.
func sameJSON(t *testing.T, a, b []byte) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Fatalf("not JSON: %v: %s", err, a)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatalf("not JSON: %v: %s", err, b)
	}
	return reflect.DeepEqual(x, y)
}

func ptr[T any](v T) *T { return &v }

func testSpec() *catalog.Spec {
	return &catalog.Spec{Name: "visits", Provider: "health-bureau", Grade: catalog.GradeL2, PrivacyUnit: "person_id",
		Source:  catalog.Source{Kind: catalog.SourceCSV, Path: "/data/visits.csv"},
		Budget:  catalog.Budget{Epsilon: 10, Delta: 1e-5},
		Columns: map[string]catalog.Column{"person_id": {Tags: []catalog.Tag{catalog.TagIdentifier}}}}
}

// Every method sends its route's method, path, query and JSON body with the bearer token, and
// decodes the answer into its typed document.
func TestEveryRouteEncodesItsRequestAndDecodesItsAnswer(t *testing.T) {
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	job := api.Job{ID: "j-1", State: api.JobReleased, Grant: "g-1", Kind: api.KindSQL, SQL: "SELECT 1",
		CreatedAt: at, Result: json.RawMessage(`{"job":"j-1","rows":[]}`)}
	grant := api.Grant{ID: "g-1", State: api.GrantSuspended, Datasets: []string{"visits"},
		Budget: api.GrantBudget{EpsilonTotal: 5, EpsilonSpent: 1.5}}
	app := api.Application{ID: "a-1", State: api.ApplicationPending, Datasets: []string{"visits"}, Start: at, End: at.AddDate(0, 6, 0)}
	budget := api.BudgetReport{
		Balance: api.LedgerBalance{Account: "grant:g-1", Total: api.Budget{Epsilon: 5}, Spent: api.Budget{Epsilon: 1.5}},
		History: []api.LedgerEntry{{Job: "j-1", Account: "grant:g-1", Cost: api.Budget{Epsilon: 1.5}, State: "debited", CreatedAt: at, UpdatedAt: at}},
		Tighter: api.AccountingReport{Method: "basic", Events: 1},
	}
	for _, tc := range []struct {
		name                string
		call                func(context.Context, *Client) (any, error)
		answer              any
		method, path, query string
		body                string // "" when no body is sent
	}{
		{name: "whoami", call: func(ctx context.Context, c *Client) (any, error) { return c.WhoAmI(ctx) },
			answer: api.Principal{Name: "ana", Role: "applicant", Org: "acme"}, method: "GET", path: "/v1/whoami"},
		{name: "register dataset", call: func(ctx context.Context, c *Client) (any, error) { return c.RegisterDataset(ctx, testSpec()) },
			answer: api.Registered{Name: "visits", Digest: "sha256:ab", Rows: 42}, method: "POST", path: "/v1/datasets",
			body: `{"name":"visits","provider":"health-bureau","grade":"L2","privacy_unit":"person_id",
				"source":{"kind":"csv","path":"/data/visits.csv"},"budget":{"epsilon":10,"delta":1e-5},
				"columns":{"person_id":{"tags":["identifier"]}}}`},
		{name: "datasets", call: func(ctx context.Context, c *Client) (any, error) { return c.Datasets(ctx) },
			answer: api.Datasets{Datasets: []api.Dataset{{Name: "visits", Rows: new(int64(42)), Columns: map[string]catalog.Column{}}}}, method: "GET", path: "/v1/datasets"},
		{name: "create application", call: func(ctx context.Context, c *Client) (any, error) {
			return c.CreateApplication(ctx, api.ApplicationRequest{Purpose: "p", Datasets: []string{"visits"}, Start: "2026-01-01", End: "2026-06-30", Epsilon: 2, JobKinds: []string{"sql"}})
		},
			answer: app, method: "POST", path: "/v1/applications",
			body: `{"purpose":"p","scenario":"","datasets":["visits"],"start":"2026-01-01","end":"2026-06-30","epsilon":2,"delta":0,"job_kinds":["sql"]}`},
		{name: "applications", call: func(ctx context.Context, c *Client) (any, error) { return c.Applications(ctx) },
			answer: api.Applications{Applications: []api.Application{app}}, method: "GET", path: "/v1/applications"},
		{name: "application", call: func(ctx context.Context, c *Client) (any, error) { return c.Application(ctx, "a-1") },
			answer: app, method: "GET", path: "/v1/applications/a-1"},
		{name: "approve application", call: func(ctx context.Context, c *Client) (any, error) {
			return c.ApproveApplication(ctx, "a-1", api.ApproveRequest{Epsilon: ptr(1.0)})
		},
			answer: api.Approved{GrantID: "g-1"}, method: "POST", path: "/v1/applications/a-1/approve", body: `{"epsilon":1}`},
		{name: "reject application", call: func(ctx context.Context, c *Client) (any, error) { return c.RejectApplication(ctx, "a-1", "too broad") },
			answer: app, method: "POST", path: "/v1/applications/a-1/reject", body: `{"reason":"too broad"}`},
		{name: "grants", call: func(ctx context.Context, c *Client) (any, error) { return c.Grants(ctx) },
			answer: api.Grants{Grants: []api.Grant{grant}}, method: "GET", path: "/v1/grants"},
		{name: "grant", call: func(ctx context.Context, c *Client) (any, error) { return c.Grant(ctx, "g-1") },
			answer: grant, method: "GET", path: "/v1/grants/g-1"},
		{name: "suspend grant", call: func(ctx context.Context, c *Client) (any, error) { return c.SuspendGrant(ctx, "g-1", "audit") },
			answer: grant, method: "POST", path: "/v1/grants/g-1/suspend", body: `{"reason":"audit"}`},
		{name: "resume grant", call: func(ctx context.Context, c *Client) (any, error) { return c.ResumeGrant(ctx, "g-1", "") },
			answer: grant, method: "POST", path: "/v1/grants/g-1/resume", body: `{"reason":""}`},
		{name: "revoke grant", call: func(ctx context.Context, c *Client) (any, error) { return c.RevokeGrant(ctx, "g-1", "misuse") },
			answer: grant, method: "POST", path: "/v1/grants/g-1/revoke", body: `{"reason":"misuse"}`},
		{name: "grant budget", call: func(ctx context.Context, c *Client) (any, error) { return c.Budget(ctx, BudgetGrant, "g-1") },
			answer: budget, method: "GET", path: "/v1/grants/g-1/budget"},
		{name: "dataset budget", call: func(ctx context.Context, c *Client) (any, error) { return c.Budget(ctx, BudgetDataset, "visits") },
			answer: budget, method: "GET", path: "/v1/datasets/visits/budget"},
		{name: "submit job (kind defaults to sql)", call: func(ctx context.Context, c *Client) (any, error) {
			return c.SubmitJob(ctx, api.JobRequest{Grant: "g-1", SQL: "SELECT COUNT(*) FROM visits", Options: api.JobOptions{Epsilon: 0.5, MaxGroupsContributed: 2}})
		},
			answer: job, method: "POST", path: "/v1/jobs",
			body: `{"grant":"g-1","kind":"sql","sql":"SELECT COUNT(*) FROM visits","options":{"epsilon":0.5,"max_groups_contributed":2}}`},
		{name: "upload wasm module", call: func(ctx context.Context, c *Client) (any, error) {
			return c.UploadWasmModule(ctx, "g-1", []byte("\x00asm"))
		},
			answer: api.WasmModule{Digest: "sha256:00", Bytes: 4}, method: "POST", path: "/v1/wasm/modules", query: "grant=g-1",
			body: `{"module":"AGFzbQ=="}`},
		{name: "explain with delta 0", call: func(ctx context.Context, c *Client) (any, error) {
			return c.Explain(ctx, api.JobRequest{Grant: "g-1", SQL: "SELECT COUNT(*) FROM visits", Options: api.JobOptions{Delta: new(0.0)}})
		},
			answer: api.Explanation{Dataset: "visits", Plan: json.RawMessage(`{}`), Cost: api.Budget{Epsilon: 1},
				Aggregates: []api.ExplainedAggregate{{Name: "count", Components: []api.NoiseComponent{}}},
				Policy:     api.PolicyDecision{Result: "allow", Reasons: []string{}}, Budget: []api.LedgerBalance{}},
			method: "POST", path: "/v1/explain",
			body: `{"grant":"g-1","kind":"sql","sql":"SELECT COUNT(*) FROM visits","options":{"delta":0}}`},
		{name: "dataset", call: func(ctx context.Context, c *Client) (any, error) { return c.Dataset(ctx, "visits") },
			answer: api.DatasetDetail{Name: "visits", Size: api.SizePublic, Rows: new(int64(42)), Columns: []api.DatasetColumn{{Name: "cost", Type: "double"}},
				Grants: []api.DatasetGrant{{ID: "g-1", State: "active"}}},
			method: "GET", path: "/v1/datasets/visits"},
		{name: "jobs", call: func(ctx context.Context, c *Client) (any, error) { return c.Jobs(ctx) },
			answer: api.Jobs{Jobs: []api.Job{job}}, method: "GET", path: "/v1/jobs"},
		{name: "job without wait", call: func(ctx context.Context, c *Client) (any, error) { return c.Job(ctx, "j-1", 0) },
			answer: job, method: "GET", path: "/v1/jobs/j-1"},
		{name: "job with wait", call: func(ctx context.Context, c *Client) (any, error) { return c.Job(ctx, "j-1", 30*time.Second) },
			answer: job, method: "GET", path: "/v1/jobs/j-1", query: "wait=30s"},
		{name: "reviews", call: func(ctx context.Context, c *Client) (any, error) { return c.Reviews(ctx) },
			answer: api.Reviews{Reviews: []api.ReviewItem{{Job: job, Result: json.RawMessage(`{"rows":[]}`)}}}, method: "GET", path: "/v1/reviews"},
		{name: "approve review", call: func(ctx context.Context, c *Client) (any, error) { return c.ApproveReview(ctx, "j-1", "fine") },
			answer: job, method: "POST", path: "/v1/reviews/j-1/approve", body: `{"reason":"fine"}`},
		{name: "reject review", call: func(ctx context.Context, c *Client) (any, error) { return c.RejectReview(ctx, "j-1", "small groups") },
			answer: job, method: "POST", path: "/v1/reviews/j-1/reject", body: `{"reason":"small groups"}`},
		{name: "audit verify", call: func(ctx context.Context, c *Client) (any, error) { return c.VerifyAudit(ctx) },
			answer: api.VerifyReport{Records: 12, Head: "ab12", FirstBad: -1}, method: "GET", path: "/v1/audit/verify"},
		{name: "audit job", call: func(ctx context.Context, c *Client) (any, error) { return c.AuditJob(ctx, "j-1") },
			answer: api.AuditJob{Job: "j-1", Records: []api.AuditEntry{{Index: 3, Prev: "aa", Hash: "bb", Record: json.RawMessage(`{"type":"release","job":"j-1"}`)}}},
			method: "GET", path: "/v1/audit/jobs/j-1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := newRecorder(t)
			rec.serve(http.StatusOK, tc.answer)
			got, err := tc.call(context.Background(), newTestClient(t, rec.srv.URL))
			if err != nil {
				t.Fatal(err)
			}
			r := rec.last(t)
			if r.method != tc.method || r.path != tc.path || r.query != tc.query {
				t.Errorf("request %s %s?%s, want %s %s?%s", r.method, r.path, r.query, tc.method, tc.path, tc.query)
			}
			if r.auth != "Bearer "+testToken {
				t.Errorf("Authorization %q, want the bearer token", r.auth)
			}
			if tc.body == "" {
				if len(r.body) != 0 {
					t.Errorf("sent a body %s, want none", r.body)
				}
			} else {
				if r.contentType != "application/json" {
					t.Errorf("Content-Type %q, want application/json", r.contentType)
				}
				if !sameJSON(t, r.body, []byte(tc.body)) {
					t.Errorf("body %s\nwant %s", r.body, tc.body)
				}
			}
			// The answer decodes into the route's type: re-encoded, it is the canned document.
			want, _ := json.Marshal(tc.answer)
			back, _ := json.Marshal(got)
			if !sameJSON(t, back, want) {
				t.Errorf("decoded %s\nwant %s", back, want)
			}
		})
	}
}

func TestHealthSendsNoToken(t *testing.T) {
	rec := newRecorder(t)
	rec.serve(http.StatusOK, api.Health{Status: "ok", PolicyDigest: "sha256:1"})
	h, err := newTestClient(t, rec.srv.URL).Health(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if r := rec.last(t); r.path != "/healthz" || r.auth != "" {
		t.Errorf("GET %s with Authorization %q; want /healthz without a token", r.path, r.auth)
	}
	if h.Status != "ok" || h.PolicyDigest != "sha256:1" {
		t.Errorf("health %+v", h)
	}
}

func TestErrorDocumentDecodesIntoError(t *testing.T) {
	rec := newRecorder(t)
	rec.serve(http.StatusUnprocessableEntity, api.ErrorBody{Error: api.Error{Code: "unsupported_sql", Message: "window functions are not supported", Position: ptr(17)}})
	_, err := newTestClient(t, rec.srv.URL).SubmitJob(context.Background(), api.JobRequest{Grant: "g-1", SQL: "SELECT rank() OVER ()"})
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %T %v is not a *client.Error", err, err)
	}
	if e.Status != http.StatusUnprocessableEntity || e.Code != "unsupported_sql" || e.Position == nil || *e.Position != 17 {
		t.Errorf("error %+v; want status 422, code unsupported_sql, position 17", e)
	}
	if got, want := e.Error(), "unsupported_sql: window functions are not supported"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

// A non-2xx answer without an error document (a proxy's page) is reported by its status, and
// the page's text is not echoed.
func TestAnswerWithoutErrorDocumentIsReportedByStatus(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusBadGateway)
		io.WriteString(w, "<html>upstream secret-host-7 down</html>")
	}))
	defer srv.Close()
	_, err := newTestClient(t, srv.URL).Grants(context.Background())
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %T %v is not a *client.Error", err, err)
	}
	if e.Status != http.StatusBadGateway || e.Code != string(errcode.HTTPStatus) || !strings.Contains(e.Message, "502") {
		t.Errorf("error %+v; want status 502, code %s, the status in the message", e, errcode.HTTPStatus)
	}
	if strings.Contains(err.Error(), "secret-host-7") {
		t.Errorf("error echoes the page: %v", err)
	}
}

// The token is only ever in the Authorization header: not in errors from the server, from the
// transport, or in the client's printed form.
func TestTokenNeverAppearsInErrorsOrPrintedClient(t *testing.T) {
	rec := newRecorder(t)
	rec.serve(http.StatusUnauthorized, api.ErrorBody{Error: api.Error{Code: "unauthenticated", Message: "unknown token"}})
	c := newTestClient(t, rec.srv.URL)
	_, err := c.WhoAmI(context.Background())
	if err == nil {
		t.Fatal("401 was not an error")
	}
	dead := newTestClient(t, "http://127.0.0.1:1") // nothing listens on port 1
	_, derr := dead.Grants(context.Background())
	if derr == nil {
		t.Fatal("a dead server was not an error")
	}
	for _, s := range []string{err.Error(), derr.Error(), fmt.Sprintf("%v %+v %#v %s", c, c, c, c)} {
		if strings.Contains(s, testToken) {
			t.Errorf("the token leaks: %s", s)
		}
	}
}

func TestNewRefusesUnusableServerURLsAndTokens(t *testing.T) {
	for _, tc := range []struct{ base, token string }{
		{"ftp://example.org", testToken},
		{"http://", testToken},
		{"example.org:8080", testToken},
		{"https://user:pw@example.org", testToken},
		{"https://example.org/?x=1", testToken},
		{"https://example.org", "tok\r\nX-Evil: 1"},
	} {
		if c, err := New(tc.base, tc.token); err == nil {
			t.Errorf("New(%q, %q) = %v, want an error", tc.base, tc.token, c)
		} else if strings.Contains(err.Error(), "pw") || strings.Contains(err.Error(), "Evil") {
			t.Errorf("New(%q) error leaks credentials: %v", tc.base, err)
		}
	}
	if _, err := New("http://127.0.0.1:8080", testToken, WithHTTPClient(nil)); err == nil {
		t.Error("WithHTTPClient(nil) accepted")
	}
}

// A base URL with a path prefix (behind a reverse proxy) keeps it, and IDs are escaped as one
// path segment.
func TestPathPrefixAndSegmentEscaping(t *testing.T) {
	rec := newRecorder(t)
	rec.serve(http.StatusOK, api.Job{ID: "x"})
	c := newTestClient(t, rec.srv.URL+"/cleanroom/")
	if _, err := c.Job(context.Background(), "a/b?c", 0); err != nil {
		t.Fatal(err)
	}
	if r := rec.last(t); r.path != "/cleanroom/v1/jobs/a%2Fb%3Fc" || r.query != "" {
		t.Errorf("path %q query %q; want /cleanroom/v1/jobs/a%%2Fb%%3Fc and no query", r.path, r.query)
	}
}

func TestInvalidArgumentsSendNothing(t *testing.T) {
	rec := newRecorder(t)
	c := newTestClient(t, rec.srv.URL)
	ctx := context.Background()
	if _, err := c.Budget(ctx, "org", "acme"); err == nil {
		t.Error("budget kind org accepted")
	}
	if _, err := c.Job(ctx, "", 0); err == nil {
		t.Error("empty job id accepted")
	}
	if _, err := c.RegisterDataset(ctx, nil); err == nil {
		t.Error("nil spec accepted")
	}
	if n := rec.count(); n != 0 {
		t.Errorf("%d requests sent for invalid arguments", n)
	}
}

// WaitJob long-polls with the configured wait and returns the first state other than queued or
// running.
func TestWaitJobLongPollsUntilTheJobLeavesRunning(t *testing.T) {
	const wait = 80 * time.Millisecond
	var n atomic.Int32
	var badQuery atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if q := r.URL.RawQuery; q != "wait="+wait.String() || r.URL.Path != "/v1/jobs/j-7" {
			badQuery.Store(r.URL.String())
		}
		j := api.Job{ID: "j-7", State: api.JobRunning}
		switch n.Add(1) {
		case 1:
			j.State = api.JobQueued
			time.Sleep(wait) // a long poll the server holds
		case 2:
			time.Sleep(wait)
		default:
			j.State = api.JobReleased
		}
		json.NewEncoder(w).Encode(j)
	}))
	defer srv.Close()
	c := newTestClient(t, srv.URL, WithPollWait(wait))
	start := time.Now()
	j, err := c.WaitJob(context.Background(), "j-7")
	if err != nil {
		t.Fatal(err)
	}
	if j.State != api.JobReleased || n.Load() != 3 {
		t.Errorf("state %s after %d polls; want released after 3", j.State, n.Load())
	}
	if u := badQuery.Load(); u != nil {
		t.Errorf("polled %s; want /v1/jobs/j-7?wait=%s", u, wait)
	}
	// The server held the first two polls, so the client did not add pauses of its own.
	if el := time.Since(start); el > 2*wait+2*c.pollDelay {
		t.Errorf("waited %v for two held polls of %v", el, wait)
	}
}

func TestWaitJobStopsAtReview(t *testing.T) {
	rec := newRecorder(t)
	rec.serve(http.StatusOK, api.Job{ID: "j-1", State: api.JobInReview, Review: &api.JobReview{Required: 2}})
	j, err := newTestClient(t, rec.srv.URL).WaitJob(context.Background(), "j-1")
	if err != nil {
		t.Fatal(err)
	}
	if j.State != api.JobInReview || rec.count() != 1 {
		t.Errorf("state %s after %d polls; want in_review after 1", j.State, rec.count())
	}
}

// A server that answers long polls at once (no long-poll support) is not hammered: the client
// pauses between polls, and gives up when its context ends.
func TestWaitJobDoesNotSpinOnAServerThatDoesNotHold(t *testing.T) {
	rec := newRecorder(t)
	rec.serve(http.StatusOK, api.Job{ID: "j-1", State: api.JobRunning})
	ctx, cancel := context.WithTimeout(context.Background(), 600*time.Millisecond)
	defer cancel()
	_, err := newTestClient(t, rec.srv.URL).WaitJob(ctx, "j-1")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error %v, want the context's deadline", err)
	}
	// Pauses of 250ms then 500ms: two polls, three at most with scheduling slack.
	if n := rec.count(); n < 1 || n > 3 {
		t.Errorf("%d polls in 600ms; want at most 3", n)
	}
}

func TestWaitJobReturnsServerErrors(t *testing.T) {
	rec := newRecorder(t)
	rec.serve(http.StatusNotFound, api.ErrorBody{Error: api.Error{Code: "not_found", Message: "no job j-9"}})
	_, err := newTestClient(t, rec.srv.URL).WaitJob(context.Background(), "j-9")
	var e *Error
	if !errors.As(err, &e) || e.Code != "not_found" || e.Status != http.StatusNotFound {
		t.Fatalf("error %v; want a not_found *client.Error", err)
	}
}
