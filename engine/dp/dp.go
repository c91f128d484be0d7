// Package dp holds cleanroom's differential-privacy mechanisms, all built from Google's
// differential-privacy library (dpagg); nothing here draws noise of its own.
//
//	sandbox worker                              engine (parent)
//	per unit, bounded ──▶ Accumulator.AddUnit    Spec.Release(encoded) ──▶ noisy value + 95% CI
//	                      Accumulator.Encode ──(gob over the pipe)──▶ Merge into a fresh,
//	                                                                 expected-parameter object
//
// The worker feeds one contribution per privacy unit per partition (the library requires the
// caller to bound contributions) and ships the library's own serialized pre-noise state; the
// engine decodes it, merges it into an aggregation it constructed from the plan — dpagg's Merge
// refuses a state whose epsilon, delta, sensitivity, bounds or noise differ, so a worker cannot
// weaken the mechanism — and draws the noise once, at release.
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
	Count         Kind = "count"          // COUNT(*): bounded rows per unit per partition
	CountDistinct Kind = "count_distinct" // COUNT(DISTINCT privacy unit)
	Sum           Kind = "sum"            // SUM(col): per-row clamp, per-unit pre-aggregation
)

// Confidence is the level of every released interval.
const Confidence = 0.95

// Spec describes one aggregate's mechanism. Worker and engine build it from the same plan.
type Spec struct {
	Kind Kind `json:"kind"`
	// Value is the index of the value expression this aggregate reads; -1 for counts.
	Value int `json:"value"`
	// Lower and Upper are the catalog's per-row clamping bounds (Sum only).
	Lower float64 `json:"lower,omitempty"`
	Upper float64 `json:"upper,omitempty"`
	// Epsilon and Delta are this aggregate's share of the job's budget.
	Epsilon float64 `json:"epsilon"`
	Delta   float64 `json:"delta"`
	// MaxPartitions (L0) and MaxPerPartition (L∞) are the enforced contribution bounds.
	MaxPartitions   int64 `json:"max_partitions"`
	MaxPerPartition int64 `json:"max_per_partition"`
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

// unitBounds returns the range of one unit's pre-aggregated contribution to a partition.
func (s Spec) unitBounds() (lo, hi float64) {
	n := float64(s.MaxPerPartition)
	return math.Min(0, n*s.Lower), math.Max(0, n*s.Upper)
}

// Sensitivity returns the L0 and L∞ sensitivities the mechanism is calibrated to.
func (s Spec) Sensitivity() (l0 int64, lInf float64) {
	switch s.Kind {
	case CountDistinct:
		return s.MaxPartitions, 1
	case Count:
		return s.MaxPartitions, float64(s.MaxPerPartition)
	default:
		lo, hi := s.unitBounds()
		return s.MaxPartitions, math.Max(math.Abs(lo), math.Abs(hi))
	}
}

// NoiseScale is the standard deviation of the noise the mechanism adds, for explanations and
// provenance (the library's own formulas: Laplace b·√2 with b = L0·L∞/ε; Gaussian σ).
func (s Spec) NoiseScale() float64 {
	l0, lInf := s.Sensitivity()
	if s.Delta == 0 {
		return math.Sqrt2 * float64(l0) * lInf / s.Epsilon
	}
	return noise.SigmaForGaussian(l0, lInf, s.Epsilon, s.Delta)
}

// MaxEpsilon caps any single mechanism's epsilon. Beyond about 709 the library's Gaussian
// calibration underflows (its sampler would never return), and no useful release needs more.
const MaxEpsilon = 100

// Validate reports whether the library accepts the spec's parameters.
func (s Spec) Validate() error {
	if !(s.Epsilon > 0 && s.Epsilon <= MaxEpsilon) {
		return fmt.Errorf("dp: epsilon must be in (0, %d]", MaxEpsilon)
	}
	_, err := s.newAgg()
	return err
}

// Accumulator is one partition's pre-noise aggregation inside the worker.
type Accumulator interface {
	// AddUnit adds one privacy unit's already-bounded contribution: its row count (≤ L∞)
	// and the sum of its clamped values (Sum only).
	AddUnit(rows int64, sum float64) error
	// Merge folds another accumulator of the same spec into this one.
	Merge(other Accumulator) error
	// Encode serializes the library's pre-noise state for the engine.
	Encode() ([]byte, error)
}

// NewAccumulator returns an empty accumulator for the spec.
func (s Spec) NewAccumulator() (Accumulator, error) { return s.newAgg() }

func (s Spec) newAgg() (agg, error) {
	switch s.Kind {
	case Count:
		bs, err := dpagg.NewBoundedSumInt64(&dpagg.BoundedSumInt64Options{
			Epsilon: s.Epsilon, Delta: s.Delta, MaxPartitionsContributed: s.MaxPartitions,
			Lower: 0, Upper: s.MaxPerPartition, Noise: s.noise(),
		})
		if err != nil {
			return nil, err
		}
		return &countAcc{bs}, nil
	case CountDistinct:
		c, err := dpagg.NewCount(&dpagg.CountOptions{
			Epsilon: s.Epsilon, Delta: s.Delta, MaxPartitionsContributed: s.MaxPartitions, Noise: s.noise(),
		})
		if err != nil {
			return nil, err
		}
		return &distinctAcc{c}, nil
	case Sum:
		lo, hi := s.unitBounds()
		if !(s.Lower < s.Upper) {
			return nil, fmt.Errorf("dp: sum bounds must satisfy lower < upper")
		}
		bs, err := dpagg.NewBoundedSumFloat64(&dpagg.BoundedSumFloat64Options{
			Epsilon: s.Epsilon, Delta: s.Delta, MaxPartitionsContributed: s.MaxPartitions,
			Lower: lo, Upper: hi, Noise: s.noise(),
		})
		if err != nil {
			return nil, err
		}
		return &sumAcc{bs}, nil
	}
	return nil, fmt.Errorf("dp: unknown aggregate kind %q", s.Kind)
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
// built with exactly this spec, adds noise once and computes the confidence interval.
func (s Spec) Release(encoded []byte) (Released, error) {
	want, err := s.newAgg()
	if err != nil {
		return Released{}, err
	}
	if encoded != nil {
		got, err := s.newAgg()
		if err != nil {
			return Released{}, err
		}
		if err := got.decode(encoded); err != nil {
			return Released{}, fmt.Errorf("dp: decode worker state: %w", err)
		}
		if err := want.Merge(got); err != nil {
			return Released{}, fmt.Errorf("dp: worker state does not match the plan: %w", err)
		}
	}
	v, ci, err := want.result(1 - Confidence)
	if err != nil {
		return Released{}, err
	}
	if lo, _ := s.unitBounds(); lo >= 0 {
		// Counts and sums of non-negative values cannot be negative; clamping the noisy value
		// is post-processing and costs no budget (the library clamps the interval likewise).
		v = math.Max(v, 0)
	}
	return Released{Value: v, CILow: ci.LowerBound, CIHigh: ci.UpperBound,
		Mechanism: s.Mechanism(), Epsilon: s.Epsilon, Delta: s.Delta}, nil
}

type agg interface {
	Accumulator
	decode([]byte) error
	result(alpha float64) (float64, noise.ConfidenceInterval, error)
}

type countAcc struct{ bs *dpagg.BoundedSumInt64 }

func (a *countAcc) AddUnit(rows int64, _ float64) error { return a.bs.Add(rows) }
func (a *countAcc) Encode() ([]byte, error)             { return a.bs.GobEncode() }
func (a *countAcc) decode(b []byte) error               { return a.bs.GobDecode(b) }
func (a *countAcc) Merge(o Accumulator) error {
	b, ok := o.(*countAcc)
	if !ok {
		return fmt.Errorf("dp: merge of different kinds")
	}
	return a.bs.Merge(b.bs)
}
func (a *countAcc) result(alpha float64) (float64, noise.ConfidenceInterval, error) {
	v, err := a.bs.Result()
	if err != nil {
		return 0, noise.ConfidenceInterval{}, err
	}
	ci, err := a.bs.ComputeConfidenceInterval(alpha)
	return float64(v), ci, err
}

type distinctAcc struct{ c *dpagg.Count }

func (a *distinctAcc) AddUnit(int64, float64) error { return a.c.Increment() }
func (a *distinctAcc) Encode() ([]byte, error)      { return a.c.GobEncode() }
func (a *distinctAcc) decode(b []byte) error        { return a.c.GobDecode(b) }
func (a *distinctAcc) Merge(o Accumulator) error {
	b, ok := o.(*distinctAcc)
	if !ok {
		return fmt.Errorf("dp: merge of different kinds")
	}
	return a.c.Merge(b.c)
}
func (a *distinctAcc) result(alpha float64) (float64, noise.ConfidenceInterval, error) {
	v, err := a.c.Result()
	if err != nil {
		return 0, noise.ConfidenceInterval{}, err
	}
	ci, err := a.c.ComputeConfidenceInterval(alpha)
	return float64(v), ci, err
}

type sumAcc struct{ bs *dpagg.BoundedSumFloat64 }

func (a *sumAcc) AddUnit(_ int64, sum float64) error { return a.bs.Add(sum) }
func (a *sumAcc) Encode() ([]byte, error)            { return a.bs.GobEncode() }
func (a *sumAcc) decode(b []byte) error              { return a.bs.GobDecode(b) }
func (a *sumAcc) Merge(o Accumulator) error {
	b, ok := o.(*sumAcc)
	if !ok {
		return fmt.Errorf("dp: merge of different kinds")
	}
	return a.bs.Merge(b.bs)
}
func (a *sumAcc) result(alpha float64) (float64, noise.ConfidenceInterval, error) {
	v, err := a.bs.Result()
	if err != nil {
		return 0, noise.ConfidenceInterval{}, err
	}
	ci, err := a.bs.ComputeConfidenceInterval(alpha)
	return v, ci, err
}

// Selection describes DP partition selection (PreAggSelectPartition) for non-public keys.
type Selection struct {
	Epsilon       float64 `json:"epsilon"`
	Delta         float64 `json:"delta"`
	MaxPartitions int64   `json:"max_partitions"`
}

func (s Selection) new() (*dpagg.PreAggSelectPartition, error) {
	return dpagg.NewPreAggSelectPartition(&dpagg.PreAggSelectPartitionOptions{
		Epsilon: s.Epsilon, Delta: s.Delta, MaxPartitionsContributed: s.MaxPartitions,
	})
}

// Validate reports whether the library accepts the selection's parameters.
func (s Selection) Validate() error {
	if !(s.Epsilon > 0 && s.Epsilon <= MaxEpsilon) {
		return fmt.Errorf("dp: epsilon must be in (0, %d]", MaxEpsilon)
	}
	_, err := s.new()
	return err
}

// Selector counts a partition's distinct units inside the worker.
type Selector struct{ p *dpagg.PreAggSelectPartition }

// NewSelector returns an empty selector.
func (s Selection) NewSelector() (*Selector, error) {
	p, err := s.new()
	if err != nil {
		return nil, err
	}
	return &Selector{p}, nil
}

// AddUnit counts one more unit in the partition.
func (s *Selector) AddUnit() error { return s.p.Increment() }

// Merge folds another selector of the same selection into this one.
func (s *Selector) Merge(o *Selector) error { return s.p.Merge(o.p) }

// Encode serializes the pre-selection state.
func (s *Selector) Encode() ([]byte, error) { return s.p.GobEncode() }

// Keep decodes a worker's state, checks its parameters and decides, with the library's
// randomness, whether the partition may appear at all.
func (s Selection) Keep(encoded []byte) (bool, error) {
	want, err := s.new()
	if err != nil {
		return false, err
	}
	got, err := s.new()
	if err != nil {
		return false, err
	}
	if err := got.GobDecode(encoded); err != nil {
		return false, fmt.Errorf("dp: decode worker selection state: %w", err)
	}
	if err := want.Merge(got); err != nil {
		return false, fmt.Errorf("dp: worker selection state does not match the plan: %w", err)
	}
	return want.ShouldKeepPartition()
}
