package dp

import (
	"bytes"
	"encoding/gob"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
)

// The library's serialized states are gob streams. Their bytes are not a stable name for the
// state they hold: gob numbers struct types in the order a process first meets them, and writes
// maps (the quantile tree) in random order. Digests of pre-noise states (provenance, replay) are
// therefore taken over a canonical form: the state decoded into mirrors of the library's
// encodable structs (gob matches fields by name) and written as JSON, whose object keys are
// sorted.

// gobBytes receives a nested GobEncoder's bytes (the library nests Count and sums that way).
type gobBytes []byte

func (g *gobBytes) GobDecode(b []byte) error { *g = append((*g)[:0], b...); return nil }

type countState struct {
	Epsilon, Delta                 float64
	L0Sensitivity, LInfSensitivity int64
	NoiseKind                      int
	Count                          int64
}

type sumIntState struct {
	Epsilon, Delta                 float64
	L0Sensitivity, LInfSensitivity int64
	Lower, Upper                   int64
	NoiseKind                      int
	Sum                            int64
}

type sumFloatState struct {
	Epsilon, Delta  float64
	L0Sensitivity   int64
	LInfSensitivity float64
	Lower, Upper    float64
	NoiseKind       int
	Sum             float64
}

type meanState struct {
	Lower, Upper           float64
	EncodableCount         gobBytes
	EncodableNormalizedSum gobBytes
	MidPoint               float64
}

type varianceState struct {
	Lower, Upper                    float64
	EncodableCount                  gobBytes
	EncodableNormalizedSum          gobBytes
	EncodableNormalizedSumOfSquares gobBytes
	Midpoint                        float64
}

type quantileTreeState struct {
	Epsilon, Delta               float64
	L0Sensitivity                int64
	LInfSensitivity              float64
	TreeHeight, BranchingFactor  int
	Lower, Upper                 float64
	NumLeaves, LeftmostLeafIndex int
	NoiseKind                    int
	QuantileTree                 treeNodes
}

// treeNodes are a quantile tree's node counts. They are written as encoding/json writes a
// map[int]int64 — keys as decimal strings in byte order — but without reflection: a tree of
// 1e6 units has tens of thousands of nodes, and the reflective encoding took 33 ms of each
// automatic-bounds job at 1e7 rows (docs/performance.md). Gob decodes into it as into the
// map it is (TestTreeNodesEncodeAsEncodingJSONDoes).
type treeNodes map[int]int64

func (t treeNodes) MarshalJSON() ([]byte, error) {
	if t == nil {
		return []byte("null"), nil
	}
	keys, ok := t.decimalOrder()
	if !ok {
		return json.Marshal(map[int]int64(t))
	}
	out := make([]byte, 0, 2+len(t)*16)
	out = append(out, '{')
	for i, k := range keys {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, '"')
		out = strconv.AppendInt(out, int64(k), 10)
		out = append(out, '"', ':')
		out = strconv.AppendInt(out, t[k], 10)
	}
	return append(out, '}'), nil
}

// maxAligned is 10^17: keys below it are sorted by a packed integer.
const maxAligned = 100_000_000_000_000_000

// decimalOrder returns t's keys in the byte order of their decimal strings, the order
// encoding/json writes a map's keys in. A key of d digits, left-aligned to 17 digits
// (k·10^(17−d)) and followed by d, sorts as its string does: digit by digit, a prefix first.
// Not ok for a negative key or one of 18 digits or more (never a tree node's index): the
// caller then lets encoding/json sort.
func (t treeNodes) decimalOrder() ([]int, bool) {
	var pow [18]uint64
	pow[0] = 1
	for i := 1; i < len(pow); i++ {
		pow[i] = pow[i-1] * 10
	}
	packed := make([]uint64, 0, len(t))
	for k := range t {
		if k < 0 || uint64(k) >= maxAligned {
			return nil, false
		}
		d := 1
		for d < 17 && uint64(k) >= pow[d] {
			d++
		}
		packed = append(packed, (uint64(k)*pow[17-d])<<5|uint64(d))
	}
	slices.Sort(packed)
	keys := make([]int, len(packed))
	for i, p := range packed {
		d := p & 31
		keys[i] = int((p >> 5) / pow[17-d])
	}
	return keys, true
}

type selectionState struct {
	Epsilon, Delta         float64
	L0Sensitivity, IDCount int64
	State                  int
	PreThreshold           int64
}

func decodeInto[T any](b []byte) (T, error) {
	var v T
	err := gob.NewDecoder(bytes.NewReader(b)).Decode(&v)
	return v, err
}

// Canonical returns a canonical encoding of a worker state of this spec (nil for none), for
// digests: equal states give equal bytes in any process.
func (s Spec) Canonical(encoded []byte) ([]byte, error) {
	if encoded == nil {
		return []byte("null"), nil
	}
	v, err := s.canonical(encoded)
	if err != nil {
		return nil, fmt.Errorf("dp: decode worker state: %w", err)
	}
	return json.Marshal(v)
}

func (s Spec) canonical(b []byte) (any, error) {
	switch s.Kind {
	case Count, CountDistinctValues:
		return decodeInto[sumIntState](b)
	case CountDistinct:
		return decodeInto[countState](b)
	case Sum:
		return decodeInto[sumFloatState](b)
	case Mean:
		m, err := decodeInto[meanState](b)
		if err != nil {
			return nil, err
		}
		c, err := decodeInto[countState](m.EncodableCount)
		if err != nil {
			return nil, err
		}
		sum, err := decodeInto[sumFloatState](m.EncodableNormalizedSum)
		return map[string]any{"lower": m.Lower, "upper": m.Upper, "midpoint": m.MidPoint, "count": c, "normalized_sum": sum}, err
	case Variance, StdDev:
		v, err := decodeInto[varianceState](b)
		if err != nil {
			return nil, err
		}
		c, err := decodeInto[countState](v.EncodableCount)
		if err != nil {
			return nil, err
		}
		sum, err := decodeInto[sumFloatState](v.EncodableNormalizedSum)
		if err != nil {
			return nil, err
		}
		sq, err := decodeInto[sumFloatState](v.EncodableNormalizedSumOfSquares)
		return map[string]any{"lower": v.Lower, "upper": v.Upper, "midpoint": v.Midpoint, "count": c,
			"normalized_sum": sum, "normalized_sum_of_squares": sq}, err
	case Quantiles:
		st, err := decodeInto[quantileState](b)
		if err != nil {
			return nil, err
		}
		tree, err := decodeInto[quantileTreeState](st.Tree)
		if err != nil {
			return nil, err
		}
		n, err := decodeInto[sumIntState](st.Count)
		return map[string]any{"tree": tree, "count": n}, err
	}
	return nil, fmt.Errorf("unknown aggregate kind %q", s.Kind)
}

// Canonical returns a canonical encoding of a worker's selection state (nil for none).
func (s Selection) Canonical(encoded []byte) ([]byte, error) {
	if encoded == nil {
		return []byte("null"), nil
	}
	v, err := decodeInto[selectionState](encoded)
	if err != nil {
		return nil, fmt.Errorf("dp: decode worker selection state: %w", err)
	}
	return json.Marshal(v)
}
