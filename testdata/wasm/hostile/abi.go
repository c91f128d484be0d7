//go:build !wrongabi

// Command hostile is a set of modules that attack the custom-model sandbox, one per build
// tag (sandbox/wasm's tests build each with -tags <name>): every file but this one and
// wrongabi.go defines compute for its tag. This file is the ABI of testdata/wasm/sample without the model.
package main

import (
	"encoding/binary"
	"math"
	"unsafe"
)

func main() {}

var input, output []byte

// outputLength is the vector length every test job declares.
const outputLength = 2

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
	v := compute(input[:size])
	output = make([]byte, 8*len(v)+8) // never empty, so &output[0] exists
	for i, x := range v {
		binary.LittleEndian.PutUint64(output[8*i:], math.Float64bits(x))
	}
	return uint64(uintptr(unsafe.Pointer(&output[0])))<<32 | uint64(8*len(v))
}
