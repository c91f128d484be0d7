package ledger

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkReserveAsTheLedgerFills times one job's reservation and debit on a dataset account
// that already holds 100, 10,000 or 100,000 debited jobs (fillLedger), against the 100-job
// ledger in the same run (x-100).
func BenchmarkReserveAsTheLedgerFills(b *testing.B) {
	ctx := context.Background()
	i := 0
	benchAsTheLedgerFills(b, func(l *Ledger) error {
		i++
		job := fmt.Sprintf("new-%d", i)
		if err := l.Reserve(ctx, job, []string{"dataset:visits", "grant:g"}, Budget{Epsilon: 1e-6}, nil); err != nil {
			return err
		}
		return l.Commit(ctx, job)
	})
}

// BenchmarkBalanceAsTheLedgerFills times reading the dataset account's balance (what explain,
// each federated job and the budget report read) with one reservation standing, as above.
func BenchmarkBalanceAsTheLedgerFills(b *testing.B) {
	ctx := context.Background()
	benchAsTheLedgerFills(b, func(l *Ledger) error {
		_, err := l.Balance(ctx, "dataset:visits")
		return err
	})
}

// benchAsTheLedgerFills times op on ledgers whose dataset and grant accounts hold 100, 10,000
// and 100,000 debited jobs, and reports each against the first in the same run (x-100).
func benchAsTheLedgerFills(b *testing.B, op func(*Ledger) error) {
	var base time.Duration
	for _, n := range []int{100, 10_000, 100_000} {
		b.Run(fmt.Sprintf("jobs=%d", n), func(b *testing.B) {
			l := fillLedger(b, n)
			for b.Loop() {
				if err := op(l); err != nil {
					b.Fatal(err)
				}
			}
			per := b.Elapsed() / time.Duration(b.N)
			if n == 100 {
				base = per
			}
			if base > 0 {
				b.ReportMetric(float64(per)/float64(base), "x-100")
			}
		})
	}
}

// fillLedger opens a ledger whose accounts dataset:visits (shared by every job, as a
// dataset's is in the product) and grant:g hold n debited jobs, inserted in one transaction,
// and one standing reservation that summed the history once (its running sums start there).
func fillLedger(b *testing.B, n int) *Ledger {
	ctx := context.Background()
	l, err := Open(ctx, filepath.Join(b.TempDir(), "ledger.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { l.Close() })
	big := Budget{Epsilon: 1e6, Delta: 0.5}
	for _, a := range []string{"dataset:visits", "grant:g"} {
		if err := l.EnsureAccount(ctx, a, big); err != nil {
			b.Fatal(err)
		}
	}
	tx, err := l.db.BeginTx(ctx, nil)
	if err != nil {
		b.Fatal(err)
	}
	for i := range n {
		job := fmt.Sprintf("old-%d", i)
		if _, err := tx.ExecContext(ctx, `INSERT INTO ledger_jobs (job, state, epsilon_pico, delta_atto, created_at, updated_at)
			VALUES (?, 'debited', 1000000, 0, 'then', 'then')`, job); err != nil {
			b.Fatal(err)
		}
		for _, a := range []string{"dataset:visits", "grant:g"} {
			if _, err := tx.ExecContext(ctx, `INSERT INTO ledger_entries (job, account) VALUES (?, ?)`, job, a); err != nil {
				b.Fatal(err)
			}
		}
	}
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
	if err := l.Reserve(ctx, "warm", []string{"dataset:visits", "grant:g"}, Budget{Epsilon: 1e-6}, nil); err != nil {
		b.Fatal(err)
	}
	return l
}
