package dp

import (
	"fmt"

	"github.com/google/differential-privacy/go/v3/dpagg"
)

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
