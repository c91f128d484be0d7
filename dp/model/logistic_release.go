package model

import (
	"fmt"
	"math"
	"slices"

	"github.com/c1b99f93/cleanroom/dp"
	"github.com/c1b99f93/cleanroom/dp/accountant"
)

// Budget shares of a logistic fit, as fractions of μ² (see budget): the noisy row count that
// normalises the gradient, the final confusion counts, and the gradient sums, split evenly
// over the iterations.
const (
	ShareCount     = 0.02
	ShareConfusion = 0.08
	ShareGradients = 0.90
)

// Defaults and limits of LogisticParams.
const (
	DefaultIterations = 100
	MaxIterations     = 10000
)

// LogisticParams are a logistic fit's budget and optimisation settings. Only Epsilon and Delta
// affect privacy; the rest is post-processing.
type LogisticParams struct {
	// Epsilon and Delta are the whole fit's budget: ε > 0, 0 < δ < 1.
	Epsilon float64 `json:"epsilon"`
	Delta   float64 `json:"delta"`
	// Iterations is T, the number of full-batch gradient steps; 0 means DefaultIterations.
	Iterations int `json:"iterations,omitempty"`
	// StepSize is η; 0 means 4/(d+1)·2: the log loss of a row has curvature at most ‖x̃‖²/4 ≤
	// (d+1)/4, and the factor 2 with momentum (below) was measured to converge in 100 steps.
	StepSize float64 `json:"step_size,omitempty"`
	// L2 is an optional ridge penalty (λ/2)‖θ‖² on the scaled coefficients, intercept
	// included; 0 means none.
	L2 float64 `json:"l2,omitempty"`
}

func (p LogisticParams) withDefaults(d int) (LogisticParams, error) {
	if err := validateBudget(p.Epsilon, p.Delta); err != nil {
		return p, err
	}
	if p.Iterations == 0 {
		p.Iterations = DefaultIterations
	}
	if p.Iterations < 1 || p.Iterations > MaxIterations {
		return p, fail(ErrInvalidParams, "iterations must be in [1, %d]", MaxIterations)
	}
	if p.StepSize == 0 {
		p.StepSize = 8 / float64(d+1)
	}
	if !(p.StepSize > 0) || math.IsInf(p.StepSize, 0) {
		return p, fail(ErrInvalidParams, "step size must be positive and finite")
	}
	if !(p.L2 >= 0) || math.IsInf(p.L2, 0) {
		return p, fail(ErrInvalidParams, "l2 must be non-negative and finite")
	}
	return p, nil
}

// ConfusionMatrix holds noisy row counts by label and prediction.
type ConfusionMatrix struct {
	TruePositives  float64 `json:"true_positives"`
	FalsePositives float64 `json:"false_positives"`
	FalseNegatives float64 `json:"false_negatives"`
	TrueNegatives  float64 `json:"true_negatives"`
}

// LogisticModel is a released logistic regression: P(label) = σ(Intercept + Σ
// Coefficients[j]·x_j), fit on values clipped to the spec's bounds. Coefficient intervals are
// not released (Lower = Upper = Value). Per-row predictions are never released.
type LogisticModel struct {
	Coefficients []Coefficient `json:"coefficients"`
	Intercept    Coefficient   `json:"intercept"`
	// Accuracy is (TP + TN)/(TP + FP + FN + TN) of the noisy confusion counts of the final
	// model on the same kept rows, clamped to [0, 1].
	Accuracy  float64         `json:"accuracy"`
	Confusion ConfusionMatrix `json:"confusion"`
	// N is the noisy number of rows (the gradient normaliser).
	N          float64 `json:"n"`
	Iterations int     `json:"iterations"`
	Epsilon    float64 `json:"epsilon"`
	Delta      float64 `json:"delta"`
	// Components are the T + 2 noise additions as the ledger records them; Accounting is the
	// accountant's report of them.
	Components []dp.Component    `json:"components"`
	Accounting accountant.Report `json:"accounting"`
}

// Probability returns the model's probability of a positive label for one row (spec order);
// values are not clipped.
func (m *LogisticModel) Probability(x []float64) float64 {
	return sigmoid(linearPredictor(m.Intercept, m.Coefficients, x))
}

// LogisticFit is the engine's side of a logistic fit: it hands out steps, adds the noise to
// each pre-noise gradient sum and takes the step, and finally releases the model.
//
// Mechanism (sensitivities in scaled units, per added or removed unit):
//   - iteration 0 also noises the row count, sensitivity MaxRowsPerUnit, share ShareCount;
//   - iteration t noises the gradient sum, sensitivity Clip (each unit's gradient is clipped
//     to it), share ShareGradients/T;
//   - after T iterations the confusion counts of the final model are noised, sensitivity
//     MaxRowsPerUnit (a unit's kept rows fall in the four cells, so the count vector moves by
//     at most √Σcᵢ² ≤ Σcᵢ ≤ M), share ShareConfusion.
//
// There is no subsampling, so each step is exactly a Gaussian mechanism and the T + 2 of them,
// adaptively composed, are one μ-GDP mechanism (Dong, Roth & Su 2019, Corollary 3.3): the
// whole fit is (ε, δ)-DP, which NewLogisticFit checks with dp/accountant before any noise
// is drawn. The update θ ← θ − η·(v + ĝ/n̂ + λθ)-with-momentum reads released values only.
type LogisticFit struct {
	spec  LogisticSpec
	p     LogisticParams
	b     budget
	comps []dp.Component
	rep   accountant.Report
	t     int
	n     float64   // noisy rows, from iteration 0
	theta []float64 // scaled, intercept first
	vel   []float64 // momentum
	done  bool
}

// momentum is the heavy-ball coefficient of the update (post-processing).
const momentum = 0.5

// NewLogisticFit prepares a fit for spec with params p.
func NewLogisticFit(spec LogisticSpec, p LogisticParams) (*LogisticFit, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	p, err := p.withDefaults(len(spec.Features))
	if err != nil {
		return nil, err
	}
	spec.Features = slices.Clone(spec.Features)
	b := budget{p.Epsilon, p.Delta}
	m := float64(spec.MaxRowsPerUnit)
	comps := []dp.Component{b.component("row_count", m, ShareCount)}
	for t := 0; t < p.Iterations; t++ {
		comps = append(comps, b.component(fmt.Sprintf("gradient_%d", t), spec.Clip, ShareGradients/float64(p.Iterations)))
	}
	comps = append(comps, b.component("confusion", m, ShareConfusion))
	rep, err := b.checkAccounting(comps)
	if err != nil {
		return nil, err
	}
	pp := len(spec.Features) + 1
	return &LogisticFit{spec: spec, p: p, b: b, comps: comps, rep: rep, theta: make([]float64, pp), vel: make([]float64, pp)}, nil
}

// Components are the fit's noise additions (the row count, one per gradient step, the
// confusion counts), as the ledger records them.
func (f *LogisticFit) Components() []dp.Component { return slices.Clone(f.comps) }

// Next returns the step the worker must run next: a gradient pass while Gradient reports true,
// then (Iteration = T) the confusion pass.
func (f *LogisticFit) Next() (step Step, gradient bool) {
	return Step{Iteration: f.t, Theta: slices.Clone(f.theta)}, f.t < f.p.Iterations
}

// Apply adds the noise to the gradient sum of the current step and takes the step. The sum
// must have been computed at the step Next returned (ErrStateMismatch otherwise).
func (f *LogisticFit) Apply(g *Gradient) error {
	if f.t >= f.p.Iterations {
		return fail(ErrOutOfOrder, "all %d gradient steps were taken", f.p.Iterations)
	}
	step, _ := f.Next()
	if g.st.fp != f.spec.fingerprint(kindGradient, step) {
		return fail(ErrStateMismatch, "gradient computed for another spec or step")
	}
	if f.t == 0 {
		n, err := f.b.add(float64(g.st.rows), float64(f.spec.MaxRowsPerUnit), ShareCount)
		if err != nil {
			return err
		}
		f.n = n
	}
	sum := g.sum()
	share := ShareGradients / float64(f.p.Iterations)
	nn := math.Max(f.n, 1)
	for j := range sum {
		v, err := f.b.add(sum[j], f.spec.Clip, share)
		if err != nil {
			return err
		}
		// Post-processing from here on.
		grad := v/nn + f.p.L2*f.theta[j]
		f.vel[j] = momentum*f.vel[j] - f.p.StepSize*grad
	}
	for j := range f.theta {
		f.theta[j] += f.vel[j]
	}
	f.t++
	return nil
}

// Finish adds the noise to the confusion counts of the final model and releases it.
func (f *LogisticFit) Finish(c *Confusion) (*LogisticModel, error) {
	if f.t != f.p.Iterations || f.done {
		return nil, fail(ErrOutOfOrder, "the confusion counts come once, after the last gradient step")
	}
	step, _ := f.Next()
	if c.st.fp != f.spec.fingerprint(kindConfusion, step) {
		return nil, fail(ErrStateMismatch, "confusion counts computed for another spec or step")
	}
	m := float64(f.spec.MaxRowsPerUnit)
	cells := make([]float64, 4)
	for i, v := range c.st.s {
		x, err := f.b.add(float64(v), m, ShareConfusion)
		if err != nil {
			return nil, err
		}
		cells[i] = x
	}
	f.done = true
	// Post-processing.
	out := &LogisticModel{N: f.n, Iterations: f.p.Iterations, Epsilon: f.p.Epsilon, Delta: f.p.Delta, Components: f.comps, Accounting: f.rep,
		Confusion: ConfusionMatrix{TruePositives: cells[0], FalsePositives: cells[1], FalseNegatives: cells[2], TrueNegatives: cells[3]}}
	var total float64
	for i := range cells {
		cells[i] = math.Max(cells[i], 0)
		total += cells[i]
	}
	if total > 0 {
		out.Accuracy = math.Min(1, math.Max(0, (cells[0]+cells[3])/total))
	}
	icpt := f.theta[0]
	out.Coefficients = make([]Coefficient, len(f.spec.Features))
	for j, ft := range f.spec.Features {
		h, ce := ft.Bounds.halfRange(), ft.Bounds.centre()
		v := f.theta[j+1] / h
		icpt -= f.theta[j+1] * ce / h
		out.Coefficients[j] = Coefficient{Name: ft.Name, Value: v, Lower: v, Upper: v}
	}
	out.Intercept = Coefficient{Name: InterceptName, Value: icpt, Lower: icpt, Upper: icpt}
	return out, nil
}

// FitLogistic runs a whole fit in one process — the worker's passes (GradientSum,
// ConfusionCounts) over units and the engine's noise and steps — for tests, examples and
// single-process use. units is read T + 1 times.
func FitLogistic(spec LogisticSpec, p LogisticParams, units Units) (*LogisticModel, error) {
	f, err := NewLogisticFit(spec, p)
	if err != nil {
		return nil, err
	}
	for {
		step, gradient := f.Next()
		if !gradient {
			c, err := ConfusionCounts(spec, step, units)
			if err != nil {
				return nil, err
			}
			return f.Finish(c)
		}
		g, err := GradientSum(spec, step, units)
		if err != nil {
			return nil, err
		}
		if err := f.Apply(g); err != nil {
			return nil, err
		}
	}
}
