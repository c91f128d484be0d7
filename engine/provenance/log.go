package provenance

import (
	"bufio"
	"bytes"
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

	"golang.org/x/mod/sumdb/tlog"
)

// Entry is a record as chained into the log.
type Entry struct {
	Index  uint64          `json:"index"`
	Prev   string          `json:"prev"` // hex SHA-256 of the previous entry; GenesisHash for entry 0
	Hash   string          `json:"hash"` // hex SHA-256 over index, prev and Record: the entry's leaf
	Record json.RawMessage `json:"record"`
}

// Leaf returns the entry's RFC 6962 leaf hash in the log's Merkle tree: tlog.RecordHash of its
// line without the newline.
func (e Entry) Leaf() tlog.Hash {
	line := formatLine(e)
	return tlog.RecordHash(line[:len(line)-1])
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

// Files beside the log, named by appending these to its path.
const (
	treeSuffix        = ".tree"        // stored Merkle tree hashes; derived, rebuilt by Open
	checkpointsSuffix = ".checkpoints" // signed checkpoints, one JSON line each
)

// DefaultCheckpointEvery is how many appends pass between automatic checkpoints unless
// WithCheckpointEvery says otherwise.
const DefaultCheckpointEvery = 64

// lineIndexStride is how often the Log remembers a line's byte offset for Line: every 64th line,
// so memory stays at 8 bytes per 64 entries however long the log grows.
const lineIndexStride = 64

// Option configures Open.
type Option func(*options)

type options struct {
	signer *PlatformKey
	every  uint64
	err    error
}

// WithSigner makes the Log sign checkpoints with k: one after every n-th Append (see
// WithCheckpointEvery), one in Close if the tree grew since the last, and one whenever
// Log.Checkpoint is called. Without it the Log writes no checkpoints. k must not be nil.
func WithSigner(k *PlatformKey) Option {
	return func(o *options) {
		if k == nil {
			o.err = fmt.Errorf("provenance: WithSigner(nil): %w", ErrInvalidLogOption)
		}
		o.signer = k
	}
}

// WithCheckpointEvery sets how many appends pass between automatic checkpoints: one is written
// whenever the log's size becomes a multiple of n. 0 turns automatic checkpoints off (Checkpoint
// and Close still write them). The default is DefaultCheckpointEvery.
func WithCheckpointEvery(n uint64) Option {
	return func(o *options) { o.every = n }
}

// Log is an open provenance log. Its methods are safe for concurrent use; appends are
// serialised, so the chain is a total order.
type Log struct {
	path   string
	now    func() time.Time
	signer *PlatformKey // nil: no checkpoints
	every  uint64

	mu     sync.Mutex
	f      logFile
	rf     io.ReaderAt       // the log file, for Line
	tree   *treeStore        // stored hashes; nil only in the chain-only benchmark
	cpf    logFile           // the checkpoints file; nil without a signer
	next   uint64            // index of the next entry
	prev   [sha256.Size]byte // hash of the last entry
	end    int64             // bytes of complete lines
	sparse []int64           // byte offset of every lineIndexStride-th line
	latest Checkpoint        // the last checkpoint in the checkpoints file
	latKey string            // the verifier key its line names ("" if none)
	err    error             // first write/sync failure; set once, poisons the Log
	closed bool
	// pending: a line was written and not yet fsynced (AppendDeferred).
	pending bool
}

// Open opens the log at path for appending, creating it (mode 0600) if absent. It verifies the
// existing chain first and refuses (wrapping ErrCorrupt) to append to a damaged log. A torn final
// line — bytes after the last newline, left by a crash mid-Append — is truncated away and a
// "log_recovered" record with the dropped byte count is appended. On unix the file is flocked, so
// a second writer gets ErrLocked.
//
// Open also checks the log against its checkpoints (<path>.checkpoints), without a key: each
// must parse, sizes must not decrease, and the log must hold at least as many entries as each
// names, with the same tree head. A log that contradicts a checkpoint someone may hold is
// corrupt, so Open refuses it rather than fork a signed history; signatures are VerifyAll's job.
// A torn final checkpoints line (a crash mid-write; no caller saw that checkpoint) is cut away.
//
// The Merkle tree's stored hashes live in <path>.tree. That file is derived data: Open compares
// it with the tree the log implies and, if it is missing, shorter, longer or different, rebuilds
// it from the log (from the first record that disagrees) before appending.
func Open(path string, opts ...Option) (*Log, error) {
	o := options{every: DefaultCheckpointEvery}
	for _, opt := range opts {
		opt(&o)
	}
	if o.err != nil {
		return nil, o.err
	}
	f, created, err := openForAppend(path)
	if err != nil {
		return nil, err
	}
	if err := lockFile(f); err != nil {
		f.Close()
		return nil, err
	}
	var files []io.Closer
	files = append(files, f)
	fail := func(err error) (*Log, error) {
		for _, c := range files {
			c.Close()
		}
		return nil, err
	}
	tf, treeCreated, err := openFile(path+treeSuffix, os.O_RDWR|os.O_CREATE)
	if err != nil {
		return fail(err)
	}
	files = append(files, tf)
	cpFlags := os.O_RDWR | os.O_APPEND
	if o.signer != nil {
		cpFlags |= os.O_CREATE
	}
	cpf, cpCreated, err := openFile(path+checkpointsSuffix, cpFlags)
	if err != nil {
		return fail(err)
	}
	if cpf != nil {
		files = append(files, cpf)
	}
	if created || treeCreated || cpCreated {
		if err := syncDir(filepath.Dir(path)); err != nil {
			return fail(err)
		}
	}

	cps, err := readCheckpoints(readerOrNil(cpf), "")
	if err != nil {
		return fail(err)
	}
	ts := newTreeScan(cps.cps, tf)
	ts.keepIdx = true
	st, err := scan(f, ts.visit)
	if err != nil {
		return fail(fmt.Errorf("provenance: open %s: %w", path, err))
	}
	if st.report.Problem != "" && st.report.Problem != ProblemTruncated {
		return fail(corruptError(path, st.report))
	}
	if _, cp := checkCheckpoints(cps.cps, st.report.Records, ts.roots); cp != nil {
		return fail(corruptError(path, VerifyReport{Problem: cp.problem, FirstBad: cp.firstBad}))
	}

	// Only now, the log being sound, is anything changed.
	if st.torn > 0 {
		if err := f.Truncate(st.good); err != nil {
			return fail(fmt.Errorf("provenance: recover %s: %w", path, err))
		}
		if err := f.Sync(); err != nil {
			return fail(fmt.Errorf("provenance: recover %s: %w", path, err))
		}
	}
	if cps.torn > 0 {
		if err := cpf.Truncate(cps.good); err != nil {
			return fail(fmt.Errorf("provenance: recover %s: %w", path+checkpointsSuffix, err))
		}
		if err := cpf.Sync(); err != nil {
			return fail(fmt.Errorf("provenance: recover %s: %w", path+checkpointsSuffix, err))
		}
	}
	if err := repairTree(tf, ts.check, f, st.good, ts.front.n); err != nil {
		return fail(fmt.Errorf("provenance: rebuild %s: %w", path+treeSuffix, err))
	}

	l := &Log{path: path, now: time.Now, signer: o.signer, every: o.every,
		f: f, rf: f, tree: &treeStore{f: tf, front: ts.front},
		next: st.report.Records, prev: st.head, end: st.good, sparse: ts.sparse}
	if cps.hasLatest() {
		l.latest, l.latKey = cps.latest, cps.latestKey
	}
	if o.signer != nil {
		l.cpf = cpf
	} else if cpf != nil {
		cpf.Close()
	}
	if st.torn > 0 {
		_, err := l.Append(context.Background(), "", &LogRecovered{DroppedBytes: st.torn, AtIndex: st.report.Records})
		if err != nil {
			l.Close()
			return nil, err
		}
	}
	return l, nil
}

// repairTree makes the tree file hold exactly the stored hashes of the log's first n records,
// whose lines end at byte good: it keeps the prefix that check found correct and recomputes the
// rest from the log.
func repairTree(tf *os.File, check *treeCheck, log *os.File, good int64, n int64) error {
	state := check.finish()
	switch state {
	case TreeFileOK:
		return nil
	case TreeFileLong:
		if err := tf.Truncate(tlog.StoredHashCount(n) * tlog.HashSize); err != nil {
			return err
		}
		return tf.Sync()
	}
	// Missing, short or mismatched: keep the hashes of the records before badFrom, rebuild the rest.
	if err := tf.Truncate(tlog.StoredHashCount(check.badFrom) * tlog.HashSize); err != nil {
		return err
	}
	t := treeStore{f: tf, front: check.badAt}
	br := bufio.NewReaderSize(io.NewSectionReader(log, check.badOff, good-check.badOff), 64<<10)
	for {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 {
			if err := t.add(leafHash(line), false); err != nil {
				return err
			}
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
	}
	if t.front.n != n {
		return fmt.Errorf("rebuilt %d records, want %d", t.front.n, n)
	}
	return tf.Sync()
}

// openFile opens path with flags (mode 0600 when created); without os.O_CREATE a missing file is
// (nil, false, nil).
func openFile(path string, flags int) (f *os.File, created bool, err error) {
	if flags&os.O_CREATE != 0 {
		f, err = os.OpenFile(path, flags|os.O_EXCL, 0o600)
		if err == nil {
			return f, true, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return nil, false, fmt.Errorf("provenance: open: %w", err)
		}
		flags &^= os.O_CREATE
	}
	f, err = os.OpenFile(path, flags, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("provenance: open: %w", err)
	}
	return f, false, nil
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

// Append chains the event ev of job ("" for none) into the log as one record: see appendRecord.
// ev's type and version must be registered (events.go); otherwise Append refuses it, wrapping
// ErrUnknownEvent, and writes nothing.
func (l *Log) Append(ctx context.Context, job string, ev Event) (Entry, error) {
	return l.appendEvent(ctx, job, ev, true)
}

// AppendDeferred chains ev like Append but does not wait for the disk: the line is written (and
// read back by every reader of the file) at once, and becomes durable at the next Sync, durable
// Append, Checkpoint or Close, whichever comes first. A job's pipeline appends its records so
// and syncs once before anything outside the log acts on them (engine/pipeline.go): one fsync
// for several records. A process crash loses nothing written; a machine crash can lose the
// unsynced tail, which is a suffix of the log (Open truncates a torn final line).
func (l *Log) AppendDeferred(ctx context.Context, job string, ev Event) (Entry, error) {
	return l.appendEvent(ctx, job, ev, false)
}

// Sync makes every line written so far durable. It costs nothing when none is pending.
func (l *Log) Sync(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return fmt.Errorf("provenance: sync of closed log: %w", ErrUnavailable)
	}
	if l.err != nil {
		return fmt.Errorf("provenance: sync refused after earlier failure: %w: %w", ErrUnavailable, l.err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("provenance: sync: %w", err)
	}
	return l.syncLocked()
}

// syncLocked fsyncs the log file if a line is pending. l.mu is held; a failure poisons the Log.
func (l *Log) syncLocked() error {
	if !l.pending {
		return nil
	}
	if err := l.f.Sync(); err != nil {
		l.err = err
		return fmt.Errorf("provenance: sync: %w: %w", ErrUnavailable, err)
	}
	l.pending = false
	return nil
}

func (l *Log) appendEvent(ctx context.Context, job string, ev Event, durable bool) (Entry, error) {
	if ev == nil {
		return Entry{}, fmt.Errorf("provenance: nil event: %w", ErrInvalidRecord)
	}
	typ, v := ev.EventType(), ev.EventVersion()
	if !Known(typ, v) {
		return Entry{}, fmt.Errorf("provenance: event %q version %d (%T): %w", typ, v, ev, ErrUnknownEvent)
	}
	r := RecordEnvelope{Type: typ, Job: job, Data: ev}
	if v != 1 {
		r.Version = v
	}
	return l.appendRecord(ctx, r, durable)
}

// appendRecord chains r into the log: it encodes r canonically, writes one line and (durable)
// fsyncs it with every line still pending, then
// writes the line's leaf and the tree hashes it completes to the tree file and fsyncs, and, with
// a signer, every n-th append signs and records a checkpoint — all before it returns. If r.Time is
// zero it is set to now; it is always stored in UTC. Any write or sync error poisons the Log:
// this and every later Append fail with ErrUnavailable, and the file must be reopened (which
// verifies and, if needed, recovers it and rebuilds the tree). A failure after the line was
// synced leaves the line in the log although Append reports an error, as a failed sync may. A ctx
// already done when the Log's turn comes prevents the write.
func (l *Log) appendRecord(ctx context.Context, r RecordEnvelope, durable bool) (Entry, error) {
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
	if err != nil {
		l.err = err
		return Entry{}, fmt.Errorf("provenance: append: %w: %w", ErrUnavailable, err)
	}
	l.pending = true
	if durable {
		if err := l.syncLocked(); err != nil {
			return Entry{}, fmt.Errorf("provenance: append: %w", err)
		}
	}
	if e.Index%lineIndexStride == 0 {
		l.sparse = append(l.sparse, l.end)
	}
	l.next++
	l.prev = hash
	l.end += int64(len(line))
	// The line is durable; now its leaf in the tree, then perhaps a checkpoint. Either failing
	// poisons the Log like a failed line: Open will rebuild the tree from the log. The tree
	// file is not fsynced per record: it is derived data that Open checks against the log and
	// rebuilds, so a crash can cost it only a rebuild, never a record; syncing it doubled an
	// append's cost (BenchmarkAppend). It is synced with each checkpoint and at Close, which
	// bounds the rebuild.
	if l.tree != nil {
		if err := l.tree.add(leafHash(line), false); err != nil {
			l.err = err
			return Entry{}, fmt.Errorf("provenance: append: tree: %w: %w", ErrUnavailable, err)
		}
	}
	if l.signer != nil && l.every > 0 && l.next%l.every == 0 {
		if _, err := l.checkpointLocked(true); err != nil {
			return Entry{}, fmt.Errorf("provenance: append: %w", err)
		}
	}
	return e, nil
}

// Checkpoint signs and durably records a checkpoint of the whole log as it stands, and returns
// it; if the latest checkpoint already covers every entry (and was signed by this Log's key), it
// is returned instead of writing another. Call it after a release so the release's receipt can
// name a checkpoint that includes it. It fails with ErrNoSigner without WithSigner, and with
// ErrUnavailable on a closed or poisoned Log; a failure to write the checkpoint poisons the Log.
func (l *Log) Checkpoint(ctx context.Context) (Checkpoint, error) {
	if l.signer == nil {
		return Checkpoint{}, fmt.Errorf("provenance: checkpoint: %w", ErrNoSigner)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return Checkpoint{}, fmt.Errorf("provenance: checkpoint of closed log: %w", ErrUnavailable)
	}
	if l.err != nil {
		return Checkpoint{}, fmt.Errorf("provenance: checkpoint refused after earlier failure: %w: %w", ErrUnavailable, l.err)
	}
	if err := ctx.Err(); err != nil {
		return Checkpoint{}, fmt.Errorf("provenance: checkpoint: %w", err)
	}
	if l.latest.Note != nil && l.latest.Size == l.next && l.latKey == l.signer.Verifier() {
		return l.latest, nil
	}
	return l.checkpointLocked(false)
}

// checkpointLocked signs the tree head over all entries and appends it to the checkpoints file,
// fsynced, after the lines it covers are durable. With syncTree the tree file is fsynced too:
// the periodic checkpoints (every n appends) and Close do, which bounds what Open may have to
// rebuild after a crash; the checkpoint a release's receipt asks for does not (the tree is
// derived data). l.mu is held; a failure poisons the Log.
func (l *Log) checkpointLocked(syncTree bool) (Checkpoint, error) {
	root, err := l.tree.front.root()
	if err != nil {
		l.err = err
		return Checkpoint{}, fmt.Errorf("provenance: checkpoint: %w: %w", ErrUnavailable, err)
	}
	if err := l.syncLocked(); err != nil {
		return Checkpoint{}, fmt.Errorf("provenance: checkpoint: %w", err)
	}
	if syncTree {
		if err := l.tree.f.Sync(); err != nil {
			l.err = err
			return Checkpoint{}, fmt.Errorf("provenance: checkpoint: tree: %w: %w", ErrUnavailable, err)
		}
	}
	cp := Checkpoint{Origin: l.signer.Origin(), Size: l.next, Root: root}
	if cp.Note, err = l.signer.sign(formatCheckpointBody(cp.Origin, cp.Size, cp.Root)); err != nil {
		l.err = err
		return Checkpoint{}, fmt.Errorf("provenance: checkpoint: %w: %w", ErrUnavailable, err)
	}
	line, err := frameCheckpoint(cp.Size, l.signer.Verifier(), cp.Note)
	if err == nil {
		var n int
		n, err = l.cpf.Write(line)
		if err == nil && n != len(line) {
			err = io.ErrShortWrite
		}
	}
	if err == nil {
		err = l.cpf.Sync()
	}
	if err != nil {
		l.err = err
		return Checkpoint{}, fmt.Errorf("provenance: checkpoint: %w: %w", ErrUnavailable, err)
	}
	l.latest, l.latKey = cp, l.signer.Verifier()
	return cp, nil
}

// LatestCheckpoint returns the latest checkpoint in the checkpoints file (written by this Log or
// found by Open), if any. Open checked it against the log but not its signature; a relying party
// checks that with ParseCheckpoint.
func (l *Log) LatestCheckpoint() (Checkpoint, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.latest.Note == nil {
		return Checkpoint{}, false
	}
	cp := l.latest
	cp.Note = bytes.Clone(cp.Note)
	return cp, true
}

// Close writes a checkpoint if the Log has a signer and the tree grew since the latest one
// (unless the Log is poisoned), then closes the files. Appends after Close fail with
// ErrUnavailable; a second Close is a no-op.
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	var errs []error
	if l.signer != nil && l.err == nil && l.tree != nil && (l.latest.Note == nil || l.latest.Size < l.next) {
		if _, err := l.checkpointLocked(true); err != nil {
			errs = append(errs, err)
		}
	}
	if l.err == nil {
		errs = append(errs, l.syncLocked())
	}
	l.closed = true
	errs = append(errs, l.f.Close())
	if l.tree != nil {
		errs = append(errs, l.tree.f.Sync(), l.tree.f.Close())
	}
	if l.cpf != nil {
		errs = append(errs, l.cpf.Close())
	}
	return errors.Join(errs...)
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
