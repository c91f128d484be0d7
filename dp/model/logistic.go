package model

import (
	"iter"
	"math"
	"slices"
)

// LogisticSpec is the public description of a logistic regression, shared by the worker and
// the engine.
type LogisticSpec struct {
	Features []Feature `json:"features"`
	// MaxRowsPerUnit bounds one unit's rows, as in LinearSpec (first rows in caller order).
	MaxRowsPerUnit int `json:"max_rows_per_unit"`
	// Clip is C, the L2 norm to which one unit's gradient (the sum of its kept rows' gradients
	// of the log loss, in scaled units) is clipped: the sensitivity of every gradient sum.
	// One row's gradient has norm at most √(d+1), so C ≥ MaxRowsPerUnit·√(d+1) never clips;
	// a smaller C trades clipping bias for less noise. 1 is a good start.
	Clip float64 `json:"clip"`
}

// Validate checks the features as LinearSpec does, MaxRowsPerUnit, and that Clip is positive
// and finite.
func (s LogisticSpec) Validate() error {
	if err := validateFeatures(s.Features); err != nil {
		return err
	}
	if err := validateMaxRows(s.MaxRowsPerUnit); err != nil {
		return err
	}
	if !(s.Clip > 0) || math.IsInf(s.Clip, 0) {
		return fail(ErrInvalidSpec, "clip must be positive and finite")
	}
	return nil
}

// Step is what the engine tells the worker for one pass over the data: the iteration (0 …
// T−1 for gradients, T for the confusion counts) and the current coefficients θ in scaled
// units, intercept first. θ is computed from released noisy values only (post-processing), so
// sending it to the worker leaks nothing.
type Step struct {
	Iteration int       `json:"iteration"`
	Theta     []float64 `json:"theta"`
}

func (s LogisticSpec) fingerprint(kind byte, st Step) [16]byte {
	h := (&hasher{}).i64(int64(kind)).features(s.Features).i64(int64(s.MaxRowsPerUnit)).f64(s.Clip)
	h.i64(int64(st.Iteration)).i64(int64(len(st.Theta)))
	for _, v := range st.Theta {
		h.f64(v)
	}
	return h.sum()
}

func (s LogisticSpec) checkStep(st Step) error {
	if st.Iteration < 0 || len(st.Theta) != len(s.Features)+1 {
		return fail(ErrInvalidParams, "step must have a non-negative iteration and %d coefficients", len(s.Features)+1)
	}
	for _, v := range st.Theta {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fail(ErrInvalidParams, "step coefficients must be finite")
		}
	}
	return nil
}

// gradQuantum is the fixed-point scale of a clipped unit gradient: g/C ∈ [−1, 1] per
// coordinate is stored as round(g/C·2³⁰). The rounding moves the vector by at most
// √(d+1)·2⁻³¹·C ≤ 4e-9·C (d ≤ MaxFeatures), which clipping to C·(1 − clipMargin) absorbs, so
// a stored unit gradient has norm at most C exactly.
const (
	gradQuantum = 1 << 30
	clipMargin  = 1e-6
)

// checkLogisticUnit validates a unit's kept rows (shared by Gradient and Confusion) and
// returns how many are kept.
func checkLogisticUnit(d, m int, rows [][]float64, labels []bool) (kept int, err error) {
	if len(labels) != len(rows) {
		return 0, fail(ErrShape, "%d rows but %d labels", len(rows), len(labels))
	}
	kept = min(len(rows), m)
	for i := 0; i < kept; i++ {
		if len(rows[i]) != d {
			return 0, fail(ErrShape, "row %d has %d values, want %d", i, len(rows[i]), d)
		}
		for _, v := range rows[i] {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return 0, fail(ErrNonFinite, "row %d holds a non-finite value", i)
			}
		}
	}
	return kept, nil
}

// margin returns θ·x̃ for a raw row, x̃ = (1, scaled values).
func margin(sc []scaler, theta, row []float64) float64 {
	z := theta[0]
	for j, v := range row {
		z += theta[j+1] * sc[j].scale(v)
	}
	return z
}

// Gradient accumulates, for one step, the sum over units of each unit's clipped gradient of
// the log loss at the step's θ. It holds no row and adds no noise: it is what the worker runs
// per iteration (GradientSum is the same over an iterator of units).
type Gradient struct {
	spec LogisticSpec
	step Step
	st   sums
	sc   []scaler
	g    []float64 // scratch: one unit's gradient
}

// NewGradient returns an empty gradient sum for spec at step.
func NewGradient(spec LogisticSpec, step Step) (*Gradient, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	if err := spec.checkStep(step); err != nil {
		return nil, err
	}
	spec.Features = slices.Clone(spec.Features)
	step.Theta = slices.Clone(step.Theta)
	p := len(spec.Features) + 1
	return &Gradient{spec: spec, step: step, st: sums{kind: kindGradient, fp: spec.fingerprint(kindGradient, step), s: make([]int64, p)},
		sc: scalers(spec.Features), g: make([]float64, p)}, nil
}

// AddUnit adds one unit: the gradient Σ (σ(θ·x̃) − y)·x̃ over its first MaxRowsPerUnit rows
// (caller order, as Stats.AddUnit), clipped to L2 norm Clip, joins the sum. Bad rows refuse the
// unit as in Stats.AddUnit.
func (g *Gradient) AddUnit(rows [][]float64, labels []bool) error {
	kept, err := checkLogisticUnit(len(g.spec.Features), g.spec.MaxRowsPerUnit, rows, labels)
	if err != nil || kept == 0 {
		return err
	}
	if g.st.rows+int64(kept) > maxRows {
		return fail(ErrOverflow, "more than %d rows in one state", int64(maxRows))
	}
	gr, sc, theta := g.g, g.sc, g.step.Theta
	clear(gr)
	for i := 0; i < kept; i++ {
		r := sigmoid(margin(sc, theta, rows[i]))
		if labels[i] {
			r--
		}
		gr[0] += r
		for j, v := range rows[i] {
			gr[j+1] += r * sc[j].scale(v)
		}
	}
	var norm float64
	for _, v := range gr {
		norm += v * v
	}
	c := g.spec.Clip * (1 - clipMargin)
	f := 1.0
	if norm = math.Sqrt(norm); norm > c {
		f = c / norm
	}
	for j, v := range gr {
		g.st.s[j] += int64(math.Round(v * f / g.spec.Clip * gradQuantum))
	}
	g.st.units++
	g.st.rows += int64(kept)
	return nil
}

// Merge adds another gradient sum of the same spec and step (ErrStateMismatch otherwise).
func (g *Gradient) Merge(o *Gradient) error { return g.st.merge(&o.st) }

// Encode returns the versioned pre-noise state.
func (g *Gradient) Encode() []byte { return g.st.encode() }

// DecodeGradient reads a gradient state computed for spec at step, refusing any other
// (ErrStateMismatch) or impossible sums (ErrMalformedState). It never panics.
func DecodeGradient(b []byte, spec LogisticSpec, step Step) (*Gradient, error) {
	g, err := NewGradient(spec, step)
	if err != nil {
		return nil, err
	}
	st, err := decodeSums(b, kindGradient, g.st.fp, len(g.st.s))
	if err != nil {
		return nil, err
	}
	if err := checkCounts(st, spec.MaxRowsPerUnit); err != nil {
		return nil, err
	}
	limit := mulLimit(uint64(st.units), gradQuantum)
	for _, v := range st.s {
		if !absLE(v, limit) {
			return nil, fail(ErrMalformedState, "state sums out of range")
		}
	}
	g.st = *st
	return g, nil
}

func checkCounts(st *sums, m int) error {
	if st.units > st.rows || uint64(st.rows) > mulLimit(uint64(st.units), uint64(m)) {
		return fail(ErrMalformedState, "state row and unit counts are inconsistent")
	}
	return nil
}

// sum returns the gradient sum in scaled units.
func (g *Gradient) sum() []float64 {
	out := make([]float64, len(g.st.s))
	for i, v := range g.st.s {
		out[i] = float64(v) / gradQuantum * g.spec.Clip
	}
	return out
}

// Confusion counts, for the final θ, the kept rows by label and prediction (θ·x̃ > 0): the
// pre-noise confusion matrix. Like Gradient, it holds no row and adds no noise.
type Confusion struct {
	spec LogisticSpec
	step Step
	st   sums // s = [true positives, false positives, false negatives, true negatives]
	sc   []scaler
}

// NewConfusion returns empty confusion counts for spec at the final step.
func NewConfusion(spec LogisticSpec, step Step) (*Confusion, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	if err := spec.checkStep(step); err != nil {
		return nil, err
	}
	spec.Features = slices.Clone(spec.Features)
	step.Theta = slices.Clone(step.Theta)
	return &Confusion{spec: spec, step: step, st: sums{kind: kindConfusion, fp: spec.fingerprint(kindConfusion, step), s: make([]int64, 4)}, sc: scalers(spec.Features)}, nil
}

// AddUnit counts one unit's first MaxRowsPerUnit rows (as Gradient.AddUnit).
func (c *Confusion) AddUnit(rows [][]float64, labels []bool) error {
	kept, err := checkLogisticUnit(len(c.spec.Features), c.spec.MaxRowsPerUnit, rows, labels)
	if err != nil || kept == 0 {
		return err
	}
	if c.st.rows+int64(kept) > maxRows {
		return fail(ErrOverflow, "more than %d rows in one state", int64(maxRows))
	}
	for i := 0; i < kept; i++ {
		pred := margin(c.sc, c.step.Theta, rows[i]) > 0
		switch {
		case labels[i] && pred:
			c.st.s[0]++
		case !labels[i] && pred:
			c.st.s[1]++
		case labels[i]:
			c.st.s[2]++
		default:
			c.st.s[3]++
		}
	}
	c.st.units++
	c.st.rows += int64(kept)
	return nil
}

// Merge adds other counts of the same spec and step (ErrStateMismatch otherwise).
func (c *Confusion) Merge(o *Confusion) error { return c.st.merge(&o.st) }

// Encode returns the versioned pre-noise state.
func (c *Confusion) Encode() []byte { return c.st.encode() }

// DecodeConfusion reads confusion counts computed for spec at step (see DecodeGradient).
func DecodeConfusion(b []byte, spec LogisticSpec, step Step) (*Confusion, error) {
	c, err := NewConfusion(spec, step)
	if err != nil {
		return nil, err
	}
	st, err := decodeSums(b, kindConfusion, c.st.fp, 4)
	if err != nil {
		return nil, err
	}
	if err := checkCounts(st, spec.MaxRowsPerUnit); err != nil {
		return nil, err
	}
	var total int64
	for _, v := range st.s {
		if v < 0 || v > st.rows {
			return nil, fail(ErrMalformedState, "state counts out of range")
		}
		total += v
	}
	if total != st.rows {
		return nil, fail(ErrMalformedState, "confusion counts do not add up to the rows")
	}
	c.st = *st
	return c, nil
}

// Units is a dataset's privacy units as the worker reads them: each unit's rows, in the order
// that decides which are kept, and their labels.
type Units = iter.Seq2[[][]float64, []bool]

// GradientSum is the worker's pass for one gradient step: the pre-noise sum over units.
func GradientSum(spec LogisticSpec, step Step, units Units) (*Gradient, error) {
	g, err := NewGradient(spec, step)
	if err != nil {
		return nil, err
	}
	for rows, labels := range units {
		if err := g.AddUnit(rows, labels); err != nil {
			return nil, err
		}
	}
	return g, nil
}

// ConfusionCounts is the worker's final pass: the pre-noise confusion counts at step.
func ConfusionCounts(spec LogisticSpec, step Step, units Units) (*Confusion, error) {
	c, err := NewConfusion(spec, step)
	if err != nil {
		return nil, err
	}
	for rows, labels := range units {
		if err := c.AddUnit(rows, labels); err != nil {
			return nil, err
		}
	}
	return c, nil
}

func sigmoid(z float64) float64 {
	if z >= 0 {
		return 1 / (1 + math.Exp(-z))
	}
	e := math.Exp(z)
	return e / (1 + e)
}
