package provenance

import (
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

	"github.com/c1b99f93/cleanroom/errcode"
	"golang.org/x/mod/sumdb/tlog"
)

// Problems Verify reports, naming the first thing wrong with a log.
const (
	ProblemMalformedLine = "malformed_line"             // not a line in the log's exact format
	ProblemBadIndex      = "bad_index"                  // index out of sequence: a line deleted, inserted or moved
	ProblemBrokenLink    = "broken_link"                // prev differs from the previous entry's hash
	ProblemBadHash       = "bad_hash"                   // hash differs from the hash of the line's contents
	ProblemTruncated     = "truncated"                  // the final line has no newline: a torn write
	ProblemUnknownEvent  = string(errcode.UnknownEvent) // a record whose type and version are not registered
	ProblemInvalidEvent  = "invalid_event"              // a record whose data does not decode as its event type

	// Checkpoint problems (VerifyAll; Open refuses all but a bad signature, which it does not check).
	ProblemCheckpointMalformed    = "checkpoint_malformed"     // a checkpoints file line or its note does not parse
	ProblemCheckpointBadSignature = "checkpoint_bad_signature" // not validly signed by the verifier key
	ProblemCheckpointOutOfOrder   = "checkpoint_out_of_order"  // a smaller size after a larger one
	ProblemCheckpointBeyondLog    = "checkpoint_beyond_log"    // signed for more entries than the log holds
	ProblemCheckpointRootMismatch = "checkpoint_root_mismatch" // the log's tree head at that size differs
)

// VerifyReport is the outcome of checking a log file. Verify fills the first four fields;
// VerifyAll all of them.
//
// Problem and FirstBad name the first problem in log order. For a problem with a line, FirstBad is
// that line's number (= its expected index). For a checkpoint problem it is, when the checkpoint
// claims more entries than the log holds, the log's entry count (the first missing entry), and
// otherwise the largest size vouched for by the checkpoints that verified before the bad one (0 if
// none): the first entry that no good checkpoint confirms. A line problem and a checkpoint problem
// at the same index are reported as the line problem, except a torn final line (truncated), which
// Open would recover were the entries not covered by a checkpoint.
type VerifyReport struct {
	Records  uint64 `json:"records"`           // entries whose chain verified before the first line problem (all, if none)
	Head     string `json:"head"`              // hash of the last verified entry; GenesisHash if none
	FirstBad int64  `json:"first_bad"`         // index of the first bad entry (see above); -1 if ok
	Problem  string `json:"problem,omitempty"` // one of the Problem… constants; empty if ok

	TreeSize       uint64 `json:"tree_size,omitempty"`       // entries the Merkle tree was computed over (= Records)
	Root           string `json:"root,omitempty"`            // RFC 6962 root of those entries, base64 as in a checkpoint
	Checkpoints    int    `json:"checkpoints,omitempty"`     // checkpoints verified before the first checkpoint problem
	CheckpointLine int    `json:"checkpoint_line,omitempty"` // 1-based line of the bad checkpoint in <log>.checkpoints
	TreeFile       string `json:"tree_file,omitempty"`       // TreeFile… state of <log>.tree; anything but "ok" is a warning
}

// OK reports whether the whole log verified.
func (r VerifyReport) OK() bool { return r.Problem == "" }

// Verify checks every line of the log at path: that it parses in the exact line format with a
// canonical record, that indexes run 0, 1, 2, …, that each prev is the previous hash, and that
// each hash matches. It stops at the first problem. The report is always filled in; the error is
// non-nil when the file cannot be read or the log has a problem (wrapping ErrCorrupt), so a
// caller that only checks the error fails closed. A log being appended to concurrently may show
// its in-flight last line as truncated.
func Verify(path string) (VerifyReport, error) {
	f, err := os.Open(path)
	if err != nil {
		return VerifyReport{FirstBad: -1, Head: GenesisHash}, fmt.Errorf("provenance: verify: %w", err)
	}
	defer f.Close()
	st, err := scan(f, nil)
	if err != nil {
		return st.report, fmt.Errorf("provenance: verify %s: %w", path, err)
	}
	if !st.report.OK() {
		return st.report, corruptError(path, st.report)
	}
	return st.report, nil
}

// VerifyAll checks the log at logPath as Verify does and then what an auditor relies on beyond
// the chain: it recomputes the RFC 6962 Merkle tree over the entries, compares the derived tree
// file (<log>.tree) with it — a tree file that disagrees is reported in TreeFile as a warning,
// since Open rebuilds it, never as corruption — and checks every checkpoint in <log>.checkpoints:
// a valid signature by verifierKey and the exact checkpoint format (ParseCheckpoint), sizes that
// never decrease, no size beyond the log, and a root equal to the tree head at that size. A
// missing checkpoints file means no checkpoints. A torn final line of the checkpoints file (a
// crash mid-write; Open cuts it away) is ignored.
//
// As with Verify, the error is non-nil (wrapping ErrCorrupt) when there is a Problem, and wraps
// ErrBadVerifierKey when verifierKey does not parse; the report is always filled in.
func VerifyAll(logPath, verifierKey string) (VerifyReport, error) {
	rep := VerifyReport{FirstBad: -1, Head: GenesisHash}
	if _, err := CheckpointOrigin(verifierKey); err != nil {
		return rep, err
	}
	f, err := os.Open(logPath)
	if err != nil {
		return rep, fmt.Errorf("provenance: verify: %w", err)
	}
	defer f.Close()
	cpf, err := openOptional(logPath + checkpointsSuffix)
	if err != nil {
		return rep, fmt.Errorf("provenance: verify: %w", err)
	}
	if cpf != nil {
		defer cpf.Close()
	}
	cps, err := readCheckpoints(readerOrNil(cpf), verifierKey)
	if err != nil {
		return rep, err
	}
	tf, err := openOptional(logPath + treeSuffix)
	if err != nil {
		return rep, fmt.Errorf("provenance: verify: %w", err)
	}
	if tf != nil {
		defer tf.Close()
	}
	ts := newTreeScan(cps.cps, tf)
	st, err := scan(f, ts.visit)
	if err != nil {
		return st.report, fmt.Errorf("provenance: verify %s: %w", logPath, err)
	}
	rep = st.report
	root, err := ts.front.root()
	if err != nil {
		return rep, fmt.Errorf("provenance: verify %s: %w", logPath, err)
	}
	rep.TreeSize, rep.Root = rep.Records, root.String()
	if rep.OK() || rep.Problem == ProblemTruncated {
		rep.TreeFile = ts.check.finish()
	}
	verified, cp := checkCheckpoints(cps.cps, rep.Records, ts.roots)
	rep.Checkpoints = verified
	if cp != nil && (rep.OK() || cp.firstBad < rep.FirstBad || cp.firstBad == rep.FirstBad && rep.Problem == ProblemTruncated) {
		rep.Problem, rep.FirstBad, rep.CheckpointLine = cp.problem, cp.firstBad, cp.line
	}
	if !rep.OK() {
		return rep, corruptError(logPath, rep)
	}
	return rep, nil
}

// treeScan is a scan visitor that computes the Merkle tree over the entries: the tree head at
// each size in want, and optionally a comparison with the stored tree file.
type treeScan struct {
	front frontier
	check *treeCheck
	want  map[uint64]bool
	roots map[uint64]tlog.Hash

	sparse  []int64 // byte offset of every lineIndexStride-th line, when keepIdx
	keepIdx bool
}

// newTreeScan prepares a scan that computes the roots the checkpoints need and compares the tree
// file tf (nil if missing).
func newTreeScan(cps []cpInfo, tf *os.File) *treeScan {
	ts := &treeScan{check: newTreeCheck(tf), want: map[uint64]bool{}, roots: map[uint64]tlog.Hash{}}
	for _, c := range cps {
		if c.problem == "" {
			ts.want[c.size] = true
		}
	}
	if ts.want[0] {
		ts.roots[0], _ = tlog.TreeHash(0, nil) // the empty tree's hash, which reads nothing
	}
	return ts
}

func (ts *treeScan) visit(e Entry, line []byte, off int64) error {
	if ts.keepIdx && e.Index%lineIndexStride == 0 {
		ts.sparse = append(ts.sparse, off)
	}
	hs, err := ts.front.next(tlog.RecordHash(line))
	if err != nil {
		return err
	}
	ts.check.record(&ts.front, off, hs)
	ts.front.apply(hs)
	if n := uint64(ts.front.n); ts.want[n] {
		if ts.roots[n], err = ts.front.root(); err != nil {
			return err
		}
	}
	return nil
}

// openOptional opens a file for reading; a missing file is (nil, nil).
func openOptional(path string) (*os.File, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return f, err
}

// readerOrNil avoids a non-nil io.Reader holding a nil *os.File.
func readerOrNil(f *os.File) io.Reader {
	if f == nil {
		return nil
	}
	return f
}

// ReadJob returns every entry whose record belongs to job, in log order, for auditors. The chain
// is verified on the way; damage before the end is an error wrapping ErrCorrupt. A torn final line
// (an append in flight, or a crash not yet recovered by Open) is not an entry and is skipped.
func ReadJob(path, job string) ([]Entry, error) {
	return Read(path, func(_, j string) bool { return j == job })
}

// Read returns every entry whose record's type and job keep accepts, in log order, verifying
// the chain as ReadJob does.
func Read(path string, keep func(typ, job string) bool) ([]Entry, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("provenance: read: %w", err)
	}
	defer f.Close()
	var out []Entry
	st, err := scan(f, func(e Entry, _ []byte, _ int64) error {
		r, err := parseHead(e.Record)
		if err != nil {
			return err
		}
		if keep(r.Type, r.Job) {
			out = append(out, e)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("provenance: read %s: %w", path, err)
	}
	if !st.report.OK() && st.report.Problem != ProblemTruncated {
		return nil, corruptError(path, st.report)
	}
	return out, nil
}

func corruptError(path string, r VerifyReport) error {
	return fmt.Errorf("provenance: %s: %s at index %d: %w", path, r.Problem, r.FirstBad, ErrCorrupt)
}

// scanState is what scan learned about a log.
type scanState struct {
	report VerifyReport
	head   [sha256.Size]byte // hash of the last good entry
	good   int64             // bytes of good, complete lines
	torn   int64             // bytes after the last newline (only when Problem is truncated)
}

// scan reads a log from r, checking each line against the chain, and stops at the first
// problem, which it records in the report. visit, if not nil, sees each good entry with its line
// (without the newline: the entry's leaf data) and the line's byte offset. The error is only for
// reading r or from visit.
func scan(r io.Reader, visit func(e Entry, line []byte, off int64) error) (scanState, error) {
	st := scanState{report: VerifyReport{FirstBad: -1}}
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 && line[len(line)-1] != '\n' {
			// Only possible at EOF: a line whose write never completed.
			st.torn = int64(len(line))
			st.fail(ProblemTruncated)
			break
		}
		if len(line) > 0 {
			e, hash, problem := checkLine(line, st.report.Records, st.head)
			if problem != "" {
				st.fail(problem)
				break
			}
			if visit != nil {
				if err := visit(e, line[:len(line)-1], st.good); err != nil {
					return st, err
				}
			}
			st.head = hash
			st.good += int64(len(line))
			st.report.Records++
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			st.report.Head = hex.EncodeToString(st.head[:])
			return st, err
		}
	}
	st.report.Head = hex.EncodeToString(st.head[:])
	return st, nil
}

func (st *scanState) fail(problem string) {
	st.report.Problem = problem
	st.report.FirstBad = int64(st.report.Records)
}

// envelope is a line as parsed; pointers tell a missing field from a zero one.
type envelope struct {
	Index  *uint64         `json:"index"`
	Prev   *string         `json:"prev"`
	Hash   *string         `json:"hash"`
	Record json.RawMessage `json:"record"`
}

// checkLine checks one line (newline included) that should hold entry index chained after prev.
// It returns the entry and its hash, or the problem.
func checkLine(line []byte, index uint64, prev [sha256.Size]byte) (Entry, [sha256.Size]byte, string) {
	var zero [sha256.Size]byte
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	var env envelope
	if err := dec.Decode(&env); err != nil {
		return Entry{}, zero, ProblemMalformedLine
	}
	if env.Index == nil || env.Prev == nil || env.Hash == nil || len(env.Record) == 0 {
		return Entry{}, zero, ProblemMalformedLine
	}
	e := Entry{Index: *env.Index, Prev: *env.Prev, Hash: *env.Hash, Record: env.Record}
	// The line must be exactly what formatLine writes (lowercase hex, no spaces, key order),
	// and its record exactly its canonical form, so each log content has one spelling.
	if !bytes.Equal(formatLine(e), line) {
		return Entry{}, zero, ProblemMalformedLine
	}
	if canon, err := Canonical(e.Record); err != nil || !bytes.Equal(canon, e.Record) {
		return Entry{}, zero, ProblemMalformedLine
	}
	// Every record decodes through the event registry (events.go): the log holds only
	// registered events, in the fields their types declare.
	head, err := parseHead(e.Record)
	if err != nil {
		return Entry{}, zero, ProblemMalformedLine
	}
	if !Known(head.Type, head.Version) {
		return Entry{}, zero, ProblemUnknownEvent
	}
	if _, err := Decode(head.Type, head.Version, head.Data); err != nil {
		return Entry{}, zero, ProblemInvalidEvent
	}
	prevBytes, err := decodeHash(e.Prev)
	if err != nil || hex.EncodeToString(prevBytes[:]) != e.Prev {
		return Entry{}, zero, ProblemMalformedLine
	}
	hashBytes, err := decodeHash(e.Hash)
	if err != nil || hex.EncodeToString(hashBytes[:]) != e.Hash {
		return Entry{}, zero, ProblemMalformedLine
	}
	if e.Index != index {
		return Entry{}, zero, ProblemBadIndex
	}
	if prevBytes != prev {
		return Entry{}, zero, ProblemBrokenLink
	}
	if entryHash(e.Index, prevBytes, e.Record) != hashBytes {
		return Entry{}, zero, ProblemBadHash
	}
	return e, hashBytes, ""
}
