package server_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/c1b99f93/cleanroom/connectors"
	"github.com/c1b99f93/cleanroom/errcode"
	"github.com/c1b99f93/cleanroom/he/verify"
	"github.com/c1b99f93/cleanroom/server/api"
	"github.com/c1b99f93/cleanroom/server/client"
)

// residentsTruth reads person_id → income_band from the committed residents data (as the
// provider's file holds it; the test plays the authority that knows the answers).
func residentsTruth(t testing.TB) ([]string, map[string]string) {
	t.Helper()
	rr, err := connectors.Open(context.Background(), "parquet", filepath.Join("..", "testdata", "datasets", "public-security-bureau", "residents.parquet"), connectors.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer rr.Release()
	var ids []string
	band := map[string]string{}
	for rr.Next() {
		rec := rr.RecordBatch()
		idx := rec.Schema().FieldIndices("person_id")[0]
		bdx := rec.Schema().FieldIndices("income_band")[0]
		pid, inc := rec.Column(idx).(*array.String), rec.Column(bdx).(*array.String)
		for i := range int(rec.NumRows()) {
			ids = append(ids, pid.Value(i))
			band[pid.Value(i)] = inc.Value(i)
		}
	}
	return ids, band
}

// recorder keeps every request body the client sends: the platform's whole view.
type recorder struct {
	mu     sync.Mutex
	bodies [][]byte
	next   http.RoundTripper
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		b, err := io.ReadAll(req.Body)
		if err != nil {
			return nil, err
		}
		r.mu.Lock()
		r.bodies = append(r.bodies, b)
		r.mu.Unlock()
		req.Body = io.NopCloser(bytes.NewReader(b))
	}
	return r.next.RoundTrip(req)
}

// TestVerificationOverHTTP: an insurer with a verify grant checks 3,000 declared income bands
// (a third false, a hundred about persons the register does not hold) through the Go client:
// every answer is right; everything the platform received holds no claimed value (neither its
// text nor its slot value); the same facts asked again are denied (verify_limit); a grant
// without verify is refused; the job document carries no claim and the dataset lists its
// verifiable attributes.
func TestVerificationOverHTTP(t *testing.T) {
	clk := &clock{now: time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)}
	p := start(t, t.TempDir(), clk)
	p.must("psb-1", "POST", "/v1/datasets", specJSON(t, "residents"), nil)
	var ds api.DatasetDetail
	p.must("insurer-1", "GET", "/v1/datasets/residents", nil, &ds)
	if _, ok := ds.Verify["income_band"]; !ok {
		t.Fatalf("GET /v1/datasets/residents lists no verifiable income_band: %+v", ds.Verify)
	}
	grantFor := func(kinds ...string) string {
		var app api.Application
		p.must("insurer-1", "POST", "/v1/applications", api.ApplicationRequest{Purpose: "underwriting", Scenario: "declared income checks",
			Datasets: []string{"residents"}, Start: "2026-01-01", End: "2026-12-31", Epsilon: 1, Delta: 1e-8, JobKinds: kinds}, &app)
		var ok api.Approved
		p.must("op-1", "POST", "/v1/applications/"+app.ID+"/approve", api.ApproveRequest{}, &ok)
		return ok.GrantID
	}
	g := grantFor("sql", "verify")

	ids, truth := residentsTruth(t)
	bands := []string{"low", "lower_middle", "middle", "upper_middle", "high"}
	var claims []client.Claim
	var want []bool
	for i := range 3000 {
		subject, claimed, ok := ids[i], truth[ids[i]], true
		switch {
		case i%3 == 1:
			for _, b := range bands {
				if b != claimed {
					claimed, ok = b, false
					break
				}
			}
		case i%30 == 2:
			subject, claimed, ok = fmt.Sprintf("53999919990101%04d", i), "middle", false // no such person
		}
		claims = append(claims, client.Claim{Dataset: "residents", Subject: subject, Attribute: "income_band", Claimed: claimed, Consent: fmt.Sprintf("policy-%d", i)})
		want = append(want, ok)
	}
	rec := &recorder{next: http.DefaultTransport}
	c, err := client.New(p.base, token("insurer-1"), client.WithHTTPClient(&http.Client{Transport: rec}))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	keys := pinned(t, c, g)
	rep, err := c.Verify(ctx, g, keys, claims, 2048) // two jobs
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Jobs) != 2 {
		t.Fatalf("%d jobs, want 2 of at most 2048 claims", len(rep.Jobs))
	}
	for i := range want {
		if rep.Matches[i] != want[i] {
			t.Fatalf("claim %d: match %v, want %v", i, rep.Matches[i], want[i])
		}
	}

	// The platform's view: no claimed value, as text or as the slot value that encodes it.
	var sent []byte
	for _, b := range rec.bodies {
		sent = append(sent, b...)
	}
	for _, b := range bands {
		v := verify.Encode(b)
		var le, be [8]byte
		binary.LittleEndian.PutUint64(le[:], v)
		binary.BigEndian.PutUint64(be[:], v)
		if bytes.Contains(sent, []byte(`"`+b+`"`)) || bytes.Contains(sent, le[:5]) || bytes.Contains(sent, be[3:]) {
			t.Errorf("the requests carry the claimed value %q or its encoding", b)
		}
	}
	// The job document lists no claim; its result is ciphertexts.
	var j api.Job
	p.must("insurer-1", "GET", "/v1/jobs/"+rep.Jobs[0], nil, &j)
	if j.Kind != api.KindVerify || j.State != api.JobReleased || j.Receipt == "" || bytes.Contains(j.Result, []byte("policy-1")) {
		t.Fatalf("job %+v", j.ID)
	}

	// The same facts again: the job is denied, nothing answered.
	if _, err = c.Verify(ctx, g, keys, claims[:10], 0); codeOf(err) != errcode.VerifyLimit {
		t.Fatalf("the same facts again: %v, want %s", err, errcode.VerifyLimit)
	}
	// A grant without verify.
	sqlOnly := grantFor("sql")
	fresh := []client.Claim{{Dataset: "residents", Subject: ids[4000], Attribute: "income_band", Claimed: "low", Consent: "c"}}
	if _, err := c.Verify(ctx, sqlOnly, keys, fresh, 0); codeOf(err) != errcode.Forbidden {
		t.Fatalf("a grant without verify: %v, want %s", err, errcode.Forbidden)
	}
	// An unknown attribute is answered at once, 400, and never becomes a job.
	bad := []client.Claim{{Dataset: "residents", Subject: ids[4001], Attribute: "mobile", Claimed: "1", Consent: "c"}}
	if rep, err := c.Verify(ctx, g, keys, bad, 0); codeOf(err) != errcode.UnknownAttribute || len(rep.Jobs) != 0 {
		t.Fatalf("an unknown attribute: %v, want %s and no job", err, errcode.UnknownAttribute)
	}
}

// pinned pins a fresh key on grant g through c by the key cut-and-choose (the policy's 16
// candidates) and returns it.
func pinned(t testing.TB, c *client.Client, g string) *verify.Client {
	t.Helper()
	cands, err := verify.GenerateKeyCandidates(16)
	if err != nil {
		t.Fatal(err)
	}
	k, err := c.PinVerifyKey(context.Background(), g, cands)
	if err != nil {
		t.Fatal(err)
	}
	return k.Client()
}

// codeOf is the error code of a Go client's error.
func codeOf(err error) errcode.Code {
	var ce *client.Error
	if errors.As(err, &ce) {
		return errcode.Code(ce.Code)
	}
	return ""
}

// TestKeyCutAndChooseOverHTTPCatchesACheatingCandidate: one of 16 candidates commits to a key
// its seed does not make. With the platform's own challenge (crypto/rand), either the slot is
// opened — 403 verify_opening_mismatch, the grant's verification suspended for every later
// request and the operator sees why — or it is the challenged one and is pinned (1/16).
func TestKeyCutAndChooseOverHTTPCatchesACheatingCandidate(t *testing.T) {
	clk := &clock{now: time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)}
	p := start(t, t.TempDir(), clk)
	p.must("psb-1", "POST", "/v1/datasets", specJSON(t, "residents"), nil)
	var app api.Application
	p.must("insurer-1", "POST", "/v1/applications", api.ApplicationRequest{Purpose: "underwriting", Scenario: "declared income checks",
		Datasets: []string{"residents"}, Start: "2026-01-01", End: "2026-12-31", Epsilon: 1, Delta: 1e-8, JobKinds: []string{"verify"}}, &app)
	var ok api.Approved
	p.must("op-1", "POST", "/v1/applications/"+app.ID+"/approve", api.ApproveRequest{}, &ok)
	g := ok.GrantID
	c, err := client.New(p.base, token("insurer-1"))
	if err != nil {
		t.Fatal(err)
	}
	cands, err := verify.GenerateKeyCandidates(17)
	if err != nil {
		t.Fatal(err)
	}
	const bad = 5
	digests := make([]string, 16)
	for i := range digests {
		digests[i] = cands[i].Digest
	}
	digests[bad] = cands[16].Digest
	ctx := context.Background()
	ch, err := c.CommitVerifyKey(ctx, g, digests)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.CommitVerifyKey(ctx, g, digests); codeOf(err) != errcode.Conflict {
		t.Fatalf("a second key commitment (a re-drawn challenge): %v, want %s", err, errcode.Conflict)
	}
	j := ch.Challenges[0]
	req := api.VerifyKeyOpenRequest{PublicKey: cands[j].PublicKey()}
	if j == bad {
		req.PublicKey = cands[16].PublicKey()
	}
	for i := range 16 {
		if i != j {
			req.Openings = append(req.Openings, cands[i].Opening())
		}
	}
	st, err := c.OpenVerifyKey(ctx, g, req)
	if j == bad {
		if err != nil || st.State != "pinned" {
			t.Fatalf("the challenged slot: %+v, %v", st, err)
		}
		t.Logf("the cheating candidate was the challenged one (probability 1/16): pinned")
		return
	}
	if codeOf(err) != errcode.VerifyOpeningMismatch {
		t.Fatalf("the cheating slot opened: %v, want %s", err, errcode.VerifyOpeningMismatch)
	}
	var opView api.VerifyStatus
	p.must("op-1", "GET", "/v1/grants/"+g+"/verify", nil, &opView)
	if opView.State != "suspended" || opView.Suspension == nil || opView.Suspension.Reason != "opening_mismatch" || opView.Suspension.Commitment != ch.Commitment {
		t.Fatalf("the operator's view %+v", opView)
	}
	var audit api.AuditJob
	p.must("aud-1", "GET", "/v1/audit/jobs/"+ch.Commitment, nil, &audit)
	if b, _ := json.Marshal(audit); !bytes.Contains(b, []byte("verify_suspension")) || !bytes.Contains(b, []byte(digests[bad])) {
		t.Fatalf("the log under the commitment holds no evidence: %s", b)
	}
	claims := []client.Claim{{Dataset: "residents", Subject: "5300", Attribute: "income_band", Claimed: "low", Consent: "c"}}
	if _, err := c.Verify(ctx, g, cands[0].Client(), claims, 0); codeOf(err) != errcode.VerifySuspended {
		t.Fatalf("a verification on the suspended grant: %v, want %s", err, errcode.VerifySuspended)
	}
}
