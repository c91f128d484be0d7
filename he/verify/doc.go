// Package verify is the cryptography of private verification (核验): an applicant checks
// facts its customers declared against a data domain's authoritative records.
//
// Verify never lets the domain see a claimed value, and never returns more than
// r·(claimed−actual) per slot, with r uniform and non-zero, under a re-randomised,
// noise-flooded ciphertext: the applicant learns match or no match per check and nothing
// else about the record; the domain learns the number of checks and the ciphertexts'
// digests, nothing about the claims.
//
// The flow, one check per SIMD slot, 8192 slots per ciphertext:
//
//	applicant (holds sk)                           domain (holds the records)
//	Encode(claim) → EncryptClaims ──ciphertexts──▶ Evaluate(pk, cts, actual)
//	                                                 slot: r·(claimed − actual) + 0
//	                                                 absent or padding: uniform non-zero
//	                                                 + Enc_pk(0)          (re-randomise c1)
//	                                                 + flooding noise     (hide r in the noise)
//	                                                 rescale to level 1   (halve the size)
//	DecryptMatches ◀───────────────── ciphertexts ──┘
//	slot = 0 → match, otherwise no match
//
// The scheme is BGV from lattigo v6 (schemes/bgv) at one fixed parameter set, ParameterSet,
// of at least 128-bit classical security (see params.go and docs/he.md). Both sides map a
// value to a slot with Encode; a numeric range claim becomes set membership with BandOf.
//
// Against a malicious applicant the domain checks every input's encoding, shape and level,
// and that the public key's uniform half was expanded from the seed it carries (so it is
// uniform and not chosen); it cannot check, without a zero-knowledge proof that is out of
// scope, that the key's other half or a ciphertext's noise is honest. docs/he.md says what
// that leaves open.
//
// Errors are the sentinel Err… values, wrapped with the index of the offending input at
// most; no message carries a value, a key or a lattigo message. No input makes a function
// of this package panic.
package verify
