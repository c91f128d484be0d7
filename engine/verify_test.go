package engine_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/c1b99f93/cleanroom/catalog"
	"github.com/c1b99f93/cleanroom/engine"
	"github.com/c1b99f93/cleanroom/errcode"
	"github.com/c1b99f93/cleanroom/he/verify"
	"github.com/c1b99f93/cleanroom/server/api"
)

// verifiable is visits(n) with two verifiable attributes: district (a value) and cost in bands
// at 120 and 140 (visits' cost is 100 + i%50).
func verifiable(t *testing.T, n int) *catalog.Spec {
	s := visits(t, "visits", n, false)
	s.Verify = map[string]catalog.VerifyAttribute{
		"district":  {Column: "district"},
		"cost_band": {Column: "cost", Reduce: catalog.ReduceMax, Bands: []float64{120, 140}},
	}
	return s
}

func personID(i int) string { return fmt.Sprintf("53010219800101%04d", i) }

// pending is a batch of claims encrypted as shares, before its commitment.
type pending struct {
	batch  api.VerifyBatch
	shares []verify.ClaimShares
}

// claimBatch encrypts claims (subject → claimed value) about one attribute as shares.
func claimBatch(t *testing.T, keys *verify.Client, attribute string, subjects, claimed []string) pending {
	t.Helper()
	var values []uint64
	var consents []string
	for i, c := range claimed {
		values = append(values, verify.Encode(c))
		consents = append(consents, fmt.Sprintf("contract-%d", i))
	}
	shares, err := keys.EncryptClaimShares(values, 2)
	if err != nil {
		t.Fatal(err)
	}
	return pending{api.VerifyBatch{Dataset: "visits", Attribute: attribute, Subjects: subjects, Consents: consents}, shares}
}

// request commits to the batches' shares on grant and opens what the challenge did not pick,
// as the client does.
func request(t *testing.T, e *engine.Engine, grant string, keys *verify.Client, ps ...pending) *api.VerifyRequest {
	t.Helper()
	var digests [][]string
	for _, p := range ps {
		for _, cs := range p.shares {
			digests = append(digests, cs.Digests())
		}
	}
	ch, err := e.CommitVerifyClaims(context.Background(), applicant, grant, digests)
	if err != nil {
		t.Fatal(err)
	}
	r := &api.VerifyRequest{PublicKey: keys.PublicKey(), Commitment: ch.Commitment}
	obj := 0
	for _, p := range ps {
		b := p.batch
		for _, cs := range p.shares {
			j := ch.Challenges[obj]
			b.Ciphertexts = append(b.Ciphertexts, cs.Ciphertexts[j])
			var open [][]byte
			for k, o := range cs.Openings {
				if k != j {
					open = append(open, o)
				}
			}
			b.Openings = append(b.Openings, open)
			obj++
		}
		r.Batches = append(r.Batches, b)
	}
	return r
}

// pinKey pins a fresh key on grant by the key cut-and-choose (the policy's 16 candidates).
func pinKey(t *testing.T, e *engine.Engine, grant string) *verify.Client {
	t.Helper()
	cands, err := verify.GenerateKeyCandidates(16)
	if err != nil {
		t.Fatal(err)
	}
	var digests []string
	for _, c := range cands {
		digests = append(digests, c.Digest)
	}
	ctx := context.Background()
	ch, err := e.CommitVerifyKey(ctx, applicant, grant, digests)
	if err != nil {
		t.Fatal(err)
	}
	j := ch.Challenges[0]
	var open [][]byte
	for k, c := range cands {
		if k != j {
			open = append(open, c.Opening())
		}
	}
	st, err := e.OpenVerifyKey(ctx, grant, cands[j].PublicKey(), open)
	if err != nil || st.State != "pinned" {
		t.Fatalf("pin the key: %+v, %v", st, err)
	}
	return cands[j].Client()
}

func runVerify(e *engine.Engine, grant string, req *api.VerifyRequest) (*engine.Outcome, error) {
	return e.Run(context.Background(), engine.Job{Principal: applicant, Grant: grant, Kind: engine.KindVerify, Verify: req})
}

// TestVerificationAnswersThousandsOfClaimsAndCountsThem: 3,000 claims about district (true,
// false and about absent persons) and 200 about the cost band decrypt, with the applicant's
// key only, to exactly the truth; the log holds counts and digests but no subject, claim or
// consent; the same facts asked again within the period are refused before anything is
// evaluated; another key on the grant is refused; a wrong key opens nothing.
func TestVerificationAnswersThousandsOfClaimsAndCountsThem(t *testing.T) {
	e := openEngine(t)
	register(t, e, verifiable(t, 2500))
	grant(t, e, "g", 10)
	keys := pinKey(t, e, "g")
	var subjects, claimed []string
	var want []bool
	for i := 1; i <= 3000; i++ {
		truth := "A"
		if i%2 == 0 {
			truth = "B"
		}
		claim := truth
		if i%3 == 0 {
			claim = "C" // false
		}
		subjects = append(subjects, personID(i))
		claimed = append(claimed, claim)
		want = append(want, i <= 2500 && claim == truth) // persons past 2500 are absent
	}
	var bandSubjects, bandClaims []string
	var bandWant []bool
	for i := 1; i <= 200; i++ {
		cost := 100 + i%50
		band := "0"
		switch {
		case cost >= 140:
			band = "2"
		case cost >= 120:
			band = "1"
		}
		claim := band
		if i%4 == 0 {
			claim = "1"
		}
		bandSubjects = append(bandSubjects, personID(i))
		bandClaims = append(bandClaims, claim)
		bandWant = append(bandWant, claim == band)
	}
	req := request(t, e, "g", keys, claimBatch(t, keys, "district", subjects, claimed), claimBatch(t, keys, "cost_band", bandSubjects, bandClaims))
	out, err := runVerify(e, "g", req)
	if err != nil {
		t.Fatal(err)
	}
	if out.Verify == nil || len(out.Verify.Batches) != 2 || out.Receipt == nil {
		t.Fatalf("outcome %+v: want two answered batches and a receipt", out)
	}
	// The receipt verifies offline with the released answer, and not with a changed one.
	released, _ := json.Marshal(out.Verify)
	if _, err := engine.VerifyReceipt(out.Receipt, released, e.PublicKey()); err != nil {
		t.Fatalf("the receipt does not verify: %v", err)
	}
	changed := *out.Verify
	changed.Batches = changed.Batches[:1]
	if b, _ := json.Marshal(&changed); b != nil {
		if _, err := engine.VerifyReceipt(out.Receipt, b, e.PublicKey()); err == nil {
			t.Fatal("the receipt verifies with an answer that is not the released one")
		}
	}
	for b, w := range [][]bool{want, bandWant} {
		got, err := keys.DecryptMatches(out.Verify.Batches[b].Ciphertexts, len(w))
		if err != nil {
			t.Fatal(err)
		}
		for i := range w {
			if got[i] != w[i] {
				t.Fatalf("batch %d, claim %d: match %v, want %v", b, i, got[i], w[i])
			}
		}
	}
	// A wrong key opens nothing useful: its "matches" are not the truth.
	other, err := verify.GenerateKeys()
	if err != nil {
		t.Fatal(err)
	}
	if got, err := other.DecryptMatches(out.Verify.Batches[0].Ciphertexts, len(want)); err == nil {
		agree := 0
		for i := range want {
			if got[i] == want[i] {
				agree++
			}
		}
		if agree > len(want)/2 {
			t.Fatalf("another key agreed with the truth on %d of %d claims", agree, len(want))
		}
	}

	// The log: the job's kind, counts and digests; no subject, no claimed value, no consent.
	log, err := json.Marshal(records(t, e))
	if err != nil {
		t.Fatal(err)
	}
	for _, rec := range []string{`"checks_reserved"`, `"claims_answered"`, `"kind":"verify"`, `"checks":3200`} {
		if !bytes.Contains(log, []byte(rec)) {
			t.Errorf("the log has no %s", rec)
		}
	}
	for _, secret := range []string{personID(17), "contract-17"} {
		if bytes.Contains(log, []byte(secret)) {
			t.Errorf("the log holds %q", secret)
		}
	}

	// The same facts again: refused, nothing evaluated or counted (the grant's day still has room).
	again := request(t, e, "g", keys, claimBatch(t, keys, "district", []string{personID(3100), personID(5)}, []string{"A", "B"}))
	if _, err := runVerify(e, "g", again); errcode.Of(err) != errcode.VerifyLimit || !strings.Contains(errcode.Public(err).Message, "claim 2") {
		t.Fatalf("a fact checked again: %v, want %s naming claim 2", err, errcode.VerifyLimit)
	}
	fresh := request(t, e, "g", keys, claimBatch(t, keys, "district", []string{personID(3100)}, []string{"A"}))
	if _, err := runVerify(e, "g", fresh); err != nil {
		t.Fatalf("a fact not checked before, after a refusal: %v", err)
	}
	// Another key on the same grant: only the pinned key verifies.
	fresh = request(t, e, "g", other, claimBatch(t, other, "district", []string{personID(3101)}, []string{"A"}))
	if _, err := runVerify(e, "g", fresh); errcode.Of(err) != errcode.VerifyKeyNotPinned {
		t.Fatalf("another key on the grant: %v, want %s", err, errcode.VerifyKeyNotPinned)
	}
}

// TestVerificationRefusesBadRequestsBeforeAnythingIsCounted: each malformed request is
// refused with its code and nothing is counted (the same facts then verify).
func TestVerificationRefusesBadRequestsBeforeAnythingIsCounted(t *testing.T) {
	e := openEngine(t)
	register(t, e, verifiable(t, 50))
	grant(t, e, "g", 10)
	keys := pinKey(t, e, "g")
	good := func() *api.VerifyRequest {
		return request(t, e, "g", keys, claimBatch(t, keys, "district", []string{personID(1), personID(2)}, []string{"A", "B"}))
	}
	for name, tc := range map[string]struct {
		spoil func(*api.VerifyRequest)
		code  errcode.Code
	}{
		"unknown dataset":   {func(r *api.VerifyRequest) { r.Batches[0].Dataset = "nope" }, errcode.UnknownDataset},
		"unknown attribute": {func(r *api.VerifyRequest) { r.Batches[0].Attribute = "income" }, errcode.UnknownAttribute},
		"a consent missing": {func(r *api.VerifyRequest) { r.Batches[0].Consents = r.Batches[0].Consents[:1] }, errcode.InvalidRequest},
		"an empty subject":  {func(r *api.VerifyRequest) { r.Batches[0].Subjects[1] = " " }, errcode.InvalidRequest},
		// Spellings that normalise differently in Go and in DuckDB could count one subject as
		// another fact: refused.
		"a tab in a subject":  {func(r *api.VerifyRequest) { r.Batches[0].Subjects[1] = "\t" + personID(2) }, errcode.InvalidRequest},
		"a non-ASCII subject": {func(r *api.VerifyRequest) { r.Batches[0].Subjects[1] = personID(2) + "ſ" }, errcode.InvalidRequest},
		// The commitment is opened first: ciphertexts that are not the committed shares are
		// refused there.
		"no ciphertext":      {func(r *api.VerifyRequest) { r.Batches[0].Ciphertexts = nil }, errcode.InvalidRequest},
		"no key":             {func(r *api.VerifyRequest) { r.PublicKey = nil }, errcode.MalformedCiphertext},
		"garbage ciphertext": {func(r *api.VerifyRequest) { r.Batches[0].Ciphertexts[0] = []byte("xx") }, errcode.InvalidRequest},
		"no commitment":      {func(r *api.VerifyRequest) { r.Commitment = "" }, errcode.InvalidRequest},
		"another commitment": {func(r *api.VerifyRequest) { r.Commitment = "vc-000000000000000000000000" }, errcode.NotFound},
		"no batches":         {func(r *api.VerifyRequest) { r.Batches = nil }, errcode.InvalidRequest},
	} {
		t.Run(name, func(t *testing.T) {
			r := good()
			tc.spoil(r)
			if _, err := runVerify(e, "g", r); errcode.Of(err) != tc.code {
				t.Fatalf("%v, want %s", err, tc.code)
			}
		})
	}
	if _, err := runVerify(e, "g", good()); err != nil {
		t.Fatalf("after the refusals, the same facts: %v", err)
	}
}
