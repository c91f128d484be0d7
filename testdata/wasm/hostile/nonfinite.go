//go:build nonfinite

package main

import "math"

// compute returns NaN and +Inf: the host must treat the vector as bad.
func compute([]byte) []float64 { return []float64{math.NaN(), math.Inf(1)} }
