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

// claimBatch encrypts claims (subject → claimed value) about one attribute.
func claimBatch(t *testing.T, keys *verify.Client, attribute string, subjects, claimed []string) api.VerifyBatch {
	t.Helper()
	var values []uint64
	var consents []string
	for i, c := range claimed {
		values = append(values, verify.Encode(c))
		consents = append(consents, fmt.Sprintf("contract-%d", i))
	}
	cts, err := keys.EncryptClaims(values)
	if err != nil {
		t.Fatal(err)
	}
	return api.VerifyBatch{Dataset: "visits", Attribute: attribute, Subjects: subjects, Consents: consents, Ciphertexts: cts}
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
	keys, err := verify.GenerateKeys()
	if err != nil {
		t.Fatal(err)
	}
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
	req := &api.VerifyRequest{PublicKey: keys.PublicKey(), Batches: []api.VerifyBatch{
		claimBatch(t, keys, "district", subjects, claimed),
		claimBatch(t, keys, "cost_band", bandSubjects, bandClaims),
	}}
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
	again := &api.VerifyRequest{PublicKey: keys.PublicKey(), Batches: []api.VerifyBatch{
		claimBatch(t, keys, "district", []string{personID(3100), personID(5)}, []string{"A", "B"})}}
	if _, err := runVerify(e, "g", again); errcode.Of(err) != errcode.VerifyLimit || !strings.Contains(errcode.Public(err).Message, "claim 2") {
		t.Fatalf("a fact checked again: %v, want %s naming claim 2", err, errcode.VerifyLimit)
	}
	fresh := &api.VerifyRequest{PublicKey: keys.PublicKey(), Batches: []api.VerifyBatch{
		claimBatch(t, keys, "district", []string{personID(3100)}, []string{"A"})}}
	if _, err := runVerify(e, "g", fresh); err != nil {
		t.Fatalf("a fact not checked before, after a refusal: %v", err)
	}
	// Another key on the same grant.
	fresh.PublicKey = other.PublicKey()
	fresh.Batches = []api.VerifyBatch{claimBatch(t, other, "district", []string{personID(3101)}, []string{"A"})}
	if _, err := runVerify(e, "g", fresh); errcode.Of(err) != errcode.Conflict {
		t.Fatalf("another key on the grant: %v, want %s", err, errcode.Conflict)
	}
}

// TestVerificationRefusesBadRequestsBeforeAnythingIsCounted: each malformed request is
// refused with its code and nothing is counted (the same facts then verify).
func TestVerificationRefusesBadRequestsBeforeAnythingIsCounted(t *testing.T) {
	e := openEngine(t)
	register(t, e, verifiable(t, 50))
	grant(t, e, "g", 10)
	keys, err := verify.GenerateKeys()
	if err != nil {
		t.Fatal(err)
	}
	good := func() *api.VerifyRequest {
		return &api.VerifyRequest{PublicKey: keys.PublicKey(), Batches: []api.VerifyBatch{
			claimBatch(t, keys, "district", []string{personID(1), personID(2)}, []string{"A", "B"})}}
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
		"no ciphertext":       {func(r *api.VerifyRequest) { r.Batches[0].Ciphertexts = nil }, errcode.MalformedCiphertext},
		"no key":              {func(r *api.VerifyRequest) { r.PublicKey = nil }, errcode.MalformedCiphertext},
		"garbage ciphertext":  {func(r *api.VerifyRequest) { r.Batches[0].Ciphertexts[0] = []byte("xx") }, errcode.MalformedCiphertext},
		"no batches":          {func(r *api.VerifyRequest) { r.Batches = nil }, errcode.InvalidRequest},
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
