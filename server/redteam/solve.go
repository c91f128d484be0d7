package redteam

import (
	"errors"
	"fmt"
	"math"

	"gonum.org/v1/gonum/mat"
)

// subsetSums is a Dinur–Nissim system: row j of design selects the unknowns summed by query j,
// and the last column (all ones) is the padding every query adds to dodge small-group rules.
type subsetSums struct {
	design *mat.Dense // m × (n+1)
}

// newSubsetSums draws m random non-empty subsets of n targets, each target in each subset
// with probability 1/2, plus the padding column.
func newSubsetSums(m, n int, coin func() bool) subsetSums {
	d := mat.NewDense(m, n+1, nil)
	for j := range m {
		for empty := true; empty; {
			for i := range n {
				v := 0.0
				if coin() {
					v, empty = 1, false
				}
				d.Set(j, i, v)
			}
		}
		d.Set(j, n, 1)
	}
	return subsetSums{design: d}
}

// in reports whether target i is in subset j.
func (s subsetSums) in(j, i int) bool { return s.design.At(j, i) == 1 }

// solve finds the least-squares solution of design · x = answers (QR), and returns the n
// targets' estimates without the padding. answers[j] is NaN for a query without an answer;
// those rows are left out.
func (s subsetSums) solve(answers []float64) ([]float64, error) {
	m, cols := s.design.Dims()
	var rows []int
	for j := range m {
		if !math.IsNaN(answers[j]) {
			rows = append(rows, j)
		}
	}
	if len(rows) < cols {
		return nil, fmt.Errorf("redteam: %d answered queries for %d unknowns: %w", len(rows), cols, errUnderdetermined)
	}
	a := mat.NewDense(len(rows), cols, nil)
	b := mat.NewDense(len(rows), 1, nil)
	for r, j := range rows {
		a.SetRow(r, s.design.RawRowView(j))
		b.Set(r, 0, answers[j])
	}
	var x mat.Dense
	if err := x.Solve(a, b); err != nil {
		// mat.Condition is a warning that the solution is inaccurate; anything else means none.
		var cond mat.Condition
		if !errors.As(err, &cond) {
			return nil, fmt.Errorf("redteam: least squares: %w", err)
		}
	}
	out := make([]float64, cols-1)
	for i := range out {
		out[i] = x.At(i, 0)
	}
	return out, nil
}

// noiseGain is how a query's noise carries into the targets' estimates: the root mean of the
// diagonal of (AᵀA)⁻¹ over the targets, so an estimate's half-width is the query's times this.
func (s subsetSums) noiseGain() float64 {
	var ata, inv mat.Dense
	ata.Mul(s.design.T(), s.design)
	if err := inv.Inverse(&ata); err != nil {
		var cond mat.Condition
		if !errors.As(err, &cond) {
			return math.Inf(1)
		}
	}
	_, cols := s.design.Dims()
	sum := 0.0
	for i := range cols - 1 {
		sum += inv.At(i, i)
	}
	return math.Sqrt(sum / float64(cols-1))
}

// errUnderdetermined: too few answered queries to solve for every target.
var errUnderdetermined = errors.New("underdetermined system")
