package ledger

import (
	"context"
	"database/sql"
	"fmt"
)

// ComputedFilter is a filter an earlier job on a grant was computed with.
type ComputedFilter struct {
	Job    string
	Filter string
}

// NoteFilter records that job computed a query of the given shape with filter on grant. Only
// the first job of each (grant, shape, filter) is kept: a later one with the same filter adds
// nothing to compare against.
func (l *Ledger) NoteFilter(ctx context.Context, grant, shape, filter, job string) error {
	if grant == "" || shape == "" || job == "" {
		return fmt.Errorf("ledger: note filter: grant, shape and job are required")
	}
	// Unordered: a note whose job's records a crash lost only makes later checks stricter.
	return l.writeUnordered(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO computed_filters (grant_id, shape, filter, job, created_at)
			VALUES (?, ?, ?, ?, ?) ON CONFLICT (grant_id, shape, filter) DO NOTHING`, grant, shape, filter, job, l.stamp())
		if err != nil {
			return fmt.Errorf("ledger: note filter: %w", err)
		}
		return nil
	})
}

// Filters returns up to limit filters computed on grant with shape, newest first.
func (l *Ledger) Filters(ctx context.Context, grant, shape string, limit int) ([]ComputedFilter, error) {
	var out []ComputedFilter
	err := l.read(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT job, filter FROM computed_filters WHERE grant_id = ? AND shape = ?
			ORDER BY seq DESC LIMIT ?`, grant, shape, limit)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var f ComputedFilter
			if err := rows.Scan(&f.Job, &f.Filter); err != nil {
				return err
			}
			out = append(out, f)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("ledger: filters: %w", err)
	}
	return out, nil
}
