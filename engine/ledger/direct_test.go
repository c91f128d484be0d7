package ledger

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"
)

// TestDirectSumsMatchTheFullSum is the property behind the running sums of direct charges
// (ledger_direct_sums) and of debits (ledger_debited_sums): after every step of random
// histories — accounts, allocations from sources to new holders, reservations on random sets
// of accounts (some refused), debits, refunds of reservations old and new, allocations closed
// — every account's direct charges read through its running sum equal the sum over its whole
// history (what a reservation is checked against is that plus the allocations, read afresh),
// and so do its spent and reserved charges (what a balance shows). Seeded: each seed is one
// history.
func TestDirectSumsMatchTheFullSum(t *testing.T) {
	ctx := context.Background()
	for seed := range uint64(12) {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, 99))
			l, err := Open(ctx, filepath.Join(t.TempDir(), "ledger.db"))
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			accounts := []string{"dataset:a", "dataset:b", "dataset:c"}
			for _, a := range accounts {
				if err := l.EnsureAccount(ctx, a, Budget{Epsilon: 40, Delta: 1e-3}); err != nil {
					t.Fatal(err)
				}
			}
			var reserved []string // jobs still reserved
			jobs, holders := 0, 0
			for step := range 160 {
				switch op := r.IntN(10); {
				case op == 0: // a plain account (a grant without an allocation)
					a := fmt.Sprintf("grant:plain-%d", step)
					if err := l.EnsureAccount(ctx, a, Budget{Epsilon: 30, Delta: 1e-3}); err != nil {
						t.Fatal(err)
					}
					accounts = append(accounts, a)
				case op == 1: // a holder allocated from one or two datasets
					holders++
					h := fmt.Sprintf("grant:alloc-%d", holders)
					srcs := []string{"dataset:a"}
					if r.IntN(2) == 0 {
						srcs = append(srcs, "dataset:"+string(rune('b'+r.IntN(2))))
					}
					if err := l.Allocate(ctx, h, Budget{Epsilon: float64(1 + r.IntN(5)), Delta: 1e-5}, srcs); err == nil {
						accounts = append(accounts, h)
					}
				case op == 2 && len(reserved) > 0: // a refund, of any standing reservation
					i := r.IntN(len(reserved))
					if err := l.Refund(ctx, reserved[i], "failed"); err != nil {
						t.Fatal(err)
					}
					reserved = slices.Delete(reserved, i, i+1)
				case op == 3 && len(reserved) > 0: // a debit
					i := r.IntN(len(reserved))
					if err := l.Commit(ctx, reserved[i]); err != nil {
						t.Fatal(err)
					}
					reserved = slices.Delete(reserved, i, i+1)
				case op == 4 && holders > 0:
					if _, _, err := l.CloseAllocations(ctx, fmt.Sprintf("grant:alloc-%d", 1+r.IntN(holders)), "revoked", r.IntN(2) == 0); err != nil {
						t.Fatal(err)
					}
				default: // a reservation on one to three accounts
					jobs++
					job := fmt.Sprintf("job-%d", jobs)
					set := []string{accounts[r.IntN(len(accounts))]}
					for range r.IntN(3) {
						if a := accounts[r.IntN(len(accounts))]; !slices.Contains(set, a) {
							set = append(set, a)
						}
					}
					if err := l.Reserve(ctx, job, set, Budget{Epsilon: 0.1 + r.Float64(), Delta: 1e-7}, nil); err == nil {
						reserved = append(reserved, job)
					}
				}
				for _, a := range accounts {
					var full units
					if err := l.db.QueryRowContext(ctx, directSQL, a, 0).Scan(&full.eps, &full.delta); err != nil {
						t.Fatal(err)
					}
					got, err := accountDirect(ctx, l.db, a, false)
					if err != nil {
						t.Fatal(err)
					}
					if got != full {
						t.Fatalf("step %d: %s's direct charges read %+v through the running sum, %+v over its history", step, a, got, full)
					}
					checkSpent(t, l, a, step)
				}
			}
			var sums int
			if err := l.db.QueryRowContext(ctx, `SELECT count(*) FROM ledger_direct_sums`).Scan(&sums); err != nil || sums == 0 {
				t.Fatalf("no running sum was kept (%d, %v): the property was not exercised", sums, err)
			}
		})
	}
}

// TestDirectSumsDropOnANewAllocation: the API allocates only to a new holder, so no existing
// entry changes coverage; the schema does not rely on that. An allocation written directly
// to an account that already shares jobs with its source drops the source's running sum, and
// the direct charges read after it are the history's.
func TestDirectSumsDropOnANewAllocation(t *testing.T) {
	ctx := context.Background()
	l, err := Open(ctx, filepath.Join(t.TempDir(), "ledger.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for _, a := range []string{"dataset:a", "grant:h"} {
		if err := l.EnsureAccount(ctx, a, Budget{Epsilon: 10, Delta: 1e-3}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3 {
		if err := l.Reserve(ctx, fmt.Sprintf("j%d", i), []string{"dataset:a", "grant:h"}, Budget{Epsilon: 1}, nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := l.db.ExecContext(ctx, `INSERT INTO ledger_allocations (holder, source, epsilon_pico, delta_atto, created_at, updated_at)
		VALUES ('grant:h', 'dataset:a', 5000000000000, 0, 'now', 'now')`); err != nil {
		t.Fatal(err)
	}
	got, err := accountDirect(ctx, l.db, "dataset:a", false)
	if err != nil {
		t.Fatal(err)
	}
	if got != (units{}) {
		t.Fatalf("after the allocation the covered jobs still count %+v directly on the source", got)
	}
}

// fullSpentSQL is what accountSpent reads from running sums, summed over the account's whole
// history: its jobs that are not refunded, and those of them still reserved.
const fullSpentSQL = `SELECT
		COALESCE(SUM(j.epsilon_pico) FILTER (WHERE j.state <> 'refunded'), 0),
		COALESCE(SUM(j.delta_atto)   FILTER (WHERE j.state <> 'refunded'), 0),
		COALESCE(SUM(j.epsilon_pico) FILTER (WHERE j.state = 'reserved'), 0),
		COALESCE(SUM(j.delta_atto)   FILTER (WHERE j.state = 'reserved'), 0)
	FROM ledger_entries e JOIN ledger_jobs j ON j.job = e.job
	WHERE e.account = ?`

// checkSpent fails the test unless account's spent and reserved charges read through the
// running sums are what its history sums to.
func checkSpent(t *testing.T, l *Ledger, account string, step int) {
	t.Helper()
	ctx := context.Background()
	var spent, reserved units
	if err := l.db.QueryRowContext(ctx, fullSpentSQL, account).Scan(&spent.eps, &spent.delta, &reserved.eps, &reserved.delta); err != nil {
		t.Fatal(err)
	}
	gotSpent, gotReserved, err := accountSpent(ctx, l.db, account)
	if err != nil {
		t.Fatal(err)
	}
	if gotSpent != spent || gotReserved != reserved {
		t.Fatalf("step %d: %s spent %+v, reserved %+v through the running sums; %+v and %+v over its history", step, account, gotSpent, gotReserved, spent, reserved)
	}
}

// Jobs written straight into the tables — debited before their entries exist, as an import or
// the fill benchmarks write them — are counted by the debited sums too.
func TestDebitedSumsCountJobsWrittenDirectly(t *testing.T) {
	ctx := context.Background()
	l, err := Open(ctx, filepath.Join(t.TempDir(), "ledger.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for _, a := range []string{"dataset:a", "grant:g"} {
		if err := l.EnsureAccount(ctx, a, Budget{Epsilon: 100, Delta: 1e-3}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 5 {
		job := fmt.Sprintf("old-%d", i)
		if _, err := l.db.ExecContext(ctx, `INSERT INTO ledger_jobs (job, state, epsilon_pico, delta_atto, created_at, updated_at)
			VALUES (?, 'debited', ?, 7, 'then', 'then')`, job, 1_000_000_000_000+i); err != nil {
			t.Fatal(err)
		}
		for _, a := range []string{"dataset:a", "grant:g"}[:1+i%2] {
			if _, err := l.db.ExecContext(ctx, `INSERT INTO ledger_entries (job, account) VALUES (?, ?)`, job, a); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := l.Reserve(ctx, "new", []string{"dataset:a", "grant:g"}, Budget{Epsilon: 1}, nil); err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"dataset:a", "grant:g"} {
		checkSpent(t, l, a, 0)
	}
}

// A database from before the debited sums (schema version 4) is upgraded with them summed
// from its history, and they are exact from then on.
func TestUpgradeSumsTheDebitedHistory(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "ledger.db")
	l, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	accounts := []string{"dataset:a", "grant:g", "grant:h"}
	for _, a := range accounts {
		if err := l.EnsureAccount(ctx, a, Budget{Epsilon: 100, Delta: 1e-3}); err != nil {
			t.Fatal(err)
		}
	}
	// Take the database back to version 4, then write a history it does not sum.
	for _, stmt := range []string{`DROP TRIGGER ledger_debited_sums_debit`, `DROP TRIGGER ledger_debited_sums_entry`,
		`DROP TABLE ledger_debited_sums`, `UPDATE schema_version SET version = 4 WHERE component = 'ledger'`} {
		if _, err := l.db.ExecContext(ctx, stmt); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 12 {
		job := fmt.Sprintf("j%d", i)
		if err := l.Reserve(ctx, job, []string{"dataset:a", accounts[1+i%2]}, Budget{Epsilon: float64(1 + i), Delta: 1e-6}, nil); err != nil {
			t.Fatal(err)
		}
		switch i % 3 {
		case 0:
			err = l.Commit(ctx, job)
		case 1:
			err = l.Refund(ctx, job, "failed")
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if l, err = Open(ctx, path); err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for _, a := range accounts {
		checkSpent(t, l, a, 0)
	}
	// And from then on the triggers keep them.
	if err := l.Commit(ctx, "j2"); err != nil {
		t.Fatal(err)
	}
	for _, a := range accounts {
		checkSpent(t, l, a, 1)
	}
}
