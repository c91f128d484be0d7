package ledger

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// Entry states.
const (
	StateReserved = "reserved"
	StateDebited  = "debited"
	StateRefunded = "refunded"
)

// Balance is an account's standing. Spent counts debits and standing reservations, whether
// they were charged through an allocation or not; Reserved is the part of Spent still
// reserved. Allocated is what the account has carved out for holders (a dataset's budget for
// its grants), net of what they returned. Remaining is what the account can still give — to a
// new allocation or to a charge outside any allocation: Total − Allocated − the charges outside
// allocations, never negative. For an account that allocates nothing (a grant) it is
// Total − Spent.
type Balance struct {
	Account   string `json:"account"`
	Total     Budget `json:"total"`
	Allocated Budget `json:"allocated"`
	Spent     Budget `json:"spent"`
	Remaining Budget `json:"remaining"`
	Reserved  Budget `json:"reserved"`
}

// Entry is one job's charge to one account.
type Entry struct {
	Job       string          `json:"job"`
	Account   string          `json:"account"`
	Cost      Budget          `json:"cost"`
	State     string          `json:"state"` // StateReserved, StateDebited or StateRefunded
	Mechanism json.RawMessage `json:"mechanism,omitempty"`
	Reason    string          `json:"reason,omitempty"` // the refund reason
	CreatedAt time.Time       `json:"created_at"`
	UpdatedAt time.Time       `json:"updated_at"`
}

// Ledger is an open budget ledger. Its methods are safe for concurrent use, and several
// processes may share the database file.
type Ledger struct {
	db  *sql.DB
	sem chan struct{} // one writer at a time in this process
	now func() time.Time
	// barrier runs before every write but a filter's note (WithWriteBarrier).
	barrier func(context.Context) error
}

// Option configures a Ledger.
type Option func(*Ledger)

// WithWriteBarrier runs fn before every write transaction, except a filter's note (which only
// makes later differencing checks stricter), and fails the write if fn fails. The engine passes
// the provenance log's Sync: a job's records are appended without waiting for the disk, and
// this way no reservation, debit, refund or decision is stored before the records that lead
// to it are durable.
func WithWriteBarrier(fn func(context.Context) error) Option {
	return func(l *Ledger) { l.barrier = fn }
}

// schemaVersion is the version of the tables below, recorded in schema_version under "ledger".
// Version 2 added ledger_allocations; a version 1 database is upgraded in place (its grants hold
// no allocation, see Allocate). Version 3 added verify_checks (checks.go), version 4
// verify_commitments and verify_suspensions (commitments.go). Version 5 added
// ledger_debited_sums, filled from the history when a database is upgraded to it.
const schemaVersion = 5

// schema creates the ledger's tables if missing. Names are prefixed because the database is the
// shared control-plane store. Triggers make the state machine and costs tamper-resistant even to
// code that bypasses this package.
var schema = []string{
	`CREATE TABLE IF NOT EXISTS schema_version (
		component TEXT PRIMARY KEY,
		version   INTEGER NOT NULL
	)`,
	`CREATE TABLE IF NOT EXISTS ledger_accounts (
		account            TEXT PRIMARY KEY,
		total_epsilon_pico INTEGER NOT NULL CHECK (total_epsilon_pico >= 0),
		total_delta_atto   INTEGER NOT NULL CHECK (total_delta_atto >= 0),
		created_at         TEXT NOT NULL,
		updated_at         TEXT NOT NULL
	) STRICT`,
	`CREATE TABLE IF NOT EXISTS ledger_jobs (
		job          TEXT PRIMARY KEY,
		state        TEXT NOT NULL CHECK (state IN ('reserved', 'debited', 'refunded')),
		epsilon_pico INTEGER NOT NULL CHECK (epsilon_pico >= 0),
		delta_atto   INTEGER NOT NULL CHECK (delta_atto >= 0),
		mechanism    TEXT,
		reason       TEXT NOT NULL DEFAULT '',
		created_at   TEXT NOT NULL,
		updated_at   TEXT NOT NULL
	) STRICT`,
	`CREATE TABLE IF NOT EXISTS ledger_entries (
		seq     INTEGER PRIMARY KEY AUTOINCREMENT,
		job     TEXT NOT NULL REFERENCES ledger_jobs (job),
		account TEXT NOT NULL REFERENCES ledger_accounts (account),
		UNIQUE (job, account)
	) STRICT`,
	`CREATE INDEX IF NOT EXISTS ledger_entries_by_account ON ledger_entries (account, seq)`,
	`CREATE TRIGGER IF NOT EXISTS ledger_jobs_state_machine
		BEFORE UPDATE OF state ON ledger_jobs
		WHEN OLD.state <> 'reserved' OR NEW.state NOT IN ('debited', 'refunded')
		BEGIN SELECT RAISE(ABORT, 'ledger: illegal job state transition'); END`,
	`CREATE TRIGGER IF NOT EXISTS ledger_jobs_cost_immutable
		BEFORE UPDATE OF job, epsilon_pico, delta_atto, mechanism, created_at ON ledger_jobs
		BEGIN SELECT RAISE(ABORT, 'ledger: a job''s cost is immutable'); END`,
	`CREATE TRIGGER IF NOT EXISTS ledger_jobs_no_delete
		BEFORE DELETE ON ledger_jobs
		BEGIN SELECT RAISE(ABORT, 'ledger: jobs are never deleted'); END`,
	`CREATE TRIGGER IF NOT EXISTS ledger_entries_append_only_update
		BEFORE UPDATE ON ledger_entries
		BEGIN SELECT RAISE(ABORT, 'ledger: entries are append-only'); END`,
	`CREATE TRIGGER IF NOT EXISTS ledger_entries_append_only_delete
		BEFORE DELETE ON ledger_entries
		BEGIN SELECT RAISE(ABORT, 'ledger: entries are append-only'); END`,
	// Released answers by (grant, fingerprint), so an identical query is answered from here.
	`CREATE TABLE IF NOT EXISTS released_results (
		grant_id    TEXT NOT NULL,
		fingerprint TEXT NOT NULL,
		job         TEXT NOT NULL,
		result      BLOB NOT NULL,
		created_at  TEXT NOT NULL,
		PRIMARY KEY (grant_id, fingerprint)
	)`,
	// The filters computed on each grant, by the shape of the query (its source and group
	// keys), so a new query's filter can be checked against earlier ones for differencing.
	`CREATE TABLE IF NOT EXISTS computed_filters (
		seq        INTEGER PRIMARY KEY AUTOINCREMENT,
		grant_id   TEXT NOT NULL,
		shape      TEXT NOT NULL,
		filter     TEXT NOT NULL,
		job        TEXT NOT NULL,
		created_at TEXT NOT NULL,
		UNIQUE (grant_id, shape, filter)
	)`,
	`CREATE INDEX IF NOT EXISTS computed_filters_by_shape ON computed_filters (grant_id, shape, seq)`,
	// An allocation carves a holder's (a grant's) total out of a source account (a dataset's
	// lifetime budget). The amount never changes; the returned part only grows, up to the
	// amount; closing is final. Rows are never deleted.
	`CREATE TABLE IF NOT EXISTS ledger_allocations (
		holder                TEXT NOT NULL REFERENCES ledger_accounts (account),
		source                TEXT NOT NULL REFERENCES ledger_accounts (account),
		epsilon_pico          INTEGER NOT NULL CHECK (epsilon_pico >= 0),
		delta_atto            INTEGER NOT NULL CHECK (delta_atto >= 0),
		returned_epsilon_pico INTEGER NOT NULL DEFAULT 0 CHECK (returned_epsilon_pico BETWEEN 0 AND epsilon_pico),
		returned_delta_atto   INTEGER NOT NULL DEFAULT 0 CHECK (returned_delta_atto BETWEEN 0 AND delta_atto),
		closed                TEXT NOT NULL DEFAULT '',
		created_at            TEXT NOT NULL,
		updated_at            TEXT NOT NULL,
		PRIMARY KEY (holder, source),
		CHECK (holder <> source)
	) STRICT`,
	`CREATE INDEX IF NOT EXISTS ledger_allocations_by_source ON ledger_allocations (source)`,
	`CREATE TRIGGER IF NOT EXISTS ledger_allocations_amount_immutable
		BEFORE UPDATE OF holder, source, epsilon_pico, delta_atto, created_at ON ledger_allocations
		BEGIN SELECT RAISE(ABORT, 'ledger: an allocation''s amount is immutable'); END`,
	`CREATE TRIGGER IF NOT EXISTS ledger_allocations_return_grows
		BEFORE UPDATE OF returned_epsilon_pico, returned_delta_atto, closed ON ledger_allocations
		WHEN NEW.returned_epsilon_pico < OLD.returned_epsilon_pico OR NEW.returned_delta_atto < OLD.returned_delta_atto
			OR OLD.closed <> ''
		BEGIN SELECT RAISE(ABORT, 'ledger: a closed allocation does not change, and a return is never taken back'); END`,
	`CREATE TRIGGER IF NOT EXISTS ledger_allocations_no_delete
		BEFORE DELETE ON ledger_allocations
		BEGIN SELECT RAISE(ABORT, 'ledger: allocations are never deleted'); END`,
	// An account's direct charges (accountDirect) up to an entry: a reservation adds only the
	// entries after it instead of summing the account's whole history. The triggers keep it
	// exact whatever writes the database: a refund takes back what it had counted of the job,
	// and a new allocation, which can change which of its source's entries count, drops it.
	`CREATE TABLE IF NOT EXISTS ledger_direct_sums (
		account      TEXT PRIMARY KEY REFERENCES ledger_accounts (account),
		upto_seq     INTEGER NOT NULL,
		epsilon_pico INTEGER NOT NULL,
		delta_atto   INTEGER NOT NULL
	) STRICT`,
	`CREATE TRIGGER IF NOT EXISTS ledger_direct_sums_refund
		AFTER UPDATE OF state ON ledger_jobs WHEN NEW.state = 'refunded'
		BEGIN
			UPDATE ledger_direct_sums SET epsilon_pico = epsilon_pico - NEW.epsilon_pico, delta_atto = delta_atto - NEW.delta_atto
			WHERE account IN (SELECT e.account FROM ledger_entries e
				WHERE e.job = NEW.job AND e.seq <= ledger_direct_sums.upto_seq AND NOT EXISTS (
					SELECT 1 FROM ledger_entries h JOIN ledger_allocations a ON a.holder = h.account
					WHERE h.job = e.job AND a.source = e.account));
		END`,
	`CREATE TRIGGER IF NOT EXISTS ledger_direct_sums_allocation
		AFTER INSERT ON ledger_allocations
		BEGIN DELETE FROM ledger_direct_sums WHERE account = NEW.source; END`,
	// Each account's debited charges, kept as they happen, so that a balance (what explain,
	// a federated job and the budget report read) does not sum the account's history. A debit
	// is final and a cost immutable (the triggers above), so two triggers keep it exact
	// whatever writes the database: a job's debit adds its cost to each of its accounts, and
	// an entry added to a job already debited adds it to that account. A standing reservation
	// is found through ledger_jobs_reserved, which holds only the jobs still reserved.
	`CREATE TABLE IF NOT EXISTS ledger_debited_sums (
		account      TEXT PRIMARY KEY REFERENCES ledger_accounts (account),
		epsilon_pico INTEGER NOT NULL,
		delta_atto   INTEGER NOT NULL
	) STRICT`,
	`CREATE TRIGGER IF NOT EXISTS ledger_debited_sums_debit
		AFTER UPDATE OF state ON ledger_jobs WHEN NEW.state = 'debited'
		BEGIN
			INSERT INTO ledger_debited_sums (account, epsilon_pico, delta_atto)
				SELECT account, NEW.epsilon_pico, NEW.delta_atto FROM ledger_entries WHERE job = NEW.job
				ON CONFLICT (account) DO UPDATE SET epsilon_pico = epsilon_pico + excluded.epsilon_pico,
					delta_atto = delta_atto + excluded.delta_atto;
		END`,
	`CREATE TRIGGER IF NOT EXISTS ledger_debited_sums_entry
		AFTER INSERT ON ledger_entries
		BEGIN
			INSERT INTO ledger_debited_sums (account, epsilon_pico, delta_atto)
				SELECT NEW.account, j.epsilon_pico, j.delta_atto FROM ledger_jobs j WHERE j.job = NEW.job AND j.state = 'debited'
				ON CONFLICT (account) DO UPDATE SET epsilon_pico = epsilon_pico + excluded.epsilon_pico,
					delta_atto = delta_atto + excluded.delta_atto;
		END`,
	`CREATE INDEX IF NOT EXISTS ledger_jobs_reserved ON ledger_jobs (job) WHERE state = 'reserved'`,
}

// debitedSumsSQL fills ledger_debited_sums from the history, once, when a database from before
// version 5 is upgraded (the triggers keep it from then on).
const debitedSumsSQL = `INSERT INTO ledger_debited_sums (account, epsilon_pico, delta_atto)
	SELECT e.account, SUM(j.epsilon_pico), SUM(j.delta_atto)
	FROM ledger_entries e JOIN ledger_jobs j ON j.job = e.job
	WHERE j.state = 'debited' GROUP BY e.account`

// dsnParams: BEGIN IMMEDIATE for every read-write transaction, WAL, a busy timeout for writers
// in other processes, full fsync on commit, and enforced foreign keys.
const dsnParams = "_txlock=immediate&_busy_timeout=10000&_journal_mode=WAL&_synchronous=FULL&_foreign_keys=1"

// Open opens (creating if needed) the ledger in the SQLite database at path and creates its
// schema if missing. It refuses a database whose ledger schema is newer than this code.
func Open(ctx context.Context, path string, opts ...Option) (*Ledger, error) {
	if path == "" || strings.ContainsRune(path, '?') || strings.HasPrefix(path, "file:") {
		return nil, fmt.Errorf("ledger: database path %q must be a plain file path", path)
	}
	db, err := sql.Open("sqlite", path+"?"+dsnParams)
	if err != nil {
		return nil, fmt.Errorf("ledger: open: %w", err)
	}
	db.SetMaxOpenConns(8)
	l := &Ledger{db: db, sem: make(chan struct{}, 1), now: time.Now}
	for _, o := range opts {
		o(l)
	}
	if err := l.migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return l, nil
}

func (l *Ledger) migrate(ctx context.Context) error {
	return l.write(ctx, func(tx *sql.Tx) error {
		for _, stmt := range slices.Concat(schema, decisionSchema, checksSchema, commitmentsSchema) {
			if _, err := tx.ExecContext(ctx, stmt); err != nil {
				return fmt.Errorf("ledger: create schema: %w", err)
			}
		}
		var v int
		err := tx.QueryRowContext(ctx, `SELECT version FROM schema_version WHERE component = 'ledger'`).Scan(&v)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			_, err = tx.ExecContext(ctx, `INSERT INTO schema_version (component, version) VALUES ('ledger', ?)`, schemaVersion)
			if err != nil {
				return fmt.Errorf("ledger: record schema version: %w", err)
			}
		case err != nil:
			return fmt.Errorf("ledger: read schema version: %w", err)
		case v > schemaVersion:
			return fmt.Errorf("ledger: database schema version %d is newer than this build's %d", v, schemaVersion)
		case v < schemaVersion:
			// The statements above created what the newer version adds; a running sum starts
			// from the history it did not see.
			if v < 5 {
				if _, err := tx.ExecContext(ctx, debitedSumsSQL); err != nil {
					return fmt.Errorf("ledger: sum the debited charges: %w", err)
				}
			}
			if _, err := tx.ExecContext(ctx, `UPDATE schema_version SET version = ? WHERE component = 'ledger'`, schemaVersion); err != nil {
				return fmt.Errorf("ledger: record schema version: %w", err)
			}
		}
		return nil
	})
}

// Close closes the database.
func (l *Ledger) Close() error { return l.db.Close() }

// write runs fn in a read-write (BEGIN IMMEDIATE) transaction, one at a time in this process,
// and commits if fn returns nil, after the write barrier.
func (l *Ledger) write(ctx context.Context, fn func(*sql.Tx) error) error {
	if l.barrier != nil {
		if err := l.barrier(ctx); err != nil {
			return fmt.Errorf("ledger: write barrier: %w", err)
		}
	}
	return l.writeUnordered(ctx, fn)
}

// writeUnordered is write without the barrier.
func (l *Ledger) writeUnordered(ctx context.Context, fn func(*sql.Tx) error) error {
	select {
	case l.sem <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("ledger: %w", ctx.Err())
	}
	defer func() { <-l.sem }()
	tx, err := l.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("ledger: begin: %w", err)
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("ledger: commit: %w", err)
	}
	return nil
}

// read runs fn in a read-only transaction, so it sees one consistent snapshot.
func (l *Ledger) read(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := l.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("ledger: begin: %w", err)
	}
	defer tx.Rollback()
	return fn(tx)
}

const timeFormat = "2006-01-02T15:04:05.000000000Z07:00"

func (l *Ledger) stamp() string { return l.now().UTC().Format(timeFormat) }

// EnsureAccount creates account with the given total, or checks that it already has exactly that
// total (in ledger units). A different existing total is ErrAccountMismatch; use SetTotal to
// change a total deliberately.
func (l *Ledger) EnsureAccount(ctx context.Context, account string, total Budget) error {
	if account == "" {
		return fmt.Errorf("ledger: empty account name: %w", ErrInvalidReservation)
	}
	want, err := totalUnits(total)
	if err != nil {
		return err
	}
	return l.write(ctx, func(tx *sql.Tx) error {
		have, err := accountTotal(ctx, tx, account)
		if errors.Is(err, ErrUnknownAccount) {
			now := l.stamp()
			_, err = tx.ExecContext(ctx, `INSERT INTO ledger_accounts
				(account, total_epsilon_pico, total_delta_atto, created_at, updated_at) VALUES (?, ?, ?, ?, ?)`,
				account, want.eps, want.delta, now, now)
			if err != nil {
				return fmt.Errorf("ledger: create account %q: %w", account, err)
			}
			return nil
		}
		if err != nil {
			return err
		}
		if have != want {
			return fmt.Errorf("ledger: account %q has total epsilon=%g delta=%g, not epsilon=%g delta=%g: %w",
				account, have.budget().Epsilon, have.budget().Delta, total.Epsilon, total.Delta, ErrAccountMismatch)
		}
		return nil
	})
}

// SetTotal changes an existing account's total. Lowering it below what is already spent is
// allowed: the account then refuses every further cost.
func (l *Ledger) SetTotal(ctx context.Context, account string, total Budget) error {
	want, err := totalUnits(total)
	if err != nil {
		return err
	}
	return l.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE ledger_accounts SET total_epsilon_pico = ?, total_delta_atto = ?, updated_at = ?
			WHERE account = ?`, want.eps, want.delta, l.stamp(), account)
		if err != nil {
			return fmt.Errorf("ledger: set total of %q: %w", account, err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return fmt.Errorf("ledger: set total of %q: %w", account, err)
		}
		if n != 1 {
			return fmt.Errorf("ledger: account %q: %w", account, ErrUnknownAccount)
		}
		return nil
	})
}

// Reserve charges cost to every one of accounts for job, all or nothing, in one transaction. If
// any account would go over its total it returns an *ExhaustedError naming the first such account
// and writes nothing. An account that allocated part of its budget to another account in the
// list (a dataset to the job's grant) is charged through that allocation: the charge is checked
// against the holder alone and already counts in the source as allocated, so one holder cannot
// spend what the source allocated to another. An account that does not exist is ErrUnknownAccount; a job that already
// has an entry (in any state) is ErrDuplicateJob. mechanism, if not empty, must be JSON; it is
// kept with the entry for auditors.
func (l *Ledger) Reserve(ctx context.Context, job string, accounts []string, cost Budget, mechanism json.RawMessage) error {
	if job == "" || len(accounts) == 0 {
		return fmt.Errorf("ledger: reservation needs a job and at least one account: %w", ErrInvalidReservation)
	}
	if slices.Contains(accounts, "") {
		return fmt.Errorf("ledger: empty account name: %w", ErrInvalidReservation)
	}
	sorted := slices.Sorted(slices.Values(accounts))
	for i := 1; i < len(sorted); i++ {
		if sorted[i] == sorted[i-1] {
			return fmt.Errorf("ledger: account %q listed twice: %w", sorted[i], ErrInvalidReservation)
		}
	}
	c, err := costUnits(cost)
	if err != nil {
		return err
	}
	var mech any // NULL when absent
	if len(bytes.TrimSpace(mechanism)) > 0 {
		var buf bytes.Buffer
		if err := json.Compact(&buf, mechanism); err != nil {
			return fmt.Errorf("ledger: mechanism is not JSON: %w", ErrInvalidReservation)
		}
		mech = buf.String()
	}
	return l.write(ctx, func(tx *sql.Tx) error {
		var exists int
		err := tx.QueryRowContext(ctx, `SELECT 1 FROM ledger_jobs WHERE job = ?`, job).Scan(&exists)
		if err == nil {
			return fmt.Errorf("ledger: job %q: %w", job, ErrDuplicateJob)
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("ledger: look up job: %w", err)
		}
		for _, a := range accounts {
			total, err := accountTotal(ctx, tx, a)
			if err != nil {
				return err
			}
			covered, err := coveredBy(ctx, tx, a, accounts)
			if err != nil {
				return err
			}
			if covered {
				continue // checked against the holder, which is in accounts too
			}
			committed, err := accountCommitted(ctx, tx, a, true)
			if err != nil {
				return err
			}
			if committed.add(c).exceeds(total) {
				return &ExhaustedError{Account: a, Remaining: total.sub(committed).nonNegative().budget(), Requested: cost}
			}
		}
		now := l.stamp()
		_, err = tx.ExecContext(ctx, `INSERT INTO ledger_jobs
			(job, state, epsilon_pico, delta_atto, mechanism, created_at, updated_at) VALUES (?, 'reserved', ?, ?, ?, ?, ?)`,
			job, c.eps, c.delta, mech, now, now)
		if err != nil {
			return fmt.Errorf("ledger: reserve %q: %w", job, err)
		}
		for _, a := range accounts {
			if _, err := tx.ExecContext(ctx, `INSERT INTO ledger_entries (job, account) VALUES (?, ?)`, job, a); err != nil {
				return fmt.Errorf("ledger: reserve %q on %q: %w", job, a, err)
			}
		}
		return nil
	})
}

// Commit turns job's reservation into a debit: its result may now be released. A job that is not
// reserved (unknown, already debited or refunded) is ErrNotReserved.
func (l *Ledger) Commit(ctx context.Context, job string) error {
	return l.settle(ctx, job, StateDebited, "")
}

// Refund releases job's reservation because the job failed without releasing a result. reason is
// a code or fixed text for auditors, never a data value. A job that is not reserved — in
// particular one already debited — is ErrNotReserved.
func (l *Ledger) Refund(ctx context.Context, job string, reason string) error {
	return l.settle(ctx, job, StateRefunded, reason)
}

func (l *Ledger) settle(ctx context.Context, job, to, reason string) error {
	return l.write(ctx, func(tx *sql.Tx) error {
		var state string
		err := tx.QueryRowContext(ctx, `SELECT state FROM ledger_jobs WHERE job = ?`, job).Scan(&state)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("ledger: job %q has no reservation: %w", job, ErrNotReserved)
		}
		if err != nil {
			return fmt.Errorf("ledger: look up job: %w", err)
		}
		if state != StateReserved {
			return fmt.Errorf("ledger: job %q is %s: %w", job, state, ErrNotReserved)
		}
		_, err = tx.ExecContext(ctx, `UPDATE ledger_jobs SET state = ?, reason = ?, updated_at = ? WHERE job = ?`,
			to, reason, l.stamp(), job)
		if err != nil {
			return fmt.Errorf("ledger: mark job %q %s: %w", job, to, err)
		}
		return nil
	})
}

// Total returns account's total budget: one row, whatever the account's history (a job's
// defaults need only this).
func (l *Ledger) Total(ctx context.Context, account string) (Budget, error) {
	u, err := accountTotal(ctx, l.db, account)
	return u.budget(), err
}

// Balance returns account's total, allocated, spent (debited plus reserved), remaining and
// reserved budget, read in one snapshot.
func (l *Ledger) Balance(ctx context.Context, account string) (Balance, error) {
	var b Balance
	err := l.read(ctx, func(tx *sql.Tx) error {
		var err error
		b, err = balance(ctx, tx, account)
		return err
	})
	return b, err
}

func balance(ctx context.Context, q querier, account string) (Balance, error) {
	total, err := accountTotal(ctx, q, account)
	if err != nil {
		return Balance{}, err
	}
	spent, reserved, err := accountSpent(ctx, q, account)
	if err != nil {
		return Balance{}, err
	}
	allocated, err := accountAllocated(ctx, q, account)
	if err != nil {
		return Balance{}, err
	}
	committed, err := accountCommitted(ctx, q, account, false)
	if err != nil {
		return Balance{}, err
	}
	return Balance{
		Account:   account,
		Total:     total.budget(),
		Allocated: allocated.budget(),
		Spent:     spent.budget(),
		Remaining: total.sub(committed).nonNegative().budget(),
		Reserved:  reserved.budget(),
	}, nil
}

// History returns every entry of account, oldest reservation first.
func (l *Ledger) History(ctx context.Context, account string) ([]Entry, error) {
	out := []Entry{}
	err := l.read(ctx, func(tx *sql.Tx) error {
		if _, err := accountTotal(ctx, tx, account); err != nil {
			return err
		}
		rows, err := tx.QueryContext(ctx, `SELECT j.job, j.epsilon_pico, j.delta_atto, j.state, j.mechanism, j.reason,
				j.created_at, j.updated_at
			FROM ledger_entries e JOIN ledger_jobs j ON j.job = e.job
			WHERE e.account = ? ORDER BY e.seq`, account)
		if err != nil {
			return fmt.Errorf("ledger: history: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var (
				e                Entry
				c                units
				mech             sql.NullString
				created, updated string
			)
			if err := rows.Scan(&e.Job, &c.eps, &c.delta, &e.State, &mech, &e.Reason, &created, &updated); err != nil {
				return fmt.Errorf("ledger: history: %w", err)
			}
			e.Account = account
			e.Cost = c.budget()
			if mech.Valid {
				e.Mechanism = json.RawMessage(mech.String)
			}
			if e.CreatedAt, err = time.Parse(time.RFC3339Nano, created); err != nil {
				return fmt.Errorf("ledger: history: %w", err)
			}
			if e.UpdatedAt, err = time.Parse(time.RFC3339Nano, updated); err != nil {
				return fmt.Errorf("ledger: history: %w", err)
			}
			out = append(out, e)
		}
		return rows.Err()
	})
	return out, err
}

// querier is what both *sql.Tx and *sql.DB offer.
type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func accountTotal(ctx context.Context, q querier, account string) (units, error) {
	var u units
	err := q.QueryRowContext(ctx, `SELECT total_epsilon_pico, total_delta_atto FROM ledger_accounts WHERE account = ?`,
		account).Scan(&u.eps, &u.delta)
	if errors.Is(err, sql.ErrNoRows) {
		return units{}, fmt.Errorf("ledger: account %q: %w", account, ErrUnknownAccount)
	}
	if err != nil {
		return units{}, fmt.Errorf("ledger: read account %q: %w", account, err)
	}
	return u, nil
}

// accountSpent is what account's jobs that are not refunded cost (sequential composition),
// and the part of it still only reserved: the running sum of its debits
// (ledger_debited_sums) plus its standing reservations, which are few (the jobs in flight)
// and found through the partial index of reserved jobs. It reads no history.
func accountSpent(ctx context.Context, q querier, account string) (spent, reserved units, err error) {
	var debited units
	err = q.QueryRowContext(ctx, `SELECT epsilon_pico, delta_atto FROM ledger_debited_sums WHERE account = ?`, account).
		Scan(&debited.eps, &debited.delta)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return units{}, units{}, fmt.Errorf("ledger: read the debits of %q: %w", account, err)
	}
	// CROSS JOIN keeps the reserved jobs as the outer loop (SQLite does not reorder it): the
	// planner would otherwise walk the account's entries, its whole history.
	err = q.QueryRowContext(ctx, `SELECT COALESCE(SUM(j.epsilon_pico), 0), COALESCE(SUM(j.delta_atto), 0)
		FROM ledger_jobs j INDEXED BY ledger_jobs_reserved CROSS JOIN ledger_entries e
		WHERE j.state = 'reserved' AND e.job = j.job AND e.account = ?`, account).Scan(&reserved.eps, &reserved.delta)
	if err != nil {
		return units{}, units{}, fmt.Errorf("ledger: sum the reservations of %q: %w", account, err)
	}
	return debited.add(reserved), reserved, nil
}

// Reservation is what the ledger holds of one job: the accounts it reserved on, its cost and
// its state (reserved, debited or refunded).
type Reservation struct {
	Accounts []string
	Cost     Budget
	State    string
}

// Reservation returns job's reservation; ok is false when the ledger never reserved for it.
func (l *Ledger) Reservation(ctx context.Context, job string) (r Reservation, ok bool, err error) {
	err = l.read(ctx, func(tx *sql.Tx) error {
		var c units
		err := tx.QueryRowContext(ctx, `SELECT state, epsilon_pico, delta_atto FROM ledger_jobs WHERE job = ?`, job).Scan(&r.State, &c.eps, &c.delta)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("ledger: look up job: %w", err)
		}
		ok, r.Cost = true, c.budget()
		rows, err := tx.QueryContext(ctx, `SELECT account FROM ledger_entries WHERE job = ? ORDER BY seq`, job)
		if err != nil {
			return fmt.Errorf("ledger: look up job: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var a string
			if err := rows.Scan(&a); err != nil {
				return err
			}
			r.Accounts = append(r.Accounts, a)
		}
		return rows.Err()
	})
	return r, ok, err
}
