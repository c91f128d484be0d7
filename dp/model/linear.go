package model

import (
	"math"
	"slices"
)

// LinearSpec is the public description of a linear regression both sides build from the same
// request: the worker to accumulate, the engine to decode and release.
type LinearSpec struct {
	Features []Feature `json:"features"`
	Label    Bounds    `json:"label"`
	// MaxRowsPerUnit bounds one privacy unit's contribution: AddUnit keeps a unit's first
	// MaxRowsPerUnit rows in the order the caller gives and drops the rest.
	MaxRowsPerUnit int `json:"max_rows_per_unit"`
}

// Validate checks the spec: one to MaxFeatures uniquely named features, finite bounds with
// lo < hi for each and for the label, MaxRowsPerUnit in [1, MaxRowsPerUnitLimit].
func (s LinearSpec) Validate() error {
	if err := validateFeatures(s.Features); err != nil {
		return err
	}
	if !s.Label.valid() {
		return fail(ErrInvalidBounds, "label: bounds must be finite with lo < hi")
	}
	return validateMaxRows(s.MaxRowsPerUnit)
}

// LinearSensitivity is the L2 sensitivity, in scaled units, of each pre-noise statistic of a
// linear regression: how far adding or removing one privacy unit (with at most M =
// MaxRowsPerUnit rows, each scaled into [−1, 1] with an intercept 1, so ‖x̃‖² ≤ p = d+1) can
// move it.
type LinearSensitivity struct {
	// XTX is for the upper triangle (diagonal included) of XᵀX: one row moves it by
	// √(Σ_{i≤j} x̃ᵢ²x̃ⱼ²) = √((‖x̃‖⁴ + Σx̃ᵢ⁴)/2) ≤ √(p(p+1)/2), so a unit by M·√(p(p+1)/2).
	// XᵀX[0][0] is the row count n.
	XTX float64 `json:"xtx"`
	// XTY is for Xᵀy: one row moves it by |y|·‖x̃‖ ≤ √p, a unit by M·√p. Xᵀy[0] is Σy.
	XTY float64 `json:"xty"`
	// YTY is for yᵀy: one row moves it by y² ≤ 1, a unit by M.
	YTY float64 `json:"yty"`
}

// Sensitivity returns the spec's sensitivities.
func (s LinearSpec) Sensitivity() LinearSensitivity {
	m, p := float64(s.MaxRowsPerUnit), float64(len(s.Features)+1)
	return LinearSensitivity{XTX: m * math.Sqrt(p*(p+1)/2), XTY: m * math.Sqrt(p), YTY: m}
}

func (s LinearSpec) fingerprint() [16]byte {
	h := (&hasher{}).i64(int64(kindLinear)).features(s.Features).f64(s.Label.Lo).f64(s.Label.Hi).i64(int64(s.MaxRowsPerUnit))
	return h.sum()
}

// quantum is the fixed-point scale of a scaled value in the linear sums: s ∈ [−1, 1] is
// stored as round(s·quantum) ∈ [−2¹⁵, 2¹⁵], so a product of two is at most 2³⁰ in magnitude
// and maxRows of them fit an int64 exactly. The rounding moves a scaled value by at most 2⁻¹⁶
// (1.5e-5 of the bounds' half-range), far below any noise the release adds.
const quantum = 1 << 15

func quantize(s float64) int64 { return int64(math.Round(s * quantum)) }

// Stats accumulates the pre-noise sufficient statistics of a linear regression: the upper
// triangle of ZᵀZ for the augmented rows z = (1, x₁…x_d, y), scaled and held as exact
// integers. It holds no row and adds no noise; it is what the worker computes and ships.
type Stats struct {
	spec LinearSpec
	d    int // features
	st   sums
	sc   []scaler // features, then the label
	z    []int64  // scratch: one augmented row
}

// NewStats returns an empty accumulator for spec. It keeps its own copy of the spec.
func NewStats(spec LinearSpec) (*Stats, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	spec.Features = append([]Feature(nil), spec.Features...)
	d := len(spec.Features)
	k := (d + 2) * (d + 3) / 2
	return &Stats{spec: spec, d: d, st: sums{kind: kindLinear, fp: spec.fingerprint(), s: make([]int64, k)}, z: make([]int64, d+2),
		sc: scalers(append(slices.Clone(spec.Features), Feature{Bounds: spec.Label}))}, nil
}

// Spec returns the spec the accumulator was made for.
func (s *Stats) Spec() LinearSpec { return s.spec }

// AddUnit adds one privacy unit's rows (each with one value per feature, in the spec's order)
// and their labels. Only the first MaxRowsPerUnit rows are kept, in the order given; the caller
// must order a unit's rows by a rule that depends only on that unit's own rows (a keyed hash of
// a row identifier, say — DESIGN.md §5), never on other units or on arrival order. Kept values
// are clipped to their bounds. A kept row of the wrong width or with a NaN or ±Inf value, or
// labels not matching rows one for one, refuses the whole unit (ErrShape, ErrNonFinite) and
// leaves the accumulator unchanged; dropped rows are not read. A unit with no rows adds nothing.
func (s *Stats) AddUnit(rows [][]float64, labels []float64) error {
	if len(labels) != len(rows) {
		return fail(ErrShape, "%d rows but %d labels", len(rows), len(labels))
	}
	kept := min(len(rows), s.spec.MaxRowsPerUnit)
	for i := 0; i < kept; i++ {
		if len(rows[i]) != s.d {
			return fail(ErrShape, "row %d has %d values, want %d", i, len(rows[i]), s.d)
		}
		for _, v := range rows[i] {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return fail(ErrNonFinite, "row %d holds a non-finite value", i)
			}
		}
		if math.IsNaN(labels[i]) || math.IsInf(labels[i], 0) {
			return fail(ErrNonFinite, "row %d holds a non-finite label", i)
		}
	}
	if kept == 0 {
		return nil
	}
	if s.st.rows+int64(kept) > maxRows {
		return fail(ErrOverflow, "more than %d rows in one state", int64(maxRows))
	}
	z, acc := s.z, s.st.s
	z[0] = quantum
	for i := 0; i < kept; i++ {
		for j, v := range rows[i] {
			z[j+1] = quantize(s.sc[j].scale(v))
		}
		z[s.d+1] = quantize(s.sc[s.d].scale(labels[i]))
		k := 0
		for a := range z {
			za := z[a]
			for _, zb := range z[a:] {
				acc[k] += za * zb
				k++
			}
		}
	}
	s.st.units++
	s.st.rows += int64(kept)
	return nil
}

// Merge adds another accumulator's sums (of disjoint units) into s. It refuses one made for a
// different spec (ErrStateMismatch) or that would exceed maxRows (ErrOverflow).
func (s *Stats) Merge(o *Stats) error { return s.st.merge(&o.st) }

// Encode returns the versioned pre-noise state (see state.go for the layout): the only thing
// the engine receives.
func (s *Stats) Encode() []byte { return s.st.encode() }

// DecodeStats reads a state Encode produced, for the spec the engine expects: a state computed
// for any other spec is refused (ErrStateMismatch), as is one whose counts or sums are
// impossible for its row count (ErrMalformedState). It never panics.
func DecodeStats(b []byte, spec LinearSpec) (*Stats, error) {
	s, err := NewStats(spec)
	if err != nil {
		return nil, err
	}
	st, err := decodeSums(b, kindLinear, s.st.fp, len(s.st.s))
	if err != nil {
		return nil, err
	}
	rows := uint64(st.rows)
	if st.units > st.rows || rows > mulLimit(uint64(st.units), uint64(spec.MaxRowsPerUnit)) {
		return nil, fail(ErrMalformedState, "state row and unit counts are inconsistent")
	}
	limit := mulLimit(rows, quantum*quantum)
	k := 0
	for a := 0; a < s.d+2; a++ {
		for b := a; b < s.d+2; b++ {
			v := st.s[k]
			if !absLE(v, limit) || a == b && v < 0 || a == 0 && b == 0 && uint64(v) != limit {
				return nil, fail(ErrMalformedState, "state sums out of range")
			}
			k++
		}
	}
	s.st = *st
	return s, nil
}

// at returns entry (a, b) of the scaled ZᵀZ.
func (s *Stats) at(a, b int) float64 {
	if a > b {
		a, b = b, a
	}
	n := s.d + 2
	k := a*n - a*(a-1)/2 + (b - a)
	return float64(s.st.s[k]) / (quantum * quantum)
}
