// Package errcode defines the stable error codes of cleanroom and the one typed error every
// pipeline stage returns.
//
// Two kinds of error exist (STYLE.md): inside, an *Error wraps its cause for operators' logs;
// at the boundary, Public turns any error into a code and a message built only from the code,
// positions, catalog names and fixed hints — never from a DuckDB message or a data value. An
// error that is not an *Error becomes "internal" with a fixed message.
package errcode

import (
	"errors"
	"fmt"
)

// Stable codes. Tests assert codes, never message text.
const (
	SyntaxError        = "syntax_error"
	UnsupportedSQL     = "unsupported_sql"
	IdentifierInOutput = "identifier_in_output"
	UnknownDataset     = "unknown_dataset"
	UnknownColumn      = "unknown_column"
	MissingBounds      = "missing_bounds"
	InvalidOptions     = "invalid_options"
	InvalidSpec        = "invalid_spec"
	NotOperable        = "dataset_not_operable"
	PolicyDenied       = "policy_denied"
	EgressDenied       = "egress_denied"
	HeldForReview      = "held_for_review"
	BudgetExhausted    = "budget_exhausted"
	SandboxTimeout     = "sandbox_timeout"
	SandboxFailed      = "sandbox_failed"
	Canceled           = "canceled"
	MalformedInput     = "malformed_input"
	QueryInvalid       = "query_invalid" // does not type-check: known before any row is read
	QueryFailed        = "query_failed"  // failed while reading rows
	ProvenanceFailed   = "provenance_unavailable"
	Internal           = "internal"

	// Governance and the API.
	Unauthenticated    = "unauthenticated"      // no or unknown bearer token
	Forbidden          = "forbidden"            // the principal, or the grant's scope, does not allow it
	NotFound           = "not_found"            // no such resource, or not visible to the principal
	InvalidRequest     = "invalid_request"      // a malformed body, parameter or value
	Conflict           = "conflict"             // the resource is not in a state that allows it
	GrantExpired       = "grant_expired"        // outside the grant's period
	GrantSuspended     = "grant_suspended"      // the operator suspended the grant
	GrantRevoked       = "grant_revoked"        // the operator ended the grant
	SeparationOfDuties = "separation_of_duties" // a reviewer may not review this job
	ReviewRejected     = "review_rejected"      // a reviewer rejected a held output
	UnsupportedJobKind = "unsupported_job_kind" // a job kind this platform does not run yet
	Unavailable        = "unavailable"          // the server is shutting down
	// DatasetBudgetInsufficient: a dataset's lifetime budget, less what it has already
	// allocated to grants, cannot cover the budget of a grant being approved.
	DatasetBudgetInsufficient = "dataset_budget_insufficient"

	// Registration: where a provider's source may be read from, and one budget per data.
	NoImportRoot             = "no_import_root"             // the provider's organisation has no import root on this server
	SourceOutsideImportRoot  = "source_outside_import_root" // source.path leaves the organisation's import root
	SourceSymlink            = "source_symlink"             // a symbolic link on source.path (links are never followed)
	DatasetAlreadyRegistered = "dataset_already_registered" // the same data is registered as another dataset
)

// Codes of the decisions that stick (an output's review or denial answers every query the
// released-answer cache would answer with it) and of the gate's check on what a query writes.
const (
	// IdentifierInQuery: a name or literal the query writes into its output (an alias, a
	// name derived from one, a CASE result, a COALESCE argument, a clamp) looks like an
	// identifier. Refused by the gate from the SQL alone, with the position, before anything
	// runs.
	IdentifierInQuery = "identifier_in_query"
	// OutputHeld: the query's output is the one already held for review as another job of
	// the grant; this job is not queued again, and the held job's decision will be the answer.
	OutputHeld = "output_held"
)

// Error is a stage's failure with a stable code. Message must be safe to show to the applicant:
// callers build it only from fixed text, catalog names and positions. Cause is kept for the
// platform's own logs and is never shown.
type Error struct {
	Code     string
	Message  string
	Position int // byte offset into the submitted SQL, or -1
	Cause    error
}

// New returns an *Error without position.
func New(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...), Position: -1}
}

// At returns an *Error at a SQL position.
func At(code string, pos int, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...), Position: pos}
}

// Wrap returns an *Error that keeps cause for logs.
func Wrap(code string, cause error, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...), Position: -1, Cause: cause}
}

func (e *Error) Error() string {
	if e.Position >= 0 {
		return fmt.Sprintf("%s: %s (at position %d)", e.Code, e.Message, e.Position)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

func (e *Error) Unwrap() error { return e.Cause }

// Code returns err's stable code, "internal" for untyped errors, "" for nil.
func Code(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return Internal
}

// PublicError is what crosses the boundary to an applicant.
type PublicError struct {
	Code     string `json:"code"`
	Message  string `json:"message"`
	Position *int   `json:"position,omitempty"`
}

// Public converts any error into its safe public form: the code, and for *Error its vetted
// message; everything else becomes a fixed internal message so no cause text can leak.
func Public(err error) PublicError {
	var e *Error
	if !errors.As(err, &e) {
		return PublicError{Code: Internal, Message: "internal error; the operator can find details in the platform log"}
	}
	p := PublicError{Code: e.Code, Message: e.Message}
	if e.Position >= 0 {
		pos := e.Position
		p.Position = &pos
	}
	return p
}
