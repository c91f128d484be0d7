package governance

import (
	"context"
	"database/sql"

	"github.com/c1b99f93/cleanroom/server/api"
)

// InsertJobs stores jobs in one transaction: a benchmark's history, thousands at a time.
func (s *Store) InsertJobs(ctx context.Context, jobs []api.Job) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		for _, j := range jobs {
			if err := insertJob(ctx, tx, j); err != nil {
				return err
			}
		}
		return nil
	})
}

// Checkpoint folds the write-ahead log into the database, so that a benchmark's history is
// not folded in during its timed part.
func (s *Store) Checkpoint(ctx context.Context) error {
	_, err := s.db.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`)
	return err
}

// QueryPlan is SQLite's plan for query.
func (s *Store) QueryPlan(ctx context.Context, query string, args ...any) (string, error) {
	rows, err := s.db.QueryContext(ctx, "EXPLAIN QUERY PLAN "+query, args...)
	if err != nil {
		return "", err
	}
	defer rows.Close()
	var out string
	for rows.Next() {
		var id, parent, notused int
		var detail string
		if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
			return "", err
		}
		out += detail + "\n"
	}
	return out, rows.Err()
}
