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
)

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
	"length": {1, 1}, "trim": {1, 1}, "least": {2, -1}, "greatest": {2, -1},
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
		c, err := g.resolve(n)
		if err != nil {
			return "", err
		}
		if c.sql == "" {
			return "", errcode.At(errcode.IdentifierInOutput, pos(n), "%s is the privacy unit of the subquery; the outer query can only count it, with COUNT(DISTINCT %s)", c.name, c.name)
		}
		g.use(c, usage)
		return c.sql, nil
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
		if t == "COMPARE_EQUAL" && usage == UseFilter {
			if s, ok, err := g.identifierEquality(false, obj(n, "left"), obj(n, "right")); ok || err != nil {
				return s, err
			}
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
		case "OPERATOR_COALESCE": // DuckDB parses coalesce(...) as an operator
			k, err := kids(2, 100)
			if err != nil {
				return "", err
			}
			// Rendered as CASE: DuckDB's coalesce inside try() returns wrong values for other
			// rows of a vector in which one row fails (try re-evaluates it row by row), which
			// would move rows between groups depending on another row's failure.
			var b strings.Builder
			b.WriteString("(CASE")
			for _, a := range k[:len(k)-1] {
				b.WriteString(" WHEN (" + a + " IS NOT NULL) THEN " + a)
			}
			b.WriteString(" ELSE " + k[len(k)-1] + " END)")
			return b.String(), nil
		case "OPERATOR_IS_NULL", "OPERATOR_IS_NOT_NULL":
			k, err := kids(1, 1)
			if err != nil {
				return "", err
			}
			return "(" + k[0] + map[string]string{"OPERATOR_IS_NULL": " IS NULL)", "OPERATOR_IS_NOT_NULL": " IS NOT NULL)"}[t], nil
		case "COMPARE_IN", "COMPARE_NOT_IN":
			if ch := list(n, "children"); t == "COMPARE_IN" && usage == UseFilter && len(ch) >= 2 && len(ch) <= 1000 {
				col, _ := ch[0].(map[string]any)
				if s, ok, err := g.identifierEquality(true, col, ch[1:]...); ok || err != nil {
					return s, err
				}
			}
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

// identifierEquality renders col = constant or col IN (constants) when col is an identifier,
// recording the use as UseFilterEquality: the one filter on an identifier the operator's
// policy may allow. ok is false when the comparison is not of that form.
func (g *gater) identifierEquality(in bool, col map[string]any, values ...any) (string, bool, error) {
	if str(col, "class") != "COLUMN_REF" {
		if in {
			return "", false, nil
		}
		other, _ := values[0].(map[string]any)
		col, values = other, []any{col} // constant = column
	}
	if str(col, "class") != "COLUMN_REF" {
		return "", false, nil
	}
	lits := make([]string, len(values))
	for i, v := range values {
		m, _ := v.(map[string]any)
		if str(m, "class") != "CONSTANT" {
			return "", false, nil
		}
		lit, err := constant(m)
		if err != nil {
			return "", false, err
		}
		lits[i] = lit
	}
	mark := len(g.touched)
	c, err := g.resolve(col)
	if err != nil {
		return "", false, err
	}
	if !c.meta.Has(catalog.TagIdentifier) || c.sql == "" {
		g.touched = g.touched[:mark]
		return "", false, nil
	}
	g.use(c, UseFilterEquality)
	if !in {
		return "(" + c.sql + " = " + lits[0] + ")", true, nil
	}
	return "(" + c.sql + " IN (" + strings.Join(lits, ", ") + "))", true, nil
}

func functionList() string {
	names := []string{"width_bucket", "coalesce"}
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
