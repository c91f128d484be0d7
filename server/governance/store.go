// Package governance decides and keeps who may use what: applications, grants with their
// purpose, scope, period and state, jobs with their state and results, and reviews.
//
// Service makes the decisions (approve, reject, grant transitions, reviews) in one write order —
// intent, effects, outcome — and reconciles at start-up those a crash left open; it reaches the
// engine only through the ports it declares (ports.go). Store keeps state and enforces its
// transitions (a pending application is decided once; a revoked grant stays revoked; a job moves
// queued → running → in_review? → released | denied | failed) in the platform's SQLite
// control-plane database beside the budget ledger. Who may ask for a decision is the server's
// and the policy's business.
package governance

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"github.com/c1b99f93/cleanroom/server/api"
)

// ErrNotFound: no such application, grant or job.
var ErrNotFound = errors.New("governance: not found")

// ErrConflict: the resource is not in a state that allows the transition.
var ErrConflict = errors.New("governance: conflicting state")

// ErrDuplicateReview: the reviewer already reviewed this job.
var ErrDuplicateReview = errors.New("governance: already reviewed")

var schema = []string{
	`CREATE TABLE IF NOT EXISTS gov_applications (
		id         TEXT PRIMARY KEY,
		doc        TEXT NOT NULL,
		state      TEXT NOT NULL CHECK (state IN ('pending', 'approved', 'rejected')),
		org        TEXT NOT NULL,
		created_at TEXT NOT NULL
	) STRICT`,
	`CREATE TABLE IF NOT EXISTS gov_grants (
		id         TEXT PRIMARY KEY,
		doc        TEXT NOT NULL,
		state      TEXT NOT NULL CHECK (state IN ('active', 'suspended', 'revoked')),
		org        TEXT NOT NULL,
		created_at TEXT NOT NULL
	) STRICT`,
	`CREATE TABLE IF NOT EXISTS gov_jobs (
		id         TEXT PRIMARY KEY,
		doc        TEXT NOT NULL,
		state      TEXT NOT NULL CHECK (state IN ('queued', 'running', 'in_review', 'released', 'denied', 'failed')),
		org        TEXT NOT NULL,
		grant_id   TEXT NOT NULL REFERENCES gov_grants (id),
		hold       TEXT,
		result     TEXT,
		created_at TEXT NOT NULL
	) STRICT`,
	`CREATE INDEX IF NOT EXISTS gov_jobs_by_state ON gov_jobs (state, created_at)`,
	// The rate limits count a grant's jobs of the last hour and day for every job: without
	// this index each count scanned every stored job (26× slower at 100,000 jobs); it covers
	// the count (id included), so no row is read.
	`CREATE INDEX IF NOT EXISTS gov_jobs_by_grant ON gov_jobs (grant_id, created_at, id)`,
	// A running job's outcome, stored as soon as the engine returns it and shown (moved into
	// gov_jobs) only when the completion quantum ends, so a crash in between loses nothing.
	`CREATE TABLE IF NOT EXISTS gov_pending_outcomes (
		job        TEXT PRIMARY KEY REFERENCES gov_jobs (id),
		doc        TEXT NOT NULL,
		hold       TEXT,
		result     TEXT
	) STRICT`,
	// A queued job's input beyond its document (a verification's claims, megabytes of
	// ciphertexts), kept until the job ends: a job's document is listed, its input never.
	`CREATE TABLE IF NOT EXISTS gov_job_inputs (
		job   TEXT PRIMARY KEY REFERENCES gov_jobs (id),
		input BLOB NOT NULL
	) STRICT`,
	`CREATE TABLE IF NOT EXISTS gov_reviews (
		job        TEXT NOT NULL REFERENCES gov_jobs (id),
		reviewer   TEXT NOT NULL,
		doc        TEXT NOT NULL,
		created_at TEXT NOT NULL,
		PRIMARY KEY (job, reviewer)
	) STRICT`,
	// A job's final state is final; a revoked grant stays revoked.
	`CREATE TRIGGER IF NOT EXISTS gov_jobs_final
		BEFORE UPDATE OF state ON gov_jobs
		WHEN OLD.state IN ('released', 'denied', 'failed')
		BEGIN SELECT RAISE(ABORT, 'governance: a finished job does not change'); END`,
	`CREATE TRIGGER IF NOT EXISTS gov_grants_revoked_final
		BEFORE UPDATE OF state ON gov_grants
		WHEN OLD.state = 'revoked'
		BEGIN SELECT RAISE(ABORT, 'governance: a revoked grant stays revoked'); END`,
	`CREATE TRIGGER IF NOT EXISTS gov_reviews_append_only
		BEFORE UPDATE ON gov_reviews
		BEGIN SELECT RAISE(ABORT, 'governance: reviews are append-only'); END`,
}

// dsnParams match the ledger's: immediate write transactions, WAL, durable commits.
const dsnParams = "_txlock=immediate&_busy_timeout=10000&_journal_mode=WAL&_synchronous=FULL&_foreign_keys=1"

// Store is the governance store. Safe for concurrent use.
type Store struct {
	db *sql.DB
}

// Open opens (creating if needed) the store in the SQLite database at path.
func Open(ctx context.Context, path string) (*Store, error) {
	if path == "" || strings.ContainsRune(path, '?') || strings.HasPrefix(path, "file:") {
		return nil, fmt.Errorf("governance: database path %q must be a plain file path", path)
	}
	db, err := sql.Open("sqlite", path+"?"+dsnParams)
	if err != nil {
		return nil, fmt.Errorf("governance: open: %w", err)
	}
	db.SetMaxOpenConns(4)
	s := &Store{db: db}
	if err := s.tx(ctx, func(tx *sql.Tx) error {
		for _, stmt := range schema {
			if _, err := tx.ExecContext(ctx, stmt); err != nil {
				return fmt.Errorf("governance: create schema: %w", err)
			}
		}
		return nil
	}); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

func (s *Store) tx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("governance: begin: %w", err)
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("governance: commit: %w", err)
	}
	return nil
}

// timeFormat has a fixed width, so stored times sort as text in time order.
const timeFormat = "2006-01-02T15:04:05.000000000Z07:00"

func stamp(t time.Time) string { return t.UTC().Format(timeFormat) }

// --- applications and grants ---

// CreateApplication stores a new pending application.
func (s *Store) CreateApplication(ctx context.Context, a api.Application) error {
	doc, err := json.Marshal(a)
	if err != nil {
		return err
	}
	_, err = s.db.ExecContext(ctx, `INSERT INTO gov_applications (id, doc, state, org, created_at) VALUES (?, ?, ?, ?, ?)`,
		a.ID, string(doc), a.State, a.Org, stamp(a.CreatedAt))
	return err
}

// Application returns an application.
func (s *Store) Application(ctx context.Context, id string) (api.Application, error) {
	var a api.Application
	return a, getDoc(ctx, s.db, `SELECT doc FROM gov_applications WHERE id = ?`, id, &a)
}

// Applications lists applications, newest first; org "" lists every org's.
func (s *Store) Applications(ctx context.Context, org string) ([]api.Application, error) {
	return listDocs[api.Application](ctx, s.db, `SELECT doc FROM gov_applications WHERE (? = '' OR org = ?) ORDER BY created_at DESC, id`, org, org)
}

// DecideApplication settles a pending application: update edits it (state, reason, grant,
// decider), and when the edited application is approved, grant is stored with it in the same
// transaction. ErrConflict if it was not pending.
func (s *Store) DecideApplication(ctx context.Context, id string, update func(*api.Application), grant *api.Grant) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		var a api.Application
		if err := getDoc(ctx, tx, `SELECT doc FROM gov_applications WHERE id = ?`, id, &a); err != nil {
			return err
		}
		if a.State != api.ApplicationPending {
			return fmt.Errorf("%w: application %s is %s", ErrConflict, id, a.State)
		}
		update(&a)
		if err := putDoc(ctx, tx, `UPDATE gov_applications SET doc = ?, state = ? WHERE id = ?`, a, a.State, id); err != nil {
			return err
		}
		if grant == nil {
			return nil
		}
		doc, err := json.Marshal(grant)
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO gov_grants (id, doc, state, org, created_at) VALUES (?, ?, ?, ?, ?)`,
			grant.ID, string(doc), grant.State, grant.Org, stamp(grant.CreatedAt))
		return err
	})
}

// Grant returns a grant as stored (its budget figures are the caller's to fill in).
func (s *Store) Grant(ctx context.Context, id string) (api.Grant, error) {
	var g api.Grant
	return g, getDoc(ctx, s.db, `SELECT doc FROM gov_grants WHERE id = ?`, id, &g)
}

// Grants lists grants, newest first; org "" lists every org's.
func (s *Store) Grants(ctx context.Context, org string) ([]api.Grant, error) {
	return listDocs[api.Grant](ctx, s.db, `SELECT doc FROM gov_grants WHERE (? = '' OR org = ?) ORDER BY created_at DESC, id`, org, org)
}

// SetGrantState moves a grant from one of the states in from to state to. ErrConflict when
// it is in none of them.
func (s *Store) SetGrantState(ctx context.Context, id string, from []string, to string, at time.Time) (api.Grant, error) {
	var g api.Grant
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if err := getDoc(ctx, tx, `SELECT doc FROM gov_grants WHERE id = ?`, id, &g); err != nil {
			return err
		}
		if !slices.Contains(from, g.State) {
			return fmt.Errorf("%w: grant %s is %s", ErrConflict, id, g.State)
		}
		g.State, g.UpdatedAt = to, at.UTC()
		return putDoc(ctx, tx, `UPDATE gov_grants SET doc = ?, state = ? WHERE id = ?`, g, g.State, id)
	})
	return g, err
}

// --- jobs ---

// Job is a job as stored: its public document, and the held result and hold while it waits
// for reviewers (or the released result).
type Job struct {
	api.Job
	Hold   json.RawMessage // the engine's hold, while in review and after
	Output json.RawMessage // the computed result: held while in review, released after
}

// CreateJob stores a queued job.
func (s *Store) CreateJob(ctx context.Context, j api.Job) error {
	doc, err := json.Marshal(j)
	if err != nil {
		return err
	}
	_, err = s.db.ExecContext(ctx, `INSERT INTO gov_jobs (id, doc, state, org, grant_id, created_at) VALUES (?, ?, ?, ?, ?, ?)`,
		j.ID, string(doc), j.State, j.Org, j.Grant, stamp(j.CreatedAt))
	return err
}

func insertJob(ctx context.Context, tx *sql.Tx, j api.Job) error {
	doc, err := json.Marshal(j)
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO gov_jobs (id, doc, state, org, grant_id, created_at) VALUES (?, ?, ?, ?, ?, ?)`,
		j.ID, string(doc), j.State, j.Org, j.Grant, stamp(j.CreatedAt))
	return err
}

// Job returns a job.
func (s *Store) Job(ctx context.Context, id string) (Job, error) {
	return scanJob(s.db.QueryRowContext(ctx, `SELECT doc, hold, result FROM gov_jobs WHERE id = ?`, id))
}

// JobFilter selects jobs; empty fields match everything.
type JobFilter struct {
	Org   string
	Grant string
	State string
}

// Jobs lists jobs, newest first.
func (s *Store) Jobs(ctx context.Context, f JobFilter) ([]Job, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT doc, hold, result FROM gov_jobs
		WHERE (? = '' OR org = ?) AND (? = '' OR grant_id = ?) AND (? = '' OR state = ?)
		ORDER BY created_at DESC, id`, f.Org, f.Org, f.Grant, f.Grant, f.State, f.State)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Job
	for rows.Next() {
		j, err := scanJob(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, j)
	}
	return out, rows.Err()
}

// UpdateJob applies edit to a job whose state is one of from, in one transaction.
// ErrConflict when it is in none of them.
func (s *Store) UpdateJob(ctx context.Context, id string, from []string, edit func(*Job) error) (Job, error) {
	var j Job
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var err error
		if j, err = scanJob(tx.QueryRowContext(ctx, `SELECT doc, hold, result FROM gov_jobs WHERE id = ?`, id)); err != nil {
			return err
		}
		if !slices.Contains(from, j.State) {
			return fmt.Errorf("%w: job %s is %s", ErrConflict, id, j.State)
		}
		if err := edit(&j); err != nil {
			return err
		}
		return s.writeJob(ctx, tx, j)
	})
	return j, err
}

// SavePendingOutcome stores a running job's final document (its outcome) without showing it:
// the job stays running to every reader until ApplyPendingOutcome. ErrConflict when the job is
// not running.
func (s *Store) SavePendingOutcome(ctx context.Context, j Job) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		var state string
		if err := tx.QueryRowContext(ctx, `SELECT state FROM gov_jobs WHERE id = ?`, j.ID).Scan(&state); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return ErrNotFound
			}
			return err
		}
		if state != api.JobRunning {
			return fmt.Errorf("%w: job %s is %s", ErrConflict, j.ID, state)
		}
		doc, err := json.Marshal(j.Job)
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT OR REPLACE INTO gov_pending_outcomes (job, doc, hold, result) VALUES (?, ?, ?, ?)`,
			j.ID, string(doc), nullable(j.Hold), nullable(j.Output))
		return err
	})
}

// ApplyPendingOutcome shows a running job's stored outcome, updated at now: it becomes the job,
// in one transaction with the removal of the pending row. It reports false when the job has
// none (or is no longer running).
func (s *Store) ApplyPendingOutcome(ctx context.Context, id string, now time.Time) (bool, error) {
	applied := false
	err := s.tx(ctx, func(tx *sql.Tx) error {
		j, err := scanJob(tx.QueryRowContext(ctx, `SELECT doc, hold, result FROM gov_pending_outcomes WHERE job = ?`, id))
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		var state string
		if err := tx.QueryRowContext(ctx, `SELECT state FROM gov_jobs WHERE id = ?`, id).Scan(&state); err != nil {
			return err
		}
		if state == api.JobRunning {
			j.UpdatedAt = now
			if err := s.writeJob(ctx, tx, j); err != nil {
				return err
			}
			applied = true
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM gov_pending_outcomes WHERE job = ?`, id)
		return err
	})
	return applied, err
}

func (s *Store) writeJob(ctx context.Context, tx *sql.Tx, j Job) error {
	doc, err := json.Marshal(j.Job)
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, `UPDATE gov_jobs SET doc = ?, state = ?, hold = ?, result = ? WHERE id = ?`,
		string(doc), j.State, nullable(j.Hold), nullable(j.Output), j.ID)
	if err == nil && j.State != api.JobQueued && j.State != api.JobRunning {
		_, err = tx.ExecContext(ctx, `DELETE FROM gov_job_inputs WHERE job = ?`, j.ID)
	}
	return err
}

// JobInput returns a queued or running job's input (nil for a job without one).
func (s *Store) JobInput(ctx context.Context, id string) ([]byte, error) {
	var b []byte
	err := s.db.QueryRowContext(ctx, `SELECT input FROM gov_job_inputs WHERE job = ?`, id).Scan(&b)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	return b, err
}

// AddReview appends a review to a job in review and applies edit (which settles the job when
// the review decides it) in one transaction. ErrDuplicateReview when the reviewer already
// reviewed it; ErrConflict when it is no longer in review.
func (s *Store) AddReview(ctx context.Context, job string, r api.Review, edit func(*Job) error) (Job, error) {
	var j Job
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var err error
		if j, err = scanJob(tx.QueryRowContext(ctx, `SELECT doc, hold, result FROM gov_jobs WHERE id = ?`, job)); err != nil {
			return err
		}
		if j.State != api.JobInReview {
			return fmt.Errorf("%w: job %s is %s", ErrConflict, job, j.State)
		}
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM gov_reviews WHERE job = ? AND reviewer = ?`, job, r.Reviewer).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return ErrDuplicateReview
		}
		doc, err := json.Marshal(r)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO gov_reviews (job, reviewer, doc, created_at) VALUES (?, ?, ?, ?)`,
			job, r.Reviewer, string(doc), stamp(r.At)); err != nil {
			return err
		}
		if j.Review == nil {
			j.Review = &api.JobReview{}
		}
		j.Review.Reviews = append(j.Review.Reviews, r)
		if err := edit(&j); err != nil {
			return err
		}
		return s.writeJob(ctx, tx, j)
	})
	return j, err
}

// --- helpers ---

type queryer interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

type rowScanner interface{ Scan(dest ...any) error }

func scanJob(r rowScanner) (Job, error) {
	var doc string
	var hold, result sql.NullString
	if err := r.Scan(&doc, &hold, &result); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return Job{}, ErrNotFound
		}
		return Job{}, err
	}
	var j Job
	if err := json.Unmarshal([]byte(doc), &j.Job); err != nil {
		return Job{}, fmt.Errorf("governance: job document: %w", err)
	}
	if hold.Valid {
		j.Hold = json.RawMessage(hold.String)
	}
	if result.Valid {
		j.Output = json.RawMessage(result.String)
	}
	return j, nil
}

func getDoc(ctx context.Context, q queryer, query, id string, out any) error {
	var doc string
	if err := q.QueryRowContext(ctx, query, id).Scan(&doc); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		return err
	}
	return json.Unmarshal([]byte(doc), out)
}

func putDoc(ctx context.Context, tx *sql.Tx, query string, doc any, state, id string) error {
	b, err := json.Marshal(doc)
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, query, string(b), state, id)
	return err
}

func listDocs[T any](ctx context.Context, q queryer, query string, args ...any) ([]T, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []T{}
	for rows.Next() {
		var doc string
		if err := rows.Scan(&doc); err != nil {
			return nil, err
		}
		var v T
		if err := json.Unmarshal([]byte(doc), &v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

func nullable(b json.RawMessage) any {
	if b == nil {
		return nil
	}
	return string(b)
}

// ClaimNextJob moves the oldest queued job to running and returns it; ok is false when none
// is queued (first come, first served: the server claims with ClaimJob and its scheduler).
func (s *Store) ClaimNextJob(ctx context.Context, at time.Time) (j Job, ok bool, err error) {
	return s.ClaimJob(ctx, at, func(q QueueState) string {
		if len(q.Queued) == 0 {
			return ""
		}
		return q.Queued[0].ID
	})
}

// FailInterrupted marks jobs left running by a previous process as failed: whatever they had
// reserved stays charged in the ledger, and nothing of theirs was delivered.
func (s *Store) FailInterrupted(ctx context.Context, e *api.Error, at time.Time) ([]string, error) {
	jobs, err := s.Jobs(ctx, JobFilter{State: api.JobRunning})
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, j := range jobs {
		if _, err := s.UpdateJob(ctx, j.ID, []string{api.JobRunning}, func(j *Job) error {
			j.State, j.Error, j.UpdatedAt = api.JobFailed, e, at.UTC()
			return nil
		}); err != nil {
			return ids, err
		}
		ids = append(ids, j.ID)
	}
	return ids, nil
}

// CountJobs counts a grant's jobs created at or after since, leaving out one job (the one being
// run): the usage a rate limit is checked against.
func (s *Store) CountJobs(ctx context.Context, grant string, since time.Time, exclude string) (int, error) {
	var n int
	err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM gov_jobs WHERE grant_id = ? AND created_at >= ? AND id <> ?`,
		grant, stamp(since), exclude).Scan(&n)
	return n, err
}
