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
