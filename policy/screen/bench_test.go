package screen

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/c1b99f93/cleanroom/rawset"
)

// benchOutput is a SQL-like result: two group keys, three noisy aggregates, per-row unit
// counts. With repeat, the keys take 400 and 25 values (as in a two-key GROUP BY); without,
// every key is distinct (so the per-review memo saves nothing).
func benchOutput(rows int, repeat bool) *Table {
	rng := rand.New(rand.NewPCG(1, 2))
	t := &Table{Cols: []Column{key("district"), key("department"), agg("visits", useUnit), agg("cost", useCost), agg("mean_cost", useCost)}}
	for r := 0; r < rows; r++ {
		n := 20 + rng.Float64()*500
		sum := n * (100 + rng.Float64()*900)
		d, k := r%400, r%25
		if !repeat {
			d, k = r, r
		}
		t.Data = append(t.Data, []Value{
			Str(fmt.Sprintf("昆明市 District %04d", d)),
			Str(fmt.Sprintf("门诊-内科-%05d", k)),
			Float(n), Float(sum), Float(sum / n),
		})
		t.Units = append(t.Units, n)
	}
	return t
}

// benchSet is a 1M-entry raw-value set of random hashes (building it by HMAC is measured by
// rawset.BenchmarkBuildHashSet).
func benchSet(b *testing.B, k *rawset.Keyer) *rawset.HashSet {
	rng := rand.New(rand.NewPCG(3, 4))
	h := make([]uint64, 1_000_000)
	for i := range h {
		h[i] = rng.Uint64()
	}
	return k.NewHashSet(h)
}

// BenchmarkScreen reviews a 10,000-row × 5-column output, without and with a 1M-entry
// raw-value set.
func BenchmarkScreen(b *testing.B) {
	const rows = 10_000
	k, err := rawset.NewKeyer(testKey)
	if err != nil {
		b.Fatal(err)
	}
	set := benchSet(b, k)
	limits := WithLimits(Limits{MaxRows: 100_000, MaxCells: 1_000_000, MaxBytes: 1 << 30, MinUnitsPerGroup: 20})
	for _, bc := range []struct {
		name   string
		unique bool
		opts   []Option
	}{
		{"identifiers", false, []Option{limits}},
		{"identifiers+raw1M", false, []Option{limits, WithRawValues(k, set)}},
		{"unique_keys/identifiers", true, []Option{limits}},
		{"unique_keys/identifiers+raw1M", true, []Option{limits, WithRawValues(k, set)}},
	} {
		out := benchOutput(rows, !bc.unique)
		r, err := New(bc.opts...)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if rev := r.Screen(context.Background(), out); len(rev.Findings) != 0 {
					b.Fatalf("findings on a clean output: %+v", rev.Findings)
				}
			}
			b.ReportMetric(float64(rows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}

// BenchmarkScreenCases reviews the whole case corpus once per iteration.
func BenchmarkScreenCases(b *testing.B) {
	rs := map[bool]*Screener{}
	for _, raw := range []bool{false, true} {
		rs[raw] = newScreener(b, Limits{}, raw)
	}
	for b.Loop() {
		for _, c := range cases {
			rs[c.raw].Screen(context.Background(), c.out)
		}
	}
}

// BenchmarkStringHit is the raw-value lookup of one group-key string (a miss).
func BenchmarkStringHit(b *testing.B) {
	k, _ := rawset.NewKeyer(testKey)
	h := hasher{k.Hasher()}
	set := rawset.NewHashSet([]uint64{1, 2, 3})
	for b.Loop() {
		h.stringHit(set, "昆明市 District 0042", false)
	}
}
