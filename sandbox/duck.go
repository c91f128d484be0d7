package sandbox

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"github.com/duckdb/duckdb-go/v2"

	"github.com/c1b99f93/cleanroom/errcode"
)

// DBLimits are the DuckDB resource limits inside a worker.
type DBLimits struct {
	MemoryLimit  string `json:"memory_limit"`   // e.g. "4GB"
	Threads      int    `json:"threads"`        // DuckDB worker threads
	TempDir      string `json:"temp_dir"`       // spill directory
	MaxTempBytes string `json:"max_temp_bytes"` // e.g. "20GB"
}

// sizePattern is the form of a size DBLimits accepts: a number and a DuckDB unit ("4GB",
// "512 MiB", "1.5TB"). DuckDB would refuse anything else only once the worker starts.
var sizePattern = regexp.MustCompile(`^(?i)[0-9]+(\.[0-9]+)? ?(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)$`)

// Check refuses limits a worker could not start with (invalid_options): a size that is not a
// number and a unit, or a negative thread count. Empty and zero fields take the defaults.
func (l DBLimits) Check() error {
	for _, f := range []struct{ name, v string }{{"memory limit", l.MemoryLimit}, {"spill limit", l.MaxTempBytes}} {
		if f.v != "" && !sizePattern.MatchString(f.v) {
			return errcode.New(errcode.InvalidOptions, "the worker's %s %q is not a size such as 4GB or 512MiB", f.name, f.v)
		}
	}
	if l.Threads < 0 {
		return errcode.New(errcode.InvalidOptions, "the worker's thread count %d is negative", l.Threads)
	}
	return nil
}

func (l DBLimits) withDefaults() DBLimits {
	if l.MemoryLimit == "" {
		l.MemoryLimit = "4GB"
	}
	if l.Threads <= 0 {
		l.Threads = 2
	}
	if l.MaxTempBytes == "" {
		l.MaxTempBytes = "20GB"
	}
	return l
}

// openLockedDB opens an in-memory DuckDB that cannot read or write files, install or load
// extensions, or change its own configuration. These settings are defence in depth: the
// engine only ever sends SQL it rendered itself from a gated AST.
func openLockedDB(l DBLimits) (*sql.DB, error) {
	l = l.withDefaults()
	q := url.Values{}
	q.Set("autoinstall_known_extensions", "false")
	q.Set("autoload_known_extensions", "false")
	q.Set("allow_community_extensions", "false")
	q.Set("memory_limit", l.MemoryLimit)
	q.Set("threads", strconv.Itoa(l.Threads))
	q.Set("max_temp_directory_size", l.MaxTempBytes)
	// Scans return a table's rows in rowid order: registration reads its sorted table out to
	// the snapshot file that way (and checks the rowids). This is DuckDB's default, set here
	// so that it stays so.
	q.Set("preserve_insertion_order", "true")
	// Common-subexpression elimination hoists a repeated part of an expression into a
	// projection below it — out of the try() that makes every row-level expression total
	// (total.go): try(x BETWEEN 0 AND 3) is planned as x >= 0 AND x <= 3 over a projected x, and
	// an x that fails on one row fails the query again. So it is off for every connection.
	q.Set("disabled_optimizers", "common_subexpressions")
	// temp_directory cannot be given in the DSN, and once external access is off it cannot be
	// set at all: so the first connection sets it, then turns external access off and locks
	// the configuration. If that fails, every connection fails (fail closed).
	var once sync.Once
	var initErr error
	lockdown := []string{"SET enable_external_access = false", "SET lock_configuration = true"}
	if l.TempDir != "" {
		lockdown = append([]string{"SET temp_directory = '" + strings.ReplaceAll(l.TempDir, "'", "''") + "'"}, lockdown...)
	}
	connector, err := duckdb.NewConnector("?"+q.Encode(), func(c driver.ExecerContext) error {
		once.Do(func() {
			for _, stmt := range lockdown {
				if _, initErr = c.ExecContext(context.Background(), stmt, nil); initErr != nil {
					initErr = fmt.Errorf("sandbox: duckdb lockdown %q: %w", stmt, initErr)
					return
				}
			}
		})
		return initErr
	})
	if err != nil {
		return nil, fmt.Errorf("sandbox: open duckdb: %w", err)
	}
	return sql.OpenDB(connector), nil
}

// withArrow runs f with DuckDB's Arrow interface on one dedicated connection.
func withArrow(ctx context.Context, db *sql.DB, f func(*duckdb.Arrow) error) error {
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	return conn.Raw(func(dc any) error {
		ar, err := duckdb.NewArrowFromConn(dc.(driver.Conn))
		if err != nil {
			return err
		}
		return f(ar)
	})
}

// duckErrorClass names the class of a DuckDB error without its text, which may quote data.
func duckErrorClass(err error) string {
	var de *duckdb.Error
	if errors.As(err, &de) {
		// The two a large dataset meets name their cause: the classes carry no data.
		switch de.Type {
		case duckdb.ErrorTypeOutOfMemory:
			return fmt.Sprintf("duckdb error type %d: out of memory within the worker's memory limit", de.Type)
		case duckdb.ErrorTypeIO:
			return fmt.Sprintf("duckdb error type %d: I/O, such as the worker's spill space (max_temp_directory_size) or the disk running out", de.Type)
		}
		return fmt.Sprintf("duckdb error type %d", de.Type)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "deadline exceeded"
	}
	if errors.Is(err, context.Canceled) {
		return "canceled"
	}
	return "non-duckdb error"
}
