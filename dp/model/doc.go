// Package model holds the differential-privacy mechanisms of the built-in model jobs: linear
// regression by noisy sufficient statistics and logistic regression by noisy full-batch
// gradient descent.
//
// Nothing this package releases depends on one privacy unit beyond the stated sensitivity, and
// every released number has passed through noise drawn by Google's differential-privacy
// library (package noise) or is computed from such numbers only (post-processing). The pre-
// noise states are for the engine alone and are never released.
//
// The split between where the rows are and where the noise is added:
//
//	sandbox worker (rows)                           engine (no rows)
//	─────────────────────                           ────────────────
//	linear:
//	  Stats.AddUnit per unit (≤ M rows, clipped,
//	  scaled to [−1, 1], exact integer sums)
//	  Stats.Encode ──────── pre-noise state ──────▶ DecodeStats(state, spec) ─▶ ReleaseLinear
//	                                                   noise on XᵀX, Xᵀy, yᵀy; ridge; solve;
//	                                                   metrics; bootstrap intervals
//	logistic, for t = 0 … T−1:
//	  NewGradient(spec, step) ◀──── Step{t, θₜ} ──── LogisticFit.Next
//	  Gradient.AddUnit per unit (Σ row gradients
//	  clipped to ‖·‖ ≤ C)
//	  Gradient.Encode ───── pre-noise sum ────────▶ DecodeGradient ─▶ LogisticFit.Apply
//	                                                   noise; θₜ₊₁ = θₜ − η·ĝ/n̂
//	then once:
//	  NewConfusion(spec, final) ◀── Step{T, θ_T} ── LogisticFit.Next
//	  Confusion.Encode ──── pre-noise counts ─────▶ DecodeConfusion ─▶ LogisticFit.Finish
//
// Values are clipped to public bounds and mapped onto [−1, 1] (Bounds); a unit keeps at most
// MaxRowsPerUnit rows in the order its caller gives, which must depend on the unit's own rows
// only. Every state is exact integers (order-independent, replayable bit for bit), versioned,
// and fingerprinted with the spec and step it was computed for, so the engine decodes only a
// state computed for what it planned. The budget of a job is split among its noise additions
// in GDP terms and checked with dp/accountant (see budget.go); docs/models.md has the
// privacy argument, the accuracy measured and the benchmarks.
//
// This package is pure Go: it imports no DuckDB and no cgo.
package model
