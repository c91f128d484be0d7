package gate

import (
	"context"
	"strings"

	"github.com/c1b99f93/cleanroom/catalog"
	"github.com/c1b99f93/cleanroom/errcode"
	"github.com/c1b99f93/cleanroom/sandbox/wire"
)

// Row-level SQL for model jobs. A model job's SQL selects, per row, the privacy unit and the
// model's columns: SELECT <unit>, <expr> [AS name], … FROM <dataset> [JOIN …] [WHERE …]. Its rows
// never leave the worker: the worker accumulates them, bounded per unit, into a model's pre-noise
// state (dp/model). The gate admits it with the DP SQL gate's own checks — datasets and
// columns from the catalog, joins on the privacy unit or with lookup tables, the closed list of
// scalar functions, no identifier read by a selected value — and builds the values as typed
// trees over the sources' columns (qualified by alias), which the worker validates and renders.

// Model usages of catalog columns (for policy and lineage).
const (
	// UseModelFeature is a column a model feature's value reads.
	UseModelFeature Usage = "model_feature"
	// UseModelLabel is a column a model label's value reads.
	UseModelLabel Usage = "model_label"
	// UseWasmInput is a column a custom model's (kind wasm) module reads.
	UseWasmInput Usage = "wasm_input"
)

// RowColumn is one selected value of a row-level query: its name (alias, or the column's
// name), its expression over the sources' columns, the catalog columns it reads, and its
// bounds when the SQL and the catalog give them.
type RowColumn struct {
	Name   string
	Expr   *wire.Expr
	From   []ColumnRef
	Bounds []float64 // [lo, hi], or nil
	// Numeric says the value is a number: a column with catalog bounds, a boolean column, a
	// condition, or an expression whose bounds follow from the SQL.
	Numeric bool
	// Column is the catalog column when the value is one, as written; nil for an expression.
	Column *ColumnRef
	// Position is the item's offset in the SQL text.
	Position int
}

// RowQuery is an admitted row-level query: its sources (the first has the privacy unit whose
// rows are bounded), an optional filter, and the selected values after the unit.
type RowQuery struct {
	Dataset *catalog.Spec
	Sources []Source
	Filter  *wire.Expr
	Columns []RowColumn
	Uses    []ColumnUse
}

// Datasets returns the distinct datasets the query reads, in FROM order.
func (q *RowQuery) Datasets() []*catalog.Spec {
	return (&Query{Sources: q.Sources}).Datasets()
}

// Relation is the worker's relation of the query: its sources joined as the SQL says, and at
// most maxRows rows of each privacy unit read from each source before the join.
func (q *RowQuery) Relation(snapshots map[string]string, maxRows int64) *wire.Relation {
	r := &wire.Relation{MaxRowsPerUnit: maxRows}
	for _, s := range q.Sources {
		src := wire.RelationSource{Snapshot: snapshots[s.Dataset.Name], Alias: s.Alias, Join: s.Join, On: s.On}
		if !s.Dataset.Public {
			src.Unit = s.Dataset.PrivacyUnit
		}
		r.Sources = append(r.Sources, src)
	}
	return r
}

// Column returns the selected value called name.
func (q *RowQuery) Column(name string) (RowColumn, bool) {
	for _, c := range q.Columns {
		if c.Name == name {
			return c, true
		}
	}
	return RowColumn{}, false
}

const rowsHint = "a model's SQL is SELECT <privacy unit>, <feature and label columns or expressions> FROM <dataset> [JOIN <dataset> ON <units> | JOIN <lookup table> ON …] [WHERE <condition>]"

// AdmitRows parses and checks a model job's row-level SQL against the catalog. usage says how
// each selected value (after the unit) is used, by its name; a value not named gets
// UseModelFeature.
func AdmitRows(ctx context.Context, p Parser, cat Catalog, sql string, usage func(name string) Usage) (*RowQuery, error) {
	stmtJSON, err := parseStatement(ctx, p, sql)
	if err != nil {
		return nil, err
	}
	if err := windowRefusal(stmtJSON, cat); err != nil {
		return nil, err
	}
	stmt := decodeNode(stmtJSON)
	if !stmt.Node.present() {
		return nil, errcode.New(errcode.UnsupportedSQL, "unrecognised statement; %s", rowsHint)
	}
	if err := only(stmt, "node"); err != nil {
		return nil, err
	}
	n := stmt.Node
	if n.Type != "SELECT_NODE" {
		return nil, errcode.At(errcode.UnsupportedSQL, pos(n), "set operations (UNION, INTERSECT, EXCEPT) are not admitted; %s", rowsHint)
	}
	if err := only(n, "type", "select_list", "from_table", "where_clause", "aggregate_handling"); err != nil {
		return nil, err
	}
	if n.AggregateHandling != "STANDARD_HANDLING" {
		return nil, errcode.At(errcode.UnsupportedSQL, pos(n), "GROUP BY ALL is not admitted; %s", rowsHint)
	}
	g := &gater{cat: cat, stmt: stmtJSON}
	if t := n.FromTable; t.Type == "SUBQUERY" {
		return nil, errcode.At(errcode.UnsupportedSQL, pos(t), "a model's SQL reads datasets, not a subquery; %s", rowsHint)
	}
	if err := g.sources(n.FromTable, true); err != nil {
		return nil, err
	}
	q := &RowQuery{Dataset: g.q.Dataset, Sources: g.q.Sources}
	if w := n.WhereClause; w.present() {
		if q.Filter, err = g.expr(w, UseFilter); err != nil {
			return nil, err
		}
	}
	sel := n.SelectList
	if len(sel) < 2 {
		return nil, errcode.At(errcode.UnsupportedSQL, pos(n), "select the privacy unit first, then the model's columns; %s", rowsHint)
	}
	if err := g.unitItem(sel[0]); err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, it := range sel[1:] {
		c, err := g.rowItem(it, usage)
		if err != nil {
			return nil, err
		}
		l := strings.ToLower(c.Name)
		if seen[l] {
			return nil, errcode.At(errcode.UnsupportedSQL, c.Position, "the name %q is selected twice; give each value its own name with AS", c.Name)
		}
		seen[l] = true
		q.Columns = append(q.Columns, c)
	}
	q.Uses = g.q.Uses
	return q, nil
}

// unitItem admits the first select item: the first dataset's privacy unit, as a column.
func (g *gater) unitItem(n *node) error {
	if n.Class == "COLUMN_REF" {
		c, err := g.resolve(n)
		if err != nil {
			return err
		}
		if c.unit && g.sourceOf(c) == 0 {
			return nil
		}
	}
	return errcode.At(errcode.UnsupportedSQL, pos(n), "the first select item must be the privacy unit %s of %s, by which each person's rows are bounded; %s", g.q.Dataset.PrivacyUnit, g.q.Dataset.Name, rowsHint)
}

// rowItem admits a selected value: a column or a scalar expression that reads no identifier.
func (g *gater) rowItem(n *node, usage func(string) Usage) (RowColumn, error) {
	name := n.Alias
	switch {
	case n.Class == "STAR":
		return RowColumn{}, errcode.At(errcode.IdentifierInOutput, pos(n), "SELECT * is not admitted; select the privacy unit and the model's columns by name")
	case isAggregate(n):
		return RowColumn{}, errcode.At(errcode.UnsupportedSQL, pos(n), "a model's SQL selects row values, not aggregates; %s", rowsHint)
	case name == "" && n.Class == "COLUMN_REF":
		name = n.ColumnNames[len(n.ColumnNames)-1]
	case name == "":
		return RowColumn{}, errcode.At(errcode.UnsupportedSQL, pos(n), "name this expression with AS, so the request's features and label can name it")
	}
	if reserved(name) {
		return RowColumn{}, errcode.At(errcode.UnsupportedSQL, pos(n), "the name %q is reserved", name)
	}
	u := UseModelFeature
	if usage != nil {
		u = usage(name)
	}
	g.touched = nil
	e, err := g.expr(n, u)
	if err != nil {
		return RowColumn{}, err
	}
	if err := g.noIdentifier(pos(n), "be a model's feature or label"); err != nil {
		return RowColumn{}, err
	}
	c := RowColumn{Name: name, Expr: e, Position: pos(n)}
	for _, t := range g.touched {
		for _, r := range t.from {
			if !containsRef(c.From, r) {
				c.From = append(c.From, r)
			}
		}
	}
	if n.Class == "COLUMN_REF" && len(c.From) == 1 {
		c.Column = &c.From[0]
	}
	switch {
	case isCondition(n) || g.booleanColumn(n):
		// A condition or a boolean column is 1 where it holds, 0 where not (NULL stays NULL).
		c.Expr = wire.Case(nil, e, wire.Num("1"), wire.Not(e), wire.Num("0"))
		c.Bounds, c.Numeric = []float64{0, 1}, true
	default:
		if lo, hi, ok := g.bounds(n); ok {
			if lo == hi {
				hi = lo + 1
			}
			c.Bounds, c.Numeric = []float64{lo, hi}, true
		}
	}
	return c, nil
}

func containsRef(rs []ColumnRef, r ColumnRef) bool {
	for _, x := range rs {
		if x == r {
			return true
		}
	}
	return false
}
