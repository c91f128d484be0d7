package gate

import (
	"slices"
	"strings"

	"github.com/c1b99f93/cleanroom/errcode"
	"github.com/c1b99f93/cleanroom/policy/screen"
)

// What the query writes into its output.
//
// Some strings of a released result are chosen by the applicant, not by the data: every
// column name (an alias, or a name derived from the query's own names: "count_" + a
// subquery's alias), and the group-key values the query writes itself — a literal in a value
// position (a CASE's THEN or ELSE result, a LEAST or GREATEST argument, a per-unit
// clamp), or a value computed with one (an arithmetic or a function of it). A check of such a
// string against the raw data would be a membership oracle: denied versus released would say
// whether some raw record holds the string. So the gate checks them here, from the SQL alone,
// and marks the keys whose values the query may write (Key.Written); the output screen
// looks up in the raw-value set only the keys whose values come from the data
// (screen.OriginData).
//
// A literal in a parameter position does not reach the output: the start and length of
// substr, the digits of round, the part of date_trunc, the bounds of width_bucket; nor does
// one in a condition (a CASE's WHEN, a comparison, LIKE, IN, BETWEEN), whose result is a
// boolean or selects a branch.

// parameterArgs lists, per function, the arguments that are parameters rather than values.
var parameterArgs = map[string][]int{
	"substr": {1, 2}, "substring": {1, 2}, "left": {1}, "right": {1}, "round": {1},
	"date_trunc": {0}, "date_part": {0}, "width_bucket": {1, 2, 3},
}

// booleanOperatorTypes are the OPERATOR nodes whose result is a boolean.
var booleanOperatorTypes = map[string]bool{"OPERATOR_NOT": true, "OPERATOR_IS_NULL": true, "OPERATOR_IS_NOT_NULL": true,
	"COMPARE_IN": true, "COMPARE_NOT_IN": true}

// booleanOperators are the operator functions whose result is a boolean.
var booleanOperators = map[string]bool{"~~": true, "!~~": true, "~~*": true, "!~~*": true}

// checkWritten runs after the query is admitted: it marks the keys whose values the query may
// write (Key.Written) and refuses, with identifier_in_query and the position, an output name
// or a literal in a value position that looks like an identifier (the output screen's own
// detectors, screen.IdentifierCodes, whose verdict depends on the text alone).
func (g *gater) checkWritten(node map[string]any) error {
	// The per-unit subquery's columns the outer query can read: which carry written values.
	inner := map[string]bool{}
	if sub := g.innerNode(node); sub != nil {
		for _, it := range list(sub, "select_list") {
			e, _ := it.(map[string]any)
			name := str(e, "alias")
			if name == "" && str(e, "class") == "COLUMN_REF" {
				name = lastName(e)
			}
			if name != "" {
				if err := checkText(name, pos(e), "the name of a subquery column"); err != nil {
					return err
				}
			}
			lits, written := valueLiterals(e, nil)
			if err := checkLiterals(lits); err != nil {
				return err
			}
			inner[strings.ToLower(name)] = written
		}
	}
	for i, it := range list(node, "select_list") {
		e, _ := it.(map[string]any)
		if i >= len(g.q.Outputs) {
			break
		}
		out := g.q.Outputs[i]
		if err := checkText(out.Name, pos(e), "the name of an output column"); err != nil {
			return err
		}
		if out.Key < 0 {
			continue
		}
		lits, written := valueLiterals(e, inner)
		if err := checkLiterals(lits); err != nil {
			return err
		}
		if written {
			g.q.Keys[out.Key].Written = true
		}
	}
	return nil
}

// innerNode returns the per-unit subquery the outer query reads, or nil.
func (g *gater) innerNode(node map[string]any) map[string]any {
	if g.q.Relation == nil || !g.q.Relation.PerUnit {
		return nil
	}
	t := obj(node, "from_table")
	switch str(t, "type") {
	case "SUBQUERY":
		return obj(obj(t, "subquery"), "node")
	case "BASE_TABLE":
		return g.ctes[str(t, "table_name")]
	}
	return nil
}

func lastName(e map[string]any) string {
	parts := list(e, "column_names")
	if len(parts) == 0 {
		return ""
	}
	s, _ := parts[len(parts)-1].(string)
	return s
}

// valueLiterals returns the literals in value positions of an admitted expression, and
// whether the expression's value may be written by the query: a literal reaches it, or a
// column of the subquery (inner, by lower-case name) that carries written values. An
// expression of a kind it does not know is taken as written.
func valueLiterals(n map[string]any, inner map[string]bool) (lits []map[string]any, written bool) {
	walk := func(m map[string]any) {
		l, w := valueLiterals(m, inner)
		lits = append(lits, l...)
		written = written || w
	}
	switch str(n, "class") {
	case "CONSTANT":
		if isNull, _ := obj(n, "value")["is_null"].(bool); isNull {
			return nil, false
		}
		return []map[string]any{n}, true
	case "COLUMN_REF":
		return nil, inner[strings.ToLower(lastName(n))]
	case "COMPARISON", "CONJUNCTION", "BETWEEN":
		return nil, false // a boolean
	case "OPERATOR":
		if booleanOperatorTypes[str(n, "type")] {
			return nil, false
		}
		for _, c := range list(n, "children") { // any other operator (COALESCE, ...) passes values on
			if m, _ := c.(map[string]any); m != nil {
				walk(m)
			}
		}
		return lits, written
	case "CASE":
		for _, c := range list(n, "case_checks") {
			cc, _ := c.(map[string]any)
			walk(obj(cc, "then_expr"))
		}
		if el := obj(n, "else_expr"); el != nil {
			walk(el)
		}
		return lits, written
	case "CAST":
		walk(obj(n, "child"))
		return lits, written
	case "FUNCTION":
		if isAggregate(n) {
			return nil, false // its arguments are columns; its value comes from the data
		}
		fn := strings.ToLower(str(n, "function_name"))
		if b, _ := n["is_operator"].(bool); b && booleanOperators[fn] {
			return nil, false
		}
		params := parameterArgs[fn]
		for i, c := range list(n, "children") {
			if m, _ := c.(map[string]any); m != nil && !slices.Contains(params, i) {
				walk(m)
			}
		}
		return lits, written
	}
	return nil, true
}

// checkLiterals refuses a literal in a value position that looks like an identifier.
func checkLiterals(lits []map[string]any) error {
	for _, l := range lits {
		text, err := constant(l)
		if err != nil {
			return err
		}
		if s, ok := obj(l, "value")["value"].(string); ok {
			text = s // a VARCHAR: the value itself, not its quoted rendering
		}
		if err := checkText(text, pos(l), "a literal the query writes into its output"); err != nil {
			return err
		}
	}
	return nil
}

// checkText refuses text that the query writes into its output when it looks like an
// identifier. The message names the kind and the place, never the text.
func checkText(text string, at int, what string) error {
	codes := screen.IdentifierCodes(text)
	if len(codes) == 0 {
		return nil
	}
	return errcode.At(errcode.IdentifierInQuery, at, "%s looks like %s; names and literals a query writes into its output may not look like a resident ID number, unified social credit code, mobile number, bank card number or e-mail address",
		what, screen.Description(codes[0]))
}
