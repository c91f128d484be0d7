package plan_test

import (
	"testing"

	"github.com/c1b99f93/cleanroom/dp"
	"github.com/c1b99f93/cleanroom/engine/gate"
	"github.com/c1b99f93/cleanroom/sandbox/wire"
)

var aggDistinctDiagnoses = gate.Aggregate{Name: "count_distinct_diagnosis", Kind: dp.CountDistinctValues, Column: "diagnosis", Value: wire.Col("", "diagnosis")}

// A distinct count of values loses a value only when every kept row holding it is dropped, so
// the rows L∞ drops are not its bias while its noise grows with L∞: where a COUNT(*) keeps each
// unit's 3–4 rows, the distinct count keeps one. A group L0 drops whole takes its values with
// it, so L0 still rises to the units' groups.
func TestChooseKeepsFewRowsForADistinctCount(t *testing.T) {
	rows := map[int64]float64{3: 6000, 4: 4000}
	if c := choose(t, query(nil, []gate.Key{keyDistrict}, aggCount), map[int64]float64{1: 10000}, rows); c.MaxRows != 4 {
		t.Fatalf("COUNT(*) chose %s, want 4 rows (the reference this test contrasts with)", c)
	}
	if c := choose(t, query(nil, []gate.Key{keyDistrict}, aggDistinctDiagnoses), map[int64]float64{1: 10000}, rows); c.MaxGroups != 1 || c.MaxRows != 1 {
		t.Errorf("COUNT(DISTINCT diagnosis) chose %s, want 1 group and 1 row", c)
	}
	// (Keys without a public domain: over the two public districts no unit has 6 groups.)
	if c := choose(t, query(nil, []gate.Key{keyDiagnosis}, aggDistinctDiagnoses), map[int64]float64{6: 10000}, map[int64]float64{1: 10000}); c.MaxGroups != 8 {
		t.Errorf("COUNT(DISTINCT diagnosis) over units with 6 groups chose %s, want 8 groups", c)
	}
}
