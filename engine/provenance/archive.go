package provenance

import (
	"archive/tar"
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/tlog"
)

// ArchiveFormat names the archive format; it is the manifest's "format".
const ArchiveFormat = "cleanroom-provenance-archive/v1"

// The archive is a tar file holding exactly these members, in this order, under archiveDir.
const (
	archiveDir       = "cleanroom-provenance-archive/"
	memberReadme     = "README.txt"
	memberManifest   = "manifest.json"
	memberCheckpoint = "checkpoint.note"
	memberKey        = "verifier.key"
	memberEntries    = "entries.jsonl"
)

// Size limits for the small members; the entries member is streamed.
const (
	maxReadme     = 1 << 20
	maxManifest   = 1 << 20
	maxCheckpoint = 1 << 16
	maxKeyMember  = 1 << 12
)

// Problems VerifyArchive reports besides the line and checkpoint problems.
const (
	ProblemArchiveMalformed       = "archive_malformed"         // not a tar of the documented members, or a bad manifest
	ProblemArchiveKeyMismatch     = "archive_key_mismatch"      // verifier.key differs from the key the auditor holds
	ProblemArchiveNotInCheckpoint = "archive_not_in_checkpoint" // the entries do not hash to the checkpoint's tree
)

// archiveManifest is manifest.json.
type archiveManifest struct {
	Format        string      `json:"format"`         // ArchiveFormat
	From          uint64      `json:"from"`           // index of the first entry in entries.jsonl
	To            uint64      `json:"to"`             // one past the last
	TreeSize      uint64      `json:"tree_size"`      // the checkpoint's size, ≥ to
	Left          []tlog.Hash `json:"left"`           // roots of the perfect subtrees partitioning [0, from), left to right
	RootAtTo      tlog.Hash   `json:"root_at_to"`     // RFC 6962 root of the first `to` entries
	Consistency   []tlog.Hash `json:"consistency"`    // RFC 6962 consistency proof from to to tree_size
	EntriesSHA256 string      `json:"entries_sha256"` // hex SHA-256 of entries.jsonl, a convenience
}

// ArchiveReport is the outcome of VerifyArchive.
type ArchiveReport struct {
	From           uint64 `json:"from"`
	To             uint64 `json:"to"`
	Entries        uint64 `json:"entries"`         // entries whose chain verified before the first problem
	CheckpointSize uint64 `json:"checkpoint_size"` // size of the signed checkpoint the range was checked against
	Root           string `json:"root"`            // its root hash, base64
	Origin         string `json:"origin"`          // its origin line
	// FirstBad is the index of the first entry the archive fails to vouch for: the bad line for a
	// line problem, From for any other problem (nothing in the range is then vouched for); -1 if ok.
	FirstBad int64  `json:"first_bad"`
	Problem  string `json:"problem,omitempty"` // a line, checkpoint or archive Problem…; empty if ok
}

// OK reports whether the archive verified.
func (r ArchiveReport) OK() bool { return r.Problem == "" }

// Export writes a self-verifying archive of the log's entries [from, to) to out, a new file (an
// existing one is never overwritten: ErrArchiveExists). It reads the files only and may run
// beside the server. The archive is checked against the first checkpoint of size ≥ to in
// <log>.checkpoints; if there is none, Export fails with ErrNoCheckpoint: have the server write
// one (Log.Checkpoint; the engine does after each release) and export again. Export verifies the
// chain up to the checkpoint's size and the checkpoint's root, and verifies the archive it wrote
// (under the key the checkpoint line names) before moving it into place. The format is in doc.go
// and in the archive's README.txt.
func Export(logPath string, from, to uint64, out string) error {
	if from >= to {
		return fmt.Errorf("provenance: export: empty range [%d, %d): %w", from, to, ErrOutOfRange)
	}
	if _, err := checkedInt64(to); err != nil {
		return fmt.Errorf("provenance: export: %w: %w", ErrOutOfRange, err)
	}
	cp, key, err := findCheckpoint(logPath, to)
	if err != nil {
		return err
	}
	m, offFrom, offTo, sum, err := exportProofs(logPath, from, to, cp)
	if err != nil {
		return err
	}
	m.EntriesSHA256 = hex.EncodeToString(sum[:])

	dir := filepath.Dir(out)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(out)+".tmp-*")
	if err != nil {
		return fmt.Errorf("provenance: export: %w", err)
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	if err := writeArchive(tmp, logPath, m, cp, key, offFrom, offTo, sum); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("provenance: export: %w", err)
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("provenance: export: %w", err)
	}
	if rep, err := verifyArchive(tmp, key); err != nil {
		return fmt.Errorf("provenance: export: the archive written does not verify (%s at %d): %w", rep.Problem, rep.FirstBad, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("provenance: export: %w", err)
	}
	if err := os.Link(tmp.Name(), out); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("provenance: export: %s: %w", out, ErrArchiveExists)
		}
		return fmt.Errorf("provenance: export: %w", err)
	}
	return syncDir(dir)
}

// findCheckpoint returns the first checkpoint of size ≥ to and the verifier key its line names.
func findCheckpoint(logPath string, to uint64) (Checkpoint, string, error) {
	f, err := openOptional(logPath + checkpointsSuffix)
	if err != nil {
		return Checkpoint{}, "", fmt.Errorf("provenance: export: %w", err)
	}
	var found Checkpoint
	var key string
	var latest uint64
	if f != nil {
		defer f.Close()
		_, err = readCheckpointsVisit(f, "", func(cp Checkpoint, k string) {
			latest = max(latest, cp.Size)
			if found.Note == nil && cp.Size >= to {
				found, key = cp, k
			}
		})
		if err != nil {
			return Checkpoint{}, "", fmt.Errorf("provenance: export: %w", err)
		}
	}
	if found.Note == nil {
		return Checkpoint{}, "", fmt.Errorf("provenance: export: no checkpoint covers entries up to %d (the latest covers %d); "+
			"have the server write a checkpoint (Log.Checkpoint) and export again: %w", to, latest, ErrNoCheckpoint)
	}
	return found, key, nil
}

// errStop ends a scan early once it has seen what it needs.
var errStop = errors.New("stop")

// exportProofs scans the log's first cp.Size entries, verifying the chain and the checkpoint's
// root, and returns the manifest's proof material, the byte range of entries [from, to) in the
// log and its SHA-256.
func exportProofs(logPath string, from, to uint64, cp Checkpoint) (m archiveManifest, offFrom, offTo int64, sum [sha256.Size]byte, err error) {
	size := int64(cp.Size)
	// Learn which stored hashes the proof needs, then collect them as the scan produces them.
	var need recorder
	if to < cp.Size {
		if _, err := tlog.ProveTree(size, int64(to), &need); err != nil {
			return m, 0, 0, sum, fmt.Errorf("provenance: export: %w", err)
		}
	}
	wanted := map[int64]bool{}
	for _, x := range need.indexes {
		wanted[x] = true
	}
	leftIdx, err := treeHashIndexes(int64(from))
	if err != nil {
		return m, 0, 0, sum, fmt.Errorf("provenance: export: %w", err)
	}
	collected := mapReader{}
	var front frontier
	var rootAtTo, rootAtSize tlog.Hash
	h := sha256.New()

	f, err := os.Open(logPath)
	if err != nil {
		return m, 0, 0, sum, fmt.Errorf("provenance: export: %w", err)
	}
	defer f.Close()
	st, err := scan(f, func(e Entry, line []byte, off int64) error {
		var err error
		if uint64(front.n) == from {
			if m.Left, err = front.ReadHashes(leftIdx); err != nil {
				return err
			}
			offFrom = off
		}
		hs, err := front.next(tlog.RecordHash(line))
		if err != nil {
			return err
		}
		first := tlog.StoredHashIndex(0, front.n)
		for i, x := range hs {
			if wanted[first+int64(i)] {
				collected[first+int64(i)] = x
			}
		}
		front.apply(hs)
		if e.Index >= from && e.Index < to {
			h.Write(line)
			h.Write([]byte{'\n'})
		}
		if uint64(front.n) == to {
			offTo = off + int64(len(line)) + 1
			if rootAtTo, err = front.root(); err != nil {
				return err
			}
		}
		if front.n == size {
			if rootAtSize, err = front.root(); err != nil {
				return err
			}
			return errStop
		}
		return nil
	})
	if err != nil && !errors.Is(err, errStop) {
		return m, 0, 0, sum, fmt.Errorf("provenance: export %s: %w", logPath, err)
	}
	if front.n < size {
		rep := st.report
		if rep.OK() || rep.Problem == ProblemTruncated {
			rep.Problem, rep.FirstBad = ProblemCheckpointBeyondLog, int64(rep.Records)
		}
		return m, 0, 0, sum, corruptError(logPath, rep)
	}
	if rootAtSize != cp.Root {
		return m, 0, 0, sum, corruptError(logPath, VerifyReport{Problem: ProblemCheckpointRootMismatch, FirstBad: 0})
	}
	if to < cp.Size {
		if m.Consistency, err = tlog.ProveTree(size, int64(to), collected); err != nil {
			return m, 0, 0, sum, fmt.Errorf("provenance: export: %w", err)
		}
	} else {
		m.Consistency = []tlog.Hash{}
	}
	if m.Left == nil {
		m.Left = []tlog.Hash{}
	}
	m.Format, m.From, m.To, m.TreeSize, m.RootAtTo = ArchiveFormat, from, to, cp.Size, rootAtTo
	h.Sum(sum[:0])
	return m, offFrom, offTo, sum, nil
}

// writeArchive writes the tar: the small members, then entries [from, to) copied from the log,
// whose bytes must hash to sum (what the scan verified).
func writeArchive(w io.Writer, logPath string, m archiveManifest, cp Checkpoint, key string, offFrom, offTo int64, sum [sha256.Size]byte) error {
	manifest, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("provenance: export: %w", err)
	}
	manifest = append(manifest, '\n')
	now := time.Now().UTC().Truncate(time.Second)
	tw := tar.NewWriter(w)
	add := func(name string, size int64, r io.Reader) error {
		hdr := &tar.Header{Name: archiveDir + name, Typeflag: tar.TypeReg, Mode: 0o644, Size: size, ModTime: now}
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("provenance: export: %w", err)
		}
		if _, err := io.Copy(tw, r); err != nil {
			return fmt.Errorf("provenance: export: %w", err)
		}
		return nil
	}
	small := func(name string, b []byte) error { return add(name, int64(len(b)), bytes.NewReader(b)) }
	if err := small(memberReadme, archiveReadme(m, cp)); err != nil {
		return err
	}
	if err := small(memberManifest, manifest); err != nil {
		return err
	}
	if err := small(memberCheckpoint, cp.Note); err != nil {
		return err
	}
	if err := small(memberKey, []byte(key+"\n")); err != nil {
		return err
	}
	f, err := os.Open(logPath)
	if err != nil {
		return fmt.Errorf("provenance: export: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	if err := add(memberEntries, offTo-offFrom, io.TeeReader(io.NewSectionReader(f, offFrom, offTo-offFrom), h)); err != nil {
		return err
	}
	if !bytes.Equal(h.Sum(nil), sum[:]) {
		return fmt.Errorf("provenance: export: %s changed during the export: %w", logPath, ErrCorrupt)
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("provenance: export: %w", err)
	}
	return nil
}

// archiveReadme is README.txt: how to check the archive without cleanroom.
func archiveReadme(m archiveManifest, cp Checkpoint) []byte {
	r := strings.NewReplacer("{FROM}", fmt.Sprint(m.From), "{TO}", fmt.Sprint(m.To), "{LAST}", fmt.Sprint(m.To-1),
		"{SIZE}", fmt.Sprint(m.TreeSize), "{ORIGIN}", cp.Origin, "{FORMAT}", ArchiveFormat)
	return []byte(r.Replace(readmeTemplate))
}

const readmeTemplate = `cleanroom provenance archive ({FORMAT})

This archive holds entries {FROM} to {LAST} of a cleanroom provenance log, exactly as they are
in the log, and what is needed to check them against a checkpoint signed by the platform, without
the rest of the log and without cleanroom. Keep it with the platform's verifier key, which you
must have obtained separately: never trust the copy inside the archive except to compare.

Files
  README.txt       this text
  manifest.json    format, range [from, to), tree_size, left, root_at_to, consistency, entries_sha256
  checkpoint.note  the checkpoint: a C2SP signed note (tlog-checkpoint) over the log's
                   RFC 6962 Merkle tree of its first {SIZE} entries, origin "{ORIGIN}"
  verifier.key     the verifier key the checkpoint claims to be signed by (note format
                   "name+hash+base64"); compare it with the key you hold
  entries.jsonl    entries [{FROM}, {TO}): one JSON line each, byte for byte as in the log

How to verify (cleanroom does all of it: provenance.VerifyArchive(path, key))
  1. Check checkpoint.note is signed by the verifier key you hold (any C2SP signed-note
     implementation, e.g. golang.org/x/mod/sumdb/note). Its text is three lines: the origin
     (for key cleanroom+<hash>+... it is "cleanroom provenance <hash>"), the tree size N in
     decimal, and the root hash R in base64.
  2. Check the chain: line i of entries.jsonl is
       {"index":I,"prev":"<hex>","hash":"<hex>","record":<canonical JSON>}
     with I = from+i, prev equal to the previous line's hash (the first line's prev is taken
     as given; the tree covers it), and
       hash = SHA-256("cleanroom-log-v1" 0x00 || uint64 big-endian(I) || prev (32 bytes) || record).
  3. Check the tree (RFC 6962, SHA-256): leaf i = SHA-256(0x00 || line i without its newline).
     "left" are the roots of the perfect subtrees that partition entries [0, from), largest
     first (one per 1-bit of from, from the highest); with the leaves they give the root of the
     first "to" entries, which must equal root_at_to. (For from = 0, left is empty and this is
     plain RFC 6962 MTH over the leaves.)
  4. Check "consistency", an RFC 6962 consistency proof (RFC 6962 section 2.1.2, as computed by
     golang.org/x/mod/sumdb/tlog) from the tree of size to with root root_at_to to the tree of
     size N with root R. If to = N the proof is empty and root_at_to must equal R.
All hashes in manifest.json are standard base64; entries_sha256 is the hex SHA-256 of
entries.jsonl (a convenience for transfer checks; the proof is steps 1-4).
`

// VerifyArchive checks an archive written by Export, offline: that verifier.key equals
// verifierKey (the key the auditor holds; the archive's copy is never trusted otherwise), that
// checkpoint.note is a checkpoint validly signed by it, that entries.jsonl holds exactly entries
// [from, to) as lines chained by their prev links and hashes, and that those lines, with the
// manifest's left hashes and consistency proof, hash to the checkpoint's root. The report is
// always filled in; the error is non-nil (wrapping ErrArchiveCorrupt) when there is a Problem, and
// wraps ErrBadVerifierKey when verifierKey does not parse.
func VerifyArchive(path, verifierKey string) (ArchiveReport, error) {
	f, err := os.Open(path)
	if err != nil {
		return ArchiveReport{FirstBad: -1}, fmt.Errorf("provenance: verify archive: %w", err)
	}
	defer f.Close()
	return verifyArchive(bufio.NewReaderSize(f, 64<<10), verifierKey)
}

func verifyArchive(r io.Reader, verifierKey string) (ArchiveReport, error) {
	rep := ArchiveReport{FirstBad: -1}
	if _, err := CheckpointOrigin(verifierKey); err != nil {
		return rep, err
	}
	fail := func(problem string, firstBad uint64, cause error) (ArchiveReport, error) {
		rep.Problem, rep.FirstBad = problem, int64(firstBad)
		return rep, fmt.Errorf("provenance: archive: %s at %d: %w: %w", problem, firstBad, ErrArchiveCorrupt, cause)
	}
	malformed := func(format string, args ...any) (ArchiveReport, error) {
		return fail(ProblemArchiveMalformed, rep.From, fmt.Errorf(format, args...))
	}
	tr := tar.NewReader(r)
	member := func(name string, limit int64) (*tar.Header, error) {
		hdr, err := tr.Next()
		if err != nil {
			return nil, fmt.Errorf("member %s: %w", name, err)
		}
		if hdr.Name != archiveDir+name || hdr.Typeflag != tar.TypeReg {
			return nil, fmt.Errorf("member %q where %s belongs", hdr.Name, name)
		}
		if hdr.Size < 0 || limit > 0 && hdr.Size > limit {
			return nil, fmt.Errorf("member %s of %d bytes", name, hdr.Size)
		}
		return hdr, nil
	}
	small := func(name string, limit int64) ([]byte, error) {
		if _, err := member(name, limit); err != nil {
			return nil, err
		}
		return io.ReadAll(io.LimitReader(tr, limit))
	}

	if _, err := small(memberReadme, maxReadme); err != nil {
		return malformed("%v", err)
	}
	mb, err := small(memberManifest, maxManifest)
	if err != nil {
		return malformed("%v", err)
	}
	var m archiveManifest
	dec := json.NewDecoder(bytes.NewReader(mb))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return malformed("manifest: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return malformed("manifest: trailing data")
	}
	rep.From, rep.To = m.From, m.To
	if m.Format != ArchiveFormat {
		return malformed("format %q, want %q", m.Format, ArchiveFormat)
	}
	if m.From >= m.To || m.To > m.TreeSize || m.TreeSize > 1<<63-1 || len(m.Consistency) > 64 {
		return malformed("manifest: range [%d, %d) in a tree of %d", m.From, m.To, m.TreeSize)
	}
	var front frontier
	if err := front.seed(int64(m.From), m.Left); err != nil {
		return malformed("manifest: %v", err)
	}
	note, err := small(memberCheckpoint, maxCheckpoint)
	if err != nil {
		return malformed("%v", err)
	}
	key, err := small(memberKey, maxKeyMember)
	if err != nil {
		return malformed("%v", err)
	}
	if strings.TrimSuffix(string(key), "\n") != verifierKey {
		return fail(ProblemArchiveKeyMismatch, m.From, errors.New("verifier.key is not the key given"))
	}
	cp, err := ParseCheckpoint(note, verifierKey)
	if err != nil {
		if errors.Is(err, ErrBadSignature) {
			return fail(ProblemCheckpointBadSignature, m.From, err)
		}
		return fail(ProblemCheckpointMalformed, m.From, err)
	}
	rep.CheckpointSize, rep.Root, rep.Origin = cp.Size, cp.Root.String(), cp.Origin
	if cp.Size != m.TreeSize {
		return malformed("manifest tree_size %d, checkpoint size %d", m.TreeSize, cp.Size)
	}

	hdr, err := member(memberEntries, 0)
	if err != nil {
		return malformed("%v", err)
	}
	h := sha256.New()
	br := bufio.NewReaderSize(io.TeeReader(io.LimitReader(tr, hdr.Size), h), 64<<10)
	var prev [sha256.Size]byte
	for i := m.From; i < m.To; i++ {
		line, err := br.ReadBytes('\n')
		if errors.Is(err, io.EOF) {
			if len(line) > 0 {
				return fail(ProblemTruncated, i, errors.New("last line has no newline"))
			}
			return fail(ProblemArchiveMalformed, i, fmt.Errorf("entries end before %d", m.To))
		}
		if err != nil {
			return malformed("entries: %v", err)
		}
		if i == m.From {
			var env envelope
			if json.Unmarshal(line, &env) != nil || env.Prev == nil {
				return fail(ProblemMalformedLine, i, errors.New("first line has no prev"))
			}
			if prev, err = decodeHash(*env.Prev); err != nil {
				return fail(ProblemMalformedLine, i, err)
			}
		}
		_, hash, problem := checkLine(line, i, prev)
		if problem != "" {
			return fail(problem, i, errors.New("entry fails the chain"))
		}
		if _, err := front.add(leafHash(line)); err != nil {
			return malformed("entries: %v", err)
		}
		prev = hash
		rep.Entries++
	}
	if n, _ := br.Read(make([]byte, 1)); n > 0 {
		return fail(ProblemArchiveMalformed, m.To, errors.New("entries continue past to"))
	}
	if hex.EncodeToString(h.Sum(nil)) != m.EntriesSHA256 {
		return malformed("entries_sha256 does not match")
	}
	rootAtTo, err := front.root()
	if err != nil {
		return malformed("%v", err)
	}
	if rootAtTo != m.RootAtTo {
		return fail(ProblemArchiveNotInCheckpoint, m.From, errors.New("entries do not hash to root_at_to"))
	}
	if err := CheckConsistency(m.Consistency, m.To, rootAtTo, cp.Size, cp.Root); err != nil {
		return fail(ProblemArchiveNotInCheckpoint, m.From, err)
	}
	if _, err := tr.Next(); err != io.EOF {
		return malformed("members after %s", memberEntries)
	}
	return rep, nil
}
