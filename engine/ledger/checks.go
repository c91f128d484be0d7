package ledger

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/c1b99f93/cleanroom/errcode"
)

// Verification checks (核验) spend no privacy budget — each answers an exact question about one
// person — so they are limited by count instead, in the same transactions as the budget: a
// verification job reserves its checks (a ledger job of zero cost, with one row per check),
// and Commit or Refund settles them with the job. Refunded checks count for nothing; reserved
// and debited ones count, so a job cut off by a crash keeps its checks counted (fail closed).
//
// A check is kept as a keyed digest of (dataset, attribute, subject) — never the subject — by
// the organisation that asked, so that the same fact can be checked only so many times per
// period whichever of its grants asks: enumerating the possible values of an attribute to learn
// the real one is refused, not merely slowed.

var checksSchema = []string{
	`CREATE TABLE IF NOT EXISTS verify_checks (
		seq        INTEGER PRIMARY KEY AUTOINCREMENT,
		job        TEXT NOT NULL REFERENCES ledger_jobs (job),
		org        TEXT NOT NULL,
		grant_id   TEXT NOT NULL,
		fact       TEXT NOT NULL,
		consent    TEXT NOT NULL,
		at         TEXT NOT NULL
	) STRICT`,
	`CREATE INDEX IF NOT EXISTS verify_checks_by_fact ON verify_checks (org, fact, at)`,
	// The applicant key each grant's verifications use: pinned by the key cut-and-choose
	// (commitments.go; job holds the key commitment's id), never changed.
	`CREATE TABLE IF NOT EXISTS verify_keys (
		grant_id   TEXT PRIMARY KEY,
		key_digest TEXT NOT NULL,
		job        TEXT NOT NULL,
		at         TEXT NOT NULL
	) STRICT`,
	`CREATE TRIGGER IF NOT EXISTS verify_keys_pinned
		BEFORE UPDATE ON verify_keys
		BEGIN SELECT RAISE(ABORT, 'ledger: a grant''s verification key is pinned'); END`,
	`CREATE INDEX IF NOT EXISTS verify_checks_by_grant ON verify_checks (grant_id, at)`,
	`CREATE INDEX IF NOT EXISTS verify_checks_by_job ON verify_checks (job)`,
	`CREATE TRIGGER IF NOT EXISTS verify_checks_append_only_update
		BEFORE UPDATE ON verify_checks
		BEGIN SELECT RAISE(ABORT, 'ledger: checks are append-only'); END`,
	`CREATE TRIGGER IF NOT EXISTS verify_checks_append_only_delete
		BEFORE DELETE ON verify_checks
		BEGIN SELECT RAISE(ABORT, 'ledger: checks are append-only'); END`,
}

// CheckLimits bound verification checks.
type CheckLimits struct {
	// PerFact is how many times one organisation may check one fact (a dataset's attribute
	// of one subject) per FactPeriod; at least 1.
	PerFact    int
	FactPeriod time.Duration
	// PerGrantDay is how many checks one grant may make per 24 hours; at least 1.
	PerGrantDay int
}

// ErrKeyPinned: the grant's verifications use another public key, the one pinned by its
// key cut-and-choose.
var ErrKeyPinned = errcode.New(errcode.VerifyKeyNotPinned, "this grant verifies with another public key, the one it pinned; a new key needs a new grant")

// ErrCheckLimit is matched (errors.Is) by every *CheckLimitError.
var ErrCheckLimit = errcode.New(errcode.VerifyLimit, "the verification limit is reached")

// CheckLimitError says which limit refused a reservation of checks. It wraps ErrCheckLimit.
type CheckLimitError struct {
	// PerFact: a fact was checked too often (Limit per Period); otherwise the grant's day.
	PerFact bool
	Limit   int
	Period  time.Duration
	// Index is the first check of the job over the limit (its position in the request).
	Index int
}

func (e *CheckLimitError) Error() string {
	if e.PerFact {
		return fmt.Sprintf("%s: check %d: the same fact may be checked %d time(s) per %s", errcode.VerifyLimit, e.Index+1, e.Limit, e.Period)
	}
	return fmt.Sprintf("%s: the grant may make %d checks per 24 hours", errcode.VerifyLimit, e.Limit)
}

// Unwrap makes errors.Is(err, ErrCheckLimit) and errcode.Of work.
func (e *CheckLimitError) Unwrap() error { return ErrCheckLimit }

// ReserveChecks reserves job's checks — facts are keyed digests, one per check, and consents
// the keyed digests of their consent or contract references — for org under
// grant, within lim, all or none: a job over a limit reserves nothing (a *CheckLimitError).
// The reservation is a ledger job of zero cost on account, so Commit and Refund settle it. key
// is the applicant key's digest, which must be the grant's pinned key (ErrKeyNotPinned when
// the grant has none, ErrKeyPinned when it is another); commitment is the claims commitment
// the job opened, which becomes used by job in the same transaction (ErrCommitmentUsed if it
// was used already). A grant whose verification is suspended reserves nothing.
func (l *Ledger) ReserveChecks(ctx context.Context, job, org, grant, account, key, commitment string, facts, consents []string, lim CheckLimits) error {
	if job == "" || org == "" || grant == "" || key == "" || commitment == "" || len(facts) == 0 || len(consents) != len(facts) || lim.PerFact < 1 || lim.PerGrantDay < 1 || lim.FactPeriod <= 0 {
		return fmt.Errorf("ledger: a reservation of checks needs a job, an organisation, a grant, a commitment, checks and limits: %w", ErrInvalidReservation)
	}
	if err := l.Reserve(ctx, job, []string{account}, Budget{}, nil); err != nil {
		return err
	}
	err := l.write(ctx, func(tx *sql.Tx) error {
		now := l.now().UTC()
		if err := suspended(ctx, tx, grant); err != nil {
			return err
		}
		var pinned string
		switch err := tx.QueryRowContext(ctx, `SELECT key_digest FROM verify_keys WHERE grant_id = ?`, grant).Scan(&pinned); {
		case errors.Is(err, sql.ErrNoRows):
			return ErrKeyNotPinned
		case err != nil:
			return fmt.Errorf("ledger: read the verification key: %w", err)
		case pinned != key:
			return ErrKeyPinned
		}
		var state string
		switch err := tx.QueryRowContext(ctx, `SELECT state FROM verify_commitments WHERE id = ? AND grant_id = ? AND kind = 'claims'`, commitment, grant).Scan(&state); {
		case errors.Is(err, sql.ErrNoRows):
			return ErrNoCommitment
		case err != nil:
			return err
		case state == StateUsed:
			return ErrCommitmentUsed
		case state != StateOpened:
			return ErrCommitmentState
		}
		if err := setState(ctx, tx, commitment, StateUsed, job); err != nil {
			return err
		}
		var today int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM verify_checks c JOIN ledger_jobs j ON j.job = c.job
			WHERE c.grant_id = ? AND c.at > ? AND j.state <> 'refunded'`, grant, now.Add(-24*time.Hour).Format(timeFormat)).Scan(&today); err != nil {
			return fmt.Errorf("ledger: count the grant's checks: %w", err)
		}
		if today+len(facts) > lim.PerGrantDay {
			return &CheckLimitError{Limit: lim.PerGrantDay, Period: 24 * time.Hour}
		}
		since := now.Add(-lim.FactPeriod).Format(timeFormat)
		count, err := tx.PrepareContext(ctx, `SELECT count(*) FROM verify_checks c JOIN ledger_jobs j ON j.job = c.job
			WHERE c.org = ? AND c.fact = ? AND c.at > ? AND j.state <> 'refunded'`)
		if err != nil {
			return err
		}
		defer count.Close()
		insert, err := tx.PrepareContext(ctx, `INSERT INTO verify_checks (job, org, grant_id, fact, consent, at) VALUES (?, ?, ?, ?, ?, ?)`)
		if err != nil {
			return err
		}
		defer insert.Close()
		stamp := now.Format(timeFormat)
		for i, f := range facts {
			var n int
			if err := count.QueryRowContext(ctx, org, f, since).Scan(&n); err != nil {
				return fmt.Errorf("ledger: count a fact's checks: %w", err)
			}
			if n >= lim.PerFact { // counts this job's earlier rows too: a fact twice in one job
				return &CheckLimitError{PerFact: true, Limit: lim.PerFact, Period: lim.FactPeriod, Index: i}
			}
			if _, err := insert.ExecContext(ctx, job, org, grant, f, consents[i], stamp); err != nil {
				return fmt.Errorf("ledger: reserve a check: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		// Nothing of the checks was written; the zero-cost reservation goes back.
		if rerr := l.Refund(context.WithoutCancel(ctx), job, string(errcode.Of(err))); rerr != nil && !errors.Is(rerr, ErrNotReserved) {
			return errors.Join(err, rerr)
		}
		return err
	}
	return nil
}

// CheckConsents returns job's checks as (fact, consent) keyed digests in request order: an
// auditor holding a request and the audit key matches each row's consent reference to it.
func (l *Ledger) CheckConsents(ctx context.Context, job string) ([][2]string, error) {
	var out [][2]string
	err := l.read(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT fact, consent FROM verify_checks WHERE job = ? ORDER BY seq`, job)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var fc [2]string
			if err := rows.Scan(&fc[0], &fc[1]); err != nil {
				return err
			}
			out = append(out, fc)
		}
		return rows.Err()
	})
	return out, err
}

// Checks is how many checks of org on fact count now (reserved or debited within period).
func (l *Ledger) Checks(ctx context.Context, org, fact string, period time.Duration) (int, error) {
	var n int
	err := l.read(ctx, func(tx *sql.Tx) error {
		return tx.QueryRowContext(ctx, `SELECT count(*) FROM verify_checks c JOIN ledger_jobs j ON j.job = c.job
			WHERE c.org = ? AND c.fact = ? AND c.at > ? AND j.state <> 'refunded'`, org, fact, l.now().UTC().Add(-period).Format(timeFormat)).Scan(&n)
	})
	return n, err
}
