// Package bench measures cleanroom against the alternatives a user has: raw DuckDB, Privacy on
// Beam, and the time to an answer over HTTP.
//
//	synth data (per scale, reused) ──▶ engine (temp dir, real sandbox worker) ─┐ alternating reps,
//	                               ──▶ raw DuckDB in this process (sandbox.Baseline) ┘ medians, ratios
//	                               ──▶ beam-bench (separate module, optional binary)
//	testdata ──▶ `cleanroom serve` child ──▶ p50/p99 of a new and a repeated query
//
// Every DP workload runs end to end — gate, plan, policy, ledger, worker, bounding, noise,
// egress, provenance, release — on a fresh grant per repetition (an identical query on one
// grant is answered from its first release without computing). DP and raw repetitions
// alternate so a ratio holds on a noisy machine. Nothing here asserts a time: the figures are
// reported, never checked, so a slow machine cannot fail a test.
//
// Privacy is not relaxed for speed: the engine runs with the embedded default policy and the
// worker's default limits, and the HTTP rows keep the server's completion quantum (a
// side-channel mitigation); the 10 ms rows show what the quantum costs, at its allowed minimum.
package bench
