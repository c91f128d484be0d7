package sandbox

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"slices"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/c1b99f93/cleanroom/dp"
	"github.com/c1b99f93/cleanroom/sandbox/wire"
)

// errUnitSplit means the scan did not deliver some unit's rows as one run; bounding that pass
// would be unsound, so its result is discarded (the worker then rescans in unit order).
var errUnitSplit = errors.New("sandbox: a privacy unit's rows arrived in more than one run")

// boundPass bounds contributions as each privacy unit's run of rows streams by (DESIGN §5).
// The snapshot is clustered by unit, so each unit's rows hold consecutive rowids. The scan
// keeps every row of the shard (the filter arrives as a keep flag), so a unit whose run has a
// row of another unit right before and right after it, by rowid, is complete and is bounded
// at once; only runs at the edge of a stretch of consecutive rowids may continue elsewhere
// (DuckDB's parallel scan interleaves and sometimes concatenates stretches) and wait, in a
// small open set, until the scan ends. Per unit the pass keeps at most
// L0 partitions and L∞ rows per partition, chosen by a keyed hash of the unit and the row's
// snapshot rowid (so the choice does not depend on arrival order), clamps values and adds one
// contribution per partition to the DP accumulators. A bitset over the shard's units proves no
// unit contributes twice: a unit seen again after it was bounded fails the pass (the worker
// then rescans in unit order) instead of contributing twice.
type boundPass struct {
	plan *wire.Plan
	l0   int
	lInf int // per group, never above total when that is set
	// total caps a unit's kept rows in all its groups (wire.Bounds.MaxRowsPerUnit; 0: none).
	total  int
	nKeys  int
	nVals  int
	lookup map[uint64]int32
	parts  []*partState
	// excluded[i] mirrors parts[i].excluded, read on every row without a pointer chase.
	excluded []bool
	lo, hi   int64    // the shard's units are [lo, hi)
	done     []uint64 // bitset of closed units, relative to lo
	openBits []uint64 // bitset of the units in open
	units    int64    // privacy units in the snapshot (sizes the accumulators' exactness grids)
	// makers make each new partition's accumulators, one per aggregate: copies of a checked
	// prototype, so that thousands of partitions do not each pay the library's checks.
	makers []*dp.Maker
	// tally keeps each partition's plain bounded sums (partState.sums) for in-package tests.
	tally bool
	// public maps the hash of each public key tuple to its values; nil without public domains.
	public map[uint64][]string

	// units at batch edges, waiting for the rest of their rows
	open map[int64]*openUnit
	// scratch for the unit being bounded
	rows     []unitRow
	vals     []float64 // nVals per row; NaN marks SQL NULL
	groups   []group
	pick     []int
	ends     []int       // per kept group, the end of its rows in pick
	ranks    []uint64    // per candidate row of the group being bounded, its keyed rank
	lowest   []int       // positions of the kept candidates (keepLowest's result)
	top      []uint64    // keepLowest's scratch
	colVals  [][]float64 // per value column, the kept rows' values of the unit being bounded
	view     [][]float64 // per value column, rowValues' result (may alias a batch: read only)
	lastG    uint64
	lastPart int32

	// profile holds the contribution histograms' bins by name when the plan asks for a
	// profile (wire.Profile) instead of aggregates; profSlots finds the same accumulators by
	// histogram (groups, rows) and profileSlot.
	profile   map[string]dp.Accumulator
	profSlots [2][overSlot + 1]dp.Accumulator
	// bias holds the bounding-cost counts when the plan asks for them (wire.BiasSpecs); clamped
	// marks, per aggregate, whether the unit being bounded had a kept value outside its bounds.
	bias    *biasAccs
	clamped []bool
}

// biasAccs are the accumulators of a plan's BiasSpecs (see wire.BiasSpecs).
type biasAccs struct {
	units, dropping, fraction dp.Accumulator
	clamped                   []dp.Accumulator
}

type openUnit struct {
	rows []unitRow
	vals []float64
}

type unitRow struct {
	part  int32
	ord   int32 // index into vals
	rowid int64
}

type group struct {
	part       int32
	start, end int // range in rows after sorting by part
	rank       uint64
}

type partState struct {
	g        uint64
	excluded bool  // key tuple outside the public domains: its rows are dropped
	row      int64 // rowid of one row of the partition, to fetch its key values afterwards
	key      []*string
	accs     []dp.Accumulator
	sel      *dp.Selector
	// Plain bounded totals, kept for in-package tests of the bounding itself (sums only when
	// the pass tallies); they never leave the worker.
	units, rows int64
	sums        []float64
}

// newBoundPass bounds the units [lo, hi) of a snapshot of units units in all; public is nil
// or the public key tuples by hash.
func newBoundPass(p *wire.Plan, lo, hi, units int64, public map[uint64][]string) *boundPass {
	lInf, total := p.Bounds.MaxContributionsPerGroup, p.Bounds.MaxRowsPerUnit
	if total > 0 {
		lInf = min(lInf, total)
	}
	return &boundPass{
		units:    units,
		plan:     p,
		l0:       int(p.Bounds.MaxGroupsContributed),
		lInf:     int(lInf),
		total:    int(total),
		nKeys:    len(p.Keys),
		nVals:    len(p.Values),
		lookup:   make(map[uint64]int32),
		open:     make(map[int64]*openUnit),
		lastPart: -1,
		lo:       lo,
		hi:       hi,
		done:     make([]uint64, (hi-lo+63)/64),
		openBits: make([]uint64, (hi-lo+63)/64),
		public:   public,
	}
}

// newPass is newBoundPass with the plan's profile histograms or bounding-cost counts set up.
func newPass(p *wire.Plan, lo, hi, units int64, public map[uint64][]string) (*boundPass, error) {
	b := newBoundPass(p, lo, hi, units, public)
	if p.Profile != nil {
		b.profile = map[string]dp.Accumulator{}
	}
	if bs := p.Bias; bs != nil && p.Profile == nil {
		var err error
		ba := &biasAccs{}
		if ba.units, err = bs.Count.NewAccumulator(units); err != nil {
			return nil, err
		}
		if ba.dropping, err = bs.Count.NewAccumulator(units); err != nil {
			return nil, err
		}
		if ba.fraction, err = bs.DroppedFraction.NewAccumulator(units); err != nil {
			return nil, err
		}
		for _, s := range bs.Clamped {
			acc, err := s.NewAccumulator(units)
			if err != nil {
				return nil, err
			}
			ba.clamped = append(ba.clamped, acc)
		}
		b.bias = ba
		b.clamped = make([]bool, len(p.Aggregates))
	}
	return b, nil
}

// unitDone records, for the bounding-cost counts, a unit that had total rows in the query
// (after the filter and the public domains) of which bounding kept kept. Each count gets at
// most 1 from the unit: sensitivity 1.
func (b *boundPass) unitDone(total, kept int64) error {
	if b.bias == nil || total == 0 {
		return nil
	}
	ba := b.bias
	if err := ba.units.AddUnit(1, nil); err != nil {
		return err
	}
	frac := float64(total-kept) / float64(total)
	if kept < total {
		if err := ba.dropping.AddUnit(1, nil); err != nil {
			return err
		}
	}
	if err := ba.fraction.AddUnit(1, []float64{frac}); err != nil {
		return err
	}
	for i, j := range b.plan.Bias.ClampedAggregates {
		if b.clamped[j] {
			if err := ba.clamped[i].AddUnit(1, nil); err != nil {
				return err
			}
		}
	}
	clear(b.clamped)
	return nil
}

// profileUnit adds unit u, whose rows are grouped in b.groups, to the contribution
// histograms: its number of groups, and the rows of the group of lowest keyed rank (or, for
// an L1 bound, its rows in all groups). The unit falls into exactly one bin of each histogram.
func (b *boundPass) profileUnit(u int64) error {
	rows := int64(len(b.rows))
	if !b.plan.Profile.TotalRows {
		best := 0
		var bestRank uint64
		for i, gr := range b.groups {
			r := mix(b.plan.SamplingKey, uint64(u), b.parts[gr.part].g)
			if i == 0 || r < bestRank {
				best, bestRank = i, r
			}
		}
		rows = int64(b.groups[best].end - b.groups[best].start)
	}
	return b.profileAdd(int64(len(b.groups)), rows)
}

// profileAdd counts a unit with groups groups and rows rows (≥ 1 each) in its bin of each
// histogram. The bins' accumulators are found by the bin's index (profileSlot), not its name,
// so a unit costs no string: the name is built once per bin.
func (b *boundPass) profileAdd(groups, rows int64) error {
	pr := b.plan.Profile
	for h, v := range [2]int64{groups, rows} {
		max, name := pr.MaxGroups, "groups"
		if h == 1 {
			max, name = pr.MaxRows, "rows"
		}
		slot := profileSlot(v, max)
		acc := b.profSlots[h][slot]
		if acc == nil {
			bin := wire.ProfileBin(name, v, max)
			if acc = b.profile[bin]; acc == nil {
				var err error
				if acc, err = pr.SpecFor(bin).NewAccumulator(b.units); err != nil {
					return err
				}
				b.profile[bin] = acc
			}
			b.profSlots[h][slot] = acc
		}
		if err := acc.AddUnit(1, nil); err != nil {
			return err
		}
	}
	return nil
}

// profileSlot is the index of wire.ProfileBin's bin of v ≥ 1 under max: k for the bin whose
// edge is 2^k, overSlot for the bin above max. Equal slots are equal bin names.
func profileSlot(v, max int64) int {
	k := bits.Len64(uint64(v - 1)) // the smallest k with 2^k ≥ v
	if k >= overSlot || int64(1)<<k > max {
		return overSlot
	}
	return k
}

// overSlot is profileSlot's index of the bin above a histogram's maximum.
const overSlot = 63

// fastProfile adds a complete run [i, j) whose kept rows all fall in one partition to the
// contribution histograms straight from the batch, as one group of its kept rows — what
// flush and profileUnit would add for it, without buffering the rows. It reports false,
// having added nothing, when the kept rows fall in several partitions (the general path).
func (b *boundPass) fastProfile(u int64, i, j int, sb *scanBatch) (bool, error) {
	part, kept, ok, err := b.keptInOnePartition(sb, i, j, b.pick[:0])
	b.pick = kept
	if err != nil || !ok {
		return false, err
	}
	b.markDone(u)
	if part < 0 {
		return true, nil // no kept row: the unit is in no bin, as in flush
	}
	return true, b.profileAdd(1, int64(len(kept)))
}

// keptInOnePartition appends to kept the rows of [i, j) the plan keeps, in order, and returns
// their partition (-1: no row kept); ok is false when they fall in more than one.
func (b *boundPass) keptInOnePartition(sb *scanBatch, i, j int, kept []int) (part int32, _ []int, ok bool, err error) {
	part = -1
	for r := i; r < j; r++ {
		p, err := b.rowPartition(sb, r)
		if err != nil {
			return part, kept, false, err
		}
		if p < 0 {
			continue
		}
		if part >= 0 && p != part {
			return part, kept, false, nil
		}
		part = p
		kept = append(kept, r)
	}
	return part, kept, true, nil
}

// batch columns: 0 unit (int64), 1 rowid (int64), then if keys: the group hash (uint64), then
// nVals float64 values, then if the plan filters: the keep flag (bool; false drops the row).
// Key values are fetched per partition afterwards (fetchKeys).
func (b *boundPass) add(rec arrow.RecordBatch) error {
	units, ok := rec.Column(0).(*array.Int64)
	if !ok {
		return fmt.Errorf("sandbox: unit column has type %s", rec.Column(0).DataType())
	}
	unitVals := units.Int64Values()
	return b.addRuns(rec, 1, func(rowids []int64, i int) (int64, int) {
		u, j := unitVals[i], i+1
		for j < len(rowids) && unitVals[j] == u && rowids[j] == rowids[j-1]+1 {
			j++
		}
		return u, j
	})
}

// addScanned is add for a batch of scanSQL's result, which has no unit column: each row's
// unit is found from its rowid in the snapshot's table of unit starts.
func (b *boundPass) addScanned(snap *snapTable, rec arrow.RecordBatch) error {
	u := 0
	return b.addRuns(rec, 0, func(rowids []int64, i int) (int64, int) {
		u = snap.unitOf(rowids[i], u)
		end := int64(math.MaxInt64) // past the last unit: a unit no shard owns (bounded fails)
		if u+1 < len(snap.starts) {
			end = snap.starts[u+1]
		}
		j := i + 1
		for j < len(rowids) && rowids[j] == rowids[j-1]+1 && rowids[j] < end {
			j++
		}
		return int64(u), j
	})
}

// addRuns bounds a batch whose columns start at first with the rowid, one run at a time: run
// returns the unit of row i and the end of its run — the rows from i on of that unit with
// consecutive rowids.
func (b *boundPass) addRuns(rec arrow.RecordBatch, first int, run func(rowids []int64, i int) (unit int64, end int)) error {
	rowids, ok := rec.Column(first).(*array.Int64)
	if !ok {
		return fmt.Errorf("sandbox: rowid column has type %s", rec.Column(first).DataType())
	}
	col := first + 1
	var hashes []uint64
	if b.nKeys > 0 {
		hcol, ok := rec.Column(col).(*array.Uint64)
		if !ok {
			return fmt.Errorf("sandbox: group hash column has type %s", rec.Column(col).DataType())
		}
		hashes = hcol.Uint64Values()
		col++
	}
	vals := make([]*array.Float64, b.nVals)
	valsNull := make([]bool, b.nVals) // whether the column has nulls in this batch at all
	for j := range vals {
		if vals[j], ok = rec.Column(col + j).(*array.Float64); !ok {
			return fmt.Errorf("sandbox: value column %d has type %s", j, rec.Column(col+j).DataType())
		}
		valsNull[j] = vals[j].NullN() > 0
	}
	var keep *array.Boolean
	if b.plan.Filter != nil {
		if keep, ok = rec.Column(col + b.nVals).(*array.Boolean); !ok {
			return fmt.Errorf("sandbox: keep column has type %s", rec.Column(col+b.nVals).DataType())
		}
	}
	n := int(rec.NumRows())
	rowidVals := rowids.Int64Values()[:n]
	sb := &scanBatch{rowids: rowidVals, hashes: hashes, vals: vals, valsNull: valsNull, keep: keep}
	for i := 0; i < n; {
		u, j := run(rowidVals, i)
		if b.bounded(u) {
			return errUnitSplit
		}
		// The run [i, j) is complete when the rows adjacent to it by rowid are in this batch.
		complete := i > 0 && rowidVals[i-1]+1 == rowidVals[i] && j < n && rowidVals[j] == rowidVals[j-1]+1
		var ou *openUnit
		if b.isOpen(u) {
			ou = b.open[u]
		} else if !complete {
			ou = &openUnit{}
			b.open[u] = ou
			b.markOpen(u)
		}
		if ou == nil {
			fast, err := b.fastUnit(u, i, j, sb)
			if err != nil {
				return err
			}
			if fast {
				i = j
				continue
			}
		}
		rows, vs := b.rows[:0], b.vals[:0]
		if ou != nil {
			rows, vs = ou.rows, ou.vals
		}
		for r := i; r < j; r++ {
			part, err := b.rowPartition(sb, r)
			if err != nil {
				return err
			}
			if part < 0 {
				continue
			}
			rows = append(rows, unitRow{part: part, ord: int32(len(rows)), rowid: rowidVals[r]})
			for k, v := range vals {
				if valsNull[k] && v.IsNull(r) {
					vs = append(vs, math.NaN())
				} else {
					vs = append(vs, v.Value(r))
				}
			}
		}
		if ou != nil {
			ou.rows, ou.vals = rows, vs
		} else {
			b.rows, b.vals = rows, vs
			if err := b.flush(u); err != nil {
				return err
			}
		}
		i = j
	}
	return nil
}

// scanBatch is one scan batch's columns, as the pass reads them row by row.
type scanBatch struct {
	rowids   []int64
	hashes   []uint64 // the group hash per row; nil without group keys
	vals     []*array.Float64
	valsNull []bool         // whether each value column has any null in this batch
	keep     *array.Boolean // nil without a filter
}

// rowPartition returns row r's partition, or -1 when the row is dropped: the filter did not
// keep it, or its key is outside the public domains.
func (b *boundPass) rowPartition(sb *scanBatch, r int) (int32, error) {
	if sb.keep != nil && (sb.keep.IsNull(r) || !sb.keep.Value(r)) {
		return -1, nil
	}
	var g uint64
	if sb.hashes != nil {
		g = sb.hashes[r]
	}
	p, err := b.partition(g, sb.rowids[r])
	if err != nil || b.excluded[p] {
		return -1, err
	}
	return p, nil
}

// fastUnit bounds a complete run [i, j) whose kept rows all fall in one partition straight
// from the batch, without buffering it: all its kept rows when there are at most L∞, else the
// L∞ of lowest rank. The result is the same as flush's: the same ranks choose the same rows,
// and the chosen rows are summed in rowid order. It reports false, having changed nothing,
// when the run needs the general path (rows in more than one partition).
func (b *boundPass) fastUnit(u int64, i, j int, sb *scanBatch) (bool, error) {
	if b.profile != nil {
		return b.fastProfile(u, i, j, sb)
	}
	kept := b.pick[:0]
	part := int32(-1)
	if sb.keep == nil {
		// Every row is kept unless its key is outside the public domains: one partition when
		// every row has the first row's group hash.
		var g uint64
		if sb.hashes != nil {
			g = sb.hashes[i]
			for _, h := range sb.hashes[i+1 : j] {
				if h != g {
					return false, nil
				}
			}
		}
		p, err := b.partition(g, sb.rowids[i])
		if err != nil {
			return false, err
		}
		if !b.excluded[p] {
			part = p
			if j-i <= b.lInf {
				b.markDone(u)
				if err := b.add1(b.parts[part], int64(j-i), b.rowValues(sb, i, j)); err != nil {
					return true, err
				}
				return true, b.unitDone(int64(j-i), int64(j-i))
			}
			for r := i; r < j; r++ {
				kept = append(kept, r)
			}
		}
	} else {
		var ok bool
		var err error
		part, kept, ok, err = b.keptInOnePartition(sb, i, j, kept)
		if err != nil || !ok {
			b.pick = kept
			return false, err
		}
	}
	b.pick = kept
	b.markDone(u)
	if part < 0 {
		return true, nil // no kept row: the unit contributes nothing
	}
	total := int64(len(kept))
	if len(kept) > b.lInf {
		b.ranks = b.ranks[:0]
		for _, r := range kept {
			b.ranks = append(b.ranks, mix(^b.plan.SamplingKey, uint64(u), uint64(sb.rowids[r])))
		}
		b.lowest, b.top = keepLowest(b.ranks, b.lInf, b.lowest[:0], b.top)
		for n, pos := range b.lowest { // positions ascend, so kept stays in rowid order
			kept[n] = kept[pos]
		}
		kept = kept[:len(b.lowest)]
		b.pick = kept
	}
	cols := b.resetColVals()
	for c, col := range sb.vals {
		if sb.valsNull[c] {
			for _, r := range kept {
				if col.IsNull(r) {
					cols[c] = append(cols[c], math.NaN())
				} else {
					cols[c] = append(cols[c], col.Value(r))
				}
			}
			continue
		}
		vs := col.Float64Values()
		for _, r := range kept {
			cols[c] = append(cols[c], vs[r])
		}
	}
	if err := b.add1(b.parts[part], int64(len(kept)), cols); err != nil {
		return true, err
	}
	return true, b.unitDone(total, int64(len(kept)))
}

// rowValues returns, per value column, the values of the batch's rows [i, j) (NaN for NULL):
// slices of the batch itself when the column has no null in this batch, which the caller
// must only read.
func (b *boundPass) rowValues(sb *scanBatch, i, j int) [][]float64 {
	if b.view == nil {
		b.view = make([][]float64, b.nVals)
	}
	var cols [][]float64
	for c, col := range sb.vals {
		if !sb.valsNull[c] {
			b.view[c] = col.Float64Values()[i:j]
			continue
		}
		if cols == nil {
			cols = b.resetColVals()
		}
		for r := i; r < j; r++ {
			if col.IsNull(r) {
				cols[c] = append(cols[c], math.NaN())
			} else {
				cols[c] = append(cols[c], col.Value(r))
			}
		}
		b.view[c] = cols[c]
	}
	return b.view
}

// markDone records that unit u has contributed.
func (b *boundPass) markDone(u int64) {
	k := u - b.lo
	b.done[k/64] |= 1 << (k % 64)
}

// resetColVals empties the per-column scratch of the unit being bounded.
func (b *boundPass) resetColVals() [][]float64 {
	if b.colVals == nil {
		b.colVals = make([][]float64, b.nVals)
	}
	for c := range b.colVals {
		b.colVals[c] = b.colVals[c][:0]
	}
	return b.colVals
}

// isOpen and markOpen track units waiting in b.open with a bitset, so the common case — a
// complete run — costs a bit test instead of a map lookup.
func (b *boundPass) isOpen(u int64) bool {
	i := u - b.lo
	return b.openBits[i/64]&(1<<(i%64)) != 0
}

func (b *boundPass) markOpen(u int64) {
	i := u - b.lo
	b.openBits[i/64] |= 1 << (i % 64)
}

// bounded reports whether unit u already contributed; a unit outside the shard is an error
// of the same kind.
func (b *boundPass) bounded(u int64) bool {
	if u < b.lo || u >= b.hi {
		return true
	}
	i := u - b.lo
	return b.done[i/64]&(1<<(i%64)) != 0
}

func (b *boundPass) partition(g uint64, rowid int64) (int32, error) {
	if b.lastPart >= 0 && g == b.lastG {
		return b.lastPart, nil
	}
	p, ok := b.lookup[g]
	if !ok {
		ps := &partState{g: g, row: rowid, sums: make([]float64, len(b.plan.Aggregates))}
		if b.public != nil {
			vals, ok := b.public[g]
			ps.excluded = !ok
			for _, v := range vals {
				ps.key = append(ps.key, &v)
			}
		}
		if b.makers == nil {
			for _, spec := range b.plan.Aggregates {
				m, err := spec.NewMaker(b.units)
				if err != nil {
					return 0, err
				}
				b.makers = append(b.makers, m)
			}
		}
		for _, m := range b.makers {
			acc, err := m.New()
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
		b.excluded = append(b.excluded, ps.excluded)
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

// flush bounds unit u, whose rows are in b.rows and b.vals, and adds its contributions.
func (b *boundPass) flush(u int64) error {
	i := u - b.lo
	b.done[i/64] |= 1 << (i % 64)
	if len(b.rows) == 0 {
		return nil
	}
	b.groups = b.groups[:0]
	if samePart(b.rows) {
		b.groups = append(b.groups, group{part: b.rows[0].part, start: 0, end: len(b.rows)})
	} else {
		sortByPart(b.rows)
		start := 0
		for i := 1; i <= len(b.rows); i++ {
			if i == len(b.rows) || b.rows[i].part != b.rows[start].part {
				b.groups = append(b.groups, group{part: b.rows[start].part, start: start, end: i})
				start = i
			}
		}
	}
	if b.profile != nil {
		return b.profileUnit(u)
	}
	total, kept := int64(len(b.rows)), int64(0)
	unit := uint64(u)
	if len(b.groups) > b.l0 {
		for i := range b.groups {
			b.groups[i].rank = mix(b.plan.SamplingKey, unit, b.parts[b.groups[i].part].g)
		}
		slices.SortFunc(b.groups, func(x, y group) int { return cmp.Compare(x.rank, y.rank) })
		b.groups = b.groups[:b.l0]
	}
	// Rows are in rowid order within a group, so the kept rows are summed in rowid order and
	// the float result does not depend on arrival order.
	b.pick, b.ends = b.pick[:0], b.ends[:0]
	for _, gr := range b.groups {
		if gr.end-gr.start <= b.lInf {
			for r := gr.start; r < gr.end; r++ {
				b.pick = append(b.pick, r)
			}
		} else {
			b.ranks = b.ranks[:0]
			for r := gr.start; r < gr.end; r++ {
				b.ranks = append(b.ranks, mix(^b.plan.SamplingKey, unit, uint64(b.rows[r].rowid)))
			}
			b.lowest, b.top = keepLowest(b.ranks, b.lInf, b.lowest[:0], b.top)
			for _, pos := range b.lowest {
				b.pick = append(b.pick, gr.start+pos)
			}
		}
		b.ends = append(b.ends, len(b.pick))
	}
	if b.total > 0 && len(b.pick) > b.total {
		b.capTotal(unit)
	}
	start := 0
	for i, gr := range b.groups {
		picked := b.pick[start:b.ends[i]]
		start = b.ends[i]
		if len(picked) == 0 {
			continue // every row of the group fell to the total bound: the unit is not in it
		}
		kept += int64(len(picked))
		if err := b.contribute(b.parts[gr.part], picked); err != nil {
			return err
		}
	}
	return b.unitDone(total, kept)
}

// capTotal keeps, of the rows flush picked (b.pick, by group up to b.ends), the b.total of
// lowest keyed rank — the same rank that chose them within their groups, so the choice depends
// only on the unit's own rows — and moves the group ends to match. Order within each group is
// kept.
func (b *boundPass) capTotal(unit uint64) {
	b.ranks = b.ranks[:0]
	for _, r := range b.pick {
		b.ranks = append(b.ranks, mix(^b.plan.SamplingKey, unit, uint64(b.rows[r].rowid)))
	}
	b.lowest, b.top = keepLowest(b.ranks, b.total, b.lowest[:0], b.top)
	n, k, g := 0, 0, 0 // rows written, next of b.lowest, group
	for pos, r := range b.pick {
		for g < len(b.ends) && pos == b.ends[g] {
			b.ends[g] = n
			g++
		}
		if k < len(b.lowest) && b.lowest[k] == pos {
			b.pick[n] = r
			n, k = n+1, k+1
		}
	}
	for ; g < len(b.ends); g++ {
		b.ends[g] = n
	}
	b.pick = b.pick[:n]
}

func (b *boundPass) contribute(ps *partState, picked []int) error {
	cols := b.resetColVals()
	for _, r := range picked {
		row := b.vals[int(b.rows[r].ord)*b.nVals:]
		for c := range cols {
			cols[c] = append(cols[c], row[c])
		}
	}
	return b.add1(ps, int64(len(picked)), cols)
}

// add1 adds one unit's bounded contribution — n kept rows and, per value column, those rows'
// values — to a partition.
func (b *boundPass) add1(ps *partState, n int64, cols [][]float64) error {
	ps.units++
	ps.rows += n
	for j := range b.plan.Aggregates {
		spec := &b.plan.Aggregates[j]
		var vals []float64
		if spec.Value >= 0 { // spec.ReadsValues()
			vals = cols[spec.Value]
		}
		if b.clamped != nil && !b.clamped[j] && spec.ClampsValues() {
			for _, v := range vals {
				if v < spec.Lower || v > spec.Upper { // false for NaN (NULL)
					b.clamped[j] = true
					break
				}
			}
		}
		if b.tally && spec.Kind == dp.Sum {
			for _, v := range vals {
				if !math.IsNaN(v) {
					ps.sums[j] += min(max(v, spec.Lower), spec.Upper)
				}
			}
		}
		if err := ps.accs[j].AddUnit(n, vals); err != nil {
			return err
		}
	}
	if ps.sel != nil {
		return ps.sel.AddUnit()
	}
	return nil
}

// keepLowest appends to out the positions of the k lowest of ranks, in ascending position
// order; of equal ranks the earlier position is kept first (the order (rank, position), so
// the choice is deterministic). top is scratch space, returned for reuse. A unit's rows come
// in rowid order, so the kept rows stay in rowid order without a sort.
func keepLowest(ranks []uint64, k int, out []int, top []uint64) ([]int, []uint64) {
	if len(ranks) <= k {
		for i := range ranks {
			out = append(out, i)
		}
		return out, top
	}
	// top: the k lowest ranks, with repeats, ascending.
	top = top[:0]
	switch {
	case k > 64:
		top = append(top, ranks...)
		slices.Sort(top)
		top = top[:k]
	case k <= 16:
		// Ranks are random, so branches mispredict: insert each rank with a chain of
		// branch-free compare-exchanges instead.
		for range k {
			top = append(top, math.MaxUint64)
		}
		for _, r := range ranks {
			for j := range top {
				lo := min(top[j], r)
				r = max(top[j], r)
				top[j] = lo
			}
		}
	default:
		for _, r := range ranks {
			if len(top) == k {
				if r >= top[k-1] {
					continue
				}
				top[k-1] = r
			} else {
				top = append(top, r)
			}
			for j := len(top) - 1; j > 0 && top[j-1] > top[j]; j-- {
				top[j-1], top[j] = top[j], top[j-1]
			}
		}
	}
	t := top[k-1] // the k-th lowest rank: keep every rank below it and the first ones equal
	// Without a tie at t, exactly k ranks are <= t: keep those, without branches.
	base := len(out)
	out = slices.Grow(out, len(ranks))[:base+len(ranks)]
	n := 0
	for i, r := range ranks {
		out[base+n] = i
		_, above := bits.Sub64(t, r, 0) // t < r
		n += int(1 ^ above)
	}
	if n == k {
		return out[:base+k], top
	}
	out = out[:base]
	atT := k
	for _, r := range top {
		if r < t {
			atT--
		}
	}
	for i, r := range ranks {
		if r < t {
			out = append(out, i)
		} else if r == t && atT > 0 {
			out = append(out, i)
			atT--
		}
	}
	return out, top
}

// sortByPart orders a unit's rows by partition, keeping rowid order within each. Units have
// few rows, so an insertion sort without a comparator call beats the generic sort here.
func sortByPart(rows []unitRow) {
	if len(rows) > 32 {
		slices.SortStableFunc(rows, func(x, y unitRow) int { return int(x.part - y.part) })
		return
	}
	for i := 1; i < len(rows); i++ {
		r := rows[i]
		j := i
		for j > 0 && rows[j-1].part > r.part {
			rows[j] = rows[j-1]
			j--
		}
		rows[j] = r
	}
}

func samePart(rows []unitRow) bool {
	for _, r := range rows[1:] {
		if r.part != rows[0].part {
			return false
		}
	}
	return true
}

// finish bounds the units that waited at batch edges, in unit order.
func (b *boundPass) finish() error {
	units := make([]int64, 0, len(b.open))
	for u := range b.open {
		units = append(units, u)
	}
	slices.Sort(units)
	for _, u := range units {
		ou := b.open[u]
		// Stitched from several batches: restore rowid order, which flush relies on.
		slices.SortFunc(ou.rows, func(x, y unitRow) int { return cmp.Compare(x.rowid, y.rowid) })
		b.rows, b.vals = ou.rows, ou.vals
		if err := b.flush(u); err != nil {
			return err
		}
	}
	clear(b.open) // a shard scanned in several ranges goes on with the next
	return nil
}

// merge folds another shard's pass (over a disjoint unit range) into b.
func (b *boundPass) merge(o *boundPass) error {
	for name, acc := range o.profile {
		if mine := b.profile[name]; mine != nil {
			if err := mine.Merge(acc); err != nil {
				return err
			}
		} else {
			b.profile[name] = acc
		}
	}
	if b.bias != nil {
		for _, pr := range [][2]dp.Accumulator{{b.bias.units, o.bias.units}, {b.bias.dropping, o.bias.dropping}, {b.bias.fraction, o.bias.fraction}} {
			if err := pr[0].Merge(pr[1]); err != nil {
				return err
			}
		}
		for i := range b.bias.clamped {
			if err := b.bias.clamped[i].Merge(o.bias.clamped[i]); err != nil {
				return err
			}
		}
	}
	for _, op := range o.parts {
		if op.excluded {
			continue
		}
		p, ok := b.lookup[op.g]
		if !ok {
			b.lookup[op.g] = int32(len(b.parts))
			b.parts = append(b.parts, op)
			b.excluded = append(b.excluded, false)
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
