//go:build membomb

package main

var hoard [][]byte

// compute allocates until memory growth fails: the page cap must stop it.
func compute([]byte) []float64 {
	for {
		b := make([]byte, 16<<20)
		for i := range b {
			b[i] = 1
		}
		hoard = append(hoard, b)
	}
}
