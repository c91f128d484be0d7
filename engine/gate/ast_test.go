package gate

import (
	"bytes"
	"encoding/json"
	"slices"
	"testing"

	"github.com/c1b99f93/cleanroom/errcode"
)

func decodeTest(t *testing.T, text string) *node {
	t.Helper()
	var v any
	dec := json.NewDecoder(bytes.NewReader([]byte(text)))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		t.Fatal(err)
	}
	return decodeNode(v)
}

// The typed nodes keep the allowlist rule: a key the struct does not know still counts when
// it holds something, and refuses the node unless its kind allows it; empty values never do.
func TestDecodedNodeRefusesUnknownNonEmptyFields(t *testing.T) {
	n := decodeTest(t, `{"class": "FUNCTION", "function_name": "abs", "children": [], "filter": null, "export_state": false,
		"order_bys": {"type": "", "orders": []}, "catalog": "", "new_duckdb_feature": {"x": 1}, "query_location": 7}`)
	var keys []string
	for k := range n.set {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if want := []string{"class", "function_name", "new_duckdb_feature", "query_location"}; !slices.Equal(keys, want) {
		t.Fatalf("non-empty keys %q, want %q", keys, want)
	}
	if err := only(n, with("function_name", "children", "order_bys")...); errcode.Of(err) != errcode.UnsupportedSQL || pos(n) != 7 {
		t.Fatalf("unknown field admitted: %v (position %d)", err, pos(n))
	}
	if n.FunctionName != "abs" || n.Class != "FUNCTION" || n.OrderBys.present() == false || n.Left.present() {
		t.Fatalf("typed fields misread: %+v", n)
	}
}

// A value of an unexpected JSON type reads as absent or zero, never as a panic: the walk then
// refuses it as malformed.
func TestDecodedNodeToleratesUnexpectedShapes(t *testing.T) {
	n := decodeTest(t, `{"class": 3, "left": "x", "children": [1, {"class": "CONSTANT"}], "column_names": [1, "b"], "is_operator": "yes"}`)
	if n.Class != "" || n.Left.present() || len(n.Children) != 2 || n.Children[0].present() || !n.Children[1].present() ||
		!slices.Equal(n.ColumnNames, []string{"", "b"}) || n.IsOperator {
		t.Fatalf("unexpected shapes misread: %+v", n)
	}
	if decodeTest(t, `[1]`).present() || decodeTest(t, `null`).present() {
		t.Fatal("a non-object decoded as a node")
	}
}
