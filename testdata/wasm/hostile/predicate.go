//go:build predicate

package main

import (
	"bytes"
	"encoding/binary"
	"math"
)

// compute traps when some row holds the float64 4242 (the "target" row: Arrow IPC stores
// float64 values as little-endian bytes, so a byte search finds it), and otherwise returns
// 1 and the stream's length in KiB. Whether the target is in a block must not show in the
// outcome beyond the noisy average.
func compute(in []byte) []float64 {
	var target [8]byte
	binary.LittleEndian.PutUint64(target[:], math.Float64bits(4242))
	if bytes.Contains(in, target[:]) {
		panic("target row")
	}
	return []float64{1, float64(len(in)) / 1024}
}
