// Command sample is cleanroom's sample custom model (docs/models.md): per block of rows it
// returns the means of the first two float64 columns, x and y, and the least-squares line
// y ≈ intercept + slope·x. The platform clamps each element to the job's declared bounds,
// averages over the blocks and adds noise.
//
// Build it as a WASI reactor:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o sample.wasm ./testdata/wasm/sample
package main

import (
	"bytes"
	"encoding/binary"
	"math"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
)

// main is required by -buildmode=c-shared and never runs: the host calls _initialize, then
// alloc and run.
func main() {}

// input and output live in globals so the collector keeps them while the host reads them.
var input, output []byte

//go:wasmexport alloc
func alloc(size uint32) uint32 {
	input = make([]byte, size)
	if size == 0 {
		return 0
	}
	return uint32(uintptr(unsafe.Pointer(&input[0])))
}

//go:wasmexport run
func run(ptr, size uint32) uint64 {
	return emit(fit(input[:size]))
}

// emit stores v as little-endian float64 and returns (pointer << 32) | length.
func emit(v []float64) uint64 {
	output = make([]byte, 8*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint64(output[8*i:], math.Float64bits(x))
	}
	return uint64(uintptr(unsafe.Pointer(&output[0])))<<32 | uint64(len(output))
}

// fit returns mean x, mean y, slope and intercept over the rows where both are present. An
// empty block, or one where x does not vary, gives zeros for what it cannot estimate.
func fit(stream []byte) []float64 {
	r, err := ipc.NewReader(bytes.NewReader(stream))
	if err != nil {
		return []float64{0, 0, 0, 0}
	}
	defer r.Release()
	var xs []int
	for i, f := range r.Schema().Fields() {
		if f.Type.ID() == arrow.FLOAT64 {
			xs = append(xs, i)
		}
	}
	if len(xs) < 2 {
		return []float64{0, 0, 0, 0}
	}
	xi, yi := xs[0], xs[1]
	var n, sx, sy, sxx, sxy float64
	for r.Next() {
		rec := r.RecordBatch()
		x := rec.Column(xi).(*array.Float64)
		y := rec.Column(yi).(*array.Float64)
		for i := 0; i < int(rec.NumRows()); i++ {
			if x.IsNull(i) || y.IsNull(i) {
				continue
			}
			a, b := x.Value(i), y.Value(i)
			n++
			sx += a
			sy += b
			sxx += a * a
			sxy += a * b
		}
	}
	if n == 0 {
		return []float64{0, 0, 0, 0}
	}
	mx, my := sx/n, sy/n
	vxx := sxx/n - mx*mx
	if vxx <= 0 {
		return []float64{mx, my, 0, my}
	}
	slope := (sxy/n - mx*my) / vxx
	return []float64{mx, my, slope, my - slope*mx}
}
