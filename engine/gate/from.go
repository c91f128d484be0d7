package gate

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/c1b99f93/cleanroom/catalog"
	"github.com/c1b99f93/cleanroom/errcode"
	"github.com/c1b99f93/cleanroom/sandbox/wire"
)

// entry is a column the query can name: a dataset column, or a column of a per-unit subquery.
type entry struct {
	quals []string // qualifiers that name it: the source alias (and the dataset name)
	name  string
	col   *wire.Expr     // the column as the query reads it; nil for a subquery's unit
	meta  catalog.Column // tags, bounds and domain (derived for per-unit aggregates)
	from  []ColumnRef    // the catalog columns it derives from
	// unit marks the bounded privacy unit, or a column equal to it on every row (the unit of
	// an inner-joined dataset).
	unit bool
	// perUnit says how a per-unit aggregate was computed ("SUM(cost)"), for messages.
	perUnit string
	// proj is the relation column a join query must materialize to read this column.
	proj *RelationColumn
	// expr marks an aggregate's argument that is an expression, not a column (valueArg).
	expr bool
	// outer marks the sides ([lower, upper]) of a per-unit value's bounds that no clamp in the
	// query wrote: the worst case the catalog and PerUnitMaxRows allow, which a job choosing
	// its bounds under DP tightens (Aggregate.Outer).
	outer [2]bool
}

// PerUnitMaxRows is how many rows of each privacy unit a per-unit subquery reads from each
// dataset with a privacy unit (chosen by a keyed hash of each row's place among its unit's
// rows, so the choice depends on that unit alone). It bounds the work a unit can cause and,
// with the catalog's bounds, the values of a per-unit aggregate: a COUNT is at most
// PerUnitMaxRows^k over k such datasets joined, a SUM of a column in [lo, hi] lies in
// [min(0, R·lo), max(0, R·hi)] for R that many rows. The plan enforces it
// (plan.PerUnitJoinRows).
const PerUnitMaxRows = 1000

// reserved reports names the worker's materialized relations use themselves: its __cr…
// columns and DuckDB's rowid, in any case (SQL names are case-insensitive).
func reserved(name string) bool {
	l := strings.ToLower(name)
	return strings.HasPrefix(l, "__cr") || l == "rowid"
}

// joinKinds maps DuckDB's join types to the admitted ones.
var joinKinds = map[string]string{"INNER": "inner", "LEFT": "left"}

// sources admits a FROM clause of datasets — one, or several joined — and fills g.q.Sources
// and g.cols. qualified renders columns as "alias"."column" (inside a per-unit subquery, which
// the worker evaluates over the aliased sources); otherwise a single dataset's columns render
// bare and a join's as the relation columns the worker materializes.
func (g *gater) sources(t *node, qualified bool) error {
	if err := g.fromItem(t); err != nil {
		return err
	}
	srcs := g.q.Sources
	if srcs[0].Dataset.Public {
		return errcode.At(errcode.UnsupportedSQL, pos(t), "%s is a public lookup table; put the dataset with a privacy unit first and join the lookup table to it", srcs[0].Dataset.Name)
	}
	join := len(srcs) > 1
	g.cols = nil
	for i, s := range srcs {
		quals := []string{s.Alias}
		if s.Alias != s.Dataset.Name && !join {
			quals = append(quals, s.Dataset.Name)
		}
		for _, name := range s.Dataset.ColumnNames() {
			c := s.Dataset.Columns[name]
			e := &entry{quals: quals, name: name, meta: c, from: []ColumnRef{{Dataset: s.Dataset.Name, Column: name}},
				unit: name == s.Dataset.PrivacyUnit && (i == 0 || s.Join == "inner")}
			switch {
			case qualified:
				e.col = wire.Col(s.Alias, name)
			case join:
				rel := s.Alias + "." + name
				e.col = wire.Col("", rel)
				e.proj = &RelationColumn{Name: rel, Expr: wire.Col(s.Alias, name)}
			default:
				e.col = wire.Col("", name)
			}
			g.cols = append(g.cols, e)
		}
	}
	// Join conditions are admitted once every source's columns can be named.
	for i := 1; i < len(srcs); i++ {
		if err := g.joinCondition(i); err != nil {
			return err
		}
	}
	if join && !qualified {
		g.q.Relation = &Relation{}
	}
	return nil
}

// fromItem collects the sources of a FROM item in order: a dataset, or a left-deep join.
func (g *gater) fromItem(t *node) error {
	if !t.present() {
		return errcode.New(errcode.UnsupportedSQL, "a FROM clause naming a dataset is required")
	}
	switch t.Type {
	case "BASE_TABLE":
		if err := only(t, "type", "alias", "query_location", "table_name"); err != nil {
			return err
		}
		name := t.TableName
		if _, isCTE := g.ctes[name]; isCTE {
			return errcode.At(errcode.UnsupportedSQL, pos(t), "a per-unit subquery cannot be joined; do the join inside it")
		}
		spec, ok := g.cat.Lookup(name)
		if !ok {
			return errcode.At(errcode.UnknownDataset, pos(t), "no dataset named %q is registered%s", name, didYouMean(name, g.datasetNames()))
		}
		alias := or(t.Alias, name)
		for _, s := range g.q.Sources {
			if strings.EqualFold(s.Alias, alias) { // SQL names are case-insensitive
				return errcode.At(errcode.UnsupportedSQL, pos(t), "the name %q is used for two sources; give each its own alias", alias)
			}
		}
		if reserved(alias) {
			return errcode.At(errcode.UnsupportedSQL, pos(t), "the name %q is reserved", alias)
		}
		g.q.Sources = append(g.q.Sources, Source{Alias: alias, Dataset: spec})
		if len(g.q.Sources) == 1 {
			g.q.Dataset = spec
		}
		return nil
	case "JOIN":
		if err := only(t, "type", "alias", "query_location", "left", "right", "condition", "join_type", "ref_type", "using_columns"); err != nil {
			return err
		}
		kind, ok := joinKinds[t.JoinType]
		if !ok || t.RefType != "REGULAR" {
			return errcode.At(errcode.UnsupportedSQL, pos(t), "only INNER JOIN and LEFT JOIN are admitted (no RIGHT, FULL, CROSS, SEMI, ANTI, ASOF or NATURAL joins)")
		}
		if err := g.fromItem(t.Left); err != nil {
			return err
		}
		right := t.Right
		if right.Type != "BASE_TABLE" {
			return errcode.At(errcode.UnsupportedSQL, pos(t), "the right side of a join must be a dataset; joins nest to the left (a JOIN b JOIN c)")
		}
		if err := g.fromItem(right); err != nil {
			return err
		}
		i := len(g.q.Sources) - 1
		g.q.Sources[i].Join = kind
		g.joins = append(g.joins, joinSpec{source: i, node: t})
		return nil
	case "TABLE_FUNCTION":
		return errcode.At(errcode.UnsupportedSQL, pos(t), "table functions (file readers such as read_csv, query(), getenv and the like) are not admitted; name a registered dataset")
	case "SUBQUERY":
		return errcode.At(errcode.UnsupportedSQL, pos(t), "a subquery is admitted only as the whole FROM clause of the outer query (a per-unit subquery)")
	case "EMPTY":
		return errcode.New(errcode.UnsupportedSQL, "a FROM clause naming a dataset is required")
	}
	return errcode.At(errcode.UnsupportedSQL, pos(t), "this FROM clause is not admitted; name registered datasets, joined on their privacy unit")
}

// joinSpec remembers a join's AST until its condition is admitted.
type joinSpec struct {
	source int // index of the joined (right) source
	node   *node
}

// joinCondition admits the condition of the join that brings in source i. Two datasets with
// privacy units join on them (so each joined row belongs to one unit, and bounding after the
// join caps what that unit contributes however many rows the join made); a public lookup table
// joins on equality of one of its columns with a column of the datasets joined before it.
func (g *gater) joinCondition(i int) error {
	var js joinSpec
	for _, j := range g.joins {
		if j.source == i {
			js = j
		}
	}
	t := js.node
	right := g.q.Sources[i]
	var leftCol, rightCol *entry
	if using := t.UsingColumns; len(using) > 0 {
		name := using[0]
		if len(using) != 1 {
			return errcode.At(errcode.UnsupportedSQL, pos(t), "a join condition equates one pair of columns")
		}
		for _, e := range g.cols {
			if e.name == name && slices.Contains(e.quals, right.Alias) {
				rightCol = e
			}
		}
		for k := i - 1; k >= 0 && leftCol == nil; k-- {
			for _, e := range g.cols {
				if e.name == name && slices.Contains(e.quals, g.q.Sources[k].Alias) {
					leftCol = e
				}
			}
		}
		if leftCol == nil || rightCol == nil {
			return errcode.At(errcode.UnknownColumn, pos(t), "USING (%s) names a column missing on one side of the join", name)
		}
	} else {
		c := t.Condition
		if c.Class != "COMPARISON" || c.Type != "COMPARE_EQUAL" ||
			c.Left.Class != "COLUMN_REF" || c.Right.Class != "COLUMN_REF" {
			return errcode.At(errcode.UnsupportedSQL, pos(t), "a join condition must equate two columns, e.g. ON v.person_id = r.person_id (filters go in WHERE)")
		}
		if err := only(c, with("left", "right")...); err != nil {
			return err
		}
		a, err := g.resolve(c.Left)
		if err != nil {
			return err
		}
		b, err := g.resolve(c.Right)
		if err != nil {
			return err
		}
		if g.sourceOf(b) != i {
			a, b = b, a
		}
		if g.sourceOf(b) != i || g.sourceOf(a) >= i {
			return errcode.At(errcode.UnsupportedSQL, pos(c), "the condition of a join must equate a column of the joined dataset %q with a column of a dataset before it", right.Alias)
		}
		leftCol, rightCol = a, b
	}
	left := g.q.Sources[g.sourceOf(leftCol)]
	switch {
	case !right.Dataset.Public && !left.Dataset.Public:
		if leftCol.name != left.Dataset.PrivacyUnit || rightCol.name != right.Dataset.PrivacyUnit {
			return errcode.At(errcode.UnsupportedSQL, pos(t), "datasets join only on their privacy units: ON %s.%s = %s.%s",
				left.Alias, left.Dataset.PrivacyUnit, right.Alias, right.Dataset.PrivacyUnit)
		}
		if g.sourceOf(leftCol) != 0 && !leftCol.unit {
			return errcode.At(errcode.UnsupportedSQL, pos(t), "join %q on the privacy unit of the first dataset or of an inner-joined one", right.Alias)
		}
		g.use(leftCol, UseJoinUnit)
		g.use(rightCol, UseJoinUnit)
	case right.Dataset.Public && !left.Dataset.Public:
		if leftCol.meta.Has(catalog.TagIdentifier) {
			return errcode.At(errcode.IdentifierInOutput, pos(t), "%s is an identifier and cannot be matched against a lookup table", leftCol.name)
		}
		g.use(leftCol, UseJoinKey)
		g.use(rightCol, UseJoinKey)
		// Compared as text: a code column read from CSV is a number on one side and text on the
		// other, and "530102" should match 530102.
		g.q.Sources[i].On = wire.Compare("=", wire.Cast(wire.Col(left.Alias, leftCol.name), "VARCHAR"), wire.Cast(wire.Col(right.Alias, rightCol.name), "VARCHAR"))
	default:
		return errcode.At(errcode.UnsupportedSQL, pos(t), "a dataset with a privacy unit cannot be joined to a lookup table's rows; put the dataset first")
	}
	return nil
}

// sourceOf returns the index of the source a column comes from.
func (g *gater) sourceOf(e *entry) int {
	for i, s := range g.q.Sources {
		if slices.Contains(e.quals, s.Alias) {
			return i
		}
	}
	return -1
}

// resolve finds the column a COLUMN_REF names: qualified by a source alias, or unqualified
// and unambiguous.
func (g *gater) resolve(n *node) (*entry, error) {
	if err := only(n, with("column_names")...); err != nil {
		return nil, err
	}
	parts := n.ColumnNames
	var qual, name string
	switch len(parts) {
	case 1:
		name = parts[0]
	case 2:
		qual = parts[0]
		name = parts[1]
	default:
		return nil, errcode.At(errcode.UnsupportedSQL, pos(n), "qualified names beyond source.column are not admitted")
	}
	var found *entry
	known := false
	var names []string // the names in scope, for a suggestion
	for _, e := range g.cols {
		if qual != "" && !slices.Contains(e.quals, qual) {
			continue
		}
		known = true
		names = append(names, e.name)
		if e.name != name {
			continue
		}
		if found != nil {
			return nil, errcode.At(errcode.UnknownColumn, pos(n), "column %q is ambiguous; qualify it with its source's alias", name)
		}
		found = e
	}
	if found == nil {
		if qual != "" && !known {
			var quals []string
			for _, e := range g.cols {
				quals = append(quals, e.quals...)
			}
			return nil, errcode.At(errcode.UnknownColumn, pos(n), "%q names no source of this query%s", qual, didYouMean(qual, quals))
		}
		return nil, errcode.At(errcode.UnknownColumn, pos(n), "%s has no column %q%s", g.scopeName(), name, didYouMean(name, names))
	}
	// Join conditions are resolved before the relation exists: the worker renders them.
	if found.proj != nil && g.q.Relation != nil && !slices.ContainsFunc(g.q.Relation.Columns, func(c RelationColumn) bool { return c.Name == found.proj.Name }) {
		g.q.Relation.Columns = append(g.q.Relation.Columns, *found.proj)
	}
	g.touched = append(g.touched, found)
	return found, nil
}

func (g *gater) scopeName() string {
	var names []string
	for _, s := range g.q.Sources {
		names = append(names, fmt.Sprintf("%q", s.Dataset.Name))
	}
	if g.inner != "" {
		return fmt.Sprintf("subquery %q", g.inner)
	}
	return "dataset " + strings.Join(names, " or ")
}

// use records how the query uses the catalog columns an entry derives from.
func (g *gater) use(e *entry, u Usage) {
	for _, r := range e.from {
		g.q.Uses = append(g.q.Uses, ColumnUse{Dataset: r.Dataset, Column: r.Column, Usage: u})
	}
}

// unitName is the privacy unit as the query can name it, for messages.
func (g *gater) unitName() string {
	for _, e := range g.cols {
		if e.unit {
			return e.name
		}
	}
	return g.q.Dataset.PrivacyUnit
}

// perUnitAggregates are the exact aggregates a per-unit subquery may compute over one unit's
// rows; they never leave the worker, only the outer DP aggregates over them do.
var perUnitAggregates = map[string]bool{"count_star": true, "count": true, "sum": true, "avg": true, "mean": true, "min": true, "max": true}

// subquery admits a per-unit subquery — the FROM clause of the outer query, directly or
// through WITH (named is then its WITH name). It reads datasets (joined as above), groups by the privacy unit and perhaps
// more keys, and selects keys and exact per-unit aggregates; those become the columns the
// outer DP query reads, one row per unit and inner group.
func (g *gater) subquery(n *node, alias, named string, at int) error {
	if at < 0 && len(n.SelectList) > 0 { // DuckDB gives an inline subquery no location
		at = pos(n.SelectList[0])
	}
	if g.releasesRows(n) {
		return g.releasedSubquery(n, alias, at)
	}
	if n.Type != "SELECT_NODE" {
		return errcode.At(errcode.UnsupportedSQL, at, "a subquery must be one SELECT (no UNION, INTERSECT or EXCEPT)")
	}
	if at < 0 && len(n.SelectList) > 0 { // DuckDB gives an inline subquery no location
		at = pos(n.SelectList[0])
	}
	if err := only(n, "type", "select_list", "from_table", "where_clause", "group_expressions", "group_sets", "aggregate_handling"); err != nil {
		return err
	}
	if n.AggregateHandling != "STANDARD_HANDLING" {
		return errcode.At(errcode.UnsupportedSQL, at, "GROUP BY ALL and SELECT DISTINCT are not admitted; name the group keys")
	}
	if err := g.sources(n.FromTable, true); err != nil {
		return err
	}
	g.inner = alias
	rel := &Relation{PerUnit: true}
	g.q.Relation = rel
	if w := n.WhereClause; w.present() {
		f, err := g.expr(w, UseFilter)
		if err != nil {
			return err
		}
		rel.Filter = f
	}
	sel := n.SelectList
	items := make([]item, len(sel))
	for i, e := range sel {
		if !e.present() {
			return errcode.New(errcode.UnsupportedSQL, "malformed select list")
		}
		items[i] = item{node: e, alias: e.Alias, agg: containsAggregate(e)}
	}
	groups := n.GroupExpressions
	if sets := n.GroupSets; len(groups) > 0 && (len(sets) != 1 || len(asList(sets[0])) != len(groups)) {
		return errcode.At(errcode.UnsupportedSQL, at, "GROUPING SETS, ROLLUP and CUBE are not admitted")
	}
	unitGrouped := false
	for _, e := range groups {
		target := groupTarget(e, items, g.hasColumn)
		if target == nil {
			return errcode.At(errcode.UnsupportedSQL, pos(e), "malformed GROUP BY")
		}
		if target.Class == "COLUMN_REF" {
			c, err := g.resolve(target)
			if err != nil {
				return err
			}
			if c.unit {
				unitGrouped = true
				continue
			}
		}
		g.touched = nil
		sql, err := g.expr(target, UseGroupKey)
		if err != nil {
			return err
		}
		if err := g.noIdentifier(pos(e), "be a group key of a subquery (it groups by the privacy unit already)"); err != nil {
			return err
		}
		rel.GroupBy = append(rel.GroupBy, sql)
	}
	if !unitGrouped {
		return g.notPerUnit(items, len(groups) > 0, named, at)
	}
	var outer []*entry
	for _, it := range items {
		e, err := g.innerItem(it, rel)
		if err != nil {
			return err
		}
		for _, o := range outer {
			if strings.EqualFold(o.name, e.name) { // SQL names are case-insensitive
				return errcode.At(errcode.UnsupportedSQL, pos(it.node), "the subquery has two columns named %q; give them distinct aliases", e.name)
			}
		}
		if reserved(e.name) {
			return errcode.At(errcode.UnsupportedSQL, pos(it.node), "the name %q is reserved", e.name)
		}
		e.quals = []string{alias}
		outer = append(outer, e)
	}
	g.cols, g.inner = outer, ""
	return nil
}

// notPerUnit refuses a subquery that does not group by the privacy unit, with the rewrite
// that fits what it does: one that only selects rows (a view, in effect) is the dataset
// itself with a WHERE; one grouped by other keys must add the unit.
func (g *gater) notPerUnit(items []item, grouped bool, named string, at int) error {
	what := "a subquery in FROM"
	if named != "" {
		what = fmt.Sprintf("the WITH query %q", named)
	}
	aggregated := slices.ContainsFunc(items, func(it item) bool { return it.agg })
	if !grouped && !aggregated {
		return errcode.At(errcode.UnsupportedSQL, at, "%s selects rows without grouping them, and a subquery is admitted only to compute per-unit values (GROUP BY %s); to filter or rename rows, query %s directly and put the conditions in the outer WHERE",
			what, g.unitName(), g.q.Sources[0].Dataset.Name)
	}
	return errcode.At(errcode.UnsupportedSQL, at, "%s must group by the privacy unit (GROUP BY %s, ...): it computes per-unit values for the outer DP aggregates", what, g.unitName())
}

// innerItem admits one select item of a per-unit subquery and returns the column the outer
// query sees.
func (g *gater) innerItem(it item, rel *Relation) (*entry, error) {
	n := it.node
	if n.Class == "STAR" {
		return nil, errcode.At(errcode.IdentifierInOutput, pos(n), "SELECT * is not admitted in a subquery; select the unit, group keys and per-unit aggregates")
	}
	if n.Class == "COLUMN_REF" {
		c, err := g.resolve(n)
		if err != nil {
			return nil, err
		}
		if c.unit {
			// The outer query may count units by it; its values never leave the worker.
			return &entry{name: or(it.alias, c.name), meta: c.meta, from: c.from, unit: true}, nil
		}
	}
	if it.agg {
		e, err := g.perUnitValue(n)
		if err != nil {
			return nil, err
		}
		name := it.alias
		if name == "" {
			return nil, errcode.At(errcode.UnsupportedSQL, pos(n), "name the per-unit aggregate, e.g. %s AS total", e.perUnit)
		}
		e.name = name
		e.col = wire.Col("", name)
		rel.Columns = append(rel.Columns, RelationColumn{Name: name, Expr: e.arg, Aggregate: e.agg, Clamps: e.clamps})
		return &e.entry, nil
	}
	g.touched = nil
	sql, err := g.expr(n, UseGroupKey)
	if err != nil {
		return nil, err
	}
	if err := g.noIdentifier(pos(n), "be selected"); err != nil {
		return nil, err
	}
	if !slices.ContainsFunc(rel.GroupBy, sql.Equal) {
		return nil, errcode.At(errcode.RawColumnInOutput, pos(n), "a subquery's select item is the privacy unit, a GROUP BY key or a per-unit aggregate")
	}
	e := &entry{name: it.alias}
	for _, t := range g.touched {
		e.from = append(e.from, t.from...)
	}
	if n.Class == "COLUMN_REF" {
		c := g.touched[0]
		e.name, e.meta = or(it.alias, c.name), c.meta
	} else {
		e.meta = catalog.Column{Tags: []catalog.Tag{catalog.TagAttribute}, Domain: staticDomain(n)}
		if e.name == "" {
			return nil, errcode.At(errcode.UnsupportedSQL, pos(n), "name the derived key of the subquery with AS")
		}
	}
	e.col = wire.Col("", e.name)
	rel.Columns = append(rel.Columns, RelationColumn{Name: e.name, Expr: sql})
	return e, nil
}

// noIdentifier refuses when an expression just rendered read an identifier.
func (g *gater) noIdentifier(at int, what string) error {
	for _, t := range g.touched {
		if t.meta.Has(catalog.TagIdentifier) {
			return errcode.At(errcode.IdentifierInOutput, at, "%s is an identifier and cannot %s, even through a function; count units with COUNT(DISTINCT %s)", t.name, what, g.unitName())
		}
	}
	return nil
}

// perUnitEntry is a per-unit aggregate: its outer column and, inside the subquery, the
// aggregate, its argument and its clamps, which the worker renders (total in every row).
type perUnitEntry struct {
	entry
	agg      string     // count_star, count, sum, avg, min or max
	arg      *wire.Expr // the argument (nil for count_star)
	clamps   []Clamp    // applied to the aggregate in order
	lo, hi   *float64   // derived bounds while they are built
	integral bool       // a count, clamped only by whole numbers: its values are integers
}

// perUnitValue admits a per-unit aggregate, optionally clamped with LEAST/GREATEST and
// constants, and derives its bounds: an average, minimum or maximum stays within the column's
// catalog bounds; a count lies in [0, R] and a sum of a column in [lo, hi] in
// [min(0, R·lo), max(0, R·hi)], for R the rows a unit can have (perUnitRows); a clamp caps
// either side and wins over what is derived. A sum of a column without catalog bounds has no
// bounds, so the outer query cannot aggregate its values (only count or group by them).
func (g *gater) perUnitValue(n *node) (*perUnitEntry, error) {
	if n.Class != "FUNCTION" {
		return nil, errcode.At(errcode.UnsupportedSQL, pos(n), "a per-unit value is COUNT, SUM, AVG, MIN or MAX of a column, optionally clamped with LEAST/GREATEST and constants")
	}
	if err := only(n, with("function_name", "children", "order_bys", "distinct", "is_operator", "schema")...); err != nil {
		return nil, err
	}
	fn := strings.ToLower(n.FunctionName)
	args := n.Children
	if n.Distinct || len(n.OrderBys.Orders) > 0 {
		return nil, errcode.At(errcode.UnsupportedSQL, pos(n), "DISTINCT and ordered aggregates are not admitted in a subquery")
	}
	if fn == "least" || fn == "greatest" {
		if len(args) != 2 {
			return nil, errcode.At(errcode.UnsupportedSQL, pos(n), "clamp with LEAST(value, constant) or GREATEST(value, constant)")
		}
		a := args[0]
		b := args[1]
		if a.Class == "CONSTANT" {
			a, b = b, a
		}
		v, err := numberConstant(b)
		if err != nil {
			return nil, errcode.At(errcode.UnsupportedSQL, pos(n), "clamp with LEAST(value, constant) or GREATEST(value, constant)")
		}
		inner, err := g.perUnitValue(a)
		if err != nil {
			return nil, err
		}
		c, _ := constant(b)
		lit := c.Value
		inner.integral = inner.integral && v == math.Trunc(v)
		if fn == "least" {
			inner.hi = ptr(min(v, deref(inner.hi, v)))
			inner.outer[1] = false // the query's clamp wins
		} else {
			inner.lo = ptr(max(v, deref(inner.lo, v)))
			inner.outer[0] = false
		}
		inner.clamps = append(inner.clamps, Clamp{Func: fn, Value: lit})
		inner.perUnit = fmt.Sprintf("%s(%s, %s)", strings.ToUpper(fn), inner.perUnit, lit)
		inner.setBounds()
		return inner, nil
	}
	if !perUnitAggregates[fn] {
		return nil, errcode.At(errcode.UnsupportedSQL, pos(n), "function %q is not admitted in a subquery; per-unit values are COUNT, SUM, AVG, MIN and MAX, clamped with LEAST/GREATEST", fn)
	}
	e := &perUnitEntry{}
	e.meta.Tags = []catalog.Tag{catalog.TagSensitive}
	rows := g.perUnitRows()
	if fn == "count_star" {
		e.lo, e.hi, e.agg, e.perUnit, e.integral = ptr(0), ptr(rows), "count_star", "COUNT(*)", true
		e.outer = [2]bool{false, true}
		e.setBounds()
		return e, nil
	}
	if len(args) != 1 || args[0].Class != "COLUMN_REF" {
		return nil, errcode.At(errcode.UnsupportedSQL, pos(n), "%s in a subquery takes one column", strings.ToUpper(fn))
	}
	c, err := g.resolve(args[0])
	if err != nil {
		return nil, err
	}
	e.from = c.from
	e.perUnit = fmt.Sprintf("%s(%s)", strings.ToUpper(fn), c.name)
	if fn == "count" {
		usage := UseAggregate
		if c.meta.Has(catalog.TagIdentifier) {
			usage = UseCountRows
		}
		g.use(c, usage)
		e.lo, e.hi, e.agg, e.arg, e.integral = ptr(0), ptr(rows), "count", c.col, true
		e.outer = [2]bool{false, true}
		e.setBounds()
		return e, nil
	}
	if c.meta.Has(catalog.TagIdentifier) {
		return nil, errcode.At(errcode.IdentifierInOutput, pos(n), "%s is an identifier and cannot be aggregated; count units with COUNT(DISTINCT %s) in the outer query", c.name, g.unitName())
	}
	g.use(c, UseAggregate)
	e.agg, e.arg = fn, c.col
	if fn == "mean" {
		e.agg = "avg"
	}
	if c.meta.HasBounds() {
		lo, hi := c.meta.Lower(), c.meta.Upper()
		switch fn {
		case "sum":
			// A sum of at most rows values keeps the sign of the bounds.
			e.lo, e.hi = ptr(min(0, rows*lo)), ptr(max(0, rows*hi))
			e.outer = [2]bool{lo < 0, hi > 0}
		default:
			e.lo, e.hi = &lo, &hi
			e.outer = [2]bool{true, true}
		}
	}
	e.setBounds()
	return e, nil
}

// setBounds turns the derived bounds into clamping bounds once both sides are known. A count
// clamped on both sides by the query also gets a public domain, its whole numbers, so a
// histogram of per-unit counts releases every bin without partition selection (a count
// bounded only by the row cap does not: its thousand bins would be mostly empty).
func (e *perUnitEntry) setBounds() {
	e.meta.Bounds, e.meta.Domain = nil, nil
	if e.lo == nil || e.hi == nil || !(*e.lo < *e.hi) {
		return
	}
	e.meta.Bounds = []float64{*e.lo, *e.hi}
	if e.integral && !e.outer[0] && !e.outer[1] && *e.hi-*e.lo <= maxBuckets {
		for v := math.Ceil(*e.lo); v <= *e.hi; v++ {
			e.meta.Domain = append(e.meta.Domain, strconv.FormatFloat(v, 'f', -1, 64))
		}
	}
}

func ptr(v float64) *float64 { return &v }

// perUnitRows bounds the rows one unit has in a per-unit subquery: PerUnitMaxRows from each
// dataset with a privacy unit it joins (a public lookup table joins at most its matches; the
// outer aggregate's clamp bounds each value whatever the rows).
func (g *gater) perUnitRows() float64 {
	r := 1.0
	for _, s := range g.q.Sources {
		if !s.Dataset.Public {
			r *= PerUnitMaxRows
		}
	}
	return r
}

func deref(p *float64, def float64) float64 {
	if p == nil {
		return def
	}
	return *p
}

// groupTarget resolves a GROUP BY term to the expression it names: a select-list position, a
// select alias (when no column has that name), or the term itself.
func groupTarget(e *node, items []item, colExists func(string) bool) *node {
	if !e.present() {
		return nil
	}
	switch e.Class {
	case "CONSTANT":
		v, err := nonNegativeInt(e, "GROUP BY position")
		if err != nil || v < 1 || v > int64(len(items)) || items[v-1].agg {
			return e // refused by the caller's expression check with its position
		}
		return items[v-1].node
	case "COLUMN_REF":
		parts := e.ColumnNames
		if len(parts) == 1 {
			name := parts[0]
			if !colExists(name) {
				for _, it := range items {
					if it.alias == name && !it.agg {
						return it.node
					}
				}
			}
		}
	}
	return e
}

// containsAggregate reports whether a select item computes an aggregate, perhaps inside a
// clamp (LEAST/GREATEST) in a per-unit subquery.
func containsAggregate(e *node) bool {
	if isAggregate(e) {
		return true
	}
	if e.Class == "FUNCTION" {
		if fn := strings.ToLower(e.FunctionName); fn == "least" || fn == "greatest" {
			for _, c := range e.Children {
				if containsAggregate(c) {
					return true
				}
			}
		}
	}
	return false
}

// numberConstant reads a numeric constant.
func numberConstant(n *node) (float64, error) {
	if n.Class == "CONSTANT" {
		if v, err := numberOf(n); err == nil {
			return v, nil
		}
	}
	return 0, errcode.At(errcode.UnsupportedSQL, pos(n), "a numeric constant is expected here")
}
