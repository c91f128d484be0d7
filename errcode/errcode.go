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

// Code is a stable error code: the only thing tests and callers branch on, never message
// text. Every code is one of the constants below and is listed once in All; a test refuses
// string literals where a Code is expected.
type Code string

// Stable codes. Tests assert codes, never message text.
const (
	SyntaxError        Code = "syntax_error"
	UnsupportedSQL     Code = "unsupported_sql"
	IdentifierInOutput Code = "identifier_in_output"
	UnknownDataset     Code = "unknown_dataset"
	UnknownColumn      Code = "unknown_column"
	MissingBounds      Code = "missing_bounds"
	InvalidOptions     Code = "invalid_options"
	InvalidSpec        Code = "invalid_spec"
	NotOperable        Code = "dataset_not_operable"
	PolicyDenied       Code = "policy_denied"
	EgressDenied       Code = "egress_denied"
	HeldForReview      Code = "held_for_review"
	BudgetExhausted    Code = "budget_exhausted"
	SandboxTimeout     Code = "sandbox_timeout"
	SandboxFailed      Code = "sandbox_failed"
	Canceled           Code = "canceled"
	MalformedInput     Code = "malformed_input"
	QueryInvalid       Code = "query_invalid" // does not type-check: known before any row is read
	QueryFailed        Code = "query_failed"  // failed while reading rows
	ProvenanceFailed   Code = "provenance_unavailable"
	Internal           Code = "internal"

	// Governance and the API.
	Unauthenticated    Code = "unauthenticated"      // no or unknown bearer token
	Forbidden          Code = "forbidden"            // the principal, or the grant's scope, does not allow it
	NotFound           Code = "not_found"            // no such resource, or not visible to the principal
	InvalidRequest     Code = "invalid_request"      // a malformed body, parameter or value
	Conflict           Code = "conflict"             // the resource is not in a state that allows it
	GrantExpired       Code = "grant_expired"        // outside the grant's period
	GrantSuspended     Code = "grant_suspended"      // the operator suspended the grant
	GrantRevoked       Code = "grant_revoked"        // the operator ended the grant
	SeparationOfDuties Code = "separation_of_duties" // a reviewer may not review this job
	ReviewRejected     Code = "review_rejected"      // a reviewer rejected a held output
	UnsupportedJobKind Code = "unsupported_job_kind" // a job kind this platform does not run yet
	Unavailable        Code = "unavailable"          // the server is shutting down, or over its connection caps
	// RateLimited: too many failed authentications from the client's address, or too many
	// denied requests from the principal; the answer is 429 with Retry-After (seconds).
	RateLimited Code = "rate_limited"
	// RequestTooLarge: the request body exceeds the server's limit (413).
	RequestTooLarge Code = "request_too_large"
	DateOutOfRange  Code = "date_out_of_range" // a time in a request lies outside the years the platform accepts
	// QueueFull: the job queue has no room — the platform's, or the submitting organisation's
	// share of it; nothing was queued or recorded, and the answer says when to try again
	// (HTTP 429 with Retry-After).
	QueueFull Code = "queue_full"
	// DatasetBudgetInsufficient: a dataset's lifetime budget, less what it has already
	// allocated to grants, cannot cover the budget of a grant being approved.
	DatasetBudgetInsufficient Code = "dataset_budget_insufficient"

	// Registration: where a provider's source may be read from, and one budget per data.
	NoImportRoot             Code = "no_import_root"             // the provider's organisation has no import root on this server
	SourceOutsideImportRoot  Code = "source_outside_import_root" // source.path leaves the organisation's import root
	SourceSymlink            Code = "source_symlink"             // a symbolic link on source.path (links are never followed)
	DatasetAlreadyRegistered Code = "dataset_already_registered" // the same data is registered as another dataset

	// Sources (package connectors): reading a provider's file.
	SourceNotFound   Code = "source_not_found"  // the path does not exist
	SourceUnreadable Code = "source_unreadable" // the path cannot be opened or read
	UnsupportedType  Code = "unsupported_type"  // the source kind or a column type is not supported
	EmptySource      Code = "empty_source"      // the source has no columns

	// The gate and the worker.
	RawColumnInOutput  Code = "raw_column_in_output" // a select item would release row-level values
	NetworkUnreachable Code = "network_unreachable"  // the worker's network check could connect nowhere (expected)
	ResourceLimit      Code = "resource_limit"       // a query exceeded the sandbox memory limit
	// TooManyPartitions: the product of the group keys' public domains exceeds what the
	// policy's output limits (max_rows, max_cells) allow. Refused from the SQL and the catalog
	// alone, before anything runs.
	TooManyPartitions Code = "too_many_partitions"
)

// Codes of the decisions that stick (an output's review or denial answers every query the
// released-answer cache would answer with it) and of the gate's check on what a query writes.
const (
	// IdentifierInQuery: a name or literal the query writes into its output (an alias, a
	// name derived from one, a CASE result, a COALESCE argument, a clamp) looks like an
	// identifier. Refused by the gate from the SQL alone, with the position, before anything
	// runs.
	IdentifierInQuery Code = "identifier_in_query"
	// OutputHeld: the query's output is the one already held for review as another job of
	// the grant; this job is not queued again, and the held job's decision will be the answer.
	OutputHeld Code = "output_held"
	// DifferencingLimit: the query's filter could pair with more earlier filters on the grant
	// (same dataset and group keys) than one job is checked against; refused before anything
	// is reserved. Ask for the slices in one grouped query instead.
	DifferencingLimit Code = "differencing_limit"

	// Verification (核验, kind verify).
	// VerifyLimit: a fact (one subject's attribute) was checked as often as the policy allows
	// per period by the organisation, or the grant made its checks of the day; the job is
	// denied and nothing is evaluated.
	VerifyLimit Code = "verify_limit"
	// UnknownAttribute: the dataset declares no verifiable attribute of that name.
	UnknownAttribute Code = "unknown_attribute"
	// MalformedCiphertext: a verification's public key or ciphertexts do not decode as the
	// platform's parameter set, or their count does not fit the checks.
	MalformedCiphertext Code = "malformed_ciphertext"
	// Cut-and-choose against a malicious applicant (docs/he.md, covert security).
	// VerifySuspended: the grant's verification is suspended — an opening did not match its
	// commitment, or a challenge was left unopened past its deadline; the evidence is in the
	// provenance log and the operator sees it. A new grant is needed.
	VerifySuspended Code = "verify_suspended"
	// VerifyOpeningMismatch: an opening decodes but does not open its commitment (a key
	// candidate or a claims share the applicant committed to is not what its seed makes):
	// evidence of cheating, recorded; the grant's verification is suspended.
	VerifyOpeningMismatch Code = "verify_opening_mismatch"
	// VerifyOpeningLate: the challenge's deadline passed before the opening arrived; the
	// commitment is abandoned and the grant's verification suspended.
	VerifyOpeningLate Code = "verify_opening_late"
	// VerifyOpeningReplayed: the commitment was already opened and used (by a pinned key or a
	// verification job); every commitment is opened once.
	VerifyOpeningReplayed Code = "verify_opening_replayed"
	// VerifyKeyNotPinned: the grant has no pinned applicant key, or the request names another
	// key than the pinned one: pin one first (cut-and-choose over key candidates).
	VerifyKeyNotPinned Code = "verify_key_not_pinned"

	// Federated aggregation across data domains (kind federated_sql, he/collective).
	// FederatedUnsupported: the federated request is not one the protocol carries — datasets
	// not in distinct domains, keys without a public domain, an aggregate other than COUNT or
	// SUM of an integer column with integer bounds, more partitions than one ciphertext holds;
	// refused before anything is reserved.
	FederatedUnsupported Code = "federated_unsupported"
	// FederatedDomainUnavailable: a domain's worker did not answer (offline, crashed, or slow
	// past the round's deadline); nothing was decrypted or released.
	FederatedDomainUnavailable Code = "federated_domain_unavailable"
	// FederatedProtocol: a protocol message was malformed, mis-signed, replayed or did not
	// match what its sender contributed; nothing was decrypted or released.
	FederatedProtocol Code = "federated_protocol"
	// FederatedKeyMismatch: a domain's worker presented a signing key other than the one the
	// platform pinned for that domain; nothing was asked of it.
	FederatedKeyMismatch Code = "federated_key_mismatch"

	// Model jobs (kind model, dp/model).
	// InvalidModel: a model request that does not describe a model — an unknown type, no
	// features, a name repeated or not in the SQL's select list, the label among the features.
	InvalidModel Code = "invalid_model"
	// TooManyFeatures: more features than the platform (dp/model) or the operator's policy
	// allows one model.
	TooManyFeatures Code = "too_many_features"
	// NotNumeric: a feature or the label is not a number: a text, date or identifier column,
	// or an expression whose values are not numbers.
	NotNumeric Code = "not_numeric"
	// Custom model code (kind wasm, sandbox/wasm).
	// WasmInvalidModule: the module does not compile, lacks an export of the ABI or has one of
	// the wrong type, imports from anywhere but WASI, or cannot be instantiated without data;
	// decided before any row is read, so it fails the job and costs nothing.
	WasmInvalidModule Code = "wasm_invalid_module"
)

// Codes of the budget ledger (engine/ledger): operator-facing, from a ledger misused or
// damaged; an applicant sees them only as internal.
const (
	UnknownAccount     Code = "unknown_account"
	DuplicateJob       Code = "duplicate_job"
	NotReserved        Code = "not_reserved"
	AccountMismatch    Code = "account_mismatch"
	InvalidBudget      Code = "invalid_budget"
	InvalidReservation Code = "invalid_reservation"
)

// Codes of the provenance log (engine/provenance): its files, keys, signed notes, proofs and
// archives.
const (
	LogCorrupt       Code = "log_corrupt"
	LogLocked        Code = "log_locked"
	InvalidRecord    Code = "invalid_record"
	BadAuditKey      Code = "bad_audit_key"
	BadPlatformKey   Code = "bad_platform_key"
	BadVerifierKey   Code = "bad_verifier_key"
	BadSignature     Code = "bad_signature"
	InvalidNote      Code = "invalid_note"
	BadCheckpoint    Code = "bad_checkpoint"
	NoSigner         Code = "no_signer"
	NoCheckpoint     Code = "no_checkpoint"
	ProofInvalid     Code = "proof_invalid"
	OutOfRange       Code = "out_of_range"
	ArchiveCorrupt   Code = "archive_corrupt"
	ArchiveExists    Code = "archive_exists"
	InvalidLogOption Code = "invalid_log_option"
	UnknownEvent     Code = "unknown_event"
)

// Codes of the policy engine (policy), of the raw-value key (engine) and of the Go client.
const (
	PolicyBundleInvalid Code = "policy_bundle_invalid" // the bundle could not be read, parsed or compiled
	PolicyEvalFailed    Code = "policy_eval_failed"    // evaluating a decision failed (the Decision is a deny)
	PolicyTestsFailed   Code = "policy_tests_failed"   // the bundle's Rego tests could not be run (failing tests are results)
	PolicyRecordInvalid Code = "policy_record_invalid" // a recorded decision given to WhatIf cannot be replayed
	BadRawValueKey      Code = "bad_rawvalue_key"      // the raw-value key file is unusable
	HTTPStatus          Code = "http_status"           // the client got a non-2xx answer without an error document
)

// All lists every code, once: the registry a test checks against the constants declared here.
func All() []Code {
	return []Code{
		SyntaxError, UnsupportedSQL, IdentifierInOutput, UnknownDataset, UnknownColumn, MissingBounds,
		InvalidOptions, InvalidSpec, NotOperable, PolicyDenied, EgressDenied, HeldForReview,
		BudgetExhausted, SandboxTimeout, SandboxFailed, Canceled, MalformedInput, QueryInvalid,
		QueryFailed, ProvenanceFailed, Internal,
		Unauthenticated, Forbidden, NotFound, InvalidRequest, Conflict, GrantExpired, GrantSuspended,
		GrantRevoked, SeparationOfDuties, ReviewRejected, UnsupportedJobKind, Unavailable, DateOutOfRange, QueueFull,
		RateLimited, RequestTooLarge,
		DatasetBudgetInsufficient,
		NoImportRoot, SourceOutsideImportRoot, SourceSymlink, DatasetAlreadyRegistered,
		SourceNotFound, SourceUnreadable, UnsupportedType, EmptySource,
		RawColumnInOutput, NetworkUnreachable, ResourceLimit, TooManyPartitions,
		IdentifierInQuery, OutputHeld, DifferencingLimit,
		VerifyLimit, UnknownAttribute, MalformedCiphertext,
		VerifySuspended, VerifyOpeningMismatch, VerifyOpeningLate, VerifyOpeningReplayed, VerifyKeyNotPinned,
		FederatedUnsupported, FederatedDomainUnavailable, FederatedProtocol, FederatedKeyMismatch,
		InvalidModel, TooManyFeatures, NotNumeric,
		WasmInvalidModule,
		UnknownAccount, DuplicateJob, NotReserved, AccountMismatch, InvalidBudget, InvalidReservation,
		LogCorrupt, LogLocked, InvalidRecord, BadAuditKey, BadPlatformKey, BadVerifierKey, BadSignature,
		InvalidNote, BadCheckpoint, NoSigner, NoCheckpoint, ProofInvalid, OutOfRange, ArchiveCorrupt,
		ArchiveExists, InvalidLogOption, UnknownEvent,
		PolicyBundleInvalid, PolicyEvalFailed, PolicyTestsFailed, PolicyRecordInvalid, BadRawValueKey, HTTPStatus,
	}
}

// Error is a stage's failure with a stable code. Message must be safe to show to the applicant:
// callers build it only from fixed text, catalog names and positions. Cause is kept for the
// platform's own logs and is never shown.
type Error struct {
	Code     Code
	Message  string
	Position int // byte offset into the submitted SQL, or -1
	Cause    error
}

// New returns an *Error without position.
func New(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...), Position: -1}
}

// At returns an *Error at a SQL position.
func At(code Code, pos int, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...), Position: pos}
}

// Wrap returns an *Error that keeps cause for logs.
func Wrap(code Code, cause error, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...), Position: -1, Cause: cause}
}

func (e *Error) Error() string {
	if e.Position >= 0 {
		return fmt.Sprintf("%s: %s (at position %d)", e.Code, e.Message, e.Position)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

func (e *Error) Unwrap() error { return e.Cause }

// Of returns err's stable code, Internal for untyped errors, "" for nil.
func Of(err error) Code {
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
	Code     Code   `json:"code"`
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
