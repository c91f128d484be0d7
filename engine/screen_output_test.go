package engine

import (
	"context"
	"slices"
	"testing"

	"github.com/c1b99f93/cleanroom/engine/gate"
	"github.com/c1b99f93/cleanroom/policy"
	"github.com/c1b99f93/cleanroom/policy/pii"
	"github.com/c1b99f93/cleanroom/policy/screen"
	"github.com/c1b99f93/cleanroom/server/api"
)

// TestNoisyNumbersAreNotIdentifierCandidatesButKeysAre: at a tiny epsilon a noisy count near
// 1e10 read as a mobile number, and a harmless output was denied and charged. The output
// screen sees a released DP value, the ends of its interval and a post-processed number as
// noisy numbers, which are not identifier candidates; a group key that reads as a mobile
// number is still found, and so is a plain number (the scan itself did not change).
func TestNoisyNumbersAreNotIdentifierCandidatesButKeysAre(t *testing.T) {
	const mobile = 13812345678
	if pii.ScanFloat(mobile)&pii.Mobile == 0 {
		t.Fatalf("the scan does not see %d as a mobile number; the test would prove nothing", int64(mobile))
	}
	key := func(s string) api.Cell { return api.Cell{Key: &s} }
	noisy := func(v float64) api.Cell {
		return api.Cell{DP: &api.Released{Value: v, CILow: v - 3, CIHigh: v + 3, Mechanism: "laplace", Epsilon: 1e-3}}
	}
	derived := func(v float64) api.Cell {
		return api.Cell{Derived: &api.Derived{Value: &v, CILow: &v, CIHigh: &v, Mechanism: api.MechanismPostProcessing}}
	}
	q := &gate.Query{Keys: []gate.Key{{Name: "k", Domain: []string{"A", "B", "13812345678"}}},
		Outputs: []gate.Output{{Name: "k", Key: 0, Aggregate: -1}, {Name: "n", Key: -1, Aggregate: 0}}}
	summary := policy.Output{Columns: []policy.OutputColumn{
		{Name: "k", Kind: policy.KindGroupKey, DerivedFrom: []policy.ColumnUse{}},
		{Name: "n", Kind: policy.KindAggregate, Aggregate: "count", DerivedFrom: []policy.ColumnUse{}},
	}}
	sc, err := screen.New()
	if err != nil {
		t.Fatal(err)
	}
	codes := func(rows ...[]api.Cell) []string {
		res := &Result{Result: api.Result{Rows: rows}}
		var out []string
		for _, f := range sc.Screen(context.Background(), newResultOutput(summary, q, res)).Findings {
			out = append(out, f.Code)
		}
		return out
	}
	for name, rows := range map[string][][]api.Cell{
		"a noisy count":                   {{key("A"), noisy(mobile)}},
		"an interval end":                 {{key("A"), noisy(mobile + 3)}, {key("B"), noisy(mobile - 3)}},
		"a post-processed number":         {{key("A"), derived(mobile)}},
		"noisy numbers in every position": {{key("A"), noisy(mobile)}, {key("B"), derived(mobile)}},
	} {
		if got := codes(rows...); slices.Contains(got, screen.CodeMobile) {
			t.Errorf("%s of %d: findings %v, want no %s", name, int64(mobile), got, screen.CodeMobile)
		}
	}
	if got := codes([]api.Cell{key("13812345678"), noisy(5)}); !slices.Contains(got, screen.CodeMobile) {
		t.Errorf("a group key that is a mobile number: findings %v, want %s", got, screen.CodeMobile)
	}
	// A number that is not marked noisy is still scanned.
	tab := &screen.Table{Cols: []screen.Column{{Name: "n", Kind: screen.KindAggregate, DerivedFrom: []policy.ColumnUse{}}},
		Data: [][]screen.Value{{screen.Float(mobile)}}}
	var plain []string
	for _, f := range sc.Screen(context.Background(), tab).Findings {
		plain = append(plain, f.Code)
	}
	if !slices.Contains(plain, screen.CodeMobile) {
		t.Errorf("a plain number %d: findings %v, want %s", int64(mobile), plain, screen.CodeMobile)
	}
}
