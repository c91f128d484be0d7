// Package gate admits applicant SQL into the supported DP aggregate subset, or refuses it with
// a stable code, a message that says what is allowed, and the SQL position.
//
// The SQL is parsed by DuckDB itself (json_serialize_sql) in a data-free parser; the gate decodes
// the AST into typed nodes (ast.go) and walks them against an allowlist — every node kind and
// every non-empty field it does not know is a refusal, so a new DuckDB feature cannot slip
// through — and builds the admitted expressions as typed trees (wire.Expr), which the worker
// validates and renders itself. No SQL text, the applicant's or the gate's, reaches the worker.
package gate

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/c1b99f93/cleanroom/catalog"
	"github.com/c1b99f93/cleanroom/dp"
	"github.com/c1b99f93/cleanroom/engine/post"
	"github.com/c1b99f93/cleanroom/errcode"
	"github.com/c1b99f93/cleanroom/sandbox/wire"
)

// Parser serializes SQL to DuckDB's JSON AST (sandbox.Parser in production).
type Parser interface {
	Serialize(ctx context.Context, sql string) ([]byte, error)
}

// Catalog looks up registered datasets by name.
type Catalog interface {
	Lookup(name string) (*catalog.Spec, bool)
}

// Usage says how a query uses a catalog column (for policy and lineage).
type Usage string

// Column usages.
const (
	UseGroupKey      Usage = "group_key"
	UseFilter        Usage = "filter"
	UseAggregate     Usage = "aggregate"
	UseDistinctUnits Usage = "count_distinct_unit"
	UseCountRows     Usage = "count_rows"
	// UseFilterEquality is an identifier compared by = or IN with constants in WHERE; any
	// other use of an identifier in a filter is UseFilter.
	UseFilterEquality Usage = "filter_equality"
	// UseJoinUnit is a privacy unit equated with another dataset's privacy unit in a join.
	UseJoinUnit Usage = "join_unit"
	// UseJoinKey is a column matched with a public lookup table's column in a join.
	UseJoinKey Usage = "join_key"
)

// ColumnRef names a catalog column.
type ColumnRef struct {
	Dataset string `json:"dataset"`
	Column  string `json:"column"`
}

// ColumnUse records one use of a catalog column.
type ColumnUse struct {
	Dataset string
	Column  string
	Usage   Usage
}

// Key is a group key: a column or a derived bin of non-identifier columns.
type Key struct {
	Name    string      // output column name
	Columns []ColumnRef // the catalog columns the key derives from
	Expr    *wire.Expr
	// Domain holds the key's public values when they are known without reading data: a
	// column's catalog domain, the literal results of a CASE with an ELSE, the buckets of a
	// width_bucket, the periods of a date_trunc over a column with a catalog date_range. Nil
	// means the key's values come from the data (DP partition selection).
	Domain []string
	// Written reports that the query may write the key's values itself: a literal reaches
	// them through a value position, or a value computed with one (see names.go). Such
	// values are the applicant's choice, not the data's.
	Written bool
}

// Aggregate is one admitted aggregate. Quantiles of one column (MEDIAN, QUANTILE_CONT,
// PERCENTILE_CONT, MIN, MAX) share one aggregate with several ranks.
type Aggregate struct {
	Name   string // output column name (of the first output, for quantiles)
	Kind   dp.Kind
	Column string      // the aggregated column as the query names it, or "" (COUNT(*))
	From   []ColumnRef // the catalog columns the aggregated value derives from
	Value  *wire.Expr  // the value expression, when the aggregate reads values
	Bounds []float64   // clamping bounds [lower, upper], for kinds that read values
	Ranks  []float64
	// Outer marks, for a value of a per-unit subquery, the sides of Bounds ([lower, upper])
	// that no clamp in the query wrote: the worst case the catalog and PerUnitMaxRows allow.
	// A job that chooses its bounds under DP tightens those sides (plan.AutoClamp); a side the
	// query clamped is used as written.
	Outer [2]bool
}

// Output is one column of the result, in SELECT order.
type Output struct {
	Name      string
	Key       int // index into Keys, or -1
	Aggregate int // index into Aggregates, or -1
	Rank      int // index into the aggregate's Ranks (quantiles), else 0
}

// Order is one ORDER BY term over the released rows.
type Order struct {
	Output     int // index into the released columns (FinalColumns)
	Descending bool
}

// Source is one dataset a query reads, in FROM order.
type Source struct {
	Alias   string // the name the query qualifies its columns with
	Dataset *catalog.Spec
	Join    string // "" for the first source, else "inner" or "left"
	// On is a lookup-table join's condition over the sources' columns; nil when two datasets
	// join on their privacy units, a condition the worker renders itself.
	On *wire.Expr
}

// Relation is what the worker materializes, clustered by privacy unit, before bounding, when
// a query reads a join or a per-unit subquery. Its expressions read the sources' columns
// qualified by their aliases.
type Relation struct {
	// Columns are the relation's columns, which keys, values and the filter of the query read.
	Columns []RelationColumn
	// PerUnit groups the rows by the privacy unit and GroupBy (a per-unit subquery): Columns
	// are then its group keys and exact per-unit aggregates, and Filter its WHERE.
	PerUnit bool
	GroupBy []*wire.Expr
	Filter  *wire.Expr
}

// RelationColumn is one column of a Relation: its name and its expression over the sources. A
// per-unit aggregate column names its Aggregate (count_star, count, sum, avg, min, max), has
// its argument as Expr and its LEAST/GREATEST clamps in order; the worker renders it.
type RelationColumn struct {
	Name      string     `json:"name"`
	Expr      *wire.Expr `json:"expr,omitempty"`
	Aggregate string     `json:"aggregate,omitempty"`
	Clamps    []Clamp    `json:"clamps,omitempty"`
}

// Clamp is LEAST(value, Value) or GREATEST(value, Value) with a numeric constant's text.
type Clamp struct {
	Func  string `json:"func"`
	Value string `json:"value"`
}

// Query is an admitted query: its sources, group keys, a filter, DP aggregates and the
// post-processing of the released rows (ORDER BY, LIMIT, OFFSET).
type Query struct {
	// Dataset is the first source: the contributions of its privacy units are bounded.
	Dataset *catalog.Spec
	Sources []Source
	// Relation is nil for a query on one dataset, which the worker scans directly.
	Relation   *Relation
	Keys       []Key
	Aggregates []Aggregate
	Outputs    []Output
	Filter     *wire.Expr // a condition over the scanned columns, or nil
	Uses       []ColumnUse
	// Post, when not nil, computes the released columns from the released rows of Outputs
	// (HAVING, arithmetic between aggregates, windows, the outer query of a WITH over a DP
	// query); an output it does not pass through is computed and paid for but not released.
	// Nil releases Outputs as they are.
	Post *post.Program
	// Order, Limit and Offset act on the released columns (FinalColumns), after Post.
	Order  []Order
	Limit  int64 // -1: no limit
	Offset int64
}

// Datasets returns the distinct datasets the query reads, in FROM order.
func (q *Query) Datasets() []*catalog.Spec {
	var out []*catalog.Spec
	for _, s := range q.Sources {
		if !slices.Contains(out, s.Dataset) {
			out = append(out, s.Dataset)
		}
	}
	return out
}

const allowedHint = "admitted: SELECT <group keys>, <aggregates> FROM <dataset> [JOIN <dataset or lookup table> ON ...] [WHERE <condition>] [GROUP BY <keys>] [ORDER BY <outputs>] [LIMIT n], where aggregates are COUNT(*), COUNT(col), COUNT(DISTINCT <privacy unit>), COUNT(DISTINCT col) of a non-identifier column or expression, SUM, AVG, VAR_POP/VAR_SAMP, STDDEV_POP/STDDEV_SAMP, MEDIAN, QUANTILE_CONT(col, q), PERCENTILE_CONT(q) WITHIN GROUP (ORDER BY col), MIN, MAX of bounded columns, and keys are columns or bins (floor, width_bucket, date_trunc, CASE, substr) of non-identifier columns; FROM may also be a per-unit subquery (SELECT <unit>, <keys>, <per-unit aggregates> ... GROUP BY <unit>, ...)"

// MaxSQLBytes bounds the text of one query: what it can make the parser and the worker do
// grows with it, and no aggregate query an analyst writes comes near it.
const MaxSQLBytes = 64 << 10

// Admit parses and checks sql against the catalog.
func Admit(ctx context.Context, p Parser, cat Catalog, sql string) (*Query, error) {
	stmtJSON, err := parseStatement(ctx, p, sql)
	if err != nil {
		return nil, err
	}
	stmt := decodeNode(stmtJSON)
	g := &gater{cat: cat, stmt: stmtJSON}
	if err := windowRefusal(stmtJSON, cat); err != nil {
		return nil, err
	}
	if !stmt.Node.present() {
		return nil, errcode.New(errcode.UnsupportedSQL, "unrecognised statement; %s", allowedHint)
	}
	if err := only(stmt, "node", "named_param_map"); err != nil {
		return nil, err
	}
	if stmt.set["named_param_map"] {
		return nil, errcode.New(errcode.UnsupportedSQL, "prepared-statement parameters are not admitted")
	}
	q, err := g.selectNode(stmt.Node)
	if err != nil {
		return nil, err
	}
	if err := g.checkWritten(stmt.Node); err != nil {
		return nil, err
	}
	return q, nil
}

// parseStatement has DuckDB parse sql and returns its one statement's JSON AST, refusing text
// that is not one SELECT-like statement (every kind of job that takes SQL starts here).
func parseStatement(ctx context.Context, p Parser, sql string) (any, error) {
	if !utf8.ValidString(sql) {
		return nil, errcode.New(errcode.SyntaxError, "the SQL is not valid UTF-8 text")
	}
	if len(sql) > MaxSQLBytes {
		return nil, errcode.New(errcode.UnsupportedSQL, "the SQL is %d bytes long; at most %d bytes are admitted", len(sql), MaxSQLBytes)
	}
	raw, err := p.Serialize(ctx, sql)
	if err != nil {
		return nil, errcode.Wrap(errcode.Internal, err, "the SQL parser is unavailable")
	}
	var doc struct {
		Error      bool              `json:"error"`
		ErrorType  string            `json:"error_type"`
		ErrorMsg   string            `json:"error_message"`
		Position   json.Number       `json:"position"`
		Statements []json.RawMessage `json:"statements"`
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		return nil, errcode.Wrap(errcode.Internal, err, "the SQL parser returned an unreadable AST")
	}
	if doc.Error {
		if doc.ErrorType == "parser" {
			pos := -1
			if n, err := doc.Position.Int64(); err == nil {
				pos = byteOffset(sql, n)
			}
			return nil, syntaxError(sql, pos, doc.ErrorMsg)
		}
		return nil, errcode.New(errcode.UnsupportedSQL, "only a single SELECT statement is admitted (no COPY, ATTACH, INSTALL, LOAD, PRAGMA, SET, DDL or DML)")
	}
	if len(doc.Statements) != 1 {
		return nil, errcode.New(errcode.UnsupportedSQL, "exactly one statement is admitted per job, got %d", len(doc.Statements))
	}
	var stmtJSON any
	dec = json.NewDecoder(bytes.NewReader(doc.Statements[0]))
	dec.UseNumber()
	if err := dec.Decode(&stmtJSON); err != nil {
		return nil, errcode.Wrap(errcode.Internal, err, "the SQL parser returned an unreadable statement")
	}
	return stmtJSON, nil
}

type gater struct {
	cat  Catalog
	q    Query
	cols []*entry // the columns the query can name
	ctes map[string]*node
	// joins holds the join nodes until their conditions are admitted.
	joins []joinSpec
	// touched collects the columns an expression read, for the identifier checks.
	touched []*entry
	inner   string // the per-unit subquery being admitted, for messages

	stmt any // the statement's JSON, for window hints
	// outer is set when FROM is a WITH query (or subquery) that is a DP query of its own: this
	// query post-processes its released rows.
	outer *outerScope
	// The select list's released columns while post-processing is built: their names, and
	// their expressions over the base outputs (nil until built).
	finalNames []string
	finals     []*post.Expr
	// itemOut is the base output of each select item, or -1 for one computed after release.
	itemOut []int
	// windowFn and windowAt are the window being admitted, for the hint when it reads raw rows.
	windowFn string
	windowAt int
}

// item is a select-list entry before GROUP BY is matched against it.
type item struct {
	node  *node
	alias string
	agg   bool
}

// pos is a node's offset in the SQL text, or -1.
func pos(n *node) int { return n.Location }

// only refuses a node that has a non-empty field outside the allowed set.
func only(n *node, allowed ...string) error {
	keys := make([]string, 0, len(n.set))
	for k := range n.set {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if !slices.Contains(allowed, k) {
			if h, ok := featureHints[k]; ok {
				return errcode.At(errcode.UnsupportedSQL, pos(n), "%s", h)
			}
			return errcode.At(errcode.UnsupportedSQL, pos(n), "this query uses a feature (%s) that is not admitted; %s", k, allowedHint)
		}
	}
	return nil
}

// featureHints are the refusals of AST fields an analyst commonly writes, each with the one
// rewrite that works; any other field gets the general shape of an admitted query.
var featureHints = map[string]string{
	"having":    "HAVING is not admitted in a subquery that groups by the privacy unit; filter its per-unit values in the outer WHERE (groups with fewer units than the policy's minimum are withheld automatically)",
	"filter":    "an aggregate's FILTER (WHERE …) is not admitted; put the condition in WHERE, or group by a CASE key",
	"sample":    "USING SAMPLE is not admitted; query the whole dataset (the noise, not sampling, protects each person)",
	"qualify":   "QUALIFY is not admitted; filter rows with WHERE",
	"modifiers": "ORDER BY, LIMIT and DISTINCT are not admitted in a subquery; ORDER BY and LIMIT apply to the outer query's released rows",
}

var common = []string{"class", "type", "alias", "query_location"}

func with(extra ...string) []string { return append(append([]string{}, common...), extra...) }

func (g *gater) selectNode(n *node) (*Query, error) {
	if n.Type != "SELECT_NODE" {
		return nil, errcode.At(errcode.UnsupportedSQL, pos(n), "set operations (UNION, INTERSECT, EXCEPT) are not admitted; %s", allowedHint)
	}
	if err := only(n, "type", "select_list", "from_table", "where_clause", "group_expressions", "group_sets", "aggregate_handling", "modifiers", "cte_map", "having"); err != nil {
		return nil, err
	}
	if err := g.withClause(n.CteMap); err != nil {
		return nil, err
	}
	if h := n.AggregateHandling; h != "STANDARD_HANDLING" {
		return nil, errcode.At(errcode.UnsupportedSQL, pos(n), "GROUP BY ALL and SELECT DISTINCT are not admitted; name the group keys")
	}
	g.q.Limit = -1
	for _, m := range n.Modifiers {
		if mod := m; mod.Type == "DISTINCT_MODIFIER" {
			return nil, errcode.At(errcode.UnsupportedSQL, pos(n), "SELECT DISTINCT is not admitted; group by the keys instead")
		}
	}
	if err := g.from(n.FromTable); err != nil {
		return nil, err
	}
	sel := n.SelectList
	if len(sel) == 0 {
		return nil, errcode.At(errcode.UnsupportedSQL, pos(n), "the select list is empty; %s", allowedHint)
	}
	items := make([]item, len(sel))
	for i, e := range sel {
		if !e.present() {
			return nil, errcode.New(errcode.UnsupportedSQL, "malformed select list")
		}
		items[i] = item{node: e, alias: e.Alias, agg: isAggregate(e)}
	}
	if g.outer != nil {
		return g.outerSelect(n, items)
	}
	groups := n.GroupExpressions
	sets := n.GroupSets
	if len(groups) > 0 && (len(sets) != 1 || len(asList(sets[0])) != len(groups)) {
		return nil, errcode.At(errcode.UnsupportedSQL, pos(n), "GROUPING SETS, ROLLUP and CUBE are not admitted")
	}
	for _, e := range groups {
		if err := g.groupKey(e, items); err != nil {
			return nil, err
		}
	}
	if w := n.WhereClause; w.present() {
		f, err := g.expr(w, UseFilter)
		if err != nil {
			return nil, err
		}
		g.q.Filter = f
	}
	// Keys and aggregates first: an aggregate inside an expression reuses an identical one.
	used := map[string]bool{}
	unique := func(name string) string {
		base := name
		for i := 2; used[name]; i++ {
			name = fmt.Sprintf("%s_%d", base, i)
		}
		used[name] = true
		return name
	}
	derived := false
	g.itemOut = make([]int, len(items))
	g.finalNames = make([]string, len(items))
	g.finals = make([]*post.Expr, len(items))
	for i, it := range items {
		g.itemOut[i] = -1
		if !it.agg && hasPostProcessing(it.node) {
			derived = true
			continue
		}
		out, err := g.selectItem(it)
		if err != nil {
			return nil, err
		}
		out.Name = unique(out.Name)
		if out.Key >= 0 {
			g.q.Keys[out.Key].Name = out.Name
		} else if out.Rank == 0 {
			g.q.Aggregates[out.Aggregate].Name = out.Name
		}
		g.q.Outputs = append(g.q.Outputs, out)
		g.itemOut[i] = len(g.q.Outputs) - 1
		g.finalNames[i] = out.Name
		g.finals[i] = &post.Expr{Op: post.OpInput, Index: g.itemOut[i]}
	}
	for i, it := range items {
		if g.itemOut[i] >= 0 {
			continue
		}
		e, err := g.postExpr(it.node, modeSelect, false)
		if err != nil {
			return nil, err
		}
		g.finalNames[i] = unique(or(it.alias, fmt.Sprintf("derived_%d", i+1)))
		g.finals[i] = e
	}
	if len(g.q.Aggregates) == 0 {
		return nil, errcode.At(errcode.UnsupportedSQL, pos(n), "a job must compute at least one aggregate; %s", allowedHint)
	}
	for i, k := range g.q.Keys {
		if k.Name == "" {
			return nil, errcode.New(errcode.UnsupportedSQL, "group key %d is not in the select list; select every group key", i+1)
		}
	}
	if h := n.Having; h.present() || derived {
		step := post.Step{}
		if h.present() {
			w, err := g.postExpr(h, modeHaving, false)
			if err != nil {
				return nil, err
			}
			step.Where = w
		}
		for i, name := range g.finalNames {
			step.Columns = append(step.Columns, post.Column{Name: name, Expr: g.finals[i]})
		}
		g.q.Post = &post.Program{Inputs: g.q.baseTypes(), Steps: []post.Step{step}}
		if err := g.q.Post.Validate(); err != nil {
			return nil, postProgramError(err, pos(n))
		}
	}
	for _, m := range n.Modifiers {
		mod := m
		if err := g.modifier(mod, items); err != nil {
			return nil, err
		}
	}
	return &g.q, nil
}

// aggregateFunctions are the names selectItem treats as aggregates.
var aggregateFunctions = map[string]bool{"count_star": true, "count": true, "sum": true, "avg": true, "mean": true,
	"var_samp": true, "var_pop": true, "variance": true, "stddev_samp": true, "stddev_pop": true, "stddev": true,
	"median": true, "quantile_cont": true, "quantile": true, "percentile_cont": true, "min": true, "max": true}

func isAggregate(e *node) bool {
	return e.Class == "FUNCTION" && aggregateFunctions[strings.ToLower(e.FunctionName)]
}

// modifier admits ORDER BY (output names or positions) and LIMIT/OFFSET (constants); both
// apply to the released rows only.
func (g *gater) modifier(m *node, items []item) error {
	switch m.Type {
	case "ORDER_MODIFIER":
		for _, o := range m.Orders {
			ord := o
			dir := ord.Type
			if dir != "ORDER_DEFAULT" && dir != "ASCENDING" && dir != "DESCENDING" {
				return errcode.New(errcode.UnsupportedSQL, "ORDER BY admits ASC and DESC")
			}
			if nl := ord.NullOrder; nl != "ORDER_DEFAULT" && nl != "" {
				return errcode.New(errcode.UnsupportedSQL, "NULLS FIRST/LAST is not admitted in ORDER BY")
			}
			e := ord.Expression
			idx, err := g.outputRef(e, items)
			if err != nil {
				return err
			}
			g.q.Order = append(g.q.Order, Order{Output: idx, Descending: dir == "DESCENDING"})
		}
		return nil
	case "LIMIT_MODIFIER":
		if err := only(m, "type", "limit", "offset"); err != nil {
			return err
		}
		if l := m.Limit; l.present() {
			v, err := nonNegativeInt(l, "LIMIT")
			if err != nil {
				return err
			}
			g.q.Limit = v
		}
		if o := m.Offset; o.present() {
			v, err := nonNegativeInt(o, "OFFSET")
			if err != nil {
				return err
			}
			g.q.Offset = v
		}
		return nil
	case "DISTINCT_MODIFIER":
		return errcode.At(errcode.UnsupportedSQL, pos(m), "SELECT DISTINCT is not admitted; group by the keys instead")
	}
	return errcode.At(errcode.UnsupportedSQL, pos(m), "this query modifier is not admitted; ORDER BY and LIMIT are")
}

// outputRef resolves an ORDER BY term to an output: a 1-based position or an output name.
func (g *gater) outputRef(e *node, items []item) (int, error) {
	switch e.Class {
	case "CONSTANT":
		v, err := nonNegativeInt(e, "ORDER BY position")
		if err != nil {
			return 0, err
		}
		if n := len(g.q.FinalColumns()); v < 1 || v > int64(n) {
			return 0, errcode.At(errcode.UnsupportedSQL, pos(e), "ORDER BY position %d is not an output column (1..%d)", v, n)
		}
		return int(v - 1), nil
	case "COLUMN_REF":
		name := lastName(e)
		outs := g.q.FinalColumns()
		for i, o := range outs {
			if o == name {
				return i, nil
			}
		}
		for i, it := range items {
			if it.alias == "" && it.node.Class == "COLUMN_REF" {
				if p := it.node.ColumnNames; len(p) > 0 && p[len(p)-1] == name {
					return i, nil
				}
			}
		}
		if s := Suggest(name, outs); s != "" {
			return 0, errcode.At(errcode.UnknownColumn, pos(e), "ORDER BY %q names no output column; did you mean %q?", name, s)
		}
		return 0, errcode.At(errcode.UnknownColumn, pos(e), "ORDER BY %q names no output column; order by an output's name or position", name)
	}
	return 0, errcode.At(errcode.UnsupportedSQL, pos(e), "ORDER BY admits output names and positions only (the rows are ordered after release)")
}

func nonNegativeInt(e *node, what string) (int64, error) {
	if e.Class == "CONSTANT" {
		if num, ok := e.ValueNode.Scalar.(json.Number); ok {
			if v, err := num.Int64(); err == nil && v >= 0 {
				return v, nil
			}
		}
	}
	return 0, errcode.At(errcode.UnsupportedSQL, pos(e), "%s must be a non-negative integer constant", what)
}

// from admits the outer FROM clause: datasets (joined), or a per-unit subquery, written in
// place or named by WITH.
func (g *gater) from(t *node) error {
	switch t.Type {
	case "SUBQUERY":
		if err := only(t, "type", "alias", "query_location", "subquery", "column_name_alias"); err != nil {
			return err
		}
		sub := t.Subquery
		if err := only(sub, "node", "named_param_map"); err != nil {
			return err
		}
		return g.subquery(sub.Node, or(t.Alias, "subquery"), "", pos(t))
	case "BASE_TABLE":
		if node, ok := g.ctes[t.TableName]; ok {
			if err := only(t, "type", "alias", "query_location", "table_name"); err != nil {
				return err
			}
			return g.subquery(node, or(t.Alias, t.TableName), t.TableName, pos(t))
		}
	}
	if len(g.ctes) > 0 {
		return errcode.At(errcode.UnsupportedSQL, pos(t), "a WITH query must be the FROM clause of the outer query")
	}
	return g.sources(t, false)
}

// withClause reads WITH: one per-unit subquery, which the outer FROM names.
func (g *gater) withClause(m *node) error {
	entries := m.Map
	if len(entries) == 0 {
		return nil
	}
	if err := only(m, "map"); err != nil {
		return err
	}
	if len(entries) > 1 {
		return errcode.New(errcode.UnsupportedSQL, "one WITH query is admitted: the per-unit subquery the outer query reads")
	}
	e := entries[0]
	v := e.ValueNode
	if err := only(v, "query", "aliases", "materialized", "key_targets"); err != nil {
		return err
	}
	if v.set["aliases"] || v.set["key_targets"] {
		return errcode.New(errcode.UnsupportedSQL, "WITH column lists are not admitted; name the columns in the subquery's select list")
	}
	q := v.Query
	if err := only(q, "node", "named_param_map"); err != nil {
		return err
	}
	g.ctes = map[string]*node{e.Key: q.Node}
	return nil
}

// groupKey admits one GROUP BY term: a select-list position, a select alias, a column, or a
// derived bin, and records it as a key.
func (g *gater) groupKey(e *node, items []item) error {
	target := groupTarget(e, items, g.hasColumn)
	if target == nil {
		return errcode.New(errcode.UnsupportedSQL, "malformed GROUP BY")
	}
	g.touched = nil
	sql, err := g.expr(target, UseGroupKey)
	if err != nil {
		return err
	}
	if err := g.noIdentifier(pos(e), "be a group key"); err != nil {
		return err
	}
	for _, k := range g.q.Keys {
		if k.Expr.Equal(sql) {
			return errcode.At(errcode.UnsupportedSQL, pos(e), "the same group key appears twice in GROUP BY")
		}
	}
	k := Key{Expr: sql}
	for _, t := range g.touched {
		for _, r := range t.from {
			if !slices.Contains(k.Columns, r) {
				k.Columns = append(k.Columns, r)
			}
		}
	}
	switch {
	case target.Class == "COLUMN_REF":
		k.Domain = g.touched[0].meta.Domain
	case len(g.touched) == 1 && dateDomain(sql, g.touched[0].meta) != nil:
		k.Domain = dateDomain(sql, g.touched[0].meta)
	default:
		k.Domain = staticDomain(target)
	}
	g.q.Keys = append(g.q.Keys, k)
	return nil
}

// hasColumn reports whether a bare name is a column of the query's scope.
func (g *gater) hasColumn(name string) bool {
	return slices.ContainsFunc(g.cols, func(e *entry) bool { return e.name == name })
}

func (g *gater) selectItem(it item) (Output, error) {
	e, alias := it.node, it.alias
	switch e.Class {
	case "STAR":
		if len(g.q.Sources) == 0 {
			return Output{}, errcode.At(errcode.IdentifierInOutput, pos(e), "SELECT * would release raw rows and identifiers; select group keys and aggregates")
		}
		return Output{}, errcode.At(errcode.IdentifierInOutput, pos(e), "SELECT * would release raw rows and identifiers; select group keys and aggregates, e.g. SELECT %s, COUNT(*) FROM %s GROUP BY %s", g.exampleKey(), g.q.Sources[0].Dataset.Name, g.exampleKey())
	case "FUNCTION":
		if it.agg {
			return g.aggregate(e, alias)
		}
	}
	if e.Class == "COLUMN_REF" {
		c, err := g.resolve(e)
		if err != nil {
			return Output{}, err
		}
		if c.meta.Has(catalog.TagIdentifier) {
			return Output{}, errcode.At(errcode.IdentifierInOutput, pos(e), "%s is an identifier and can never be selected or grouped; use COUNT(DISTINCT %s) to count units", c.name, g.unitName())
		}
		for i, k := range g.q.Keys {
			if c.col != nil && k.Expr.Equal(c.col) {
				return Output{Name: or(alias, c.name), Key: i, Aggregate: -1}, nil
			}
		}
		return Output{}, errcode.At(errcode.RawColumnInOutput, pos(e), "column %q would release row-level values; group by it or aggregate it", c.name)
	}
	// A derived key: it must be one of the GROUP BY terms, rendered the same way.
	before := len(g.q.Uses)
	sql, err := g.expr(e, UseGroupKey)
	g.q.Uses = g.q.Uses[:before] // the GROUP BY term already recorded these uses
	if err != nil {
		return Output{}, err
	}
	for i, k := range g.q.Keys {
		if k.Expr.Equal(sql) {
			return Output{Name: or(alias, fmt.Sprintf("key_%d", i+1)), Key: i, Aggregate: -1}, nil
		}
	}
	return Output{}, errcode.At(errcode.RawColumnInOutput, pos(e), "this select item is neither an aggregate nor a GROUP BY key; add it to GROUP BY or aggregate it")
}

// staticDomain returns the values a derived key can take when they follow from the SQL alone:
// a CASE whose results are all literals and which has an ELSE, or a width_bucket.
func staticDomain(e *node) []string {
	switch e.Class {
	case "CASE":
		var out []string
		add := func(n *node) bool {
			if n.Class != "CONSTANT" {
				return false
			}
			c, err := constant(n)
			if err != nil || c.Type == wire.TypeNull {
				return false
			}
			s := constantText(c)
			if !slices.Contains(out, s) {
				out = append(out, s)
			}
			return true
		}
		for _, c := range e.CaseChecks {
			if !add(c.ThenExpr) {
				return nil
			}
		}
		if el := e.ElseExpr; !el.present() || !add(el) {
			return nil
		}
		return out
	case "FUNCTION":
		if strings.ToLower(e.FunctionName) == "width_bucket" {
			if n, ok := bucketCount(e.Children); ok {
				out := make([]string, 0, n+2)
				for i := int64(0); i <= n+1; i++ {
					out = append(out, strconv.FormatInt(i, 10))
				}
				return out
			}
		}
	}
	return nil
}

func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func (g *gater) aggregate(e *node, alias string) (Output, error) {
	if err := only(e, with("function_name", "children", "order_bys", "distinct", "is_operator", "schema")...); err != nil {
		return Output{}, err
	}
	if sc := e.Schema; sc != "" && sc != "main" {
		return Output{}, errcode.At(errcode.UnsupportedSQL, pos(e), "schema-qualified functions are not admitted")
	}
	fn := strings.ToLower(e.FunctionName)
	args := e.Children
	distinct := e.Distinct
	orders := e.OrderBys.Orders
	if len(orders) > 0 && fn != "quantile_cont" && fn != "percentile_cont" {
		return Output{}, errcode.At(errcode.UnsupportedSQL, pos(e), "ordered aggregates are admitted only as PERCENTILE_CONT(q) WITHIN GROUP (ORDER BY col)")
	}
	if distinct && fn != "count" {
		return Output{}, errcode.At(errcode.UnsupportedSQL, pos(e), "DISTINCT is admitted only in COUNT(DISTINCT …): of the privacy unit %s, or of a column or expression that reads no identifier", g.unitName())
	}
	add := func(a Aggregate) Output {
		g.q.Aggregates = append(g.q.Aggregates, a)
		return Output{Name: or(alias, a.Name), Key: -1, Aggregate: len(g.q.Aggregates) - 1}
	}
	// colArg resolves an aggregate's argument: a column, or an expression over row-level
	// columns that reads no identifier (valueArg). COUNT(DISTINCT expr) counts the distinct
	// values of the expression, which the worker evaluates per row like any value.
	colArg := func(a *node) (*entry, error) {
		if a.Class != "COLUMN_REF" {
			return g.valueArg(a)
		}
		return g.resolve(a)
	}
	// bounded resolves the single argument of a value aggregate: a column, or an expression
	// over row-level columns whose bounds follow from the SQL and the catalog (valueArg).
	bounded := func(a *node) (*entry, error) {
		c, err := colArg(a)
		if err != nil {
			return nil, err
		}
		if c.expr {
			if !c.meta.HasBounds() {
				return nil, errcode.At(errcode.MissingBounds, pos(a), "the bounds of this expression do not follow from the SQL, so %s of it cannot be bounded; aggregate a CASE whose results are numbers or bounded columns (CASE WHEN … THEN 1 ELSE 0 END), a cast of a condition, or a bounded column", strings.ToUpper(fn))
			}
			return c, nil
		}
		if c.meta.Has(catalog.TagIdentifier) {
			return nil, errcode.At(errcode.IdentifierInOutput, pos(a), "%s is an identifier and cannot be aggregated; use COUNT(DISTINCT %s) to count units", c.name, g.unitName())
		}
		if !c.meta.HasBounds() {
			if c.perUnit != "" {
				return nil, errcode.At(errcode.MissingBounds, pos(a), "%s = %s per unit has no bounds, so %s(%s) cannot be bounded; clamp it in the subquery, e.g. LEAST(GREATEST(%s, 0), 1000) AS %s",
					c.name, c.perUnit, strings.ToUpper(fn), c.name, c.perUnit, c.name)
			}
			return nil, errcode.At(errcode.MissingBounds, pos(a), "%s has no declared bounds, so %s(%s) cannot be bounded; the provider must declare them in the catalog", c.name, strings.ToUpper(fn), c.name)
		}
		g.use(c, UseAggregate)
		return c, nil
	}
	one := func() (*node, error) {
		if len(args) != 1 {
			return nil, errcode.At(errcode.UnsupportedSQL, pos(e), "%s takes one column", strings.ToUpper(fn))
		}
		a := args[0]
		return a, nil
	}
	quantile := func(col *node, rank float64, label string) (Output, error) {
		c, err := bounded(col)
		if err != nil {
			return Output{}, err
		}
		for i, a := range g.q.Aggregates {
			if a.Kind == dp.Quantiles && a.Value.Equal(c.col) {
				g.q.Aggregates[i].Ranks = append(a.Ranks, rank)
				return Output{Name: or(alias, label+"_"+c.name), Key: -1, Aggregate: i, Rank: len(a.Ranks)}, nil
			}
		}
		out := add(Aggregate{Name: label + "_" + c.name, Kind: dp.Quantiles, Column: c.name, From: c.from, Value: c.col, Bounds: c.meta.Bounds, Ranks: []float64{rank}})
		return out, nil
	}
	switch fn {
	case "count_star":
		return add(Aggregate{Name: "count", Kind: dp.Count}), nil
	case "count":
		a, err := one()
		if err != nil {
			return Output{}, err
		}
		if distinct {
			c, err := colArg(a)
			if err != nil {
				return Output{}, err
			}
			switch {
			case c.unit:
			case c.meta.Has(catalog.TagIdentifier):
				// Another identifier (a visit number, a LEFT-joined dataset's unit, which may be
				// NULL) would be counted, not the units DP protects.
				return Output{}, errcode.At(errcode.UnsupportedSQL, pos(e), "COUNT(DISTINCT ...) of an identifier is admitted only on the privacy unit %q; count rows where %s is present with COUNT(%s)",
					g.unitName(), c.name, c.name)
			default:
				// The number of distinct values among each group's kept rows: removing a unit
				// removes at most its kept rows of a group (L∞), in at most L0 groups, so the
				// distinct count has COUNT(*)'s sensitivity (dp.CountDistinctValues).
				if !c.expr { // valueArg recorded an expression's columns
					g.use(c, UseAggregate)
				}
				return add(Aggregate{Name: "count_distinct_" + c.name, Kind: dp.CountDistinctValues, Column: c.name, From: c.from, Value: c.col}), nil
			}
			g.use(c, UseDistinctUnits)
			return add(Aggregate{Name: "units", Kind: dp.CountDistinct, Column: c.name, From: c.from}), nil
		}
		c, err := colArg(a)
		if err != nil {
			return Output{}, err
		}
		usage := UseAggregate
		if c.meta.Has(catalog.TagIdentifier) {
			// Counting rows where an identifier is present releases no identifier value.
			usage = UseCountRows
		}
		g.use(c, usage)
		if c.expr { // COUNT(expr): rows where the expression is not NULL
			return add(Aggregate{Name: "count_" + c.name, Kind: dp.Count, Column: c.name, From: c.from, Value: wire.Case(nil, wire.IsNull(c.col, true), wire.Num("1"))}), nil
		}
		if c.col == nil { // a per-unit subquery's unit: present on every row
			return add(Aggregate{Name: "count_" + c.name, Kind: dp.Count, Column: c.name, From: c.from}), nil
		}
		present := wire.Case(nil, wire.IsNull(c.col, true), wire.Num("1"))
		return add(Aggregate{Name: "count_" + c.name, Kind: dp.Count, Column: c.name, From: c.from, Value: present}), nil
	case "sum", "avg", "mean", "var_samp", "var_pop", "variance", "stddev_samp", "stddev_pop", "stddev":
		a, err := one()
		if err != nil {
			return Output{}, err
		}
		c, err := bounded(a)
		if err != nil {
			return Output{}, err
		}
		kind := map[string]dp.Kind{"sum": dp.Sum, "avg": dp.Mean, "mean": dp.Mean, "var_samp": dp.Variance, "var_pop": dp.Variance,
			"variance": dp.Variance, "stddev_samp": dp.StdDev, "stddev_pop": dp.StdDev, "stddev": dp.StdDev}[fn]
		label := map[dp.Kind]string{dp.Sum: "sum", dp.Mean: "avg", dp.Variance: "var", dp.StdDev: "stddev"}[kind]
		return add(Aggregate{Name: label + "_" + c.name, Kind: kind, Column: c.name, From: c.from, Value: c.col, Bounds: c.meta.Bounds, Outer: c.outer}), nil
	case "median":
		a, err := one()
		if err != nil {
			return Output{}, err
		}
		return quantile(a, 0.5, "median")
	case "min", "max":
		a, err := one()
		if err != nil {
			return Output{}, err
		}
		return quantile(a, map[string]float64{"min": 0, "max": 1}[fn], fn)
	case "quantile_cont", "quantile", "percentile_cont":
		var col, q *node
		switch {
		case len(args) == 2 && len(orders) == 0:
			col, q = args[0], args[1]
		case len(args) == 1 && len(orders) == 1:
			q, col = args[0], orders[0].Expression
		default:
			return Output{}, errcode.At(errcode.UnsupportedSQL, pos(e), "write QUANTILE_CONT(col, q) or PERCENTILE_CONT(q) WITHIN GROUP (ORDER BY col) with one constant q in [0, 1]")
		}
		rank, err := rankConstant(q)
		if err != nil {
			return Output{}, err
		}
		return quantile(col, rank, fmt.Sprintf("p%g", rank*100))
	}
	return Output{}, errcode.At(errcode.UnsupportedSQL, pos(e), "function %q is not admitted here; %s", fn, allowedHint)
}

// rankConstant reads a quantile rank: a numeric constant in [0, 1].
func rankConstant(n *node) (float64, error) {
	if n.Class == "CONSTANT" {
		if v, err := numberOf(n); err == nil && v >= 0 && v <= 1 {
			return v, nil
		}
	}
	return 0, errcode.At(errcode.UnsupportedSQL, pos(n), "a quantile rank must be a constant in [0, 1], e.g. QUANTILE_CONT(cost, 0.9)")
}

// exampleKey names a column of the first dataset a hint can group by: the first (by name) with
// a public domain, else one that is neither an identifier nor a bounded value, else "key".
func (g *gater) exampleKey() string {
	if len(g.q.Sources) == 0 {
		return "key"
	}
	spec := g.q.Sources[0].Dataset
	names := slices.Sorted(maps.Keys(spec.Columns))
	for _, n := range names {
		if c := spec.Columns[n]; len(c.Domain) > 0 && !c.Has(catalog.TagIdentifier) {
			return n
		}
	}
	for _, n := range names {
		if c := spec.Columns[n]; !c.Has(catalog.TagIdentifier) && !c.HasBounds() {
			return n
		}
	}
	return "key"
}
