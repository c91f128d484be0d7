package model

import (
	"errors"
	"fmt"

	"github.com/c1b99f93/cleanroom/errcode"
)

// Sentinel errors. Every error this package returns is an *errcode.Error whose Cause wraps one
// of them, so callers branch with errors.Is and the boundary reads the code with errcode.Of.
// Messages are built from fixed text, feature names from the spec and positions (a row's index
// within its unit) — never from a data value.
var (
	// ErrNoFeatures: a spec names no feature (code invalid_options).
	ErrNoFeatures = errors.New("model: no features")
	// ErrInvalidSpec: a feature name is empty or repeated, there are too many features,
	// MaxRowsPerUnit or the clipping norm is out of range (code invalid_options).
	ErrInvalidSpec = errors.New("model: invalid spec")
	// ErrInvalidBounds: bounds that are not finite or with lo ≥ hi (code invalid_options).
	ErrInvalidBounds = errors.New("model: invalid bounds")
	// ErrInvalidParams: a release parameter out of range — ε ≤ 0 or not finite, δ outside
	// (0, 1), a confidence outside (0, 1), an iteration count or step size out of range (code
	// invalid_options).
	ErrInvalidParams = errors.New("model: invalid parameters")
	// ErrNonFinite: a kept row holds NaN or ±Inf (code malformed_input). The unit is not added.
	ErrNonFinite = errors.New("model: non-finite value")
	// ErrShape: a kept row has the wrong number of values, or rows and labels differ in length
	// (code malformed_input). The unit is not added.
	ErrShape = errors.New("model: wrong shape")
	// ErrMalformedState: an encoded state that does not decode: wrong length, kind, version or
	// impossible values (code malformed_input).
	ErrMalformedState = errors.New("model: malformed state")
	// ErrStateMismatch: a state (or a Merge operand) computed for another spec or another
	// iteration than the one expected (code malformed_input). The engine never releases from it.
	ErrStateMismatch = errors.New("model: state does not match the expected spec or step")
	// ErrOverflow: accumulating more rows than one state can hold exactly (maxRows) (code
	// resource_limit).
	ErrOverflow = errors.New("model: too many rows for one state")
	// ErrOutOfOrder: a logistic fit driven out of sequence (a gradient after the last
	// iteration, a confusion state before it) (code internal).
	ErrOutOfOrder = errors.New("model: fit driven out of order")
	// ErrAccounting: the noise drawn would cost more than the (ε, δ) asked for, by the
	// accountant's composition; nothing is released (code internal).
	ErrAccounting = errors.New("model: accounting check failed")
)

// codeOf maps a sentinel to its stable code.
func codeOf(sentinel error) errcode.Code {
	switch sentinel {
	case ErrNoFeatures, ErrInvalidSpec, ErrInvalidBounds, ErrInvalidParams:
		return errcode.InvalidOptions
	case ErrNonFinite, ErrShape, ErrMalformedState, ErrStateMismatch:
		return errcode.MalformedInput
	case ErrOverflow:
		return errcode.ResourceLimit
	}
	return errcode.Internal
}

// fail returns an *errcode.Error with sentinel's code whose cause wraps sentinel. format and
// args must be fixed text, names from the spec and positions only.
func fail(sentinel error, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	return errcode.Wrap(codeOf(sentinel), fmt.Errorf("%s: %w", msg, sentinel), "model: %s", msg)
}
