package collective

import "errors"

// The sentinel errors below are the only errors this package returns to a caller, wrapped with
// a fixed description of where the check failed. No error text ever contains a data value, a key,
// a ciphertext byte or a peer-supplied string; the integrator maps each sentinel to a stable code.
var (
	// ErrBadSignature: a message's ed25519 signature does not verify under its sender's key.
	ErrBadSignature = errors.New("collective: bad signature")
	// ErrUnknownDomain: a message names a sender that is not in the configured directory or not a
	// participant of the job.
	ErrUnknownDomain = errors.New("collective: unknown domain")
	// ErrMalformed: a message cannot be decoded, or a field has the wrong shape for its round
	// (ciphertext size, ring degree, level, partition count, coefficient out of range, ...).
	ErrMalformed = errors.New("collective: malformed message")
	// ErrWrongJob: a message belongs to another job or another collective key (a replay).
	ErrWrongJob = errors.New("collective: message from another job")
	// ErrWrongRound: a message belongs to another round of the protocol.
	ErrWrongRound = errors.New("collective: message from another round")
	// ErrWrongParams: a message was produced under another parameter set.
	ErrWrongParams = errors.New("collective: wrong parameter set")
	// ErrMissingParty: a participant did not answer before the deadline, or a combined message
	// lacks one participant's contribution.
	ErrMissingParty = errors.New("collective: missing party")
	// ErrDuplicate: a participant sent two different messages for the same job and round.
	ErrDuplicate = errors.New("collective: duplicate message")
	// ErrTampered: a combined message does not carry a participant's own contribution unchanged,
	// or its sum or key does not match the signed contributions it carries.
	ErrTampered = errors.New("collective: combined message does not match its contributions")
	// ErrOutOfRange: a value lies outside the range the plaintext modulus holds without wrap-around.
	ErrOutOfRange = errors.New("collective: value out of range")
	// ErrState: a call came out of protocol order (no collective key yet, a job already answered).
	ErrState = errors.New("collective: call out of protocol order")
	// ErrConfig: a configuration, job or noise parameter is invalid.
	ErrConfig = errors.New("collective: invalid configuration")
)
