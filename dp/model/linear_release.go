package model

import (
	crand "crypto/rand"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/c1b99f93/cleanroom/dp"
	"github.com/c1b99f93/cleanroom/dp/accountant"
	"gonum.org/v1/gonum/mat"
)

// Budget shares of a linear release, as fractions of μ² (equivalently of zCDP's ρ; see
// budget). XᵀX carries the largest sensitivity and its noise multiplies the coefficients, so
// it gets the most; yᵀy only feeds the quality metrics, where its noise is small relative to
// a sum over all rows.
const (
	ShareXTX = 0.5
	ShareXTY = 0.3
	ShareYTY = 0.2
)

// DefaultDraws is the number of parametric-bootstrap draws behind the coefficient intervals
// when Params.Draws is 0.
const DefaultDraws = 1000

// maxDraws bounds the post-processing work of one release.
const maxDraws = 100000

// Params are a release's privacy budget and reporting options.
type Params struct {
	// Epsilon and Delta are the job's whole budget for this release: ε > 0, 0 < δ < 1.
	Epsilon float64 `json:"epsilon"`
	Delta   float64 `json:"delta"`
	// Confidence is the level of the coefficient intervals; 0 means dp.Confidence (0.95).
	Confidence float64 `json:"confidence,omitempty"`
	// Draws is the number of parametric-bootstrap draws for the intervals: 0 means
	// DefaultDraws, a negative number releases no intervals.
	Draws int `json:"draws,omitempty"`
}

func (p Params) withDefaults() (Params, error) {
	if err := validateBudget(p.Epsilon, p.Delta); err != nil {
		return p, err
	}
	if p.Confidence == 0 {
		p.Confidence = dp.Confidence
	}
	if !(p.Confidence > 0 && p.Confidence < 1) {
		return p, fail(ErrInvalidParams, "confidence must be in (0, 1)")
	}
	if p.Draws == 0 {
		p.Draws = DefaultDraws
	}
	if p.Draws > maxDraws {
		return p, fail(ErrInvalidParams, "at most %d bootstrap draws", maxDraws)
	}
	return p, nil
}

// Coefficient is one released coefficient in the original units of its feature and of the
// label. Lower and Upper are the interval at the model's Confidence (equal to Value when the
// release has no intervals); see LinearModel for what they cover.
type Coefficient struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
	Lower float64 `json:"lower"`
	Upper float64 `json:"upper"`
}

// LinearModel is a released linear regression: label ≈ Intercept + Σ Coefficients[j]·x_j, fit
// on values clipped to the spec's bounds. Every number in it is computed from the noisy
// statistics only.
//
// The intervals are a parametric bootstrap over the noise distribution (post-processing of
// released values only): they cover, at the stated confidence and to the accuracy of the
// plug-in approximation, the coefficients the same fit would give without noise — the least-
// squares fit on the same clipped data. They do not include the sampling variability of the
// data themselves, so they are not intervals for a population coefficient.
type LinearModel struct {
	Coefficients []Coefficient `json:"coefficients"` // in the spec's feature order
	Intercept    Coefficient   `json:"intercept"`
	// RMSE is the root mean squared residual of the fit, in label units, from the noisy yᵀy,
	// Xᵀy, XᵀX and n. R2 is 1 − RSS/TSS from the same quantities.
	RMSE float64 `json:"rmse"`
	R2   float64 `json:"r2"`
	// N is the noisy number of rows the fit used (XᵀX[0][0]).
	N float64 `json:"n"`
	// Ridge is λ added to the diagonal of the scaled noisy XᵀX to make it positive definite
	// (0 when it already was, by the margin described in ReleaseLinear).
	Ridge      float64 `json:"ridge"`
	Confidence float64 `json:"confidence"`
	Epsilon    float64 `json:"epsilon"`
	Delta      float64 `json:"delta"`
	// Components are the noise additions, as the ledger records them; Accounting is the
	// accountant's report of them.
	Components []dp.Component    `json:"components"`
	Accounting accountant.Report `json:"accounting"`
}

// Predict returns the model's prediction for one row of feature values (spec order); values
// are not clipped.
func (m *LinearModel) Predict(x []float64) float64 {
	return linearPredictor(m.Intercept, m.Coefficients, x)
}

// linearPredictor is intercept + Σ coefficient·x over the features x holds.
func linearPredictor(intercept Coefficient, coefs []Coefficient, x []float64) float64 {
	y := intercept.Value
	for j, c := range coefs {
		if j < len(x) {
			y += c.Value * x[j]
		}
	}
	return y
}

// ReleaseLinear adds the noise to a decoded state and releases the model.
//
// Mechanism (sensitivities in LinearSpec.Sensitivity, in scaled units):
//  1. Gaussian noise from Google's library on every entry of the upper triangle of XᵀX
//     (share ShareXTX of the budget), of Xᵀy (ShareXTY) and on yᵀy (ShareYTY); the three are
//     one (ε, δ)-DP mechanism by exact GDP composition (see budget), checked with
//     dp/accountant before anything is returned.
//  2. Post-processing only from here. The noisy XᵀX, Â, is mirrored to a symmetric matrix and
//     made positive definite: with σ its noise scale and p = d+1, λ = max(0, τ − λmin(Â)),
//     τ = σ·(2√p + 6), so every eigenvalue of Â + λI is at least τ — a few times the spectral
//     norm a p×p symmetric Gaussian matrix of scale σ reaches (≈ 2σ√p). When the data already
//     make Â well conditioned, λ = 0 and the fit is unbiased.
//  3. β = (Â + λI)⁻¹ b̂ by Cholesky (gonum), in scaled units, then mapped back to original
//     units: coefficient_j = h_y·β_j/h_j, intercept = c_y + h_y·(β₀ − Σ β_j·c_j/h_j).
//  4. Metrics: RSS = ŷᵀy − 2βᵀb̂ + βᵀÂβ (clamped at 0), RMSE = h_y·√(RSS/n̂), R² = 1 −
//     RSS/TSS with TSS = ŷᵀy − b̂₀²/n̂, n̂ = Â[0][0].
//  5. Intervals: Draws parametric-bootstrap replicates (Â + E*, b̂ + e*) with E*, e* drawn at
//     the noise scales used, each solved by steps 2–3; basic bootstrap intervals β̂ − q. These
//     draws are simulation, not privacy noise, and use math/rand seeded from crypto/rand.
func ReleaseLinear(s *Stats, p Params) (*LinearModel, error) {
	p, err := p.withDefaults()
	if err != nil {
		return nil, err
	}
	spec := s.spec
	d := s.d
	pp := d + 1 // regressors with the intercept
	sens := spec.Sensitivity()
	b := budget{p.Epsilon, p.Delta}

	comps, report, err := linearComponents(spec, b)
	if err != nil {
		return nil, err
	}

	A := mat.NewSymDense(pp, nil)
	for i := 0; i < pp; i++ {
		for j := i; j < pp; j++ {
			v, err := b.add(s.at(i, j), sens.XTX, ShareXTX)
			if err != nil {
				return nil, err
			}
			A.SetSym(i, j, v)
		}
	}
	bv := make([]float64, pp)
	for i := range bv {
		if bv[i], err = b.add(s.at(i, pp), sens.XTY, ShareXTY); err != nil {
			return nil, err
		}
	}
	yy, err := b.add(s.at(pp, pp), sens.YTY, ShareYTY)
	if err != nil {
		return nil, err
	}

	// Post-processing from here on.
	sigXX, sigXY := comps[0].NoiseScale, comps[1].NoiseScale
	tau := sigXX * (2*math.Sqrt(float64(pp)) + 6)
	beta, lambda, err := solveRidge(A, bv, tau)
	if err != nil {
		return nil, err
	}
	m := &LinearModel{Ridge: lambda, Confidence: p.Confidence, Epsilon: p.Epsilon, Delta: p.Delta, Components: comps, Accounting: report}
	coefs, icpt := unscale(spec, beta)
	m.Intercept = Coefficient{Name: InterceptName, Value: icpt, Lower: icpt, Upper: icpt}
	m.Coefficients = make([]Coefficient, d)
	for j, f := range spec.Features {
		m.Coefficients[j] = Coefficient{Name: f.Name, Value: coefs[j], Lower: coefs[j], Upper: coefs[j]}
	}

	n := A.At(0, 0)
	nn := math.Max(n, 1)
	bvec := mat.NewVecDense(pp, bv)
	bt := mat.NewVecDense(pp, beta)
	var Ab mat.VecDense
	Ab.MulVec(A, bt)
	rss := math.Max(0, yy-2*mat.Dot(bt, bvec)+mat.Dot(bt, &Ab))
	hy := spec.Label.halfRange()
	m.N = n
	m.RMSE = hy * math.Sqrt(rss/nn)
	if tss := yy - bv[0]*bv[0]/nn; tss > 0 {
		m.R2 = 1 - rss/tss
	}

	if p.Draws > 0 {
		if err := bootstrap(m, spec, A, bv, sigXX, sigXY, tau, p.Draws); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// LinearComponents are the noise additions ReleaseLinear draws for spec at p's budget, as the
// ledger records them, checked with the accountant: what a job plans and reserves before its
// worker reads a row.
func LinearComponents(spec LinearSpec, p Params) ([]dp.Component, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	p, err := p.withDefaults()
	if err != nil {
		return nil, err
	}
	comps, _, err := linearComponents(spec, budget{p.Epsilon, p.Delta})
	return comps, err
}

func linearComponents(spec LinearSpec, b budget) ([]dp.Component, accountant.Report, error) {
	sens := spec.Sensitivity()
	comps := []dp.Component{
		b.component("xtx", sens.XTX, ShareXTX),
		b.component("xty", sens.XTY, ShareXTY),
		b.component("yty", sens.YTY, ShareYTY),
	}
	report, err := b.checkAccounting(comps)
	return comps, report, err
}

// solveRidge returns β = (A + λI)⁻¹b with λ = max(0, τ − λmin(A)).
func solveRidge(A *mat.SymDense, b []float64, tau float64) ([]float64, float64, error) {
	n := A.SymmetricDim()
	var eig mat.EigenSym
	if !eig.Factorize(A, false) {
		return nil, 0, fail(ErrAccounting, "eigenvalues of the noisy matrix did not converge")
	}
	lmin := eig.Values(nil)[0]
	lambda := math.Max(0, tau-lmin)
	R := mat.NewSymDense(n, nil)
	R.CopySym(A)
	for i := 0; i < n; i++ {
		R.SetSym(i, i, R.At(i, i)+lambda)
	}
	var ch mat.Cholesky
	if !ch.Factorize(R) {
		// λmin(R) ≥ τ > 0: only a degenerate τ (a non-finite noise scale) gets here.
		return nil, 0, fail(ErrAccounting, "the regularised matrix is not positive definite")
	}
	var x mat.VecDense
	if err := ch.SolveVecTo(&x, mat.NewVecDense(n, b)); err != nil {
		return nil, 0, fail(ErrAccounting, "the regularised system did not solve")
	}
	return slices.Clone(x.RawVector().Data), lambda, nil
}

// unscale maps scaled coefficients (intercept first) back to original units.
func unscale(spec LinearSpec, beta []float64) (coefs []float64, intercept float64) {
	hy, cy := spec.Label.halfRange(), spec.Label.centre()
	coefs = make([]float64, len(spec.Features))
	shift := beta[0]
	for j, f := range spec.Features {
		h, c := f.Bounds.halfRange(), f.Bounds.centre()
		coefs[j] = hy * beta[j+1] / h
		shift -= beta[j+1] * c / h
	}
	return coefs, cy + hy*shift
}

// bootstrap sets the intervals of m from draws replicates of the noise around the released
// statistics (see ReleaseLinear step 5).
func bootstrap(m *LinearModel, spec LinearSpec, A *mat.SymDense, bv []float64, sigXX, sigXY, tau float64, draws int) error {
	var seed [32]byte
	_, _ = crand.Read(seed[:]) // never fails (crypto/rand panics rather than return an error)
	rng := rand.New(rand.NewChaCha8(seed))
	pp := len(bv)
	d := pp - 1
	devs := make([][]float64, pp) // per coefficient (intercept last), the draws' deviations
	for i := range devs {
		devs[i] = make([]float64, 0, draws)
	}
	As := mat.NewSymDense(pp, nil)
	bs := make([]float64, pp)
	for r := 0; r < draws; r++ {
		for i := 0; i < pp; i++ {
			for j := i; j < pp; j++ {
				As.SetSym(i, j, A.At(i, j)+sigXX*rng.NormFloat64())
			}
			bs[i] = bv[i] + sigXY*rng.NormFloat64()
		}
		beta, _, err := solveRidge(As, bs, tau)
		if err != nil {
			return err
		}
		c, icpt := unscale(spec, beta)
		for j := 0; j < d; j++ {
			devs[j] = append(devs[j], c[j]-m.Coefficients[j].Value)
		}
		devs[d] = append(devs[d], icpt-m.Intercept.Value)
	}
	alpha := 1 - m.Confidence
	set := func(c *Coefficient, dv []float64) {
		slices.Sort(dv)
		c.Lower = c.Value - quantile(dv, 1-alpha/2)
		c.Upper = c.Value - quantile(dv, alpha/2)
	}
	for j := range m.Coefficients {
		set(&m.Coefficients[j], devs[j])
	}
	set(&m.Intercept, devs[d])
	return nil
}

// quantile of sorted values, linear interpolation between order statistics.
func quantile(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	pos := q * float64(len(sorted)-1)
	i := int(math.Floor(pos))
	if i >= len(sorted)-1 {
		return sorted[len(sorted)-1]
	}
	f := pos - float64(i)
	return sorted[i]*(1-f) + sorted[i+1]*f
}
