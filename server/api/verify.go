package api

import "time"

// Cut-and-choose for verification (docs/he.md: covert security against a malicious
// applicant). The applicant commits to digests, the platform answers with a challenge drawn
// after the commitment is stored, the applicant opens what the challenge did not pick.

// VerifyKeyCommitRequest is POST /v1/grants/{id}/verify/key: the SHA-256 digests
// ("sha256:…" as he/verify.Digest writes them) of K candidate public keys, K at least the
// policy's verify_key_candidates. A grant commits to keys once.
type VerifyKeyCommitRequest struct {
	Candidates []string `json:"candidates"`
}

// VerifyKeyOpenRequest is POST /v1/grants/{id}/verify/key/open: the challenged candidate's
// public key, and the openings of every other candidate in candidate order (he/verify's
// KeyCandidate.Opening: its seed and error). When each opening rebuilds its digest, the
// public key is pinned to the grant.
type VerifyKeyOpenRequest struct {
	PublicKey []byte   `json:"public_key"`
	Openings  [][]byte `json:"openings"`
}

// VerifyClaimsCommitRequest is POST /v1/grants/{id}/verify/commitments: per claims
// ciphertext of the coming verification (all batches, in order), the digests of its K shares,
// K at least the policy's verify_claim_shares.
type VerifyClaimsCommitRequest struct {
	Ciphertexts [][]string `json:"ciphertexts"`
}

// VerifyChallenge is a commitment with its challenge: per object (one key; each claims
// ciphertext) the index of the candidate or share to keep closed — every other one is
// opened before Deadline.
type VerifyChallenge struct {
	Grant      string    `json:"grant"`
	Commitment string    `json:"commitment"`
	Kind       string    `json:"kind"` // key or claims
	Candidates int       `json:"candidates"`
	Challenges []int     `json:"challenges"`
	Deadline   time.Time `json:"deadline"`
	State      string    `json:"state"` // challenged, opened, used, expired, cheated, abandoned
}

// VerifyStatus is GET /v1/grants/{id}/verify: the grant's verification state, for the
// applicant and the operator.
type VerifyStatus struct {
	Grant string `json:"grant"`
	// State is unpinned (no key yet), challenged (key candidates await their opening),
	// pinned, or suspended.
	State     string `json:"state"`
	KeyDigest string `json:"key_digest,omitempty"`
	// Suspension says why the grant's verification is suspended: opening_mismatch (evidence
	// in the provenance record verify_suspension) or abandoned.
	Suspension      *VerifySuspension `json:"suspension,omitempty"`
	KeyCandidates   int               `json:"key_candidates"`
	ClaimShares     int               `json:"claim_shares"`
	DeadlineSeconds int               `json:"deadline_seconds"`
	Commitments     []VerifyChallenge `json:"commitments"`
}

// VerifySuspension is why and by which commitment a grant's verification was suspended.
type VerifySuspension struct {
	Reason     string `json:"reason"`
	Commitment string `json:"commitment"`
}
