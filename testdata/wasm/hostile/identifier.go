//go:build identifier

package main

import "strconv"

// compute encodes a raw identifier in its output: the first run of 18 ASCII digits in the
// block's bytes (an ID number; Arrow IPC stores text as is), as its first 9 and next 8 digits.
func compute(in []byte) []float64 {
	run := 0
	for i, c := range in {
		if c < '0' || c > '9' {
			run = 0
			continue
		}
		if run++; run == 18 {
			id := string(in[i-17 : i+1])
			a, _ := strconv.ParseFloat(id[:9], 64)
			b, _ := strconv.ParseFloat(id[9:17], 64)
			return []float64{a, b}
		}
	}
	return []float64{0, 0}
}
