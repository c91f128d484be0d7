package ledger

import (
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/c1b99f93/cleanroom/errcode"
)

func mustAllocate(t *testing.T, l *Ledger, holder string, total Budget, sources ...string) {
	t.Helper()
	if err := l.Allocate(ctx, holder, total, sources); err != nil {
		t.Fatalf("Allocate(%s): %v", holder, err)
	}
}

func TestAllocateCarvesFromEverySourceAllOrNothing(t *testing.T) {
	l, _ := openTemp(t)
	mustEnsure(t, l, "dataset:a", Budget{Epsilon: 10, Delta: 1e-6})
	mustEnsure(t, l, "dataset:b", Budget{Epsilon: 5, Delta: 1e-5})
	mustAllocate(t, l, "grant:g1", Budget{4, 4e-7}, "dataset:a", "dataset:b")

	if got, want := mustBalance(t, l, "dataset:a"), (Balance{Account: "dataset:a", Total: Budget{10, 1e-6},
		Allocated: Budget{4, 4e-7}, Remaining: Budget{6, 6e-7}}); got != want {
		t.Errorf("dataset:a = %+v, want %+v", got, want)
	}
	if got, want := mustBalance(t, l, "grant:g1"), (Balance{Account: "grant:g1", Total: Budget{4, 4e-7},
		Remaining: Budget{4, 4e-7}}); got != want {
		t.Errorf("grant:g1 = %+v, want %+v", got, want)
	}

	// dataset:b has epsilon 1 left: the whole allocation is refused and nothing is written.
	err := l.Allocate(ctx, "grant:g2", Budget{Epsilon: 2, Delta: 1e-7}, []string{"dataset:a", "dataset:b"})
	var ins *InsufficientError
	if !errors.As(err, &ins) || ins.Account != "dataset:b" || ins.Remaining != (Budget{1, 1e-5 - 4e-7}) ||
		errcode.Of(err) != errcode.DatasetBudgetInsufficient || !errors.Is(err, ErrInsufficient) {
		t.Fatalf("over-allocation: %v (code %q)", err, errcode.Of(err))
	}
	if _, err := l.Balance(ctx, "grant:g2"); !errors.Is(err, ErrUnknownAccount) {
		t.Errorf("a refused allocation opened its holder: %v", err)
	}
	if b := mustBalance(t, l, "dataset:a"); b.Allocated != (Budget{4, 4e-7}) {
		t.Errorf("a refused allocation carved from dataset:a: %+v", b)
	}

	// Delta counts like epsilon: 6e-7 is what dataset:a has left.
	if err := l.Allocate(ctx, "grant:g3", Budget{Epsilon: 1, Delta: 7e-7}, []string{"dataset:a"}); !errors.Is(err, ErrInsufficient) {
		t.Errorf("delta over-allocation: %v", err)
	}
	mustAllocate(t, l, "grant:g3", Budget{6, 6e-7}, "dataset:a")
	if b := mustBalance(t, l, "dataset:a"); b.Remaining != (Budget{}) || b.Allocated != b.Total {
		t.Errorf("fully allocated dataset:a = %+v", b)
	}
}

func TestAllocateIsIdempotentAndRefusesAnotherShape(t *testing.T) {
	l, _ := openTemp(t)
	mustEnsure(t, l, "dataset:a", Budget{Epsilon: 10, Delta: 1e-6})
	mustEnsure(t, l, "dataset:b", Budget{Epsilon: 10, Delta: 1e-6})
	mustAllocate(t, l, "grant:g", Budget{2, 1e-7}, "dataset:b", "dataset:a")
	mustAllocate(t, l, "grant:g", Budget{2, 1e-7}, "dataset:a", "dataset:b") // the same, confirmed
	if b := mustBalance(t, l, "dataset:a"); b.Allocated != (Budget{2, 1e-7}) {
		t.Errorf("a confirmed allocation carved twice: %+v", b)
	}
	for _, tc := range []struct {
		name    string
		total   Budget
		sources []string
		want    error
	}{
		{"another total", Budget{3, 1e-7}, []string{"dataset:a", "dataset:b"}, ErrAccountMismatch},
		{"other sources", Budget{2, 1e-7}, []string{"dataset:a"}, ErrAccountMismatch},
		{"no source", Budget{2, 1e-7}, nil, ErrInvalidReservation},
		{"a source twice", Budget{2, 1e-7}, []string{"dataset:a", "dataset:a"}, ErrInvalidReservation},
		{"itself", Budget{2, 1e-7}, []string{"grant:g"}, ErrInvalidReservation},
		{"unknown source", Budget{1, 0}, []string{"dataset:nope"}, ErrUnknownAccount},
	} {
		t.Run(tc.name, func(t *testing.T) {
			holder := "grant:g"
			if tc.want == ErrUnknownAccount {
				holder = "grant:new"
			}
			if err := l.Allocate(ctx, holder, tc.total, tc.sources); !errors.Is(err, tc.want) {
				t.Errorf("Allocate = %v, want %v", err, tc.want)
			}
		})
	}
	// An account opened with EnsureAccount is not an allocation.
	mustEnsure(t, l, "grant:legacy", Budget{1, 0})
	if err := l.Allocate(ctx, "grant:legacy", Budget{1, 0}, []string{"dataset:a"}); !errors.Is(err, ErrAccountMismatch) {
		t.Errorf("allocating to an existing plain account: %v", err)
	}
}

// TestJobsSpendFromTheirGrantsAllocation is finding 6 at the ledger: a job's delta on one grant
// never reaches another grant's allocation of the same dataset.
func TestJobsSpendFromTheirGrantsAllocation(t *testing.T) {
	l, _ := openTemp(t)
	mustEnsure(t, l, "dataset:residents", Budget{Epsilon: 10, Delta: 1e-6})
	mustAllocate(t, l, "grant:a", Budget{5, 5e-7}, "dataset:residents")
	mustAllocate(t, l, "grant:b", Budget{5, 5e-7}, "dataset:residents")
	charge := func(job, grant string, cost Budget) error {
		if err := l.Reserve(ctx, job, []string{grant, "dataset:residents"}, cost, nil); err != nil {
			return err
		}
		return l.Commit(ctx, job)
	}
	// grant:a spends all its delta at a tiny epsilon; its next job is refused by grant:a.
	if err := charge("a1", "grant:a", Budget{1e-9, 5e-7}); err != nil {
		t.Fatal(err)
	}
	var ex *ExhaustedError
	if err := charge("a2", "grant:a", Budget{1e-9, 1e-9}); !errors.As(err, &ex) || ex.Account != "grant:a" {
		t.Fatalf("grant:a past its allocation: %v", err)
	}
	// grant:b is untouched.
	for i := range 5 {
		if err := charge(fmt.Sprintf("b%d", i), "grant:b", Budget{1, 1e-7}); err != nil {
			t.Fatalf("grant:b job %d: %v", i, err)
		}
	}
	got := mustBalance(t, l, "dataset:residents")
	want := Balance{Account: "dataset:residents", Total: Budget{10, 1e-6}, Allocated: Budget{10, 1e-6},
		Spent: Budget{5 + 1e-9, 1e-6}}
	if got != want {
		t.Errorf("dataset = %+v, want %+v", got, want)
	}
}

func TestConcurrentAllocationsForTheLastBudgetOneWins(t *testing.T) {
	l, _ := openTemp(t)
	mustEnsure(t, l, "dataset:a", Budget{Epsilon: 10, Delta: 1e-6})
	mustAllocate(t, l, "grant:first", Budget{4, 4e-7}, "dataset:a")
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = l.Allocate(ctx, fmt.Sprintf("grant:racer%d", i), Budget{Epsilon: 5, Delta: 5e-7}, []string{"dataset:a"})
		}()
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		switch {
		case err == nil:
			won++
		case errcode.Of(err) != errcode.DatasetBudgetInsufficient:
			t.Errorf("a losing allocation failed with %v", err)
		}
	}
	if won != 1 {
		t.Fatalf("%d of %d racing allocations succeeded, want 1", won, n)
	}
	if b := mustBalance(t, l, "dataset:a"); b.Allocated != (Budget{9, 9e-7}) || b.Remaining != (Budget{1, 1e-7}) {
		t.Errorf("dataset:a = %+v", b)
	}
}

func TestCloseAllocationsReturnsUnspentOnlyWhenAsked(t *testing.T) {
	for _, tc := range []struct {
		name          string
		returnUnspent bool
		wantReturned  Budget
		wantAllocated Budget // dataset:a's after the close
	}{
		{"returned", true, Budget{3, 3e-7}, Budget{1, 1e-7}},
		{"kept", false, Budget{}, Budget{4, 4e-7}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, _ := openTemp(t)
			mustEnsure(t, l, "dataset:a", Budget{Epsilon: 10, Delta: 1e-6})
			mustEnsure(t, l, "dataset:b", Budget{Epsilon: 10, Delta: 1e-6})
			mustAllocate(t, l, "grant:g", Budget{4, 4e-7}, "dataset:a", "dataset:b")
			if err := l.Reserve(ctx, "done", []string{"grant:g", "dataset:a"}, Budget{0.5, 0}, nil); err != nil {
				t.Fatal(err)
			}
			if err := l.Commit(ctx, "done"); err != nil {
				t.Fatal(err)
			}
			// A job still running when the grant closes: its reservation is kept, not returned.
			if err := l.Reserve(ctx, "running", []string{"grant:g", "dataset:a"}, Budget{0.5, 1e-7}, nil); err != nil {
				t.Fatal(err)
			}
			c, ok, err := l.CloseAllocations(ctx, "grant:g", "revoked", tc.returnUnspent)
			if err != nil || !ok {
				t.Fatalf("CloseAllocations = %v, %v", ok, err)
			}
			if c.Returned != tc.wantReturned || len(c.Sources) != 2 {
				t.Errorf("closing = %+v, want %v returned to 2 sources", c, tc.wantReturned)
			}
			for _, ds := range []string{"dataset:a", "dataset:b"} {
				if b := mustBalance(t, l, ds); b.Allocated != tc.wantAllocated || b.Remaining != (Budget{10, 1e-6}).minus(tc.wantAllocated) {
					t.Errorf("%s after close = %+v, want allocated %v", ds, b, tc.wantAllocated)
				}
			}
			allocs, err := l.Allocations(ctx, "dataset:a")
			if err != nil || len(allocs) != 1 || allocs[0].Closed != "revoked" || allocs[0].Returned != tc.wantReturned {
				t.Errorf("allocations of dataset:a = %+v, %v", allocs, err)
			}
			if tc.returnUnspent {
				// What was returned can no longer be charged to the grant.
				if err := l.Reserve(ctx, "after", []string{"grant:g", "dataset:a"}, Budget{Epsilon: 0.1}, nil); !errors.Is(err, ErrBudgetExhausted) {
					t.Errorf("a charge after the return: %v", err)
				}
			}
			// Closing is final.
			if _, ok, err := l.CloseAllocations(ctx, "grant:g", "expired", true); ok || err != nil {
				t.Errorf("second close = %v, %v; want nothing done", ok, err)
			}
			var raw *sql.DB = l.db
			if _, err := raw.ExecContext(ctx, `UPDATE ledger_allocations SET returned_epsilon_pico = 0 WHERE holder = 'grant:g'`); err == nil && tc.returnUnspent {
				t.Error("a return was taken back behind the ledger's back")
			}
			if _, err := raw.ExecContext(ctx, `DELETE FROM ledger_allocations`); err == nil {
				t.Error("an allocation was deleted")
			}
			if _, err := raw.ExecContext(ctx, `UPDATE ledger_allocations SET epsilon_pico = 1`); err == nil {
				t.Error("an allocation's amount was changed")
			}
		})
	}
}

// minus is test arithmetic on budgets (exact for the values used here).
func (b Budget) minus(c Budget) Budget {
	return Budget{Epsilon: b.Epsilon - c.Epsilon, Delta: fromUnits(toUnits(b.Delta, deltaScale, false)-toUnits(c.Delta, deltaScale, false), deltaScale)}
}

func TestGrantWithoutAllocationDrawsOnlyOnTheUnallocatedRemainder(t *testing.T) {
	l, _ := openTemp(t)
	mustEnsure(t, l, "dataset:a", Budget{Epsilon: 10, Delta: 1e-6})
	mustEnsure(t, l, "grant:legacy", Budget{Epsilon: 100, Delta: 1e-3}) // approved before allocations
	mustAllocate(t, l, "grant:new", Budget{6, 6e-7}, "dataset:a")

	var ex *ExhaustedError
	if err := l.Reserve(ctx, "big", []string{"grant:legacy", "dataset:a"}, Budget{5, 0}, nil); !errors.As(err, &ex) || ex.Account != "dataset:a" {
		t.Fatalf("a legacy grant reached into an allocation: %v", err)
	}
	if err := l.Reserve(ctx, "fits", []string{"grant:legacy", "dataset:a"}, Budget{4, 4e-7}, nil); err != nil {
		t.Fatal(err)
	}
	if b := mustBalance(t, l, "dataset:a"); b.Remaining != (Budget{}) || b.Spent != (Budget{4, 4e-7}) {
		t.Errorf("dataset:a = %+v", b)
	}
	// The new grant's allocation is intact, and nothing is left to allocate.
	if err := l.Reserve(ctx, "new", []string{"grant:new", "dataset:a"}, Budget{6, 6e-7}, nil); err != nil {
		t.Errorf("the allocated grant was refused: %v", err)
	}
	if err := l.Allocate(ctx, "grant:late", Budget{Epsilon: 1e-3}, []string{"dataset:a"}); !errors.Is(err, ErrInsufficient) {
		t.Errorf("allocated past the total: %v", err)
	}
}

func TestVersionOneDatabaseIsUpgraded(t *testing.T) {
	l, path := openTemp(t)
	mustEnsure(t, l, "dataset:a", Budget{Epsilon: 10, Delta: 1e-6})
	if _, err := l.db.ExecContext(ctx, `UPDATE schema_version SET version = 1 WHERE component = 'ledger'`); err != nil {
		t.Fatal(err)
	}
	l.Close()
	l2, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	var v int
	if err := l2.db.QueryRowContext(ctx, `SELECT version FROM schema_version WHERE component = 'ledger'`).Scan(&v); err != nil || v != schemaVersion {
		t.Fatalf("schema version %d, %v; want %d", v, err, schemaVersion)
	}
	mustAllocate(t, l2, "grant:g", Budget{1, 1e-7}, "dataset:a")
}
