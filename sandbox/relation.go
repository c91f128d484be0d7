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
// normalised unit of its first source. With MaxRowsPerUnit each source with a unit is read
// through boundedRows. sc is the relation's scope (relationScope).
func relationFrom(r *wire.Relation, tables []string, samplingKey uint64, sc sqlgen.Scope) (from, unit string, err error) {
	if len(r.Sources) == 0 || len(r.Sources) != len(tables) || r.Sources[0].Unit == "" || r.Sources[0].Join != "" {
		return "", "", errcode.New(errcode.Internal, "the relation's first source must be a dataset with a privacy unit")
	}
	read := func(i int) string {
		if r.MaxRowsPerUnit > 0 && r.Sources[i].Unit != "" {
			return boundedRows(tables[i], r.MaxRowsPerUnit, samplingKey)
		}
		return tables[i]
	}
	first := r.Sources[0]
	unit = normUnit(qualified(first.Alias, first.Unit))
	var b strings.Builder
	fmt.Fprintf(&b, "%s AS %s", read(0), quoteIdent(first.Alias))
	for i, s := range r.Sources[1:] {
		kind := map[string]string{"inner": "JOIN", "left": "LEFT JOIN"}[s.Join]
		if kind == "" {
			return "", "", errcode.New(errcode.Internal, "the relation has a join of unknown kind")
		}
		var on string
		if s.Unit != "" {
			if s.On != nil {
				return "", "", errcode.New(errcode.Internal, "a join of datasets on their units has a condition of its own")
			}
			on = unit + " = " + normUnit(qualified(s.Alias, s.Unit))
		} else if s.On == nil {
			return "", "", errcode.New(errcode.Internal, "a lookup join has no condition")
		} else if on, err = sqlgen.Condition(s.On, sc); err != nil {
			return "", "", errcode.Wrap(errcode.Internal, err, "a lookup join's condition is not valid over its sources")
		}
		fmt.Fprintf(&b, " %s %s AS %s ON %s", kind, read(i+1), quoteIdent(s.Alias), on)
	}
	return b.String(), unit, nil
}

// boundedRows reads a snapshot table keeping at most n rows per privacy unit. A row's place
// among its unit's rows (in the snapshot's order, which the unit's own rows fix) is ranked by
// a keyed hash, so which rows are kept depends on the unit's rows and the job's key alone.
func boundedRows(table string, n int64, key uint64) string {
	return fmt.Sprintf("(SELECT * EXCLUDE (__cr_pos) FROM (SELECT *, row_number() OVER (PARTITION BY %[2]s ORDER BY rowid) AS __cr_pos FROM %[1]s) QUALIFY row_number() OVER (PARTITION BY %[2]s ORDER BY hash(__cr_pos, %[3]d::UBIGINT), __cr_pos) <= %[4]d)",
		table, unitColumn, key, n)
}

// relationSQL renders the SELECT that computes a relation from its FROM clause: the normalised
// unit as normColumn, then the relation's columns, every one of them total (total.go).
// argTypes gives the type of each per-unit SUM or AVG argument, by column index.
func relationSQL(r *wire.Relation, from, unit string, argTypes map[int]string, sc sqlgen.Scope) (string, error) {
	invalid := func(err error, what string) error {
		return errcode.Wrap(errcode.Internal, err, "the relation's %s is not valid over its sources", what)
	}
	cols := []string{unit + " AS " + normColumn}
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

// materialize computes a relation into a table of its own, in unit order with ties broken by
// every column, and indexes its units like a snapshot. drop removes the table.
func (w *worker) materialize(ctx context.Context, r *wire.Relation, samplingKey uint64) (snap *snapTable, drop func(), err error) {
	tables := make([]string, len(r.Sources))
	cols := make([][]wire.Column, len(r.Sources))
	for i, s := range r.Sources {
		src, err := w.loaded(ctx, s.Snapshot)
		if err != nil {
			return nil, nil, err
		}
		tables[i], cols[i] = src.table, src.Columns
	}
	sc := relationScope(r, cols)
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
	table := fmt.Sprintf("rel_%d", w.nextID())
	drop = func() {
		if _, err := w.db.ExecContext(context.WithoutCancel(ctx), "DROP TABLE IF EXISTS "+table); err != nil {
			w.log.Warn("dropping a materialized relation failed", "class", duckErrorClass(err))
		}
	}
	sel := strings.Join(append([]string{fmt.Sprintf("(dense_rank() OVER (ORDER BY %s) - 1) AS %s", normColumn, unitColumn)}, names...), ", ")
	stmt := fmt.Sprintf("CREATE TABLE %s AS SELECT %s FROM (%s) ORDER BY %s", table, sel, inner, strings.Join(order, ", "))
	if _, err := w.db.ExecContext(ctx, stmt); err != nil {
		drop()
		return nil, nil, err
	}
	snap = &snapTable{table: table}
	for _, c := range r.Columns {
		snap.Columns = append(snap.Columns, wire.Column{Name: c.Name}) // the plan's scope
	}
	row := w.db.QueryRowContext(ctx, fmt.Sprintf("SELECT count(*), coalesce(max(%s) + 1, 0) FROM %s", unitColumn, table))
	if err := row.Scan(&snap.Rows, &snap.Units); err != nil {
		drop()
		return nil, nil, err
	}
	if snap.starts, err = w.unitStarts(ctx, table, snap.Units, snap.Rows); err != nil {
		drop()
		return nil, nil, err
	}
	return snap, drop, nil
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
