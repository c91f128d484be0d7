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
)

// ColumnUse records one use of a catalog column.
type ColumnUse struct {
	Column string
	Usage  Usage
}

// Key is a group key: a catalog column, rendered.
type Key struct {
	Name   string // output column name
	Column string // catalog column
	SQL    string
}

// Aggregate is one admitted aggregate.
type Aggregate struct {
	Name   string // output column name
	Kind   dp.Kind
	Column string // the summed column (Sum) or the privacy unit (CountDistinct)
	SQL    string // rendered value expression (Sum)
}

// Output is one column of the result, in SELECT order.
type Output struct {
	Name      string
	Key       int // index into Keys, or -1
	Aggregate int // index into Aggregates, or -1
}

// Query is an admitted query: one dataset, group keys, a filter and DP aggregates.
type Query struct {
	Dataset    *catalog.Spec
	Keys       []Key
	Aggregates []Aggregate
	Outputs    []Output
	Filter     string // rendered boolean expression, or ""
	Uses       []ColumnUse
}

const allowedHint = "admitted: SELECT <group columns>, COUNT(*), COUNT(DISTINCT <privacy unit>), SUM(<bounded column>) FROM <dataset> [WHERE <comparisons, IN, BETWEEN, LIKE, IS NULL, AND/OR/NOT>] [GROUP BY <columns>]"

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
	if err := only(n, "type", "select_list", "from_table", "where_clause", "group_expressions", "group_sets", "aggregate_handling"); err != nil {
		return nil, err
	}
	if h := str(n, "aggregate_handling"); h != "STANDARD_HANDLING" {
		return nil, errcode.At(errcode.UnsupportedSQL, pos(n), "GROUP BY ALL and SELECT DISTINCT are not admitted; name the group columns")
	}
	if err := g.from(obj(n, "from_table")); err != nil {
		return nil, err
	}
	groups := list(n, "group_expressions")
	sets := list(n, "group_sets")
	if len(groups) > 0 && (len(sets) != 1 || len(asList(sets[0])) != len(groups)) {
		return nil, errcode.At(errcode.UnsupportedSQL, pos(n), "GROUPING SETS, ROLLUP and CUBE are not admitted")
	}
	for _, ge := range groups {
		e, _ := ge.(map[string]any)
		if err := g.groupKey(e); err != nil {
			return nil, err
		}
	}
	if w := obj(n, "where_clause"); w != nil {
		f, err := g.expr(w)
		if err != nil {
			return nil, err
		}
		g.q.Filter = f
	}
	sel := list(n, "select_list")
	if len(sel) == 0 {
		return nil, errcode.At(errcode.UnsupportedSQL, pos(n), "the select list is empty; %s", allowedHint)
	}
	used := map[string]bool{}
	for _, it := range sel {
		e, _ := it.(map[string]any)
		out, err := g.selectItem(e)
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
		} else {
			g.q.Aggregates[out.Aggregate].Name = out.Name
		}
		g.q.Outputs = append(g.q.Outputs, out)
	}
	if len(g.q.Aggregates) == 0 {
		return nil, errcode.At(errcode.UnsupportedSQL, pos(n), "a job must compute at least one aggregate; %s", allowedHint)
	}
	for i, k := range g.q.Keys {
		if k.Name == "" {
			return nil, errcode.New(errcode.UnsupportedSQL, "group column %d is not in the select list; select every group column", i+1)
		}
	}
	return &g.q, nil
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

func (g *gater) groupKey(e map[string]any) error {
	if str(e, "class") != "COLUMN_REF" {
		return errcode.At(errcode.UnsupportedSQL, pos(e), "group keys must be dataset columns (derived bins come in a later version)")
	}
	name, c, err := g.column(e)
	if err != nil {
		return err
	}
	if c.Has(catalog.TagIdentifier) {
		return errcode.At(errcode.IdentifierInOutput, pos(e), "column %q is an identifier and cannot be a group key", name)
	}
	g.q.Keys = append(g.q.Keys, Key{Column: name, SQL: quoteIdent(name)})
	g.q.Uses = append(g.q.Uses, ColumnUse{Column: name, Usage: UseGroupKey})
	return nil
}

func (g *gater) selectItem(e map[string]any) (Output, error) {
	alias := str(e, "alias")
	switch str(e, "class") {
	case "COLUMN_REF":
		name, c, err := g.column(e)
		if err != nil {
			return Output{}, err
		}
		if c.Has(catalog.TagIdentifier) {
			return Output{}, errcode.At(errcode.IdentifierInOutput, pos(e), "column %q is an identifier and can never be selected; aggregate instead (COUNT(DISTINCT %s) counts units)", name, g.q.Dataset.PrivacyUnit)
		}
		for i, k := range g.q.Keys {
			if k.Column == name {
				return Output{Name: or(alias, name), Key: i, Aggregate: -1}, nil
			}
		}
		return Output{}, errcode.At("raw_column_in_output", pos(e), "column %q would release row-level values; group by it or aggregate it", name)
	case "STAR":
		return Output{}, errcode.At(errcode.IdentifierInOutput, pos(e), "SELECT * would release raw rows and identifiers; select group columns and aggregates")
	case "FUNCTION":
		return g.aggregate(e, alias)
	}
	return Output{}, errcode.At(errcode.UnsupportedSQL, pos(e), "this select item is not admitted; %s", allowedHint)
}

func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func (g *gater) aggregate(e map[string]any, alias string) (Output, error) {
	if err := only(e, with("function_name", "children", "order_bys", "distinct", "is_operator")...); err != nil {
		return Output{}, err
	}
	if !empty(obj(e, "order_bys")["orders"]) {
		return Output{}, errcode.At(errcode.UnsupportedSQL, pos(e), "ordered aggregates are not admitted")
	}
	fn := strings.ToLower(str(e, "function_name"))
	args := list(e, "children")
	distinct, _ := e["distinct"].(bool)
	add := func(a Aggregate) Output {
		g.q.Aggregates = append(g.q.Aggregates, a)
		return Output{Name: or(alias, a.Name), Key: -1, Aggregate: len(g.q.Aggregates) - 1}
	}
	arg := func() (string, catalog.Column, error) {
		if len(args) != 1 {
			return "", catalog.Column{}, errcode.At(errcode.UnsupportedSQL, pos(e), "%s takes one column", strings.ToUpper(fn))
		}
		a, _ := args[0].(map[string]any)
		if str(a, "class") != "COLUMN_REF" {
			return "", catalog.Column{}, errcode.At(errcode.UnsupportedSQL, pos(a), "aggregate arguments must be dataset columns")
		}
		return g.column(a)
	}
	switch {
	case fn == "count_star" && !distinct && len(args) == 0:
		return add(Aggregate{Name: "count", Kind: dp.Count}), nil
	case fn == "count" && distinct:
		name, _, err := arg()
		if err != nil {
			return Output{}, err
		}
		if name != g.q.Dataset.PrivacyUnit {
			return Output{}, errcode.At(errcode.UnsupportedSQL, pos(e), "COUNT(DISTINCT ...) is admitted only on the privacy unit %q", g.q.Dataset.PrivacyUnit)
		}
		g.q.Uses = append(g.q.Uses, ColumnUse{Column: name, Usage: UseDistinctUnits})
		return add(Aggregate{Name: "units", Kind: dp.CountDistinct, Column: name}), nil
	case fn == "sum" && !distinct:
		name, c, err := arg()
		if err != nil {
			return Output{}, err
		}
		if c.Has(catalog.TagIdentifier) {
			return Output{}, errcode.At(errcode.IdentifierInOutput, pos(e), "column %q is an identifier and cannot be aggregated", name)
		}
		if !c.HasBounds() {
			return Output{}, errcode.At(errcode.MissingBounds, pos(e), "column %q has no public bounds in the catalog, so its sum cannot be bounded", name)
		}
		g.q.Uses = append(g.q.Uses, ColumnUse{Column: name, Usage: UseAggregate})
		return add(Aggregate{Name: "sum_" + name, Kind: dp.Sum, Column: name, SQL: quoteIdent(name)}), nil
	case fn == "count":
		return Output{}, errcode.At(errcode.UnsupportedSQL, pos(e), "COUNT(column) is not admitted yet; use COUNT(*) with a WHERE column IS NOT NULL")
	}
	return Output{}, errcode.At(errcode.UnsupportedSQL, pos(e), "function %q is not admitted here; %s", fn, allowedHint)
}

var comparisons = map[string]string{
	"COMPARE_EQUAL": "=", "COMPARE_NOTEQUAL": "<>", "COMPARE_LESSTHAN": "<", "COMPARE_GREATERTHAN": ">",
	"COMPARE_LESSTHANOREQUALTO": "<=", "COMPARE_GREATERTHANOREQUALTO": ">=",
}

var operators = map[string]string{"~~": "LIKE", "!~~": "NOT LIKE", "~~*": "ILIKE", "!~~*": "NOT ILIKE",
	"+": "+", "-": "-", "*": "*", "/": "/"}

var castTypes = map[string]bool{"DATE": true, "TIMESTAMP": true, "INTEGER": true, "BIGINT": true,
	"DOUBLE": true, "VARCHAR": true, "BOOLEAN": true}

// expr admits and renders a filter expression.
func (g *gater) expr(n map[string]any) (string, error) {
	if n == nil {
		return "", errcode.New(errcode.UnsupportedSQL, "malformed expression")
	}
	kids := func(min, max int) ([]string, error) {
		var out []string
		l := list(n, "children")
		if len(l) < min || (max >= 0 && len(l) > max) {
			return nil, errcode.At(errcode.UnsupportedSQL, pos(n), "malformed expression")
		}
		for _, c := range l {
			m, _ := c.(map[string]any)
			s, err := g.expr(m)
			if err != nil {
				return nil, err
			}
			out = append(out, s)
		}
		return out, nil
	}
	t := str(n, "type")
	switch str(n, "class") {
	case "COLUMN_REF":
		name, _, err := g.column(n)
		if err != nil {
			return "", err
		}
		g.q.Uses = append(g.q.Uses, ColumnUse{Column: name, Usage: UseFilter})
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
		l, err := g.expr(obj(n, "left"))
		if err != nil {
			return "", err
		}
		r, err := g.expr(obj(n, "right"))
		if err != nil {
			return "", err
		}
		return "(" + l + " " + op + " " + r + ")", nil
	case "BETWEEN":
		if err := only(n, with("input", "lower", "upper")...); err != nil {
			return "", err
		}
		parts := make([]string, 3)
		for i, k := range []string{"input", "lower", "upper"} {
			s, err := g.expr(obj(n, k))
			if err != nil {
				return "", err
			}
			parts[i] = s
		}
		return "(" + parts[0] + " BETWEEN " + parts[1] + " AND " + parts[2] + ")", nil
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
			return "", errcode.At(errcode.UnsupportedSQL, pos(n), "casts are admitted only to DATE, TIMESTAMP, INTEGER, BIGINT, DOUBLE, VARCHAR and BOOLEAN")
		}
		c, err := g.expr(obj(n, "child"))
		if err != nil {
			return "", err
		}
		// TRY_CAST: a cast that fails on some row must not surface as an error (see sandbox).
		return "TRY_CAST(" + c + " AS " + ct + ")", nil
	case "FUNCTION":
		if err := only(n, with("function_name", "children", "order_bys", "is_operator")...); err != nil {
			return "", err
		}
		op, ok := operators[str(n, "function_name")]
		if b, _ := n["is_operator"].(bool); !ok || !b {
			break
		}
		k, err := kids(2, 2)
		if err != nil {
			return "", err
		}
		return "(" + k[0] + " " + op + " " + k[1] + ")", nil
	}
	return "", errcode.At(errcode.UnsupportedSQL, pos(n), "this expression is not admitted in WHERE; use comparisons, IN, BETWEEN, LIKE, IS [NOT] NULL, arithmetic and AND/OR/NOT over dataset columns and constants")
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
