// Package accountant reports, beside the basic-composition cost of a job history, a tighter
// (epsilon, delta) bound computed from the elementary noise events the jobs used.
//
// Enforcement stays on basic composition: the ledger debits and refuses on the sum of epsilons
// and the sum of deltas, and nothing in this package changes what is admitted. The tighter figure
// is for information only — it tells an analyst or a reviewer how much privacy the history has
// really spent, so that the gap between the two figures can be judged before any decision to
// enforce a tighter accountant is taken.
//
// The flow, for one history of events (each a dp.Component as persisted with a debit):
//
//	events ──validate──▶ basic:   (Σε, Σδ)                                     (enforced)
//	   │
//	   ├─ gaussian ──μᵢ = √L0·L∞/σ──▶ μ = √Σμᵢ² ─┐
//	   ├─ laplace  ──ρᵢ = εᵢ²/2─────────────────┼─▶ candidates at δ' = Σδ − Σδ_other
//	   └─ other    ──(ε, δ) added basically ──────────────────────────────┐
//	                                                                      ▼
//	                        tighter: min(basic ε, min(candidates) + Σε_other) at the basic Σδ
//
// The candidates, of which the smallest wins (the Report says which):
//
//   - "gdp": the Gaussian events compose exactly as μ-GDP with μ = √Σμᵢ² (Dong, Roth & Su 2019,
//     "Gaussian Differential Privacy", Corollary 3.3), converted exactly to (ε, δ') with the
//     analytic Gaussian profile δ(ε) = Φ(−ε/μ + μ/2) − e^ε·Φ(−ε/μ − μ/2) (Balle & Wang 2018,
//     "Improving the Gaussian Mechanism for Differential Privacy", Theorem 8; Dong, Roth & Su,
//     Corollary 2.13). Laplace events, being (ε, 0)-DP, are added by basic composition.
//   - "zcdp": used when Laplace events are present. Every noise event becomes ρ-zCDP — Gaussian
//     ρ = μ²/2, Laplace ρ = ε²/2 (Bun & Steinke 2016, "Concentrated Differential Privacy:
//     Simplifications, Extensions, and Lower Bounds", Proposition 1.4) — the ρ add up, and the
//     total is converted with Canonne, Kamath & Steinke 2020 ("The Discrete Gaussian for
//     Differential Privacy", Section 2.3, Proposition 12 and their cdp_eps routine), which is
//     never worse than Bun–Steinke's ρ + 2√(ρ·ln(1/δ)) (their Proposition 1.3).
//   - "basic": the basic sum itself, when nothing above beats it; in particular when the basic
//     delta is 0 (only Laplace and pure events), or when the basic-only events already use all
//     of it.
//
// Events whose mechanism is neither "gaussian" nor "laplace" (for example
// "preagg_select_partition", an approximate (ε, δ) partition selection) can only be composed
// basically: their ε and δ are added on top of the tighter bound of the noise events.
package accountant
