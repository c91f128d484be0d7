package wire

import "github.com/c1b99f93/cleanroom/catalog"

// Claims asks a worker to answer an applicant's encrypted claims (private verification, 核验)
// against one verifiable attribute of a snapshot: per subject, the worker reads the unit's
// attribute and computes, under the applicant's key, r·(claimed − actual) with a fresh random
// r (he/verify). It returns ciphertexts only — the worker can decrypt nothing and the engine
// sees nothing but their digests — and a subject the snapshot does not hold answers like a
// mismatch.
type Claims struct {
	Job      string `json:"job"`
	Snapshot string `json:"snapshot"`
	// PrivacyUnit is the snapshot's unit column, which the subjects name.
	PrivacyUnit string                  `json:"privacy_unit"`
	Attribute   catalog.VerifyAttribute `json:"attribute"`
	// Subjects are the privacy units checked, one per claim, in slot order. They are read as
	// the snapshot's units are: trimmed and upper-cased.
	Subjects []string `json:"subjects"`
	// PublicKey and Ciphertexts are the applicant's, in he/verify's serialization.
	PublicKey   []byte   `json:"public_key"`
	Ciphertexts [][]byte `json:"ciphertexts"`
	TimeoutMS   int64    `json:"timeout_ms,omitempty"`
}
