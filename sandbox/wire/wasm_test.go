package wire

import (
	"math"
	"testing"
)

// wasmOutputCases are declared output shapes, admitted or not; they seed FuzzWasmOutput.
var wasmOutputCases = []struct {
	name string
	out  WasmOutput
	ok   bool
}{
	{"one_element", WasmOutput{Length: 1, Bounds: [][2]float64{{0, 1}}, Default: []float64{0}}, true},
	{"two_elements", WasmOutput{Length: 2, Bounds: [][2]float64{{-1, 1}, {0, 100}}, Default: []float64{0, 100}}, true},
	{"zero_length", WasmOutput{}, false},
	{"too_long", WasmOutput{Length: MaxWasmOutput + 1}, false},
	{"missing_bounds", WasmOutput{Length: 2, Bounds: [][2]float64{{0, 1}}, Default: []float64{0, 0}}, false},
	{"missing_default", WasmOutput{Length: 1, Bounds: [][2]float64{{0, 1}}}, false},
	{"empty_range", WasmOutput{Length: 1, Bounds: [][2]float64{{1, 1}}, Default: []float64{1}}, false},
	{"reversed", WasmOutput{Length: 1, Bounds: [][2]float64{{1, 0}}, Default: []float64{0.5}}, false},
	{"infinite_bound", WasmOutput{Length: 1, Bounds: [][2]float64{{0, math.Inf(1)}}, Default: []float64{0}}, false},
	{"nan_bound", WasmOutput{Length: 1, Bounds: [][2]float64{{math.NaN(), 1}}, Default: []float64{0}}, false},
	{"default_outside", WasmOutput{Length: 1, Bounds: [][2]float64{{0, 1}}, Default: []float64{2}}, false},
	{"default_nan", WasmOutput{Length: 1, Bounds: [][2]float64{{0, 1}}, Default: []float64{math.NaN()}}, false},
}

func TestWasmOutputValidate(t *testing.T) {
	for _, c := range wasmOutputCases {
		t.Run(c.name, func(t *testing.T) {
			if err := c.out.Validate(); (err == nil) != c.ok {
				t.Fatalf("Validate() = %v, want ok=%v", err, c.ok)
			}
		})
	}
}

// FuzzWasmOutput: whatever the shape, Validate either refuses it or admits one whose every
// element has finite bounds lo < hi and a default inside them (what the worker's clamp and
// the engine's noise rely on).
func FuzzWasmOutput(f *testing.F) {
	for _, c := range wasmOutputCases {
		if c.out.Length == 1 && len(c.out.Bounds) == 1 && len(c.out.Default) == 1 {
			f.Add(c.out.Length, c.out.Bounds[0][0], c.out.Bounds[0][1], c.out.Default[0])
		}
	}
	f.Fuzz(func(t *testing.T, n int, lo, hi, d float64) {
		if n > 64 || n < -1 {
			n = n % 64
		}
		o := WasmOutput{Length: n}
		for range max(n, 0) {
			o.Bounds = append(o.Bounds, [2]float64{lo, hi})
			o.Default = append(o.Default, d)
		}
		if o.Validate() != nil {
			return
		}
		for i := range o.Length {
			b := o.Bounds[i]
			if !(b[0] < b[1]) || math.IsInf(b[0], 0) || math.IsInf(b[1], 0) || !(o.Default[i] >= b[0] && o.Default[i] <= b[1]) {
				t.Fatalf("admitted %+v", o)
			}
		}
	})
}
