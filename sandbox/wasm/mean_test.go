package wasm

import (
	"bytes"
	"context"
	"math"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/c1b99f93/cleanroom/errcode"
	"github.com/c1b99f93/cleanroom/sandbox/wasm/wasmtest"
	"github.com/c1b99f93/cleanroom/sandbox/wire"
)

// hostMeans reads a block with arrow-go and returns the mean of each float64 column's
// non-NULL values: what testdata/wasm/mean must compute with its own reader.
func hostMeans(t *testing.T, block []byte) []float64 {
	t.Helper()
	r, err := ipc.NewReader(bytes.NewReader(block))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Release()
	var cols []int
	for i, f := range r.Schema().Fields() {
		if f.Type.ID() == arrow.FLOAT64 {
			cols = append(cols, i)
		}
	}
	sums, counts := make([]float64, len(cols)), make([]float64, len(cols))
	for r.Next() {
		rec := r.RecordBatch()
		for j, c := range cols {
			a := rec.Column(c).(*array.Float64)
			for i := range a.Len() {
				if a.IsValid(i) {
					sums[j] += a.Value(i)
					counts[j]++
				}
			}
		}
	}
	for j := range sums {
		if counts[j] > 0 {
			sums[j] /= counts[j]
		}
	}
	return sums
}

// TestMeanModuleReadsTheSplittersStreams: the small sample module (its own IPC reader, no
// arrow-go) returns, per block, the float64 columns' means exactly as arrow-go reads them —
// over blocks of more than one record batch (75,000 rows each), a utf8 column between the
// float64 ones, NULLs, and an empty block.
func TestMeanModuleReadsTheSplittersStreams(t *testing.T) {
	r := newRuntime(t, Config{})
	m := compile(t, r, wasmtest.Mean)
	out := wire.WasmOutput{Length: 2, Bounds: [][2]float64{{0, 10}, {0, 40}}, Default: []float64{0, 0}}
	blocks := genRows(50000, 3, 2).split(t, 2)
	// A block with NULLs (x NULL in every third row) and one with no rows, written as the
	// splitter writes them.
	schema := arrow.NewSchema([]arrow.Field{{Name: "x", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
		{Name: "id", Type: arrow.BinaryTypes.String, Nullable: true}, {Name: "y", Type: arrow.PrimitiveTypes.Float64, Nullable: true}}, nil)
	for _, n := range []int{300, 0} {
		var buf bytes.Buffer
		w := ipc.NewWriter(&buf, ipc.WithSchema(schema))
		if n > 0 {
			b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
			for i := range n {
				if i%3 == 0 {
					b.Field(0).(*array.Float64Builder).AppendNull()
				} else {
					b.Field(0).(*array.Float64Builder).Append(float64(i % 10))
				}
				b.Field(1).(*array.StringBuilder).Append("110101199001011234")
				b.Field(2).(*array.Float64Builder).Append(float64(i) / 10)
			}
			rec := b.NewRecordBatch()
			if err := w.Write(rec); err != nil {
				t.Fatal(err)
			}
			rec.Release()
			b.Release()
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		blocks = append(blocks, buf.Bytes())
	}
	runs, err := m.aggregate(context.Background(), blocks, out, 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	for i, run := range runs {
		want := hostMeans(t, blocks[i])
		if run.failure != failNone || len(run.vec) != len(want) {
			t.Fatalf("block %d: failure %q, vector %v, want %v", i, run.failure, run.vec, want)
		}
		for j := range want {
			// Same values summed in the same order: equal up to rounding of the division.
			if math.Abs(run.vec[j]-want[j]) > 1e-9*math.Max(1, math.Abs(want[j])) {
				t.Errorf("block %d element %d = %v, arrow-go reads %v", i, j, run.vec[j], want[j])
			}
		}
	}
}

// TestCheckRefusesModulesWithoutRunningThem: Check accepts a module with the ABI and refuses
// bytes that are not WebAssembly, a wrong export type and an oversized module — with
// wasm_invalid_module — and runs none of the module's code (initpanic, whose init traps,
// passes: its failure is the worker's trial's to find, before any data).
func TestCheckRefusesModulesWithoutRunningThem(t *testing.T) {
	ctx := context.Background()
	mean := wasmtest.Build(t, wasmtest.Mean)
	cases := []struct {
		name string
		bin  []byte
		max  int
		ok   bool
	}{
		{"mean", mean, 0, true},
		{"initpanic", wasmtest.Build(t, wasmtest.InitPanic), 0, true},
		{"not wasm", []byte("\x00asm but not really"), 0, false},
		{"empty", nil, 0, false},
		{"wrong abi", wasmtest.Build(t, wasmtest.WrongABI), 0, false},
		{"too large", mean, len(mean) - 1, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d, err := Check(ctx, tc.bin, tc.max)
			switch {
			case tc.ok && (err != nil || d != Digest(tc.bin)):
				t.Fatalf("refused (%v) or digest %q", err, d)
			case !tc.ok && errcode.Of(err) != errcode.WasmInvalidModule:
				t.Fatalf("code %s (%v), want %s", errcode.Of(err), err, errcode.WasmInvalidModule)
			}
		})
	}
}
