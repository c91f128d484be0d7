package model

import (
	"encoding/binary"
	"math/bits"
)

// The encoded pre-noise state, little-endian:
//
//	offset  size  field
//	0       4     magic "CRMS"
//	4       1     version (stateVersion)
//	5       1     kind ('L' linear sums, 'G' gradient sum, 'C' confusion counts)
//	6       16    fingerprint: SHA-256 prefix of the kind, spec and step it was computed for
//	22      8     units (int64)
//	30      8     rows (int64)
//	38      8·k   the kind's k integer sums (int64)
//
// The length is fixed by the kind and the spec, so a decoder knows it before reading; every
// sum is an exact integer, so a state does not depend on the order units were added or
// states merged, and a replay reproduces it bit for bit.
const (
	stateMagic   = "CRMS"
	stateVersion = 1
	headerLen    = 4 + 1 + 1 + 16 + 8 + 8
)

const (
	kindLinear    byte = 'L'
	kindGradient  byte = 'G'
	kindConfusion byte = 'C'
)

// sums is the body every state shares: counts and exact integer sums.
type sums struct {
	kind  byte
	fp    [16]byte
	units int64
	rows  int64
	s     []int64
}

func (st *sums) encode() []byte {
	b := make([]byte, 0, headerLen+8*len(st.s))
	b = append(b, stateMagic...)
	b = append(b, stateVersion, st.kind)
	b = append(b, st.fp[:]...)
	b = binary.LittleEndian.AppendUint64(b, uint64(st.units))
	b = binary.LittleEndian.AppendUint64(b, uint64(st.rows))
	for _, v := range st.s {
		b = binary.LittleEndian.AppendUint64(b, uint64(v))
	}
	return b
}

// decodeSums reads a state of the given kind, fingerprint and number of sums. It checks the
// framing and the counts; each kind checks its own sums' ranges.
func decodeSums(b []byte, kind byte, fp [16]byte, k int) (*sums, error) {
	if len(b) != headerLen+8*k {
		return nil, fail(ErrMalformedState, "state has the wrong length")
	}
	if string(b[:4]) != stateMagic {
		return nil, fail(ErrMalformedState, "not a model state")
	}
	if b[4] != stateVersion {
		return nil, fail(ErrMalformedState, "unsupported state version")
	}
	if b[5] != kind {
		return nil, fail(ErrStateMismatch, "state of another kind")
	}
	var got [16]byte
	copy(got[:], b[6:22])
	if got != fp {
		return nil, fail(ErrStateMismatch, "state computed for another spec or step")
	}
	st := &sums{kind: kind, fp: fp, s: make([]int64, k)}
	st.units = int64(binary.LittleEndian.Uint64(b[22:]))
	st.rows = int64(binary.LittleEndian.Uint64(b[30:]))
	if st.units < 0 || st.rows < 0 || st.units > maxRows || st.rows > maxRows {
		return nil, fail(ErrMalformedState, "state counts out of range")
	}
	for i := range st.s {
		st.s[i] = int64(binary.LittleEndian.Uint64(b[headerLen+8*i:]))
	}
	return st, nil
}

// merge adds o into st after checking they were computed for the same thing and that the
// counts stay within maxRows (so no sum can overflow).
func (st *sums) merge(o *sums) error {
	if o.kind != st.kind || o.fp != st.fp || len(o.s) != len(st.s) {
		return fail(ErrStateMismatch, "cannot merge states of different specs or steps")
	}
	if st.rows+o.rows > maxRows || st.units+o.units > maxRows {
		return fail(ErrOverflow, "more than %d rows in one state", int64(maxRows))
	}
	for i, v := range o.s {
		st.s[i] += v
	}
	st.units += o.units
	st.rows += o.rows
	return nil
}

// absLE reports whether |v| ≤ limit for limit ≥ 0, without overflowing on math.MinInt64.
func absLE(v int64, limit uint64) bool {
	u := uint64(v)
	if v < 0 {
		u = -u
	}
	return u <= limit
}

// mulLimit returns a·b, saturated at the largest uint64.
func mulLimit(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	if hi != 0 {
		return ^uint64(0)
	}
	return lo
}
