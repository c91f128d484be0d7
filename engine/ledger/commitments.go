package ledger

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/c1b99f93/cleanroom/errcode"
)

// Cut-and-choose commitments (docs/he.md, covert security against a malicious applicant). An
// applicant commits to K key candidates, or to K shares of each claims ciphertext; the
// challenge — the index per object left closed — is drawn by the engine after nothing but
// the commitment is known and stored with it here, in the same row, before the applicant sees
// it, and is never drawn again: a commitment has one challenge for its life.
//
// A commitment's state only moves forward:
//
//	challenged ─▶ opened ─▶ used        every opening rebuilt its digest; used by a job or the pin
//	    │            └────▶ expired     opened, but no job used it before its deadline
//	    ├──────────▶ cheated            an opening did not rebuild its digest (evidence in provenance)
//	    └──────────▶ abandoned          its deadline passed unopened
//
// cheated and abandoned suspend the grant's verification (verify_suspensions): abandoning a
// challenge the applicant dislikes and committing again would let it draw challenges until
// one suits a cheat, so leaving one unopened costs what being caught costs.

var commitmentsSchema = []string{
	`CREATE TABLE IF NOT EXISTS verify_commitments (
		id         TEXT PRIMARY KEY,
		grant_id   TEXT NOT NULL,
		kind       TEXT NOT NULL CHECK (kind IN ('key', 'claims')),
		digests    TEXT NOT NULL,
		challenges TEXT NOT NULL,
		state      TEXT NOT NULL CHECK (state IN ('challenged', 'opened', 'used', 'expired', 'cheated', 'abandoned')),
		created_at TEXT NOT NULL,
		deadline   TEXT NOT NULL,
		job        TEXT NOT NULL DEFAULT ''
	) STRICT`,
	`CREATE INDEX IF NOT EXISTS verify_commitments_by_grant ON verify_commitments (grant_id, kind)`,
	// The challenge and the digests are fixed when the commitment is stored.
	`CREATE TRIGGER IF NOT EXISTS verify_commitments_fixed
		BEFORE UPDATE OF id, grant_id, kind, digests, challenges, created_at, deadline ON verify_commitments
		BEGIN SELECT RAISE(ABORT, 'ledger: a commitment and its challenge are fixed'); END`,
	`CREATE TRIGGER IF NOT EXISTS verify_commitments_forward
		BEFORE UPDATE OF state ON verify_commitments
		WHEN NOT ((OLD.state = 'challenged' AND NEW.state IN ('opened', 'used', 'cheated', 'abandoned'))
			OR (OLD.state = 'opened' AND NEW.state IN ('opened', 'used', 'expired', 'cheated')))
		BEGIN SELECT RAISE(ABORT, 'ledger: a commitment''s state only moves forward'); END`,
	`CREATE TABLE IF NOT EXISTS verify_suspensions (
		grant_id   TEXT PRIMARY KEY,
		reason     TEXT NOT NULL,
		commitment TEXT NOT NULL,
		at         TEXT NOT NULL
	) STRICT`,
	`CREATE TRIGGER IF NOT EXISTS verify_suspensions_final
		BEFORE DELETE ON verify_suspensions
		BEGIN SELECT RAISE(ABORT, 'ledger: a suspension of verification is final'); END`,
}

// Commitment kinds and states.
const (
	CommitKey    = "key"
	CommitClaims = "claims"

	StateChallenged = "challenged"
	StateOpened     = "opened"
	StateUsed       = "used"
	StateExpired    = "expired"
	StateCheated    = "cheated"
	StateAbandoned  = "abandoned"
)

// Commitment is a stored commitment with its challenge.
type Commitment struct {
	ID, Grant, Kind string
	// Digests holds, per object (one key, or each claims ciphertext), its K candidates' digests.
	Digests [][]string
	// Challenges holds, per object, the index of the candidate left closed.
	Challenges []int
	State      string
	Created    time.Time
	Deadline   time.Time
	Job        string
}

// The errors of commitments.
var (
	// ErrVerifySuspended: the grant's verification is suspended.
	ErrVerifySuspended = errcode.New(errcode.VerifySuspended, "the grant's verification is suspended")
	// ErrKeyNotPinned: the grant has no pinned applicant key.
	ErrKeyNotPinned = errcode.New(errcode.VerifyKeyNotPinned, "the grant has no pinned verification key")
	// ErrKeyCommitted: the grant already has a key commitment (one per grant, whatever became of it).
	ErrKeyCommitted = errcode.New(errcode.Conflict, "the grant already committed to key candidates")
	// ErrCommitmentUsed: the commitment was opened and used already.
	ErrCommitmentUsed = errcode.New(errcode.VerifyOpeningReplayed, "the commitment was used already")
	// ErrCommitmentState: the commitment is not in a state that allows the step.
	ErrCommitmentState = errcode.New(errcode.Conflict, "the commitment is not open for this step")
	// ErrNoCommitment: no such commitment on the grant.
	ErrNoCommitment = errcode.New(errcode.NotFound, "no such commitment")
)

// AddCommitment stores c (state challenged). A key commitment needs a grant with none before
// it and no pinned key; a claims commitment needs a pinned key. Neither is taken while the
// grant's verification is suspended.
func (l *Ledger) AddCommitment(ctx context.Context, c Commitment) error {
	if c.ID == "" || c.Grant == "" || len(c.Digests) == 0 || len(c.Digests) != len(c.Challenges) || (c.Kind != CommitKey && c.Kind != CommitClaims) {
		return fmt.Errorf("ledger: a commitment needs an id, a grant, a kind and one challenge per object: %w", ErrInvalidReservation)
	}
	digests, err := json.Marshal(c.Digests)
	if err != nil {
		return err
	}
	challenges, err := json.Marshal(c.Challenges)
	if err != nil {
		return err
	}
	return l.write(ctx, func(tx *sql.Tx) error {
		if err := suspended(ctx, tx, c.Grant); err != nil {
			return err
		}
		var pinned int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM verify_keys WHERE grant_id = ?`, c.Grant).Scan(&pinned); err != nil {
			return err
		}
		switch c.Kind {
		case CommitKey:
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM verify_commitments WHERE grant_id = ? AND kind = 'key'`, c.Grant).Scan(&n); err != nil {
				return err
			}
			if n > 0 || pinned > 0 {
				return ErrKeyCommitted
			}
		case CommitClaims:
			if pinned == 0 {
				return ErrKeyNotPinned
			}
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO verify_commitments (id, grant_id, kind, digests, challenges, state, created_at, deadline)
			VALUES (?, ?, ?, ?, ?, 'challenged', ?, ?)`, c.ID, c.Grant, c.Kind, string(digests), string(challenges),
			c.Created.UTC().Format(timeFormat), c.Deadline.UTC().Format(timeFormat))
		return err
	})
}

func suspended(ctx context.Context, tx *sql.Tx, grant string) error {
	var reason string
	switch err := tx.QueryRowContext(ctx, `SELECT reason FROM verify_suspensions WHERE grant_id = ?`, grant).Scan(&reason); {
	case errors.Is(err, sql.ErrNoRows):
		return nil
	case err != nil:
		return err
	}
	return fmt.Errorf("%w (%s)", ErrVerifySuspended, reason)
}

// GetCommitment reads commitment id of grant (ErrNoCommitment if it is another grant's).
func (l *Ledger) GetCommitment(ctx context.Context, grant, id string) (Commitment, error) {
	var c Commitment
	err := l.read(ctx, func(tx *sql.Tx) error {
		cs, err := commitments(ctx, tx, `WHERE id = ? AND grant_id = ?`, id, grant)
		if err != nil {
			return err
		}
		if len(cs) == 0 {
			return ErrNoCommitment
		}
		c = cs[0]
		return nil
	})
	return c, err
}

func commitments(ctx context.Context, tx *sql.Tx, where string, args ...any) ([]Commitment, error) {
	rows, err := tx.QueryContext(ctx, `SELECT id, grant_id, kind, digests, challenges, state, created_at, deadline, job FROM verify_commitments `+where+` ORDER BY created_at, id`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Commitment
	for rows.Next() {
		var c Commitment
		var digests, challenges, created, deadline string
		if err := rows.Scan(&c.ID, &c.Grant, &c.Kind, &digests, &challenges, &c.State, &created, &deadline, &c.Job); err != nil {
			return nil, err
		}
		if err := json.Unmarshal([]byte(digests), &c.Digests); err != nil {
			return nil, fmt.Errorf("ledger: commitment %s: %w", c.ID, err)
		}
		if err := json.Unmarshal([]byte(challenges), &c.Challenges); err != nil {
			return nil, fmt.Errorf("ledger: commitment %s: %w", c.ID, err)
		}
		c.Created, _ = time.Parse(timeFormat, created)
		c.Deadline, _ = time.Parse(timeFormat, deadline)
		out = append(out, c)
	}
	return out, rows.Err()
}

// SetCommitmentState moves commitment id forward to state (the table's trigger refuses any
// other move), recording job for claims opened by a job.
func (l *Ledger) SetCommitmentState(ctx context.Context, id, state, job string) error {
	return l.write(ctx, func(tx *sql.Tx) error {
		return setState(ctx, tx, id, state, job)
	})
}

func setState(ctx context.Context, tx *sql.Tx, id, state, job string) error {
	res, err := tx.ExecContext(ctx, `UPDATE verify_commitments SET state = ?, job = CASE WHEN ? = '' THEN job ELSE ? END WHERE id = ?`, state, job, job, id)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrCommitmentState, err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return ErrNoCommitment
	}
	return nil
}

// Suspend ends commitment id as state (cheated or abandoned) and suspends grant's
// verification for reason, in one transaction. A grant already suspended stays suspended
// for its first reason.
func (l *Ledger) Suspend(ctx context.Context, grant, id, state, reason string) error {
	if state != StateCheated && state != StateAbandoned {
		return fmt.Errorf("ledger: a suspension ends a commitment as cheated or abandoned: %w", ErrInvalidReservation)
	}
	return l.write(ctx, func(tx *sql.Tx) error {
		if err := setState(ctx, tx, id, state, ""); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO verify_suspensions (grant_id, reason, commitment, at) VALUES (?, ?, ?, ?)
			ON CONFLICT (grant_id) DO NOTHING`, grant, reason, id, l.now().UTC().Format(timeFormat))
		return err
	})
}

// PinKey pins keyDigest as grant's verification key from key commitment id, which becomes used.
func (l *Ledger) PinKey(ctx context.Context, grant, id, keyDigest string) error {
	return l.write(ctx, func(tx *sql.Tx) error {
		if err := suspended(ctx, tx, grant); err != nil {
			return err
		}
		if err := setState(ctx, tx, id, StateUsed, ""); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO verify_keys (grant_id, key_digest, job, at) VALUES (?, ?, ?, ?)`,
			grant, keyDigest, id, l.now().UTC().Format(timeFormat))
		if err != nil {
			return fmt.Errorf("ledger: pin the verification key: %w", err)
		}
		return nil
	})
}

// VerifyStatus is a grant's verification state.
type VerifyStatus struct {
	// KeyDigest is the pinned key's digest, "" if none.
	KeyDigest string
	// Suspended is the suspension's reason, "" if none, with the commitment that caused it.
	Suspended, SuspendedBy string
	// Commitments are the grant's commitments, oldest first.
	Commitments []Commitment
}

// Status reads grant's verification state.
func (l *Ledger) Status(ctx context.Context, grant string) (VerifyStatus, error) {
	var st VerifyStatus
	err := l.read(ctx, func(tx *sql.Tx) error {
		if err := tx.QueryRowContext(ctx, `SELECT key_digest FROM verify_keys WHERE grant_id = ?`, grant).Scan(&st.KeyDigest); err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		if err := tx.QueryRowContext(ctx, `SELECT reason, commitment FROM verify_suspensions WHERE grant_id = ?`, grant).Scan(&st.Suspended, &st.SuspendedBy); err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		var err error
		st.Commitments, err = commitments(ctx, tx, `WHERE grant_id = ?`, grant)
		return err
	})
	return st, err
}

// Overdue returns grant's commitments whose deadline is before now and that are still
// challenged (to be abandoned) or opened (to expire).
func (l *Ledger) Overdue(ctx context.Context, grant string, now time.Time) ([]Commitment, error) {
	var out []Commitment
	err := l.read(ctx, func(tx *sql.Tx) error {
		var err error
		out, err = commitments(ctx, tx, `WHERE grant_id = ? AND state IN ('challenged', 'opened') AND deadline < ?`, grant, now.UTC().Format(timeFormat))
		return err
	})
	return out, err
}
