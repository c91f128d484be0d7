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
	staging := fmt.Sprintf("staging_%d", w.nextID())
	var digest string
	err = withArrow(ctx, w.db, func(ar *duckdb.Arrow) error {
		release, err := ar.RegisterView(rec, staging+"_view")
		if err != nil {
			return err
		}
		_, err = w.db.ExecContext(ctx, fmt.Sprintf("CREATE TABLE %s AS SELECT * FROM %s",
			staging, quoteIdent(staging+"_view")))
		_, dropErr := w.db.ExecContext(context.WithoutCancel(ctx), "DROP VIEW IF EXISTS "+quoteIdent(staging+"_view"))
		release()
		if rec.err != nil {
			return connectorError(rec.err)
		}
		if err != nil {
			return err
		}
		if dropErr != nil {
			return dropErr
		}
		defer w.db.ExecContext(context.WithoutCancel(ctx), "DROP TABLE IF EXISTS "+staging)
		// Rows sort by the normalised unit (trimmed, upper-case text: "…x" and "…X " are one
		// person), then by every column, so a unit's rows are adjacent and the order — hence
		// the digest — depends only on the data. The last column, the normalised unit, gives
		// the dense unit key and is not stored.
		var cols []string
		for _, f := range src.Schema().Fields() {
			cols = append(cols, quoteIdent(f.Name))
		}
		norm := normUnit(quoteIdent(a.PrivacyUnit))
		if a.PrivacyUnit == "" {
			norm = "''" // a public lookup table: one unit holds every row
		}
		sorted, err := ar.QueryContext(ctx, fmt.Sprintf("SELECT *, %s AS %s FROM %s ORDER BY %s, %s",
			norm, normColumn, staging, normColumn, strings.Join(cols, ", ")))
		if err != nil {
			return err
		}
		defer sorted.Release()
		digest, _, err = w.writeSnapshot(sorted)
		return err
	})
	if err != nil {
		var ce *errcode.Error
		if errors.As(err, &ce) {
			return nil, ce
		}
		return nil, errcode.Wrap(errcode.SandboxFailed, err, "registration failed while building the snapshot (%s)", duckErrorClass(err))
	}
	return w.load(ctx, digest)
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

// writeSnapshot writes the sorted rows, with the dense unit key prepended, as an Arrow IPC
// stream in fixed-size batches, and names the file by the SHA-256 of those bytes.
func (w *worker) writeSnapshot(sorted array.RecordReader) (string, int64, error) {
	dir := filepath.Join(w.dir, "snapshots")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", 0, err
	}
	tmp, err := os.CreateTemp(dir, "incoming-*.arrow")
	if err != nil {
		return "", 0, err
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	defer tmp.Close()
	h := sha256.New()
	in := sorted.Schema().Fields()
	normIdx := len(in) - 1
	fields := append([]arrow.Field{{Name: unitColumn, Type: arrow.PrimitiveTypes.Int64}}, in[:normIdx]...)
	schema := arrow.NewSchema(fields, nil)
	iw := ipc.NewWriter(io.MultiWriter(tmp, h), ipc.WithSchema(schema), ipc.WithAllocator(memory.DefaultAllocator))
	unitIdx := normIdx
	rb := &rebatcher{schema: schema, out: iw}
	var key int64 = -1
	var prev string
	var rows int64
	for sorted.Next() {
		b := sorted.RecordBatch()
		ua := b.Column(unitIdx)
		kb := array.NewInt64Builder(memory.DefaultAllocator)
		for i := 0; i < int(b.NumRows()); i++ {
			if ua.IsNull(i) {
				kb.Release()
				return "", 0, errcode.New(errcode.InvalidSpec, "the privacy unit column has empty values at data row %d of the sorted snapshot", rows+int64(i)+1)
			}
			if v := ua.ValueStr(i); key < 0 || v != prev {
				key++
				prev = strings.Clone(v) // v points into a batch that the next Next() frees
			}
			kb.Append(key)
		}
		keys := kb.NewArray()
		kb.Release()
		cols := append([]arrow.Array{keys}, b.Columns()[:normIdx]...)
		withKey := array.NewRecordBatch(schema, cols, b.NumRows())
		keys.Release()
		rows += b.NumRows()
		err := rb.add(withKey)
		withKey.Release()
		if err != nil {
			return "", 0, err
		}
	}
	if err := sorted.Err(); err != nil {
		return "", 0, err
	}
	if err := rb.flush(); err != nil {
		return "", 0, err
	}
	if err := iw.Close(); err != nil {
		return "", 0, err
	}
	if err := tmp.Sync(); err != nil {
		return "", 0, err
	}
	digest := "sha256:" + hex.EncodeToString(h.Sum(nil))
	if err := os.Rename(tmp.Name(), w.snapshotPath(digest)); err != nil {
		return "", 0, err
	}
	return digest, rows, nil
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
	view := table + "_load"
	err = withArrow(ctx, w.db, func(ar *duckdb.Arrow) error {
		release, err := ar.RegisterView(rdr, view)
		if err != nil {
			return err
		}
		// Rows must sit in rowid order by unit for the bounding pass's fast path; the file is
		// in that order, and ORDER BY keeps it so however DuckDB parallelizes the load.
		order := []string{unitColumn}
		for _, f := range schema.Fields() {
			if f.Name != unitColumn {
				order = append(order, quoteIdent(f.Name))
			}
		}
		_, err = w.db.ExecContext(ctx, fmt.Sprintf("CREATE OR REPLACE TABLE %s AS SELECT * FROM %s ORDER BY %s", table, view, strings.Join(order, ", ")))
		_, dropErr := w.db.ExecContext(context.WithoutCancel(ctx), "DROP VIEW IF EXISTS "+view)
		release()
		return errors.Join(err, dropErr)
	})
	if err != nil {
		return nil, errcode.Wrap(errcode.SandboxFailed, err, "snapshot %s could not be loaded (%s)", digest, duckErrorClass(err))
	}
	twins, err := w.addEnumTwins(ctx, table, schema)
	if err != nil {
		return nil, errcode.Wrap(errcode.SandboxFailed, err, "snapshot %s could not be prepared (%s)", digest, duckErrorClass(err))
	}
	s := &snapTable{Snapshot: wire.Snapshot{Digest: digest}, table: table, twins: twins}
	row := w.db.QueryRowContext(ctx, fmt.Sprintf("SELECT count(*), coalesce(max(%s) + 1, 0) FROM %s", unitColumn, table))
	if err := row.Scan(&s.Rows, &s.Units); err != nil {
		return nil, errcode.Wrap(errcode.SandboxFailed, err, "snapshot %s could not be counted", digest)
	}
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

// addEnumTwins gives each low-cardinality text column of a loaded snapshot a hidden ENUM copy.
// Hashing a group key is most of the worker's scan cost when the key is text, and hashing an
// ENUM (a small integer) is nearly free; filters and released values keep using the text
// column, so no query changes meaning. Returns the columns that got a twin.
func (w *worker) addEnumTwins(ctx context.Context, table string, schema *arrow.Schema) (map[string]bool, error) {
	var text, estimates []string
	for _, f := range schema.Fields() {
		switch f.Type.ID() {
		case arrow.STRING, arrow.LARGE_STRING, arrow.STRING_VIEW:
			text = append(text, f.Name)
			estimates = append(estimates, "approx_count_distinct("+quoteIdent(f.Name)+")")
		}
	}
	if len(text) == 0 {
		return nil, nil
	}
	est := make([]int64, len(text))
	dest := make([]any, len(text))
	for i := range est {
		dest[i] = &est[i]
	}
	if err := w.db.QueryRowContext(ctx, "SELECT "+strings.Join(estimates, ", ")+" FROM "+table).Scan(dest...); err != nil {
		return nil, err
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
			return nil, err
		}
		var lits []string
		for rows.Next() {
			var v string
			if err := rows.Scan(&v); err != nil {
				rows.Close()
				return nil, err
			}
			lits = append(lits, sqlgen.String(v))
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
		if len(lits) == 0 || len(lits) > enumTwinLimit {
			continue
		}
		casts = append(casts, fmt.Sprintf("CAST(%s AS ENUM(%s)) AS %s", quoteIdent(c), strings.Join(lits, ", "), quoteIdent(twinPrefix+c)))
		twins[c] = true
	}
	if len(casts) == 0 {
		return nil, nil
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
