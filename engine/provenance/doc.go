// Package provenance is cleanroom's append-only provenance log — a hash chain of canonical JSON
// records with an RFC 6962 Merkle tree over it and checkpoints signed with the platform's Ed25519
// key — the record an auditor replays every job from and can check offline.
//
// The log's invariant, which every stage relies on: no record, no release. Each pipeline stage
// appends what it decided before the next stage begins, and Append returns only after the line,
// and the tree hashes it adds, are written and fsynced. A stage that cannot append must stop, and
// the Log fails closed: after any write or sync error it is poisoned and every later Append fails,
// so a half-written log is never extended.
//
//	gate ─▶ plan ─▶ policy ─▶ budget ─▶ execute ─▶ mechanism ─▶ egress ─▶ debit ─▶ release
//	  │       │       │         │          │           │          │         │         │
//	  ▼       ▼       ▼         ▼          ▼           ▼          ▼         ▼         ▼
//	 Append ─▶ provenance.log:        entry 0 ◀─prev─ entry 1 ◀─prev─ … ◀─prev─ head   (write + fsync)
//	        ─▶ provenance.log.tree:   RFC 6962 stored hashes of the lines              (write + fsync)
//	        ─▶ provenance.log.checkpoints: every n-th append, on Checkpoint and Close:
//	                                  signed note "origin / size / root"             (write + fsync)
//
// The log holds no raw values. Records carry identifiers, digests, mechanism parameters and
// decisions; a pre-noise aggregate appears only as a keyed digest (AuditKey.Digest, HMAC-SHA256
// under the platform's audit key), which a replay recomputes and compares.
//
// # The log: provenance.log
//
// One entry per line, written exactly as
//
//	{"index":N,"prev":"<hex>","hash":"<hex>","record":{…canonical JSON…}}\n
//
// where record is the Canonical encoding of a RecordEnvelope holding a registered Event (events.go;
// docs/provenance.md lists every type and its fields), prev is the previous entry's hash (64 zeros
// for entry 0) and
//
//	hash = SHA-256("cleanroom-log-v1" || 0x00 || uint64be(index) || prev (32 raw bytes) || record)
//
// The "v1" domain tag leaves room for a later format to be told apart.
//
// Open verifies the whole chain before it appends. A torn final line (no trailing newline: the
// process died mid-write, so its Append never returned) is cut away and a "log_recovered" record
// noting the dropped byte count is appended; any other damage is an error and the log is not
// extended. Verify, VerifyAll and ReadJob read a log without opening it for writing.
//
// # The Merkle tree: provenance.log.tree
//
// The tree is RFC 6962 (SHA-256) over the entries in index order. Entry i's leaf data is its line
// without the trailing newline, so every byte of index, prev, hash and record is committed to:
//
//	leaf(i) = SHA-256(0x00 || line i without "\n")        node = SHA-256(0x01 || left || right)
//
// All tree hashing, proofs and checks go through golang.org/x/mod/sumdb/tlog (RecordHash,
// StoredHashes, TreeHash, ProveRecord, ProveTree, CheckRecord, CheckTree). The tree file holds
// tlog's stored hashes — 32 raw bytes each, hash number k at byte offset 32·k, in
// tlog.StoredHashIndex order — so a log of n entries has a tree file of exactly
// 32·tlog.StoredHashCount(n) bytes (about 64 bytes per entry). The tree file is derived data:
// Open compares it with the tree the log implies and rebuilds whatever is missing, short, long or
// different; VerifyAll reports such a file as a warning (VerifyReport.TreeFile), never as log
// corruption. In memory a Log keeps only the tree's frontier (one hash per level) and the byte
// offset of every 64th line, so logs of millions of entries are fine.
//
// Log.TreeHead, Log.InclusionProof (an RFC 6962 audit path), Log.ConsistencyProof and Log.Line
// (an entry's leaf data) serve auditors; CheckInclusion and CheckConsistency check proofs offline.
//
// # Checkpoints: provenance.log.checkpoints
//
// With WithSigner, the Log signs checkpoints with the platform key (PlatformKey; an Ed25519 key in
// golang.org/x/mod/sumdb/note form, named "cleanroom"): automatically whenever the size becomes a
// multiple of WithCheckpointEvery (default 64), in Close if the tree grew, and on Log.Checkpoint,
// which the engine calls after each release so the release's receipt can name a checkpoint that
// includes it. A checkpoint is a C2SP signed note (c2sp.org/signed-note) whose text is a C2SP
// tlog-checkpoint (c2sp.org/tlog-checkpoint) without extension lines:
//
//	cleanroom provenance 1f2e3d4c                        origin
//	1234                                                 tree size, decimal
//	kP3+9V0mXy…base64 root hash…=                        RFC 6962 root of the first 1234 entries
//
//	— cleanroom H2Y4…base64(key hash || Ed25519 signature)…
//
// The origin is "cleanroom provenance " followed by the key hash: the 8 hex digits between the
// first and second '+' of the verifier key (CheckpointOrigin). It is stable for the key's lifetime
// and differs between keys. Other documents the platform signs (PlatformKey.SignNote, e.g. release
// receipts) may not begin with that origin line, so they never pass for a checkpoint.
//
// The checkpoints file holds one JSON object per line, so newlines inside notes need no framing:
//
//	{"size":1234,"key":"cleanroom+1f2e3d4c+AZ…","note":"cleanroom provenance 1f2e3d4c\n1234\n…\n\n— cleanroom H2Y4…\n"}
//
// size repeats the note's size; key is the verifier key of the signer, which Export copies into
// archives (no verifier trusts it: auditors use the key they hold). Sizes never decrease. Open
// checks, without a key, that every checkpoint parses and that the log still has each one's size
// and root — a log shorter than, or different from, a checkpoint someone may hold is refused
// (ErrCorrupt), never forked — and cuts away a torn final line (a checkpoint whose write never
// finished, which no caller saw). VerifyAll also checks each signature under the verifier key the
// auditor gives. A fork signed with the same key (a whole log and its checkpoints replaced) verifies
// on its own; an auditor detects it by keeping an earlier checkpoint and checking consistency with
// a later one — the usual transparency-log argument. Key rotation is not supported yet: after a
// new key, VerifyAll with it reports the older checkpoints as checkpoint_bad_signature.
//
// # Archives
//
// Export writes entries [from, to) of a log as a self-verifying archive for long retention (≥ 20
// years), checked against the first checkpoint of size ≥ to; VerifyArchive checks one offline with
// nothing but the archive and the verifier key. The archive is a POSIX tar file whose members, in
// this order, are
//
//	cleanroom-provenance-archive/README.txt       how to verify, in plain words
//	cleanroom-provenance-archive/manifest.json    {"format":"cleanroom-provenance-archive/v1","from":F,"to":T,
//	                                              "tree_size":N,"left":[…],"root_at_to":"…","consistency":[…],
//	                                              "entries_sha256":"<hex>"}
//	cleanroom-provenance-archive/checkpoint.note  the checkpoint of size N ≥ T, verbatim
//	cleanroom-provenance-archive/verifier.key     the verifier key it claims, compared with the auditor's
//	cleanroom-provenance-archive/entries.jsonl    entries [F, T), byte for byte as in the log
//
// Hashes in the manifest are standard base64. "left" holds the roots of the perfect subtrees that
// partition entries [0, F), largest first (tlog's stored hashes for TreeHash(F); empty for F = 0);
// with the leaves of the archived lines they determine the root of the first T entries, root_at_to;
// "consistency" is the RFC 6962 consistency proof from (T, root_at_to) to the checkpoint's (N,
// root). The first line's prev is taken as given: it is part of that line's leaf, so the proof
// covers it. entries_sha256 only helps transfer checks.
//
// # Verifying as an outside auditor
//
// Keep the verifier key (PlatformKey.Verifier, "cleanroom+<hash>+<base64>") out of band. Then,
// with public tools only:
//
//  1. A checkpoint is a C2SP signed note: verify it with any signed-note implementation (Go:
//     golang.org/x/mod/sumdb/note.Open with note.NewVerifier(key)) and read origin, size, root.
//  2. The tree is RFC 6962 with SHA-256 over the lines without newlines: recompute the root over
//     the first `size` lines of provenance.log (or of an archive, with its left hashes) and compare;
//     or check an audit path from Log.InclusionProof with any RFC 6962 verifier (tlog.CheckRecord).
//  3. Between two checkpoints you hold, check a consistency proof (tlog.CheckTree) so the log
//     cannot have been rewritten between them.
//  4. The chain: recompute each line's hash with the formula above and check the prev links.
//
// Inside cleanroom, VerifyAll(logPath, key) does 1, 2 and 4 for a whole log and VerifyArchive(path,
// key) does all of it for an archive.
package provenance
