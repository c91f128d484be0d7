package reviewer

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"hash"
	"iter"
	"math"
	"strconv"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"
)

// RawSet holds keyed hashes (Keyer.Hash of canonical forms) of the raw values of a job's
// identifier and sensitive columns. It never holds values. HashSet implements it.
type RawSet interface {
	// Contains reports whether h is the keyed hash of a raw value.
	Contains(h uint64) bool
}

// MinKeyLen is the least key length NewKeyer accepts: 32 bytes, HMAC-SHA256's block of
// security.
const MinKeyLen = 32

// MinRawLength is the least length in bytes of a canonical form that is hashed into a set or
// looked up: 6 ASCII characters or 2 CJK characters. Shorter values ("M", "A+", "北京")
// recur in unrelated data, so a match would say nothing about a leak.
const MinRawLength = 6

// ErrShortKey is returned for a key shorter than MinKeyLen.
var ErrShortKey = errors.New("reviewer: the raw-value key must be at least 32 bytes")

// Keyer hashes canonical forms under a secret key: HMAC-SHA256 truncated to its first 64
// bits (big-endian). The key must stay inside the platform; whoever holds it can test
// guesses against a set. A Keyer is safe for concurrent use.
type Keyer struct {
	key  []byte
	id   uint64
	pool sync.Pool
}

// NewKeyer returns a Keyer for key, which must be at least MinKeyLen bytes. The key is
// copied.
func NewKeyer(key []byte) (*Keyer, error) {
	if len(key) < MinKeyLen {
		return nil, ErrShortKey
	}
	k := &Keyer{key: append([]byte(nil), key...)}
	k.pool.New = func() any { return k.newHasher() }
	// The key ID hashes a lower-case text, which no canonical form (always upper-case) equals.
	k.id = k.Hash("cleanroom reviewer key id")
	if k.id == 0 {
		k.id = 1
	}
	return k, nil
}

// ID identifies the key without revealing it; HashSet records it, so a set is not used
// with another key by mistake (every lookup would miss).
func (k *Keyer) ID() uint64 { return k.id }

// Hash returns the keyed hash of canonical, which the caller has canonicalised
// (CanonicalString, CanonicalNumber).
func (k *Keyer) Hash(canonical string) uint64 {
	h := k.pool.Get().(*hasher)
	defer k.pool.Put(h)
	return h.hash(canonical)
}

// KeyedHash returns the keyed hash of canonical under key: HMAC-SHA256(key, canonical)
// truncated to 64 bits. Use a Keyer to hash many values.
func KeyedHash(key []byte, canonical string) (uint64, error) {
	k, err := NewKeyer(key)
	if err != nil {
		return 0, err
	}
	return k.Hash(canonical), nil
}

// AppendRawHashes appends the hashes a HashSet holds for one raw value: its CanonicalString
// form; that form without the spaces and hyphens between digits, if it has any; and its
// CanonicalNumber form, if it parses as a number. Forms shorter than MinRawLength are left
// out. A worker streaming a large column calls it and builds the set with Keyer.NewHashSet.
func (k *Keyer) AppendRawHashes(dst []uint64, value string) []uint64 {
	h := k.pool.Get().(*hasher)
	defer k.pool.Put(h)
	return h.appendRawHashes(dst, value)
}

// NewHashSet returns a set of hashes made with k; it records k's ID.
func (k *Keyer) NewHashSet(hashes []uint64) *HashSet {
	s := NewHashSet(hashes)
	s.keyID = k.id
	return s
}

// BuildHashSet hashes every value with key (see Keyer.AppendRawHashes) into a HashSet.
func BuildHashSet(key []byte, values iter.Seq[string]) (*HashSet, error) {
	k, err := NewKeyer(key)
	if err != nil {
		return nil, err
	}
	h := k.newHasher()
	var hashes []uint64
	for v := range values {
		hashes = h.appendRawHashes(hashes, v)
	}
	return k.NewHashSet(hashes), nil
}

// CanonicalString is the form in which a string value is hashed: full-width forms folded to
// ASCII, surrounding white space trimmed, upper-cased — the privacy unit's normalisation
// (trim, upper) plus the full-width folding that matters for Chinese text. It is not a full
// Unicode normalisation (NFC/NFKC): the module's dependencies stay as they are, and the
// values the scan is for (identifiers, codes, names) are not written in decomposed form.
func CanonicalString(s string) string {
	return strings.ToUpper(strings.TrimSpace(fold(s)))
}

// CanonicalNumber is the form in which a number is hashed: the shortest decimal that reads
// back as f, in plain notation ("13800000000" for 1.38e10, "1234.5"), so that an integral
// value and its digits as a string hash alike. It returns "" for NaN and ±Inf; -0 is "0".
func CanonicalNumber(f float64) string {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return ""
	}
	if f == 0 {
		return "0"
	}
	return strconv.FormatFloat(f, 'f', -1, 64)
}

// hasher is one HMAC state, reused across values (Reset restores the keyed state without
// rehashing the key).
type hasher struct {
	h   hash.Hash
	buf []byte
	sum [sha256.Size]byte
}

func (k *Keyer) newHasher() *hasher { return &hasher{h: hmac.New(sha256.New, k.key)} }

// hasher returns a hasher for one review.
func (k *Keyer) hasher() *hasher { return k.newHasher() }

func (h *hasher) hash(s string) uint64 {
	h.h.Reset()
	h.buf = append(h.buf[:0], s...)
	h.h.Write(h.buf)
	return binary.BigEndian.Uint64(h.h.Sum(h.sum[:0]))
}

func (h *hasher) appendRawHashes(dst []uint64, value string) []uint64 {
	c := CanonicalString(value)
	if len(c) >= MinRawLength {
		dst = append(dst, h.hash(c))
	}
	if m, ok := mergeDigitSeparators(c); ok && len(m) >= MinRawLength {
		dst = append(dst, h.hash(m))
	}
	if f, ok := parseNumber(c); ok {
		if n := CanonicalNumber(f); n != c && len(n) >= MinRawLength {
			dst = append(dst, h.hash(n))
		}
	}
	return dst
}

// lookup reports whether s (canonical) is long enough and its hash is in set.
func (h *hasher) lookup(set RawSet, s string) bool {
	return len(s) >= MinRawLength && set.Contains(h.hash(s))
}

// stringHit reports whether a string that would leave matches a raw value: as a whole; any
// token of it (split on characters other than letters and digits); any digit run once the
// separators between digits are removed; or, if it reads as a number, its CanonicalNumber
// form, subject to the number rule (see numberEligible).
func (h *hasher) stringHit(set RawSet, s string, allNumbers bool) bool {
	c := CanonicalString(s)
	if h.lookup(set, c) {
		return true
	}
	for i := 0; i < len(c); {
		r, n := utf8.DecodeRuneInString(c[i:])
		if !tokenRune(r) {
			i += n
			continue
		}
		j := i + n
		for j < len(c) {
			r, n := utf8.DecodeRuneInString(c[j:])
			if !tokenRune(r) {
				break
			}
			j += n
		}
		if (i > 0 || j < len(c)) && h.lookup(set, c[i:j]) {
			return true
		}
		i = j
	}
	if m, ok := mergeDigitSeparators(c); ok {
		for i := 0; i < len(m); {
			if !isDigit(m[i]) {
				i++
				continue
			}
			j := i
			for j < len(m) && isDigit(m[j]) {
				j++
			}
			if h.lookup(set, m[i:j]) {
				return true
			}
			i = j
		}
	}
	if f, ok := parseNumber(c); ok {
		if n := CanonicalNumber(f); n != c && numberEligible(n, f == math.Trunc(f), allNumbers) && h.lookup(set, n) {
			return true
		}
	}
	return false
}

// parseNumber reads a canonical string as a decimal number ("1.38E10", "-7", ".5"); it
// skips strings that cannot be one without calling ParseFloat (whose error allocates), and
// does not read "INF", "NAN" or hexadecimal forms.
func parseNumber(c string) (float64, bool) {
	if c == "" {
		return 0, false
	}
	switch ch := c[0]; {
	case isDigit(ch), ch == '.':
	case (ch == '-' || ch == '+') && len(c) > 1 && (isDigit(c[1]) || c[1] == '.'):
	default:
		return 0, false
	}
	if strings.ContainsAny(c, "XPNI_") { // hexadecimal, INF, NAN, digit separators
		return 0, false
	}
	f, err := strconv.ParseFloat(c, 64)
	return f, err == nil && !math.IsInf(f, 0)
}

func tokenRune(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) }

// numberHit reports whether a numeric cell matches a raw value, subject to numberEligible.
func (h *hasher) numberHit(set RawSet, v Value, allNumbers bool) bool {
	// Numbers the rule leaves out are not formatted at all: |x| < 1e10 has at most 10 digits.
	var n string
	integral := true
	switch v.Type {
	case TypeFloat:
		f := v.Float
		integral = f == math.Trunc(f)
		if !allNumbers && (!integral || math.Abs(f) < 1e10) {
			return false
		}
		n = CanonicalNumber(f)
	case TypeInt:
		if !allNumbers && v.Int > -1e10 && v.Int < 1e10 {
			return false
		}
		n = strconv.FormatInt(v.Int, 10)
	}
	return n != "" && numberEligible(n, integral, allNumbers) && h.lookup(set, n)
}

// numberEligible is the number rule: a number is looked up when its column carries an
// identifier's values (allNumbers), or when it is integral with at least 11 digits, a size
// that could encode an identifier. Any other number is a computed value (a DP aggregate, a
// model parameter) that may equal some sensitive raw amount by chance; looking it up would
// deny such results while protecting no one.
func numberEligible(canonical string, integral, allNumbers bool) bool {
	if allNumbers {
		return true
	}
	if !integral {
		return false
	}
	return len(strings.TrimPrefix(canonical, "-")) >= 11
}

// checkRawValues looks up every cell and every error message in the raw-value set.
func (st *state) checkRawValues() error {
	if st.r.keyer == nil {
		return nil
	}
	h, set := st.r.keyer.hasher(), st.r.raw
	// Group-key values repeat across rows; each distinct string is hashed once.
	type memoKey struct {
		s   string
		all bool
	}
	memo := map[memoKey]bool{}
	for col, c := range st.cols {
		// The values of a group key over a sensitive column are that column's values by
		// construction; sensitive_group_key puts them before a person instead.
		skipStrings := sensitiveGroupKey(c)
		all := identifierLineage(c)
		for row := 0; row < st.rows; row++ {
			if err := st.cancelled(row); err != nil {
				return err
			}
			v := st.out.Cell(row, col)
			hit := false
			switch v.Type {
			case TypeString:
				if skipStrings {
					break
				}
				k := memoKey{v.Str, all}
				var ok bool
				if hit, ok = memo[k]; !ok {
					hit = h.stringHit(set, v.Str, all)
					if len(memo) < maxMemo {
						memo[k] = hit
					}
				}
			case TypeFloat, TypeInt:
				hit = h.numberHit(set, v, all)
			}
			if hit {
				st.findings.at(CodeRawValue, placeCells, col, row, st.rows)
			}
		}
	}
	errs := st.out.Errors()
	for i, e := range errs {
		if h.stringHit(set, e, false) {
			st.findings.at(CodeRawValue, placeErrors, 0, i, len(errs))
		}
	}
	return nil
}
