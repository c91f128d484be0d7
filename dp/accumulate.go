package dp

import (
	"bytes"
	"encoding/gob"
	"fmt"
	"math"

	"github.com/google/differential-privacy/go/v3/dpagg"
	"github.com/google/differential-privacy/go/v3/noise"
)

// Accumulator is one partition's pre-noise aggregation inside the worker.
type Accumulator interface {
	// AddUnit adds one privacy unit's already-bounded rows of a partition: how many rows were
	// kept (≤ L∞) and, when the spec reads values, those rows' values in rowid order (NaN for
	// SQL NULL). It is called at most once per unit and partition.
	AddUnit(rows int64, values []float64) error
	// Merge folds another accumulator of the same spec into this one.
	Merge(other Accumulator) error
	// Encode serializes the library's pre-noise state for the engine.
	Encode() ([]byte, error)
}

// NewAccumulator returns an empty accumulator for the spec, for a snapshot of units privacy
// units (which sizes the exactness grid of float sums).
func (s Spec) NewAccumulator(units int64) (Accumulator, error) { return s.newAgg(units) }

// cellValue is one released value with its interval, before the spec's post-processing.
type cellValue struct{ value, lo, hi float64 }

type agg interface {
	Accumulator
	decode([]byte) error
	results(alpha float64) ([]cellValue, error)
	// emptyCopy returns an accumulator equal to the receiver, which must be a prototype from
	// newAgg that nothing was added to, or nil when the kind cannot be copied. The library's
	// aggregations of the copied kinds hold only values (numbers, a stateless noise), so the
	// copy is what the constructor returns — without the noise sample each constructor draws
	// to check its parameters (TestCopiesAreNewAccumulators).
	emptyCopy() agg
}

// Maker makes one spec's accumulators: the spec's parameters are checked once, by the
// library's constructor, and each accumulator is a copy of that prototype. A plan with
// thousands of partitions makes an accumulator for each, in the worker and again to release
// it; the constructors' parameter checks (a noise draw, about 8 µs) were then a large part of
// the job.
type Maker struct {
	s     Spec
	units int64
	proto agg
}

// NewMaker checks the spec and returns its maker, for a snapshot of units privacy units (see
// NewAccumulator).
func (s Spec) NewMaker(units int64) (*Maker, error) {
	proto, err := s.newAgg(units)
	if err != nil {
		return nil, err
	}
	return &Maker{s: s, units: units, proto: proto}, nil
}

// New returns an empty accumulator, as NewAccumulator does.
func (m *Maker) New() (Accumulator, error) { return m.new() }

func (m *Maker) new() (agg, error) {
	if a := m.proto.emptyCopy(); a != nil {
		return a, nil
	}
	return m.s.newAgg(m.units)
}

func (s Spec) newAgg(units int64) (agg, error) {
	l0, lInf, nz := s.MaxPartitions, s.MaxPerPartition, s.noise()
	dist := s.Upper - s.midpoint()
	switch s.Kind {
	case Count:
		bs, err := dpagg.NewBoundedSumInt64(&dpagg.BoundedSumInt64Options{
			Epsilon: s.Epsilon, Delta: s.Delta, MaxPartitionsContributed: l0, Lower: 0, Upper: lInf, Noise: nz,
		})
		if err != nil {
			return nil, err
		}
		return &countAcc{bs: bs, nonNull: s.ReadsValues()}, nil
	case CountDistinctValues:
		bs, err := dpagg.NewBoundedSumInt64(&dpagg.BoundedSumInt64Options{
			Epsilon: s.Epsilon, Delta: s.Delta, MaxPartitionsContributed: l0, Lower: 0, Upper: lInf, Noise: nz,
		})
		if err != nil {
			return nil, err
		}
		return &distinctValuesAcc{countAcc: countAcc{bs: bs}, lInf: lInf, seen: map[uint64]struct{}{}}, nil
	case CountDistinct:
		c, err := dpagg.NewCount(&dpagg.CountOptions{Epsilon: s.Epsilon, Delta: s.Delta, MaxPartitionsContributed: l0, Noise: nz})
		if err != nil {
			return nil, err
		}
		return &distinctAcc{c}, nil
	case Sum:
		if !(s.Lower < s.Upper) {
			return nil, fmt.Errorf("dp: sum bounds must satisfy lower < upper")
		}
		lo, hi := s.unitBounds()
		bs, err := dpagg.NewBoundedSumFloat64(&dpagg.BoundedSumFloat64Options{
			Epsilon: s.Epsilon, Delta: s.Delta, MaxPartitionsContributed: l0, Lower: lo, Upper: hi, Noise: nz,
		})
		if err != nil {
			return nil, err
		}
		return &sumAcc{bs: bs, lower: s.Lower, upper: s.Upper, grid: grid(math.Max(-lo, hi), units)}, nil
	case Mean:
		bm, err := dpagg.NewBoundedMean(&dpagg.BoundedMeanOptions{
			Epsilon: s.Epsilon, Delta: s.Delta, MaxPartitionsContributed: l0, MaxContributionsPerPartition: lInf,
			Lower: s.Lower, Upper: s.Upper, Noise: nz,
		})
		if err != nil {
			return nil, err
		}
		return &meanAcc{bm: bm, lower: s.Lower, upper: s.Upper, mid: s.midpoint(), grid: grid(dist, units*lInf)}, nil
	case Variance, StdDev:
		bv, err := dpagg.NewBoundedVariance(&dpagg.BoundedVarianceOptions{
			Epsilon: s.Epsilon, Delta: s.Delta, MaxPartitionsContributed: l0, MaxContributionsPerPartition: lInf,
			Lower: s.Lower, Upper: s.Upper, Noise: nz,
		})
		if err != nil {
			return nil, err
		}
		return &varianceAcc{bv: bv, lower: s.Lower, upper: s.Upper, mid: s.midpoint(), sqrt: s.Kind == StdDev,
			grid: grid(dist, units*lInf), grid2: grid(dist*dist, units*lInf)}, nil
	case Quantiles:
		te, td, ce, cd := s.quantileSplit()
		bq, err := dpagg.NewBoundedQuantiles(&dpagg.BoundedQuantilesOptions{
			Epsilon: te, Delta: td, MaxPartitionsContributed: l0, MaxContributionsPerPartition: lInf,
			Lower: s.Lower, Upper: s.Upper, Noise: nz,
		})
		if err != nil {
			return nil, err
		}
		n, err := dpagg.NewBoundedSumInt64(&dpagg.BoundedSumInt64Options{
			Epsilon: ce, Delta: cd, MaxPartitionsContributed: l0, Lower: 0, Upper: lInf, Noise: nz,
		})
		if err != nil {
			return nil, err
		}
		return &quantileAcc{bq: bq, n: n, ranks: s.Ranks, nodeStddev: s.Components()[0].NoiseScale}, nil
	}
	return nil, fmt.Errorf("dp: unknown aggregate kind %q", s.Kind)
}

func errKinds() error { return fmt.Errorf("dp: merge of different kinds") }

func interval(v float64, ci noise.ConfidenceInterval) []cellValue {
	return []cellValue{{value: v, lo: ci.LowerBound, hi: ci.UpperBound}}
}

func clamp(v, lo, hi float64) float64 { return min(max(v, lo), hi) }

// countAcc is COUNT(*) or, with nonNull, COUNT(col).
type countAcc struct {
	bs      *dpagg.BoundedSumInt64
	nonNull bool
}

func (a *countAcc) AddUnit(rows int64, values []float64) error {
	if a.nonNull {
		rows = 0
		for _, v := range values {
			if !math.IsNaN(v) {
				rows++
			}
		}
	}
	return a.bs.Add(rows)
}
func (a *countAcc) emptyCopy() agg {
	bs := *a.bs
	return &countAcc{bs: &bs, nonNull: a.nonNull}
}

func (a *countAcc) Encode() ([]byte, error) { return a.bs.GobEncode() }
func (a *countAcc) decode(b []byte) error   { return a.bs.GobDecode(b) }
func (a *countAcc) Merge(o Accumulator) error {
	b, ok := o.(*countAcc)
	if !ok || b.nonNull != a.nonNull {
		return errKinds()
	}
	return a.bs.Merge(b.bs)
}
func (a *countAcc) results(alpha float64) ([]cellValue, error) {
	v, err := a.bs.Result()
	if err != nil {
		return nil, err
	}
	ci, err := a.bs.ComputeConfidenceInterval(alpha)
	return interval(float64(v), ci), err
}

// distinctValuesAcc is COUNT(DISTINCT col): in the worker it collects the distinct values of
// the partition's kept rows (as identities: the worker renders each value as a hash, NaN for
// NULL), across units and, by Merge, across shards; only when the state is encoded does it add
// the number of distinct values to the library's sum, once. Adding per unit would count a
// value shared by two units twice, and a unit cannot know which of its values another unit
// also holds.
//
// The sum is Count's mechanism, BoundedSumInt64 over [0, L∞] with L0 partitions, whose
// sensitivity is exactly the distinct count's (see CountDistinctValues). The library clamps
// each Add to [0, L∞] and keeps only the running total, so feed adds the cell's total as
// additions of at most L∞ each — at most one per unit in the cell, since the total is at most
// the kept rows — and the state, and so the noise at release, is that of one total.
type distinctValuesAcc struct {
	countAcc
	lInf int64
	seen map[uint64]struct{}
}

// AddUnit adds one unit's kept values. More than L∞ of them would break the sensitivity the
// noise is calibrated for (the library cannot clamp a share of a total), so that is an error.
func (a *distinctValuesAcc) AddUnit(_ int64, values []float64) error {
	if int64(len(values)) > a.lInf {
		return fmt.Errorf("dp: a unit added more rows to a distinct count than its bound allows")
	}
	for _, v := range values {
		if math.IsNaN(v) {
			continue // COUNT(DISTINCT col) ignores NULL
		}
		if v == 0 {
			v = 0 // -0 and +0 are one value
		}
		a.seen[math.Float64bits(v)] = struct{}{}
	}
	return nil
}

// feed adds the distinct values collected so far to the library's sum and forgets them.
func (a *distinctValuesAcc) feed() error {
	for n := int64(len(a.seen)); n > 0; n -= a.lInf {
		if err := a.bs.Add(min(n, a.lInf)); err != nil {
			return err
		}
	}
	clear(a.seen)
	return nil
}

func (a *distinctValuesAcc) emptyCopy() agg {
	bs := *a.bs
	return &distinctValuesAcc{countAcc: countAcc{bs: &bs}, lInf: a.lInf, seen: map[uint64]struct{}{}}
}

func (a *distinctValuesAcc) Encode() ([]byte, error) {
	if err := a.feed(); err != nil {
		return nil, err
	}
	return a.bs.GobEncode()
}

// Merge unions the other accumulator's distinct values into this one's (shards hold disjoint
// units, not disjoint values) and merges the library states (a decoded state, on the engine's
// side, has no values left).
func (a *distinctValuesAcc) Merge(o Accumulator) error {
	b, ok := o.(*distinctValuesAcc)
	if !ok {
		return errKinds()
	}
	for v := range b.seen {
		a.seen[v] = struct{}{}
	}
	clear(b.seen)
	return a.bs.Merge(b.bs)
}

func (a *distinctValuesAcc) results(alpha float64) ([]cellValue, error) {
	if err := a.feed(); err != nil {
		return nil, err
	}
	return a.countAcc.results(alpha)
}

type distinctAcc struct{ c *dpagg.Count }

func (a *distinctAcc) AddUnit(int64, []float64) error { return a.c.Increment() }
func (a *distinctAcc) Encode() ([]byte, error)        { return a.c.GobEncode() }
func (a *distinctAcc) emptyCopy() agg {
	c := *a.c
	return &distinctAcc{&c}
}
func (a *distinctAcc) decode(b []byte) error { return a.c.GobDecode(b) }
func (a *distinctAcc) Merge(o Accumulator) error {
	b, ok := o.(*distinctAcc)
	if !ok {
		return errKinds()
	}
	return a.c.Merge(b.c)
}
func (a *distinctAcc) results(alpha float64) ([]cellValue, error) {
	v, err := a.c.Result()
	if err != nil {
		return nil, err
	}
	ci, err := a.c.ComputeConfidenceInterval(alpha)
	return interval(float64(v), ci), err
}

// sumAcc pre-aggregates a unit's clamped values and adds the total once: the library's bounds
// are the unit range [L∞·lower, L∞·upper].
type sumAcc struct {
	bs           *dpagg.BoundedSumFloat64
	lower, upper float64
	grid         float64
}

func (a *sumAcc) AddUnit(_ int64, values []float64) error {
	var sum float64
	for _, v := range values {
		if !math.IsNaN(v) { // SUM ignores NULL
			sum += clamp(v, a.lower, a.upper)
		}
	}
	return a.bs.Add(onGrid(sum, a.grid))
}
func (a *sumAcc) emptyCopy() agg {
	c, bs := *a, *a.bs
	c.bs = &bs
	return &c
}

func (a *sumAcc) Encode() ([]byte, error) { return a.bs.GobEncode() }
func (a *sumAcc) decode(b []byte) error   { return a.bs.GobDecode(b) }
func (a *sumAcc) Merge(o Accumulator) error {
	b, ok := o.(*sumAcc)
	if !ok {
		return errKinds()
	}
	return a.bs.Merge(b.bs)
}
func (a *sumAcc) results(alpha float64) ([]cellValue, error) {
	v, err := a.bs.Result()
	if err != nil {
		return nil, err
	}
	ci, err := a.bs.ComputeConfidenceInterval(alpha)
	return interval(v, ci), err
}

// meanAcc feeds BoundedMean's own count and normalized sum exactly as its Add does (clamp,
// subtract the midpoint, count), with the normalized value truncated to the exactness grid.
type meanAcc struct {
	bm                *dpagg.BoundedMean
	lower, upper, mid float64
	grid              float64
}

func (a *meanAcc) AddUnit(_ int64, values []float64) error {
	for _, v := range values {
		if math.IsNaN(v) {
			continue // AVG ignores NULL, as BoundedMean.Add ignores NaN
		}
		a.bm.NormalizedSum.Add(onGrid(clamp(v, a.lower, a.upper)-a.mid, a.grid))
		if err := a.bm.Count.Increment(); err != nil {
			return err
		}
	}
	return nil
}
func (a *meanAcc) emptyCopy() agg {
	c, bm := *a, *a.bm
	c.bm = &bm
	return &c
}

func (a *meanAcc) Encode() ([]byte, error) { return a.bm.GobEncode() }
func (a *meanAcc) decode(b []byte) error   { return a.bm.GobDecode(b) }
func (a *meanAcc) Merge(o Accumulator) error {
	b, ok := o.(*meanAcc)
	if !ok {
		return errKinds()
	}
	return a.bm.Merge(b.bm)
}
func (a *meanAcc) results(alpha float64) ([]cellValue, error) {
	v, err := a.bm.Result()
	if err != nil {
		return nil, err
	}
	ci, err := a.bm.ComputeConfidenceInterval(alpha)
	return interval(v, ci), err
}

// varianceAcc feeds BoundedVariance's count, normalized sum and normalized sum of squares as
// its Add does, each on its exactness grid.
type varianceAcc struct {
	bv                *dpagg.BoundedVariance
	lower, upper, mid float64
	grid, grid2       float64
	sqrt              bool // release the standard deviation
}

func (a *varianceAcc) AddUnit(_ int64, values []float64) error {
	for _, v := range values {
		if math.IsNaN(v) {
			continue
		}
		d := onGrid(clamp(v, a.lower, a.upper)-a.mid, a.grid)
		a.bv.NormalizedSumOfSquares.Add(onGrid(d*d, a.grid2))
		a.bv.NormalizedSum.Add(d)
		if err := a.bv.Count.Increment(); err != nil {
			return err
		}
	}
	return nil
}
func (a *varianceAcc) emptyCopy() agg {
	c, bv := *a, *a.bv
	c.bv = &bv
	return &c
}

func (a *varianceAcc) Encode() ([]byte, error) { return a.bv.GobEncode() }
func (a *varianceAcc) decode(b []byte) error   { return a.bv.GobDecode(b) }
func (a *varianceAcc) Merge(o Accumulator) error {
	b, ok := o.(*varianceAcc)
	if !ok || b.sqrt != a.sqrt {
		return errKinds()
	}
	return a.bv.Merge(b.bv)
}

// results releases the library's variance. The library has no interval for it, so one is
// derived, as post-processing, from the intervals of its three noisy components at level
// 1 − alpha/3 each (a union bound: all three hold together with probability ≥ 1 − alpha): the
// interval is the range of S2/n − (S1/n)² over that box, which contains the value the noiseless
// components give — the true variance of the clamped values.
func (a *varianceAcc) results(alpha float64) ([]cellValue, error) {
	v, err := a.bv.Result()
	if err != nil {
		return nil, err
	}
	n, err := a.bv.Count.ComputeConfidenceInterval(alpha / 3)
	if err != nil {
		return nil, err
	}
	s1, err := a.bv.NormalizedSum.ComputeConfidenceInterval(alpha / 3)
	if err != nil {
		return nil, err
	}
	s2, err := a.bv.NormalizedSumOfSquares.ComputeConfidenceInterval(alpha / 3)
	if err != nil {
		return nil, err
	}
	lo, hi := varianceRange(n, s1, s2, (a.upper-a.lower)*(a.upper-a.lower)/4)
	out := cellValue{value: v, lo: lo, hi: hi}
	if a.sqrt {
		out = cellValue{value: math.Sqrt(v), lo: math.Sqrt(lo), hi: math.Sqrt(hi)}
	}
	return []cellValue{out}, nil
}

// varianceRange bounds f(n, s1, s2) = s2/n − (s1/n)² over the box n ∈ [nLo, nHi] (n ≥ 1),
// s1 ∈ s1, s2 ∈ s2, clamped to [0, maxVar] as the library clamps its result. For fixed n, f
// grows with s2 and falls with s1²; in n, A/n − B/n² (A, B ≥ 0) has its only stationary point,
// a maximum, at n = 2B/A.
func varianceRange(n, s1, s2 noise.ConfidenceInterval, maxVar float64) (lo, hi float64) {
	nLo, nHi := math.Max(1, n.LowerBound), math.Max(1, n.UpperBound)
	sqMin := 0.0
	if s1.LowerBound > 0 || s1.UpperBound < 0 {
		sqMin = math.Min(s1.LowerBound*s1.LowerBound, s1.UpperBound*s1.UpperBound)
	}
	sqMax := math.Max(s1.LowerBound*s1.LowerBound, s1.UpperBound*s1.UpperBound)
	f := func(a, b, n float64) float64 { return a/n - b/(n*n) }
	a2 := math.Max(s2.UpperBound, 0)
	hi = math.Max(f(a2, sqMin, nLo), f(a2, sqMin, nHi))
	if a2 > 0 {
		if n := 2 * sqMin / a2; n > nLo && n < nHi {
			hi = math.Max(hi, f(a2, sqMin, n))
		}
	}
	lo = math.Min(f(s2.LowerBound, sqMax, nLo), f(s2.LowerBound, sqMax, nHi))
	return clamp(lo, 0, maxVar), clamp(hi, 0, maxVar)
}

// quantileAcc is a BoundedQuantiles tree plus a bounded row count.
type quantileAcc struct {
	bq         *dpagg.BoundedQuantiles
	n          *dpagg.BoundedSumInt64
	ranks      []float64
	nodeStddev float64
}

func (a *quantileAcc) AddUnit(_ int64, values []float64) error {
	var rows int64
	for _, v := range values {
		if math.IsNaN(v) {
			continue
		}
		if err := a.bq.Add(v); err != nil { // clamps; tree counts are integers, so exact
			return err
		}
		rows++
	}
	return a.n.Add(rows)
}

type quantileState struct{ Tree, Count []byte }

// emptyCopy: the quantile tree is a map, which a copy would share.
func (a *quantileAcc) emptyCopy() agg { return nil }

func (a *quantileAcc) Encode() ([]byte, error) {
	tree, err := a.bq.GobEncode()
	if err != nil {
		return nil, err
	}
	count, err := a.n.GobEncode()
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	err = gob.NewEncoder(&buf).Encode(quantileState{tree, count})
	return buf.Bytes(), err
}

func (a *quantileAcc) decode(b []byte) error {
	var st quantileState
	if err := gob.NewDecoder(bytes.NewReader(b)).Decode(&st); err != nil {
		return err
	}
	if err := a.bq.GobDecode(st.Tree); err != nil {
		return err
	}
	return a.n.GobDecode(st.Count)
}

func (a *quantileAcc) Merge(o Accumulator) error {
	b, ok := o.(*quantileAcc)
	if !ok || len(b.ranks) != len(a.ranks) {
		return errKinds()
	}
	if err := a.bq.Merge(b.bq); err != nil {
		return err
	}
	return a.n.Merge(b.n)
}

// results reads every rank from the one noisy tree (the library charges the budget once and
// keeps repeated reads consistent). The library gives no interval for a quantile; the one
// reported here is the tree read at ranks q ± w, where w is z (1.96 at 95%) times the standard deviation
// of the rank error the tree's noise causes — the search sums up to branching-factor noisy
// counts at each of its levels, so about √(2·height·branching)·σ_node rows — divided by a
// lower confidence bound of the noisy row count. It is an approximation (the accuracy tests
// measure its coverage), computed from noisy outputs only.
func (a *quantileAcc) results(alpha float64) ([]cellValue, error) {
	out := make([]cellValue, len(a.ranks))
	for i, r := range a.ranks {
		v, err := a.bq.Result(r)
		if err != nil {
			return nil, err
		}
		out[i].value = v
	}
	if _, err := a.n.Result(); err != nil {
		return nil, err
	}
	nci, err := a.n.ComputeConfidenceInterval(alpha)
	if err != nil {
		return nil, err
	}
	z := math.Sqrt2 * math.Erfinv(1-alpha) // the normal quantile for a two-sided 1 − alpha
	w := z * math.Sqrt(2*dpagg.DefaultTreeHeight*dpagg.DefaultBranchingFactor) * a.nodeStddev / math.Max(1, nci.LowerBound)
	for i, r := range a.ranks {
		lo, err := a.bq.Result(math.Max(0, r-w))
		if err != nil {
			return nil, err
		}
		hi, err := a.bq.Result(math.Min(1, r+w))
		if err != nil {
			return nil, err
		}
		out[i].lo, out[i].hi = lo, hi
	}
	return out, nil
}
