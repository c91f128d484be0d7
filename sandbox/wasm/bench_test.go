package wasm

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"

	"github.com/c1b99f93/cleanroom/sandbox/wasm/wasmtest"
	"github.com/c1b99f93/cleanroom/sandbox/wire"
)

// BenchmarkBlockOverhead is the fixed cost of one block — a fresh instance, _initialize,
// alloc, run and close — for a minimal Go module (huge: returns a constant) and for the sample
// model (which links arrow-go), on an empty block.
func BenchmarkBlockOverhead(b *testing.B) {
	r := newRuntime(b, Config{CacheDir: wasmtest.CacheDir(b), Parallel: 1})
	empty := genRows(0, 0, 1).split(b, 1)
	for _, c := range []struct {
		name string
		out  wire.WasmOutput
	}{
		{wasmtest.Huge, wire.WasmOutput{Length: 2, Bounds: [][2]float64{{0, 1}, {0, 1}}, Default: []float64{0, 0}}},
		{wasmtest.Sample, sampleOut},
	} {
		b.Run(c.name, func(b *testing.B) {
			m := compile(b, r, c.name)
			for b.Loop() {
				if _, err := m.Aggregate(context.Background(), empty, c.out, 20*time.Second); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkSampleK50Over1M: 1M rows (250k units of 4 rows) in 50 blocks. Reported per
// operation: split_s (keyed hash and Arrow IPC encoding of every block), wasm_s (the sample
// module over the 50 blocks, Config.Parallel = GOMAXPROCS) and native_s, the baseline: the
// same mean and least squares in Go over the same 50 IPC streams, one after the other.
func BenchmarkSampleK50Over1M(b *testing.B) {
	r := newRuntime(b, Config{CacheDir: wasmtest.CacheDir(b)})
	m := compile(b, r, wasmtest.Sample)
	data := genRows(250_000, 4, 9)
	var split, run, native time.Duration
	for b.Loop() {
		t0 := time.Now()
		blocks := data.split(b, 50)
		t1 := time.Now()
		if _, err := m.Aggregate(context.Background(), blocks, sampleOut, 60*time.Second); err != nil {
			b.Fatal(err)
		}
		t2 := time.Now()
		for _, blk := range blocks {
			nativeFit(b, blk)
		}
		split, run, native = split+t1.Sub(t0), run+t2.Sub(t1), native+time.Since(t2)
	}
	n := float64(b.N)
	b.ReportMetric(split.Seconds()/n, "split_s")
	b.ReportMetric(run.Seconds()/n, "wasm_s")
	b.ReportMetric(native.Seconds()/n, "native_s")
}

// nativeFit is the sample's computation in the host: sums for the means and the line.
func nativeFit(b *testing.B, stream []byte) [5]float64 {
	rdr, err := ipc.NewReader(bytes.NewReader(stream))
	if err != nil {
		b.Fatal(err)
	}
	defer rdr.Release()
	var s [5]float64
	for rdr.Next() {
		rec := rdr.RecordBatch()
		x, y := rec.Column(0).(*array.Float64), rec.Column(1).(*array.Float64)
		for i := range x.Len() {
			a, c := x.Value(i), y.Value(i)
			s[0]++
			s[1] += a
			s[2] += c
			s[3] += a * a
			s[4] += a * c
		}
	}
	return s
}
