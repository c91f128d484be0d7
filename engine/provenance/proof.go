package provenance

import (
	"bufio"
	"errors"
	"fmt"
	"io"

	"golang.org/x/mod/sumdb/tlog"
)

// treeView is a consistent view of the durable tree for reading without holding the Log's lock:
// the stored hashes of a tree of a committed size never change.
func (l *Log) treeView() (fileHashes, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return fileHashes{}, fmt.Errorf("provenance: read closed log: %w", ErrUnavailable)
	}
	if l.tree == nil {
		return fileHashes{}, fmt.Errorf("provenance: log has no tree: %w", ErrUnavailable)
	}
	return fileHashes{f: l.tree.f, size: l.tree.front.n}, nil
}

// TreeHead returns the RFC 6962 root hash of the log's first size entries (the hash of the empty
// string for size 0). size must not exceed Size (ErrOutOfRange).
func (l *Log) TreeHead(size uint64) (tlog.Hash, error) {
	v, err := l.treeView()
	if err != nil {
		return tlog.Hash{}, err
	}
	if size > uint64(v.size) {
		return tlog.Hash{}, fmt.Errorf("provenance: tree head at %d of a log of %d: %w", size, v.size, ErrOutOfRange)
	}
	v.size = int64(size)
	h, err := tlog.TreeHash(int64(size), v)
	if err != nil {
		return tlog.Hash{}, fmt.Errorf("provenance: tree head: %w", err)
	}
	return h, nil
}

// InclusionProof returns the RFC 6962 audit path proving that entry index is in the tree of the
// log's first size entries (index < size ≤ Size, else ErrOutOfRange). Check it with
// CheckInclusion against that tree's root, e.g. a checkpoint's.
func (l *Log) InclusionProof(index, size uint64) (tlog.RecordProof, error) {
	v, err := l.treeView()
	if err != nil {
		return nil, err
	}
	if index >= size || size > uint64(v.size) {
		return nil, fmt.Errorf("provenance: inclusion of %d in %d entries of a log of %d: %w", index, size, v.size, ErrOutOfRange)
	}
	p, err := tlog.ProveRecord(int64(size), int64(index), v)
	if err != nil {
		return nil, fmt.Errorf("provenance: inclusion proof: %w", err)
	}
	return p, nil
}

// ConsistencyProof returns the RFC 6962 consistency proof that the tree of the first oldSize
// entries is a prefix of the tree of the first newSize (oldSize ≤ newSize ≤ Size, else
// ErrOutOfRange). The proof from size 0 is empty. Check it with CheckConsistency.
func (l *Log) ConsistencyProof(oldSize, newSize uint64) (tlog.TreeProof, error) {
	v, err := l.treeView()
	if err != nil {
		return nil, err
	}
	if oldSize > newSize || newSize > uint64(v.size) {
		return nil, fmt.Errorf("provenance: consistency of %d with %d entries of a log of %d: %w", oldSize, newSize, v.size, ErrOutOfRange)
	}
	if oldSize == 0 {
		return tlog.TreeProof{}, nil
	}
	p, err := tlog.ProveTree(int64(newSize), int64(oldSize), v)
	if err != nil {
		return nil, fmt.Errorf("provenance: consistency proof: %w", err)
	}
	return p, nil
}

// Line returns entry index's line as it is in the log, without the newline: the entry's leaf
// data, which a server returns beside an inclusion proof. It reads the file (from the nearest
// remembered offset, at most 63 lines before) and checks the line against its leaf in the tree,
// wrapping ErrCorrupt if the file changed under the Log.
func (l *Log) Line(index uint64) ([]byte, error) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil, fmt.Errorf("provenance: read closed log: %w", ErrUnavailable)
	}
	if index >= l.next {
		n := l.next
		l.mu.Unlock()
		return nil, fmt.Errorf("provenance: line %d of a log of %d: %w", index, n, ErrOutOfRange)
	}
	off, end := l.sparse[index/lineIndexStride], l.end
	var leaf fileHashes
	if l.tree != nil && int64(index) < l.tree.front.n {
		leaf = fileHashes{f: l.tree.f, size: l.tree.front.n}
	}
	l.mu.Unlock()

	br := bufio.NewReader(io.NewSectionReader(l.rf, off, end-off))
	var line []byte
	for i := index - index%lineIndexStride; i <= index; i++ {
		var err error
		if line, err = br.ReadBytes('\n'); err != nil {
			return nil, fmt.Errorf("provenance: line %d: %w", index, err)
		}
	}
	line = line[:len(line)-1]
	if leaf.f != nil {
		want, err := leaf.ReadHashes([]int64{tlog.StoredHashIndex(0, int64(index))})
		if err != nil {
			return nil, err
		}
		if tlog.RecordHash(line) != want[0] {
			return nil, fmt.Errorf("provenance: %s: line %d differs from its leaf in the tree: %w", l.path, index, ErrCorrupt)
		}
	}
	return line, nil
}

// CheckInclusion checks, offline, an RFC 6962 audit path: that the tree of size entries with root
// hash root has, at index, the entry whose line is line (leaf data; one trailing newline, as in
// the log file, is ignored). A failure wraps ErrProofInvalid.
func CheckInclusion(proof tlog.RecordProof, size uint64, root tlog.Hash, index uint64, line []byte) error {
	if index >= size || size > 1<<63-1 {
		return fmt.Errorf("provenance: inclusion of %d in a tree of %d: %w", index, size, ErrProofInvalid)
	}
	if err := tlog.CheckRecord(proof, int64(size), root, int64(index), leafHash(line)); err != nil {
		return fmt.Errorf("provenance: inclusion of %d in a tree of %d: %w: %w", index, size, ErrProofInvalid, err)
	}
	return nil
}

// CheckConsistency checks, offline, an RFC 6962 consistency proof: that the tree of oldSize
// entries with root oldRoot is a prefix of the tree of newSize entries with root newRoot. From
// size 0 the proof must be empty and oldRoot the empty tree's hash. A failure wraps
// ErrProofInvalid.
func CheckConsistency(proof tlog.TreeProof, oldSize uint64, oldRoot tlog.Hash, newSize uint64, newRoot tlog.Hash) error {
	fail := func(err error) error {
		return fmt.Errorf("provenance: consistency of %d with %d: %w: %w", oldSize, newSize, ErrProofInvalid, err)
	}
	if oldSize > newSize || newSize > 1<<63-1 {
		return fail(errors.New("sizes out of order or range"))
	}
	if oldSize == 0 {
		empty, _ := tlog.TreeHash(0, nil)
		if len(proof) != 0 || oldRoot != empty {
			return fail(errors.New("the empty tree's proof is empty"))
		}
		return nil
	}
	if err := tlog.CheckTree(proof, int64(newSize), newRoot, int64(oldSize), oldRoot); err != nil {
		return fail(err)
	}
	return nil
}
