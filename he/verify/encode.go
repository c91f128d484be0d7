package verify

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"math"
	"math/bits"
	"strconv"
	"strings"
)

// encodeDomain separates Encode's hashes from any other use of SHA-256.
const encodeDomain = "cleanroom/he/verify/encode/v1\x00"

// Canonical returns the canonical form of a value, the string Encode hashes:
//   - leading and trailing white space (Unicode, strings.TrimSpace) is removed;
//   - an integer (an optional sign and ASCII digits only) is written in decimal without a
//     plus sign and without leading zeros, and "-0" is "0";
//   - anything else is kept byte for byte: case, inner spaces and Unicode forms are
//     significant, so callers that want "ACME Ltd" to equal "acme ltd" normalise first.
//
// Decimals are not rewritten ("1.50" ≠ "1.5"): map numbers to bands with BandOf, or to
// integers, before encoding.
func Canonical(value string) string {
	s := strings.TrimSpace(value)
	if !isInteger(s) {
		return s
	}
	neg := s[0] == '-'
	if s[0] == '-' || s[0] == '+' {
		s = s[1:]
	}
	s = strings.TrimLeft(s, "0")
	if s == "" {
		return "0"
	}
	if neg {
		return "-" + s
	}
	return s
}

// isInteger reports whether s is an optional sign followed by at least one ASCII digit.
func isInteger(s string) bool {
	if s != "" && (s[0] == '-' || s[0] == '+') {
		s = s[1:]
	}
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// Encode maps a value to its slot value in Z_t: SHA-256 over a domain tag and
// Canonical(value), the first 128 bits read big-endian and reduced modulo PlaintextModulus
// (bias below 2^-87). The applicant encodes its claims and the domain its actual values
// with this one function, so equal canonical values give equal slots; distinct ones collide
// with probability 1/t < 2^-40.
func Encode(value string) uint64 {
	h := sha256.Sum256([]byte(encodeDomain + Canonical(value)))
	hi := binary.BigEndian.Uint64(h[0:8])
	lo := binary.BigEndian.Uint64(h[8:16])
	return bits.Rem64(hi, lo, PlaintextModulus)
}

// BandOf returns the label of the band v falls in, for band edges in strictly increasing
// order: band 0 is v < edges[0], band i is edges[i-1] ≤ v < edges[i], band len(edges) is
// v ≥ the last edge; the label is the index in decimal ("0", "1", …). The domain maps its
// numeric actual value with BandOf and the applicant claims a label, so a range claim
// ("registered capital ≥ 1M": edges {1e6}, claim "1") becomes set membership.
//
// BandOf returns "" for a NaN v or for edges that are not strictly increasing or contain
// NaN: "" is no band, and the domain should treat such a record as absent.
func BandOf(edges []float64, v float64) string {
	if math.IsNaN(v) {
		return ""
	}
	band := 0
	for i, e := range edges {
		if math.IsNaN(e) || i > 0 && !(edges[i-1] < e) {
			return ""
		}
		if e <= v {
			band = i + 1
		}
	}
	return strconv.Itoa(band)
}

// Digest returns the SHA-256 of a serialized key or ciphertext in lower-case hex, for
// provenance records.
func Digest(ct []byte) string {
	h := sha256.Sum256(ct)
	return hex.EncodeToString(h[:])
}
