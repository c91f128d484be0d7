package ledger

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/c1b99f93/cleanroom/errcode"
)

// consentsFor is one consent digest per fact.
func consentsFor(facts []string) []string {
	out := make([]string, len(facts))
	for i, f := range facts {
		out[i] = "consent-of-" + f
	}
	return out
}

// opened stores an opened claims commitment on grant (pinning "key" first if the grant has
// no key), as the engine does before a verification job reserves its checks.
func opened(t *testing.T, l *Ledger, grant string) string {
	t.Helper()
	ctx := t.Context()
	st, err := l.Status(ctx, grant)
	if err != nil {
		t.Fatal(err)
	}
	n := len(st.Commitments)
	if st.KeyDigest == "" && st.Suspended == "" {
		id := fmt.Sprintf("vk-%s", grant)
		if err := l.AddCommitment(ctx, Commitment{ID: id, Grant: grant, Kind: CommitKey, Digests: [][]string{{"a", "key"}}, Challenges: []int{1},
			Created: l.now(), Deadline: l.now().Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		if err := l.PinKey(ctx, grant, id, "key"); err != nil {
			t.Fatal(err)
		}
	}
	id := fmt.Sprintf("vc-%s-%d", grant, n)
	if err := l.AddCommitment(ctx, Commitment{ID: id, Grant: grant, Kind: CommitClaims, Digests: [][]string{{"a", "b"}}, Challenges: []int{0},
		Created: l.now(), Deadline: l.now().Add(time.Hour)}); err != nil && !errors.Is(err, ErrVerifySuspended) {
		t.Fatal(err)
	}
	if err := l.SetCommitmentState(ctx, id, StateOpened, ""); err != nil && !errors.Is(err, ErrNoCommitment) {
		t.Fatal(err)
	}
	return id
}

func facts(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%d", prefix, i)
	}
	return out
}

// TestChecksAreLimitedPerFactAndPerGrantDay: one organisation checks a fact once per period
// (whichever of its grants asks, and twice in one job counts twice); a grant makes so many
// checks a day; a job over a limit reserves none of its checks; a refund gives them back;
// another organisation has its own count; time moves the window.
func TestChecksAreLimitedPerFactAndPerGrantDay(t *testing.T) {
	l, _ := openTemp(t)
	mustEnsure(t, l, "grant:g1", Budget{Epsilon: 1})
	mustEnsure(t, l, "grant:g2", Budget{Epsilon: 1})
	mustEnsure(t, l, "grant:h", Budget{Epsilon: 1})
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	l.now = func() time.Time { return now }
	lim := CheckLimits{PerFact: 1, FactPeriod: 30 * 24 * time.Hour, PerGrantDay: 10}

	if err := l.ReserveChecks(ctx, "j1", "insurer", "g1", "grant:g1", "key", opened(t, l, "g1"), facts("a", 3), consentsFor(facts("a", 3)), lim); err != nil {
		t.Fatal(err)
	}
	// The same fact again, from another grant of the organisation: refused, nothing kept.
	err := l.ReserveChecks(ctx, "j2", "insurer", "g2", "grant:g2", "key", opened(t, l, "g2"), []string{"b-0", "a-1"}, consentsFor([]string{"b-0", "a-1"}), lim)
	var le *CheckLimitError
	if !errors.As(err, &le) || !le.PerFact || le.Index != 1 || errcode.Of(err) != errcode.VerifyLimit {
		t.Fatalf("a fact checked twice: %v, want a per-fact limit at check 2", err)
	}
	if n, _ := l.Checks(ctx, "insurer", "b-0", lim.FactPeriod); n != 0 {
		t.Fatalf("the refused job kept %d check(s) of b-0", n)
	}
	// A fact twice in one job.
	if err := l.ReserveChecks(ctx, "j3", "insurer", "g2", "grant:g2", "key", opened(t, l, "g2"), []string{"c-0", "c-0"}, consentsFor([]string{"c-0", "c-0"}), lim); !errors.Is(err, ErrCheckLimit) {
		t.Fatalf("a fact twice in one job: %v", err)
	}
	// Another organisation counts on its own.
	if err := l.ReserveChecks(ctx, "k1", "bank", "h", "grant:h", "key", opened(t, l, "h"), facts("a", 3), consentsFor(facts("a", 3)), lim); err != nil {
		t.Fatalf("another organisation's first checks: %v", err)
	}
	// The grant's day: 3 made, 7 more fit, 8 do not.
	if err := l.ReserveChecks(ctx, "j4", "insurer", "g1", "grant:g1", "key", opened(t, l, "g1"), facts("d", 8), consentsFor(facts("d", 8)), lim); !errors.As(err, &le) || le.PerFact {
		t.Fatalf("over the grant's day: %v", err)
	}
	if err := l.ReserveChecks(ctx, "j5", "insurer", "g1", "grant:g1", "key", opened(t, l, "g1"), facts("d", 7), consentsFor(facts("d", 7)), lim); err != nil {
		t.Fatalf("up to the grant's day: %v", err)
	}
	// A refund gives the checks back; a debit keeps them.
	if err := l.Refund(ctx, "j5", "sandbox_failed"); err != nil {
		t.Fatal(err)
	}
	if err := l.ReserveChecks(ctx, "j6", "insurer", "g1", "grant:g1", "key", opened(t, l, "g1"), facts("d", 7), consentsFor(facts("d", 7)), lim); err != nil {
		t.Fatalf("after a refund: %v", err)
	}
	if err := l.Commit(ctx, "j6"); err != nil {
		t.Fatal(err)
	}
	if n, _ := l.Checks(ctx, "insurer", "d-3", lim.FactPeriod); n != 1 {
		t.Fatalf("a debited check counts %d, want 1", n)
	}
	if cs, err := l.CheckConsents(ctx, "j6"); err != nil || len(cs) != 7 || cs[3] != [2]string{"d-3", "consent-of-d-3"} {
		t.Fatalf("the job's checks and consents: %v, %v", cs, err)
	}
	// A day later the grant's count is fresh; thirty days later the facts are too.
	now = now.Add(25 * time.Hour)
	if err := l.ReserveChecks(ctx, "j7", "insurer", "g1", "grant:g1", "key", opened(t, l, "g1"), facts("e", 10), consentsFor(facts("e", 10)), lim); err != nil {
		t.Fatalf("the next day: %v", err)
	}
	if err := l.ReserveChecks(ctx, "j8", "insurer", "g2", "grant:g2", "key", opened(t, l, "g2"), facts("a", 1), consentsFor(facts("a", 1)), lim); !errors.Is(err, ErrCheckLimit) {
		t.Fatalf("a fact within 30 days: %v", err)
	}
	now = now.Add(30 * 24 * time.Hour)
	if err := l.ReserveChecks(ctx, "j9", "insurer", "g2", "grant:g2", "key", opened(t, l, "g2"), facts("a", 1), consentsFor(facts("a", 1)), lim); err != nil {
		t.Fatalf("a fact after 30 days: %v", err)
	}
	// Another key on a grant that has one is refused; the first key of another grant is pinned.
	if err := l.ReserveChecks(ctx, "j10", "insurer", "g2", "grant:g2", "other-key", opened(t, l, "g2"), facts("f", 1), consentsFor(facts("f", 1)), lim); !errors.Is(err, ErrKeyPinned) {
		t.Fatalf("another key: %v, want ErrKeyPinned", err)
	}
	// Malformed reservations.
	for _, bad := range []struct {
		job   string
		facts []string
		lim   CheckLimits
	}{{"", facts("z", 1), lim}, {"x1", nil, lim}, {"x2", facts("z", 1), CheckLimits{}}} {
		if err := l.ReserveChecks(ctx, bad.job, "insurer", "g1", "grant:g1", "key", opened(t, l, "g1"), bad.facts, consentsFor(bad.facts), bad.lim); !errors.Is(err, ErrInvalidReservation) {
			t.Errorf("ReserveChecks(%q, %d facts, %+v): %v, want ErrInvalidReservation", bad.job, len(bad.facts), bad.lim, err)
		}
	}
}
