package sandbox

import (
	"errors"
	"fmt"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/c1b99f93/cleanroom/engine/dp"
)

type row struct {
	unit int64
	key  string
	val  float64
}

// batch builds the worker's scan layout: unit, group hash, key, value.
func batch(t *testing.T, rows []row) arrow.RecordBatch {
	t.Helper()
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "u", Type: arrow.PrimitiveTypes.Int64}, {Name: "g", Type: arrow.PrimitiveTypes.Uint64},
		{Name: "k", Type: arrow.BinaryTypes.String}, {Name: "v", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
	}, nil)
	b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer b.Release()
	for _, r := range rows {
		b.Field(0).(*array.Int64Builder).Append(r.unit)
		var h uint64
		for _, c := range r.key {
			h = h*131 + uint64(c)
		}
		b.Field(1).(*array.Uint64Builder).Append(h)
		b.Field(2).(*array.StringBuilder).Append(r.key)
		b.Field(3).(*array.Float64Builder).Append(r.val)
	}
	return b.NewRecordBatch()
}

func testPlan(l0, linf int64) *Plan {
	return &Plan{Keys: []string{"k"}, Values: []string{"v"},
		Aggregates: []dp.Spec{
			{Kind: dp.Count, Value: -1, Epsilon: 1, MaxPartitions: l0, MaxPerPartition: linf},
			{Kind: dp.Sum, Value: 0, Lower: 0, Upper: 100, Epsilon: 1, MaxPartitions: l0, MaxPerPartition: linf},
		},
		Selection:   &dp.Selection{Epsilon: 1, Delta: 1e-6, MaxPartitions: l0},
		Bounds:      Bounds{MaxGroupsContributed: l0, MaxContributionsPerGroup: linf},
		SamplingKey: 7}
}

func runPass(t *testing.T, p *Plan, batches ...[]row) *boundPass {
	t.Helper()
	b := newBoundPass(p)
	for _, rows := range batches {
		rec := batch(t, rows)
		err := b.add(rec)
		rec.Release()
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := b.finish(); err != nil {
		t.Fatal(err)
	}
	return b
}

func totals(b *boundPass) map[string][3]float64 {
	out := map[string][3]float64{}
	for _, p := range b.parts {
		out[*p.key[0]] = [3]float64{float64(p.units), float64(p.rows), p.sums[1]}
	}
	return out
}

func TestBoundPassCapsRowsPerGroupAndClampsValues(t *testing.T) {
	var rows []row
	for i := 0; i < 1000; i++ {
		rows = append(rows, row{unit: 0, key: "A", val: 500}) // above the upper bound 100
	}
	rows = append(rows, row{unit: 1, key: "A", val: 10}, row{unit: 2, key: "B", val: -5})
	got := totals(runPass(t, testPlan(1, 3), rows))
	want := map[string][3]float64{"A": {2, 4, 3*100 + 10}, "B": {1, 1, 0}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("totals (units, rows, sum) = %v, want %v", got, want)
	}
}

func TestBoundPassKeepsAtMostL0GroupsPerUnit(t *testing.T) {
	var rows []row
	keys := []string{"a", "b", "c", "d", "e", "f"}
	for u := int64(0); u < 50; u++ {
		for _, k := range keys {
			rows = append(rows, row{unit: u, key: k, val: 1})
		}
	}
	b := runPass(t, testPlan(2, 5), rows)
	var units int64
	for _, p := range b.parts {
		units += p.units
	}
	if units != 50*2 {
		t.Fatalf("unit-partition contributions = %d, want %d (2 per unit)", units, 50*2)
	}
	// The keyed hash spreads the kept groups: no partition receives every unit.
	for _, p := range b.parts {
		if p.units == 50 {
			t.Fatalf("partition %s kept every unit: selection is not keyed per unit", *p.key[0])
		}
	}
}

func TestBoundPassSelectionDependsOnlyOnTheUnitsOwnRows(t *testing.T) {
	// Adding another unit must not change which rows unit 0 contributes.
	base := []row{{0, "a", 1}, {0, "b", 2}, {0, "c", 3}, {0, "a", 4}, {0, "a", 5}}
	one := runPass(t, testPlan(1, 1), base)
	two := runPass(t, testPlan(1, 1), base, []row{{1, "a", 90}, {1, "b", 80}})
	for _, p := range one.parts {
		for _, q := range two.parts {
			if *p.key[0] == *q.key[0] && q.sums[1]-p.sums[1] != 0 && q.sums[1]-p.sums[1] != 90 && q.sums[1]-p.sums[1] != 80 {
				t.Fatalf("unit 0's contribution to %s changed when unit 1 was added", *p.key[0])
			}
		}
	}
}

func TestBoundPassUnitRunsSpanBatches(t *testing.T) {
	got := totals(runPass(t, testPlan(1, 10), []row{{0, "A", 1}, {0, "A", 1}}, []row{{0, "A", 1}, {1, "A", 1}}))
	if got["A"] != [3]float64{2, 4, 4} {
		t.Fatalf("totals = %v, want one unit of 3 rows and one of 1", got)
	}
}

func TestBoundPassRefusesOutOfOrderUnits(t *testing.T) {
	b := newBoundPass(testPlan(1, 1))
	rec := batch(t, []row{{2, "A", 1}, {1, "A", 1}})
	defer rec.Release()
	if err := b.add(rec); !errors.Is(err, errUnitOrder) {
		t.Fatalf("err = %v, want errUnitOrder", err)
	}
}
