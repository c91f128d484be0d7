package ledger

import (
	"errors"
	"testing"
)

// A hold sticks until it is settled; a rejection, a withholding and a denial stick for good,
// across a reopen, and not even a direct UPDATE changes them; a release lets a repeat be held
// again.
func TestOutputDecisionsStickAndSurviveReopen(t *testing.T) {
	l, path := openTemp(t)
	if _, ok, err := l.DecisionFor(ctx, "g", "fp1"); ok || err != nil {
		t.Fatalf("a fresh output has a decision: %v %v", ok, err)
	}
	if err := l.Decide(ctx, "g", "fp1", Decision{State: DecisionHeld, Job: "j1"}); err != nil {
		t.Fatal(err)
	}
	if err := l.Decide(ctx, "g", "fp1", Decision{State: DecisionHeld, Job: "j2"}); !errors.Is(err, ErrDecided) {
		t.Fatalf("a second hold of one output: %v, want ErrDecided", err)
	}
	if fp, err := l.SettleHeld(ctx, "j1", Decision{State: DecisionRejected, Code: "review_rejected", Reason: "bands too fine"}); err != nil || fp != "fp1" {
		t.Fatalf("settle: %q %v", fp, err)
	}
	if _, err := l.SettleHeld(ctx, "j1", Decision{State: DecisionReleased}); !errors.Is(err, ErrDecided) {
		t.Fatalf("a rejected hold was released: %v, want ErrDecided", err)
	}
	if _, err := l.SettleHeld(ctx, "j1", Decision{State: DecisionRejected, Code: "review_rejected"}); err != nil {
		t.Fatalf("settling a rejection again: %v, want a no-op", err)
	}
	if d, ok, err := l.DecisionOfJob(ctx, "j1"); !ok || err != nil || d.State != DecisionRejected || d.Reason != "bands too fine" {
		t.Fatalf("decision of job j1 = %+v %v %v", d, ok, err)
	}
	if fp, err := l.SettleHeld(ctx, "unknown", Decision{State: DecisionReleased}); err != nil || fp != "" {
		t.Fatalf("a job without a stored hold: %q %v", fp, err)
	}
	if err := l.Decide(ctx, "g", "fp1", Decision{State: DecisionHeld, Job: "j3"}); !errors.Is(err, ErrDecided) {
		t.Fatalf("a rejected output was held again: %v", err)
	}
	if _, err := l.db.ExecContext(ctx, `UPDATE output_decisions SET state = 'released' WHERE fingerprint = 'fp1'`); err == nil {
		t.Fatal("a direct update changed a rejection")
	}
	if _, err := l.db.ExecContext(ctx, `DELETE FROM output_decisions`); err == nil {
		t.Fatal("a decision was deleted")
	}

	if err := l.Decide(ctx, "g", "fp2", Decision{State: DecisionHeld, Job: "j4"}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.SettleHeld(ctx, "j4", Decision{State: DecisionReleased}); err != nil {
		t.Fatal(err)
	}
	if err := l.Decide(ctx, "g", "fp2", Decision{State: DecisionHeld, Job: "j5"}); err != nil {
		t.Fatalf("a repeat of a released output could not be held again: %v", err)
	}
	if err := l.Decide(ctx, "other", "fp2", Decision{State: DecisionDenied, Job: "j6", Code: "egress_denied", Reason: "finding_high"}); err != nil {
		t.Fatalf("another grant's output is separate: %v", err)
	}

	l.Close()
	l2, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	for _, c := range []struct {
		grant, fp string
		want      Decision
	}{
		{"g", "fp1", Decision{State: DecisionRejected, Job: "j1", Code: "review_rejected", Reason: "bands too fine"}},
		{"g", "fp2", Decision{State: DecisionHeld, Job: "j5"}},
		{"other", "fp2", Decision{State: DecisionDenied, Job: "j6", Code: "egress_denied", Reason: "finding_high"}},
	} {
		d, ok, err := l2.DecisionFor(ctx, c.grant, c.fp)
		if !ok || err != nil || d != c.want || !d.Sticks() {
			t.Fatalf("after reopen %s/%s = %+v %v %v, want %+v", c.grant, c.fp, d, ok, err, c.want)
		}
	}
}
