package sandbox

import (
	"context"
	"fmt"
	"strings"

	"github.com/c1b99f93/cleanroom/engine/errcode"
)

// Relation is a join of snapshots, and perhaps a per-unit aggregation over it, that the worker
// materializes before bounding. The result is clustered by the privacy unit of the first
// source exactly as a snapshot is — a dense unit key, consecutive rowids per unit, rows in an
// order fixed by the data — so the same bounding pass runs over it, after the join: however
// many rows the join gives one unit, that unit still contributes at most the plan's bounds.
type Relation struct {
	Sources []RelationSource `json:"sources"`
	Columns []RelationColumn `json:"columns"`
	// PerUnit groups the joined rows by unit and GroupBy; Columns are then group keys and
	// exact per-unit aggregates, and Filter applies before grouping.
	PerUnit bool     `json:"per_unit,omitempty"`
	GroupBy []string `json:"group_by,omitempty"`
	Filter  string   `json:"filter,omitempty"`
}

// RelationSource is one snapshot of a Relation, read as "alias"."column".
type RelationSource struct {
	Snapshot string `json:"snapshot"`
	Alias    string `json:"alias"`
	// Unit is the source's privacy unit column; "" for a public lookup table.
	Unit string `json:"unit,omitempty"`
	// Join is "" for the first source, else "inner" or "left". A source with a unit joins on
	// the unit (normalised as at registration); a lookup table joins on On.
	Join string `json:"join,omitempty"`
	On   string `json:"on,omitempty"`
}

// RelationColumn is one column of a Relation: its name and its SQL over the sources.
type RelationColumn struct {
	Name string `json:"name"`
	SQL  string `json:"sql"`
}

// normUnit is the privacy-unit normalisation of registration and of joins: "…x" and "…X " are
// one person in every dataset, so a join on it matches what bounding treats as one unit. col is
// a rendered column reference.
func normUnit(col string) string {
	return fmt.Sprintf("upper(trim(CAST(%s AS VARCHAR)))", col)
}

func qualified(alias, col string) string { return quoteIdent(alias) + "." + quoteIdent(col) }

// relationSQL renders the SELECT that computes a relation over the loaded snapshots: the
// normalised unit of the first source as normColumn, then the relation's columns.
func relationSQL(r *Relation, tables []string) (string, error) {
	if len(r.Sources) == 0 || len(r.Sources) != len(tables) || r.Sources[0].Unit == "" || r.Sources[0].Join != "" {
		return "", errcode.New(errcode.Internal, "the relation's first source must be a dataset with a privacy unit")
	}
	first := r.Sources[0]
	unit := normUnit(qualified(first.Alias, first.Unit))
	var from strings.Builder
	fmt.Fprintf(&from, "%s AS %s", tables[0], quoteIdent(first.Alias))
	for i, s := range r.Sources[1:] {
		kind := map[string]string{"inner": "JOIN", "left": "LEFT JOIN"}[s.Join]
		if kind == "" {
			return "", errcode.New(errcode.Internal, "the relation has a join of unknown kind")
		}
		on := s.On
		if s.Unit != "" {
			on = unit + " = " + normUnit(qualified(s.Alias, s.Unit))
		} else if on == "" {
			return "", errcode.New(errcode.Internal, "a lookup join has no condition")
		}
		fmt.Fprintf(&from, " %s %s AS %s ON %s", kind, tables[i+1], quoteIdent(s.Alias), on)
	}
	cols := []string{unit + " AS " + normColumn}
	seen := map[string]bool{}
	for _, c := range r.Columns {
		// DuckDB matches names case-insensitively: "__CR_NORM" would shadow the unit, and "x"
		// beside "X" would read one column twice.
		l := strings.ToLower(c.Name)
		if l == "" || strings.HasPrefix(l, "__cr") || l == "rowid" || seen[l] {
			return "", errcode.New(errcode.Internal, "the relation has a reserved, empty or repeated column name")
		}
		seen[l] = true
		cols = append(cols, "("+c.SQL+") AS "+quoteIdent(c.Name))
	}
	q := "SELECT " + strings.Join(cols, ", ") + " FROM " + from.String()
	if r.Filter != "" {
		// As in the scan: an evaluation error is "row not kept", never an error that depends on
		// one row's value.
		q += " WHERE coalesce(try(" + r.Filter + "), false)"
	}
	if r.PerUnit {
		q += " GROUP BY " + strings.Join(append([]string{unit}, r.GroupBy...), ", ")
	} else if r.Filter != "" {
		return "", errcode.New(errcode.Internal, "only a per-unit relation filters before bounding")
	}
	return q, nil
}

// materialize computes a relation into a table of its own, in unit order with ties broken by
// every column, and indexes its units like a snapshot. drop removes the table.
func (w *worker) materialize(ctx context.Context, r *Relation) (snap *Snapshot, drop func(), err error) {
	tables := make([]string, len(r.Sources))
	for i, s := range r.Sources {
		src, err := w.loaded(ctx, s.Snapshot)
		if err != nil {
			return nil, nil, err
		}
		tables[i] = src.table
	}
	inner, err := relationSQL(r, tables)
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
	snap = &Snapshot{table: table}
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
func (w *worker) loaded(ctx context.Context, digest string) (*Snapshot, error) {
	w.mu.Lock()
	snap := w.tables[digest]
	w.mu.Unlock()
	if snap != nil {
		return snap, nil
	}
	return w.load(ctx, digest)
}
