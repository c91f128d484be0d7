package sandbox

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/c1b99f93/cleanroom/sandbox/sqlgen"
	"github.com/c1b99f93/cleanroom/sandbox/wire"
	"hash"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/duckdb/duckdb-go/v2"

	"github.com/c1b99f93/cleanroom/connectors"
	"github.com/c1b99f93/cleanroom/errcode"
)

// unitColumn is the dense integer privacy-unit key the worker adds to every snapshot: rows are
// sorted by the unit, so a unit's run of rows shares one value and runs ascend.
const unitColumn = "__cr_unit"

// normColumn carries the normalised privacy unit from the registration sort to the key pass.
const normColumn = "__cr_norm"

// snapshotBatchRows fixes the IPC batch size so the same data always encodes to the same bytes.
const snapshotBatchRows = 65536

func quoteIdent(s string) string { return sqlgen.Ident(s) }

func tableName(digest string) string { return "snap_" + strings.TrimPrefix(digest, "sha256:")[:24] }

func (w *worker) snapshotPath(digest string) string {
	return filepath.Join(w.dir, "snapshots", strings.TrimPrefix(digest, "sha256:")+".arrow")
}

// errRecorder remembers a connector's own (safe, typed) error, which DuckDB would otherwise
// replace with its scan error.
type errRecorder struct {
	array.RecordReader
	err error
}

func (r *errRecorder) Next() bool {
	if r.RecordReader.Next() {
		return true
	}
	r.err = r.RecordReader.Err()
	return false
}

// register builds and loads the snapshot and then, when asked, its raw-value set from the
// loaded table. A registration whose set fails fails as a whole: the engine records no
// dataset without its set.
func (w *worker) register(ctx context.Context, a *registerArgs) (*snapTable, *wire.RawSetInfo, error) {
	snap, err := w.snapshot(ctx, a)
	if err != nil || a.RawValues == nil {
		return snap, nil, err
	}
	info, err := w.buildRawSet(ctx, snap, a.RawValues)
	if err != nil {
		return nil, nil, err
	}
	return snap, info, nil
}

// snapshot reads a provider's source through a connector, checks it against the declared
// columns, sorts it by privacy unit into the canonical snapshot, and loads it. Nothing is kept
// when any step fails: the snapshot file appears only by an atomic rename at the end.
func (w *worker) snapshot(ctx context.Context, a *registerArgs) (*snapTable, error) {
	if a.src == nil {
		return nil, errcode.New(errcode.Internal, "register without a source file")
	}
	src, err := connectors.OpenFile(ctx, a.Kind, a.src, a.Name, connectors.Options{})
	if err != nil {
		return nil, connectorError(err)
	}
	defer src.Release()
	if err := checkColumns(src.Schema(), a); err != nil {
		return nil, err
	}
	rec := &errRecorder{RecordReader: src}
	id := w.nextID()
	staging, units, sorted := fmt.Sprintf("staging_%d", id), fmt.Sprintf("units_%d", id), fmt.Sprintf("sorted_%d", id)
	cleanup := func() {
		for _, t := range []string{staging, units, sorted} {
			w.db.ExecContext(context.WithoutCancel(ctx), "DROP TABLE IF EXISTS "+t)
		}
	}
	defer cleanup()
	var cols []string
	for _, f := range src.Schema().Fields() {
		cols = append(cols, quoteIdent(f.Name))
	}
	// The normalised unit (trimmed, upper-case text: "…x" and "…X " are one person) is
	// computed once, while the source streams in.
	norm := normUnit(quoteIdent(a.PrivacyUnit))
	if a.PrivacyUnit == "" {
		norm = "''" // a public lookup table: one unit holds every row
	}
	err = withArrow(ctx, w.db, func(ar *duckdb.Arrow) error {
		release, err := ar.RegisterView(rec, staging+"_view")
		if err != nil {
			return err
		}
		_, err = w.db.ExecContext(ctx, fmt.Sprintf("CREATE TABLE %s AS SELECT *, %s AS %s FROM %s",
			staging, norm, normColumn, quoteIdent(staging+"_view")))
		_, dropErr := w.db.ExecContext(context.WithoutCancel(ctx), "DROP VIEW IF EXISTS "+quoteIdent(staging+"_view"))
		release()
		if rec.err != nil {
			return connectorError(rec.err)
		}
		return errors.Join(err, dropErr)
	})
	var schema *arrow.Schema
	var twins map[string]bool
	if err == nil {
		schema, twins, err = w.sortSnapshot(ctx, staging, units, sorted, cols)
	}
	var digest string
	if err == nil {
		digest, err = w.writeSnapshot(ctx, sorted, schema)
	}
	if err == nil {
		return w.adopt(ctx, digest, sorted, schema, twins)
	}
	var ce *errcode.Error
	if errors.As(err, &ce) {
		return nil, ce
	}
	return nil, errcode.Wrap(errcode.SandboxFailed, err, "registration failed while building the snapshot (%s)", duckErrorClass(err))
}

// sortSnapshot builds the snapshot's table from the staging table, all inside DuckDB (which
// spills to its temporary directory under the memory limit, so no step holds the rows in Go):
// each distinct normalised unit gets its dense key (its rank), and the rows are written in the
// order of (unit key, hash of the row's columns). A unit's rows are thus adjacent and ordered by
// content alone, so the order — hence the digest — depends only on the data; rows that tie are
// identical (up to a 64-bit hash collision between two different rows of one unit, which could
// only make the digest depend on the source's order, never the table on anything but the
// file). Sorting by two integers is cheaper than by every column. The ENUM
// twins are added in the same pass. It returns the snapshot file's schema.
func (w *worker) sortSnapshot(ctx context.Context, staging, units, sorted string, cols []string) (*arrow.Schema, map[string]bool, error) {
	var nullUnits bool
	if err := w.db.QueryRowContext(ctx, fmt.Sprintf("SELECT EXISTS (SELECT 1 FROM %s WHERE %s IS NULL)", staging, normColumn)).Scan(&nullUnits); err != nil {
		return nil, nil, err
	}
	if nullUnits {
		return nil, nil, errcode.New(errcode.InvalidSpec, "the privacy unit column has empty values")
	}
	if _, err := w.db.ExecContext(ctx, fmt.Sprintf(
		"CREATE TABLE %s AS SELECT %s, CAST(row_number() OVER (ORDER BY %s) - 1 AS BIGINT) AS %s FROM (SELECT DISTINCT %s FROM %s)",
		units, normColumn, normColumn, unitColumn, normColumn, staging)); err != nil {
		return nil, nil, err
	}
	// The staging table's schema, as DuckDB exports it, is the file's (after the unit key).
	var schema *arrow.Schema
	err := withArrow(ctx, w.db, func(ar *duckdb.Arrow) error {
		rdr, err := ar.QueryContext(ctx, fmt.Sprintf("SELECT %s FROM %s LIMIT 0", strings.Join(cols, ", "), staging))
		if err != nil {
			return err
		}
		defer rdr.Release()
		fields := append([]arrow.Field{{Name: unitColumn, Type: arrow.PrimitiveTypes.Int64}}, rdr.Schema().Fields()...)
		schema = arrow.NewSchema(fields, nil)
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	casts, twins, err := w.enumTwinCasts(ctx, staging, schema)
	if err != nil {
		return nil, nil, err
	}
	// The aliases start with "_", which no catalog column name does, so a column named like
	// an alias still means the column.
	sel := append(append([]string{"_u." + unitColumn}, cols...), casts...)
	if _, err := w.db.ExecContext(ctx, fmt.Sprintf(
		"CREATE TABLE %s AS SELECT %s FROM %s _s JOIN %s _u ON _s.%s = _u.%s ORDER BY _u.%s, hash(%s)",
		sorted, strings.Join(sel, ", "), staging, units, normColumn, normColumn, unitColumn, strings.Join(cols, ", "))); err != nil {
		return nil, nil, err
	}
	// The staging rows are spilled beyond the memory limit at scale: dropped now, the page-out
	// and the raw-value set have their spill space.
	for _, t := range []string{staging, units} {
		if _, err := w.db.ExecContext(ctx, "DROP TABLE "+t); err != nil {
			return nil, nil, err
		}
	}
	return schema, twins, nil
}

func connectorError(err error) error {
	var ce *connectors.Error
	if errors.As(err, &ce) {
		return errcode.Wrap(ce.Code, err, "%s", ce.Error())
	}
	return errcode.Wrap(errcode.MalformedInput, err, "the source could not be read")
}

func checkColumns(s *arrow.Schema, a *registerArgs) error {
	present := map[string]bool{}
	for _, f := range s.Fields() {
		if f.Name == unitColumn || f.Name == normColumn {
			return errcode.New(errcode.InvalidSpec, "the source has a column named %s, which is reserved", f.Name)
		}
		present[f.Name] = true
	}
	declared := map[string]bool{}
	for _, c := range a.Columns {
		declared[c] = true
		if !present[c] {
			return errcode.New(errcode.InvalidSpec, "declared column %q is missing from the source", c)
		}
	}
	for _, f := range s.Fields() {
		if !declared[f.Name] {
			return errcode.New(errcode.InvalidSpec, "source column %q is not declared in the spec", f.Name)
		}
	}
	for _, c := range a.Numeric {
		f, _ := s.FieldsByName(c)
		if len(f) != 1 || !isNumeric(f[0].Type) {
			return errcode.New(errcode.InvalidSpec, "column %q declares numeric bounds but its values are not all numbers", c)
		}
	}
	if a.PrivacyUnit == "" {
		return nil
	}
	if !present[a.PrivacyUnit] {
		return errcode.New(errcode.InvalidSpec, "privacy unit column %q is missing from the source", a.PrivacyUnit)
	}
	// Text or integers only: a float unit (where -0 and 0, or rounding, blur identity) could
	// split one person into several units.
	f, _ := s.FieldsByName(a.PrivacyUnit)
	switch f[0].Type.ID() {
	case arrow.STRING, arrow.LARGE_STRING, arrow.STRING_VIEW, arrow.INT8, arrow.INT16, arrow.INT32, arrow.INT64,
		arrow.UINT8, arrow.UINT16, arrow.UINT32, arrow.UINT64:
	default:
		return errcode.New(errcode.InvalidSpec, "privacy unit column %q must hold text or integers", a.PrivacyUnit)
	}
	return nil
}

// snapshotPageRows is how many rows of the sorted table one query fetches: DuckDB materialises
// a query's whole result, so the table is read a page at a time to keep memory bounded.
const snapshotPageRows = 16 * snapshotBatchRows

// writeSnapshot writes the rows of the sorted table, in rowid order, as an Arrow IPC stream in
// fixed-size batches, and names the file by the SHA-256 of those bytes. The table is read page
// by page while another goroutine encodes, hashes and writes what the previous page gave, so
// neither DuckDB's result nor the file's contents are ever held whole.
func (w *worker) writeSnapshot(ctx context.Context, sorted string, schema *arrow.Schema) (string, error) {
	dir := filepath.Join(w.dir, "snapshots")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	tmp, err := os.CreateTemp(dir, "incoming-*.arrow")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	defer tmp.Close()
	var rows int64
	if err := w.db.QueryRowContext(ctx, "SELECT count(*) FROM "+sorted).Scan(&rows); err != nil {
		return "", err
	}
	h := sha256.New()
	iw := ipc.NewWriter(io.MultiWriter(tmp, h), ipc.WithSchema(schema), ipc.WithAllocator(memory.DefaultAllocator))
	batches := make(chan arrow.RecordBatch, 64)
	written := make(chan error, 1)
	go func() {
		rb := &rebatcher{schema: schema, out: iw}
		var err error
		for b := range batches {
			if err == nil {
				err = rb.add(b)
			}
			b.Release()
		}
		if err == nil {
			err = rb.flush()
		}
		rb.release()
		written <- errors.Join(err, iw.Close())
	}()
	var cols []string
	for _, f := range schema.Fields() {
		cols = append(cols, quoteIdent(f.Name))
	}
	// A table scan returns rows in rowid order (DuckDB preserves insertion order unless told
	// otherwise), so no ORDER BY (a sort of the page) is needed; the rowids that come along are
	// checked to be exactly the next ones, so the file is the table row for row.
	next := int64(0)
	err = withArrow(ctx, w.db, func(ar *duckdb.Arrow) error {
		for off := int64(0); off < rows; off += snapshotPageRows {
			rdr, err := ar.QueryContext(ctx, fmt.Sprintf("SELECT %s, rowid FROM %s WHERE rowid >= %d AND rowid < %d",
				strings.Join(cols, ", "), sorted, off, off+snapshotPageRows))
			if err != nil {
				return err
			}
			for err == nil && rdr.Next() {
				b := rdr.RecordBatch()
				rowids, ok := b.Column(len(cols)).(*array.Int64)
				if !ok {
					err = fmt.Errorf("sandbox: rowid column has type %s", b.Column(len(cols)).DataType())
					break
				}
				for _, r := range rowids.Int64Values() {
					if r != next {
						err = errors.New("sandbox: the sorted table was not read in rowid order")
						break
					}
					next++
				}
				batches <- array.NewRecordBatch(schema, b.Columns()[:len(cols)], b.NumRows())
			}
			err = errors.Join(err, rdr.Err())
			rdr.Release()
			if err != nil {
				return err
			}
		}
		if next != rows {
			return errors.New("sandbox: the sorted table's rows were not all read")
		}
		return nil
	})
	close(batches)
	if err = errors.Join(err, <-written); err != nil {
		return "", err
	}
	if err := tmp.Sync(); err != nil {
		return "", err
	}
	digest := "sha256:" + hex.EncodeToString(h.Sum(nil))
	if err := os.Rename(tmp.Name(), w.snapshotPath(digest)); err != nil {
		return "", err
	}
	return digest, nil
}

// posColumn numbers a snapshot's rows in file order while it is loaded.
const posColumn = "__cr_pos"

// positionReader appends to each batch of a snapshot file its rows' positions in the file.
type positionReader struct {
	array.RecordReader
	schema *arrow.Schema
	cur    arrow.RecordBatch
	next   int64
	err    error
}

func (r *positionReader) Schema() *arrow.Schema { return r.schema }

func (r *positionReader) Next() bool {
	if r.cur != nil {
		r.cur.Release()
		r.cur = nil
	}
	if !r.RecordReader.Next() {
		r.err = r.RecordReader.Err()
		return false
	}
	b := r.RecordReader.RecordBatch()
	pb := array.NewInt64Builder(memory.DefaultAllocator)
	defer pb.Release()
	pb.Reserve(int(b.NumRows()))
	for i := range b.NumRows() {
		pb.UnsafeAppend(r.next + i)
	}
	r.next += b.NumRows()
	pos := pb.NewArray()
	defer pos.Release()
	r.cur = array.NewRecordBatch(r.schema, append(slices.Clone(b.Columns()), pos), b.NumRows())
	return true
}

func (r *positionReader) RecordBatch() arrow.RecordBatch { return r.cur }

func (r *positionReader) Record() arrow.RecordBatch { return r.cur }

func (r *positionReader) Err() error { return r.err }

// Release drops the current batch; the caller that opened the file reader releases it (the
// embedded Retain/Release pair the Arrow export makes stays balanced on the file reader).
func (r *positionReader) Release() {
	if r.cur != nil {
		r.cur.Release()
		r.cur = nil
	}
	r.RecordReader.Release()
}

// rebatcher re-cuts a stream of batches into batches of exactly snapshotBatchRows rows (the
// last may be shorter), so the encoding does not depend on DuckDB's chunking.
type rebatcher struct {
	schema  *arrow.Schema
	out     *ipc.Writer
	pending []arrow.RecordBatch
	rows    int64
}

func (r *rebatcher) add(b arrow.RecordBatch) error {
	b.Retain()
	r.pending = append(r.pending, b)
	r.rows += b.NumRows()
	for r.rows >= snapshotBatchRows {
		if err := r.emit(snapshotBatchRows); err != nil {
			return err
		}
	}
	return nil
}

// release drops the batches still pending after an error.
func (r *rebatcher) release() {
	for _, b := range r.pending {
		b.Release()
	}
	r.pending = nil
}

func (r *rebatcher) flush() error {
	if r.rows == 0 {
		return nil
	}
	return r.emit(r.rows)
}

// emit writes the first n pending rows as one batch.
func (r *rebatcher) emit(n int64) error {
	var parts []arrow.RecordBatch
	var taken int64
	for taken < n {
		b := r.pending[0]
		need := n - taken
		if b.NumRows() <= need {
			parts = append(parts, b)
			r.pending = r.pending[1:]
			taken += b.NumRows()
			continue
		}
		parts = append(parts, b.NewSlice(0, need))
		r.pending[0] = b.NewSlice(need, b.NumRows())
		b.Release()
		taken += need
	}
	r.rows -= n
	defer func() {
		for _, p := range parts {
			p.Release()
		}
	}()
	cols := make([]arrow.Array, r.schema.NumFields())
	for c := range cols {
		arrs := make([]arrow.Array, len(parts))
		for i, p := range parts {
			arrs[i] = p.Column(c)
		}
		joined, err := array.Concatenate(arrs, memory.DefaultAllocator)
		if err != nil {
			return err
		}
		defer joined.Release()
		cols[c] = joined
	}
	out := array.NewRecordBatch(r.schema, cols, n)
	defer out.Release()
	return r.out.Write(out)
}

// load verifies a snapshot file against its digest and materializes it as a DuckDB table
// (Arrow views can be scanned only once).
func (w *worker) load(ctx context.Context, digest string) (*snapTable, error) {
	w.loadMu.Lock()
	defer w.loadMu.Unlock()
	w.mu.Lock()
	if s, ok := w.tables[digest]; ok {
		w.mu.Unlock()
		return s, nil
	}
	w.mu.Unlock()
	path := w.snapshotPath(digest)
	if err := verifyDigest(path, digest); err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, errcode.Wrap(errcode.SandboxFailed, err, "snapshot %s cannot be opened", digest)
	}
	defer f.Close()
	rdr, err := ipc.NewReader(f)
	if err != nil {
		return nil, errcode.Wrap(errcode.SandboxFailed, err, "snapshot %s is not a readable Arrow stream", digest)
	}
	defer rdr.Release()
	schema := rdr.Schema()
	table := tableName(digest)
	staged := table + "_load"
	defer w.db.ExecContext(context.WithoutCancel(ctx), "DROP TABLE IF EXISTS "+staged)
	err = withArrow(ctx, w.db, func(ar *duckdb.Arrow) error {
		pr := &positionReader{RecordReader: rdr, schema: arrow.NewSchema(append(slices.Clone(schema.Fields()), arrow.Field{Name: posColumn, Type: arrow.PrimitiveTypes.Int64}), nil)}
		release, err := ar.RegisterView(pr, staged+"_view")
		if err != nil {
			return err
		}
		_, err = w.db.ExecContext(ctx, fmt.Sprintf("CREATE OR REPLACE TABLE %s AS SELECT * FROM %s", staged, staged+"_view"))
		_, dropErr := w.db.ExecContext(context.WithoutCancel(ctx), "DROP VIEW IF EXISTS "+staged+"_view")
		release()
		return errors.Join(err, pr.err, dropErr)
	})
	var twins map[string]bool
	if err == nil {
		// Rows must sit in rowid order by unit for the bounding pass's fast path, and in the
		// file's order within a unit, which the bounding pass's choice of rows depends on: the
		// file is in that order, and ordering by each row's position in the file keeps it
		// however DuckDB parallelizes the load.
		var casts []string
		casts, twins, err = w.enumTwinCasts(ctx, staged, schema)
		sel := append([]string{"* EXCLUDE (" + posColumn + ")"}, casts...)
		if err == nil {
			_, err = w.db.ExecContext(ctx, fmt.Sprintf("CREATE OR REPLACE TABLE %s AS SELECT %s FROM %s ORDER BY %s", table, strings.Join(sel, ", "), staged, posColumn))
		}
	}
	if err != nil {
		return nil, errcode.Wrap(errcode.SandboxFailed, err, "snapshot %s could not be loaded (%s)", digest, duckErrorClass(err))
	}
	return w.index(ctx, digest, table, schema, twins)
}

// adopt makes the table a registration sorted (sortSnapshot) the loaded table of the snapshot
// it was written to: the same rows in the same rowid order as the file, which is what load
// would build from it.
func (w *worker) adopt(ctx context.Context, digest, sorted string, schema *arrow.Schema, twins map[string]bool) (*snapTable, error) {
	w.loadMu.Lock()
	defer w.loadMu.Unlock()
	w.mu.Lock()
	s, ok := w.tables[digest]
	w.mu.Unlock()
	if ok {
		return s, nil // the same data, registered before: the caller drops its copy
	}
	table := tableName(digest)
	for _, stmt := range []string{"DROP TABLE IF EXISTS " + table, fmt.Sprintf("ALTER TABLE %s RENAME TO %s", sorted, table)} {
		if _, err := w.db.ExecContext(ctx, stmt); err != nil {
			return nil, errcode.Wrap(errcode.SandboxFailed, err, "snapshot %s could not be loaded (%s)", digest, duckErrorClass(err))
		}
	}
	return w.index(ctx, digest, table, schema, twins)
}

// index counts a loaded snapshot's rows and units, indexes its units' runs and makes it
// available to jobs.
func (w *worker) index(ctx context.Context, digest, table string, schema *arrow.Schema, twins map[string]bool) (*snapTable, error) {
	s := &snapTable{Snapshot: wire.Snapshot{Digest: digest}, table: table, twins: twins}
	row := w.db.QueryRowContext(ctx, fmt.Sprintf("SELECT count(*), coalesce(max(%s) + 1, 0) FROM %s", unitColumn, table))
	if err := row.Scan(&s.Rows, &s.Units); err != nil {
		return nil, errcode.Wrap(errcode.SandboxFailed, err, "snapshot %s could not be counted", digest)
	}
	var err error
	if s.starts, err = w.unitStarts(ctx, table, s.Units, s.Rows); err != nil {
		return nil, errcode.Wrap(errcode.SandboxFailed, err, "snapshot %s could not be indexed (%s)", digest, duckErrorClass(err))
	}
	for _, f := range schema.Fields() {
		if f.Name != unitColumn {
			s.Columns = append(s.Columns, wire.Column{Name: f.Name, Type: f.Type.String()})
		}
	}
	slices.SortFunc(s.Columns, func(a, b wire.Column) int { return strings.Compare(a.Name, b.Name) })
	w.mu.Lock()
	w.tables[digest] = s
	w.mu.Unlock()
	return s, nil
}

// unitStarts returns each unit's first rowid, then the row count: units occupy consecutive
// rowids (the table is loaded in unit order), so the u-th unit's rows are [starts[u],
// starts[u+1]). It checks that the runs really are consecutive, that the unit keys ascend with
// them (a materialized relation's keys may skip values) and, unless units is negative (not
// known: a relation), that units runs cover the rows; a snapshot's keys, from 0 to units-1,
// are then dense. The runs cover the table however many there are (a GROUP BY sees every row).
func (w *worker) unitStarts(ctx context.Context, table string, units, rows int64) ([]int64, error) {
	starts := make([]int64, 0, max(units, 0)+1)
	var next, prev int64 = 0, -1
	// Read as Arrow: a unit per row of the result, millions of them, which database/sql would
	// scan one by one.
	err := withArrow(ctx, w.db, func(ar *duckdb.Arrow) error {
		res, err := ar.QueryContext(ctx, fmt.Sprintf(
			"SELECT %s::BIGINT, min(rowid)::BIGINT, max(rowid)::BIGINT, count(*)::BIGINT FROM %s GROUP BY 1 ORDER BY 1", unitColumn, table))
		if err != nil {
			return err
		}
		defer res.Release()
		for res.Next() {
			b := res.RecordBatch()
			var cols [4][]int64
			for c := range cols {
				a, ok := b.Column(c).(*array.Int64)
				if !ok || a.NullN() > 0 {
					return errors.New("sandbox: unit runs are not integers")
				}
				cols[c] = a.Int64Values()
			}
			for i, u := range cols[0] {
				first, last, n := cols[1][i], cols[2][i], cols[3][i]
				if u <= prev || first != next || last-first+1 != n {
					return errors.New("sandbox: snapshot rows are not in unit order")
				}
				starts = append(starts, first)
				next, prev = last+1, u
			}
		}
		return res.Err()
	})
	if err != nil {
		return nil, err
	}
	if units >= 0 && (int64(len(starts)) != units || next != rows) {
		return nil, errors.New("sandbox: snapshot units do not cover its rows")
	}
	return append(starts, next), nil
}

// unitOf returns the unit of a rowid, trying first the unit at hint and the one after it
// (rows mostly arrive in order, so a cursor steps forward) before a binary search. A rowid
// past the end yields len(starts)-1, a unit no shard owns: the pass then fails closed.
func (s *snapTable) unitOf(x int64, hint int) int {
	if hint+1 < len(s.starts) && x >= s.starts[hint] {
		if x < s.starts[hint+1] {
			return hint
		}
		if hint+2 < len(s.starts) && x < s.starts[hint+2] {
			return hint + 1 // the next unit: the common step
		}
	}
	return sort.Search(len(s.starts)-1, func(k int) bool { return s.starts[k+1] > x })
}

// enumTwinLimit is the most distinct values a text column may have to get an ENUM twin.
const enumTwinLimit = 4096

// twinPrefix names the hidden ENUM twin of a text column; catalog names cannot start with "_".
const twinPrefix = "__cr_e_"

// addEnumTwins gives each low-cardinality text column of a loaded snapshot a hidden ENUM copy
// (enumTwinCasts), rewriting the table in its rowid order. Returns the columns that got a twin.
func (w *worker) addEnumTwins(ctx context.Context, table string, schema *arrow.Schema) (map[string]bool, error) {
	casts, twins, err := w.enumTwinCasts(ctx, table, schema)
	if err != nil || len(casts) == 0 {
		return nil, err
	}
	tmp := table + "_twins"
	for _, stmt := range []string{
		fmt.Sprintf("CREATE OR REPLACE TABLE %s AS SELECT *, %s FROM %s ORDER BY rowid", tmp, strings.Join(casts, ", "), table),
		"DROP TABLE " + table,
		fmt.Sprintf("ALTER TABLE %s RENAME TO %s", tmp, table),
	} {
		if _, err := w.db.ExecContext(ctx, stmt); err != nil {
			return nil, err
		}
	}
	return twins, nil
}

// enumTwinCasts returns the select expressions of the hidden ENUM copies of the
// low-cardinality text columns of table (schema's fields), and those columns' names.
// Hashing a group key is most of the worker's scan cost when the key is text, and hashing an
// ENUM (a small integer) is nearly free; filters and released values keep using the text
// column, so no query changes meaning.
func (w *worker) enumTwinCasts(ctx context.Context, table string, schema *arrow.Schema) ([]string, map[string]bool, error) {
	var text, estimates []string
	for _, f := range schema.Fields() {
		switch f.Type.ID() {
		case arrow.STRING, arrow.LARGE_STRING, arrow.STRING_VIEW:
			text = append(text, f.Name)
			estimates = append(estimates, "approx_count_distinct("+quoteIdent(f.Name)+")")
		}
	}
	if len(text) == 0 {
		return nil, nil, nil
	}
	est := make([]int64, len(text))
	dest := make([]any, len(text))
	for i := range est {
		dest[i] = &est[i]
	}
	if err := w.db.QueryRowContext(ctx, "SELECT "+strings.Join(estimates, ", ")+" FROM "+table).Scan(dest...); err != nil {
		return nil, nil, err
	}
	twins := map[string]bool{}
	var casts []string
	for i, c := range text {
		if est[i] > 2*enumTwinLimit { // the estimate is approximate; the exact check follows
			continue
		}
		rows, err := w.db.QueryContext(ctx, fmt.Sprintf("SELECT DISTINCT %s FROM %s WHERE %s IS NOT NULL ORDER BY 1 LIMIT %d",
			quoteIdent(c), table, quoteIdent(c), enumTwinLimit+1))
		if err != nil {
			return nil, nil, err
		}
		var lits []string
		for rows.Next() {
			var v string
			if err := rows.Scan(&v); err != nil {
				rows.Close()
				return nil, nil, err
			}
			lits = append(lits, sqlgen.String(v))
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, nil, err
		}
		if len(lits) == 0 || len(lits) > enumTwinLimit {
			continue
		}
		casts = append(casts, fmt.Sprintf("CAST(%s AS ENUM(%s)) AS %s", quoteIdent(c), strings.Join(lits, ", "), quoteIdent(twinPrefix+c)))
		twins[c] = true
	}
	if len(casts) == 0 {
		return nil, nil, nil
	}
	return casts, twins, nil
}

// keyExprs renders the plan's group keys as the worker evaluates them everywhere: a key that is
// a text column reads its ENUM twin (same values, cheaper to hash); any other key is total
// (total.go), NULL where it would fail.
func keyExprs(p *wire.Plan, snap *snapTable) ([]string, error) {
	sc := columnScope(snap.Columns)
	keys := make([]string, len(p.Keys))
	for i, k := range p.Keys {
		v, err := sqlgen.Value(k, sc)
		if err != nil {
			return nil, errcode.Wrap(errcode.Internal, err, "the plan's group key %d is not a valid expression over the scanned columns", i+1)
		}
		keys[i] = v
		if k.Kind == wire.KindColumn && k.Source == "" && snap.twins[k.Name] {
			keys[i] = quoteIdent(twinPrefix + k.Name)
		}
	}
	return keys, nil
}

// hashKeys is the SQL hash of the plan's group keys (keyExprs).
func hashKeys(p *wire.Plan, snap *snapTable) (string, error) {
	keys, err := keyExprs(p, snap)
	if err != nil {
		return "", err
	}
	return "hash(" + strings.Join(keys, ", ") + ")", nil
}

func verifyDigest(path, digest string) error {
	f, err := os.Open(path)
	if err != nil {
		if os.IsNotExist(err) {
			return errcode.New(errcode.SandboxFailed, "snapshot %s is not present in this domain", digest)
		}
		return errcode.Wrap(errcode.SandboxFailed, err, "snapshot %s cannot be opened", digest)
	}
	defer f.Close()
	var h hash.Hash = sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return errcode.Wrap(errcode.SandboxFailed, err, "snapshot %s cannot be read", digest)
	}
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != digest {
		return errcode.New(errcode.SandboxFailed, "snapshot %s does not match its digest: the data changed on disk", digest)
	}
	return nil
}

func isNumeric(t arrow.DataType) bool {
	switch t.ID() {
	case arrow.INT8, arrow.INT16, arrow.INT32, arrow.INT64, arrow.UINT8, arrow.UINT16, arrow.UINT32,
		arrow.UINT64, arrow.FLOAT16, arrow.FLOAT32, arrow.FLOAT64, arrow.DECIMAL128, arrow.DECIMAL256:
		return true
	}
	return false
}
