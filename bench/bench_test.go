package bench

import (
	"math"
	"slices"
	"strings"
	"testing"
)

// scaleCases feed TestParseScales and seed FuzzParseScales.
var scaleCases = []struct {
	in   string
	want []int // nil: refused
}{
	{"1e6,1e7", []int{1_000_000, 10_000_000}},
	{" 1e8 ", []int{100_000_000}},
	{"20000", []int{20_000}},
	{"2e4,,1e6", []int{20_000, 1_000_000}},
	{"1.5e3", []int{1_500}},
	{"1.5", nil},
	{"999", nil},
	{"2.5e8", []int{250_000_000}},
	{"2.6e8", nil}, // above synth.MaxPersons × 5
	{"1e6,x", nil},
	{"", nil},
	{"NaN", nil},
	{"-1e6", nil},
	{"Inf", nil},
}

func TestParseScales(t *testing.T) {
	for _, c := range scaleCases {
		got, err := ParseScales(c.in)
		if c.want == nil {
			if err == nil {
				t.Errorf("ParseScales(%q) = %v, want an error", c.in, got)
			}
			continue
		}
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("ParseScales(%q) = %v, %v; want %v", c.in, got, err, c.want)
		}
	}
}

// FuzzParseScales: whatever the text, a scale list is either refused or every scale is a
// whole number of rows the generator can make.
func FuzzParseScales(f *testing.F) {
	for _, c := range scaleCases {
		f.Add(c.in)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got, err := ParseScales(in)
		if err != nil {
			return
		}
		if len(got) == 0 {
			t.Fatalf("ParseScales(%q) accepted no scale", in)
		}
		for _, s := range got {
			if s < MinScale || s > MaxScale {
				t.Fatalf("ParseScales(%q) accepted %d", in, s)
			}
		}
	})
}

func TestMedianAndPercentile(t *testing.T) {
	for _, c := range []struct {
		xs       []float64
		med, p99 float64
	}{
		{[]float64{3}, 3, 3},
		{[]float64{3, 1, 2}, 2, 3},
		{[]float64{4, 1, 3, 2}, 2.5, 4},
		{[]float64{5, 5, 1, 5}, 5, 5},
	} {
		in := slices.Clone(c.xs)
		if got := median(c.xs); got != c.med {
			t.Errorf("median(%v) = %v, want %v", c.xs, got, c.med)
		}
		if got := percentile(c.xs, 99); got != c.p99 {
			t.Errorf("percentile(%v, 99) = %v, want %v", c.xs, got, c.p99)
		}
		if !slices.Equal(in, c.xs) {
			t.Errorf("the samples were reordered: %v", c.xs)
		}
	}
	if !math.IsNaN(median(nil)) {
		t.Error("the median of nothing is a number")
	}
	// Nearest rank: of 100 samples 1..100, the 99th percentile is 99 and the 50th is 50.
	var xs []float64
	for i := 100; i >= 1; i-- {
		xs = append(xs, float64(i))
	}
	if p := percentile(xs, 99); p != 99 {
		t.Errorf("p99 of 1..100 = %v", p)
	}
	if p := percentile(xs, 50); p != 50 {
		t.Errorf("p50 of 1..100 = %v", p)
	}
}

// beamCases feed TestParseBeamOutput and seed FuzzParseBeamOutput: the contract's lines, and
// what a broken or hostile binary could print instead.
var beamCases = []struct {
	out  string
	want int // result lines; -1: refused
}{
	{`{"workload":"count","rows":1000000,"seconds":9.5,"partitions":14}` + "\n", 1},
	{`{"workload":"sum","rows":1,"seconds":0.1,"partitions":14}` + "\n\n" + `{"workload":"mean","rows":1,"seconds":0.2,"partitions":14}`, 2},
	{"", -1},
	{"\n\n", -1},
	{`{"workload":"count","rows":1,"seconds":0,"partitions":14}`, -1},
	{`{"workload":"count","rows":1,"seconds":-1,"partitions":14}`, -1},
	{`{"workload":"median","rows":1,"seconds":1,"partitions":14}`, -1},
	{`{"workload":"count","rows":-1,"seconds":1,"partitions":14}`, -1},
	{`{"workload":"count","rows":1,"seconds":1,"partitions":14,"extra":1}`, -1},
	{`{"workload":"count","rows":1,"seconds":1,"partitions":14} {"workload":"sum"}`, -1},
	{`starting pipeline...`, -1},
	{`{"workload":"count","rows":1,"seconds":1e400,"partitions":14}`, -1},
}

func TestParseBeamOutput(t *testing.T) {
	for _, c := range beamCases {
		got, err := parseBeamOutput([]byte(c.out))
		if c.want < 0 {
			if err == nil {
				t.Errorf("parseBeamOutput(%q) = %+v, want an error", c.out, got)
			}
			continue
		}
		if err != nil || len(got) != c.want {
			t.Errorf("parseBeamOutput(%q) = %+v, %v; want %d lines", c.out, got, err, c.want)
		}
	}
}

// FuzzParseBeamOutput: whatever the binary prints, the parser returns an error or lines whose
// every time is a positive finite number of a known workload; its errors never quote the
// output.
func FuzzParseBeamOutput(f *testing.F) {
	for _, c := range beamCases {
		f.Add(c.out)
	}
	f.Fuzz(func(t *testing.T, out string) {
		lines, err := parseBeamOutput([]byte(out))
		if err != nil {
			if len(out) > 8 && strings.Contains(err.Error(), out) {
				t.Fatalf("the error quotes the output: %v", err)
			}
			return
		}
		for _, l := range lines {
			if !(l.Seconds > 0) || math.IsInf(l.Seconds, 0) || (l.Workload != "count" && l.Workload != "sum" && l.Workload != "mean") {
				t.Fatalf("accepted %+v", l)
			}
		}
	})
}

func TestNamesAreUniqueAndValidateKnowsThem(t *testing.T) {
	names := Names()
	seen := map[string]bool{}
	for _, n := range names {
		if seen[n] {
			t.Errorf("workload %s twice", n)
		}
		seen[n] = true
	}
	o := Options{Reps: 1, Scales: []int{MinScale}, Workloads: names}
	if err := o.Validate(); err != nil {
		t.Errorf("every name selected: %v", err)
	}
	o.Workloads = []string{"count_sum", "no_such"}
	if err := o.Validate(); err == nil {
		t.Error("an unknown workload was accepted")
	}
}
