package verify

import "errors"

// The errors of this package. Each is returned wrapped (errors.Is matches), at most with the
// index of the offending input; no message carries a value, a key, or a lattigo message.
var (
	// ErrMalformedCiphertext: a ciphertext does not decode as one of this package's, or has
	// the wrong shape: degree, level, ring degree, metadata or unreduced coefficients.
	ErrMalformedCiphertext = errors.New("verify: malformed ciphertext")

	// ErrMalformedKey: a key does not decode, has the wrong shape, does not match its
	// partner key, or fails the public-key checks (its uniform half is not the expansion of
	// its seed, or its other half is zero or clearly not uniform).
	ErrMalformedKey = errors.New("verify: malformed key")

	// ErrParameterSet: a key or ciphertext names a format version or parameter set this build
	// does not know. It is always returned together with ErrMalformedKey or
	// ErrMalformedCiphertext.
	ErrParameterSet = errors.New("verify: unknown parameter set")

	// ErrCheckCount: the number of ciphertexts does not fit the number of checks
	// (CiphertextsFor), or the number of checks is negative.
	ErrCheckCount = errors.New("verify: ciphertext count does not match the number of checks")

	// ErrTooManyChecks: a batch has more than MaxChecks checks.
	ErrTooManyChecks = errors.New("verify: too many checks in one batch")

	// ErrValueOutOfRange: a claimed or actual value is not below PlaintextModulus (values
	// from Encode always are).
	ErrValueOutOfRange = errors.New("verify: value not in Z_t")

	// ErrKeyPermissions: the secret key file is readable or writable by others than its owner.
	ErrKeyPermissions = errors.New("verify: secret key file is accessible to others")

	// ErrInternal: the cryptographic library failed on inputs that passed validation; a bug.
	ErrInternal = errors.New("verify: internal error")
)

// The errors of cut-and-choose (covert.go).
var (
	// ErrMalformedOpening: an opening does not decode (header, size, mode, a value outside
	// Z_t). It proves nothing: the applicant may send a well-formed opening instead.
	ErrMalformedOpening = errors.New("verify: malformed opening")

	// ErrOpeningMismatch: an opening decodes but does not open its commitment — the object its
	// seed and errors make has another digest, or an error is larger than the parameter set's
	// Gaussian allows. It is evidence of cheating: the opening and the digest show it to anyone.
	ErrOpeningMismatch = errors.New("verify: the opening does not match its commitment")

	// ErrCandidateCount: a number of key candidates or claim shares outside
	// [MinCandidates, MaxCandidates].
	ErrCandidateCount = errors.New("verify: number of candidates or shares out of range")
)
