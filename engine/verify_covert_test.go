package engine_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/c1b99f93/cleanroom/engine"
	"github.com/c1b99f93/cleanroom/errcode"
	"github.com/c1b99f93/cleanroom/he/verify"
)

// TestKeyCutAndChooseCatchesABadCandidateWheneverItIsOpened: over random K (16 to 20, the
// policy asks at least 16) and random positions (math/rand/v2, fixed seed; the challenge set
// through the engine's test seam), one candidate slot commits to a key its seed does not make
// (what the crafted-p0 key of docs/he.md looks like to the platform; he/verify's
// TestCutAndChooseCatchesACraftedKeyWheneverItIsOpened builds that key itself). Opened, it is
// caught: the grant's verification is suspended, with the seed, the errors and the committed
// digest in the log; challenged (probability 1/K), it is pinned.
func TestKeyCutAndChooseCatchesABadCandidateWheneverItIsOpened(t *testing.T) {
	e := openEngine(t)
	register(t, e, verifiable(t, 10))
	pool, err := verify.GenerateKeyCandidates(21)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(23, 5))
	ctx := context.Background()
	for trial := range 6 {
		g := fmt.Sprintf("g%d", trial)
		grant(t, e, g, 1)
		k := 16 + rng.IntN(5)
		bad := rng.IntN(k)
		challenge := rng.IntN(k)
		if trial%2 == 0 {
			challenge = bad // half the trials: the cheat is the one left closed
		}
		engine.SetVerifySeams(e, func(int) int { return challenge }, nil)
		digests := make([]string, k)
		for i := range k {
			digests[i] = pool[i].Digest
		}
		digests[bad] = pool[20].Digest // committed, but slot bad's seed makes another key
		ch, err := e.CommitVerifyKey(ctx, applicant, g, digests)
		if err != nil || ch.Challenges[0] != challenge {
			t.Fatalf("trial %d: commit %+v, %v", trial, ch, err)
		}
		var open [][]byte
		for i := range k {
			if i != challenge {
				open = append(open, pool[i].Opening())
			}
		}
		pk := pool[challenge].PublicKey()
		if challenge == bad {
			pk = pool[20].PublicKey()
		}
		st, err := e.OpenVerifyKey(ctx, g, pk, open)
		if challenge == bad {
			if err != nil || st.State != "pinned" {
				t.Fatalf("trial %d: the challenged slot was not pinned: %+v, %v", trial, st, err)
			}
			continue
		}
		if errcode.Of(err) != errcode.VerifyOpeningMismatch {
			t.Fatalf("trial %d: K=%d bad %d challenge %d: %v, want %s", trial, k, bad, challenge, err, errcode.VerifyOpeningMismatch)
		}
		if st, err := e.VerifyStatus(ctx, g); err != nil || st.State != "suspended" || st.Suspension.Reason != "opening_mismatch" {
			t.Fatalf("trial %d: status %+v, %v", trial, st, err)
		}
		if _, err := e.CommitVerifyClaims(ctx, applicant, g, [][]string{{pool[0].Digest, pool[1].Digest}}); errcode.Of(err) != errcode.VerifySuspended {
			t.Fatalf("trial %d: a claims commitment on a suspended grant: %v", trial, err)
		}
		if _, err := e.OpenVerifyKey(ctx, g, pk, open); errcode.Of(err) != errcode.VerifySuspended {
			t.Fatalf("trial %d: opening again: %v", trial, err)
		}
		// The evidence: the committed digest and the opening, which fails CheckKeyOpening again.
		var ev struct {
			Committed, Opening string
			Candidate          int
		}
		for _, r := range recordsOf(t, e, "verify_suspension") {
			if r["commitment"] == ch.Commitment {
				b, _ := json.Marshal(r)
				if err := json.Unmarshal(b, &ev); err != nil {
					t.Fatal(err)
				}
			}
		}
		opening := pool[bad].Opening()
		if ev.Committed != pool[20].Digest || ev.Candidate != bad || ev.Opening == "" || verify.CheckKeyOpening(opening, ev.Committed) == nil {
			t.Fatalf("trial %d: the evidence %+v does not show the cheat", trial, ev)
		}
	}
}

// TestClaimsCutAndChooseCatchesABadShareAndRefusesReplaysAndLateOpenings: a share committed
// to that its opening does not rebuild is caught when opened (the grant is suspended) and
// evaluated when left closed; a used commitment is not used again; a challenge left unopened
// past its deadline suspends the grant.
func TestClaimsCutAndChooseCatchesABadShareAndRefusesReplaysAndLateOpenings(t *testing.T) {
	e := openEngine(t)
	register(t, e, verifiable(t, 50))
	ctx := context.Background()
	now := time.Now()
	clock := func() time.Time { return now }
	for _, tc := range []struct {
		grant          string
		bad, challenge int
	}{{"opened", 1, 0}, {"closed", 1, 1}} {
		grant(t, e, tc.grant, 1)
		keys := pinKey(t, e, tc.grant)
		p := claimBatch(t, keys, "district", []string{personID(1), personID(2)}, []string{"A", "B"})
		other := claimBatch(t, keys, "district", []string{personID(1), personID(2)}, []string{"B", "B"})
		// The cheat: slot bad commits to another ciphertext than its opening makes.
		p.shares[0].Ciphertexts[tc.bad] = other.shares[0].Ciphertexts[tc.bad]
		engine.SetVerifySeams(e, func(int) int { return tc.challenge }, clock)
		req := request(t, e, tc.grant, keys, p)
		_, err := runVerify(e, tc.grant, req)
		if tc.bad != tc.challenge {
			if errcode.Of(err) != errcode.VerifyOpeningMismatch {
				t.Fatalf("%s: %v, want %s", tc.grant, err, errcode.VerifyOpeningMismatch)
			}
			if st, _ := e.VerifyStatus(ctx, tc.grant); st.State != "suspended" {
				t.Fatalf("%s: status %+v", tc.grant, st)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: the closed share was not evaluated: %v", tc.grant, err)
		}
		// Replayed: the same commitment again.
		if _, err := runVerify(e, tc.grant, req); errcode.Of(err) != errcode.VerifyOpeningReplayed {
			t.Fatalf("a replayed commitment: %v, want %s", err, errcode.VerifyOpeningReplayed)
		}
		// Late: committed, never opened, the deadline passes.
		late := claimBatch(t, keys, "district", []string{personID(3)}, []string{"A"})
		lateReq := request(t, e, tc.grant, keys, late)
		now = now.Add(11 * time.Minute)
		if _, err := runVerify(e, tc.grant, lateReq); errcode.Of(err) != errcode.VerifyOpeningLate {
			t.Fatalf("a late opening: %v, want %s", err, errcode.VerifyOpeningLate)
		}
		st, err := e.VerifyStatus(ctx, tc.grant)
		if err != nil || st.State != "suspended" || st.Suspension.Reason != "abandoned" {
			t.Fatalf("after an abandoned challenge: %+v, %v", st, err)
		}
		if _, err := e.CommitVerifyClaims(ctx, applicant, tc.grant, [][]string{{verify.Digest([]byte("a")), verify.Digest([]byte("b"))}}); errcode.Of(err) != errcode.VerifySuspended {
			t.Fatalf("a claims commitment on a suspended grant: %v", err)
		}
	}
}
