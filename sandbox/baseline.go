package sandbox

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"strconv"

	"github.com/duckdb/duckdb-go/v2"

	"github.com/c1b99f93/cleanroom/sandbox/sqlgen"
)

// Baseline is plain DuckDB in the calling process, unbounded and unlocked: what a trusted user
// could run on the same files, used by `cleanroom bench` as the reference a DP job is timed
// against. It returns how many rows a statement produced and never a value, so nothing it
// reads can leave through it; it is never reachable from the API, only from the bench command
// on files the operator names.
type Baseline struct{ db *sql.DB }

// OpenBaseline opens an empty in-memory DuckDB under the limits a sandbox worker runs with
// (l's defaults are the worker's: 2 threads, a 4GB memory limit, 20GB of spill), spilling to
// l.TempDir. Ratios then compare like with like: at a scale whose table outgrows the memory
// limit both sides spill, and the baseline cannot hold the whole table in this process's
// memory and so crowd the worker's spill out of the page cache.
func OpenBaseline(l DBLimits) (*Baseline, error) {
	if err := l.Check(); err != nil {
		return nil, err
	}
	l = l.withDefaults()
	q := url.Values{}
	q.Set("autoinstall_known_extensions", "false")
	q.Set("autoload_known_extensions", "false")
	q.Set("memory_limit", l.MemoryLimit)
	q.Set("threads", strconv.Itoa(l.Threads))
	q.Set("max_temp_directory_size", l.MaxTempBytes)
	conn, err := duckdb.NewConnector("?"+q.Encode(), nil)
	if err != nil {
		return nil, fmt.Errorf("sandbox: open the baseline duckdb: %w", err)
	}
	db := sql.OpenDB(conn)
	// One connection: an in-memory database is per connector, and a table must be visible to
	// every later query.
	db.SetMaxOpenConns(1)
	if l.TempDir != "" {
		// temp_directory cannot be given in the DSN.
		if _, err := db.Exec("SET temp_directory = " + sqlgen.String(l.TempDir)); err != nil {
			db.Close()
			return nil, fmt.Errorf("sandbox: the baseline's spill directory: %w", err)
		}
	}
	return &Baseline{db: db}, nil
}

// Load creates table (replacing it) from a Parquet or CSV file, read by DuckDB's own
// read_parquet or read_csv, and returns its row count.
func (b *Baseline) Load(ctx context.Context, table, path string, csv bool) (int64, error) {
	reader := "read_parquet"
	if csv {
		reader = "read_csv"
	}
	stmt := fmt.Sprintf("CREATE OR REPLACE TABLE %s AS SELECT * FROM %s(%s)", quoteIdent(table), reader, sqlgen.String(path))
	if _, err := b.db.ExecContext(ctx, stmt); err != nil {
		return 0, fmt.Errorf("sandbox: baseline load of %s: %w", table, err)
	}
	var n int64
	if err := b.db.QueryRowContext(ctx, "SELECT count(*) FROM "+quoteIdent(table)).Scan(&n); err != nil {
		return 0, fmt.Errorf("sandbox: baseline count of %s: %w", table, err)
	}
	return n, nil
}

// Drop removes table if it exists.
func (b *Baseline) Drop(ctx context.Context, table string) error {
	if _, err := b.db.ExecContext(ctx, "DROP TABLE IF EXISTS "+quoteIdent(table)); err != nil {
		return fmt.Errorf("sandbox: baseline drop of %s: %w", table, err)
	}
	return nil
}

// Query runs query to its last row and returns how many rows it produced (the values are read
// by DuckDB and discarded).
func (b *Baseline) Query(ctx context.Context, query string) (int, error) {
	rows, err := b.db.QueryContext(ctx, query)
	if err != nil {
		return 0, fmt.Errorf("sandbox: baseline query: %w", err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		n++
	}
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("sandbox: baseline query: %w", err)
	}
	return n, nil
}

// Close releases the database and its tables.
func (b *Baseline) Close() error { return b.db.Close() }
