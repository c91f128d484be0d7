package model

import (
	"crypto/sha256"
	"encoding/binary"
	"math"
)

// Bounds are a value's public range [Lo, Hi], from the catalog or the request, never from the
// data. Values are clipped to them and mapped affinely onto [−1, 1]:
//
//	s(v) = (clip(v, Lo, Hi) − c) / h,   c = (Lo + Hi)/2,   h = (Hi − Lo)/2
//
// Every sensitivity in this package is stated in these scaled units.
type Bounds struct {
	Lo float64 `json:"lo"`
	Hi float64 `json:"hi"`
}

func (b Bounds) valid() bool {
	finite := func(v float64) bool { return !math.IsInf(v, 0) && !math.IsNaN(v) }
	return finite(b.Lo) && finite(b.Hi) && b.Lo < b.Hi && finite(b.Hi-b.Lo)
}

func (b Bounds) centre() float64    { return b.Lo + (b.Hi-b.Lo)/2 }
func (b Bounds) halfRange() float64 { return (b.Hi - b.Lo) / 2 }

// scale maps a finite v into [−1, 1].
func (b Bounds) scale(v float64) float64 {
	v = math.Min(math.Max(v, b.Lo), b.Hi)
	s := (v - b.centre()) / b.halfRange()
	return math.Min(math.Max(s, -1), 1) // rounding may step just outside
}

// scaler is Bounds.scale with its constants precomputed, for the per-row loops.
type scaler struct{ lo, hi, c, inv float64 }

func scalers(fs []Feature) []scaler {
	out := make([]scaler, len(fs))
	for i, f := range fs {
		out[i] = scaler{f.Bounds.Lo, f.Bounds.Hi, f.Bounds.centre(), 1 / f.Bounds.halfRange()}
	}
	return out
}

func (s scaler) scale(v float64) float64 {
	v = min(max(v, s.lo), s.hi)
	return min(max((v-s.c)*s.inv, -1), 1)
}

// Feature is one regressor: its name (released with its coefficient) and its public bounds.
type Feature struct {
	Name   string `json:"name"`
	Bounds Bounds `json:"bounds"`
}

// Limits of a spec: they keep the state's exact integer sums from overflowing and the work per
// release bounded by public quantities.
const (
	// MaxFeatures is the most features a model may have.
	MaxFeatures = 64
	// MaxRowsPerUnitLimit is the largest MaxRowsPerUnit a spec may ask for.
	MaxRowsPerUnitLimit = 1 << 16
	// maxRows is the most rows (and units) one state holds: 2³² rows of products of at most
	// 2³⁰ stay below 2⁶², so sums and merges of two states never overflow an int64.
	maxRows = 1 << 32
)

// InterceptName is the name under which the intercept is released.
const InterceptName = "(intercept)"

func validateFeatures(fs []Feature) error {
	if len(fs) == 0 {
		return fail(ErrNoFeatures, "a model needs at least one feature")
	}
	if len(fs) > MaxFeatures {
		return fail(ErrInvalidSpec, "at most %d features", MaxFeatures)
	}
	seen := make(map[string]bool, len(fs))
	for i, f := range fs {
		if f.Name == "" || f.Name == InterceptName {
			return fail(ErrInvalidSpec, "feature %d: name must be non-empty and not %q", i, InterceptName)
		}
		if seen[f.Name] {
			return fail(ErrInvalidSpec, "feature %d: name repeated", i)
		}
		seen[f.Name] = true
		if !f.Bounds.valid() {
			return fail(ErrInvalidBounds, "feature %q: bounds must be finite with lo < hi", f.Name)
		}
	}
	return nil
}

func validateMaxRows(m int) error {
	if m < 1 || m > MaxRowsPerUnitLimit {
		return fail(ErrInvalidSpec, "max_rows_per_unit must be in [1, %d]", MaxRowsPerUnitLimit)
	}
	return nil
}

// hasher builds the fingerprint of what a state was computed for (kind, spec, step) from its
// canonical form, so that a decoder holding the engine's own copy refuses a state computed for
// anything else.
type hasher struct{ buf []byte }

func (h *hasher) str(s string) *hasher {
	h.buf = binary.LittleEndian.AppendUint64(h.buf, uint64(len(s)))
	h.buf = append(h.buf, s...)
	return h
}
func (h *hasher) f64(v float64) *hasher {
	h.buf = binary.LittleEndian.AppendUint64(h.buf, math.Float64bits(v))
	return h
}
func (h *hasher) i64(v int64) *hasher {
	h.buf = binary.LittleEndian.AppendUint64(h.buf, uint64(v))
	return h
}
func (h *hasher) features(fs []Feature) *hasher {
	h.i64(int64(len(fs)))
	for _, f := range fs {
		h.str(f.Name).f64(f.Bounds.Lo).f64(f.Bounds.Hi)
	}
	return h
}
func (h *hasher) sum() [16]byte {
	s := sha256.Sum256(h.buf)
	var out [16]byte
	copy(out[:], s[:16])
	return out
}
