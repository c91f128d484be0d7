// Package dp holds cleanroom's differential-privacy mechanisms, all built from Google's
// differential-privacy library (dpagg); nothing here draws noise of its own.
//
//	sandbox worker                              engine (parent)
//	per unit, bounded ──▶ Accumulator.AddUnit    Spec.Release(encoded) ──▶ noisy values + 95% CIs
//	                      Accumulator.Encode ──(gob over the pipe)──▶ Merge into a fresh,
//	                                                                 expected-parameter object
//
// The worker feeds each privacy unit's already-bounded rows once per partition (the library
// requires the caller to bound contributions) and ships the library's own serialized pre-noise
// state; the engine decodes it, merges it into an aggregation it constructed from the plan —
// dpagg's Merge refuses a state whose epsilon, delta, sensitivity, bounds or noise differ, so a
// worker cannot weaken the mechanism — and draws the noise once, at release.
//
// Float totals are made exact: every value a unit adds to a library sum is truncated to a
// power-of-two grid fine enough to change nothing a release could show (see grid), so the
// pre-noise state does not depend on the order in which units arrive and a replay reproduces it
// bit for bit.
package dp

import (
	"fmt"
	"math"

	"github.com/google/differential-privacy/go/v3/dpagg"
	"github.com/google/differential-privacy/go/v3/noise"
)

// Kind is an aggregate's DP mechanism family.
type Kind string

// Supported aggregate kinds.
const (
	// Count is COUNT(*) (Value −1) or COUNT(col) (rows whose value is not NULL): bounded rows
	// per unit and partition, through BoundedSumInt64 over [0, L∞].
	Count Kind = "count"
	// CountDistinct is COUNT(DISTINCT privacy unit): one per unit, through Count.
	CountDistinct Kind = "count_distinct"
	// CountDistinctValues is COUNT(DISTINCT col) of a column other than the privacy unit: the
	// number of distinct non-NULL values among a partition's kept rows, computed once per
	// partition after bounding and noised like Count (BoundedSumInt64 over [0, L∞], L0
	// partitions). Removing a unit removes at most its kept rows of each partition, so the
	// partition's distinct count drops by at most L∞ (a value only it held disappears; a value
	// others also hold stays), in at most L0 partitions: exactly Count's sensitivity. The count
	// is not a sum over units (two units holding one value count it once), so the worker keeps
	// the partition's distinct values until the end and feeds the total once (accumulate.go).
	CountDistinctValues Kind = "count_distinct_values"
	// Sum is SUM(col): per-row clamp, per-unit pre-aggregation, through BoundedSumFloat64.
	Sum Kind = "sum"
	// Mean is AVG(col), through BoundedMean.
	Mean Kind = "mean"
	// Variance is VAR_POP/VAR_SAMP(col), through BoundedVariance.
	Variance Kind = "variance"
	// StdDev is STDDEV_POP/STDDEV_SAMP(col): the square root of BoundedVariance (post-processing).
	StdDev Kind = "stddev"
	// Quantiles is one or more QUANTILE_CONT/MEDIAN/MIN/MAX of one column sharing one
	// BoundedQuantiles tree, plus a small noisy row count that sizes the intervals.
	Quantiles Kind = "quantiles"
)

// Confidence is the level of every released interval.
const Confidence = 0.95

// quantileCountShare is the share of a Quantiles aggregate's budget spent on its row count,
// which only serves to size the confidence intervals.
const quantileCountShare = 0.1

// Spec describes one aggregate's mechanism. Worker and engine build it from the same plan.
type Spec struct {
	Kind Kind `json:"kind"`
	// Value is the index of the value expression this aggregate reads; -1 for COUNT(*) and
	// COUNT(DISTINCT unit). A CountDistinctValues value is read as an identity of the column's
	// value (the worker renders it as a hash), never as a number.
	Value int `json:"value"`
	// Lower and Upper are the catalog's per-row clamping bounds (every kind that reads values
	// except Count).
	Lower float64 `json:"lower,omitempty"`
	Upper float64 `json:"upper,omitempty"`
	// Ranks are the quantile ranks in [0, 1] (Quantiles only).
	Ranks []float64 `json:"ranks,omitempty"`
	// Epsilon and Delta are this aggregate's share of the job's budget.
	Epsilon float64 `json:"epsilon"`
	Delta   float64 `json:"delta"`
	// MaxPartitions (L0) and MaxPerPartition (L∞) are the enforced contribution bounds.
	MaxPartitions   int64 `json:"max_partitions"`
	MaxPerPartition int64 `json:"max_per_partition"`
}

// ReadsValues reports whether the aggregate reads a value column's per-row values.
func (s Spec) ReadsValues() bool { return s.Value >= 0 }

// ClampsValues reports whether the aggregate reads values and clamps them to [Lower, Upper]
// (so a kept value outside them biases it): not COUNT(col), whose values only mark NULL, nor
// COUNT(DISTINCT col), whose values are identities.
func (s Spec) ClampsValues() bool { return s.ReadsValues() && s.bounded() }

// bounded reports whether the kind clamps values to [Lower, Upper].
func (s Spec) bounded() bool {
	switch s.Kind {
	case Sum, Mean, Variance, StdDev, Quantiles:
		return true
	}
	return false
}

// Mechanism names the noise the spec uses (Laplace for delta 0, Gaussian otherwise).
func (s Spec) Mechanism() string {
	if s.Delta == 0 {
		return "laplace"
	}
	return "gaussian"
}

func (s Spec) noise() noise.Noise {
	if s.Delta == 0 {
		return noise.Laplace()
	}
	return noise.Gaussian()
}

// unitBounds returns the range of one unit's pre-aggregated contribution to a Sum partition.
func (s Spec) unitBounds() (lo, hi float64) {
	n := float64(s.MaxPerPartition)
	return math.Min(0, n*s.Lower), math.Max(0, n*s.Upper)
}

// midpoint is the library's normalisation centre for means and variances (same expression).
func (s Spec) midpoint() float64 { return s.Lower + (s.Upper-s.Lower)/2 }

// Component is one elementary noise addition of a mechanism: what the privacy accountant
// composes and what a dry run explains.
type Component struct {
	Name       string  `json:"name"`
	Mechanism  string  `json:"mechanism"`
	Epsilon    float64 `json:"epsilon"`
	Delta      float64 `json:"delta"`
	L0         int64   `json:"l0_sensitivity"`
	LInf       float64 `json:"linf_sensitivity"`
	NoiseScale float64 `json:"noise_stddev"`
}

func (s Spec) component(name string, eps, delta float64, l0 int64, lInf float64) Component {
	c := Component{Name: name, Mechanism: s.Mechanism(), Epsilon: eps, Delta: delta, L0: l0, LInf: lInf}
	if delta == 0 {
		c.NoiseScale = math.Sqrt2 * float64(l0) * lInf / eps
	} else {
		c.NoiseScale = noise.SigmaForGaussian(l0, lInf, eps, delta)
	}
	return c
}

// Components lists the spec's elementary noise additions with the budget shares and
// sensitivities the library uses for them (its own splits: BoundedMean halves the budget
// between count and sum, BoundedVariance thirds it; Quantiles noise every tree node with L0
// multiplied by the tree height).
func (s Spec) Components() []Component {
	l0, lInf := s.MaxPartitions, float64(s.MaxPerPartition)
	dist := s.Upper - s.midpoint()
	switch s.Kind {
	case CountDistinct:
		return []Component{s.component("count", s.Epsilon, s.Delta, l0, 1)}
	case Count, CountDistinctValues:
		return []Component{s.component("count", s.Epsilon, s.Delta, l0, lInf)}
	case Sum:
		lo, hi := s.unitBounds()
		return []Component{s.component("sum", s.Epsilon, s.Delta, l0, math.Max(math.Abs(lo), math.Abs(hi)))}
	case Mean:
		e, d := s.Epsilon/2, s.Delta/2
		return []Component{s.component("count", e, d, l0, lInf), s.component("normalized_sum", e, d, l0, lInf*dist)}
	case Variance, StdDev:
		e, d := s.Epsilon/3, s.Delta/3
		return []Component{s.component("count", e, d, l0, lInf), s.component("normalized_sum", e, d, l0, lInf*dist),
			s.component("normalized_sum_of_squares", s.Epsilon-2*e, s.Delta-2*d, l0, lInf*dist*dist)}
	case Quantiles:
		te, td, ce, cd := s.quantileSplit()
		return []Component{s.component("quantile_tree_node", te, td, l0*dpagg.DefaultTreeHeight, lInf),
			s.component("count", ce, cd, l0, lInf)}
	}
	return nil
}

func (s Spec) quantileSplit() (treeEps, treeDelta, countEps, countDelta float64) {
	countEps, countDelta = s.Epsilon*quantileCountShare, s.Delta*quantileCountShare
	return s.Epsilon - countEps, s.Delta - countDelta, countEps, countDelta
}

// main is the spec's main noise addition: the quantile tree's nodes, or the last (value)
// component of the others.
func (s Spec) main() Component {
	c := s.Components()
	switch {
	case len(c) == 0:
		return Component{L0: s.MaxPartitions}
	case s.Kind == Quantiles:
		return c[0]
	}
	return c[len(c)-1]
}

// Sensitivity returns the L0 and L∞ sensitivities of the spec's main noise addition.
func (s Spec) Sensitivity() (l0 int64, lInf float64) {
	m := s.main()
	return m.L0, m.LInf
}

// NoiseScale is the standard deviation of the spec's main noise addition (the library's own
// formulas: Laplace b·√2 with b = L0·L∞/ε; Gaussian σ), for explanations and provenance.
func (s Spec) NoiseScale() float64 { return s.main().NoiseScale }

// MaxEpsilon caps any single mechanism's epsilon. Beyond about 709 the library's Gaussian
// calibration underflows (its sampler would never return), and no useful release needs more.
const MaxEpsilon = 100

// Validate reports whether the library accepts the spec's parameters.
func (s Spec) Validate() error {
	if !(s.Epsilon > 0 && s.Epsilon <= MaxEpsilon) {
		return fmt.Errorf("dp: epsilon must be in (0, %d]", MaxEpsilon)
	}
	if s.bounded() && !(s.Lower < s.Upper) {
		return fmt.Errorf("dp: bounds must satisfy lower < upper")
	}
	switch s.Kind {
	case Count: // COUNT(*) reads none, COUNT(col) one
	case CountDistinctValues:
		if !s.ReadsValues() {
			return fmt.Errorf("dp: %s aggregates must read exactly one value column", s.Kind)
		}
	default:
		if s.bounded() != s.ReadsValues() {
			return fmt.Errorf("dp: %s aggregates must read exactly one value column", s.Kind)
		}
	}
	if s.Kind == Quantiles {
		if len(s.Ranks) == 0 {
			return fmt.Errorf("dp: a quantile aggregate needs at least one rank")
		}
		for _, r := range s.Ranks {
			if !(r >= 0 && r <= 1) {
				return fmt.Errorf("dp: quantile ranks must be in [0, 1]")
			}
		}
	}
	_, err := s.newAgg(0)
	return err
}

// Outputs is how many released values the spec yields per partition.
func (s Spec) Outputs() int {
	if s.Kind == Quantiles {
		return len(s.Ranks)
	}
	return 1
}

// Released is one noisy cell with what it cost.
type Released struct {
	Value     float64 `json:"value"`
	CILow     float64 `json:"ci_low"`
	CIHigh    float64 `json:"ci_high"`
	Mechanism string  `json:"mechanism"`
	Epsilon   float64 `json:"epsilon"`
	Delta     float64 `json:"delta"`
}

// Release decodes the worker's state (nil for a partition no unit reached), checks it was
// built with exactly this spec, adds noise once and computes the confidence intervals: one
// Released per output (Outputs), each stating the whole aggregate's epsilon and delta.
func (s Spec) Release(encoded []byte) ([]Released, error) {
	m, err := s.NewMaker(0)
	if err != nil {
		return nil, err
	}
	return m.Release(encoded)
}

// ReleaseSigned is Release without clamping counts and non-negative sums at 0 after noise:
// an unbiased noisy value, for post-processing that sums many of them (a histogram's tail,
// where clamping each bin at 0 would add the positive part of every bin's noise).
func (s Spec) ReleaseSigned(encoded []byte) ([]Released, error) {
	m, err := s.NewMaker(0)
	if err != nil {
		return nil, err
	}
	return m.ReleaseSigned(encoded)
}

// Release is Spec.Release with the maker's accumulators, for many partitions of one spec (a
// maker for release is made with units 0, as the engine never adds values).
func (m *Maker) Release(encoded []byte) ([]Released, error) {
	return m.release(encoded, m.s.nonNegative())
}

// ReleaseSigned is Spec.ReleaseSigned with the maker's accumulators.
func (m *Maker) ReleaseSigned(encoded []byte) ([]Released, error) { return m.release(encoded, false) }

func (m *Maker) release(encoded []byte, nonNegative bool) ([]Released, error) {
	s := m.s
	want, err := m.new()
	if err != nil {
		return nil, err
	}
	if encoded != nil {
		got, err := m.new()
		if err != nil {
			return nil, err
		}
		if err := got.decode(encoded); err != nil {
			return nil, fmt.Errorf("dp: decode worker state: %w", err)
		}
		if err := want.Merge(got); err != nil {
			return nil, fmt.Errorf("dp: worker state does not match the plan: %w", err)
		}
	}
	vals, err := want.results(1 - Confidence)
	if err != nil {
		return nil, err
	}
	out := make([]Released, len(vals))
	for i, v := range vals {
		if nonNegative {
			// Counts and sums of non-negative values cannot be negative; clamping the noisy value
			// is post-processing and costs no budget (the library clamps the interval likewise).
			v.value = math.Max(v.value, 0)
			v.lo, v.hi = math.Max(v.lo, 0), math.Max(v.hi, 0)
		}
		out[i] = Released{Value: v.value, CILow: math.Min(v.lo, v.value), CIHigh: math.Max(v.hi, v.value),
			Mechanism: s.Mechanism(), Epsilon: s.Epsilon, Delta: s.Delta}
	}
	return out, nil
}

func (s Spec) nonNegative() bool {
	switch s.Kind {
	case Count, CountDistinct, CountDistinctValues, Variance, StdDev:
		return true
	case Sum:
		lo, _ := s.unitBounds()
		return lo >= 0
	}
	return false
}

// grid returns the power of two to which contributions to a library float sum are truncated:
// fine enough to change nothing a noisy release could show, coarse enough that every partial
// sum of at most n contributions of magnitude at most m is a multiple of it below 2^53 of it.
// Float addition of such numbers is exact, so the pre-noise totals do not depend on the order
// in which units arrive (the worker's scan order varies) and a replay reproduces them bit for
// bit. It returns 0 (no truncation) when n is unknown (the engine's side never adds values).
func grid(m float64, n int64) float64 {
	total := m * float64(n)
	if n <= 0 || total == 0 || math.IsInf(total, 0) || math.IsNaN(total) {
		return 0
	}
	return math.Ldexp(1, math.Ilogb(total)-51)
}

// onGrid truncates v toward zero to a multiple of g, so it never leaves a clamp range that
// contains 0.
func onGrid(v, g float64) float64 {
	if g > 0 {
		return math.Trunc(v/g) * g
	}
	return v
}
