// Package collective aggregates per-partition integer statistics across data domains under a
// collective homomorphic key.
//
// Invariant: no party, the aggregator included, sees another domain's aggregate; only the noisy
// total is ever decrypted, and only with every domain's share, towards the one receiver public key
// that every domain was told in the job.
//
// The protocol (N domains, one aggregator that holds no secret share, one receiver):
//
//	domains                         aggregator (platform)                    receiver
//	─────── 1 CKG share ──────────▶ sums shares ─ 2 collective key ──▶ domains
//	noisy aggregates, encrypted
//	─────── 3 input ──────────────▶ adds ciphertexts ─ 4 sum + inputs ─▶ domains
//	PCKS share of the sum
//	─────── 5 key-switch share ───▶ collects ─ 6 sum + key-switch shares ─▶ decrypts
//
// Each domain adds its share of Gaussian DP noise (Google's library, NoiseShares) before it
// encrypts, so the released total carries the job's (ε, δ) even against the receiver colluding
// with one domain. Keys are N-out-of-N: a missing domain stops the job (ErrMissingParty) and
// nothing is decrypted. Every message is signed (ed25519) and checked against a directory, the job,
// the round, the parameter set and its shape before lattigo sees any of its bytes; the sentinel
// errors in errors.go are the only errors returned, and none carries a value.
//
// The package is transport independent (Inbox), pure Go, and imports no project package.
// docs/he-collective.md describes the parameters, threat model and measured figures.
package collective
