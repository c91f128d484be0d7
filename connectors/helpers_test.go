package connectors

import (
	"github.com/c1b99f93/cleanroom/errcode"

	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// Planted values: distinctive strings that must never show up in an error's text.
const (
	secretText = "SECRET-VALUE-123"
	secretID   = "310105199001011234" // shaped like an 18-digit resident ID
)

// checkedAlloc returns an allocator that fails t if anything allocated through it is still
// live when the test ends (readers released by defer are released before cleanups run).
func checkedAlloc(t testing.TB) *memory.CheckedAllocator {
	t.Helper()
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	t.Cleanup(func() { mem.AssertSize(t, 0) })
	return mem
}

// result is everything read from a source: the schema, the rows per batch, the first rows as
// strings, and the error from Open or, failing that, from Err.
type result struct {
	schema  *arrow.Schema
	batches []int64
	rows    int64
	cells   [][]string // first maxCells rows, ValueStr of each column ("(null)" for nulls)
	err     error
}

const maxCells = 100

func readAll(t testing.TB, kind, path string, opt Options) result {
	t.Helper()
	rr, err := Open(context.Background(), kind, path, opt)
	if err != nil {
		if rr != nil {
			t.Fatalf("Open returned a reader with error %v", err)
		}
		return result{err: err}
	}
	defer rr.Release()
	return drain(rr)
}

func drain(rr array.RecordReader) result {
	res := result{schema: rr.Schema()}
	for rr.Next() {
		rec := rr.RecordBatch()
		res.batches = append(res.batches, rec.NumRows())
		res.rows += rec.NumRows()
		for i := 0; i < int(rec.NumRows()) && len(res.cells) < maxCells; i++ {
			row := make([]string, rec.NumCols())
			for j, col := range rec.Columns() {
				row[j] = col.ValueStr(i)
			}
			res.cells = append(res.cells, row)
		}
	}
	res.err = rr.Err()
	return res
}

// schemaString renders a schema as "name:type, ..." for compact expectations.
func schemaString(s *arrow.Schema) string {
	if s == nil {
		return ""
	}
	parts := make([]string, s.NumFields())
	for i, f := range s.Fields() {
		parts[i] = f.Name + ":" + f.Type.String()
	}
	return strings.Join(parts, ", ")
}

func writeFile(t testing.TB, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// wantError asserts err is an *Error with the given code and position and that its text
// contains none of the planted values.
func wantError(t testing.TB, err error, code errcode.Code, row int64, column string, planted ...string) *Error {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error = %v (%T), want *Error with code %s", err, err, code)
	}
	if e.Code != code || e.Row != row || e.Column != column {
		t.Errorf("error = code %s row %d column %q, want code %s row %d column %q (%v)",
			e.Code, e.Row, e.Column, code, row, column, e)
	}
	for _, p := range planted {
		if p != "" && strings.Contains(e.Error(), p) {
			t.Errorf("error text %q contains the planted value %q", e.Error(), p)
		}
	}
	return e
}
