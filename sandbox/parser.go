package sandbox

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// Parser turns SQL text into DuckDB's own JSON AST (json_serialize_sql) using an empty,
// locked-down in-memory DuckDB: it holds no data, so parsing can run in the engine's process.
// json_serialize_sql only parses; nothing in the text is executed.
type Parser struct {
	db *sql.DB
	// serialize is prepared once: preparing is most of the cost of parsing a short query
	// (DuckDB plans the statement each time), and the statement is the same for every text.
	serialize *sql.Stmt
}

// NewParser opens the data-free parser database.
func NewParser() (*Parser, error) {
	db, err := openLockedDB(DBLimits{MemoryLimit: "256MB", Threads: 1})
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(4)
	st, err := db.Prepare("SELECT CAST(json_serialize_sql(?::VARCHAR) AS VARCHAR)")
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("sandbox: prepare the parser (%s): %w", duckErrorClass(err), err)
	}
	return &Parser{db: db, serialize: st}, nil
}

// Serialize returns the JSON AST. A parse error comes back inside the JSON ("error": true),
// as DuckDB reports it, not as a Go error.
func (p *Parser) Serialize(ctx context.Context, text string) ([]byte, error) {
	var out string
	err := p.serialize.QueryRowContext(ctx, text).Scan(&out)
	if err != nil {
		return nil, fmt.Errorf("sandbox: serialize sql (%s): %w", duckErrorClass(err), err)
	}
	return []byte(out), nil
}

// Close releases the parser database.
func (p *Parser) Close() error { return errors.Join(p.serialize.Close(), p.db.Close()) }
