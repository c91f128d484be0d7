package sandbox

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/c1b99f93/cleanroom/dp"
	"github.com/c1b99f93/cleanroom/sandbox/wire"
)

type row struct {
	unit int64
	key  string
	val  float64
}

func keyHash(k string) uint64 {
	var h uint64
	for _, c := range k {
		h = h*131 + uint64(c)
	}
	return h
}

// batch builds the worker's scan layout: unit, rowid, group hash, value. Rowids continue from
// *next, as in one snapshot.
func batch(t *testing.T, rows []row, next *int64) arrow.RecordBatch {
	return batchKeep(t, rows, next, nil)
}

// batchKeep is batch with, when keep is not nil, the filter's keep flag per row.
func batchKeep(t *testing.T, rows []row, next *int64, keep func(row) bool) arrow.RecordBatch {
	t.Helper()
	fields := []arrow.Field{
		{Name: "u", Type: arrow.PrimitiveTypes.Int64}, {Name: "rowid", Type: arrow.PrimitiveTypes.Int64},
		{Name: "g", Type: arrow.PrimitiveTypes.Uint64}, {Name: "v", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
	}
	if keep != nil {
		fields = append(fields, arrow.Field{Name: "keep", Type: arrow.FixedWidthTypes.Boolean})
	}
	b := array.NewRecordBuilder(memory.DefaultAllocator, arrow.NewSchema(fields, nil))
	defer b.Release()
	for _, r := range rows {
		b.Field(0).(*array.Int64Builder).Append(r.unit)
		b.Field(1).(*array.Int64Builder).Append(*next)
		*next++
		b.Field(2).(*array.Uint64Builder).Append(keyHash(r.key))
		b.Field(3).(*array.Float64Builder).Append(r.val)
		if keep != nil {
			b.Field(4).(*array.BooleanBuilder).Append(keep(r))
		}
	}
	return b.NewRecordBatch()
}

func testPlan(l0, linf int64) *wire.Plan {
	return &wire.Plan{Keys: []*wire.Expr{wire.Col("", "k")}, Values: []*wire.Expr{wire.Col("", "v")},
		Aggregates: []dp.Spec{
			{Kind: dp.Count, Value: -1, Epsilon: 1, MaxPartitions: l0, MaxPerPartition: linf},
			{Kind: dp.Sum, Value: 0, Lower: 0, Upper: 100, Epsilon: 1, MaxPartitions: l0, MaxPerPartition: linf},
		},
		Selection:   &dp.Selection{Epsilon: 1, Delta: 1e-6, MaxPartitions: l0},
		Bounds:      wire.Bounds{MaxGroupsContributed: l0, MaxContributionsPerGroup: linf},
		SamplingKey: 7}
}

func runPass(t *testing.T, p *wire.Plan, batches ...[]row) *boundPass {
	t.Helper()
	order := make([]int, len(batches))
	for i := range order {
		order[i] = i
	}
	return runPassInOrder(t, p, batches, order)
}

// runPassInOrder feeds batches in the given order; rowids follow the batches' listed order,
// as their position in the snapshot.
func runPassInOrder(t *testing.T, p *wire.Plan, batches [][]row, order []int) *boundPass {
	t.Helper()
	return runPassKeep(t, p, batches, order, nil)
}

// runPassKeep is runPassInOrder with the filter's keep flag (p.Filter must be set).
func runPassKeep(t *testing.T, p *wire.Plan, batches [][]row, order []int, keep func(row) bool) *boundPass {
	t.Helper()
	b := newBoundPass(p, 0, 2000, 2000, nil)
	b.tally = true
	next := make([]int64, len(batches))
	var id int64
	for i := range batches {
		next[i] = id
		id += int64(len(batches[i]))
	}
	for _, i := range order {
		rec := batchKeep(t, batches[i], &next[i], keep)
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

// encodedStates is each partition's DP pre-noise states, encoded, by group hash.
func encodedStates(t *testing.T, b *boundPass) map[uint64]string {
	t.Helper()
	out := map[uint64]string{}
	for _, ps := range b.parts {
		for _, acc := range ps.accs {
			enc, err := acc.Encode()
			if err != nil {
				t.Fatal(err)
			}
			out[ps.g] += string(enc)
		}
	}
	return out
}

func keyName(g uint64) string {
	for _, k := range []string{"A", "B", "a", "b", "c", "d", "e", "f"} {
		if keyHash(k) == g {
			return k
		}
	}
	return "?"
}

func totals(b *boundPass) map[string][3]float64 {
	out := map[string][3]float64{}
	for _, p := range b.parts {
		out[keyName(p.g)] = [3]float64{float64(p.units), float64(p.rows), p.sums[1]}
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
			t.Fatalf("partition %s kept every unit: selection is not keyed per unit", keyName(p.g))
		}
	}
}

func TestBoundPassSelectionDependsOnlyOnTheUnitsOwnRows(t *testing.T) {
	// Adding another unit must not change which rows unit 0 contributes: unit 1's values are
	// multiples of 1000 (clamped to 100), unit 0's are below 10, so the sums separate them.
	base := []row{{0, "a", 1}, {0, "b", 2}, {0, "c", 3}, {0, "a", 4}, {0, "a", 5}}
	own := func(b *boundPass) map[string]float64 {
		out := map[string]float64{}
		for _, p := range b.parts {
			out[keyName(p.g)] = float64(int(p.sums[1]) % 100)
		}
		return out
	}
	one := own(runPass(t, testPlan(1, 1), base))
	two := own(runPass(t, testPlan(1, 1), base, []row{{1, "a", 1000}, {1, "b", 1000}}))
	for k, v := range one {
		if two[k] != v {
			t.Fatalf("unit 0's contribution to %s changed from %v to %v when unit 1 was added", k, v, two[k])
		}
	}
}

func TestBoundPassUnitRunsSpanBatches(t *testing.T) {
	got := totals(runPass(t, testPlan(1, 10), []row{{0, "A", 1}, {0, "A", 1}}, []row{{0, "A", 1}, {1, "A", 1}}))
	if got["A"] != [3]float64{2, 4, 4} {
		t.Fatalf("totals = %v, want one unit of 3 rows and one of 1", got)
	}
}

// Batches may arrive in any order; a unit at a batch edge continues in another batch.
func TestBoundPassStitchesUnitsAcrossInterleavedBatches(t *testing.T) {
	got := totals(runPass(t, testPlan(1, 10),
		[]row{{5, "A", 1}, {6, "A", 1}, {7, "A", 1}},
		[]row{{2, "A", 1}, {3, "B", 1}, {4, "A", 1}},
		[]row{{7, "A", 1}, {8, "B", 1}},
		[]row{{4, "A", 1}, {4, "A", 1}}))
	if got["A"] != [3]float64{5, 8, 8} || got["B"] != [3]float64{2, 2, 2} {
		t.Fatalf("totals = %v, want A: 5 units/8 rows, B: 2 units/2 rows", got)
	}
}

func TestBoundPassRefusesAUnitSplitIntoTwoRuns(t *testing.T) {
	// Unit 2 lies inside the first batch, so it is bounded there; meeting it again means the
	// batches were not contiguous stretches, and the pass must fail rather than count it twice.
	b := newBoundPass(testPlan(1, 1), 0, 10, 10, nil)
	var next int64
	first := batch(t, []row{{1, "A", 1}, {2, "A", 1}, {3, "A", 1}}, &next)
	defer first.Release()
	if err := b.add(first); err != nil {
		t.Fatal(err)
	}
	again := batch(t, []row{{2, "A", 1}}, &next)
	defer again.Release()
	if err := b.add(again); !errors.Is(err, errUnitSplit) {
		t.Fatalf("err = %v, want errUnitSplit", err)
	}
}

// keepLowest keeps the k rows first in (rank, position) order, and returns them by position.
func TestKeepLowestMatchesAStableSort(t *testing.T) {
	for _, n := range []int{1, 2, 5, 6, 12, 39, 70, 200} {
		for _, k := range []int{1, 2, 4, 5, 16, 17, 63, 64, 65, 100} {
			for _, ties := range []uint64{0, 3} { // 3: ranks drawn from {0, 1, 2}, many ties
				ranks := make([]uint64, n)
				for i := range ranks {
					ranks[i] = mix(uint64(n), uint64(k), uint64(i))
					if ties > 0 {
						ranks[i] %= ties
					}
				}
				pos := make([]int, n)
				for i := range pos {
					pos[i] = i
				}
				slices.SortStableFunc(pos, func(x, y int) int { return cmp.Compare(ranks[x], ranks[y]) })
				want := pos[:min(k, n)]
				slices.Sort(want)
				got, _ := keepLowest(ranks, k, nil, nil)
				if fmt.Sprint(got) != fmt.Sprint(want) {
					t.Fatalf("n=%d k=%d ties=%d: kept %v, want %v", n, k, ties, got, want)
				}
			}
		}
	}
}

func TestBoundPassStatesDoNotDependOnBatchOrder(t *testing.T) {
	p := testPlan(1, 3)
	var batches [][]row
	for k := 0; k < 40; k++ {
		var rows []row
		for u := int64(k * 50); u < int64(k*50+50); u++ {
			rows = append(rows, row{unit: u, key: "A", val: float64(mix(3, uint64(u), 4)%10000) / 7.3})
		}
		batches = append(batches, rows)
	}
	var fwd, rev []int
	for i := range batches {
		fwd = append(fwd, i)
		rev = append(rev, len(batches)-1-i)
	}
	if fmt.Sprint(encodedStates(t, runPassInOrder(t, p, batches, fwd))) != fmt.Sprint(encodedStates(t, runPassInOrder(t, p, batches, rev))) {
		t.Fatal("the pre-noise states depend on the order batches arrive in")
	}
}

// A unit bounded on the fast path (inside a batch, its kept rows in one partition) and the
// same unit bounded on the general path (at a batch edge, finished at the end) contribute
// identically: units with up to L∞ rows, units with more (the same rows chosen by rank), units
// in two partitions, with and without a filter dropping some rows.
func TestFastAndGeneralPathsAgree(t *testing.T) {
	var all []row
	for u := int64(0); u < 600; u++ {
		n := 1 + u%9 // 1 to 9 rows: L∞ is 4
		for r := int64(0); r < n; r++ {
			k := []string{"a", "b"}[u%2]
			if u%7 == 0 && r%2 == 1 {
				k = "c" // a second partition: the general path even inside a batch
			}
			all = append(all, row{unit: u, key: k, val: float64(mix(5, uint64(u), uint64(r))%5000) / 3.1})
		}
	}
	var perUnit [][]row // one batch per unit: every unit is an edge unit
	for i := 0; i < len(all); {
		j := i
		for j < len(all) && all[j].unit == all[i].unit {
			j++
		}
		perUnit = append(perUnit, all[i:j])
		i = j
	}
	for _, filtered := range []bool{false, true} {
		p := testPlan(2, 4)
		var keep func(row) bool
		if filtered {
			p.Filter = wire.Col("", "keep")
			keep = func(r row) bool { return int(r.val)%3 != 0 }
		}
		run := func(batches [][]row) map[uint64]string {
			order := make([]int, len(batches))
			for i := range order {
				order[i] = i
			}
			return encodedStates(t, runPassKeep(t, p, batches, order, keep))
		}
		fast := run([][]row{all}) // one batch: every unit but the two edge ones is interior
		general := run(perUnit)
		if len(fast) != 3 || fmt.Sprint(fast) != fmt.Sprint(general) {
			t.Fatalf("filtered=%v: fast and general paths bound the same units differently (%d partitions)", filtered, len(fast))
		}
	}
}

func TestUnitOfRowids(t *testing.T) {
	s := &snapTable{starts: []int64{0, 3, 4, 9, 10}} // units 0..3 over 10 rows
	var got []int
	u := 0
	for _, x := range []int64{0, 1, 2, 3, 4, 8, 9, 2, 9, 5, 10} {
		u = s.unitOf(x, u)
		got = append(got, u)
	}
	want := []int{0, 0, 0, 1, 2, 2, 3, 0, 3, 2, 4} // rowid 10 is past the end: no unit owns 4
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("unitOf = %v, want %v", got, want)
	}
	for hint := range 5 { // any hint gives the same answer
		for x := int64(0); x <= 10; x++ {
			if got, want := s.unitOf(x, hint), s.unitOf(x, 0); got != want {
				t.Fatalf("unitOf(%d, hint %d) = %d, want %d", x, hint, got, want)
			}
		}
	}
}
