package governance

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/c1b99f93/cleanroom/server/api"
)

// The job queue is the gov_jobs table itself: a queued job is a row in state queued, so the
// queue survives a restart exactly as the jobs do (a job left running by a dead process is
// failed at start-up, FailInterrupted; a queued one stays queued and is claimed once). What
// this file adds is admission with caps and a claim that lets the caller choose which queued
// job runs next, both inside one write transaction, so that two submissions cannot both take
// the last place and two runners cannot claim the same job.

// QueueLimits bound the queue at admission. Zero means no limit.
type QueueLimits struct {
	// Queued caps the jobs queued on the platform; PerOrg the jobs one organisation has
	// queued.
	Queued, PerOrg int
}

// QueueFullError is the refusal of a job because a queue cap is reached. It names which cap
// and how many jobs were queued, never another organisation's jobs.
type QueueFullError struct {
	// Org is true when the organisation's own cap was reached, false for the platform's.
	Org    bool
	Queued int // jobs queued under the cap that was reached
	Limit  int
}

func (e *QueueFullError) Error() string {
	scope := "the platform"
	if e.Org {
		scope = "the organisation"
	}
	return fmt.Sprintf("governance: %s has %d jobs queued (limit %d)", scope, e.Queued, e.Limit)
}

// Enqueue stores a queued job, with its input when not nil (JobInput), unless a cap in lim is
// reached (*QueueFullError): the counts and the inserts are one transaction.
func (s *Store) Enqueue(ctx context.Context, j api.Job, input []byte, lim QueueLimits) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		var all, org int
		if err := tx.QueryRowContext(ctx, `SELECT count(*), coalesce(sum(org = ?), 0) FROM gov_jobs WHERE state = 'queued'`, j.Org).Scan(&all, &org); err != nil {
			return err
		}
		switch {
		case lim.PerOrg > 0 && org >= lim.PerOrg:
			return &QueueFullError{Org: true, Queued: org, Limit: lim.PerOrg}
		case lim.Queued > 0 && all >= lim.Queued:
			return &QueueFullError{Queued: all, Limit: lim.Queued}
		}
		if err := insertJob(ctx, tx, j); err != nil || input == nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO gov_job_inputs (job, input) VALUES (?, ?)`, j.ID, input)
		return err
	})
}

// QueuedJob is what a scheduler sees of a queued job.
type QueuedJob struct {
	ID, Org, Grant string
	Created        time.Time
}

// QueueState is the queue as one claim sees it: the queued jobs, oldest first, and how many
// jobs run now by organisation and by grant.
type QueueState struct {
	Queued       []QueuedJob
	RunningOrg   map[string]int
	RunningGrant map[string]int
}

// ClaimJob moves the queued job pick chooses to running and returns it. pick sees the queue
// in the claim's transaction and returns "" to claim nothing (ok is then false).
func (s *Store) ClaimJob(ctx context.Context, at time.Time, pick func(QueueState) string) (j Job, ok bool, err error) {
	err = s.tx(ctx, func(tx *sql.Tx) error {
		q, err := queueState(ctx, tx)
		if err != nil {
			return err
		}
		id := pick(q)
		if id == "" {
			return nil
		}
		if j, err = scanJob(tx.QueryRowContext(ctx, `SELECT doc, hold, result FROM gov_jobs WHERE id = ? AND state = 'queued'`, id)); err != nil {
			return err
		}
		j.State, j.UpdatedAt, ok = api.JobRunning, at.UTC(), true
		return s.writeJob(ctx, tx, j)
	})
	return j, ok, err
}

func queueState(ctx context.Context, tx *sql.Tx) (QueueState, error) {
	q := QueueState{RunningOrg: map[string]int{}, RunningGrant: map[string]int{}}
	rows, err := tx.QueryContext(ctx, `SELECT id, org, grant_id, created_at, state FROM gov_jobs
		WHERE state IN ('queued', 'running') ORDER BY created_at, id`)
	if err != nil {
		return q, err
	}
	defer rows.Close()
	for rows.Next() {
		var j QueuedJob
		var created, state string
		if err := rows.Scan(&j.ID, &j.Org, &j.Grant, &created, &state); err != nil {
			return q, err
		}
		if state == api.JobRunning {
			q.RunningOrg[j.Org]++
			q.RunningGrant[j.Grant]++
			continue
		}
		if j.Created, err = time.Parse(timeFormat, created); err != nil {
			return q, fmt.Errorf("governance: job %s: %w", j.ID, err)
		}
		q.Queued = append(q.Queued, j)
	}
	return q, rows.Err()
}
