package gate

import (
	"encoding/json"
	"math"
)

// node is one object of DuckDB's JSON AST (json_serialize_sql), decoded into typed fields: the
// fields the gate reads, under their JSON names in Go spelling. One struct serves every node
// kind — expressions, select nodes, table references, modifiers — because DuckDB's kinds share
// most field names; which fields a kind may use is the allowlist's business (only).
//
// The allowlist rule survives the typing: set records every key that holds something (not
// null, "", false, [], {} or an object of such), whether the struct knows it or not, and only
// refuses a node with a key outside the kind's list. A child the AST lacks is absent (never
// nil), so a walk needs no nil checks; present tells an object from a missing one.
type node struct {
	obj bool            // the node is a JSON object
	set map[string]bool // keys with a non-empty value

	Class, Type  string
	TypeNode     *node // a constant's "type", which is an object ({"id", "type_info"})
	Alias        string
	Location     int // query_location; -1 when none
	ColumnNames  []string
	ValueNode    *node // a constant's or a WITH entry's "value" object
	Scalar       any   // a constant's scalar "value": string, json.Number or bool
	Children     []*node
	GroupSets    []any
	UsingColumns []string

	Left, Right, Input, Lower, Upper, Child, CastType, TypeInfo, ElseExpr, WhenExpr, ThenExpr,
	Expression, Node, FromTable, WhereClause, CteMap, Query, Subquery, Condition, Limit, Offset,
	OrderBys, Having, StartExpr, EndExpr, OffsetExpr, DefaultExpr *node
	CaseChecks, Orders, SelectList, GroupExpressions, Modifiers, Map, Partitions []*node

	TryCast, IsOperator, Distinct, IsNull bool

	FunctionName, Schema, AggregateHandling, TableName, JoinType, RefType, NullOrder, Key, ID,
	Materialized, Start, End, ExcludeClause, RelationName string
	Scale any
}

// absent stands for a child the AST does not have. It is never written to.
var absent = &node{Location: -1}

// present reports whether the node is an object of the AST (not absent, not another JSON value).
func (n *node) present() bool { return n.obj }

// decodeNode builds the typed tree from a JSON value decoded with UseNumber, in one pass.
func decodeNode(v any) *node {
	m, ok := v.(map[string]any)
	if !ok {
		return absent
	}
	n := &node{obj: true, set: map[string]bool{}, Location: -1}
	for _, p := range []**node{&n.TypeNode, &n.ValueNode, &n.Left, &n.Right, &n.Input, &n.Lower, &n.Upper, &n.Child,
		&n.CastType, &n.TypeInfo, &n.ElseExpr, &n.WhenExpr, &n.ThenExpr, &n.Expression, &n.Node, &n.FromTable,
		&n.WhereClause, &n.CteMap, &n.Query, &n.Subquery, &n.Condition, &n.Limit, &n.Offset, &n.OrderBys,
		&n.Having, &n.StartExpr, &n.EndExpr, &n.OffsetExpr, &n.DefaultExpr} {
		*p = absent
	}
	children := map[string]**node{"left": &n.Left, "right": &n.Right, "input": &n.Input, "lower": &n.Lower,
		"upper": &n.Upper, "child": &n.Child, "cast_type": &n.CastType, "type_info": &n.TypeInfo, "else_expr": &n.ElseExpr,
		"when_expr": &n.WhenExpr, "then_expr": &n.ThenExpr, "expression": &n.Expression, "node": &n.Node,
		"from_table": &n.FromTable, "where_clause": &n.WhereClause, "cte_map": &n.CteMap, "query": &n.Query,
		"subquery": &n.Subquery, "condition": &n.Condition, "limit": &n.Limit, "offset": &n.Offset, "order_bys": &n.OrderBys,
		"having": &n.Having, "start_expr": &n.StartExpr, "end_expr": &n.EndExpr, "offset_expr": &n.OffsetExpr, "default_expr": &n.DefaultExpr}
	lists := map[string]*[]*node{"children": &n.Children, "case_checks": &n.CaseChecks, "orders": &n.Orders,
		"select_list": &n.SelectList, "group_expressions": &n.GroupExpressions, "modifiers": &n.Modifiers, "map": &n.Map, "partitions": &n.Partitions}
	strs := map[string]*string{"class": &n.Class, "alias": &n.Alias, "function_name": &n.FunctionName, "schema": &n.Schema,
		"aggregate_handling": &n.AggregateHandling, "table_name": &n.TableName, "join_type": &n.JoinType,
		"ref_type": &n.RefType, "null_order": &n.NullOrder, "key": &n.Key, "id": &n.ID, "materialized": &n.Materialized,
		"start": &n.Start, "end": &n.End, "exclude_clause": &n.ExcludeClause,
		"relation_name": &n.RelationName}
	bools := map[string]*bool{"try_cast": &n.TryCast, "is_operator": &n.IsOperator, "distinct": &n.Distinct, "is_null": &n.IsNull}
	for k, v := range m {
		if !empty(v) {
			n.set[k] = true
		}
		switch {
		case children[k] != nil:
			*children[k] = decodeNode(v)
		case lists[k] != nil:
			for _, e := range asList(v) {
				*lists[k] = append(*lists[k], decodeNode(e))
			}
		case strs[k] != nil:
			*strs[k], _ = v.(string)
		case bools[k] != nil:
			*bools[k], _ = v.(bool)
		}
		switch k {
		case "type":
			n.Type, _ = v.(string)
			n.TypeNode = decodeNode(v)
		case "value":
			n.ValueNode = decodeNode(v)
			if !n.ValueNode.present() {
				n.Scalar = v
			}
		case "query_location":
			if num, ok := v.(json.Number); ok {
				if i, err := num.Int64(); err == nil && i >= 0 && i < math.MaxInt32 {
					n.Location = int(i)
				}
			}
		case "column_names":
			n.ColumnNames = stringList(v)
		case "using_columns":
			n.UsingColumns = stringList(v)
		case "group_sets":
			n.GroupSets = asList(v)
		case "scale":
			n.Scale = v
		}
	}
	return n
}

// stringList reads a list of names; an entry that is not a string reads as "".
func stringList(v any) []string {
	var out []string
	for _, e := range asList(v) {
		s, _ := e.(string)
		out = append(out, s)
	}
	return out
}

func asList(v any) []any { l, _ := v.([]any); return l }

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
