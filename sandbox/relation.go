package sandbox

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/c1b99f93/cleanroom/errcode"
	"github.com/c1b99f93/cleanroom/sandbox/sqlgen"
	"github.com/c1b99f93/cleanroom/sandbox/wire"
)

// normUnit is the privacy-unit normalisation of registration and of joins: "…x" and "…X " are
// one person in every dataset, so a join on it matches what bounding treats as one unit. col is
// a rendered column reference.
func normUnit(col string) string {
	return fmt.Sprintf("upper(trim(CAST(%s AS VARCHAR)))", col)
}

func qualified(alias, col string) string { return quoteIdent(alias) + "." + quoteIdent(col) }

// relationScope admits the columns of a relation's sources, each qualified by its source's
// alias: cols[i] are the columns of source i's snapshot.
func relationScope(r *wire.Relation, cols [][]wire.Column) sqlgen.Scope {
	names := map[[2]string]bool{}
	for i, s := range r.Sources {
		if i < len(cols) {
			for _, c := range cols[i] {
				names[[2]string{s.Alias, c.Name}] = true
			}
		}
	}
	return func(source, name string) bool {
		return source != "" && names[[2]string{source, name}] && !internalColumn(name)
	}
}

// relationFrom renders the FROM clause of a relation over the loaded snapshots, and the
// normalised unit of its first source as text. With MaxRowsPerUnit each source with a unit is
// read through boundedRows. sc is the relation's scope (relationScope). The model and custom
// model passes read it; materialize reads keyedFrom, which matches units by integer keys.
func relationFrom(r *wire.Relation, tables []string, samplingKey uint64, sc sqlgen.Scope) (from, unit string, err error) {
	from, unit, _, err = renderFrom(r, tables, nil, samplingKey, sc)
	return from, unit, err
}

// keyedFrom is relationFrom over the snapshots' unit tables (unitTable), units[i] that of
// source i ("" for a lookup table): sources join on the first source's unit key, mapped through
// the two unit tables' normalised text, so no row's unit is normalised or compared as text. Its
// unit is the first source's unit key, whose order is the order of the normalised unit;
// rowids[i] is the snapshot rowid of source i's row (NULL where a left join matched nothing).
func keyedFrom(r *wire.Relation, tables, units []string, samplingKey uint64, sc sqlgen.Scope) (from, unit string, rowids []string, err error) {
	if len(units) != len(tables) {
		return "", "", nil, errcode.New(errcode.Internal, "the relation's unit tables do not match its sources")
	}
	return renderFrom(r, tables, units, samplingKey, sc)
}

// renderFrom is relationFrom (units nil) and keyedFrom.
func renderFrom(r *wire.Relation, tables, units []string, samplingKey uint64, sc sqlgen.Scope) (from, unit string, rowids []string, err error) {
	if len(r.Sources) == 0 || len(r.Sources) != len(tables) || r.Sources[0].Unit == "" || r.Sources[0].Join != "" {
		return "", "", nil, errcode.New(errcode.Internal, "the relation's first source must be a dataset with a privacy unit")
	}
	keyed := units != nil
	if keyed && units[0] == "" {
		return "", "", nil, errcode.New(errcode.Internal, "the relation's first source has no unit table")
	}
	// A source read from its table has its rowid; keyedRows carries it as rowidColumn.
	rowids = make([]string, len(r.Sources))
	for i, s := range r.Sources {
		rowids[i] = quoteIdent(s.Alias) + ".rowid"
		if keyed && s.Unit != "" && (i > 0 || r.MaxRowsPerUnit > 0) {
			rowids[i] = qualified(s.Alias, rowidColumn)
		}
	}
	first := r.Sources[0]
	read := func(i int) string {
		s := r.Sources[i]
		switch {
		case s.Unit == "":
			return tables[i]
		case keyed && i > 0:
			return keyedRows(tables[i], units[i], units[0], r.MaxRowsPerUnit, samplingKey)
		case keyed && r.MaxRowsPerUnit > 0:
			return keyedRows(tables[i], units[i], "", r.MaxRowsPerUnit, samplingKey)
		case !keyed && r.MaxRowsPerUnit > 0:
			return boundedRows(tables[i], r.MaxRowsPerUnit, samplingKey)
		}
		return tables[i]
	}
	unit = normUnit(qualified(first.Alias, first.Unit))
	if keyed {
		unit = qualified(first.Alias, unitColumn)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s AS %s", read(0), quoteIdent(first.Alias))
	for i, s := range r.Sources[1:] {
		kind := map[string]string{"inner": "JOIN", "left": "LEFT JOIN"}[s.Join]
		if kind == "" {
			return "", "", nil, errcode.New(errcode.Internal, "the relation has a join of unknown kind")
		}
		var on string
		switch {
		case s.Unit != "" && s.On != nil:
			return "", "", nil, errcode.New(errcode.Internal, "a join of datasets on their units has a condition of its own")
		case s.Unit != "" && keyed:
			if units[i+1] == "" {
				return "", "", nil, errcode.New(errcode.Internal, "a joined dataset has no unit table")
			}
			on = unit + " = " + qualified(s.Alias, firstUnitColumn)
		case s.Unit != "":
			on = unit + " = " + normUnit(qualified(s.Alias, s.Unit))
		case s.On == nil:
			return "", "", nil, errcode.New(errcode.Internal, "a lookup join has no condition")
		default:
			if on, err = sqlgen.Condition(s.On, sc); err != nil {
				return "", "", nil, errcode.Wrap(errcode.Internal, err, "a lookup join's condition is not valid over its sources")
			}
		}
		fmt.Fprintf(&b, " %s %s AS %s ON %s", kind, read(i+1), quoteIdent(s.Alias), on)
	}
	return b.String(), unit, rowids, nil
}

// boundedRows reads a snapshot table keeping at most n rows per privacy unit. A row's place
// among its unit's rows (in the snapshot's order, which the unit's own rows fix) is ranked by
// a keyed hash, so which rows are kept depends on the unit's rows and the job's key alone.
// keyedRows keeps the same rows without a window.
func boundedRows(table string, n int64, key uint64) string {
	return fmt.Sprintf("(SELECT * EXCLUDE (__cr_pos) FROM (SELECT *, row_number() OVER (PARTITION BY %[2]s ORDER BY rowid) AS __cr_pos FROM %[1]s) QUALIFY row_number() OVER (PARTITION BY %[2]s ORDER BY hash(__cr_pos, %[3]d::UBIGINT), __cr_pos) <= %[4]d)",
		table, unitColumn, key, n)
}

// relationSQL renders the SELECT that computes a relation from its FROM clause: its unit
// (relationFrom's normalised text or keyedFrom's key) as normColumn, then the relation's
// columns, every one of them total (total.go). argTypes gives the type of each per-unit SUM or
// AVG argument, by column index.
func relationSQL(r *wire.Relation, from, unit string, argTypes map[int]string, sc sqlgen.Scope) (string, error) {
	return relationSelect(r, from, unit, nil, argTypes, sc)
}

// relationSelect is relationSQL with hidden columns ("expr AS __cr…") after the unit: values
// of the sources' rows, so not for a per-unit relation.
func relationSelect(r *wire.Relation, from, unit string, hidden []string, argTypes map[int]string, sc sqlgen.Scope) (string, error) {
	invalid := func(err error, what string) error {
		return errcode.Wrap(errcode.Internal, err, "the relation's %s is not valid over its sources", what)
	}
	if r.PerUnit && len(hidden) > 0 {
		return "", errcode.New(errcode.Internal, "a per-unit relation has no row-level columns")
	}
	cols := append([]string{unit + " AS " + normColumn}, hidden...)
	seen := map[string]bool{}
	for i, c := range r.Columns {
		// DuckDB matches names case-insensitively: "__CR_NORM" would shadow the unit, and "x"
		// beside "X" would read one column twice.
		l := strings.ToLower(c.Name)
		if l == "" || strings.HasPrefix(l, "__cr") || l == "rowid" || seen[l] {
			return "", errcode.New(errcode.Internal, "the relation has a reserved, empty or repeated column name")
		}
		seen[l] = true
		var expr string
		var err error
		if c.Aggregate != "" {
			if !r.PerUnit {
				return "", errcode.New(errcode.Internal, "only a per-unit relation has aggregate columns")
			}
			if expr, err = perUnitAggregate(c, argTypes[i], sc); err != nil {
				return "", err
			}
		} else if expr, err = sqlgen.Value(c.Expr, sc); err != nil {
			return "", invalid(err, "column "+strconv.Itoa(i+1))
		}
		cols = append(cols, "("+expr+") AS "+quoteIdent(c.Name))
	}
	q := "SELECT " + strings.Join(cols, ", ") + " FROM " + from
	if r.Filter != nil {
		f, err := sqlgen.Condition(r.Filter, sc)
		if err != nil {
			return "", invalid(err, "filter")
		}
		q += " WHERE " + f
	}
	if r.PerUnit {
		keys := []string{unit}
		for _, g := range r.GroupBy {
			k, err := sqlgen.Value(g, sc)
			if err != nil {
				return "", invalid(err, "GROUP BY")
			}
			keys = append(keys, k)
		}
		q += " GROUP BY " + strings.Join(keys, ", ")
	} else if r.Filter != nil || len(r.GroupBy) > 0 {
		return "", errcode.New(errcode.Internal, "only a per-unit relation filters before bounding")
	}
	return q, nil
}

// materialize computes a relation into a table of its own, clustered by unit in an order that
// depends only on the data, and indexes its units like a snapshot. Its unit key (__cr_unit) is
// the first source's, ascending but not dense where units drop out (an inner join, a filter);
// the bounding pass's unit is its place in starts. Sources are matched, and rows kept, through
// the snapshots' unit tables (keyedFrom): nothing is normalised, ranked or sorted as text per
// row. drop removes the table.
func (w *worker) materialize(ctx context.Context, r *wire.Relation, samplingKey uint64) (snap *snapTable, drop func(), err error) {
	if !r.Keyed {
		return w.materializeText(ctx, r, samplingKey)
	}
	srcs, tables, sc, err := w.relationSources(ctx, r)
	if err != nil {
		return nil, nil, err
	}
	units := make([]string, len(r.Sources))
	for i, s := range r.Sources {
		if s.Unit != "" {
			if units[i], err = w.unitTable(ctx, srcs[i], s.Unit); err != nil {
				return nil, nil, err
			}
		}
	}
	from, unit, rowids, err := keyedFrom(r, tables, units, samplingKey, sc)
	if err != nil {
		return nil, nil, err
	}
	argTypes, err := w.argumentTypes(ctx, r.Columns, from, sc)
	if err != nil {
		return nil, nil, err
	}
	// The order depends only on the data, and a unit's rows are adjacent: the first source's
	// unit key ascends with the normalised unit (registration ranks units by it), and so do its
	// rowids (snapshots are clustered by unit). A joined row is in the order of its sources'
	// rowids, each snapshot's order within a unit being fixed by the unit's own rows; a
	// per-unit row, whose rowids are gone, in the order of its unit, then of every column (rows
	// equal in all of them are alike), or of its unit alone when that is its only key.
	var hidden, order []string
	switch {
	case !r.PerUnit:
		for i, id := range rowids {
			name := fmt.Sprintf("__cr_r%d", i)
			hidden = append(hidden, id+" AS "+name)
			order = append(order, name)
		}
	case len(r.GroupBy) == 0:
		order = []string{normColumn}
	default:
		order = []string{normColumn}
		for _, c := range r.Columns {
			order = append(order, quoteIdent(c.Name))
		}
	}
	inner, err := relationSelect(r, from, unit, hidden, argTypes, sc)
	if err != nil {
		return nil, nil, err
	}
	sel := []string{normColumn + " AS " + unitColumn}
	for _, c := range r.Columns {
		sel = append(sel, quoteIdent(c.Name))
	}
	return w.relationTable(ctx, r, fmt.Sprintf("SELECT %s FROM (%s) ORDER BY %s", strings.Join(sel, ", "), inner, strings.Join(order, ", ")))
}

// relationTable creates a relation's table from query (its unit key, then its columns, in
// unit order) and indexes its units. drop removes the table.
func (w *worker) relationTable(ctx context.Context, r *wire.Relation, query string) (snap *snapTable, drop func(), err error) {
	table := fmt.Sprintf("rel_%d", w.nextID())
	drop = func() {
		if _, err := w.db.ExecContext(context.WithoutCancel(ctx), "DROP TABLE IF EXISTS "+table); err != nil {
			w.log.Warn("dropping a materialized relation failed", "class", duckErrorClass(err))
		}
	}
	if _, err := w.db.ExecContext(ctx, "CREATE TABLE "+table+" AS "+query); err != nil {
		drop()
		return nil, nil, err
	}
	snap = &snapTable{table: table}
	for _, c := range r.Columns {
		snap.Columns = append(snap.Columns, wire.Column{Name: c.Name}) // the plan's scope
	}
	if snap.starts, err = w.unitStarts(ctx, table, -1, -1); err != nil {
		drop()
		return nil, nil, err
	}
	snap.Units, snap.Rows = int64(len(snap.starts)-1), snap.starts[len(snap.starts)-1]
	return snap, drop, nil
}

// materializeText is materialize as it was before relations were keyed (wire.Relation.Keyed):
// every row's unit normalised as text, units ranked with dense_rank, rows ordered by the unit
// and every column. It runs only the plans recorded before, so that they replay bit for bit.
func (w *worker) materializeText(ctx context.Context, r *wire.Relation, samplingKey uint64) (snap *snapTable, drop func(), err error) {
	_, tables, sc, err := w.relationSources(ctx, r)
	if err != nil {
		return nil, nil, err
	}
	from, unit, err := relationFrom(r, tables, samplingKey, sc)
	if err != nil {
		return nil, nil, err
	}
	argTypes, err := w.argumentTypes(ctx, r.Columns, from, sc)
	if err != nil {
		return nil, nil, err
	}
	inner, err := relationSQL(r, from, unit, argTypes, sc)
	if err != nil {
		return nil, nil, err
	}
	order := []string{normColumn}
	names := make([]string, len(r.Columns))
	for i, c := range r.Columns {
		names[i] = quoteIdent(c.Name)
		order = append(order, names[i])
	}
	sel := strings.Join(append([]string{fmt.Sprintf("(dense_rank() OVER (ORDER BY %s) - 1) AS %s", normColumn, unitColumn)}, names...), ", ")
	return w.relationTable(ctx, r, fmt.Sprintf("SELECT %s FROM (%s) ORDER BY %s", sel, inner, strings.Join(order, ", ")))
}

// relationSources loads a relation's snapshots and returns them with their tables, in source
// order, and the relation's scope over their columns.
func (w *worker) relationSources(ctx context.Context, r *wire.Relation) ([]*snapTable, []string, sqlgen.Scope, error) {
	srcs := make([]*snapTable, len(r.Sources))
	tables := make([]string, len(r.Sources))
	cols := make([][]wire.Column, len(r.Sources))
	for i, s := range r.Sources {
		src, err := w.loaded(ctx, s.Snapshot)
		if err != nil {
			return nil, nil, nil, err
		}
		srcs[i], tables[i], cols[i] = src, src.table, src.Columns
	}
	return srcs, tables, relationScope(r, cols), nil
}

// loaded returns a loaded snapshot, loading it on first use.
func (w *worker) loaded(ctx context.Context, digest string) (*snapTable, error) {
	w.mu.Lock()
	snap := w.tables[digest]
	w.mu.Unlock()
	if snap != nil {
		return snap, nil
	}
	return w.load(ctx, digest)
}
