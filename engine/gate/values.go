package gate

import (
	"math"
	"slices"
	"strings"

	"github.com/c1b99f93/cleanroom/catalog"
	"github.com/c1b99f93/cleanroom/sandbox/wire"
)

// Aggregates of expressions. An aggregate's argument may be an expression over row-level
// columns — AVG(CASE WHEN diagnosis LIKE 'I%' THEN 1 ELSE 0 END), SUM(CASE WHEN inpatient THEN
// cost ELSE 0 END), SUM(CAST(cost > 1000 AS INTEGER)) — which the worker evaluates per row
// (rendered by sqlgen, total under try()) and clamps to bounds inferred here from the SQL and
// the catalog: a number is its own bound, a bounded column its catalog bounds, a CASE the union
// of its results' bounds, a condition (or a cast of one) [0, 1], arithmetic by interval
// arithmetic. The clamp, not the inference, is what bounds a unit's contribution: a bound that
// is too wide only adds noise. Without bounds, SUM, AVG, variances and quantiles are refused
// (missing_bounds); COUNT(expr) needs none.

// valueArg admits an expression as an aggregate's argument and returns it as a column-like
// entry: its IR, the catalog columns it reads and its inferred bounds (none when unknown).
func (g *gater) valueArg(a *node) (*entry, error) {
	g.touched = nil
	value, err := g.expr(a, UseAggregate)
	if err != nil {
		return nil, err
	}
	if err := g.noIdentifier(pos(a), "be aggregated (count units with COUNT(DISTINCT …))"); err != nil {
		return nil, err
	}
	e := &entry{name: "expr", col: value, expr: true, meta: catalog.Column{Tags: []catalog.Tag{catalog.TagSensitive}}}
	for _, t := range g.touched {
		if t.outer[0] || t.outer[1] {
			// An expression over a per-unit value whose bounds are the worst case: tighten both
			// sides (the inferred bounds are no clamp the query wrote).
			e.outer = [2]bool{true, true}
		}
		for _, r := range t.from {
			if !slices.Contains(e.from, r) {
				e.from = append(e.from, r)
			}
		}
	}
	if isCondition(a) {
		// A condition counts 1 where it holds and 0 where it does not (NULL stays NULL).
		e.col = wire.Case(nil, value, wire.Num("1"), wire.Not(value), wire.Num("0"))
		e.meta.Bounds = []float64{0, 1}
		e.outer = [2]bool{} // [0, 1] is no worst case
		return e, nil
	}
	if lo, hi, ok := g.bounds(a); ok {
		if lo == hi {
			hi = lo + 1 // a constant: any interval around it clamps nothing
		}
		e.meta.Bounds = []float64{lo, hi}
	}
	return e, nil
}

// isCondition reports whether an expression is a boolean condition.
func isCondition(n *node) bool {
	switch n.Class {
	case "COMPARISON", "CONJUNCTION", "BETWEEN":
		return true
	case "OPERATOR":
		return booleanOperatorTypes[n.Type]
	case "FUNCTION":
		_, like := likeOperators[strings.ToLower(n.FunctionName)]
		return n.IsOperator && like
	}
	return false
}

// bounds infers [lo, hi] for the values of a numeric expression; a NULL result is no value
// and bounds nothing. ok is false when the SQL and the catalog do not bound it.
func (g *gater) bounds(n *node) (lo, hi float64, ok bool) {
	none := func() (float64, float64, bool) { return 0, 0, false }
	switch n.Class {
	case "CONSTANT":
		v, err := numberOf(n)
		if err != nil {
			return none()
		}
		return v, v, true
	case "COLUMN_REF":
		mark := len(g.touched)
		c, err := g.resolve(n)
		g.touched = g.touched[:mark]
		if err != nil || !c.meta.HasBounds() {
			return none()
		}
		return c.meta.Lower(), c.meta.Upper(), true
	case "CASE":
		lo, hi = math.Inf(1), math.Inf(-1)
		branch := func(b *node) bool {
			if b.Class == "CONSTANT" && b.ValueNode.IsNull {
				return true
			}
			l, h, ok := g.bounds(b)
			lo, hi = math.Min(lo, l), math.Max(hi, h)
			return ok
		}
		for _, cc := range n.CaseChecks {
			if !branch(cc.ThenExpr) {
				return none()
			}
		}
		if el := n.ElseExpr; el.present() && !branch(el) {
			return none()
		}
		return lo, hi, lo <= hi
	case "CAST":
		switch n.CastType.ID {
		case "INTEGER", "BIGINT", "DOUBLE", "FLOAT":
		default:
			return none()
		}
		if isCondition(n.Child) || g.booleanColumn(n.Child) {
			return 0, 1, true
		}
		lo, hi, ok := g.bounds(n.Child)
		return math.Floor(lo), math.Ceil(hi), ok
	case "OPERATOR":
		if n.Type == "OPERATOR_COALESCE" {
			lo, hi = math.Inf(1), math.Inf(-1)
			for _, c := range n.Children {
				l, h, ok := g.bounds(c)
				if !ok {
					return none()
				}
				lo, hi = math.Min(lo, l), math.Max(hi, h)
			}
			return lo, hi, true
		}
	case "FUNCTION":
		fn := strings.ToLower(n.FunctionName)
		if !n.IsOperator {
			break
		}
		if fn == "-" && len(n.Children) == 1 {
			l, h, ok := g.bounds(n.Children[0])
			return -h, -l, ok
		}
		if len(n.Children) != 2 {
			break
		}
		al, ah, ok1 := g.bounds(n.Children[0])
		bl, bh, ok2 := g.bounds(n.Children[1])
		if !ok1 || !ok2 {
			return none()
		}
		var vs []float64
		switch fn {
		case "+":
			return al + bl, ah + bh, true
		case "-":
			return al - bh, ah - bl, true
		case "*":
			vs = []float64{al * bl, al * bh, ah * bl, ah * bh}
		case "/":
			if bl <= 0 && bh >= 0 {
				return none()
			}
			vs = []float64{al / bl, al / bh, ah / bl, ah / bh}
		default:
			return none()
		}
		lo, hi = slices.Min(vs), slices.Max(vs)
		if math.IsNaN(lo) || math.IsNaN(hi) || math.IsInf(lo, 0) || math.IsInf(hi, 0) {
			return none()
		}
		return lo, hi, true
	}
	return none()
}

// booleanColumn reports whether n names a column whose catalog domain is true and false.
func (g *gater) booleanColumn(n *node) bool {
	if n.Class != "COLUMN_REF" {
		return false
	}
	mark := len(g.touched)
	c, err := g.resolve(n)
	g.touched = g.touched[:mark]
	if err != nil || len(c.meta.Domain) == 0 {
		return false
	}
	for _, v := range c.meta.Domain {
		if l := strings.ToLower(v); l != "true" && l != "false" {
			return false
		}
	}
	return true
}
