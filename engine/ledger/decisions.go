package ledger

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/c1b99f93/cleanroom/errcode"
)

// Decisions that stick. The released-answer cache answers every query with the same
// fingerprint (whatever its aliases, ORDER BY or LIMIT) from one stored output, so a decision on
// that output must answer them all: a rejected or denied output stays refused, and an output
// held for review is held once — a resubmission must not become a second queue entry that
// other reviewers could approve.
//
//	(none) ──▶ held ──approved──▶ released   (not sticky: a repeat is reviewed as usual)
//	   │         ├──rejected──▶ rejected      (final)
//	   │         └──withheld──▶ withheld      (final: the grant was revoked)
//	   └──────────denied─────▶ denied         (final: the egress policy denied it)
//
// A released decision may be followed by a new hold (a repeat held again for review). Final
// states never change: a trigger refuses it even to code that bypasses this package.

// Decision states.
const (
	DecisionHeld     = "held"
	DecisionReleased = "released"
	DecisionRejected = "rejected"
	DecisionDenied   = "denied"
	DecisionWithheld = "withheld"
)

// Decision is what became of a computed output on a grant.
type Decision struct {
	State string // a Decision… constant
	// Job is the job whose output was decided: the held job, or the one rejected or denied.
	Job string
	// Code is the stable error code a refusal answers with (review_rejected, egress_denied,
	// grant_revoked); Reason is the reviewer's or the policy's reason, which names no data
	// value.
	Code   errcode.Code
	Reason string
}

// Sticks reports whether the decision answers a repeat of the query instead of the cache: a
// hold while it waits, and every final refusal.
func (d Decision) Sticks() bool { return d.State != DecisionReleased }

// decisionSchema is created with the ledger's schema (migrate).
var decisionSchema = []string{
	`CREATE TABLE IF NOT EXISTS output_decisions (
		grant_id    TEXT NOT NULL,
		fingerprint TEXT NOT NULL,
		state       TEXT NOT NULL CHECK (state IN ('held', 'released', 'rejected', 'denied', 'withheld')),
		job         TEXT NOT NULL,
		code        TEXT NOT NULL DEFAULT '',
		reason      TEXT NOT NULL DEFAULT '',
		created_at  TEXT NOT NULL,
		updated_at  TEXT NOT NULL,
		PRIMARY KEY (grant_id, fingerprint)
	) STRICT`,
	`CREATE INDEX IF NOT EXISTS output_decisions_by_job ON output_decisions (job)`,
	`CREATE TRIGGER IF NOT EXISTS output_decisions_final
		BEFORE UPDATE ON output_decisions
		WHEN OLD.state IN ('rejected', 'denied', 'withheld')
		BEGIN SELECT RAISE(ABORT, 'ledger: a final output decision does not change'); END`,
	`CREATE TRIGGER IF NOT EXISTS output_decisions_no_delete
		BEFORE DELETE ON output_decisions
		BEGIN SELECT RAISE(ABORT, 'ledger: output decisions are never deleted'); END`,
}

// ErrDecided is returned by Decide when the output already has a decision that sticks: a
// final one, or a hold by another job.
var ErrDecided = errors.New("ledger: the output already has a decision")

// Decide stores d for the output (grant, fingerprint): a hold or a denial of a fresh output,
// or a hold of a repeat after a release. It refuses (ErrDecided) to replace a decision that
// sticks; the caller checks DecisionFor first, under its fingerprint lock.
func (l *Ledger) Decide(ctx context.Context, grant, fingerprint string, d Decision) error {
	if grant == "" || fingerprint == "" || d.Job == "" {
		return fmt.Errorf("ledger: decide: grant, fingerprint and job are required")
	}
	if d.State != DecisionHeld && d.State != DecisionDenied {
		return fmt.Errorf("ledger: decide: a new decision is held or denied, not %q", d.State)
	}
	return l.write(ctx, func(tx *sql.Tx) error {
		var old string
		err := tx.QueryRowContext(ctx, `SELECT state FROM output_decisions WHERE grant_id = ? AND fingerprint = ?`, grant, fingerprint).Scan(&old)
		now := l.stamp()
		switch {
		case errors.Is(err, sql.ErrNoRows):
			_, err = tx.ExecContext(ctx, `INSERT INTO output_decisions (grant_id, fingerprint, state, job, code, reason, created_at, updated_at)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, grant, fingerprint, d.State, d.Job, d.Code, d.Reason, now, now)
		case err != nil:
		case old != DecisionReleased:
			return fmt.Errorf("%w (%s)", ErrDecided, old)
		default:
			_, err = tx.ExecContext(ctx, `UPDATE output_decisions SET state = ?, job = ?, code = ?, reason = ?, updated_at = ?
				WHERE grant_id = ? AND fingerprint = ?`, d.State, d.Job, d.Code, d.Reason, now, grant, fingerprint)
		}
		if err != nil {
			return fmt.Errorf("ledger: decide: %w", err)
		}
		return nil
	})
}

// DecisionFor returns the decision on the output (grant, fingerprint), if any.
func (l *Ledger) DecisionFor(ctx context.Context, grant, fingerprint string) (Decision, bool, error) {
	var d Decision
	err := l.read(ctx, func(tx *sql.Tx) error {
		return tx.QueryRowContext(ctx, `SELECT state, job, code, reason FROM output_decisions WHERE grant_id = ? AND fingerprint = ?`,
			grant, fingerprint).Scan(&d.State, &d.Job, &d.Code, &d.Reason)
	})
	if errors.Is(err, sql.ErrNoRows) {
		return Decision{}, false, nil
	}
	if err != nil {
		return Decision{}, false, fmt.Errorf("ledger: decision: %w", err)
	}
	return d, true, nil
}

// DecisionOfJob returns the decision stored for job's output, if any.
func (l *Ledger) DecisionOfJob(ctx context.Context, job string) (Decision, bool, error) {
	var d Decision
	err := l.read(ctx, func(tx *sql.Tx) error {
		return tx.QueryRowContext(ctx, `SELECT state, job, code, reason FROM output_decisions WHERE job = ?`, job).Scan(&d.State, &d.Job, &d.Code, &d.Reason)
	})
	if errors.Is(err, sql.ErrNoRows) {
		return Decision{}, false, nil
	}
	if err != nil {
		return Decision{}, false, fmt.Errorf("ledger: decision of job: %w", err)
	}
	return d, true, nil
}

// SettleHeld ends the hold of job: released, rejected or withheld, with the code and reason of
// a refusal. It returns the fingerprint of the output it settled, or "" when job holds none
// (a job held before decisions were stored). A hold that was already settled cannot be
// settled otherwise (ErrDecided): a rejected output is never released afterwards. Settling it
// again as it was settled is a no-op.
func (l *Ledger) SettleHeld(ctx context.Context, job string, d Decision) (string, error) {
	switch d.State {
	case DecisionReleased, DecisionRejected, DecisionWithheld:
	default:
		return "", fmt.Errorf("ledger: settle: a hold ends released, rejected or withheld, not %q", d.State)
	}
	var fp string
	err := l.write(ctx, func(tx *sql.Tx) error {
		var grant, state string
		err := tx.QueryRowContext(ctx, `SELECT grant_id, fingerprint, state FROM output_decisions WHERE job = ?`, job).Scan(&grant, &fp, &state)
		if errors.Is(err, sql.ErrNoRows) {
			fp = ""
			return nil
		}
		if err != nil {
			return fmt.Errorf("ledger: settle: %w", err)
		}
		switch state {
		case d.State:
			return nil // settled so already: a retry after a failure to store the review
		case DecisionHeld:
		default:
			return fmt.Errorf("%w (%s)", ErrDecided, state)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE output_decisions SET state = ?, code = ?, reason = ?, updated_at = ?
			WHERE grant_id = ? AND fingerprint = ?`, d.State, d.Code, d.Reason, l.stamp(), grant, fp); err != nil {
			return fmt.Errorf("ledger: settle: %w", err)
		}
		return nil
	})
	return fp, err
}
