package server_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/c1b99f93/cleanroom/engine/provenance"
	"github.com/c1b99f93/cleanroom/errcode"
	"github.com/c1b99f93/cleanroom/server"
	"github.com/c1b99f93/cleanroom/server/api"
)

// startLimited runs a server over a fresh data directory with the config mod changes (limits,
// TLS, logger) until the test ends.
func startLimited(t *testing.T, mod func(*server.Config)) *platform {
	t.Helper()
	ps, err := server.ParsePrincipals([]byte(principalsYAML))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfg := server.Config{DataDir: dir, Principals: ps, Logger: slog.New(slog.NewTextHandler(os.Stderr, nil))}
	mod(&cfg)
	srv, err := server.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return serveOn(t, srv, dir)
}

func (p *platform) addr() string { return strings.TrimPrefix(p.base, "http://") }

// rawRequest opens a connection from the loopback address local (empty: any) and writes head,
// a request's start line and headers without the blank line that ends them.
func rawConn(t *testing.T, p *platform, local string) net.Conn {
	t.Helper()
	d := net.Dialer{}
	if local != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(local)}
	}
	c, err := d.Dial("tcp", p.addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// answer reads one HTTP answer from c, giving up after limit (a generous bound; the server's
// timeouts under test are much shorter or much longer than it).
func answer(t *testing.T, c net.Conn, limit time.Duration) (*http.Response, api.ErrorBody) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(limit))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	defer resp.Body.Close()
	var e api.ErrorBody
	raw, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(raw, &e)
	return resp, e
}

// getFrom sends GET path from the loopback address local on a connection of its own.
func getFrom(t *testing.T, p *platform, local, path, who string) (int, string, http.Header) {
	t.Helper()
	c := rawConn(t, p, local)
	auth := ""
	if who != "" {
		auth = "Authorization: Bearer " + token(who) + "\r\n"
	}
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\n%sConnection: close\r\n\r\n", path, auth)
	resp, e := answer(t, c, 20*time.Second)
	return resp.StatusCode, e.Error.Code, resp.Header
}

// TestSlowBodyIsCutOffByTheReadTimeout: an authenticated client that sends half of its body
// and then nothing loses the connection when the read timeout ends, instead of holding it.
func TestSlowBodyIsCutOffByTheReadTimeout(t *testing.T) {
	p := startLimited(t, func(c *server.Config) { c.Limits.ReadTimeout = 300 * time.Millisecond })
	c := rawConn(t, p, "")
	fmt.Fprintf(c, "POST /v1/applications HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"purpose\": \"", token("insurer-1"))
	// Whatever the server answers (a 400 for the body cut short, or nothing), it must then
	// close the connection; a connection still open after 20 s was not cut off.
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	_, err := io.Copy(io.Discard, c)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("the server still holds the connection of a client that sent half a body")
	}
}

// TestUnauthenticatedRequestIsAnswered401WithoutReadingItsBody: a request without a valid
// token is answered 401 from its headers, and the connection is closed rather than drained:
// with a read timeout of a minute, the 401 comes while the client still owes most of its body.
// A body announced over the limit is refused 413 request_too_large just as early.
func TestUnauthenticatedRequestIsAnswered401WithoutReadingItsBody(t *testing.T) {
	p := startLimited(t, func(c *server.Config) { c.Limits.ReadTimeout = time.Minute })
	c := rawConn(t, p, "")
	// 100 KiB: under Go's own post-handler drain limit (256 KiB), so only the server's choice
	// to close keeps it from waiting for the rest.
	fmt.Fprintf(c, "POST /v1/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer not-a-token-at-all-000\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n{\"grant\": \"", 100<<10)
	resp, e := answer(t, c, 20*time.Second)
	if resp.StatusCode != http.StatusUnauthorized || e.Error.Code != "unauthenticated" {
		t.Fatalf("got %d %q, want 401 unauthenticated", resp.StatusCode, e.Error.Code)
	}
	if !resp.Close {
		t.Error("the 401 to a request whose body was not read does not close the connection")
	}

	c2 := rawConn(t, p, "")
	fmt.Fprintf(c2, "POST /v1/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Length: %d\r\n\r\n{", token("insurer-1"), 64<<20)
	resp, e = answer(t, c2, 20*time.Second)
	if resp.StatusCode != http.StatusRequestEntityTooLarge || e.Error.Code != "request_too_large" {
		t.Fatalf("a 64 MiB body: got %d %q, want 413 request_too_large", resp.StatusCode, e.Error.Code)
	}
}

// TestConnectionCapPerAddressKeepsHealthzAnswered: with a cap of 50 connections per address,
// 200 idle connections from one address hold 50; a further API request from that address is
// answered 503 unavailable with a retry hint, /healthz from the same address is still
// answered 200, and another address is served as usual. When the flood ends, the address is
// served again.
func TestConnectionCapPerAddressKeepsHealthzAnswered(t *testing.T) {
	p := startLimited(t, func(c *server.Config) {
		c.Limits.MaxConnsPerAddr = 50
		c.Limits.OverflowConns = 8
		c.Limits.ReadHeaderTimeout = time.Minute // the flood stays for the whole test
		c.Limits.OverflowTimeout = time.Minute
	})
	var flood []net.Conn
	for range 200 {
		flood = append(flood, rawConn(t, p, "127.0.0.1"))
	}
	// The last of the flood is in the overflow pool once the server has accepted it; a request
	// on it shows the server got that far.
	if status, code, h := getFrom(t, p, "127.0.0.1", "/v1/whoami", "insurer-1"); status != http.StatusServiceUnavailable || code != "unavailable" || h.Get("Retry-After") == "" {
		t.Fatalf("an API request over the cap: got %d %q (Retry-After %q), want 503 unavailable with Retry-After", status, code, h.Get("Retry-After"))
	}
	for i := range 5 {
		status, _, _ := getFrom(t, p, "127.0.0.1", "/healthz", "")
		if status != http.StatusOK {
			t.Fatalf("/healthz #%d under a flood from its own address: %d, want 200", i, status)
		}
	}
	if status, code, _ := getFrom(t, p, "127.0.0.2", "/v1/whoami", "insurer-1"); status != http.StatusOK {
		t.Fatalf("another address during the flood: %d %q, want 200", status, code)
	}
	for _, c := range flood {
		c.Close()
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		status, _, _ := getFrom(t, p, "127.0.0.1", "/v1/whoami", "insurer-1")
		if status == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the flood closed, the address is still refused (%d)", status)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestTotalConnectionCapAnswersOthersFromTheOverflowPool: the total cap holds across
// addresses: with 10 connections in all held by one address, another address gets 503 for the
// API and 200 for /healthz.
func TestTotalConnectionCapAnswersOthersFromTheOverflowPool(t *testing.T) {
	p := startLimited(t, func(c *server.Config) {
		c.Limits.MaxConns = 10
		c.Limits.ReadHeaderTimeout = time.Minute
	})
	for range 10 {
		c := rawConn(t, p, "127.0.0.1")
		fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n") // served, then kept alive
		if resp, _ := answer(t, c, 20*time.Second); resp.StatusCode != http.StatusOK {
			t.Fatalf("within the cap: %d", resp.StatusCode)
		}
	}
	if status, code, _ := getFrom(t, p, "127.0.0.3", "/v1/whoami", "insurer-1"); status != http.StatusServiceUnavailable || code != "unavailable" {
		t.Fatalf("over the total cap: got %d %q, want 503 unavailable", status, code)
	}
	if status, _, _ := getFrom(t, p, "127.0.0.3", "/healthz", ""); status != http.StatusOK {
		t.Fatalf("/healthz over the total cap: %d, want 200", status)
	}
}

// TestAuthenticationFailuresBackOffPerAddress: after the free failures, an address is answered
// 429 rate_limited with Retry-After on authenticated routes — even with a valid token — while
// another address and /healthz are unaffected.
func TestAuthenticationFailuresBackOffPerAddress(t *testing.T) {
	p := startLimited(t, func(c *server.Config) {
		c.Limits.AuthFailuresFree = 3
		c.Limits.AuthBackoff = time.Hour
		c.Limits.AuthBackoffMax = 2 * time.Hour
	})
	for i := range 4 {
		if status, code, _ := getFrom(t, p, "127.0.0.1", "/v1/whoami", "nobody-at-all"); status != http.StatusUnauthorized {
			t.Fatalf("failure #%d: got %d %q, want 401", i+1, status, code)
		}
	}
	status, code, h := getFrom(t, p, "127.0.0.1", "/v1/whoami", "insurer-1")
	if status != http.StatusTooManyRequests || code != "rate_limited" {
		t.Fatalf("after 4 failures (3 free): got %d %q, want 429 rate_limited", status, code)
	}
	if secs, err := strconv.Atoi(h.Get("Retry-After")); err != nil || secs < 1 {
		t.Fatalf("Retry-After %q, want a positive number of seconds", h.Get("Retry-After"))
	}
	if status, _, _ := getFrom(t, p, "127.0.0.1", "/healthz", ""); status != http.StatusOK {
		t.Fatalf("/healthz from the backed-off address: %d", status)
	}
	if status, code, _ := getFrom(t, p, "127.0.0.2", "/v1/whoami", "insurer-1"); status != http.StatusOK {
		t.Fatalf("another address: %d %q, want 200", status, code)
	}
}

// deniedRecords reads the log's request_denied and requests_denied records.
func deniedRecords(t *testing.T, dataDir string) (single int, summaries []*provenance.RequestsDenied) {
	t.Helper()
	ents, err := provenance.Read(filepath.Join(dataDir, "provenance.log"), func(typ, _ string) bool {
		return typ == provenance.TypeRequestDenied || typ == provenance.TypeRequestsDenied
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		r, err := e.Decode()
		if err != nil {
			t.Fatal(err)
		}
		switch ev := r.Event.(type) {
		case *provenance.RequestDenied:
			single++
		case *provenance.RequestsDenied:
			summaries = append(summaries, ev)
		}
	}
	return single, summaries
}

// TestDeniedRequestsAreRecordedAsOneSummaryPerWindow: N forbidden reads by one principal
// become one requests_denied record with count N (written at shutdown, the window still open),
// not N records; it says who, what and when.
func TestDeniedRequestsAreRecordedAsOneSummaryPerWindow(t *testing.T) {
	p := startLimited(t, func(*server.Config) {})
	const n = 40
	for range n {
		if status, code := p.do("insurer-1", "GET", "/v1/audit/verify", nil, nil); status != http.StatusForbidden {
			t.Fatalf("got %d %q, want 403", status, code)
		}
	}
	p.do("aud-1", "GET", "/v1/whoami", nil, nil) // allowed: counted nowhere
	p.stop()
	single, sums := deniedRecords(t, p.dataDir)
	if single != 0 || len(sums) != 1 {
		t.Fatalf("%d request_denied and %d requests_denied records, want 0 and 1", single, len(sums))
	}
	s := sums[0]
	if s.Principal.Name != "insurer-1" || s.Total != n || len(s.Counts) != 1 || s.Counts[0].Count != n ||
		s.Counts[0].Code != "forbidden" || s.Counts[0].Action == "" || len(s.Counts[0].Reasons) == 0 || s.From.IsZero() || s.Until.Before(s.From) {
		t.Fatalf("summary %+v, want insurer-1's %d forbidden %s with reasons and a window", s, n, "audit reads")
	}
}

// TestDeniedSummaryIsWrittenWhenItsWindowEnds: a window's summary is written when the window
// ends, while the server runs; the next denials open the next window.
func TestDeniedSummaryIsWrittenWhenItsWindowEnds(t *testing.T) {
	p := startLimited(t, func(c *server.Config) { c.Limits.DeniedWindow = 200 * time.Millisecond })
	for range 7 {
		p.do("insurer-1", "GET", "/v1/audit/verify", nil, nil)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, sums := deniedRecords(t, p.dataDir); len(sums) == 1 {
			if sums[0].Total != 7 {
				t.Fatalf("first window's total %d, want 7", sums[0].Total)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the window's summary was not written while the server ran")
		}
		time.Sleep(50 * time.Millisecond)
	}
	for range 3 {
		p.do("insurer-1", "GET", "/v1/audit/verify", nil, nil)
	}
	p.stop()
	if _, sums := deniedRecords(t, p.dataDir); len(sums) != 2 || sums[1].Total != 3 {
		t.Fatalf("got %d summaries (%+v), want 2, the second of 3", len(sums), sums)
	}
}

// TestDeniedRequestsAreRateLimitedPerPrincipal: a principal that used up its denied-request
// bucket is answered 429 rate_limited (with Retry-After) on every route until a token comes
// back, and the refusals are counted in its summary; another principal is unaffected.
func TestDeniedRequestsAreRateLimitedPerPrincipal(t *testing.T) {
	p := startLimited(t, func(c *server.Config) {
		c.Limits.DeniedBurst = 5
		c.Limits.DeniedPerMinute = 1
	})
	for i := range 5 {
		if status, code := p.do("insurer-1", "GET", "/v1/audit/verify", nil, nil); status != http.StatusForbidden {
			t.Fatalf("denial #%d: %d %q, want 403", i+1, status, code)
		}
	}
	if status, code := p.do("insurer-1", "GET", "/v1/audit/verify", nil, nil); status != http.StatusTooManyRequests || code != "rate_limited" {
		t.Fatalf("after the burst: %d %q, want 429 rate_limited", status, code)
	}
	status, code, h := getFrom(t, p, "", "/v1/whoami", "insurer-1")
	if status != http.StatusTooManyRequests || code != "rate_limited" || h.Get("Retry-After") == "" {
		t.Fatalf("an allowed route after the burst: %d %q (Retry-After %q), want 429 rate_limited with Retry-After", status, code, h.Get("Retry-After"))
	}
	if status, code := p.do("insurer-2", "GET", "/v1/whoami", nil, nil); status != http.StatusOK {
		t.Fatalf("another principal: %d %q", status, code)
	}
	p.stop()
	_, sums := deniedRecords(t, p.dataDir)
	if len(sums) != 1 || sums[0].Total != 7 {
		t.Fatalf("summaries %+v, want one of 7 requests", sums)
	}
	byCode := map[string]int64{}
	for _, l := range sums[0].Counts {
		byCode[l.Code] += l.Count
	}
	if byCode["forbidden"] != 5 || byCode["rate_limited"] != 2 {
		t.Fatalf("counts by code %v, want 5 forbidden and 2 rate_limited", byCode)
	}
}

// TestRefusedSQLIsBoundedLikeDenials: SQL the gate refuses is recorded one request_refused
// each (its code, position and SQL digest), but each takes a token of the principal's
// denied-request bucket, so past the burst the principal is answered 429 rate_limited and the
// log grows by a counted summary, not by one record per request.
func TestRefusedSQLIsBoundedLikeDenials(t *testing.T) {
	p := startLimited(t, func(c *server.Config) {
		c.Limits.DeniedBurst = 4
		c.Limits.DeniedPerMinute = 1
		c.ImportRoots = importRoots(t)
	})
	grant := setupGrant(t, p, 8)
	bad := api.JobRequest{Grant: grant, SQL: "SELEC district, COUNT(*) FROM medical_visits GROUP BY district"}
	for i := range 4 {
		if status, code := p.do("insurer-1", "POST", "/v1/jobs", bad, nil); status != http.StatusBadRequest || code != "syntax_error" {
			t.Fatalf("refusal #%d: %d %q, want 400 syntax_error", i+1, status, code)
		}
	}
	for range 3 {
		if status, code := p.do("insurer-1", "POST", "/v1/jobs", bad, nil); status != http.StatusTooManyRequests || code != "rate_limited" {
			t.Fatalf("after the burst: %d %q, want 429 rate_limited", status, code)
		}
	}
	p.stop()
	log, err := os.ReadFile(filepath.Join(p.dataDir, "provenance.log"))
	if err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(log, []byte(`"request_refused"`)); n != 4 {
		t.Fatalf("%d request_refused records, want 4 (one per refusal under the limit)", n)
	}
	if limited := rateLimitedInSummaries(t, p.dataDir); limited != 3 {
		t.Fatalf("summaries count %d rate_limited requests, want 3", limited)
	}
}

// TestRefusedRegistrationsAreBoundedLikeDenials: a registration refused for where its source
// lies is recorded one dataset_registration_refused each, but each takes a token of the
// provider's denied-request bucket: past the burst it is answered 429 rate_limited and counted
// in a summary, so a provider cannot grow the log without bound.
func TestRefusedRegistrationsAreBoundedLikeDenials(t *testing.T) {
	p := startLimited(t, func(c *server.Config) {
		c.Limits.DeniedBurst = 3
		c.Limits.DeniedPerMinute = 1
		c.ImportRoots = importRoots(t)
	})
	outside := residentsAs(t, "hc_residents", "health-commission", "L1", 1000, "../public-security-bureau/residents.parquet")
	for i := range 3 {
		if status, code := p.do("hospital-a", "POST", "/v1/datasets", outside, nil); status != http.StatusBadRequest || code != string(errcode.SourceOutsideImportRoot) {
			t.Fatalf("refusal #%d: %d %q, want 400 %s", i+1, status, code, errcode.SourceOutsideImportRoot)
		}
	}
	for range 4 {
		if status, code := p.do("hospital-a", "POST", "/v1/datasets", outside, nil); status != http.StatusTooManyRequests || code != string(errcode.RateLimited) {
			t.Fatalf("after the burst: %d %q, want 429 %s", status, code, errcode.RateLimited)
		}
	}
	p.stop()
	log, err := os.ReadFile(filepath.Join(p.dataDir, "provenance.log"))
	if err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(log, []byte(`"dataset_registration_refused"`)); n != 3 {
		t.Fatalf("%d dataset_registration_refused records, want 3 (one per refusal under the limit)", n)
	}
	if limited := rateLimitedInSummaries(t, p.dataDir); limited != 4 {
		t.Fatalf("summaries count %d rate_limited requests, want 4", limited)
	}
}

// rateLimitedInSummaries is how many requests the requests_denied summaries in dataDir's log
// count as rate_limited.
func rateLimitedInSummaries(t *testing.T, dataDir string) int64 {
	t.Helper()
	_, sums := deniedRecords(t, dataDir)
	var limited int64
	for _, s := range sums {
		for _, l := range s.Counts {
			if l.Code == string(errcode.RateLimited) {
				limited += l.Count
			}
		}
	}
	return limited
}
