// Package gate admits applicant SQL into the supported DP aggregate subset, or refuses it with
// a stable code, a message that says what is allowed, and the SQL position.
//
// The SQL is parsed by DuckDB itself (json_serialize_sql) in a data-free parser; the gate then
// walks the AST against an allowlist — every node kind and every field it does not know is a
// refusal, so a new DuckDB feature cannot slip through — and re-renders the admitted
// expressions as SQL of its own. Applicant text never reaches the worker verbatim.
package gate

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/c1b99f93/cleanroom/engine/catalog"
	"github.com/c1b99f93/cleanroom/engine/dp"
	"github.com/c1b99f93/cleanroom/engine/errcode"
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
)

// ColumnUse records one use of a catalog column.
type ColumnUse struct {
	Column string
	Usage  Usage
}

// Key is a group key: a catalog column or a derived bin of non-identifier columns, rendered.
type Key struct {
	Name    string   // output column name
	Column  string   // the catalog column when the key is a plain column, else ""
	Columns []string // the catalog columns the key derives from
	SQL     string
	// Domain holds the key's public values when they are known without reading data: a
	// column's catalog domain, the literal results of a CASE with an ELSE, the buckets of a
	// width_bucket. Nil means the key's values come from the data (DP partition selection).
	Domain []string
}

// Aggregate is one admitted aggregate. Quantiles of one column (MEDIAN, QUANTILE_CONT,
// PERCENTILE_CONT, MIN, MAX) share one aggregate with several ranks.
type Aggregate struct {
	Name   string // output column name (of the first output, for quantiles)
	Kind   dp.Kind
	Column string // the aggregated column, or the privacy unit (CountDistinct), or "" (COUNT(*))
	SQL    string // rendered value expression, when the aggregate reads values
	Ranks  []float64
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
	Output     int // index into Outputs
	Descending bool
}

// Query is an admitted query: one dataset, group keys, a filter, DP aggregates and the
// post-processing of the released rows (ORDER BY, LIMIT, OFFSET).
type Query struct {
	Dataset    *catalog.Spec
	Keys       []Key
	Aggregates []Aggregate
	Outputs    []Output
	Filter     string // rendered boolean expression, or ""
	Uses       []ColumnUse
	Order      []Order
	Limit      int64 // -1: no limit
	Offset     int64
}

const allowedHint = "admitted: SELECT <group keys>, <aggregates> FROM <dataset> [WHERE <condition>] [GROUP BY <keys>] [ORDER BY <outputs>] [LIMIT n], where aggregates are COUNT(*), COUNT(col), COUNT(DISTINCT <privacy unit>), SUM, AVG, VAR_POP/VAR_SAMP, STDDEV_POP/STDDEV_SAMP, MEDIAN, QUANTILE_CONT(col, q), PERCENTILE_CONT(q) WITHIN GROUP (ORDER BY col), MIN, MAX of bounded columns, and keys are columns or bins (floor, width_bucket, date_trunc, CASE, substr) of non-identifier columns"

// Admit parses and checks sql against the catalog.
func Admit(ctx context.Context, p Parser, cat Catalog, sql string) (*Query, error) {
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
				pos = int(n)
			}
			return nil, errcode.At(errcode.SyntaxError, pos, "the SQL could not be parsed; %s", allowedHint)
		}
		return nil, errcode.New(errcode.UnsupportedSQL, "only a single SELECT statement is admitted (no COPY, ATTACH, INSTALL, LOAD, PRAGMA, SET, DDL or DML); %s", allowedHint)
	}
	if len(doc.Statements) != 1 {
		return nil, errcode.New(errcode.UnsupportedSQL, "exactly one statement is admitted per job, got %d", len(doc.Statements))
	}
	var stmt map[string]any
	dec = json.NewDecoder(bytes.NewReader(doc.Statements[0]))
	dec.UseNumber()
	if err := dec.Decode(&stmt); err != nil {
		return nil, errcode.Wrap(errcode.Internal, err, "the SQL parser returned an unreadable statement")
	}
	g := &gater{cat: cat}
	node, ok := stmt["node"].(map[string]any)
	if !ok {
		return nil, errcode.New(errcode.UnsupportedSQL, "unrecognised statement; %s", allowedHint)
	}
	if err := only(stmt, "node", "named_param_map"); err != nil {
		return nil, err
	}
	if !empty(stmt["named_param_map"]) {
		return nil, errcode.New(errcode.UnsupportedSQL, "prepared-statement parameters are not admitted")
	}
	return g.selectNode(node)
}

type gater struct {
	cat   Catalog
	q     Query
	alias string
}

// item is a select-list entry before GROUP BY is matched against it.
type item struct {
	node  map[string]any
	alias string
	agg   bool
}

// node accessors

func str(n map[string]any, k string) string { s, _ := n[k].(string); return s }

func obj(n map[string]any, k string) map[string]any { m, _ := n[k].(map[string]any); return m }

func list(n map[string]any, k string) []any { return asList(n[k]) }

func asList(v any) []any { l, _ := v.([]any); return l }

func pos(n map[string]any) int {
	if v, ok := n["query_location"].(json.Number); ok {
		if i, err := v.Int64(); err == nil && i >= 0 && i < 1<<31 {
			return int(i)
		}
	}
	return -1
}

// empty reports whether a field holds nothing: null, "", false, [], {} or an empty map/list
// wrapper (DuckDB writes cte_map as {"map": []}).
func empty(v any) bool {
	switch x := v.(type) {
	case nil:
		return true
	case string:
		return x == ""
	case bool:
		return !x
	case []any:
		return len(x) == 0
	case map[string]any:
		for _, e := range x {
			if !empty(e) {
				return false
			}
		}
		return true
	}
	return false
}

// only refuses a node that has a non-empty field outside the allowed set.
func only(n map[string]any, allowed ...string) error {
	for k, v := range n {
		if empty(v) {
			continue
		}
		known := false
		for _, a := range allowed {
			if k == a {
				known = true
				break
			}
		}
		if !known {
			return errcode.At(errcode.UnsupportedSQL, pos(n), "this query uses a feature (%s) that is not admitted; %s", k, allowedHint)
		}
	}
	return nil
}

var common = []string{"class", "type", "alias", "query_location"}

func with(extra ...string) []string { return append(append([]string{}, common...), extra...) }

func (g *gater) selectNode(n map[string]any) (*Query, error) {
	if str(n, "type") != "SELECT_NODE" {
		return nil, errcode.At(errcode.UnsupportedSQL, pos(n), "set operations (UNION, INTERSECT, EXCEPT) are not admitted; %s", allowedHint)
	}
	if err := only(n, "type", "select_list", "from_table", "where_clause", "group_expressions", "group_sets", "aggregate_handling", "modifiers"); err != nil {
		return nil, err
	}
	if h := str(n, "aggregate_handling"); h != "STANDARD_HANDLING" {
		return nil, errcode.At(errcode.UnsupportedSQL, pos(n), "GROUP BY ALL and SELECT DISTINCT are not admitted; name the group keys")
	}
	g.q.Limit = -1
	for _, m := range list(n, "modifiers") {
		if mod, _ := m.(map[string]any); str(mod, "type") == "DISTINCT_MODIFIER" {
			return nil, errcode.At(errcode.UnsupportedSQL, pos(n), "SELECT DISTINCT is not admitted; group by the keys instead")
		}
	}
	if err := g.from(obj(n, "from_table")); err != nil {
		return nil, err
	}
	sel := list(n, "select_list")
	if len(sel) == 0 {
		return nil, errcode.At(errcode.UnsupportedSQL, pos(n), "the select list is empty; %s", allowedHint)
	}
	items := make([]item, len(sel))
	for i, it := range sel {
		e, _ := it.(map[string]any)
		if e == nil {
			return nil, errcode.New(errcode.UnsupportedSQL, "malformed select list")
		}
		items[i] = item{node: e, alias: str(e, "alias"), agg: isAggregate(e)}
	}
	groups := list(n, "group_expressions")
	sets := list(n, "group_sets")
	if len(groups) > 0 && (len(sets) != 1 || len(asList(sets[0])) != len(groups)) {
		return nil, errcode.At(errcode.UnsupportedSQL, pos(n), "GROUPING SETS, ROLLUP and CUBE are not admitted")
	}
	for _, ge := range groups {
		e, _ := ge.(map[string]any)
		if err := g.groupKey(e, items); err != nil {
			return nil, err
		}
	}
	if w := obj(n, "where_clause"); w != nil {
		f, err := g.expr(w, UseFilter)
		if err != nil {
			return nil, err
		}
		g.q.Filter = f
	}
	used := map[string]bool{}
	for _, it := range items {
		out, err := g.selectItem(it)
		if err != nil {
			return nil, err
		}
		base := out.Name
		for i := 2; used[out.Name]; i++ {
			out.Name = fmt.Sprintf("%s_%d", base, i)
		}
		used[out.Name] = true
		if out.Key >= 0 {
			g.q.Keys[out.Key].Name = out.Name
		} else if out.Rank == 0 {
			g.q.Aggregates[out.Aggregate].Name = out.Name
		}
		g.q.Outputs = append(g.q.Outputs, out)
	}
	if len(g.q.Aggregates) == 0 {
		return nil, errcode.At(errcode.UnsupportedSQL, pos(n), "a job must compute at least one aggregate; %s", allowedHint)
	}
	for i, k := range g.q.Keys {
		if k.Name == "" {
			return nil, errcode.New(errcode.UnsupportedSQL, "group key %d is not in the select list; select every group key", i+1)
		}
	}
	for _, m := range list(n, "modifiers") {
		mod, _ := m.(map[string]any)
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

func isAggregate(e map[string]any) bool {
	return str(e, "class") == "FUNCTION" && aggregateFunctions[strings.ToLower(str(e, "function_name"))]
}

// modifier admits ORDER BY (output names or positions) and LIMIT/OFFSET (constants); both
// apply to the released rows only.
func (g *gater) modifier(m map[string]any, items []item) error {
	switch str(m, "type") {
	case "ORDER_MODIFIER":
		for _, o := range list(m, "orders") {
			ord, _ := o.(map[string]any)
			dir := str(ord, "type")
			if dir != "ORDER_DEFAULT" && dir != "ASCENDING" && dir != "DESCENDING" {
				return errcode.New(errcode.UnsupportedSQL, "ORDER BY admits ASC and DESC")
			}
			if nl := str(ord, "null_order"); nl != "ORDER_DEFAULT" && nl != "" {
				return errcode.New(errcode.UnsupportedSQL, "NULLS FIRST/LAST is not admitted in ORDER BY")
			}
			e := obj(ord, "expression")
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
		if l := obj(m, "limit"); l != nil {
			v, err := nonNegativeInt(l, "LIMIT")
			if err != nil {
				return err
			}
			g.q.Limit = v
		}
		if o := obj(m, "offset"); o != nil {
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
func (g *gater) outputRef(e map[string]any, items []item) (int, error) {
	switch str(e, "class") {
	case "CONSTANT":
		v, err := nonNegativeInt(e, "ORDER BY position")
		if err != nil {
			return 0, err
		}
		if v < 1 || v > int64(len(g.q.Outputs)) {
			return 0, errcode.At(errcode.UnsupportedSQL, pos(e), "ORDER BY position %d is not an output column (1..%d)", v, len(g.q.Outputs))
		}
		return int(v - 1), nil
	case "COLUMN_REF":
		parts := list(e, "column_names")
		name, _ := parts[len(parts)-1].(string)
		for i, o := range g.q.Outputs {
			if o.Name == name {
				return i, nil
			}
		}
		for i, it := range items {
			if it.alias == "" && str(it.node, "class") == "COLUMN_REF" {
				if p := list(it.node, "column_names"); len(p) > 0 && p[len(p)-1] == name {
					return i, nil
				}
			}
		}
		return 0, errcode.At(errcode.UnknownColumn, pos(e), "ORDER BY %q names no output column; order by an output's name or position", name)
	}
	return 0, errcode.At(errcode.UnsupportedSQL, pos(e), "ORDER BY admits output names and positions only (the rows are ordered after release)")
}

func nonNegativeInt(e map[string]any, what string) (int64, error) {
	if str(e, "class") == "CONSTANT" {
		if num, ok := obj(e, "value")["value"].(json.Number); ok {
			if v, err := num.Int64(); err == nil && v >= 0 {
				return v, nil
			}
		}
	}
	return 0, errcode.At(errcode.UnsupportedSQL, pos(e), "%s must be a non-negative integer constant", what)
}

func (g *gater) from(t map[string]any) error {
	if t == nil {
		return errcode.New(errcode.UnsupportedSQL, "a FROM clause naming one dataset is required")
	}
	switch str(t, "type") {
	case "BASE_TABLE":
	case "TABLE_FUNCTION":
		return errcode.At(errcode.UnsupportedSQL, pos(t), "table functions (file readers such as read_csv, query(), getenv and the like) are not admitted; name a registered dataset")
	case "JOIN":
		return errcode.At(errcode.UnsupportedSQL, pos(t), "joins are not admitted yet; query one dataset")
	case "SUBQUERY":
		return errcode.At(errcode.UnsupportedSQL, pos(t), "subqueries are not admitted yet; query one dataset")
	case "EMPTY":
		return errcode.New(errcode.UnsupportedSQL, "a FROM clause naming one dataset is required")
	default:
		return errcode.At(errcode.UnsupportedSQL, pos(t), "this FROM clause is not admitted; name one registered dataset")
	}
	if err := only(t, "type", "alias", "query_location", "table_name"); err != nil {
		return err
	}
	name := str(t, "table_name")
	spec, ok := g.cat.Lookup(name)
	if !ok {
		return errcode.At(errcode.UnknownDataset, pos(t), "no dataset named %q is registered", name)
	}
	g.q.Dataset = spec
	g.alias = str(t, "alias")
	return nil
}

// column resolves a COLUMN_REF to a declared catalog column.
func (g *gater) column(n map[string]any) (string, catalog.Column, error) {
	if err := only(n, with("column_names")...); err != nil {
		return "", catalog.Column{}, err
	}
	parts := list(n, "column_names")
	var name string
	switch len(parts) {
	case 1:
		name, _ = parts[0].(string)
	case 2:
		q, _ := parts[0].(string)
		if q != g.q.Dataset.Name && (g.alias == "" || q != g.alias) {
			return "", catalog.Column{}, errcode.At(errcode.UnknownColumn, pos(n), "column qualifier %q does not name the queried dataset", q)
		}
		name, _ = parts[1].(string)
	default:
		return "", catalog.Column{}, errcode.At(errcode.UnsupportedSQL, pos(n), "qualified names beyond dataset.column are not admitted")
	}
	c, ok := g.q.Dataset.Columns[name]
	if !ok {
		return "", catalog.Column{}, errcode.At(errcode.UnknownColumn, pos(n), "dataset %q has no column %q", g.q.Dataset.Name, name)
	}
	return name, c, nil
}

func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// groupKey admits one GROUP BY term: a select-list position, a select alias, a column, or a
// derived bin, and records it as a key.
func (g *gater) groupKey(e map[string]any, items []item) error {
	if e == nil {
		return errcode.New(errcode.UnsupportedSQL, "malformed GROUP BY")
	}
	target := e
	switch str(e, "class") {
	case "CONSTANT":
		v, err := nonNegativeInt(e, "GROUP BY position")
		if err != nil {
			return err
		}
		if v < 1 || v > int64(len(items)) || items[v-1].agg {
			return errcode.At(errcode.UnsupportedSQL, pos(e), "GROUP BY position %d is not a non-aggregate select item", v)
		}
		target = items[v-1].node
	case "COLUMN_REF":
		parts := list(e, "column_names")
		if len(parts) == 1 {
			name, _ := parts[0].(string)
			if _, isCol := g.q.Dataset.Columns[name]; !isCol {
				for _, it := range items {
					if it.alias == name && !it.agg {
						target = it.node
					}
				}
			}
		}
	}
	before := len(g.q.Uses)
	sql, err := g.expr(target, UseGroupKey)
	if err != nil {
		return err
	}
	for _, k := range g.q.Keys {
		if k.SQL == sql {
			return errcode.At(errcode.UnsupportedSQL, pos(e), "the same group key appears twice in GROUP BY")
		}
	}
	k := Key{SQL: sql}
	for _, u := range g.q.Uses[before:] {
		if g.q.Dataset.Columns[u.Column].Has(catalog.TagIdentifier) {
			return errcode.At(errcode.IdentifierInOutput, pos(e), "%s is an identifier and cannot be a group key, even through a function; count units with COUNT(DISTINCT %s)", u.Column, g.q.Dataset.PrivacyUnit)
		}
		if !slices.Contains(k.Columns, u.Column) {
			k.Columns = append(k.Columns, u.Column)
		}
	}
	if str(target, "class") == "COLUMN_REF" {
		k.Column = k.Columns[0]
		k.Domain = g.q.Dataset.Columns[k.Column].Domain
	} else {
		k.Domain = staticDomain(target)
	}
	g.q.Keys = append(g.q.Keys, k)
	return nil
}

func (g *gater) selectItem(it item) (Output, error) {
	e, alias := it.node, it.alias
	switch str(e, "class") {
	case "STAR":
		return Output{}, errcode.At(errcode.IdentifierInOutput, pos(e), "SELECT * would release raw rows and identifiers; select group keys and aggregates")
	case "FUNCTION":
		if it.agg {
			return g.aggregate(e, alias)
		}
	}
	if str(e, "class") == "COLUMN_REF" {
		name, c, err := g.column(e)
		if err != nil {
			return Output{}, err
		}
		if c.Has(catalog.TagIdentifier) {
			return Output{}, errcode.At(errcode.IdentifierInOutput, pos(e), "%s is an identifier and can never be selected or grouped; use COUNT(DISTINCT %s) to count units", name, g.q.Dataset.PrivacyUnit)
		}
		for i, k := range g.q.Keys {
			if k.Column == name {
				return Output{Name: or(alias, name), Key: i, Aggregate: -1}, nil
			}
		}
		return Output{}, errcode.At("raw_column_in_output", pos(e), "column %q would release row-level values; group by it or aggregate it", name)
	}
	// A derived key: it must be one of the GROUP BY terms, rendered the same way.
	before := len(g.q.Uses)
	sql, err := g.expr(e, UseGroupKey)
	g.q.Uses = g.q.Uses[:before] // the GROUP BY term already recorded these uses
	if err != nil {
		return Output{}, err
	}
	for i, k := range g.q.Keys {
		if k.SQL == sql {
			return Output{Name: or(alias, fmt.Sprintf("key_%d", i+1)), Key: i, Aggregate: -1}, nil
		}
	}
	return Output{}, errcode.At("raw_column_in_output", pos(e), "this select item is neither an aggregate nor a GROUP BY key; add it to GROUP BY or aggregate it")
}

// staticDomain returns the values a derived key can take when they follow from the SQL alone:
// a CASE whose results are all literals and which has an ELSE, or a width_bucket.
func staticDomain(e map[string]any) []string {
	switch str(e, "class") {
	case "CASE":
		var out []string
		add := func(n map[string]any) bool {
			if str(n, "class") != "CONSTANT" {
				return false
			}
			v := obj(n, "value")
			if isNull, _ := v["is_null"].(bool); isNull {
				return false
			}
			s, ok := v["value"].(string) // VARCHAR: the value itself, not its quoted rendering
			if str(obj(v, "type"), "id") != "VARCHAR" || !ok {
				text, err := constant(n)
				if err != nil {
					return false
				}
				s = text
			}
			if !slices.Contains(out, s) {
				out = append(out, s)
			}
			return true
		}
		for _, c := range list(e, "case_checks") {
			if !add(obj(c.(map[string]any), "then_expr")) {
				return nil
			}
		}
		if el := obj(e, "else_expr"); el == nil || !add(el) {
			return nil
		}
		return out
	case "FUNCTION":
		if strings.ToLower(str(e, "function_name")) == "width_bucket" {
			if n, ok := bucketCount(list(e, "children")); ok {
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

func (g *gater) aggregate(e map[string]any, alias string) (Output, error) {
	if err := only(e, with("function_name", "children", "order_bys", "distinct", "is_operator", "schema")...); err != nil {
		return Output{}, err
	}
	if sc := str(e, "schema"); sc != "" && sc != "main" {
		return Output{}, errcode.At(errcode.UnsupportedSQL, pos(e), "schema-qualified functions are not admitted")
	}
	fn := strings.ToLower(str(e, "function_name"))
	args := list(e, "children")
	distinct, _ := e["distinct"].(bool)
	orders := list(obj(e, "order_bys"), "orders")
	if len(orders) > 0 && fn != "quantile_cont" && fn != "percentile_cont" {
		return Output{}, errcode.At(errcode.UnsupportedSQL, pos(e), "ordered aggregates are admitted only as PERCENTILE_CONT(q) WITHIN GROUP (ORDER BY col)")
	}
	if distinct && fn != "count" {
		return Output{}, errcode.At(errcode.UnsupportedSQL, pos(e), "DISTINCT is admitted only in COUNT(DISTINCT %s)", g.q.Dataset.PrivacyUnit)
	}
	add := func(a Aggregate) Output {
		g.q.Aggregates = append(g.q.Aggregates, a)
		return Output{Name: or(alias, a.Name), Key: -1, Aggregate: len(g.q.Aggregates) - 1}
	}
	colArg := func(a map[string]any) (string, catalog.Column, error) {
		if str(a, "class") != "COLUMN_REF" {
			return "", catalog.Column{}, errcode.At(errcode.UnsupportedSQL, pos(a), "aggregate arguments must be dataset columns; derive bins in GROUP BY instead")
		}
		return g.column(a)
	}
	// bounded resolves the single column argument of a value aggregate.
	bounded := func(a map[string]any) (string, error) {
		name, c, err := colArg(a)
		if err != nil {
			return "", err
		}
		if c.Has(catalog.TagIdentifier) {
			return "", errcode.At(errcode.IdentifierInOutput, pos(a), "%s is an identifier and cannot be aggregated; use COUNT(DISTINCT %s) to count units", name, g.q.Dataset.PrivacyUnit)
		}
		if !c.HasBounds() {
			return "", errcode.At(errcode.MissingBounds, pos(a), "%s has no declared bounds, so %s(%s) cannot be bounded; the provider must declare them in the catalog", name, strings.ToUpper(fn), name)
		}
		g.q.Uses = append(g.q.Uses, ColumnUse{Column: name, Usage: UseAggregate})
		return name, nil
	}
	one := func() (map[string]any, error) {
		if len(args) != 1 {
			return nil, errcode.At(errcode.UnsupportedSQL, pos(e), "%s takes one column", strings.ToUpper(fn))
		}
		a, _ := args[0].(map[string]any)
		return a, nil
	}
	quantile := func(col map[string]any, rank float64, label string) (Output, error) {
		name, err := bounded(col)
		if err != nil {
			return Output{}, err
		}
		for i, a := range g.q.Aggregates {
			if a.Kind == dp.Quantiles && a.Column == name {
				g.q.Aggregates[i].Ranks = append(a.Ranks, rank)
				return Output{Name: or(alias, label+"_"+name), Key: -1, Aggregate: i, Rank: len(a.Ranks)}, nil
			}
		}
		out := add(Aggregate{Name: label + "_" + name, Kind: dp.Quantiles, Column: name, SQL: quoteIdent(name), Ranks: []float64{rank}})
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
			name, _, err := colArg(a)
			if err != nil {
				return Output{}, err
			}
			if name != g.q.Dataset.PrivacyUnit {
				return Output{}, errcode.At(errcode.UnsupportedSQL, pos(e), "COUNT(DISTINCT ...) is admitted only on the privacy unit %q (a distinct count of another column is not bounded by one unit's rows)", g.q.Dataset.PrivacyUnit)
			}
			g.q.Uses = append(g.q.Uses, ColumnUse{Column: name, Usage: UseDistinctUnits})
			return add(Aggregate{Name: "units", Kind: dp.CountDistinct, Column: name}), nil
		}
		name, c, err := colArg(a)
		if err != nil {
			return Output{}, err
		}
		usage := UseAggregate
		if c.Has(catalog.TagIdentifier) {
			// Counting rows where an identifier is present releases no identifier value.
			usage = UseCountRows
		}
		g.q.Uses = append(g.q.Uses, ColumnUse{Column: name, Usage: usage})
		return add(Aggregate{Name: "count_" + name, Kind: dp.Count, Column: name, SQL: "CASE WHEN " + quoteIdent(name) + " IS NOT NULL THEN 1 END"}), nil
	case "sum", "avg", "mean", "var_samp", "var_pop", "variance", "stddev_samp", "stddev_pop", "stddev":
		a, err := one()
		if err != nil {
			return Output{}, err
		}
		name, err := bounded(a)
		if err != nil {
			return Output{}, err
		}
		kind := map[string]dp.Kind{"sum": dp.Sum, "avg": dp.Mean, "mean": dp.Mean, "var_samp": dp.Variance, "var_pop": dp.Variance,
			"variance": dp.Variance, "stddev_samp": dp.StdDev, "stddev_pop": dp.StdDev, "stddev": dp.StdDev}[fn]
		label := map[dp.Kind]string{dp.Sum: "sum", dp.Mean: "avg", dp.Variance: "var", dp.StdDev: "stddev"}[kind]
		return add(Aggregate{Name: label + "_" + name, Kind: kind, Column: name, SQL: quoteIdent(name)}), nil
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
		var col, q map[string]any
		switch {
		case len(args) == 2 && len(orders) == 0:
			col, _ = args[0].(map[string]any)
			q, _ = args[1].(map[string]any)
		case len(args) == 1 && len(orders) == 1:
			q, _ = args[0].(map[string]any)
			col = obj(orders[0].(map[string]any), "expression")
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
func rankConstant(n map[string]any) (float64, error) {
	if str(n, "class") == "CONSTANT" {
		if text, err := constant(n); err == nil {
			if v, err := strconv.ParseFloat(text, 64); err == nil && v >= 0 && v <= 1 {
				return v, nil
			}
		}
	}
	return 0, errcode.At(errcode.UnsupportedSQL, pos(n), "a quantile rank must be a constant in [0, 1], e.g. QUANTILE_CONT(cost, 0.9)")
}

var comparisons = map[string]string{
	"COMPARE_EQUAL": "=", "COMPARE_NOTEQUAL": "<>", "COMPARE_LESSTHAN": "<", "COMPARE_GREATERTHAN": ">",
	"COMPARE_LESSTHANOREQUALTO": "<=", "COMPARE_GREATERTHANOREQUALTO": ">=",
}

var operators = map[string]string{"~~": "LIKE", "!~~": "NOT LIKE", "~~*": "ILIKE", "!~~*": "NOT ILIKE",
	"+": "+", "-": "-", "*": "*", "/": "/"}

var castTypes = map[string]bool{"DATE": true, "TIMESTAMP": true, "INTEGER": true, "BIGINT": true,
	"DOUBLE": true, "VARCHAR": true, "BOOLEAN": true, "INTERVAL": true}

// scalarFunctions are the deterministic scalar functions admitted in filters and group keys,
// with their argument counts (max −1: any). None reads files, the environment or the clock.
var scalarFunctions = map[string][2]int{
	"floor": {1, 1}, "ceil": {1, 1}, "ceiling": {1, 1}, "round": {1, 2}, "trunc": {1, 1}, "abs": {1, 1},
	"date_trunc": {2, 2}, "date_part": {2, 2}, "year": {1, 1}, "month": {1, 1}, "day": {1, 1},
	"quarter": {1, 1}, "dayofweek": {1, 1}, "isodow": {1, 1}, "hour": {1, 1},
	"to_days": {1, 1}, "to_months": {1, 1}, "to_years": {1, 1}, "to_hours": {1, 1},
	"substr": {2, 3}, "substring": {2, 3}, "left": {2, 2}, "right": {2, 2}, "lower": {1, 1}, "upper": {1, 1},
	"length": {1, 1}, "trim": {1, 1}, "coalesce": {2, -1}, "least": {2, -1}, "greatest": {2, -1},
}

// maxBuckets bounds width_bucket's bucket count (its public domain is enumerated).
const maxBuckets = 1000

// expr admits and renders an expression of a filter (usage UseFilter) or a group key
// (UseGroupKey), recording every column it reads with that usage.
func (g *gater) expr(n map[string]any, usage Usage) (string, error) {
	if n == nil {
		return "", errcode.New(errcode.UnsupportedSQL, "malformed expression")
	}
	render := func(l []any, min, max int) ([]string, error) {
		if len(l) < min || (max >= 0 && len(l) > max) {
			return nil, errcode.At(errcode.UnsupportedSQL, pos(n), "malformed expression")
		}
		var out []string
		for _, c := range l {
			m, _ := c.(map[string]any)
			s, err := g.expr(m, usage)
			if err != nil {
				return nil, err
			}
			out = append(out, s)
		}
		return out, nil
	}
	kids := func(min, max int) ([]string, error) { return render(list(n, "children"), min, max) }
	t := str(n, "type")
	switch str(n, "class") {
	case "COLUMN_REF":
		name, _, err := g.column(n)
		if err != nil {
			return "", err
		}
		g.q.Uses = append(g.q.Uses, ColumnUse{Column: name, Usage: usage})
		return quoteIdent(name), nil
	case "CONSTANT":
		if err := only(n, with("value")...); err != nil {
			return "", err
		}
		return constant(n)
	case "CONJUNCTION":
		if err := only(n, with("children")...); err != nil {
			return "", err
		}
		op := map[string]string{"CONJUNCTION_AND": " AND ", "CONJUNCTION_OR": " OR "}[t]
		if op == "" {
			break
		}
		k, err := kids(2, -1)
		if err != nil {
			return "", err
		}
		return "(" + strings.Join(k, op) + ")", nil
	case "COMPARISON":
		if err := only(n, with("left", "right")...); err != nil {
			return "", err
		}
		op, ok := comparisons[t]
		if !ok {
			break
		}
		k, err := render([]any{obj(n, "left"), obj(n, "right")}, 2, 2)
		if err != nil {
			return "", err
		}
		return "(" + k[0] + " " + op + " " + k[1] + ")", nil
	case "BETWEEN":
		if err := only(n, with("input", "lower", "upper")...); err != nil {
			return "", err
		}
		k, err := render([]any{obj(n, "input"), obj(n, "lower"), obj(n, "upper")}, 3, 3)
		if err != nil {
			return "", err
		}
		return "(" + k[0] + " BETWEEN " + k[1] + " AND " + k[2] + ")", nil
	case "OPERATOR":
		if err := only(n, with("children")...); err != nil {
			return "", err
		}
		switch t {
		case "OPERATOR_NOT":
			k, err := kids(1, 1)
			if err != nil {
				return "", err
			}
			return "(NOT " + k[0] + ")", nil
		case "OPERATOR_IS_NULL", "OPERATOR_IS_NOT_NULL":
			k, err := kids(1, 1)
			if err != nil {
				return "", err
			}
			return "(" + k[0] + map[string]string{"OPERATOR_IS_NULL": " IS NULL)", "OPERATOR_IS_NOT_NULL": " IS NOT NULL)"}[t], nil
		case "COMPARE_IN", "COMPARE_NOT_IN":
			k, err := kids(2, 1000)
			if err != nil {
				return "", err
			}
			op := map[string]string{"COMPARE_IN": " IN (", "COMPARE_NOT_IN": " NOT IN ("}[t]
			return "(" + k[0] + op + strings.Join(k[1:], ", ") + "))", nil
		}
	case "CAST":
		// CAST and TRY_CAST both render as TRY_CAST.
		if err := only(n, with("child", "cast_type", "try_cast")...); err != nil {
			return "", err
		}
		ct := str(obj(n, "cast_type"), "id")
		if !castTypes[ct] || !empty(obj(n, "cast_type")["type_info"]) {
			return "", errcode.At(errcode.UnsupportedSQL, pos(n), "casts are admitted only to DATE, TIMESTAMP, INTEGER, BIGINT, DOUBLE, VARCHAR, BOOLEAN and INTERVAL")
		}
		c, err := g.expr(obj(n, "child"), usage)
		if err != nil {
			return "", err
		}
		// TRY_CAST: a cast that fails on some row must not surface as an error (see sandbox).
		return "TRY_CAST(" + c + " AS " + ct + ")", nil
	case "CASE":
		if err := only(n, with("case_checks", "else_expr")...); err != nil {
			return "", err
		}
		var b strings.Builder
		b.WriteString("(CASE")
		for _, c := range list(n, "case_checks") {
			cc, _ := c.(map[string]any)
			k, err := render([]any{obj(cc, "when_expr"), obj(cc, "then_expr")}, 2, 2)
			if err != nil {
				return "", err
			}
			b.WriteString(" WHEN " + k[0] + " THEN " + k[1])
		}
		if el := obj(n, "else_expr"); el != nil {
			k, err := g.expr(el, usage)
			if err != nil {
				return "", err
			}
			b.WriteString(" ELSE " + k)
		}
		b.WriteString(" END)")
		return b.String(), nil
	case "FUNCTION":
		if err := only(n, with("function_name", "children", "order_bys", "is_operator", "schema")...); err != nil {
			return "", err
		}
		if sc := str(n, "schema"); sc != "" && sc != "main" {
			break
		}
		fn := strings.ToLower(str(n, "function_name"))
		if b, _ := n["is_operator"].(bool); b {
			op, ok := operators[fn]
			if !ok {
				break
			}
			if fn == "-" && len(list(n, "children")) == 1 {
				k, err := kids(1, 1)
				if err != nil {
					return "", err
				}
				return "(-" + k[0] + ")", nil
			}
			k, err := kids(2, 2)
			if err != nil {
				return "", err
			}
			return "(" + k[0] + " " + op + " " + k[1] + ")", nil
		}
		if fn == "width_bucket" {
			return g.widthBucket(n, usage)
		}
		arity, ok := scalarFunctions[fn]
		if !ok {
			break
		}
		k, err := kids(arity[0], arity[1])
		if err != nil {
			return "", err
		}
		return fn + "(" + strings.Join(k, ", ") + ")", nil
	}
	return "", errcode.At(errcode.UnsupportedSQL, pos(n), "this expression is not admitted; filters and group keys use comparisons, IN, BETWEEN, LIKE, IS [NOT] NULL, arithmetic, CASE, casts, AND/OR/NOT and the functions %s over dataset columns and constants", functionList())
}

func functionList() string {
	names := []string{"width_bucket"}
	for f := range scalarFunctions {
		names = append(names, f)
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}

// widthBucket renders width_bucket(x, lo, hi, n) — buckets 1..n of equal width over [lo, hi),
// 0 below and n+1 at or above hi, as in PostgreSQL — in plain SQL (DuckDB has no such
// function); its domain, 0..n+1, is public (staticDomain).
func (g *gater) widthBucket(n map[string]any, usage Usage) (string, error) {
	args := list(n, "children")
	count, ok := bucketCount(args)
	if !ok {
		return "", errcode.At(errcode.UnsupportedSQL, pos(n), "width_bucket(x, low, high, n) needs constant low < high and a constant n in 1..%d", maxBuckets)
	}
	x, err := g.expr(args[0].(map[string]any), usage)
	if err != nil {
		return "", err
	}
	lo, _ := constant(args[1].(map[string]any))
	hi, _ := constant(args[2].(map[string]any))
	return fmt.Sprintf("(CASE WHEN %[1]s IS NULL THEN NULL WHEN %[1]s < %[2]s THEN 0 WHEN %[1]s >= %[3]s THEN %[4]d ELSE CAST(floor((%[1]s - %[2]s) * %[5]d / (%[3]s - %[2]s)) AS BIGINT) + 1 END)",
		x, lo, hi, count+1, count), nil
}

// bucketCount checks width_bucket's constant arguments and returns its bucket count.
func bucketCount(args []any) (int64, bool) {
	if len(args) != 4 {
		return 0, false
	}
	num := func(a any) (float64, bool) {
		m, _ := a.(map[string]any)
		if str(m, "class") != "CONSTANT" {
			return 0, false
		}
		text, err := constant(m)
		if err != nil {
			return 0, false
		}
		v, err := strconv.ParseFloat(text, 64)
		return v, err == nil && !math.IsInf(v, 0) && !math.IsNaN(v)
	}
	lo, ok1 := num(args[1])
	hi, ok2 := num(args[2])
	n, ok3 := num(args[3])
	if !ok1 || !ok2 || !ok3 || !(lo < hi) || n != math.Trunc(n) || n < 1 || n > maxBuckets {
		return 0, false
	}
	return int64(n), true
}

// constant renders a literal; only plain scalar types are admitted.
func constant(n map[string]any) (string, error) {
	v := obj(n, "value")
	if isNull, _ := v["is_null"].(bool); isNull {
		return "NULL", nil
	}
	typ := obj(v, "type")
	switch str(typ, "id") {
	case "VARCHAR":
		s, ok := v["value"].(string)
		if !ok {
			break
		}
		return "'" + strings.ReplaceAll(s, "'", "''") + "'", nil
	case "INTEGER", "BIGINT", "HUGEINT", "DOUBLE", "FLOAT", "UBIGINT":
		num, ok := v["value"].(json.Number)
		if !ok {
			break
		}
		if _, err := num.Float64(); err != nil {
			break
		}
		return num.String(), nil
	case "DECIMAL":
		num, ok := v["value"].(json.Number)
		info := obj(typ, "type_info")
		scale, err := json.Number(fmt.Sprint(info["scale"])).Int64()
		if !ok || err != nil || scale < 0 || scale > 38 {
			break
		}
		if _, err := num.Int64(); err != nil {
			break
		}
		return decimalText(num.String(), int(scale)), nil
	case "BOOLEAN":
		if b, ok := v["value"].(bool); ok {
			return strings.ToUpper(fmt.Sprint(b)), nil
		}
	}
	return "", errcode.At(errcode.UnsupportedSQL, pos(n), "this literal type is not admitted; use numbers, strings, booleans or typed DATE '...' literals")
}

func decimalText(digits string, scale int) string {
	neg := strings.HasPrefix(digits, "-")
	digits = strings.TrimPrefix(digits, "-")
	for len(digits) <= scale {
		digits = "0" + digits
	}
	s := digits
	if scale > 0 {
		s = digits[:len(digits)-scale] + "." + digits[len(digits)-scale:]
	}
	if neg {
		s = "-" + s
	}
	return s
}
