package provenance

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"
)

// testKey returns a fresh platform key in its own directory.
func testKey(t testing.TB) *PlatformKey {
	t.Helper()
	k, err := LoadOrCreatePlatformKey(filepath.Join(t.TempDir(), "platform.key"))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// sampleRecord is record i of a deterministic log: two logs built with the same tag have the
// same lines.
func sampleRecord(i int, tag string) RecordEnvelope {
	return RecordEnvelope{
		Type: TypeMechanism,
		Job:  fmt.Sprintf("job-%d", i%3),
		Time: time.Date(2026, 1, 2, 3, 4, 5, i, time.UTC),
		Data: &Mechanism{Aggregates: DocOf(map[string]any{"n": i, "note": "abcdef", "tag": tag})},
	}
}

// buildLog appends records to the log at path (opened with opts) and closes it.
func buildLog(t testing.TB, path string, records []RecordEnvelope, opts ...Option) {
	t.Helper()
	l, err := Open(path, opts...)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	for _, r := range records {
		if _, err := l.appendRecord(context.Background(), r, true); err != nil {
			t.Fatalf("Append: %v", err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

// records returns n sample records; the first shared of them carry tag "shared", the rest tag.
func records(n, shared int, tag string) []RecordEnvelope {
	out := make([]RecordEnvelope, n)
	for i := range out {
		if i < shared {
			out[i] = sampleRecord(i, "shared")
		} else {
			out[i] = sampleRecord(i, tag)
		}
	}
	return out
}

// fileLines reads a file as lines, newlines kept.
func fileLines(t testing.TB, path string) [][]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ls := bytes.SplitAfter(b, []byte("\n"))
	if len(ls[len(ls)-1]) == 0 {
		ls = ls[:len(ls)-1]
	}
	return ls
}

// refMTH is RFC 6962's Merkle Tree Hash written out from the RFC (section 2.1): an oracle,
// independent of tlog, that the log's tree is the standard one over its lines.
func refMTH(leaves [][]byte) [sha256.Size]byte {
	switch n := len(leaves); n {
	case 0:
		return sha256.Sum256(nil)
	case 1:
		return sha256.Sum256(append([]byte{0}, leaves[0]...))
	default:
		k := 1
		for k*2 < n {
			k *= 2
		}
		l, r := refMTH(leaves[:k]), refMTH(leaves[k:])
		return sha256.Sum256(append(append([]byte{1}, l[:]...), r[:]...))
	}
}

func TestTreeIsRFC6962OverLines(t *testing.T) {
	const n = 70 // crosses the line index stride
	path := filepath.Join(t.TempDir(), "provenance.log")
	buildLog(t, path, records(n, 0, "a"))
	lines := fileLines(t, path)
	var leaves [][]byte
	for _, l := range lines {
		leaves = append(leaves, bytes.TrimSuffix(l, []byte("\n")))
	}

	l, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for size := 0; size <= n; size++ {
		got, err := l.TreeHead(uint64(size))
		if err != nil {
			t.Fatal(err)
		}
		if want := refMTH(leaves[:size]); got != tlog.Hash(want) {
			t.Fatalf("TreeHead(%d) = %v, RFC 6962 MTH = %v", size, got, tlog.Hash(want))
		}
	}
	if _, err := l.TreeHead(n + 1); !errors.Is(err, ErrOutOfRange) {
		t.Errorf("TreeHead beyond the log = %v, want ErrOutOfRange", err)
	}
	for i := 0; i < n; i++ {
		got, err := l.Line(uint64(i))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, leaves[i]) {
			t.Fatalf("Line(%d) = %s, want %s", i, got, leaves[i])
		}
	}
	if _, err := l.Line(n); !errors.Is(err, ErrOutOfRange) {
		t.Errorf("Line beyond the log = %v, want ErrOutOfRange", err)
	}
	// Entry.Leaf names the same leaf.
	es, err := ReadJob(path, "job-1")
	if err != nil {
		t.Fatal(err)
	}
	if es[0].Leaf() != tlog.RecordHash(leaves[1]) {
		t.Error("Entry.Leaf differs from the line's leaf")
	}
	// The tree file holds exactly the stored hashes.
	st, err := os.Stat(path + treeSuffix)
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() != tlog.StoredHashCount(n)*tlog.HashSize {
		t.Errorf("tree file is %d bytes, want %d", st.Size(), tlog.StoredHashCount(n)*tlog.HashSize)
	}
}

func TestLineDetectsAFileChangedUnderTheLog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "provenance.log")
	buildLog(t, path, records(5, 0, "a"))
	l, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	b, _ := os.ReadFile(path)
	i := bytes.LastIndex(b, []byte("abcdef"))
	b[i] = 'X'
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Line(4); !errors.Is(err, ErrCorrupt) {
		t.Errorf("Line of an edited line = %v, want ErrCorrupt", err)
	}
}

func TestProofsValidForManySizes(t *testing.T) {
	const n = 40
	path := filepath.Join(t.TempDir(), "provenance.log")
	buildLog(t, path, records(n, 0, "a"))
	l, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	roots := make([]tlog.Hash, n+1)
	for s := range roots {
		roots[s], _ = l.TreeHead(uint64(s))
	}
	lines := fileLines(t, path)
	for size := uint64(1); size <= n; size++ { // size 1, powers of two and all the rest
		for i := uint64(0); i < size; i++ {
			p, err := l.InclusionProof(i, size)
			if err != nil {
				t.Fatal(err)
			}
			if err := CheckInclusion(p, size, roots[size], i, lines[i]); err != nil {
				t.Fatalf("inclusion (%d, %d): %v", i, size, err)
			}
		}
		for old := uint64(0); old <= size; old++ {
			p, err := l.ConsistencyProof(old, size)
			if err != nil {
				t.Fatal(err)
			}
			if err := CheckConsistency(p, old, roots[old], size, roots[size]); err != nil {
				t.Fatalf("consistency (%d, %d): %v", old, size, err)
			}
		}
	}
	for _, tt := range []struct{ index, size uint64 }{{0, 0}, {3, 3}, {0, n + 1}} {
		if _, err := l.InclusionProof(tt.index, tt.size); !errors.Is(err, ErrOutOfRange) {
			t.Errorf("InclusionProof(%d, %d) = %v, want ErrOutOfRange", tt.index, tt.size, err)
		}
	}
	if _, err := l.ConsistencyProof(5, 4); !errors.Is(err, ErrOutOfRange) {
		t.Errorf("ConsistencyProof(5, 4) = %v, want ErrOutOfRange", err)
	}
	if _, err := l.ConsistencyProof(4, n+1); !errors.Is(err, ErrOutOfRange) {
		t.Errorf("ConsistencyProof beyond the log = %v, want ErrOutOfRange", err)
	}
}

func TestProofsRejectCorruption(t *testing.T) {
	const n = 13
	path := filepath.Join(t.TempDir(), "provenance.log")
	buildLog(t, path, records(n, 0, "a"))
	l, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	lines := fileLines(t, path)
	root := func(s uint64) tlog.Hash { h, _ := l.TreeHead(s); return h }
	incl := func(i, s uint64) tlog.RecordProof { p, _ := l.InclusionProof(i, s); return p }
	cons := func(o, s uint64) tlog.TreeProof { p, _ := l.ConsistencyProof(o, s); return p }
	flip := func(p []tlog.Hash, i int) []tlog.Hash {
		q := append([]tlog.Hash(nil), p...)
		q[i][7] ^= 1
		return q
	}
	extra := func(p []tlog.Hash) []tlog.Hash { return append(append([]tlog.Hash(nil), p...), root(1)) }

	inclusion := []struct {
		name  string
		proof tlog.RecordProof
		size  uint64
		root  tlog.Hash
		index uint64
		line  []byte
	}{
		{"wrong index", incl(5, n), n, root(n), 4, lines[5]},
		{"wrong index, right line", incl(5, n), n, root(n), 4, lines[4]},
		{"wrong size", incl(2, 12), n, root(n), 2, lines[2]},
		{"wrong size (power of two)", incl(2, 8), 7, root(7), 2, lines[2]},
		{"root of another size", incl(2, n), n, root(n - 1), 2, lines[2]},
		{"extra hash", tlog.RecordProof(extra(incl(5, n))), n, root(n), 5, lines[5]},
		{"extra hash (size 1)", tlog.RecordProof(extra(incl(0, 1))), 1, root(1), 0, lines[0]},
		{"missing hash", incl(5, n)[1:], n, root(n), 5, lines[5]},
		{"missing last hash", incl(5, n)[:len(incl(5, n))-1], n, root(n), 5, lines[5]},
		{"flipped hash", tlog.RecordProof(flip(incl(5, n), 0)), n, root(n), 5, lines[5]},
		{"proof for another leaf", incl(6, n), n, root(n), 5, lines[5]},
		{"another leaf's line", incl(5, n), n, root(n), 5, lines[6]},
		{"line with a changed byte", incl(5, n), n, root(n), 5, bytes.Replace(lines[5], []byte("abcdef"), []byte("abcdeF"), 1)},
		{"index beyond size", incl(5, n), 5, root(5), 5, lines[5]},
	}
	for _, tt := range inclusion {
		t.Run("inclusion/"+tt.name, func(t *testing.T) {
			if err := CheckInclusion(tt.proof, tt.size, tt.root, tt.index, tt.line); !errors.Is(err, ErrProofInvalid) {
				t.Errorf("CheckInclusion = %v, want ErrProofInvalid", err)
			}
		})
	}
	consistency := []struct {
		name             string
		proof            tlog.TreeProof
		oldSize, newSize uint64
		oldRoot, newRoot tlog.Hash
	}{
		{"swapped roots", cons(5, n), 5, n, root(n), root(5)},
		{"wrong old size", cons(5, n), 6, n, root(6), root(n)},
		{"wrong new size", cons(5, n), 5, n - 1, root(5), root(n - 1)},
		{"old size a power of two", cons(4, n), 5, n, root(5), root(n)},
		{"extra hash", tlog.TreeProof(extra(cons(5, n))), 5, n, root(5), root(n)},
		{"extra hash on equal sizes", tlog.TreeProof(extra(cons(n, n))), n, n, root(n), root(n)},
		{"missing hash", cons(5, n)[1:], 5, n, root(5), root(n)},
		{"missing last hash", cons(5, n)[:len(cons(5, n))-1], 5, n, root(5), root(n)},
		{"flipped hash", tlog.TreeProof(flip(cons(5, n), 1)), 5, n, root(5), root(n)},
		{"wrong old root", cons(5, n), 5, n, root(4), root(n)},
		{"wrong new root", cons(5, n), 5, n, root(5), root(n - 1)},
		{"old larger than new", cons(5, n), n, 5, root(n), root(5)},
		{"from empty with a proof", cons(1, 2), 0, 2, root(0), root(2)},
		{"from empty with a wrong root", tlog.TreeProof{}, 0, 2, root(1), root(2)},
	}
	for _, tt := range consistency {
		t.Run("consistency/"+tt.name, func(t *testing.T) {
			if err := CheckConsistency(tt.proof, tt.oldSize, tt.oldRoot, tt.newSize, tt.newRoot); !errors.Is(err, ErrProofInvalid) {
				t.Errorf("CheckConsistency = %v, want ErrProofInvalid", err)
			}
		})
	}
}

func TestTreeFileIsRebuiltWhenDamaged(t *testing.T) {
	const n = 23
	tests := []struct {
		name   string
		damage func(t *testing.T, tree string)
		state  string
	}{
		{"deleted", func(t *testing.T, tree string) { os.Remove(tree) }, TreeFileMissing},
		{"emptied", func(t *testing.T, tree string) { os.Truncate(tree, 0) }, TreeFileShort},
		{"cut mid-hash", func(t *testing.T, tree string) { st, _ := os.Stat(tree); os.Truncate(tree, st.Size()-10) }, TreeFileShort},
		{"cut a record's hashes", func(t *testing.T, tree string) {
			os.Truncate(tree, tlog.StoredHashCount(n-1)*tlog.HashSize)
		}, TreeFileShort},
		{"extra bytes", func(t *testing.T, tree string) {
			f, _ := os.OpenFile(tree, os.O_WRONLY|os.O_APPEND, 0)
			f.Write(make([]byte, 40))
			f.Close()
		}, TreeFileLong},
		{"a hash changed", func(t *testing.T, tree string) {
			b, _ := os.ReadFile(tree)
			b[17*tlog.HashSize+3] ^= 0x80
			os.WriteFile(tree, b, 0o600)
		}, TreeFileMismatch},
	}
	key := testKey(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "provenance.log")
			buildLog(t, path, records(n, 0, "a"), WithSigner(key), WithCheckpointEvery(5))
			good, _ := os.ReadFile(path + treeSuffix)
			tt.damage(t, path+treeSuffix)

			rep, err := VerifyAll(path, key.Verifier())
			if err != nil || !rep.OK() {
				t.Fatalf("VerifyAll with a damaged tree file = %+v, %v; want a warning only", rep, err)
			}
			if rep.TreeFile != tt.state {
				t.Errorf("TreeFile = %q, want %q", rep.TreeFile, tt.state)
			}
			l, err := Open(path, WithSigner(key))
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			rebuilt, _ := os.ReadFile(path + treeSuffix)
			if !bytes.Equal(rebuilt, good) {
				t.Errorf("rebuilt tree file differs (%d bytes, want %d)", len(rebuilt), len(good))
			}
			if rep, err := VerifyAll(path, key.Verifier()); err != nil || rep.TreeFile != TreeFileOK {
				t.Errorf("VerifyAll after Open = %+v, %v", rep, err)
			}
		})
	}
}

// faultyTree fails the way a full or dying disk does.
type faultyTree struct {
	treeFile
	writeErr, syncErr error
}

func (f *faultyTree) WriteAt(p []byte, off int64) (int, error) {
	if f.writeErr != nil {
		n, _ := f.treeFile.WriteAt(p[:len(p)/2], off)
		return n, f.writeErr
	}
	return f.treeFile.WriteAt(p, off)
}

func (f *faultyTree) Sync() error {
	if f.syncErr != nil {
		return f.syncErr
	}
	return f.treeFile.Sync()
}

func TestAppendFailsClosedWhenTreeOrCheckpointCannotBeWritten(t *testing.T) {
	key := testKey(t)
	tests := []struct {
		name   string
		inject func(l *Log) func()
	}{
		{"tree write error", func(l *Log) func() {
			good := l.tree.f
			l.tree.f = &faultyTree{treeFile: good, writeErr: errors.New("no space left on device")}
			return func() { l.tree.f = good }
		}},
		{"tree sync error", func(l *Log) func() {
			good := l.tree.f
			l.tree.f = &faultyTree{treeFile: good, syncErr: errors.New("input/output error")}
			return func() { l.tree.f = good }
		}},
		{"checkpoint write error", func(l *Log) func() {
			good := l.cpf
			l.cpf = &faultyFile{logFile: good, writeErr: errors.New("no space left on device")}
			return func() { l.cpf = good }
		}},
		{"checkpoint sync error", func(l *Log) func() {
			good := l.cpf
			l.cpf = &faultyFile{logFile: good, syncErr: errors.New("input/output error")}
			return func() { l.cpf = good }
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "provenance.log")
			l, err := Open(path, WithSigner(key), WithCheckpointEvery(2))
			if err != nil {
				t.Fatal(err)
			}
			mustAppend(t, l, sampleRecord(0, "a"))
			restore := tt.inject(l)
			if _, err := l.appendRecord(context.Background(), sampleRecord(1, "a"), true); !errors.Is(err, ErrUnavailable) {
				t.Fatalf("Append during fault = %v, want ErrUnavailable", err)
			}
			restore()
			if _, err := l.appendRecord(context.Background(), sampleRecord(2, "a"), true); !errors.Is(err, ErrUnavailable) {
				t.Fatalf("Append after fault = %v, want ErrUnavailable (poisoned)", err)
			}
			if _, err := l.Checkpoint(context.Background()); !errors.Is(err, ErrUnavailable) {
				t.Fatalf("Checkpoint after fault = %v, want ErrUnavailable", err)
			}
			l.Close()

			l2, err := Open(path, WithSigner(key))
			if err != nil {
				t.Fatalf("reopen after fault: %v", err)
			}
			l2.Close()
			rep, err := VerifyAll(path, key.Verifier())
			if err != nil || rep.TreeFile != TreeFileOK || rep.Records != 2 {
				t.Errorf("VerifyAll after reopen = %+v, %v", rep, err)
			}
		})
	}
}

func TestConcurrentAppendsAndProofs(t *testing.T) {
	key := testKey(t)
	path := filepath.Join(t.TempDir(), "provenance.log")
	l, err := Open(path, WithSigner(key), WithCheckpointEvery(7))
	if err != nil {
		t.Fatal(err)
	}
	const workers, each = 8, 12
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				if _, err := l.appendRecord(context.Background(), RecordEnvelope{Type: TypeExecution, Job: fmt.Sprintf("w%d", w)}, true); err != nil {
					t.Error(err)
					return
				}
			}
		}()
		go func() { // readers prove what is committed while the writers append
			defer wg.Done()
			for i := 0; i < each; i++ {
				cp, ok := l.LatestCheckpoint()
				if !ok {
					continue
				}
				idx := uint64(i) % cp.Size
				p, err := l.InclusionProof(idx, cp.Size)
				if err != nil {
					t.Error(err)
					return
				}
				line, err := l.Line(idx)
				if err != nil {
					t.Error(err)
					return
				}
				if err := CheckInclusion(p, cp.Size, cp.Root, idx, line); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	rep, err := VerifyAll(path, key.Verifier())
	if err != nil || rep.Records != workers*each || rep.TreeFile != TreeFileOK {
		t.Fatalf("VerifyAll = %+v, %v", rep, err)
	}
}

// writeChain writes a valid log of n entries straight to path, without a Log (no fsync per line),
// to build large logs quickly.
func writeChain(t testing.TB, path string, n int) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	var prev [sha256.Size]byte
	for i := 0; i < n; i++ {
		rec, err := Canonical(sampleRecord(i, "big"))
		if err != nil {
			t.Fatal(err)
		}
		h := entryHash(uint64(i), prev, rec)
		w.Write(formatLine(Entry{Index: uint64(i), Prev: hex.EncodeToString(prev[:]), Hash: hex.EncodeToString(h[:]), Record: rec}))
		prev = h
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	f.Close()
}

// TestLargeLogOpensWithoutHoldingItsLines builds the tree of a log of 50,000 entries from
// scratch in Open and checks that the Log keeps only its sparse line index and tree frontier in
// memory, not the lines or stored hashes.
func TestLargeLogOpensWithoutHoldingItsLines(t *testing.T) {
	if testing.Short() {
		t.Skip("writes a 12 MB log")
	}
	const n = 50_000
	key := testKey(t)
	path := filepath.Join(t.TempDir(), "provenance.log")
	writeChain(t, path, n)
	st, _ := os.Stat(path)

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	l, err := Open(path, WithSigner(key))
	if err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if grew := int64(after.HeapAlloc) - int64(before.HeapAlloc); grew > 4<<20 {
		t.Errorf("Open of a %d MB log kept %d KB on the heap", st.Size()>>20, grew>>10)
	}
	cp, err := l.Checkpoint(context.Background())
	if err != nil || cp.Size != n {
		t.Fatalf("Checkpoint = %+v, %v", cp, err)
	}
	for _, i := range []uint64{0, 1, 63, 64, 65, 4095, 32767, 32768, 44444, n - 1} {
		line, err := l.Line(i)
		if err != nil {
			t.Fatal(err)
		}
		p, err := l.InclusionProof(i, n)
		if err != nil {
			t.Fatal(err)
		}
		if err := CheckInclusion(p, n, cp.Root, i, line); err != nil {
			t.Fatalf("inclusion of %d: %v", i, err)
		}
	}
	l.Close()
	if rep, err := VerifyAll(path, key.Verifier()); err != nil || rep.TreeFile != TreeFileOK || rep.Checkpoints != 1 {
		t.Fatalf("VerifyAll = %+v, %v", rep, err)
	}
}
