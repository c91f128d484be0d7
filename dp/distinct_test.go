package dp_test

import (
	"encoding/binary"
	"encoding/json"
	"math"
	"slices"
	"testing"

	"github.com/c1b99f93/cleanroom/dp"
)

// distinctUnits returns n units' kept rows for a COUNT(DISTINCT col) partition: unit i has 1..L∞
// values drawn from a small pool, so many values are shared between units (and repeated within
// one), with some NULLs (NaN) and both zeros.
func distinctUnits(n int, lInf int64) [][]float64 {
	out := make([][]float64, n)
	for i := range out {
		rows := int64(i)%lInf + 1
		for r := range rows {
			var v float64
			switch k := (i*31 + int(r)*17) % 97; {
			case k == 0:
				v = math.NaN()
			case k == 1:
				v = math.Copysign(0, -1)
			case k == 2:
				v = 0
			default:
				v = float64(k*k) * 1.5 // the identities the worker sends are whole; any float is a value
			}
			out[i] = append(out[i], v)
		}
	}
	return out
}

// distinctTruth counts the distinct non-NULL values of the units independently of the
// accumulator: sort the values and count changes (−0 == +0 compares equal).
func distinctTruth(units [][]float64) int64 {
	var vs []float64
	for _, u := range units {
		for _, v := range u {
			if !math.IsNaN(v) {
				vs = append(vs, v)
			}
		}
	}
	slices.Sort(vs)
	var n int64
	for i, v := range vs {
		if i == 0 || v != vs[i-1] {
			n++
		}
	}
	return n
}

func distinctSpec(epsilon, delta float64, l0, lInf int64) dp.Spec {
	return dp.Spec{Kind: dp.CountDistinctValues, Value: 0, Epsilon: epsilon, Delta: delta, MaxPartitions: l0, MaxPerPartition: lInf}
}

// preNoiseSum reads the total a state holds from its canonical form (BoundedSumInt64's Sum).
func preNoiseSum(t *testing.T, s dp.Spec, state []byte) int64 {
	t.Helper()
	c, err := s.Canonical(state)
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Sum             *int64
		L0Sensitivity   int64
		LInfSensitivity int64
	}
	if err := json.Unmarshal(c, &st); err != nil || st.Sum == nil {
		t.Fatalf("canonical state %s: %v", c, err)
	}
	if st.L0Sensitivity != s.MaxPartitions || st.LInfSensitivity != s.MaxPerPartition {
		t.Fatalf("state sensitivities L0 %d, L∞ %d; the spec's are %d, %d", st.L0Sensitivity, st.LInfSensitivity, s.MaxPartitions, s.MaxPerPartition)
	}
	return *st.Sum
}

// The pre-noise state of a distinct count holds exactly the number of distinct values among the
// rows fed (not the rows, not a per-unit sum), whatever order the units arrive in and however
// they are split over shards that are merged before encoding.
func TestDistinctValuesStateIsTheExactDistinctCountOfTheRowsFed(t *testing.T) {
	for _, lInf := range []int64{1, 3, 8} {
		s := distinctSpec(1, 0, 2, lInf)
		units := distinctUnits(5000, lInf)
		want := distinctTruth(units)
		var rows int64
		for _, u := range units {
			rows += int64(len(u))
		}
		if want >= rows || want < 10 {
			t.Fatalf("L∞ %d: the test data should share values: %d distinct of %d rows", lInf, want, rows)
		}
		rev := identity(len(units))
		slices.Reverse(rev)
		for name, state := range map[string][]byte{
			"in order": encodeRows(t, s, units, identity(len(units))),
			"reversed": encodeRows(t, s, units, rev),
			"sharded":  encodeSharded(t, s, units, 3),
		} {
			if got := preNoiseSum(t, s, state); got != want {
				t.Errorf("L∞ %d, %s: the pre-noise state holds %d, the rows have %d distinct values", lInf, name, got, want)
			}
		}
	}
}

// encodeSharded feeds unit i to shard i mod k, merges the shards into the first and encodes it,
// as the worker does with its parallel unit ranges.
func encodeSharded(t *testing.T, s dp.Spec, units [][]float64, k int) []byte {
	t.Helper()
	shards := make([]dp.Accumulator, k)
	for i := range shards {
		var err error
		if shards[i], err = s.NewAccumulator(int64(len(units))); err != nil {
			t.Fatal(err)
		}
	}
	for i, u := range units {
		if err := shards[i%k].AddUnit(int64(len(u)), u); err != nil {
			t.Fatal(err)
		}
	}
	for _, o := range shards[1:] {
		if err := shards[0].Merge(o); err != nil {
			t.Fatal(err)
		}
	}
	b, err := shards[0].Encode()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Noise-free tier of the release: at a large epsilon the released value is the distinct count
// within tolerance (50σ + 1, as in dp_test.go), its interval holds it, and an empty partition
// releases about 0.
func TestDistinctValuesReleaseTheDistinctCountAtLargeEpsilon(t *testing.T) {
	for _, delta := range []float64{0, 1e-5} {
		s := distinctSpec(largeEpsilon(delta), delta, 3, 4)
		t.Run(name(s), func(t *testing.T) {
			units := distinctUnits(3000, 4)
			want := float64(distinctTruth(units))
			r, err := one(s.Release(encodeRows(t, s, units, identity(len(units)))))
			if err != nil {
				t.Fatal(err)
			}
			if math.Abs(r.Value-want) > tolerance(s) || !(r.CILow <= r.Value && r.Value <= r.CIHigh) {
				t.Errorf("released %v [%v, %v], true %v, tolerance %v", r.Value, r.CILow, r.CIHigh, want, tolerance(s))
			}
			empty, err := one(s.Release(nil))
			if err != nil || empty.Value > tolerance(s) || empty.Value < 0 {
				t.Errorf("empty partition released %v (%v)", empty.Value, err)
			}
		})
	}
}

// The distinct count's noise is COUNT(*)'s at the same bounds (its sensitivity is the same: a
// unit's kept rows, at most L∞, in at most L0 partitions), and a state of one kind does not
// release as the other.
func TestDistinctValuesNoiseIsCountsAtTheSameBounds(t *testing.T) {
	for _, delta := range []float64{0, 1e-6} {
		s := distinctSpec(0.7, delta, 4, 16)
		c := s
		c.Kind, c.Value = dp.Count, -1
		if got, want := s.Components(), c.Components(); !slices.Equal(got, want) {
			t.Errorf("δ %g: components %+v, COUNT(*)'s %+v", delta, got, want)
		}
		state := encodeRows(t, s, distinctUnits(100, 16), identity(100))
		other := s
		other.MaxPerPartition = 8
		if _, err := other.Release(state); err == nil {
			t.Errorf("δ %g: a state built at L∞ 16 was released at L∞ 8", delta)
		}
		sum := dp.Spec{Kind: dp.Sum, Value: 0, Lower: 0, Upper: 16, Epsilon: 0.7, Delta: delta, MaxPartitions: 4, MaxPerPartition: 1}
		if _, err := sum.Release(state); err == nil {
			t.Errorf("δ %g: a distinct count's state was released as a sum", delta)
		}
	}
}

// A unit that brings more than L∞ rows would contribute more than the noise is calibrated for:
// the accumulator refuses it instead of counting it.
func TestDistinctValuesRefuseAUnitOverItsRowBound(t *testing.T) {
	s := distinctSpec(1, 0, 1, 2)
	acc, err := s.NewAccumulator(10)
	if err != nil {
		t.Fatal(err)
	}
	if err := acc.AddUnit(2, []float64{1, 2}); err != nil {
		t.Fatalf("a unit within its bound was refused: %v", err)
	}
	if err := acc.AddUnit(3, []float64{3, 4, 5}); err == nil {
		t.Fatal("a unit with 3 rows was accepted at L∞ 2")
	}
	b, err := acc.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if got := preNoiseSum(t, s, b); got != 2 {
		t.Errorf("after the refused unit the state holds %d, want the 2 values accepted before it", got)
	}
}

func TestDistinctValuesSpecMustReadAValue(t *testing.T) {
	if err := distinctSpec(1, 0, 1, 1).Validate(); err != nil {
		t.Fatalf("valid spec refused: %v", err)
	}
	s := distinctSpec(1, 0, 1, 1)
	s.Value = -1
	if err := s.Validate(); err == nil {
		t.Error("a distinct count that reads no value was accepted")
	}
	if s := distinctSpec(1, 0, 1, 1); s.ClampsValues() {
		t.Error("a distinct count reports that it clamps its values (they are identities)")
	}
}

// FuzzDistinctValues feeds arbitrary values (any float bits: NaN payloads, infinities, both
// zeros) and bounds; the accumulator must never panic, refuse exactly the units over L∞, and
// hold the exact distinct count of what it accepted.
func FuzzDistinctValues(f *testing.F) {
	f.Add([]byte{}, uint8(1), uint8(1))
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0x80, 0, 0, 0, 0, 0, 0, 0, 0}, uint8(2), uint8(3))
	f.Add([]byte{1, 0, 0, 0, 0, 0, 0xf8, 0x7f, 0, 0, 0, 0, 0, 0, 0xf0, 0x7f, 9, 9, 9, 9, 9, 9, 9, 9}, uint8(1), uint8(2))
	f.Fuzz(func(t *testing.T, data []byte, lInf, per uint8) {
		s := distinctSpec(1, 0, 1, int64(lInf%8)+1)
		acc, err := s.NewAccumulator(1)
		if err != nil {
			t.Fatal(err)
		}
		var vals []float64
		for len(data) >= 8 {
			vals = append(vals, math.Float64frombits(binary.LittleEndian.Uint64(data)))
			data = data[8:]
		}
		n := int(per%10) + 1
		var accepted [][]float64
		for u := range slices.Chunk(vals, n) {
			err := acc.AddUnit(int64(len(u)), u)
			if over := int64(len(u)) > s.MaxPerPartition; over != (err != nil) {
				t.Fatalf("a unit of %d rows at L∞ %d: error %v", len(u), s.MaxPerPartition, err)
			}
			if err == nil {
				accepted = append(accepted, u)
			}
		}
		b, err := acc.Encode()
		if err != nil {
			t.Fatal(err)
		}
		if got, want := preNoiseSum(t, s, b), distinctTruth(accepted); got != want {
			t.Fatalf("state holds %d, the accepted rows have %d distinct values", got, want)
		}
		if _, err := s.Release(b); err != nil {
			t.Fatal(err)
		}
	})
}
