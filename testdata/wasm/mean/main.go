// Command mean is cleanroom's small sample custom model (docs/models.md), the one the demo
// runs: per block of rows it returns, for each float64 column of the block in order, the mean
// of its non-NULL values (0 for a column with none). The platform clamps each element to the
// job's declared bounds, averages over the blocks and adds noise.
//
// It reads the Arrow IPC stream itself (ipc.go: the stream's framing and the few flatbuffer
// tables a float64 column needs) instead of linking arrow-go, so it builds to about 2 MB and
// compiles in about a second, where testdata/wasm/sample, which links arrow-go, is 10 MB and
// takes ~17 s. Build it as a WASI reactor:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o mean.wasm ./testdata/wasm/mean
package main

import (
	"encoding/binary"
	"math"
	"unsafe"
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
	means := columnMeans(input[:size])
	output = make([]byte, 8*len(means)+8) // never empty, so &output[0] exists
	for i, x := range means {
		binary.LittleEndian.PutUint64(output[8*i:], math.Float64bits(x))
	}
	return uint64(uintptr(unsafe.Pointer(&output[0])))<<32 | uint64(8*len(means))
}

// columnMeans returns the mean of each float64 column of the stream. A stream it cannot read
// gives no values (the host then sees a vector of the wrong length and uses the default).
func columnMeans(stream []byte) []float64 {
	s, err := readStream(stream)
	if err != nil {
		return nil
	}
	out := make([]float64, len(s.sums))
	for i := range out {
		if s.counts[i] > 0 {
			out[i] = s.sums[i] / float64(s.counts[i])
		}
	}
	return out
}
