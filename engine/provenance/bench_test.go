package provenance

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
)

// BenchmarkAppend compares Append on the plain hash chain (the tree switched off through the
// test-only nil tree) with Append keeping the Merkle tree file, and with the tree plus signed
// checkpoints every 64 appends (the default). Each sub-benchmark after the first reports its
// time relative to the plain chain as "x-chain".
func BenchmarkAppend(b *testing.B) {
	key := testKey(b)
	pad := strings.Repeat("p", 200) // a record of about the size the pipeline writes
	var chainNs float64
	cases := []struct {
		name     string
		opts     []Option
		noTree   bool
		baseline bool
	}{
		{name: "chain", noTree: true, baseline: true},
		{name: "chain+tree"},
		{name: "chain+tree+checkpoints", opts: []Option{WithSigner(key), WithCheckpointEvery(DefaultCheckpointEvery)}},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			l, err := Open(filepath.Join(b.TempDir(), "provenance.log"), c.opts...)
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			if c.noTree {
				l.tree.f.Close()
				l.tree = nil
			}
			r := RecordEnvelope{Type: TypeExecution, Job: "bench", Data: &Execution{Domain: pad}}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := l.appendRecord(context.Background(), r, true); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			ns := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
			if c.baseline {
				chainNs = ns
			} else if chainNs > 0 {
				b.ReportMetric(ns/chainNs, "x-chain")
			}
		})
	}
}
