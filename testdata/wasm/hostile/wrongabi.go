//go:build wrongabi

package main

func main() {}

// run has the wrong type (one parameter, a 32-bit result): the module must be refused
// before any data is read.
//
//go:wasmexport run
func run(size uint32) uint32 { return size }

//go:wasmexport alloc
func alloc(size uint32) uint32 { return 0 }
