package dp

import (
	"bytes"
	"encoding/gob"
	"encoding/json"
	"fmt"
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
	QuantileTree                 map[int]int64
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
