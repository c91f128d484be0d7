package gate

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/c1b99f93/cleanroom/catalog"
	"github.com/c1b99f93/cleanroom/errcode"
	"github.com/c1b99f93/cleanroom/sandbox/wire"
)

var comparisons = map[string]string{
	"COMPARE_EQUAL": "=", "COMPARE_NOTEQUAL": "<>", "COMPARE_LESSTHAN": "<", "COMPARE_GREATERTHAN": ">",
	"COMPARE_LESSTHANOREQUALTO": "<=", "COMPARE_GREATERTHANOREQUALTO": ">=",
}

// likeOperators maps DuckDB's LIKE operators to (case-insensitive, negated).
var likeOperators = map[string][2]bool{"~~": {false, false}, "!~~": {false, true}, "~~*": {true, false}, "!~~*": {true, true}}

// scalarFunctions are the deterministic scalar functions admitted in filters and group keys,
// with their argument counts: the IR's closed list.
var scalarFunctions = wire.Functions

// maxBuckets bounds width_bucket's bucket count (its public domain is enumerated).
const maxBuckets = wire.MaxBuckets

// expr admits an expression of a filter (usage UseFilter) or a group key (UseGroupKey) and
// builds its IR, recording every column it reads with that usage.
func (g *gater) expr(n *node, usage Usage) (*wire.Expr, error) {
	if !n.present() {
		return nil, errcode.New(errcode.UnsupportedSQL, "malformed expression")
	}
	render := func(l []*node, min, max int) ([]*wire.Expr, error) {
		if len(l) < min || (max >= 0 && len(l) > max) {
			return nil, errcode.At(errcode.UnsupportedSQL, pos(n), "malformed expression")
		}
		var out []*wire.Expr
		for _, c := range l {
			s, err := g.expr(c, usage)
			if err != nil {
				return nil, err
			}
			out = append(out, s)
		}
		return out, nil
	}
	kids := func(min, max int) ([]*wire.Expr, error) { return render(n.Children, min, max) }
	t := n.Type
	switch n.Class {
	case "COLUMN_REF":
		c, err := g.resolve(n)
		if err != nil {
			return nil, err
		}
		if c.col == nil {
			return nil, errcode.At(errcode.IdentifierInOutput, pos(n), "%s is the privacy unit of the subquery; the outer query can only count it, with COUNT(DISTINCT %s)", c.name, c.name)
		}
		g.use(c, usage)
		return c.col, nil
	case "CONSTANT":
		if err := only(n, with("value")...); err != nil {
			return nil, err
		}
		return constant(n)
	case "CONJUNCTION":
		if err := only(n, with("children")...); err != nil {
			return nil, err
		}
		op := map[string]string{"CONJUNCTION_AND": "and", "CONJUNCTION_OR": "or"}[t]
		if op == "" {
			break
		}
		k, err := kids(2, -1)
		if err != nil {
			return nil, err
		}
		return &wire.Expr{Kind: wire.KindLogic, Op: op, Args: k}, nil
	case "COMPARISON":
		if err := only(n, with("left", "right")...); err != nil {
			return nil, err
		}
		op, ok := comparisons[t]
		if !ok {
			break
		}
		if t == "COMPARE_EQUAL" && usage == UseFilter {
			if e, ok, err := g.identifierEquality(false, n.Left, n.Right); ok || err != nil {
				return e, err
			}
		}
		k, err := render([]*node{n.Left, n.Right}, 2, 2)
		if err != nil {
			return nil, err
		}
		return wire.Compare(op, k[0], k[1]), nil
	case "BETWEEN":
		if err := only(n, with("input", "lower", "upper")...); err != nil {
			return nil, err
		}
		k, err := render([]*node{n.Input, n.Lower, n.Upper}, 3, 3)
		if err != nil {
			return nil, err
		}
		return wire.Between(k[0], k[1], k[2]), nil
	case "OPERATOR":
		if err := only(n, with("children")...); err != nil {
			return nil, err
		}
		switch t {
		case "OPERATOR_NOT":
			k, err := kids(1, 1)
			if err != nil {
				return nil, err
			}
			return wire.Not(k[0]), nil
		case "OPERATOR_COALESCE": // DuckDB parses coalesce(...) as an operator
			k, err := kids(2, 100)
			if err != nil {
				return nil, err
			}
			return wire.Func("coalesce", k...), nil
		case "OPERATOR_IS_NULL", "OPERATOR_IS_NOT_NULL":
			k, err := kids(1, 1)
			if err != nil {
				return nil, err
			}
			return wire.IsNull(k[0], t == "OPERATOR_IS_NOT_NULL"), nil
		case "COMPARE_IN", "COMPARE_NOT_IN":
			if ch := n.Children; t == "COMPARE_IN" && usage == UseFilter && len(ch) >= 2 && len(ch) <= wire.MaxInItems {
				if e, ok, err := g.identifierEquality(true, ch[0], ch[1:]...); ok || err != nil {
					return e, err
				}
			}
			k, err := kids(2, wire.MaxInItems)
			if err != nil {
				return nil, err
			}
			return wire.In(k[0], t == "COMPARE_NOT_IN", k[1:]...), nil
		}
	case "CAST":
		// CAST and TRY_CAST both become a cast the worker renders as TRY_CAST.
		if err := only(n, with("child", "cast_type", "try_cast")...); err != nil {
			return nil, err
		}
		ct := n.CastType.ID
		if !wire.CastTypes[ct] || n.CastType.set["type_info"] {
			return nil, errcode.At(errcode.UnsupportedSQL, pos(n), "casts are admitted only to DATE, TIMESTAMP, INTEGER, BIGINT, DOUBLE, VARCHAR, BOOLEAN and INTERVAL")
		}
		c, err := g.expr(n.Child, usage)
		if err != nil {
			return nil, err
		}
		return wire.Cast(c, ct), nil
	case "CASE":
		if err := only(n, with("case_checks", "else_expr")...); err != nil {
			return nil, err
		}
		e := &wire.Expr{Kind: wire.KindCase}
		for _, cc := range n.CaseChecks {
			k, err := render([]*node{cc.WhenExpr, cc.ThenExpr}, 2, 2)
			if err != nil {
				return nil, err
			}
			e.Args = append(e.Args, k...)
		}
		if len(e.Args) == 0 {
			return nil, errcode.At(errcode.UnsupportedSQL, pos(n), "malformed expression")
		}
		if el := n.ElseExpr; el.present() {
			k, err := g.expr(el, usage)
			if err != nil {
				return nil, err
			}
			e.Else = k
		}
		return e, nil
	case "FUNCTION":
		if err := only(n, with("function_name", "children", "order_bys", "is_operator", "schema")...); err != nil {
			return nil, err
		}
		if sc := n.Schema; sc != "" && sc != "main" {
			break
		}
		fn := strings.ToLower(n.FunctionName)
		if n.IsOperator {
			if fn == "-" && len(n.Children) == 1 {
				k, err := kids(1, 1)
				if err != nil {
					return nil, err
				}
				return wire.Neg(k[0]), nil
			}
			like, isLike := likeOperators[fn]
			if !isLike && !wire.ArithOps[fn] {
				break
			}
			k, err := kids(2, 2)
			if err != nil {
				return nil, err
			}
			if isLike {
				return wire.Like(k[0], k[1], like[0], like[1]), nil
			}
			return wire.Arith(fn, k[0], k[1]), nil
		}
		if fn == "width_bucket" {
			return g.widthBucket(n, usage)
		}
		arity, ok := scalarFunctions[fn]
		if !ok {
			if aggregateFunctions[fn] {
				return nil, errcode.At(errcode.UnsupportedSQL, pos(n), "an aggregate is admitted only as a select item of its own, not inside an expression, WHERE or GROUP BY (groups too small to release are withheld without a HAVING)")
			}
			if s := Suggest(fn, functionNames()); s != "" {
				return nil, errcode.At(errcode.UnsupportedSQL, pos(n), "function %q is not admitted; did you mean %s?", fn, s)
			}
			return nil, errcode.At(errcode.UnsupportedSQL, pos(n), "function %q is not admitted in filters and group keys; the admitted functions are %s", fn, functionList())
		}
		k, err := kids(arity[0], arity[1])
		if err != nil {
			return nil, err
		}
		return wire.Func(fn, k...), nil
	}
	if n.Class == "SUBQUERY" {
		return nil, errcode.At(errcode.UnsupportedSQL, pos(n), "a subquery is not admitted in a filter or group key (it would read rows the bounds do not cover); run it as a query of its own and write its released value here as a constant")
	}
	return nil, errcode.At(errcode.UnsupportedSQL, pos(n), "this expression is not admitted; filters and group keys use comparisons, IN, BETWEEN, LIKE, IS [NOT] NULL, arithmetic, CASE, casts, AND/OR/NOT and the functions %s over dataset columns and constants", functionList())
}

// identifierEquality builds col = constant or col IN (constants) when col is an identifier,
// recording the use as UseFilterEquality: the one filter on an identifier the operator's
// policy may allow. ok is false when the comparison is not of that form.
func (g *gater) identifierEquality(in bool, col *node, values ...*node) (*wire.Expr, bool, error) {
	if col.Class != "COLUMN_REF" {
		if in {
			return nil, false, nil
		}
		col, values = values[0], []*node{col} // constant = column
	}
	if col.Class != "COLUMN_REF" {
		return nil, false, nil
	}
	lits := make([]*wire.Expr, len(values))
	for i, m := range values {
		if m.Class != "CONSTANT" {
			return nil, false, nil
		}
		lit, err := constant(m)
		if err != nil {
			return nil, false, err
		}
		lits[i] = lit
	}
	mark := len(g.touched)
	c, err := g.resolve(col)
	if err != nil {
		return nil, false, err
	}
	if !c.meta.Has(catalog.TagIdentifier) || c.col == nil {
		g.touched = g.touched[:mark]
		return nil, false, nil
	}
	g.use(c, UseFilterEquality)
	if !in {
		return wire.Compare("=", c.col, lits[0]), true, nil
	}
	return wire.In(c.col, false, lits...), true, nil
}

func functionList() string {
	names := []string{"width_bucket", "coalesce"}
	for f := range scalarFunctions {
		names = append(names, f)
	}
	slices.Sort(names)
	return strings.Join(slices.Compact(names), ", ")
}

// widthBucket admits width_bucket(x, lo, hi, n) — buckets 1..n of equal width over [lo, hi),
// 0 below and n+1 at or above hi, as in PostgreSQL; the worker renders it in plain SQL (DuckDB
// has no such function). Its domain, 0..n+1, is public (staticDomain).
func (g *gater) widthBucket(n *node, usage Usage) (*wire.Expr, error) {
	args := n.Children
	count, ok := bucketCount(args)
	if !ok {
		return nil, errcode.At(errcode.UnsupportedSQL, pos(n), "width_bucket(x, low, high, n) needs constant low < high and a constant n in 1..%d", maxBuckets)
	}
	x, err := g.expr(args[0], usage)
	if err != nil {
		return nil, err
	}
	lo, _ := constant(args[1])
	hi, _ := constant(args[2])
	return wire.WidthBucket(x, lo, hi, count), nil
}

// bucketCount checks width_bucket's constant arguments and returns its bucket count.
func bucketCount(args []*node) (int64, bool) {
	if len(args) != 4 {
		return 0, false
	}
	num := func(m *node) (float64, bool) {
		if m.Class != "CONSTANT" {
			return 0, false
		}
		v, err := numberOf(m)
		return v, err == nil
	}
	lo, ok1 := num(args[1])
	hi, ok2 := num(args[2])
	n, ok3 := num(args[3])
	if !ok1 || !ok2 || !ok3 || !(lo < hi) || n != math.Trunc(n) || n < 1 || n > maxBuckets {
		return 0, false
	}
	return int64(n), true
}

// numberOf reads a numeric constant's value.
func numberOf(n *node) (float64, error) {
	c, err := constant(n)
	if err != nil {
		return 0, err
	}
	if c.Type != wire.TypeNumber {
		return 0, errcode.At(errcode.UnsupportedSQL, pos(n), "a numeric constant is expected here")
	}
	v, err := strconv.ParseFloat(c.Value, 64)
	if err != nil || math.IsInf(v, 0) || math.IsNaN(v) {
		return 0, errcode.At(errcode.UnsupportedSQL, pos(n), "a finite numeric constant is expected here")
	}
	return v, nil
}

// constant admits a literal; only plain scalar types are.
func constant(n *node) (*wire.Expr, error) {
	v := n.ValueNode
	if v.IsNull {
		return wire.Null(), nil
	}
	typ := v.TypeNode
	switch typ.ID {
	case "VARCHAR":
		s, ok := v.Scalar.(string)
		if !ok {
			break
		}
		return wire.Str(s), nil
	case "INTEGER", "BIGINT", "HUGEINT", "DOUBLE", "FLOAT", "UBIGINT":
		num, ok := v.Scalar.(json.Number)
		if !ok {
			break
		}
		if _, err := num.Float64(); err != nil || !wire.ValidNumber(num.String()) {
			break
		}
		return wire.Num(num.String()), nil
	case "DECIMAL":
		num, ok := v.Scalar.(json.Number)
		scale, err := json.Number(fmt.Sprint(typ.TypeInfo.Scale)).Int64()
		if !ok || err != nil || scale < 0 || scale > 38 {
			break
		}
		if _, err := num.Int64(); err != nil {
			break
		}
		return wire.Num(decimalText(num.String(), int(scale))), nil
	case "BOOLEAN":
		if b, ok := v.Scalar.(bool); ok {
			return wire.Bool(b), nil
		}
	}
	return nil, errcode.At(errcode.UnsupportedSQL, pos(n), "this literal type is not admitted; use numbers, strings, booleans or typed DATE '...' literals")
}

// constantText is a constant's value as a released key shows it: a text's value itself, a
// number's digits, TRUE or FALSE.
func constantText(c *wire.Expr) string {
	if c.Type == wire.TypeBoolean {
		return strings.ToUpper(c.Value)
	}
	return c.Value
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
