// Package provenance is cleanroom's append-only, hash-chained provenance log: the record an
// auditor replays every job from.
//
// The log's invariant, which every stage relies on: no record, no release. Each pipeline stage
// appends what it decided before the next stage begins, and Append returns only after the line is
// written and fsynced. A stage that cannot append must stop, and the Log fails closed: after any
// write or sync error it is poisoned and every later Append fails, so a half-written log is never
// extended.
//
//	gate ─▶ plan ─▶ policy ─▶ budget ─▶ execute ─▶ mechanism ─▶ egress ─▶ debit ─▶ release
//	  │       │       │         │          │           │          │         │         │
//	  ▼       ▼       ▼         ▼          ▼           ▼          ▼         ▼         ▼
//	 Append (write + fsync) ─▶ log.jsonl:  entry 0 ◀─prev─ entry 1 ◀─prev─ … ◀─prev─ head
//
// The log holds no raw values. Records carry identifiers, digests, mechanism parameters and
// decisions; a pre-noise aggregate appears only as a keyed digest (AuditKey.Digest, HMAC-SHA256
// under the platform's audit key), which a replay recomputes and compares.
//
// # Format
//
// One entry per line, written exactly as
//
//	{"index":N,"prev":"<hex>","hash":"<hex>","record":{…canonical JSON…}}\n
//
// where record is the Canonical encoding of a Record, prev is the previous entry's hash (64 zeros
// for entry 0) and
//
//	hash = SHA-256("cleanroom-log-v1" || 0x00 || uint64be(index) || prev (32 raw bytes) || record)
//
// The hash is the entry's leaf: RFC 6962 Merkle checkpoints (added later) are built over the
// sequence of entry hashes (see Entry.Leaf), so checkpoints are a new record type and a new file
// beside the log, not a change to this line format. The "v1" domain tag leaves room for a later
// format to be told apart.
//
// Open verifies the whole chain before it appends. A torn final line (no trailing newline: the
// process died mid-write, so its Append never returned) is cut away and a "log_recovered" record
// noting the dropped byte count is appended; any other damage is an error and the log is not
// extended. Verify and ReadJob read a log without opening it for writing.
package provenance
