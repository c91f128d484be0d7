package provenance

import "github.com/c1b99f93/cleanroom/engine/errcode"

// Codes of this package's errors, beside errcode's shared ones.
const (
	CodeLogCorrupt    = "log_corrupt"
	CodeLogLocked     = "log_locked"
	CodeInvalidRecord = "invalid_record"
	CodeBadAuditKey   = "bad_audit_key"
)

// ErrCorrupt is wrapped by every error that reports a damaged log: a line that does not parse, a
// broken index sequence, prev link or hash. A corrupt log is never appended to.
var ErrCorrupt = errcode.New(CodeLogCorrupt, "the provenance log failed verification")

// ErrUnavailable is wrapped by every Append that was refused because the Log is closed or
// poisoned by an earlier write failure. Nothing that depends on the record may proceed.
var ErrUnavailable = errcode.New(errcode.ProvenanceFailed, "the provenance log cannot record")

// ErrLocked is returned by Open when another Log (in this or another process) has the file open
// for appending; two writers would fork the chain.
var ErrLocked = errcode.New(CodeLogLocked, "the provenance log is open for appending elsewhere")

// ErrInvalidRecord is wrapped when a Record cannot be logged (no type, or Data that does not
// marshal to JSON).
var ErrInvalidRecord = errcode.New(CodeInvalidRecord, "the provenance record is invalid")

// ErrBadAuditKey is wrapped when an audit key file exists but is unusable (wrong length, or
// readable by group or others).
var ErrBadAuditKey = errcode.New(CodeBadAuditKey, "the audit key file is unusable")
