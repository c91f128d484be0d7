package ledger

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Allocation is part of a source account's budget (a dataset's lifetime budget) carved out for
// a holder account (a grant) when the holder was opened. Its invariant: the source's total is
// at least the sum of its allocations' outstanding parts plus the charges made on it outside
// any allocation, and the holder's spent never exceeds its total, which never exceeds what it
// holds from each source. So no holder can spend what a source allocated to another, and the
// source's lifetime cap holds under sequential composition.
type Allocation struct {
	Holder string `json:"holder"`
	Source string `json:"source"`
	// Amount is what was carved out; Returned the part given back when the allocation closed;
	// Outstanding = Amount − Returned is what the source still counts as allocated.
	Amount      Budget `json:"amount"`
	Returned    Budget `json:"returned"`
	Outstanding Budget `json:"outstanding"`
	// Closed says why the allocation closed ("" while open): the holder was revoked, expired,
	// or cancelled (opened but never put in force). A closed allocation never changes again.
	Closed    string    `json:"closed,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Closing is what CloseAllocations did: the holder's unspent budget that went back to each of
// its sources (zero when not returned), and what the holder keeps (what it had spent,
// reservations included, at that moment).
type Closing struct {
	Holder   string   `json:"holder"`
	Reason   string   `json:"reason"`
	Sources  []string `json:"sources"`
	Returned Budget   `json:"returned"`
	Kept     Budget   `json:"kept"`
}

// Allocate opens holder with total and carves total out of each of sources, all or nothing, in
// one transaction: if any source has less than total left (its total less its outstanding
// allocations and its charges outside allocations) it returns an *InsufficientError naming the
// first such source and writes nothing. Two allocations racing for the last budget are
// serialised by the write transaction, so at most one succeeds. A source that does not exist
// is ErrUnknownAccount. Calling it again with the same holder, total and sources confirms;
// a holder that exists otherwise is ErrAccountMismatch.
//
// Jobs charged to the holder and to a source (Reserve) then spend from the allocation. A holder
// opened with EnsureAccount holds no allocation (as every grant approved before allocations
// existed): its jobs are checked against each source's unallocated remainder, as before, and
// can never touch another holder's allocation.
func (l *Ledger) Allocate(ctx context.Context, holder string, total Budget, sources []string) error {
	if holder == "" || len(sources) == 0 || slices.Contains(sources, "") {
		return fmt.Errorf("ledger: an allocation needs a holder and at least one source: %w", ErrInvalidReservation)
	}
	if slices.Contains(sources, holder) {
		return fmt.Errorf("ledger: account %q cannot allocate to itself: %w", holder, ErrInvalidReservation)
	}
	sorted := slices.Sorted(slices.Values(sources))
	if len(slices.Compact(slices.Clone(sorted))) != len(sorted) {
		return fmt.Errorf("ledger: a source is listed twice: %w", ErrInvalidReservation)
	}
	amount, err := totalUnits(total)
	if err != nil {
		return err
	}
	return l.write(ctx, func(tx *sql.Tx) error {
		have, err := accountTotal(ctx, tx, holder)
		switch {
		case err == nil:
			return confirmAllocation(ctx, tx, holder, have, amount, sorted)
		case !errors.Is(err, ErrUnknownAccount):
			return err
		}
		for _, src := range sources {
			srcTotal, err := accountTotal(ctx, tx, src)
			if err != nil {
				return err
			}
			// Not saved: the allocation's insert drops the source's running sum anyway.
			committed, err := accountCommitted(ctx, tx, src, false)
			if err != nil {
				return err
			}
			if committed.add(amount).exceeds(srcTotal) {
				return &InsufficientError{Account: src, Remaining: srcTotal.sub(committed).nonNegative().budget(), Requested: amount.budget()}
			}
		}
		now := l.stamp()
		if _, err := tx.ExecContext(ctx, `INSERT INTO ledger_accounts
			(account, total_epsilon_pico, total_delta_atto, created_at, updated_at) VALUES (?, ?, ?, ?, ?)`,
			holder, amount.eps, amount.delta, now, now); err != nil {
			return fmt.Errorf("ledger: create account %q: %w", holder, err)
		}
		for _, src := range sources {
			if _, err := tx.ExecContext(ctx, `INSERT INTO ledger_allocations
				(holder, source, epsilon_pico, delta_atto, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)`,
				holder, src, amount.eps, amount.delta, now, now); err != nil {
				return fmt.Errorf("ledger: allocate %q from %q: %w", holder, src, err)
			}
		}
		return nil
	})
}

// confirmAllocation accepts an existing holder only when it is exactly what Allocate would
// have made.
func confirmAllocation(ctx context.Context, tx *sql.Tx, holder string, have, amount units, sources []string) error {
	allocs, err := allocations(ctx, tx, `holder = ?`, holder)
	if err != nil {
		return err
	}
	var got []string
	same := have == amount
	for _, a := range allocs {
		got = append(got, a.Source)
		same = same && a.amount == amount && a.Closed == ""
	}
	if !same || !slices.Equal(got, sources) {
		return fmt.Errorf("ledger: account %q exists with other allocations: %w", holder, ErrAccountMismatch)
	}
	return nil
}

// CloseAllocations closes holder's open allocations for reason (revoked, expired, cancelled).
// When returnUnspent, what holder never spent — its total less its debits and standing
// reservations — goes back to each source, and holder's total is lowered to what it spent, so
// nothing it could still be charged can exceed what its sources keep allocated to it (a
// reservation refunded later stays counted: a return only ever errs on the side of less).
// Otherwise the allocations close with nothing returned. It is one transaction, and closing is
// final: a holder with no open allocation (closed before, or never allocated) is left as it is,
// and ok is false.
func (l *Ledger) CloseAllocations(ctx context.Context, holder, reason string, returnUnspent bool) (c Closing, ok bool, err error) {
	if holder == "" || reason == "" {
		return c, false, fmt.Errorf("ledger: closing needs a holder and a reason: %w", ErrInvalidReservation)
	}
	err = l.write(ctx, func(tx *sql.Tx) error {
		allocs, err := allocations(ctx, tx, `holder = ? AND closed = ''`, holder)
		if err != nil || len(allocs) == 0 {
			return err
		}
		total, err := accountTotal(ctx, tx, holder)
		if err != nil {
			return err
		}
		spent, _, err := accountSpent(ctx, tx, holder)
		if err != nil {
			return err
		}
		var unspent units
		if returnUnspent {
			unspent = total.sub(spent).nonNegative()
		}
		now := l.stamp()
		c = Closing{Holder: holder, Reason: reason, Returned: unspent.budget(), Kept: total.sub(unspent).budget()}
		for _, a := range allocs {
			ret := units{min(a.amount.eps, unspent.eps), min(a.amount.delta, unspent.delta)}
			if _, err := tx.ExecContext(ctx, `UPDATE ledger_allocations SET returned_epsilon_pico = ?, returned_delta_atto = ?,
				closed = ?, updated_at = ? WHERE holder = ? AND source = ?`, ret.eps, ret.delta, reason, now, holder, a.Source); err != nil {
				return fmt.Errorf("ledger: close allocation of %q from %q: %w", holder, a.Source, err)
			}
			c.Sources = append(c.Sources, a.Source)
		}
		if unspent != (units{}) {
			kept := total.sub(unspent)
			if _, err := tx.ExecContext(ctx, `UPDATE ledger_accounts SET total_epsilon_pico = ?, total_delta_atto = ?, updated_at = ?
				WHERE account = ?`, kept.eps, kept.delta, now, holder); err != nil {
				return fmt.Errorf("ledger: lower the total of %q: %w", holder, err)
			}
		}
		ok = true
		return nil
	})
	return c, ok, err
}

// Allocations returns the allocations account holds or gave, oldest first.
func (l *Ledger) Allocations(ctx context.Context, account string) ([]Allocation, error) {
	var out []Allocation
	err := l.read(ctx, func(tx *sql.Tx) error {
		if _, err := accountTotal(ctx, tx, account); err != nil {
			return err
		}
		rows, err := allocations(ctx, tx, `holder = ?1 OR source = ?1`, account)
		for _, r := range rows {
			out = append(out, r.Allocation)
		}
		return err
	})
	if out == nil {
		out = []Allocation{}
	}
	return out, err
}

// OpenHolders lists the holders with an open allocation.
func (l *Ledger) OpenHolders(ctx context.Context) ([]string, error) {
	var out []string
	err := l.read(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT DISTINCT holder FROM ledger_allocations WHERE closed = '' ORDER BY holder`)
		if err != nil {
			return fmt.Errorf("ledger: open holders: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var h string
			if err := rows.Scan(&h); err != nil {
				return fmt.Errorf("ledger: open holders: %w", err)
			}
			out = append(out, h)
		}
		return rows.Err()
	})
	return out, err
}

// allocation is an Allocation with its amount in exact units.
type allocation struct {
	Allocation
	amount units
}

func allocations(ctx context.Context, tx *sql.Tx, where string, args ...any) ([]allocation, error) {
	rows, err := tx.QueryContext(ctx, `SELECT holder, source, epsilon_pico, delta_atto, returned_epsilon_pico, returned_delta_atto,
			closed, created_at, updated_at
		FROM ledger_allocations WHERE `+where+` ORDER BY created_at, holder, source`, args...)
	if err != nil {
		return nil, fmt.Errorf("ledger: allocations: %w", err)
	}
	defer rows.Close()
	var out []allocation
	for rows.Next() {
		var (
			a                Allocation
			amt, ret         units
			created, updated string
		)
		if err := rows.Scan(&a.Holder, &a.Source, &amt.eps, &amt.delta, &ret.eps, &ret.delta, &a.Closed, &created, &updated); err != nil {
			return nil, fmt.Errorf("ledger: allocations: %w", err)
		}
		a.Amount, a.Returned, a.Outstanding = amt.budget(), ret.budget(), amt.sub(ret).budget()
		if a.CreatedAt, err = time.Parse(time.RFC3339Nano, created); err != nil {
			return nil, fmt.Errorf("ledger: allocations: %w", err)
		}
		if a.UpdatedAt, err = time.Parse(time.RFC3339Nano, updated); err != nil {
			return nil, fmt.Errorf("ledger: allocations: %w", err)
		}
		out = append(out, allocation{a, amt})
	}
	return out, rows.Err()
}

// coveredBy reports whether account allocated part of its budget to another of accounts: a
// job charged to both spends from that allocation.
func coveredBy(ctx context.Context, tx *sql.Tx, account string, accounts []string) (bool, error) {
	for _, h := range accounts {
		if h == account {
			continue
		}
		var one int
		err := tx.QueryRowContext(ctx, `SELECT 1 FROM ledger_allocations WHERE holder = ? AND source = ?`, h, account).Scan(&one)
		if err == nil {
			return true, nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return false, fmt.Errorf("ledger: look up allocation: %w", err)
		}
	}
	return false, nil
}

// accountAllocated sums the outstanding parts of the allocations account gave.
func accountAllocated(ctx context.Context, q querier, account string) (units, error) {
	var u units
	err := q.QueryRowContext(ctx, `SELECT COALESCE(SUM(epsilon_pico - returned_epsilon_pico), 0),
			COALESCE(SUM(delta_atto - returned_delta_atto), 0)
		FROM ledger_allocations WHERE source = ?`, account).Scan(&u.eps, &u.delta)
	if err != nil {
		return units{}, fmt.Errorf("ledger: sum allocations of %q: %w", account, err)
	}
	return u, nil
}

// accountCommitted is what account can no longer give: its outstanding allocations plus the
// charges on it that no allocation covers (accountDirect). In a write transaction (save), the
// direct charges' running sum is advanced to the account's last entry.
func accountCommitted(ctx context.Context, q querier, account string, save bool) (units, error) {
	allocated, err := accountAllocated(ctx, q, account)
	if err != nil {
		return units{}, err
	}
	direct, err := accountDirect(ctx, q, account, save)
	if err != nil {
		return units{}, err
	}
	return allocated.add(direct), nil
}

// directSQL sums the charges of account's entries after a seq that are not refunded and that
// no allocation covers (a job charged to a holder of an allocation from account is counted in
// the allocation, not again here).
const directSQL = `SELECT COALESCE(SUM(j.epsilon_pico), 0), COALESCE(SUM(j.delta_atto), 0)
		FROM ledger_entries e JOIN ledger_jobs j ON j.job = e.job
		WHERE e.account = ? AND e.seq > ? AND j.state <> 'refunded' AND NOT EXISTS (
			SELECT 1 FROM ledger_entries h JOIN ledger_allocations a ON a.holder = h.account
			WHERE h.job = e.job AND a.source = e.account)`

// accountDirect is directSQL over all of account's entries: the running sum kept in
// ledger_direct_sums up to an entry, plus directSQL after it (the schema's triggers keep the
// sum exact: TestDirectSumsMatchTheFullSum). With save, q is a write transaction and the
// sum is stored up to the account's last entry.
func accountDirect(ctx context.Context, q querier, account string, save bool) (units, error) {
	var sum units
	var upto int64
	err := q.QueryRowContext(ctx, `SELECT upto_seq, epsilon_pico, delta_atto FROM ledger_direct_sums WHERE account = ?`, account).
		Scan(&upto, &sum.eps, &sum.delta)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return units{}, fmt.Errorf("ledger: read the direct charges of %q: %w", account, err)
	}
	var after units
	if err := q.QueryRowContext(ctx, directSQL, account, upto).Scan(&after.eps, &after.delta); err != nil {
		return units{}, fmt.Errorf("ledger: sum charges of %q outside allocations: %w", account, err)
	}
	sum = sum.add(after)
	if !save {
		return sum, nil
	}
	tx, ok := q.(*sql.Tx)
	if !ok {
		return units{}, fmt.Errorf("ledger: the direct charges of %q are saved only in a write transaction", account)
	}
	var last sql.NullInt64
	if err := tx.QueryRowContext(ctx, `SELECT MAX(seq) FROM ledger_entries WHERE account = ?`, account).Scan(&last); err != nil {
		return units{}, fmt.Errorf("ledger: the last entry of %q: %w", account, err)
	}
	if last.Valid && last.Int64 > upto {
		if _, err := tx.ExecContext(ctx, `INSERT INTO ledger_direct_sums (account, upto_seq, epsilon_pico, delta_atto) VALUES (?, ?, ?, ?)
			ON CONFLICT (account) DO UPDATE SET upto_seq = excluded.upto_seq, epsilon_pico = excluded.epsilon_pico, delta_atto = excluded.delta_atto`,
			account, last.Int64, sum.eps, sum.delta); err != nil {
			return units{}, fmt.Errorf("ledger: save the direct charges of %q: %w", account, err)
		}
	}
	return sum, nil
}
