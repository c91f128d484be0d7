//go:build loop

package main

// compute never returns: the per-block deadline must stop it.
func compute([]byte) []float64 {
	x := 0.0
	for {
		x++
	}
}
