package ledger

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
)

// TestEveryWriteWaitsForTheBarrier: every write that settles budget or decides an output runs
// the write barrier first (the engine's: the provenance log made durable), and a failing
// barrier stores nothing; a filter's note alone does not wait for it.
func TestEveryWriteWaitsForTheBarrier(t *testing.T) {
	ctx := context.Background()
	var calls int
	var fail error
	l, err := Open(ctx, filepath.Join(t.TempDir(), "control.db"), WithWriteBarrier(func(context.Context) error {
		calls++
		return fail
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := l.EnsureAccount(ctx, "grant:g", Budget{Epsilon: 10, Delta: 1e-3}); err != nil {
		t.Fatal(err)
	}
	cost := Budget{Epsilon: 1}
	writes := []struct {
		name    string
		write   func() error
		barrier bool
	}{
		{"reserve", func() error { return l.Reserve(ctx, "j1", []string{"grant:g"}, cost, nil) }, true},
		{"commit", func() error { return l.Commit(ctx, "j1") }, true},
		{"reserve again", func() error { return l.Reserve(ctx, "j2", []string{"grant:g"}, cost, nil) }, true},
		{"refund", func() error { return l.Refund(ctx, "j2", "canceled") }, true},
		{"remember", func() error { return l.Remember(ctx, "g", "fp", "j1", []byte(`{}`)) }, true},
		{"decide", func() error { return l.Decide(ctx, "g", "fp2", Decision{State: DecisionHeld, Job: "j1"}) }, true},
		{"note a filter", func() error { return l.NoteFilter(ctx, "g", "shape", "filter", "j1") }, false},
	}
	for _, w := range writes {
		before := calls
		if err := w.write(); err != nil {
			t.Fatalf("%s: %v", w.name, err)
		}
		if got := calls - before; (got == 1) != w.barrier || got > 1 {
			t.Errorf("%s ran the barrier %d times, want barrier=%v", w.name, got, w.barrier)
		}
	}
	fail = errors.New("the log cannot be synced")
	if err := l.Reserve(ctx, "j3", []string{"grant:g"}, cost, nil); err == nil {
		t.Fatal("a reservation was stored although the barrier failed")
	}
	if _, ok, err := l.Reservation(ctx, "j3"); err != nil || ok {
		t.Fatalf("the refused reservation is stored: ok=%v err=%v", ok, err)
	}
}
