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
	"os"
)

// Problems Verify reports, naming the first thing wrong with a log.
const (
	ProblemMalformedLine = "malformed_line" // not a line in the log's exact format
	ProblemBadIndex      = "bad_index"      // index out of sequence: a line deleted, inserted or moved
	ProblemBrokenLink    = "broken_link"    // prev differs from the previous entry's hash
	ProblemBadHash       = "bad_hash"       // hash differs from the hash of the line's contents
	ProblemTruncated     = "truncated"      // the final line has no newline: a torn write
)

// VerifyReport is the outcome of checking a log file.
type VerifyReport struct {
	Records  uint64 `json:"records"`           // entries verified before the first problem (all, if none)
	Head     string `json:"head"`              // hash of the last verified entry; GenesisHash if none
	FirstBad int64  `json:"first_bad"`         // line number (= expected index) of the first bad line; -1 if ok
	Problem  string `json:"problem,omitempty"` // one of the Problem… constants; empty if ok
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
	st, err := scan(f, func(e Entry) error {
		var r struct {
			Type string `json:"type"`
			Job  string `json:"job"`
		}
		if err := json.Unmarshal(e.Record, &r); err != nil {
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
// problem, which it records in the report. visit, if not nil, sees each good entry. The error is
// only for reading r or from visit.
func scan(r io.Reader, visit func(Entry) error) (scanState, error) {
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
				if err := visit(e); err != nil {
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
	var head struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(e.Record, &head); err != nil || head.Type == "" {
		return Entry{}, zero, ProblemMalformedLine
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
