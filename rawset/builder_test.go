package rawset

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"testing"
)

// Whatever its memory limit (so however many runs it spills), a Builder writes exactly the
// bytes NewHashSet writes for the same values, and leaves no file behind. The values repeat
// (a value hashed twice is one entry), and a run's hashes are drawn from the whole range so
// every merge interleaves. Seeds are fixed.
func TestBuilderWritesWhatHashSetWrites(t *testing.T) {
	k, _ := NewKeyer(testKey)
	for _, tc := range []struct {
		values, distinct, limit int
	}{
		{0, 1, 1024},
		{10, 10, 1024},       // all in memory
		{5000, 5000, 1024},   // five runs and a remainder
		{20000, 300, 1024},   // compaction frees the buffer: no run
		{30000, 20000, 1024}, // runs with duplicates across them
		{30000, 30000, 1 << 20},
	} {
		t.Run(fmt.Sprintf("%d_of_%d_limit_%d", tc.values, tc.distinct, tc.limit), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(tc.values), uint64(tc.limit)))
			dir := t.TempDir()
			b := k.NewBuilder(dir, tc.limit)
			h := k.Hasher()
			var hashes, batch []uint64
			for i := range tc.values {
				v := fmt.Sprintf("value %d", rng.IntN(tc.distinct))
				hashes = h.AppendRawHashes(hashes, v)
				batch = h.AppendRawHashes(batch, v)
				// Batches of any size, as hashing goroutines hand them over.
				if rng.IntN(50) == 0 || i == tc.values-1 {
					if err := b.AddHashes(batch); err != nil {
						t.Fatal(err)
					}
					batch = batch[:0]
				}
			}
			var got, want bytes.Buffer
			n, err := b.Write(&got)
			if err != nil {
				t.Fatal(err)
			}
			set := k.NewHashSet(hashes)
			if _, err := set.WriteTo(&want); err != nil {
				t.Fatal(err)
			}
			if n != set.Len() || !bytes.Equal(got.Bytes(), want.Bytes()) {
				t.Fatalf("Builder wrote %d hashes in %d bytes; NewHashSet %d in %d (equal bytes: %v)",
					n, got.Len(), set.Len(), want.Len(), bytes.Equal(got.Bytes(), want.Bytes()))
			}
			if _, err := ReadHashSet(&got); err != nil {
				t.Fatal(err)
			}
			if err := b.Close(); err != nil {
				t.Fatal(err)
			}
			if left, _ := os.ReadDir(dir); len(left) != 0 {
				t.Fatalf("files left in the run directory: %v", left)
			}
		})
	}
}

// A Builder spills once its buffer is full of distinct hashes, so it holds about its limit.
func TestBuilderSpillsRuns(t *testing.T) {
	k, _ := NewKeyer(testKey)
	b := k.NewBuilder(t.TempDir(), 1024)
	defer b.Close()
	h := k.Hasher()
	for i := range 10_000 {
		if err := b.AddHashes(h.AppendRawHashes(nil, fmt.Sprintf("distinct %d", i))); err != nil {
			t.Fatal(err)
		}
		if len(b.buf) > 1024+3 { // one value adds at most three hashes past the limit
			t.Fatalf("after %d values the buffer holds %d hashes", i+1, len(b.buf))
		}
	}
	if len(b.runs) < 9 {
		t.Fatalf("%d runs for 10,000 distinct values at a limit of 1024", len(b.runs))
	}
}

// A run that cannot be written fails the Builder: the error is returned by AddHashes and again by
// Write, which writes nothing.
func TestBuilderFailsWhenARunCannotBeWritten(t *testing.T) {
	k, _ := NewKeyer(testKey)
	b := k.NewBuilder(t.TempDir()+"/missing", 1024)
	defer b.Close()
	h := k.Hasher()
	var err error
	for i := 0; err == nil && i < 10_000; i++ {
		err = b.AddHashes(h.AppendRawHashes(nil, fmt.Sprintf("distinct %d", i)))
	}
	if err == nil {
		t.Fatal("no error from a Builder whose run directory does not exist")
	}
	var out bytes.Buffer
	if _, werr := b.Write(&out); werr == nil || out.Len() != 0 {
		t.Fatalf("Write after a failed run: %v, %d bytes", werr, out.Len())
	}
}
