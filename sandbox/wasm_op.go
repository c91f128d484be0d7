package sandbox

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/duckdb/duckdb-go/v2"

	"github.com/c1b99f93/cleanroom/errcode"
	"github.com/c1b99f93/cleanroom/sandbox/wasm"
	"github.com/c1b99f93/cleanroom/sandbox/wire"
)

// wasmState is the worker's custom-model runtime, started on first use: one wazero runtime
// for the worker's life, so modules compile once and stay cached by digest.
type wasmState struct {
	once sync.Once
	rt   *wasm.Runtime
	err  error
}

func (w *worker) wasmRuntime(ctx context.Context) (*wasm.Runtime, error) {
	w.wasm.once.Do(func() {
		w.wasm.rt, w.wasm.err = wasm.New(context.WithoutCancel(ctx), wasm.Config{
			CacheDir: filepath.Join(w.dir, "wasm-cache"),
			Parallel: w.shards,
		})
	})
	if w.wasm.err != nil {
		return nil, errcode.Wrap(errcode.SandboxFailed, w.wasm.err, "the sandbox's WebAssembly runtime could not start")
	}
	return w.wasm.rt, nil
}

// runWasm answers a custom model request (wire.Wasm) by sample-and-aggregate. What can fail
// the request is decided before a row is read: the declared shape, the module (it compiles,
// has the ABI, instantiates), and the feature relation (it type-checks). After that, no
// block's behaviour can fail it: the answer is the clamped average over the blocks, before
// noise, and nothing about which blocks failed.
func (w *worker) runWasm(ctx context.Context, a *wire.Wasm) (*wire.WasmResult, error) {
	if err := a.Validate(); err != nil {
		return nil, errcode.Wrap(errcode.InvalidOptions, err, "the custom model request is not valid: %s", err.Error())
	}
	rt, err := w.wasmRuntime(ctx)
	if err != nil {
		return nil, err
	}
	mod, err := rt.Compile(ctx, a.Module)
	if err != nil {
		return nil, err
	}
	defer mod.Release()
	blocks, err := w.wasmBlocks(ctx, a)
	if err != nil {
		return nil, classifyExecError(ctx, err)
	}
	mean, err := mod.Aggregate(ctx, blocks, a.Output, time.Duration(a.BlockTimeoutMS)*time.Millisecond)
	if err != nil {
		return nil, err
	}
	return &wire.WasmResult{Mean: mean, Blocks: a.Blocks, ModuleDigest: mod.Digest}, nil
}

// wasmBlocks reads the relation's rows — the normalised unit first, then each column as
// DOUBLE (numeric and boolean columns) or VARCHAR (every other), each cast total — in an order
// fixed by the data, and splits them into the blocks' Arrow IPC streams.
func (w *worker) wasmBlocks(ctx context.Context, a *wire.Wasm) ([][]byte, error) {
	r := a.Relation
	if r.PerUnit {
		return nil, errcode.New(errcode.InvalidOptions, "a custom model reads rows, not per-unit aggregates")
	}
	tables := make([]string, len(r.Sources))
	cols := make([][]wire.Column, len(r.Sources))
	for i, s := range r.Sources {
		src, err := w.loaded(ctx, s.Snapshot)
		if err != nil {
			return nil, err
		}
		tables[i], cols[i] = src.table, src.Columns
	}
	sc := relationScope(r, cols)
	from, unit, err := relationFrom(r, tables, a.SamplingKey, sc)
	if err != nil {
		return nil, err
	}
	inner, err := relationSQL(r, from, unit, nil, sc)
	if err != nil {
		return nil, err
	}
	types, err := w.describe(ctx, inner)
	if err != nil {
		return nil, err
	}
	sel := []string{"coalesce(" + normColumn + ", '') AS " + normColumn}
	order := []string{normColumn}
	for i, c := range r.Columns {
		name := quoteIdent(c.Name)
		target := "VARCHAR"
		if numericSQLType(types[i+1]) {
			target = "DOUBLE"
		}
		sel = append(sel, fmt.Sprintf("try(CAST(%s AS %s)) AS %s", name, target, name))
		order = append(order, name)
	}
	q := fmt.Sprintf("SELECT %s FROM (%s) ORDER BY %s", strings.Join(sel, ", "), inner, strings.Join(order, ", "))
	var blocks [][]byte
	err = withArrow(ctx, w.db, func(ar *duckdb.Arrow) error {
		rdr, err := ar.QueryContext(ctx, q)
		if err != nil {
			return err
		}
		defer rdr.Release()
		sp, err := wasm.NewSplitter(rdr.Schema(), a.BlockKey, a.Blocks)
		if err != nil {
			return errcode.Wrap(errcode.Internal, err, "the feature rows could not be split into blocks")
		}
		for rdr.Next() {
			if err := sp.Add(rdr.RecordBatch()); err != nil {
				return errcode.Wrap(errcode.Internal, err, "the feature rows could not be split into blocks")
			}
		}
		if err := rdr.Err(); err != nil {
			return err
		}
		blocks, err = sp.Blocks()
		return err
	})
	return blocks, err
}

// describe returns the column types of a query, without running it.
func (w *worker) describe(ctx context.Context, q string) ([]string, error) {
	rows, err := w.db.QueryContext(ctx, "DESCRIBE "+q)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var types []string
	for rows.Next() {
		var name, typ string
		var rest [4]sql.NullString
		if err := rows.Scan(&name, &typ, &rest[0], &rest[1], &rest[2], &rest[3]); err != nil {
			return nil, err
		}
		types = append(types, typ)
	}
	return types, rows.Err()
}

// numericSQLType reports whether a DuckDB type reaches a module as float64.
func numericSQLType(t string) bool {
	t = strings.ToUpper(t)
	switch {
	case strings.HasPrefix(t, "DECIMAL"):
		return true
	}
	switch t {
	case "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER",
		"UBIGINT", "UHUGEINT", "FLOAT", "DOUBLE", "BOOLEAN":
		return true
	}
	return false
}
