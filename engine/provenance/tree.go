package provenance

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"

	"golang.org/x/mod/sumdb/tlog"
)

// The Merkle tree over the log is RFC 6962 (SHA-256, leaf = SHA-256(0x00 || data), node =
// SHA-256(0x01 || left || right)), computed only through golang.org/x/mod/sumdb/tlog. Entry i's
// leaf data is its line in the log without the trailing newline, so every byte of index, prev,
// hash and record is committed to.

// leafHash returns the RFC 6962 leaf hash of a log line; a trailing newline, if present, is not
// part of the leaf.
func leafHash(line []byte) tlog.Hash {
	return tlog.RecordHash(bytes.TrimSuffix(line, []byte{'\n'}))
}

// errNotInFrontier means a frontier was asked for a hash it does not hold; it indicates a bug,
// never bad input.
var errNotInFrontier = errors.New("provenance: tree hash not in frontier")

// frontier holds, for each level of the tree, the most recently completed subtree's hash. These
// are exactly the stored hashes tlog reads when it adds the next record
// (tlog.StoredHashesForRecordHash) and when it computes the head of the tree as it stands
// (tlog.TreeHash), so a frontier builds and checks a tree of any size in O(log n) memory.
type frontier struct {
	n    int64 // records added
	node [64]int64
	hash [64]tlog.Hash
	set  [64]bool
}

// add appends a record with leaf hash h and returns the stored hashes that record adds, which
// belong at tlog.StoredHashIndex(0, n) onwards, n being the record's index.
func (f *frontier) add(h tlog.Hash) ([]tlog.Hash, error) {
	hs, err := f.next(h)
	if err != nil {
		return nil, err
	}
	f.apply(hs)
	return hs, nil
}

// next computes the stored hashes of the next record, with leaf hash h, without adding it.
func (f *frontier) next(h tlog.Hash) ([]tlog.Hash, error) {
	return tlog.StoredHashesForRecordHash(f.n, h, f)
}

// apply adds the next record, given the stored hashes next computed for it.
func (f *frontier) apply(hs []tlog.Hash) {
	for level, h := range hs {
		f.node[level], f.hash[level], f.set[level] = f.n>>uint(level), h, true
	}
	f.n++
}

// seed sets a frontier for a tree of n records from the hashes tlog.TreeHash(n) reads (the roots
// of the perfect subtrees that partition [0, n), left to right), as an archive carries them.
func (f *frontier) seed(n int64, left []tlog.Hash) error {
	idx, err := treeHashIndexes(n)
	if err != nil {
		return err
	}
	if len(idx) != len(left) {
		return fmt.Errorf("provenance: a tree of %d records needs %d left hashes, have %d", n, len(idx), len(left))
	}
	*f = frontier{n: n}
	for i, x := range idx {
		level, node := tlog.SplitStoredHashIndex(x)
		f.node[level], f.hash[level], f.set[level] = node, left[i], true
	}
	return nil
}

// root returns the tree head over the records added so far.
func (f *frontier) root() (tlog.Hash, error) { return tlog.TreeHash(f.n, f) }

// ReadHashes implements tlog.HashReader from the frontier alone.
func (f *frontier) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		if x < 0 {
			return nil, errNotInFrontier
		}
		level, node := tlog.SplitStoredHashIndex(x)
		if level >= len(f.set) || !f.set[level] || f.node[level] != node {
			return nil, errNotInFrontier
		}
		out[i] = f.hash[level]
	}
	return out, nil
}

// recorder is a tlog.HashReader that answers zeros and remembers what was asked: it learns which
// stored hashes a tlog computation needs before they are at hand.
type recorder struct{ indexes []int64 }

func (r *recorder) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	r.indexes = append(r.indexes, indexes...)
	return make([]tlog.Hash, len(indexes)), nil
}

// treeHashIndexes returns the stored hash indexes tlog.TreeHash(n) reads.
func treeHashIndexes(n int64) ([]int64, error) {
	var r recorder
	if _, err := tlog.TreeHash(n, &r); err != nil {
		return nil, err
	}
	return r.indexes, nil
}

// mapReader is a tlog.HashReader over hashes collected by stored index.
type mapReader map[int64]tlog.Hash

func (m mapReader) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		h, ok := m[x]
		if !ok {
			return nil, fmt.Errorf("provenance: stored hash %d not collected", x)
		}
		out[i] = h
	}
	return out, nil
}

// treeFile is what the stored hashes are written through; a test swaps it to inject failures.
type treeFile interface {
	io.ReaderAt
	io.WriterAt
	Sync() error
	Close() error
	Truncate(size int64) error
}

// treeStore keeps the tree's stored hashes in the file beside the log (<log>.tree): hash number
// i (tlog.StoredHashIndex order) at byte offset 32·i, nothing else. The file is derived data —
// Open rebuilds it from the log whenever it disagrees — but once Open has checked it, Append
// keeps it exact and durable so proofs need not re-read the log.
type treeStore struct {
	f     treeFile
	front frontier // also the count of records stored (front.n)
}

// add stores the hashes of the next record and, if sync, fsyncs them. The frontier advances only
// once they are written (and synced), so after a failure it still describes the durable tree.
func (t *treeStore) add(leaf tlog.Hash, sync bool) error {
	hs, err := t.front.next(leaf)
	if err != nil {
		return err
	}
	buf := make([]byte, 0, len(hs)*tlog.HashSize)
	for _, h := range hs {
		buf = append(buf, h[:]...)
	}
	if _, err := t.f.WriteAt(buf, tlog.StoredHashIndex(0, t.front.n)*tlog.HashSize); err != nil {
		return err
	}
	if sync {
		if err := t.f.Sync(); err != nil {
			return err
		}
	}
	t.front.apply(hs)
	return nil
}

// ReadHashes implements tlog.HashReader: the frontier answers what it holds, the file the rest.
// Only the Log's goroutine holding its lock may call it (the frontier changes on add).
func (t *treeStore) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	if hs, err := t.front.ReadHashes(indexes); err == nil {
		return hs, nil
	}
	return fileHashes{f: t.f, size: t.front.n}.ReadHashes(indexes)
}

// fileHashes reads stored hashes of a tree of size records from a tree file. The hashes of a
// tree of a committed size never change, so it may read while the Log appends.
type fileHashes struct {
	f    io.ReaderAt
	size int64
}

func (r fileHashes) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	limit := tlog.StoredHashCount(r.size)
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		if x < 0 || x >= limit {
			return nil, fmt.Errorf("provenance: stored hash %d is beyond a tree of %d records", x, r.size)
		}
		if _, err := r.f.ReadAt(out[i][:], x*tlog.HashSize); err != nil {
			return nil, fmt.Errorf("provenance: read tree: %w", err)
		}
	}
	return out, nil
}

// Tree file states VerifyAll reports. The tree file is derived data: any state but TreeFileOK is
// a warning, fixed by the next Open, never log corruption.
const (
	TreeFileOK       = "ok"       // holds exactly the stored hashes of the verified entries
	TreeFileMissing  = "missing"  // absent
	TreeFileShort    = "short"    // a correct prefix, but hashes are missing at the end
	TreeFileLong     = "long"     // correct, followed by bytes the log does not account for
	TreeFileMismatch = "mismatch" // some stored hash differs from the one the log implies
)

// treeCheck compares the stored hashes a scan computes with a tree file, in one sequential read.
// It stops comparing at the first difference and remembers where the tree must be rebuilt from.
type treeCheck struct {
	r       io.Reader // nil when the file is missing
	state   string    // "" while all matched so far
	buf     [tlog.HashSize]byte
	badFrom int64 // first record whose stored hashes disagree (valid when state != "")
	badOff  int64 // byte offset of that record's line in the log
	badAt   frontier
}

func newTreeCheck(f *os.File) *treeCheck {
	if f == nil {
		return &treeCheck{state: TreeFileMissing} // rebuilt from record 0, an empty frontier
	}
	return &treeCheck{r: bufio.NewReaderSize(f, 64<<10)}
}

// record compares the stored hashes hs of the record the frontier before is about to add, whose
// line starts at byte off of the log.
func (c *treeCheck) record(before *frontier, off int64, hs []tlog.Hash) {
	if c.state != "" {
		return
	}
	for _, h := range hs {
		_, err := io.ReadFull(c.r, c.buf[:])
		if err == nil && c.buf == h {
			continue
		}
		if err == nil {
			c.state = TreeFileMismatch
		} else {
			c.state = TreeFileShort
		}
		c.badFrom, c.badOff, c.badAt = before.n, off, *before
		return
	}
}

// finish reports the file's state once all records were compared.
func (c *treeCheck) finish() string {
	if c.state != "" {
		return c.state
	}
	if n, _ := c.r.Read(c.buf[:1]); n > 0 {
		return TreeFileLong
	}
	return TreeFileOK
}

// checkedInt64 converts a size or index from the API to tlog's int64.
func checkedInt64(x uint64) (int64, error) {
	if x > math.MaxInt64 {
		return 0, fmt.Errorf("provenance: %d is out of range", x)
	}
	return int64(x), nil
}
