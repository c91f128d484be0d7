package dp

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"testing"
)

// TestTreeNodesEncodeAsEncodingJSONDoes: the hand-written encoding of a quantile tree's nodes
// is byte for byte encoding/json's of the same map[int]int64 — the canonical pre-noise bytes,
// and so the digests in every recorded job, do not change — for random trees (seeded), and for
// the edges: nil, empty, negative and extreme keys and counts, keys whose decimal order is not
// their numeric order, keys on either side of the packed sort's 10^17 limit.
func TestTreeNodesEncodeAsEncodingJSONDoes(t *testing.T) {
	cases := []map[int]int64{nil, {}, {0: 0}, {-1: 5, 1: -5}, {math.MaxInt64: math.MinInt64, math.MinInt64: math.MaxInt64},
		{2: 1, 10: 1, 100: 1, 9: 1, -10: 1, -2: 1}, {2: 1, 10: 1, 100: 1, 9: 1, 19: 3, 1: 0, 0: 7},
		{99_999_999_999_999_999: 1, 10_000_000_000_000_000: 2, 1: 3, 999: 4}, {100_000_000_000_000_000: 1, 5: 2}}
	r := rand.New(rand.NewPCG(1, 2))
	for range 200 {
		m := map[int]int64{}
		for range r.IntN(3000) {
			m[r.IntN(70000)-r.IntN(10)] = r.Int64N(1<<40) - 1<<39
		}
		cases = append(cases, m)
	}
	for i, m := range cases {
		want, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		got, err := json.Marshal(treeNodes(m))
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(want) {
			t.Fatalf("case %d: %.200s\nwant %.200s", i, got, want)
		}
		// Inside the tree's state as Canonical writes it.
		st := quantileTreeState{QuantileTree: treeNodes(m), NumLeaves: 16}
		type plain struct {
			quantileTreeState
			QuantileTree map[int]int64
		}
		a, _ := json.Marshal(st)
		b, _ := json.Marshal(plain{st, m})
		if string(a) != string(b) {
			t.Fatalf("case %d: in the state %.200s\nwant %.200s", i, a, b)
		}
	}
}

// BenchmarkQuantileCanonical is the canonical encoding of a quantile state of 1e6 units
// (gob decode and JSON), and its tree's nodes written by encoding/json's reflection (the
// baseline, as before) and by treeNodes, in the same process.
func BenchmarkQuantileCanonical(b *testing.B) {
	s := Spec{Kind: Quantiles, Value: 0, Lower: 0, Upper: 50000, Ranks: []float64{0.5}, Epsilon: 1, MaxPartitions: 1, MaxPerPartition: 1}
	acc, err := s.NewAccumulator(1_000_000)
	if err != nil {
		b.Fatal(err)
	}
	r := rand.New(rand.NewPCG(3, 4))
	for range 1_000_000 {
		if err := acc.AddUnit(1, []float64{r.Float64() * 50000}); err != nil {
			b.Fatal(err)
		}
	}
	st, err := acc.Encode()
	if err != nil {
		b.Fatal(err)
	}
	b.Run("canonical", func(b *testing.B) {
		for b.Loop() {
			if _, err := s.Canonical(st); err != nil {
				b.Fatal(err)
			}
		}
	})
	qs, err := decodeInto[quantileState](st)
	if err != nil {
		b.Fatal(err)
	}
	tree, err := decodeInto[quantileTreeState](qs.Tree)
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("%d tree nodes", len(tree.QuantileTree))
	for _, c := range []struct {
		name string
		v    any
	}{{"nodes/encoding_json", map[int]int64(tree.QuantileTree)}, {"nodes/treeNodes", tree.QuantileTree}} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := json.Marshal(c.v); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
