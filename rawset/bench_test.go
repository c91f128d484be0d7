package rawset

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// BenchmarkHashSetContains looks up random hashes (mostly misses, as in a clean review) in a
// 1M-entry set.
func BenchmarkHashSetContains(b *testing.B) {
	k, _ := NewKeyer(testKey)
	rng := rand.New(rand.NewPCG(3, 4))
	set := k.NewHashSet(slices.Collect(func(yield func(uint64) bool) {
		for range 1_000_000 {
			if !yield(rng.Uint64()) {
				return
			}
		}
	}))
	var x uint64
	for b.Loop() {
		x++
		set.Contains(x * 0x9E3779B97F4A7C15)
	}
}

// BenchmarkBuildHashSet hashes 100,000 raw values into a set.
func BenchmarkBuildHashSet(b *testing.B) {
	vals := make([]string, 100_000)
	for i := range vals {
		vals[i] = fmt.Sprintf("1%010d", i*7919)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := BuildHashSet(testKey, slices.Values(vals)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(vals))*float64(b.N)/b.Elapsed().Seconds(), "values/s")
}

// BenchmarkHasher is one keyed hash (HMAC-SHA256 from the keyed state).
func BenchmarkHasher(b *testing.B) {
	k, _ := NewKeyer(testKey)
	h := k.Hasher()
	for b.Loop() {
		h.Hash("昆明市 DISTRICT 0042")
	}
}
