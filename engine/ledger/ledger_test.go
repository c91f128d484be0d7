package ledger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/c1b99f93/cleanroom/errcode"
)

var ctx = context.Background()

func openTemp(t *testing.T) (*Ledger, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "store.db")
	l, err := Open(ctx, path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	return l, path
}

func mustEnsure(t *testing.T, l *Ledger, account string, total Budget) {
	t.Helper()
	if err := l.EnsureAccount(ctx, account, total); err != nil {
		t.Fatalf("EnsureAccount(%s): %v", account, err)
	}
}

func mustBalance(t *testing.T, l *Ledger, account string) Balance {
	t.Helper()
	b, err := l.Balance(ctx, account)
	if err != nil {
		t.Fatalf("Balance(%s): %v", account, err)
	}
	return b
}

func wantCode(t *testing.T, err error, sentinel error, code errcode.Code) {
	t.Helper()
	if !errors.Is(err, sentinel) || errcode.Of(err) != code {
		t.Errorf("error = %v (code %q), want code %q", err, errcode.Of(err), code)
	}
}

var mech = json.RawMessage(`{"mechanism":"laplace","epsilon":1}`)

func TestReserveCommitRefundBalance(t *testing.T) {
	l, _ := openTemp(t)
	mustEnsure(t, l, "grant:g1", Budget{Epsilon: 3, Delta: 1e-5})

	steps := []struct {
		name             string
		do               func() error
		spent, remaining Budget
		reserved         Budget
	}{
		{"reserve j1", func() error { return l.Reserve(ctx, "j1", []string{"grant:g1"}, Budget{1, 1e-6}, mech) },
			Budget{1, 1e-6}, Budget{2, 9e-6}, Budget{1, 1e-6}},
		{"commit j1", func() error { return l.Commit(ctx, "j1") },
			Budget{1, 1e-6}, Budget{2, 9e-6}, Budget{}},
		{"reserve j2", func() error { return l.Reserve(ctx, "j2", []string{"grant:g1"}, Budget{0.5, 0}, nil) },
			Budget{1.5, 1e-6}, Budget{1.5, 9e-6}, Budget{0.5, 0}},
		{"refund j2", func() error { return l.Refund(ctx, "j2", "sandbox_timeout") },
			Budget{1, 1e-6}, Budget{2, 9e-6}, Budget{}},
		{"reserve j3 to the brim", func() error { return l.Reserve(ctx, "j3", []string{"grant:g1"}, Budget{2, 9e-6}, mech) },
			Budget{3, 1e-5}, Budget{0, 0}, Budget{2, 9e-6}},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		b := mustBalance(t, l, "grant:g1")
		want := Balance{Account: "grant:g1", Total: Budget{3, 1e-5}, Spent: s.spent, Remaining: s.remaining, Reserved: s.reserved}
		if b != want {
			t.Fatalf("after %s: Balance = %+v, want %+v", s.name, b, want)
		}
	}

	// State machine errors.
	wantCode(t, l.Commit(ctx, "j1"), ErrNotReserved, errcode.NotReserved)      // already debited
	wantCode(t, l.Refund(ctx, "j1", "x"), ErrNotReserved, errcode.NotReserved) // a debit is final
	wantCode(t, l.Commit(ctx, "j2"), ErrNotReserved, errcode.NotReserved)      // refunded
	wantCode(t, l.Refund(ctx, "j2", "x"), ErrNotReserved, errcode.NotReserved)
	wantCode(t, l.Commit(ctx, "nope"), ErrNotReserved, errcode.NotReserved)
	wantCode(t, l.Reserve(ctx, "j2", []string{"grant:g1"}, Budget{}, nil), ErrDuplicateJob, errcode.DuplicateJob)

	// Full: even the smallest cost is refused.
	err := l.Reserve(ctx, "j4", []string{"grant:g1"}, Budget{Epsilon: 1e-12}, nil)
	var ex *ExhaustedError
	if !errors.As(err, &ex) || !errors.Is(err, ErrBudgetExhausted) || errcode.Of(err) != errcode.BudgetExhausted {
		t.Fatalf("reserve on a full account = %v, want *ExhaustedError", err)
	}
	if ex.Account != "grant:g1" || ex.Remaining != (Budget{}) || ex.Requested != (Budget{Epsilon: 1e-12}) {
		t.Errorf("ExhaustedError = %+v", ex)
	}
}

func TestReserveRefusedLeavesNothing(t *testing.T) {
	l, _ := openTemp(t)
	mustEnsure(t, l, "grant:a", Budget{Epsilon: 10, Delta: 1e-5})
	mustEnsure(t, l, "dataset:claims", Budget{Epsilon: 1, Delta: 1e-5})
	before := mustBalance(t, l, "grant:a")

	tests := []struct {
		name     string
		accounts []string
		cost     Budget
		sentinel error
		code     errcode.Code
	}{
		{"one account exhausted", []string{"grant:a", "dataset:claims"}, Budget{Epsilon: 2}, ErrBudgetExhausted, errcode.BudgetExhausted},
		{"delta exhausted", []string{"grant:a", "dataset:claims"}, Budget{Epsilon: 0.1, Delta: 2e-5}, ErrBudgetExhausted, errcode.BudgetExhausted},
		{"unknown account", []string{"grant:a", "dataset:missing"}, Budget{Epsilon: 0.1}, ErrUnknownAccount, errcode.UnknownAccount},
		{"account twice", []string{"grant:a", "grant:a"}, Budget{Epsilon: 0.1}, ErrInvalidReservation, errcode.InvalidReservation},
		{"no accounts", nil, Budget{Epsilon: 0.1}, ErrInvalidReservation, errcode.InvalidReservation},
		{"negative cost", []string{"grant:a"}, Budget{Epsilon: -1}, ErrInvalidBudget, errcode.InvalidBudget},
		{"delta above one", []string{"grant:a"}, Budget{Delta: 2}, ErrInvalidBudget, errcode.InvalidBudget},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := l.Reserve(ctx, "job-x", tt.accounts, tt.cost, mech)
			wantCode(t, err, tt.sentinel, tt.code)
			if got := mustBalance(t, l, "grant:a"); got != before {
				t.Errorf("grant:a changed to %+v", got)
			}
			if h, err := l.History(ctx, "grant:a"); err != nil || len(h) != 0 {
				t.Errorf("History = %v, %v; want empty", h, err)
			}
		})
	}
	// Nothing was written, so the job id is still free.
	if err := l.Reserve(ctx, "job-x", []string{"grant:a", "dataset:claims"}, Budget{Epsilon: 1}, mech); err != nil {
		t.Fatalf("reserve after refusals: %v", err)
	}
	var ex *ExhaustedError
	err := l.Reserve(ctx, "job-y", []string{"grant:a", "dataset:claims"}, Budget{Epsilon: 0.5}, nil)
	if !errors.As(err, &ex) || ex.Account != "dataset:claims" {
		t.Fatalf("Reserve = %v, want exhaustion of dataset:claims", err)
	}
}

func TestConcurrentReservesNeverOverspendOneAccount(t *testing.T) {
	l, _ := openTemp(t)
	mustEnsure(t, l, "grant:g", Budget{Epsilon: 5, Delta: 0})

	var ok, exhausted atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < 200; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := l.Reserve(ctx, fmt.Sprintf("job-%03d", i), []string{"grant:g"}, Budget{Epsilon: 0.1}, nil)
			switch {
			case err == nil:
				ok.Add(1)
			case errors.Is(err, ErrBudgetExhausted):
				exhausted.Add(1)
			default:
				t.Error(err)
			}
		}()
	}
	stop := watchNeverOverspent(t, l, "grant:g")
	wg.Wait()
	stop()

	if ok.Load() != 50 || exhausted.Load() != 150 {
		t.Fatalf("%d reserved, %d exhausted; want 50 and 150", ok.Load(), exhausted.Load())
	}
	b := mustBalance(t, l, "grant:g")
	if b.Spent != (Budget{Epsilon: 5}) || b.Remaining != (Budget{}) || b.Reserved != (Budget{Epsilon: 5}) {
		t.Errorf("Balance = %+v", b)
	}
}

// watchNeverOverspent polls account's balance until stopped, failing if spent ever exceeds total.
func watchNeverOverspent(t *testing.T, l *Ledger, accounts ...string) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		for {
			select {
			case <-done:
				return
			default:
			}
			for _, a := range accounts {
				b, err := l.Balance(ctx, a)
				if err != nil {
					t.Error(err)
					return
				}
				if b.Spent.Epsilon > b.Total.Epsilon || b.Spent.Delta > b.Total.Delta {
					t.Errorf("%s overspent: %+v", a, b)
					return
				}
			}
		}
	}()
	return func() { close(done); <-finished }
}

func TestConcurrentJobsNeverExceedSharedDatasetCap(t *testing.T) {
	l, _ := openTemp(t)
	grantTotal := Budget{Epsilon: 5, Delta: 1e-5}
	mustEnsure(t, l, "grant:a", grantTotal)
	mustEnsure(t, l, "grant:b", grantTotal)
	mustEnsure(t, l, "dataset:claims", Budget{Epsilon: 6, Delta: 1e-5})

	var perGrant [2]atomic.Int32
	var wg sync.WaitGroup
	stop := watchNeverOverspent(t, l, "grant:a", "grant:b", "dataset:claims")
	for i := 0; i < 200; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			g := i % 2
			grant := []string{"grant:a", "grant:b"}[g]
			err := l.Reserve(ctx, fmt.Sprintf("job-%03d", i), []string{grant, "dataset:claims"}, Budget{Epsilon: 0.1, Delta: 1e-8}, mech)
			if err == nil {
				perGrant[g].Add(1)
				// Settle some, so all three states race.
				switch i % 5 {
				case 0:
					err = l.Commit(ctx, fmt.Sprintf("job-%03d", i))
				case 1:
					err = l.Refund(ctx, fmt.Sprintf("job-%03d", i), "job_failed")
					perGrant[g].Add(-1)
				}
			}
			if err != nil && !errors.Is(err, ErrBudgetExhausted) {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	stop()

	a, b := perGrant[0].Load(), perGrant[1].Load()
	if a > 50 || b > 50 || a+b > 60 {
		t.Fatalf("standing reservations: grant:a %d, grant:b %d; caps are 50, 50 and 60 together", a, b)
	}
	ds := mustBalance(t, l, "dataset:claims")
	if want := float64(a+b) / 10; ds.Spent.Epsilon != want {
		t.Errorf("dataset spent %v, want %v", ds.Spent.Epsilon, want)
	}
	for _, acct := range []string{"grant:a", "grant:b", "dataset:claims"} {
		bal := mustBalance(t, l, acct)
		if bal.Spent.Epsilon > bal.Total.Epsilon || bal.Spent.Delta > bal.Total.Delta {
			t.Errorf("%s overspent: %+v", acct, bal)
		}
	}
}

func TestStateSurvivesReopen(t *testing.T) {
	l, path := openTemp(t)
	mustEnsure(t, l, "grant:g", Budget{Epsilon: 2, Delta: 1e-6})
	if err := l.Reserve(ctx, "debited", []string{"grant:g"}, Budget{0.5, 1e-7}, mech); err != nil {
		t.Fatal(err)
	}
	if err := l.Commit(ctx, "debited"); err != nil {
		t.Fatal(err)
	}
	if err := l.Reserve(ctx, "refunded", []string{"grant:g"}, Budget{0.5, 0}, nil); err != nil {
		t.Fatal(err)
	}
	if err := l.Refund(ctx, "refunded", "sandbox_failed"); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	l2, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	want := Balance{Account: "grant:g", Total: Budget{2, 1e-6}, Spent: Budget{0.5, 1e-7}, Remaining: Budget{1.5, 9e-7}}
	if got := mustBalance(t, l2, "grant:g"); got != want {
		t.Errorf("after reopen Balance = %+v, want %+v", got, want)
	}
	mustEnsure(t, l2, "grant:g", Budget{Epsilon: 2, Delta: 1e-6}) // idempotent across opens
}

func TestReservationSurvivesCrashAndCountsAsSpent(t *testing.T) {
	l, path := openTemp(t)
	mustEnsure(t, l, "grant:g", Budget{Epsilon: 1, Delta: 1e-6})
	if err := l.Reserve(ctx, "in-flight", []string{"grant:g"}, Budget{0.75, 5e-7}, mech); err != nil {
		t.Fatal(err)
	}
	// "Crash": the first handle is abandoned without Commit, Refund or Close; a new process opens
	// the same file.
	l2, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	b := mustBalance(t, l2, "grant:g")
	if b.Spent != (Budget{0.75, 5e-7}) || b.Reserved != (Budget{0.75, 5e-7}) || b.Remaining != (Budget{0.25, 5e-7}) {
		t.Fatalf("after crash Balance = %+v", b)
	}
	if err := l2.Reserve(ctx, "next", []string{"grant:g"}, Budget{Epsilon: 0.5}, nil); !errors.Is(err, ErrBudgetExhausted) {
		t.Fatalf("standing reservation not counted: %v", err)
	}
	// The recovering process decides the job's fate.
	if err := l2.Refund(ctx, "in-flight", "crash_recovery"); err != nil {
		t.Fatal(err)
	}
	if err := l2.Reserve(ctx, "next", []string{"grant:g"}, Budget{Epsilon: 0.5}, nil); err != nil {
		t.Fatal(err)
	}
}

func TestDeltaIsAccountedLikeEpsilon(t *testing.T) {
	l, _ := openTemp(t)
	mustEnsure(t, l, "grant:g", Budget{Epsilon: 100, Delta: 1e-5})
	n := 0
	for i := 0; ; i++ {
		err := l.Reserve(ctx, fmt.Sprintf("j%d", i), []string{"grant:g"}, Budget{Epsilon: 0.01, Delta: 1e-6}, nil)
		if errors.Is(err, ErrBudgetExhausted) {
			var ex *ExhaustedError
			errors.As(err, &ex)
			if ex.Remaining.Delta != 0 || ex.Remaining.Epsilon <= 0 {
				t.Errorf("refused with remaining %+v; delta should be the exhausted part", ex.Remaining)
			}
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != 10 {
		t.Fatalf("%d reservations of delta 1e-6 fit a total of 1e-5, want 10", n)
	}
	if b := mustBalance(t, l, "grant:g"); b.Spent.Delta != 1e-5 || b.Remaining.Delta != 0 {
		t.Errorf("Balance = %+v", b)
	}
}

func TestHistoryInReservationOrder(t *testing.T) {
	l, _ := openTemp(t)
	mustEnsure(t, l, "grant:g", Budget{Epsilon: 10})
	mustEnsure(t, l, "dataset:d", Budget{Epsilon: 10})
	jobs := []string{"zeta", "alpha", "mid"} // not alphabetical: order is reservation order
	for i, j := range jobs {
		m := json.RawMessage(fmt.Sprintf(`{ "n" : %d }`, i))
		if err := l.Reserve(ctx, j, []string{"dataset:d", "grant:g"}, Budget{Epsilon: float64(i + 1)}, m); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Commit(ctx, "zeta"); err != nil {
		t.Fatal(err)
	}
	if err := l.Refund(ctx, "alpha", "egress_denied"); err != nil {
		t.Fatal(err)
	}

	h, err := l.History(ctx, "grant:g")
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		job, state, reason, mech string
		eps                      float64
	}{
		{"zeta", StateDebited, "", `{"n":0}`, 1},
		{"alpha", StateRefunded, "egress_denied", `{"n":1}`, 2},
		{"mid", StateReserved, "", `{"n":2}`, 3},
	}
	if len(h) != len(want) {
		t.Fatalf("History has %d entries, want %d", len(h), len(want))
	}
	for i, w := range want {
		e := h[i]
		if e.Job != w.job || e.State != w.state || e.Reason != w.reason || string(e.Mechanism) != w.mech ||
			e.Cost != (Budget{Epsilon: w.eps}) || e.Account != "grant:g" {
			t.Errorf("History[%d] = %+v, want %+v", i, e, w)
		}
		if e.CreatedAt.IsZero() || e.UpdatedAt.Before(e.CreatedAt) {
			t.Errorf("History[%d] times %v %v", i, e.CreatedAt, e.UpdatedAt)
		}
		if i > 0 && e.CreatedAt.Before(h[i-1].CreatedAt) {
			t.Errorf("History[%d] created before History[%d]", i, i-1)
		}
	}
	if _, err := l.History(ctx, "nobody"); !errors.Is(err, ErrUnknownAccount) {
		t.Errorf("History of unknown account: %v", err)
	}
}

func TestEnsureAccountIsIdempotentAndSetTotalChangesIt(t *testing.T) {
	l, _ := openTemp(t)
	mustEnsure(t, l, "dataset:d", Budget{Epsilon: 1, Delta: 1e-6})
	mustEnsure(t, l, "dataset:d", Budget{Epsilon: 1, Delta: 1e-6})
	wantCode(t, l.EnsureAccount(ctx, "dataset:d", Budget{Epsilon: 2, Delta: 1e-6}), ErrAccountMismatch, errcode.AccountMismatch)
	if b := mustBalance(t, l, "dataset:d"); b.Total != (Budget{1, 1e-6}) {
		t.Errorf("mismatch changed the total: %+v", b)
	}
	wantCode(t, l.EnsureAccount(ctx, "dataset:e", Budget{Epsilon: -1}), ErrInvalidBudget, errcode.InvalidBudget)

	if err := l.Reserve(ctx, "j", []string{"dataset:d"}, Budget{Epsilon: 0.8}, nil); err != nil {
		t.Fatal(err)
	}
	if err := l.SetTotal(ctx, "dataset:d", Budget{Epsilon: 0.5}); err != nil {
		t.Fatal(err)
	}
	b := mustBalance(t, l, "dataset:d")
	if b.Total != (Budget{Epsilon: 0.5}) || b.Remaining != (Budget{}) || b.Spent != (Budget{Epsilon: 0.8}) {
		t.Errorf("after lowering: %+v", b)
	}
	// An overdrawn account refuses everything, even a zero cost: spent + 0 > total.
	for _, c := range []Budget{{Epsilon: 1e-9}, {}} {
		if err := l.Reserve(ctx, "k", []string{"dataset:d"}, c, nil); !errors.Is(err, ErrBudgetExhausted) {
			t.Errorf("reserve %+v on a lowered account: %v", c, err)
		}
	}
	wantCode(t, l.SetTotal(ctx, "dataset:none", Budget{Epsilon: 1}), ErrUnknownAccount, errcode.UnknownAccount)
	if _, err := l.Balance(ctx, "dataset:none"); !errors.Is(err, ErrUnknownAccount) {
		t.Errorf("Balance of unknown account: %v", err)
	}
}

func TestUnitsRoundOnlyTowardRefusing(t *testing.T) {
	tests := []struct {
		v        float64
		up, down int64 // epsilon units
	}{
		{0.1, 100_000_000_000, 100_000_000_000},
		{5, 5_000_000_000_000, 5_000_000_000_000},
		{1.0 / 3, 333_333_333_334, 333_333_333_333},
		{1e-13, 1, 0},
		{0, 0, 0},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.v), func(t *testing.T) {
			if got := toUnits(tt.v, epsilonScale, true); got != tt.up {
				t.Errorf("cost units = %d, want %d", got, tt.up)
			}
			if got := toUnits(tt.v, epsilonScale, false); got != tt.down {
				t.Errorf("total units = %d, want %d", got, tt.down)
			}
		})
	}
	// Floating-point sums drift (0.1+0.2 != 0.3); the ledger's do not.
	l, _ := openTemp(t)
	mustEnsure(t, l, "g", Budget{Epsilon: 0.3})
	for i, c := range []float64{0.1, 0.2} {
		if err := l.Reserve(ctx, fmt.Sprint(i), []string{"g"}, Budget{Epsilon: c}, nil); err != nil {
			t.Fatal(err)
		}
	}
	if b := mustBalance(t, l, "g"); b.Spent.Epsilon != 0.3 || b.Remaining.Epsilon != 0 {
		t.Errorf("Balance = %+v", b)
	}
}

func TestOpenRefusesDSNInPath(t *testing.T) {
	dir := t.TempDir()
	for _, p := range []string{"", filepath.Join(dir, "x.db?_pragma=foo"), "file:" + filepath.Join(dir, "x.db")} {
		if l, err := Open(ctx, p); err == nil {
			l.Close()
			t.Errorf("Open(%q) succeeded", p)
		}
	}
}

func TestRememberedAnswerIsRecalledPerGrantAndSurvivesReopen(t *testing.T) {
	l, path := openTemp(t)
	if _, ok, err := l.Recall(ctx, "g1", "fp"); ok || err != nil {
		t.Fatalf("recall before remember: ok=%v err=%v", ok, err)
	}
	if err := l.Remember(ctx, "g1", "fp", "job-1", []byte(`{"rows":1}`)); err != nil {
		t.Fatal(err)
	}
	// The first answer stays: a raced second release does not replace it.
	if err := l.Remember(ctx, "g1", "fp", "job-2", []byte(`{"rows":2}`)); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := l.Recall(ctx, "g2", "fp"); ok {
		t.Fatal("an answer released on one grant was recalled on another")
	}
	l.Close()
	l2, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	r, ok, err := l2.Recall(ctx, "g1", "fp")
	if err != nil || !ok || r.Job != "job-1" || string(r.Result) != `{"rows":1}` {
		t.Fatalf("recall after reopen = %+v ok=%v err=%v, want job-1's answer", r, ok, err)
	}
}

func TestFiltersAreKeptPerGrantAndShapeNewestFirst(t *testing.T) {
	l, path := openTemp(t)
	for _, f := range []struct{ grant, shape, filter, job string }{
		{"g1", "s", "", "job-1"},
		{"g1", "s", "a = 1", "job-2"},
		{"g1", "s", "a = 1", "job-3"}, // same filter: the first job stays
		{"g1", "other", "b = 2", "job-4"},
		{"g2", "s", "c = 3", "job-5"},
		{"g1", "s", "a = 2", "job-6"},
	} {
		if err := l.NoteFilter(ctx, f.grant, f.shape, f.filter, f.job); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.NoteFilter(ctx, "", "s", "x", "job"); err == nil {
		t.Fatal("a filter without a grant was noted")
	}
	l.Close()
	l, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	got, err := l.Filters(ctx, "g1", "s", 10)
	if err != nil {
		t.Fatal(err)
	}
	want := []ComputedFilter{{"job-6", "a = 2"}, {"job-2", "a = 1"}, {"job-1", ""}}
	if !slices.Equal(got, want) {
		t.Fatalf("filters after reopen = %v, want %v", got, want)
	}
	if got, _ := l.Filters(ctx, "g1", "s", 1); len(got) != 1 || got[0].Job != "job-6" {
		t.Fatalf("limit 1 = %v, want the newest", got)
	}
}
