package ledger

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// Released is an answer already released on a grant, stored so that an identical query is
// answered again at no cost instead of drawing fresh noise: repeating a query cannot average
// the noise away.
type Released struct {
	Job    string
	Result []byte // the engine's encoding of the released rows
}

// Remember stores a released answer under (grant, fingerprint). The first answer stays: a
// second one for the same fingerprint (two identical jobs that raced) is ignored.
func (l *Ledger) Remember(ctx context.Context, grant, fingerprint, job string, result []byte) error {
	if grant == "" || fingerprint == "" || job == "" {
		return fmt.Errorf("ledger: remember: grant, fingerprint and job are required")
	}
	return l.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO released_results (grant_id, fingerprint, job, result, created_at)
			VALUES (?, ?, ?, ?, ?) ON CONFLICT (grant_id, fingerprint) DO NOTHING`, grant, fingerprint, job, result, l.stamp())
		if err != nil {
			return fmt.Errorf("ledger: remember: %w", err)
		}
		return nil
	})
}

// Recall returns the answer released on grant under fingerprint, if any.
func (l *Ledger) Recall(ctx context.Context, grant, fingerprint string) (Released, bool, error) {
	var r Released
	err := l.read(ctx, func(tx *sql.Tx) error {
		return tx.QueryRowContext(ctx, `SELECT job, result FROM released_results WHERE grant_id = ? AND fingerprint = ?`,
			grant, fingerprint).Scan(&r.Job, &r.Result)
	})
	if errors.Is(err, sql.ErrNoRows) {
		return Released{}, false, nil
	}
	if err != nil {
		return Released{}, false, fmt.Errorf("ledger: recall: %w", err)
	}
	return r, true, nil
}
