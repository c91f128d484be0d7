package ledger

import (
	"fmt"
	"math"
	"math/big"
	"strconv"
)

// Budget is an (epsilon, delta) differential-privacy budget or cost.
type Budget struct {
	Epsilon float64 `json:"epsilon"`
	Delta   float64 `json:"delta"`
}

// MaxEpsilon bounds any epsilon the ledger accepts, so sums of units cannot overflow int64.
const MaxEpsilon = 1e6

// Unit sizes: epsilon is counted in 1e-12, delta in 1e-18.
const (
	epsilonDigits = 12
	deltaDigits   = 18
)

var (
	epsilonScale = new(big.Int).Exp(big.NewInt(10), big.NewInt(epsilonDigits), nil)
	deltaScale   = new(big.Int).Exp(big.NewInt(10), big.NewInt(deltaDigits), nil)
)

// units is a Budget in exact integer units.
type units struct {
	eps, delta int64
}

func (u units) add(v units) units { return units{u.eps + v.eps, u.delta + v.delta} }
func (u units) sub(v units) units { return units{u.eps - v.eps, u.delta - v.delta} }

// exceeds reports whether u is more than limit in either component.
func (u units) exceeds(limit units) bool { return u.eps > limit.eps || u.delta > limit.delta }

// nonNegative clamps each component at zero.
func (u units) nonNegative() units { return units{max(u.eps, 0), max(u.delta, 0)} }

func (u units) budget() Budget {
	return Budget{Epsilon: fromUnits(u.eps, epsilonScale), Delta: fromUnits(u.delta, deltaScale)}
}

// validate refuses budgets the ledger cannot hold: negative, not finite, epsilon above
// MaxEpsilon, delta above 1.
func validate(b Budget) error {
	switch {
	case math.IsNaN(b.Epsilon) || math.IsInf(b.Epsilon, 0) || b.Epsilon < 0 || b.Epsilon > MaxEpsilon:
		return fmt.Errorf("ledger: epsilon %v outside [0, %g]: %w", b.Epsilon, float64(MaxEpsilon), ErrInvalidBudget)
	case math.IsNaN(b.Delta) || math.IsInf(b.Delta, 0) || b.Delta < 0 || b.Delta > 1:
		return fmt.Errorf("ledger: delta %v outside [0, 1]: %w", b.Delta, ErrInvalidBudget)
	}
	return nil
}

// costUnits converts a cost, rounding up: a cost is never undercounted.
func costUnits(b Budget) (units, error) {
	if err := validate(b); err != nil {
		return units{}, err
	}
	return units{toUnits(b.Epsilon, epsilonScale, true), toUnits(b.Delta, deltaScale, true)}, nil
}

// totalUnits converts a total, rounding down: a total is never overcounted.
func totalUnits(b Budget) (units, error) {
	if err := validate(b); err != nil {
		return units{}, err
	}
	return units{toUnits(b.Epsilon, epsilonScale, false), toUnits(b.Delta, deltaScale, false)}, nil
}

// toUnits converts v (finite, 0 ≤ v ≤ max so the result fits int64) to units of 1/scale. It
// reads v as its shortest decimal representation — the number a person wrote, 0.1 rather than
// 0.1000000000000000055… — and rounds up or down to a whole unit.
func toUnits(v float64, scale *big.Int, up bool) int64 {
	r, ok := new(big.Rat).SetString(strconv.FormatFloat(v, 'g', -1, 64))
	if !ok {
		panic("ledger: unparsable float " + strconv.FormatFloat(v, 'g', -1, 64))
	}
	r.Mul(r, new(big.Rat).SetInt(scale))
	q, m := new(big.Int).QuoRem(r.Num(), r.Denom(), new(big.Int))
	if up && m.Sign() > 0 {
		q.Add(q, big.NewInt(1))
	}
	return q.Int64()
}

// fromUnits returns the float64 nearest to n/scale.
func fromUnits(n int64, scale *big.Int) float64 {
	f, _ := new(big.Rat).SetFrac(big.NewInt(n), scale).Float64()
	return f
}
