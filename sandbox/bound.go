package sandbox

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/c1b99f93/cleanroom/engine/dp"
)

// errUnitOrder means the scan did not deliver each unit's rows as one run; bounding would then
// be unsound, so the job fails instead.
var errUnitOrder = errors.New("sandbox: snapshot rows arrived out of privacy-unit order")

// boundPass bounds contributions as each privacy unit's run of rows streams by (DESIGN §5):
// the snapshot is clustered by unit, so a unit's rows are contiguous and the pass keeps only
// one unit's rows at a time. Per unit it keeps at most L0 partitions and L∞ rows per partition,
// chosen by a keyed hash of the unit's own rows, clamps values and adds one contribution per
// partition to the DP accumulators.
type boundPass struct {
	plan   *Plan
	l0     int
	lInf   int
	nKeys  int
	nVals  int
	lookup map[uint64]int32
	parts  []*partState

	// the current unit's rows
	unit     int64
	started  bool
	rows     []unitRow
	vals     []float64 // nVals per row; NaN marks SQL NULL
	groups   []group
	pick     []int
	lastG    uint64
	lastPart int32
}

type unitRow struct {
	part int32
	ord  int32
}

type group struct {
	part       int32
	start, end int // range in rows after sorting by part
	rank       uint64
}

type partState struct {
	g    uint64
	key  []*string
	accs []dp.Accumulator
	sel  *dp.Selector
	// Plain bounded totals, kept for in-package tests of the bounding itself; they never
	// leave the worker.
	units, rows int64
	sums        []float64
}

func newBoundPass(p *Plan) *boundPass {
	return &boundPass{
		plan:     p,
		l0:       int(p.Bounds.MaxGroupsContributed),
		lInf:     int(p.Bounds.MaxContributionsPerGroup),
		nKeys:    len(p.Keys),
		nVals:    len(p.Values),
		lookup:   make(map[uint64]int32),
		lastPart: -1,
	}
}

// batch columns: 0 unit (int64), then if keys: 1 group hash (uint64) and nKeys key strings,
// then nVals float64 values.
func (b *boundPass) add(rec arrow.RecordBatch) error {
	units, ok := rec.Column(0).(*array.Int64)
	if !ok {
		return fmt.Errorf("sandbox: unit column has type %s", rec.Column(0).DataType())
	}
	col := 1
	var hashes *array.Uint64
	var keys []arrow.Array
	if b.nKeys > 0 {
		if hashes, ok = rec.Column(1).(*array.Uint64); !ok {
			return fmt.Errorf("sandbox: group hash column has type %s", rec.Column(1).DataType())
		}
		keys = rec.Columns()[2 : 2+b.nKeys]
		col = 2 + b.nKeys
	}
	vals := make([]*array.Float64, b.nVals)
	for j := range vals {
		if vals[j], ok = rec.Column(col + j).(*array.Float64); !ok {
			return fmt.Errorf("sandbox: value column %d has type %s", j, rec.Column(col+j).DataType())
		}
	}
	n := int(rec.NumRows())
	unitVals := units.Int64Values()
	for i := 0; i < n; i++ {
		u := unitVals[i]
		if !b.started || u != b.unit {
			if b.started && u < b.unit {
				return errUnitOrder
			}
			if err := b.flush(); err != nil {
				return err
			}
			b.unit, b.started = u, true
		}
		var g uint64
		if hashes != nil {
			g = hashes.Value(i)
		}
		part, err := b.partition(g, keys, i)
		if err != nil {
			return err
		}
		b.rows = append(b.rows, unitRow{part: part, ord: int32(len(b.rows))})
		for _, v := range vals {
			if v.IsNull(i) {
				b.vals = append(b.vals, math.NaN())
			} else {
				b.vals = append(b.vals, v.Value(i))
			}
		}
	}
	return nil
}

func (b *boundPass) partition(g uint64, keys []arrow.Array, i int) (int32, error) {
	if b.lastPart >= 0 && g == b.lastG {
		return b.lastPart, nil
	}
	p, ok := b.lookup[g]
	if !ok {
		ps := &partState{g: g, key: make([]*string, len(keys)), sums: make([]float64, len(b.plan.Aggregates))}
		for k, a := range keys {
			if !a.IsNull(i) {
				s := strings.Clone(a.ValueStr(i)) // the batch buffer is reused
				ps.key[k] = &s
			}
		}
		for _, spec := range b.plan.Aggregates {
			acc, err := spec.NewAccumulator()
			if err != nil {
				return 0, err
			}
			ps.accs = append(ps.accs, acc)
		}
		if b.plan.Selection != nil {
			sel, err := b.plan.Selection.NewSelector()
			if err != nil {
				return 0, err
			}
			ps.sel = sel
		}
		p = int32(len(b.parts))
		b.parts = append(b.parts, ps)
		b.lookup[g] = p
	}
	b.lastG, b.lastPart = g, p
	return p, nil
}

// mix is a keyed 64-bit hash (splitmix64 finalizer) used to choose which of an
// over-contributing unit's groups and rows are kept. It depends only on the job's key and the
// unit's own rows, never on other units, so the sensitivity bound holds.
func mix(key, a, b uint64) uint64 {
	z := key ^ (a * 0x9e3779b97f4a7c15) ^ (b * 0xc2b2ae3d27d4eb4f)
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// flush bounds and emits the current unit's contributions.
func (b *boundPass) flush() error {
	if len(b.rows) == 0 {
		return nil
	}
	defer func() { b.rows, b.vals = b.rows[:0], b.vals[:0] }()
	b.groups = b.groups[:0]
	if samePart(b.rows) {
		b.groups = append(b.groups, group{part: b.rows[0].part, start: 0, end: len(b.rows)})
	} else {
		slices.SortFunc(b.rows, func(x, y unitRow) int {
			if x.part != y.part {
				return int(x.part - y.part)
			}
			return int(x.ord - y.ord)
		})
		start := 0
		for i := 1; i <= len(b.rows); i++ {
			if i == len(b.rows) || b.rows[i].part != b.rows[start].part {
				b.groups = append(b.groups, group{part: b.rows[start].part, start: start, end: i})
				start = i
			}
		}
	}
	unit := uint64(b.unit)
	if len(b.groups) > b.l0 {
		for i := range b.groups {
			b.groups[i].rank = mix(b.plan.SamplingKey, unit, b.parts[b.groups[i].part].g)
		}
		slices.SortFunc(b.groups, func(x, y group) int { return cmpU64(x.rank, y.rank) })
		b.groups = b.groups[:b.l0]
	}
	for _, gr := range b.groups {
		b.pick = b.pick[:0]
		for r := gr.start; r < gr.end; r++ {
			b.pick = append(b.pick, r)
		}
		if len(b.pick) > b.lInf {
			slices.SortFunc(b.pick, func(x, y int) int {
				return cmpU64(mix(^b.plan.SamplingKey, unit, uint64(b.rows[x].ord)),
					mix(^b.plan.SamplingKey, unit, uint64(b.rows[y].ord)))
			})
			b.pick = b.pick[:b.lInf]
		}
		if err := b.contribute(b.parts[gr.part], b.pick); err != nil {
			return err
		}
	}
	return nil
}

func (b *boundPass) contribute(ps *partState, picked []int) error {
	n := int64(len(picked))
	ps.units++
	ps.rows += n
	for j, spec := range b.plan.Aggregates {
		var sum float64
		if spec.Kind == dp.Sum {
			for _, r := range picked {
				v := b.vals[int(b.rows[r].ord)*b.nVals+spec.Value]
				if math.IsNaN(v) {
					continue // SUM ignores NULL
				}
				sum += min(max(v, spec.Lower), spec.Upper)
			}
			ps.sums[j] += sum
		}
		if err := ps.accs[j].AddUnit(n, sum); err != nil {
			return err
		}
	}
	if ps.sel != nil {
		return ps.sel.AddUnit()
	}
	return nil
}

func samePart(rows []unitRow) bool {
	for _, r := range rows[1:] {
		if r.part != rows[0].part {
			return false
		}
	}
	return true
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// finish flushes the last unit.
func (b *boundPass) finish() error { return b.flush() }

// merge folds another shard's pass (over a disjoint unit range) into b.
func (b *boundPass) merge(o *boundPass) error {
	for _, op := range o.parts {
		p, ok := b.lookup[op.g]
		if !ok {
			b.lookup[op.g] = int32(len(b.parts))
			b.parts = append(b.parts, op)
			continue
		}
		ps := b.parts[p]
		for j := range ps.accs {
			if err := ps.accs[j].Merge(op.accs[j]); err != nil {
				return err
			}
			ps.sums[j] += op.sums[j]
		}
		if ps.sel != nil {
			if err := ps.sel.Merge(op.sel); err != nil {
				return err
			}
		}
		ps.units += op.units
		ps.rows += op.rows
	}
	return nil
}
