package provenance

import "github.com/c1b99f93/cleanroom/errcode"

// Codes of this package's errors, beside errcode's shared ones.
const (
	CodeLogCorrupt       = "log_corrupt"
	CodeLogLocked        = "log_locked"
	CodeInvalidRecord    = "invalid_record"
	CodeBadAuditKey      = "bad_audit_key"
	CodeBadPlatformKey   = "bad_platform_key"
	CodeBadVerifierKey   = "bad_verifier_key"
	CodeBadSignature     = "bad_signature"
	CodeInvalidNote      = "invalid_note"
	CodeBadCheckpoint    = "bad_checkpoint"
	CodeNoSigner         = "no_signer"
	CodeNoCheckpoint     = "no_checkpoint"
	CodeProofInvalid     = "proof_invalid"
	CodeOutOfRange       = "out_of_range"
	CodeArchiveCorrupt   = "archive_corrupt"
	CodeArchiveExists    = "archive_exists"
	CodeInvalidLogOption = "invalid_log_option"
	CodeUnknownEvent     = "unknown_event"
)

// ErrCorrupt is wrapped by every error that reports a damaged log: a line that does not parse, a
// broken index sequence, prev link or hash, or a checkpoint the log contradicts. A corrupt log is
// never appended to.
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

// ErrBadPlatformKey is wrapped when a platform key file exists but is unusable (not a note signer
// key named "cleanroom", or readable by group or others).
var ErrBadPlatformKey = errcode.New(CodeBadPlatformKey, "the platform key file is unusable")

// ErrBadVerifierKey is wrapped when a verifier key given to check a signature does not parse.
var ErrBadVerifierKey = errcode.New(CodeBadVerifierKey, "the verifier key is malformed")

// ErrBadSignature is wrapped when a signed note (a checkpoint or receipt) carries no valid
// signature by the given verifier key: signed by another key, or the signature does not verify.
var ErrBadSignature = errcode.New(CodeBadSignature, "the note is not signed by the given key")

// ErrInvalidNote is wrapped when a note's text cannot be signed or a signed note does not parse.
var ErrInvalidNote = errcode.New(CodeInvalidNote, "the signed note is malformed")

// ErrBadCheckpoint is wrapped when a correctly signed note is not a checkpoint of this log format
// (wrong origin, size or root hash lines, extra lines).
var ErrBadCheckpoint = errcode.New(CodeBadCheckpoint, "the checkpoint is malformed")

// ErrNoSigner is returned by Log.Checkpoint when the Log was opened without WithSigner.
var ErrNoSigner = errcode.New(CodeNoSigner, "the provenance log has no signing key")

// ErrNoCheckpoint is wrapped by Export when no checkpoint covers the end of the range: the server
// must write one (Log.Checkpoint, which the engine calls after each release) before the export.
var ErrNoCheckpoint = errcode.New(CodeNoCheckpoint, "no checkpoint covers the requested range")

// ErrProofInvalid is wrapped when an inclusion or consistency proof does not check.
var ErrProofInvalid = errcode.New(CodeProofInvalid, "the Merkle proof does not verify")

// ErrOutOfRange is wrapped when an index or tree size is beyond the log.
var ErrOutOfRange = errcode.New(CodeOutOfRange, "index or tree size beyond the log")

// ErrArchiveCorrupt is wrapped by VerifyArchive when the archive fails verification.
var ErrArchiveCorrupt = errcode.New(CodeArchiveCorrupt, "the provenance archive failed verification")

// ErrArchiveExists is wrapped by Export when the output file already exists; archives are never
// overwritten.
var ErrArchiveExists = errcode.New(CodeArchiveExists, "the archive file already exists")

// ErrInvalidLogOption is wrapped by Open when an Option is invalid (WithSigner(nil)).
var ErrInvalidLogOption = errcode.New(CodeInvalidLogOption, "invalid provenance log option")

// ErrUnknownEvent is wrapped when a record's type and version are not in the event registry
// (events.go): Append refuses to write such an event and Decode to read one.
var ErrUnknownEvent = errcode.New(CodeUnknownEvent, "the provenance record's type or version is not known")
