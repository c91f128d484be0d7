package provenance

import "github.com/c1b99f93/cleanroom/errcode"

// ErrCorrupt is wrapped by every error that reports a damaged log: a line that does not parse, a
// broken index sequence, prev link or hash, or a checkpoint the log contradicts. A corrupt log is
// never appended to.
var ErrCorrupt = errcode.New(errcode.LogCorrupt, "the provenance log failed verification")

// ErrUnavailable is wrapped by every Append that was refused because the Log is closed or
// poisoned by an earlier write failure. Nothing that depends on the record may proceed.
var ErrUnavailable = errcode.New(errcode.ProvenanceFailed, "the provenance log cannot record")

// ErrLocked is returned by Open when another Log (in this or another process) has the file open
// for appending; two writers would fork the chain.
var ErrLocked = errcode.New(errcode.LogLocked, "the provenance log is open for appending elsewhere")

// ErrInvalidRecord is wrapped when a Record cannot be logged (no type, or Data that does not
// marshal to JSON).
var ErrInvalidRecord = errcode.New(errcode.InvalidRecord, "the provenance record is invalid")

// ErrBadAuditKey is wrapped when an audit key file exists but is unusable (wrong length, or
// readable by group or others).
var ErrBadAuditKey = errcode.New(errcode.BadAuditKey, "the audit key file is unusable")

// ErrBadPlatformKey is wrapped when a platform key file exists but is unusable (not a note signer
// key named "cleanroom", or readable by group or others).
var ErrBadPlatformKey = errcode.New(errcode.BadPlatformKey, "the platform key file is unusable")

// ErrBadVerifierKey is wrapped when a verifier key given to check a signature does not parse.
var ErrBadVerifierKey = errcode.New(errcode.BadVerifierKey, "the verifier key is malformed")

// ErrBadSignature is wrapped when a signed note (a checkpoint or receipt) carries no valid
// signature by the given verifier key: signed by another key, or the signature does not verify.
var ErrBadSignature = errcode.New(errcode.BadSignature, "the note is not signed by the given key")

// ErrInvalidNote is wrapped when a note's text cannot be signed or a signed note does not parse.
var ErrInvalidNote = errcode.New(errcode.InvalidNote, "the signed note is malformed")

// ErrBadCheckpoint is wrapped when a correctly signed note is not a checkpoint of this log format
// (wrong origin, size or root hash lines, extra lines).
var ErrBadCheckpoint = errcode.New(errcode.BadCheckpoint, "the checkpoint is malformed")

// ErrNoSigner is returned by Log.Checkpoint when the Log was opened without WithSigner.
var ErrNoSigner = errcode.New(errcode.NoSigner, "the provenance log has no signing key")

// ErrNoCheckpoint is wrapped by Export when no checkpoint covers the end of the range: the server
// must write one (Log.Checkpoint, which the engine calls after each release) before the export.
var ErrNoCheckpoint = errcode.New(errcode.NoCheckpoint, "no checkpoint covers the requested range")

// ErrProofInvalid is wrapped when an inclusion or consistency proof does not check.
var ErrProofInvalid = errcode.New(errcode.ProofInvalid, "the Merkle proof does not verify")

// ErrOutOfRange is wrapped when an index or tree size is beyond the log.
var ErrOutOfRange = errcode.New(errcode.OutOfRange, "index or tree size beyond the log")

// ErrArchiveCorrupt is wrapped by VerifyArchive when the archive fails verification.
var ErrArchiveCorrupt = errcode.New(errcode.ArchiveCorrupt, "the provenance archive failed verification")

// ErrArchiveExists is wrapped by Export when the output file already exists; archives are never
// overwritten.
var ErrArchiveExists = errcode.New(errcode.ArchiveExists, "the archive file already exists")

// ErrInvalidLogOption is wrapped by Open when an Option is invalid (WithSigner(nil)).
var ErrInvalidLogOption = errcode.New(errcode.InvalidLogOption, "invalid provenance log option")

// ErrUnknownEvent is wrapped when a record's type and version are not in the event registry
// (events.go): Append refuses to write such an event and Decode to read one.
var ErrUnknownEvent = errcode.New(errcode.UnknownEvent, "the provenance record's type or version is not known")
