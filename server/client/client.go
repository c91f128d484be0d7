// Package client is a Go client of cleanroom's HTTP API (/v1): one method per route, taking a
// context first and returning the typed documents of package server/api.
//
// Security invariant: the bearer token is only ever written to the Authorization header of
// requests to the configured server; it never appears in an error, a log line or a URL. A
// base URL carrying user:password credentials is refused for the same reason.
//
// A non-2xx answer becomes an *Error holding the HTTP status and the server's public error
// (code, message, position); branch on its Code with errors.As, never on the text:
//
//	j, err := c.SubmitJob(ctx, api.JobRequest{Grant: "g-1", Kind: api.KindSQL, SQL: sql})
//	var apiErr *client.Error
//	if errors.As(err, &apiErr) && apiErr.Code == "budget_exhausted" { ... }
package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/c1b99f93/cleanroom/catalog"
	"github.com/c1b99f93/cleanroom/errcode"
	"github.com/c1b99f93/cleanroom/server/api"
)

// Error is a non-2xx answer from the server: its HTTP status and its public error document.
// When the server answered without an error document (a proxy's 502, say), Code is
// errcode.HTTPStatus and Message names the status.
//
// The public error is embedded through the APIError alias (a field named Error would clash with
// the Error method), so its fields read directly: e.Code, e.Message, e.Position.
type Error struct {
	Status int
	APIError
}

// APIError is the server's public error document, api.Error.
type APIError = api.Error

// Error returns "code: message".
func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Budget report kinds for Client.Budget.
const (
	BudgetGrant   = "grant"
	BudgetDataset = "dataset"
)

// DefaultPollWait is how long one long-poll request of WaitJob asks the server to hold.
const DefaultPollWait = 30 * time.Second

// maxBody bounds any answer the client reads; a result is a bounded aggregate, far below it.
const maxBody = 256 << 20

// Client speaks to one cleanroom server as one principal. It is safe for concurrent use.
type Client struct {
	base      *url.URL
	token     string
	http      *http.Client
	pollWait  time.Duration
	pollDelay time.Duration // first pause after a long poll the server did not hold
	userAgent string
	roots     *x509.CertPool // WithCA: the only CAs trusted
}

// Option configures a Client.
type Option func(*Client) error

// WithHTTPClient makes the client send its requests through h (timeouts, proxies, TLS). Its
// Timeout, if set, must exceed the long-poll wait (DefaultPollWait unless WithPollWait).
func WithHTTPClient(h *http.Client) Option {
	return func(c *Client) error {
		if h == nil {
			return errors.New("client: WithHTTPClient: nil *http.Client")
		}
		c.http = h
		return nil
	}
}

// WithCA makes the client trust the certificate authorities in pemCerts (PEM), and only them,
// for an https server: a private CA the platform's certificate was issued by. It is refused
// together with WithHTTPClient, whose transport decides trust itself.
func WithCA(pemCerts []byte) Option {
	return func(c *Client) error {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pemCerts) {
			return errors.New("client: WithCA: no PEM certificate in the CA file")
		}
		c.roots = pool
		return nil
	}
}

// WithPollWait sets how long each long-poll request of WaitJob asks the server to hold
// (default DefaultPollWait).
func WithPollWait(d time.Duration) Option {
	return func(c *Client) error {
		if d <= 0 {
			return errors.New("client: WithPollWait: the wait must be positive")
		}
		c.pollWait = d
		return nil
	}
}

// WithUserAgent sets the User-Agent header of every request.
func WithUserAgent(ua string) Option {
	return func(c *Client) error {
		c.userAgent = ua
		return nil
	}
}

// New returns a client of the server at baseURL (http or https, optionally with a path prefix)
// that authenticates with the bearer token. An empty token sends no Authorization header, which
// only GET /healthz accepts.
func New(baseURL, token string, opts ...Option) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, errors.New("client: the server URL does not parse")
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, errors.New("client: the server URL must start with http:// or https://")
	case u.Host == "":
		return nil, errors.New("client: the server URL has no host")
	case u.User != nil:
		return nil, errors.New("client: the server URL must not hold credentials; use the token")
	case u.RawQuery != "" || u.Fragment != "":
		return nil, errors.New("client: the server URL must not have a query or fragment")
	}
	if strings.ContainsAny(token, "\r\n") {
		return nil, errors.New("client: the token holds a line break")
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	c := &Client{
		base:      u,
		token:     token,
		pollWait:  DefaultPollWait,
		pollDelay: 250 * time.Millisecond,
		userAgent: "cleanroom-client",
	}
	for _, o := range opts {
		if err := o(c); err != nil {
			return nil, err
		}
	}
	switch {
	case c.http != nil && c.roots != nil:
		return nil, errors.New("client: WithCA and WithHTTPClient together: set the CA in the HTTP client's transport")
	case c.http == nil:
		// A bound on a hung connection, well above one long poll; contexts bound each call.
		c.http = &http.Client{Timeout: 2*c.pollWait + 30*time.Second}
		if c.roots != nil {
			tr := http.DefaultTransport.(*http.Transport).Clone()
			tr.TLSClientConfig = &tls.Config{RootCAs: c.roots, MinVersion: tls.VersionTLS12}
			c.http.Transport = tr
		}
	}
	return c, nil
}

// String names the server, never the token.
func (c *Client) String() string { return "cleanroom client of " + c.base.String() }

// GoString is String, so %#v does not print the token either.
func (c *Client) GoString() string { return c.String() }

// path joins escaped segments under /v1 (or any prefix given as the first segment).
func path(segments ...string) string {
	var b strings.Builder
	for _, s := range segments {
		b.WriteByte('/')
		b.WriteString(url.PathEscape(s))
	}
	return b.String()
}

// do sends one request and decodes a 2xx answer into out (when not nil). in, when not nil, is
// sent as the JSON body.
func (c *Client) do(ctx context.Context, method, p string, query url.Values, auth bool, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("client: encode %s %s: %w", method, p, err)
		}
		body = bytes.NewReader(b)
	}
	u := c.base.String() + p
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return fmt.Errorf("client: %s %s: %w", method, p, err)
	}
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.userAgent != "" {
		req.Header.Set("User-Agent", c.userAgent)
	}
	if auth && c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		// The transport's error names the URL and the cause, never a header. The URL is said once.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("client: %s %s: %w", method, u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return decodeError(resp)
	}
	if out == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxBody))
		return nil
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxBody)).Decode(out); err != nil {
		return fmt.Errorf("client: decode the answer to %s %s: %w", method, p, err)
	}
	return nil
}

// decodeError turns a non-2xx answer into an *Error. Only a JSON error document with a code
// is trusted as the server's error; anything else is reported by its status alone, so a
// proxy's page is never echoed.
func decodeError(resp *http.Response) error {
	e := &Error{Status: resp.StatusCode}
	var doc api.ErrorBody
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if json.Unmarshal(data, &doc) == nil && doc.Error.Code != "" {
		e.APIError = doc.Error
		return e
	}
	e.Code = string(errcode.HTTPStatus)
	e.Message = fmt.Sprintf("the server answered %s without an error document", statusText(resp.StatusCode))
	return e
}

func statusText(code int) string {
	if t := http.StatusText(code); t != "" {
		return fmt.Sprintf("%d %s", code, t)
	}
	return fmt.Sprint(code)
}

func get[T any](ctx context.Context, c *Client, p string, query url.Values) (*T, error) {
	var out T
	if err := c.do(ctx, http.MethodGet, p, query, true, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

func post[T any](ctx context.Context, c *Client, p string, in any) (*T, error) {
	var out T
	if err := c.do(ctx, http.MethodPost, p, nil, true, in, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

func requireID(what, id string) error {
	if id == "" {
		return fmt.Errorf("client: empty %s", what)
	}
	return nil
}

// Health is GET /healthz; it sends no token.
func (c *Client) Health(ctx context.Context) (*api.Health, error) {
	var out api.Health
	if err := c.do(ctx, http.MethodGet, "/healthz", nil, false, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// WhoAmI is GET /v1/whoami: the principal the token maps to.
func (c *Client) WhoAmI(ctx context.Context) (*api.Principal, error) {
	return get[api.Principal](ctx, c, "/v1/whoami", nil)
}

// RegisterDataset is POST /v1/datasets. The spec's source path is read by the server, so it
// must be absolute (catalog.LoadFile resolves a relative one against the spec's folder).
func (c *Client) RegisterDataset(ctx context.Context, spec *catalog.Spec) (*api.Registered, error) {
	if spec == nil {
		return nil, errors.New("client: nil dataset spec")
	}
	return post[api.Registered](ctx, c, "/v1/datasets", spec)
}

// Datasets is GET /v1/datasets.
func (c *Client) Datasets(ctx context.Context) (*api.Datasets, error) {
	return get[api.Datasets](ctx, c, "/v1/datasets", nil)
}

// Dataset is GET /v1/datasets/{name}: a dataset's columns with types, tags, bounds and
// domains, its size and budget as the policy discloses them, and the caller's grants on it.
func (c *Client) Dataset(ctx context.Context, name string) (*api.DatasetDetail, error) {
	if err := requireID("dataset name", name); err != nil {
		return nil, err
	}
	return get[api.DatasetDetail](ctx, c, path("v1", "datasets", name), nil)
}

// CreateApplication is POST /v1/applications; the application starts pending.
func (c *Client) CreateApplication(ctx context.Context, req api.ApplicationRequest) (*api.Application, error) {
	return post[api.Application](ctx, c, "/v1/applications", req)
}

// Applications is GET /v1/applications.
func (c *Client) Applications(ctx context.Context) (*api.Applications, error) {
	return get[api.Applications](ctx, c, "/v1/applications", nil)
}

// Application is GET /v1/applications/{id}.
func (c *Client) Application(ctx context.Context, id string) (*api.Application, error) {
	if err := requireID("application id", id); err != nil {
		return nil, err
	}
	return get[api.Application](ctx, c, path("v1", "applications", id), nil)
}

// ApproveApplication is POST /v1/applications/{id}/approve; it answers with the new grant's id.
func (c *Client) ApproveApplication(ctx context.Context, id string, req api.ApproveRequest) (*api.Approved, error) {
	if err := requireID("application id", id); err != nil {
		return nil, err
	}
	return post[api.Approved](ctx, c, path("v1", "applications", id, "approve"), req)
}

// RejectApplication is POST /v1/applications/{id}/reject.
func (c *Client) RejectApplication(ctx context.Context, id, reason string) (*api.Application, error) {
	if err := requireID("application id", id); err != nil {
		return nil, err
	}
	return post[api.Application](ctx, c, path("v1", "applications", id, "reject"), api.ReasonRequest{Reason: reason})
}

// Grants is GET /v1/grants.
func (c *Client) Grants(ctx context.Context) (*api.Grants, error) {
	return get[api.Grants](ctx, c, "/v1/grants", nil)
}

// Grant is GET /v1/grants/{id}.
func (c *Client) Grant(ctx context.Context, id string) (*api.Grant, error) {
	if err := requireID("grant id", id); err != nil {
		return nil, err
	}
	return get[api.Grant](ctx, c, path("v1", "grants", id), nil)
}

// SuspendGrant is POST /v1/grants/{id}/suspend.
func (c *Client) SuspendGrant(ctx context.Context, id, reason string) (*api.Grant, error) {
	return c.grantAction(ctx, id, "suspend", reason)
}

// ResumeGrant is POST /v1/grants/{id}/resume.
func (c *Client) ResumeGrant(ctx context.Context, id, reason string) (*api.Grant, error) {
	return c.grantAction(ctx, id, "resume", reason)
}

// RevokeGrant is POST /v1/grants/{id}/revoke.
func (c *Client) RevokeGrant(ctx context.Context, id, reason string) (*api.Grant, error) {
	return c.grantAction(ctx, id, "revoke", reason)
}

func (c *Client) grantAction(ctx context.Context, id, action, reason string) (*api.Grant, error) {
	if err := requireID("grant id", id); err != nil {
		return nil, err
	}
	return post[api.Grant](ctx, c, path("v1", "grants", id, action), api.ReasonRequest{Reason: reason})
}

// RecordRedteam is POST /v1/grants/{id}/redteam (operators): it records a red-team report's
// summary in provenance and answers with the record's id and log index.
func (c *Client) RecordRedteam(ctx context.Context, grant string, req api.RedteamRequest) (*api.RedteamRecorded, error) {
	if err := requireID("grant id", grant); err != nil {
		return nil, err
	}
	return post[api.RedteamRecorded](ctx, c, path("v1", "grants", grant, "redteam"), req)
}

// Budget is GET /v1/grants/{name}/budget (kind BudgetGrant) or /v1/datasets/{name}/budget
// (kind BudgetDataset): the account's balance, history and accounting.
func (c *Client) Budget(ctx context.Context, kind, name string) (*api.BudgetReport, error) {
	var coll string
	switch kind {
	case BudgetGrant:
		coll = "grants"
	case BudgetDataset:
		coll = "datasets"
	default:
		return nil, fmt.Errorf("client: budget kind must be %q or %q", BudgetGrant, BudgetDataset)
	}
	if err := requireID(kind+" name", name); err != nil {
		return nil, err
	}
	return get[api.BudgetReport](ctx, c, path("v1", coll, name, "budget"), nil)
}

// SubmitJob is POST /v1/jobs; the job starts queued. An empty Kind is sent as api.KindSQL.
func (c *Client) SubmitJob(ctx context.Context, req api.JobRequest) (*api.Job, error) {
	if req.Kind == "" {
		req.Kind = api.KindSQL
	}
	return post[api.Job](ctx, c, "/v1/jobs", req)
}

// Explain is POST /v1/explain: the dry run of a job (the same request as SubmitJob) — its
// plan, cost, noise, partitions and the policy's decision. It is not a job: nothing is read,
// reserved or recorded. An empty Kind is sent as api.KindSQL.
func (c *Client) Explain(ctx context.Context, req api.JobRequest) (*api.Explanation, error) {
	if req.Kind == "" {
		req.Kind = api.KindSQL
	}
	return post[api.Explanation](ctx, c, "/v1/explain", req)
}

// Jobs is GET /v1/jobs.
func (c *Client) Jobs(ctx context.Context) (*api.Jobs, error) {
	return get[api.Jobs](ctx, c, "/v1/jobs", nil)
}

// Job is GET /v1/jobs/{id}. A positive wait long-polls: the server answers when the job
// leaves queued/running or after wait, whichever is first.
func (c *Client) Job(ctx context.Context, id string, wait time.Duration) (*api.Job, error) {
	if err := requireID("job id", id); err != nil {
		return nil, err
	}
	var q url.Values
	if wait > 0 {
		q = url.Values{"wait": {wait.String()}}
	}
	return get[api.Job](ctx, c, path("v1", "jobs", id), q)
}

// Pending reports whether a job state is one a job can still leave by itself (queued or
// running); in_review waits for people, not for the platform.
func Pending(state string) bool { return state == api.JobQueued || state == api.JobRunning }

// WaitJob long-polls GET /v1/jobs/{id} until the job is in a state other than queued or
// running (in_review, released, denied or failed), or ctx ends. If the server answers a long
// poll early without the job having moved on, the client pauses (growing to a few seconds)
// before asking again, so it never spins.
func (c *Client) WaitJob(ctx context.Context, id string) (*api.Job, error) {
	delay := c.pollDelay
	for {
		start := time.Now()
		j, err := c.Job(ctx, id, c.pollWait)
		if err != nil {
			return nil, err
		}
		if !Pending(j.State) {
			return j, nil
		}
		if time.Since(start) >= c.pollWait/2 {
			delay = c.pollDelay // the server held the request: poll again at once
			continue
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("client: waiting for job %s: %w", id, ctx.Err())
		case <-t.C:
		}
		delay = min(2*delay, 5*time.Second)
	}
}

// Reviews is GET /v1/reviews: the held jobs the caller may review, with their results.
func (c *Client) Reviews(ctx context.Context) (*api.Reviews, error) {
	return get[api.Reviews](ctx, c, "/v1/reviews", nil)
}

// ApproveReview is POST /v1/reviews/{job}/approve.
func (c *Client) ApproveReview(ctx context.Context, job, reason string) (*api.Job, error) {
	return c.review(ctx, job, "approve", reason)
}

// RejectReview is POST /v1/reviews/{job}/reject.
func (c *Client) RejectReview(ctx context.Context, job, reason string) (*api.Job, error) {
	return c.review(ctx, job, "reject", reason)
}

func (c *Client) review(ctx context.Context, job, decision, reason string) (*api.Job, error) {
	if err := requireID("job id", job); err != nil {
		return nil, err
	}
	return post[api.Job](ctx, c, path("v1", "reviews", job, decision), api.ReasonRequest{Reason: reason})
}

// VerifyAudit is GET /v1/audit/verify: the server's check of the provenance log's hash chain.
// A corrupt log is a report with a Problem, not an error.
func (c *Client) VerifyAudit(ctx context.Context) (*api.VerifyReport, error) {
	return get[api.VerifyReport](ctx, c, "/v1/audit/verify", nil)
}

// AuditJob is GET /v1/audit/jobs/{id}: the job's provenance records.
func (c *Client) AuditJob(ctx context.Context, id string) (*api.AuditJob, error) {
	if err := requireID("job id", id); err != nil {
		return nil, err
	}
	return get[api.AuditJob](ctx, c, path("v1", "audit", "jobs", id), nil)
}

// Replay asks the server to replay a job from its provenance (POST /v1/audit/jobs/{id}/replay).
func (c *Client) Replay(ctx context.Context, id string) (*api.ReplayReport, error) {
	if err := requireID("job id", id); err != nil {
		return nil, err
	}
	return post[api.ReplayReport](ctx, c, path("v1", "audit", "jobs", id, "replay"), nil)
}

// PublicKey is GET /v1/audit/pubkey: the platform's verifier key (C2SP note form). Auditors
// keep it out of band; receipts, checkpoints and archives are checked with it.
func (c *Client) PublicKey(ctx context.Context) (string, error) {
	b, err := c.text(ctx, "/v1/audit/pubkey")
	return strings.TrimSpace(string(b)), err
}

// Checkpoint is GET /v1/audit/checkpoint: the latest signed checkpoint note.
func (c *Client) Checkpoint(ctx context.Context) ([]byte, error) {
	return c.text(ctx, "/v1/audit/checkpoint")
}

// text GETs a plain-text route.
func (c *Client) text(ctx context.Context, p string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base.String()+p, nil)
	if err != nil {
		return nil, fmt.Errorf("client: GET %s: %w", p, err)
	}
	req.Header.Set("Accept", "text/plain")
	if c.userAgent != "" {
		req.Header.Set("User-Agent", c.userAgent)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("client: GET %s: %w", p, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, decodeError(resp)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return nil, fmt.Errorf("client: GET %s: %w", p, err)
	}
	return b, nil
}
