//go:build initpanic

package main

// init panics, so _initialize traps before any data is handed over: the job must fail
// before reading rows.
func init() { panic("no") }

func compute([]byte) []float64 { return []float64{0, 0} }
