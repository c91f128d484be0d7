package provenance

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"
)

// Record types written by the pipeline. Type is an open set; these are the ones stages share.
const (
	TypeDatasetRegistered = "dataset_registered"
	TypePolicyLoaded      = "policy_loaded"
	TypeJobSubmitted      = "job_submitted"
	TypeGate              = "gate"
	TypePlan              = "plan"
	TypePolicyAccess      = "policy_access"
	TypeBudgetReserved    = "budget_reserved"
	TypeExecution         = "execution"
	TypeMechanism         = "mechanism"
	TypePolicyEgress      = "policy_egress"
	TypeBudgetDebited     = "budget_debited"
	TypeBudgetRefunded    = "budget_refunded"
	TypeRelease           = "release"
	TypeJobFailed         = "job_failed"
	TypeJobRefused        = "job_refused"
	// TypeLogRecovered is written by Open after it cut away a torn final line.
	TypeLogRecovered = "log_recovered"
)

// Record is one event in the log. It must hold no raw data value: identifiers, digests,
// parameters and decisions only; pre-noise aggregates as AuditKey digests.
type Record struct {
	Type string    `json:"type"`
	Job  string    `json:"job,omitempty"`
	Time time.Time `json:"time"`           // UTC; Append sets it when zero
	Data any       `json:"data,omitempty"` // marshalled to canonical JSON
}

// Entry is a Record as chained into the log.
type Entry struct {
	Index  uint64          `json:"index"`
	Prev   string          `json:"prev"` // hex SHA-256 of the previous entry; GenesisHash for entry 0
	Hash   string          `json:"hash"` // hex SHA-256 over index, prev and Record: the entry's leaf
	Record json.RawMessage `json:"record"`
}

// Leaf returns the entry's hash as bytes: the leaf a Merkle checkpoint commits to.
func (e Entry) Leaf() ([sha256.Size]byte, error) {
	return decodeHash(e.Hash)
}

// GenesisHash is the prev of entry 0 and the head of an empty log.
const GenesisHash = "0000000000000000000000000000000000000000000000000000000000000000"

// hashDomain separates this log's entry hashes from every other SHA-256 use.
const hashDomain = "cleanroom-log-v1\x00"

// entryHash computes SHA-256(domain || uint64be(index) || prev || record).
func entryHash(index uint64, prev [sha256.Size]byte, record []byte) [sha256.Size]byte {
	h := sha256.New()
	h.Write([]byte(hashDomain))
	h.Write(binary.BigEndian.AppendUint64(nil, index))
	h.Write(prev[:])
	h.Write(record)
	var out [sha256.Size]byte
	h.Sum(out[:0])
	return out
}

// formatLine renders an entry as its one line in the file, newline included. It is the only
// writer of the format; Verify accepts a line only if formatLine reproduces it byte for byte.
func formatLine(e Entry) []byte {
	b := make([]byte, 0, len(e.Record)+180)
	b = append(b, `{"index":`...)
	b = strconv.AppendUint(b, e.Index, 10)
	b = append(b, `,"prev":"`...)
	b = append(b, e.Prev...)
	b = append(b, `","hash":"`...)
	b = append(b, e.Hash...)
	b = append(b, `","record":`...)
	b = append(b, e.Record...)
	b = append(b, "}\n"...)
	return b
}

// logFile is what a Log writes through; a test swaps it to inject failures.
type logFile interface {
	io.Writer
	Sync() error
	Close() error
}

// Log is an open provenance log. Its methods are safe for concurrent use; appends are
// serialised, so the chain is a total order.
type Log struct {
	path string
	now  func() time.Time

	mu     sync.Mutex
	f      logFile
	next   uint64            // index of the next entry
	prev   [sha256.Size]byte // hash of the last entry
	err    error             // first write/sync failure; set once, poisons the Log
	closed bool
}

// Open opens the log at path for appending, creating it (mode 0600) if absent. It verifies the
// existing chain first and refuses (wrapping ErrCorrupt) to append to a damaged log. A torn final
// line — bytes after the last newline, left by a crash mid-Append — is truncated away and a
// "log_recovered" record with the dropped byte count is appended. On unix the file is flocked, so
// a second writer gets ErrLocked.
func Open(path string) (*Log, error) {
	f, created, err := openForAppend(path)
	if err != nil {
		return nil, err
	}
	if err := lockFile(f); err != nil {
		f.Close()
		return nil, err
	}
	if created {
		if err := syncDir(filepath.Dir(path)); err != nil {
			f.Close()
			return nil, err
		}
	}
	st, err := scan(f, nil)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("provenance: open %s: %w", path, err)
	}
	if st.report.Problem != "" && st.report.Problem != ProblemTruncated {
		f.Close()
		return nil, corruptError(path, st.report)
	}
	if st.torn > 0 {
		if err := f.Truncate(st.good); err != nil {
			f.Close()
			return nil, fmt.Errorf("provenance: recover %s: %w", path, err)
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return nil, fmt.Errorf("provenance: recover %s: %w", path, err)
		}
	}
	l := &Log{path: path, now: time.Now, f: f, next: st.report.Records, prev: st.head}
	if st.torn > 0 {
		_, err := l.Append(context.Background(), Record{Type: TypeLogRecovered, Data: map[string]any{
			"dropped_bytes": st.torn,
			"at_index":      st.report.Records,
		}})
		if err != nil {
			l.Close()
			return nil, err
		}
	}
	return l, nil
}

func openForAppend(path string) (f *os.File, created bool, err error) {
	const flags = os.O_RDWR | os.O_APPEND
	f, err = os.OpenFile(path, flags|os.O_CREATE|os.O_EXCL, 0o600)
	if err == nil {
		return f, true, nil
	}
	if !errors.Is(err, fs.ErrExist) {
		return nil, false, fmt.Errorf("provenance: open: %w", err)
	}
	f, err = os.OpenFile(path, flags, 0)
	if err != nil {
		return nil, false, fmt.Errorf("provenance: open: %w", err)
	}
	return f, false, nil
}

// Append chains r into the log: it encodes r canonically, writes one line and fsyncs before it
// returns. If r.Time is zero it is set to now; it is always stored in UTC. Any write or sync
// error poisons the Log: this and every later Append fail with ErrUnavailable, and the file must
// be reopened (which verifies and, if needed, recovers it). A ctx already done when the Log's turn
// comes prevents the write.
func (l *Log) Append(ctx context.Context, r Record) (Entry, error) {
	if r.Type == "" {
		return Entry{}, fmt.Errorf("provenance: record without type: %w", ErrInvalidRecord)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return Entry{}, fmt.Errorf("provenance: append to closed log: %w", ErrUnavailable)
	}
	if l.err != nil {
		return Entry{}, fmt.Errorf("provenance: append refused after earlier failure: %w: %w", ErrUnavailable, l.err)
	}
	if err := ctx.Err(); err != nil {
		return Entry{}, fmt.Errorf("provenance: append: %w", err)
	}
	if r.Time.IsZero() {
		r.Time = l.now()
	}
	r.Time = r.Time.UTC()
	rec, err := Canonical(r)
	if err != nil {
		return Entry{}, fmt.Errorf("provenance: record %q: %w: %w", r.Type, ErrInvalidRecord, err)
	}
	hash := entryHash(l.next, l.prev, rec)
	e := Entry{
		Index:  l.next,
		Prev:   hex.EncodeToString(l.prev[:]),
		Hash:   hex.EncodeToString(hash[:]),
		Record: rec,
	}
	line := formatLine(e)
	n, err := l.f.Write(line)
	if err == nil && n != len(line) {
		err = io.ErrShortWrite
	}
	if err == nil {
		err = l.f.Sync()
	}
	if err != nil {
		l.err = err
		return Entry{}, fmt.Errorf("provenance: append: %w: %w", ErrUnavailable, err)
	}
	l.next++
	l.prev = hash
	return e, nil
}

// Close closes the file. Appends after Close fail with ErrUnavailable; a second Close is a no-op.
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	return l.f.Close()
}

// Size returns the number of entries in the log.
func (l *Log) Size() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.next
}

// Head returns the hash of the last entry (GenesisHash for an empty log).
func (l *Log) Head() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return hex.EncodeToString(l.prev[:])
}

func decodeHash(s string) ([sha256.Size]byte, error) {
	var out [sha256.Size]byte
	if len(s) != 2*sha256.Size {
		return out, fmt.Errorf("provenance: hash %q is not %d hex digits", s, 2*sha256.Size)
	}
	if _, err := hex.Decode(out[:], []byte(s)); err != nil {
		return out, fmt.Errorf("provenance: hash: %w", err)
	}
	return out, nil
}

// syncDir fsyncs a directory so a newly created entry in it survives a crash.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("provenance: sync dir: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) {
		return fmt.Errorf("provenance: sync dir: %w", err)
	}
	return nil
}
