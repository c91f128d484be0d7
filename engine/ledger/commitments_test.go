package ledger

import (
	"errors"
	"testing"
	"time"
)

// TestCommitmentsMoveForwardAndSuspensionIsFinal: one key commitment per grant, whatever became
// of it; a claims commitment needs a pinned key; a used commitment is not used again; a
// commitment's challenge cannot be rewritten; a suspension stops commitments, pins and
// reservations and cannot be removed.
func TestCommitmentsMoveForwardAndSuspensionIsFinal(t *testing.T) {
	l, _ := openTemp(t)
	ctx := t.Context()
	mustEnsure(t, l, "grant:g", Budget{Epsilon: 1})
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	l.now = func() time.Time { return now }
	c := func(id, kind string) Commitment {
		return Commitment{ID: id, Grant: "g", Kind: kind, Digests: [][]string{{"d0", "d1"}}, Challenges: []int{1}, Created: now, Deadline: now.Add(time.Minute)}
	}
	if err := l.AddCommitment(ctx, c("vc-early", CommitClaims)); !errors.Is(err, ErrKeyNotPinned) {
		t.Fatalf("claims before a key: %v", err)
	}
	if err := l.AddCommitment(ctx, c("vk", CommitKey)); err != nil {
		t.Fatal(err)
	}
	if err := l.AddCommitment(ctx, c("vk2", CommitKey)); !errors.Is(err, ErrKeyCommitted) {
		t.Fatalf("a second key commitment: %v", err)
	}
	if _, err := l.db.ExecContext(ctx, `UPDATE verify_commitments SET challenges = '[0]' WHERE id = 'vk'`); err == nil {
		t.Fatal("a challenge was rewritten")
	}
	if err := l.PinKey(ctx, "g", "vk", "d1"); err != nil {
		t.Fatal(err)
	}
	if err := l.SetCommitmentState(ctx, "vk", StateOpened, ""); err == nil {
		t.Fatal("a used commitment moved back")
	}
	if err := l.AddCommitment(ctx, c("vc", CommitClaims)); err != nil {
		t.Fatal(err)
	}
	lim := CheckLimits{PerFact: 1, FactPeriod: time.Hour, PerGrantDay: 10}
	if err := l.ReserveChecks(ctx, "j0", "org", "g", "grant:g", "d1", "vc", facts("x", 1), consentsFor(facts("x", 1)), lim); !errors.Is(err, ErrCommitmentState) {
		t.Fatalf("a challenged (unopened) commitment reserved: %v", err)
	}
	if err := l.SetCommitmentState(ctx, "vc", StateOpened, ""); err != nil {
		t.Fatal(err)
	}
	if err := l.ReserveChecks(ctx, "j1", "org", "g", "grant:g", "d1", "vc", facts("a", 1), consentsFor(facts("a", 1)), lim); err != nil {
		t.Fatal(err)
	}
	if err := l.ReserveChecks(ctx, "j2", "org", "g", "grant:g", "d1", "vc", facts("b", 1), consentsFor(facts("b", 1)), lim); !errors.Is(err, ErrCommitmentUsed) {
		t.Fatalf("a replayed commitment: %v", err)
	}
	// Overdue: a challenged commitment past its deadline is listed.
	if err := l.AddCommitment(ctx, c("vc2", CommitClaims)); err != nil {
		t.Fatal(err)
	}
	if od, err := l.Overdue(ctx, "g", now.Add(2*time.Minute)); err != nil || len(od) != 1 || od[0].ID != "vc2" {
		t.Fatalf("overdue %+v, %v", od, err)
	}
	if err := l.Suspend(ctx, "g", "vc2", StateAbandoned, "abandoned"); err != nil {
		t.Fatal(err)
	}
	st, err := l.Status(ctx, "g")
	if err != nil || st.Suspended != "abandoned" || st.SuspendedBy != "vc2" || st.KeyDigest != "d1" || len(st.Commitments) != 3 {
		t.Fatalf("status %+v, %v", st, err)
	}
	if err := l.AddCommitment(ctx, c("vc3", CommitClaims)); !errors.Is(err, ErrVerifySuspended) {
		t.Fatalf("a commitment while suspended: %v", err)
	}
	if _, err := l.db.ExecContext(ctx, `DELETE FROM verify_suspensions`); err == nil {
		t.Fatal("a suspension was removed")
	}
}
