package gate

import (
	"slices"
	"strings"

	"github.com/c1b99f93/cleanroom/errcode"
	"github.com/c1b99f93/cleanroom/policy/pii"
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
// (the reviewer's OriginData).
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
// or a literal in a value position that looks like an identifier (pii.ScanText, the scan the
// egress reviewer runs on every output, whose verdict depends on the text alone).
func (g *gater) checkWritten(node *node) error {
	// The per-unit subquery's columns the outer query can read: which carry written values.
	inner := map[string]bool{}
	if sub := g.innerNode(node); sub != nil && sub.present() {
		for _, e := range sub.SelectList {
			name := e.Alias
			if name == "" && e.Class == "COLUMN_REF" {
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
	if g.outer != nil {
		for _, name := range g.q.FinalColumns() {
			if err := checkText(name, pos(node), "the name of an output column"); err != nil {
				return err
			}
		}
		return nil
	}
	for i, e := range node.SelectList {
		oi := i
		if g.itemOut != nil {
			if i >= len(g.itemOut) {
				break
			}
			if oi = g.itemOut[i]; oi < 0 {
				if err := checkText(g.finalNames[i], pos(e), "the name of an output column"); err != nil {
					return err
				}
				continue
			}
		}
		if oi >= len(g.q.Outputs) {
			break
		}
		out := g.q.Outputs[oi]
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
func (g *gater) innerNode(node *node) *node {
	if g.q.Relation == nil || !g.q.Relation.PerUnit {
		return nil
	}
	t := node.FromTable
	switch t.Type {
	case "SUBQUERY":
		return t.Subquery.Node
	case "BASE_TABLE":
		return g.ctes[t.TableName]
	}
	return nil
}

func lastName(e *node) string {
	parts := e.ColumnNames
	if len(parts) == 0 {
		return ""
	}
	return parts[len(parts)-1]
}

// valueLiterals returns the literals in value positions of an admitted expression, and
// whether the expression's value may be written by the query: a literal reaches it, or a
// column of the subquery (inner, by lower-case name) that carries written values. An
// expression of a kind it does not know is taken as written.
func valueLiterals(n *node, inner map[string]bool) (lits []*node, written bool) {
	walk := func(m *node) {
		l, w := valueLiterals(m, inner)
		lits = append(lits, l...)
		written = written || w
	}
	switch n.Class {
	case "CONSTANT":
		if n.ValueNode.IsNull {
			return nil, false
		}
		return []*node{n}, true
	case "COLUMN_REF":
		return nil, inner[strings.ToLower(lastName(n))]
	case "COMPARISON", "CONJUNCTION", "BETWEEN":
		return nil, false // a boolean
	case "OPERATOR":
		if booleanOperatorTypes[n.Type] {
			return nil, false
		}
		for _, c := range n.Children { // any other operator (COALESCE, ...) passes values on
			if c.present() {
				walk(c)
			}
		}
		return lits, written
	case "CASE":
		for _, c := range n.CaseChecks {
			cc := c
			walk(cc.ThenExpr)
		}
		if el := n.ElseExpr; el.present() {
			walk(el)
		}
		return lits, written
	case "CAST":
		walk(n.Child)
		return lits, written
	case "FUNCTION":
		if isAggregate(n) {
			return nil, false // its arguments are columns; its value comes from the data
		}
		fn := strings.ToLower(n.FunctionName)
		if n.IsOperator && booleanOperators[fn] {
			return nil, false
		}
		params := parameterArgs[fn]
		for i, c := range n.Children {
			if c.present() && !slices.Contains(params, i) {
				walk(c)
			}
		}
		return lits, written
	}
	return nil, true
}

// checkLiterals refuses a literal in a value position that looks like an identifier.
func checkLiterals(lits []*node) error {
	for _, l := range lits {
		c, err := constant(l)
		if err != nil {
			return err
		}
		if err := checkText(constantText(c), pos(l), "a literal the query writes into its output"); err != nil {
			return err
		}
	}
	return nil
}

// checkText refuses text that the query writes into its output when it looks like an
// identifier. The message names the kind and the place, never the text.
func checkText(text string, at int, what string) error {
	found := pii.ScanText(text)
	if found == 0 {
		return nil
	}
	return errcode.At(errcode.IdentifierInQuery, at, "%s looks like %s; names and literals a query writes into its output may not look like a resident ID number, unified social credit code, mobile number, bank card number or e-mail address",
		what, found.Description())
}
