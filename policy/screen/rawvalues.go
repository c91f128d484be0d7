package screen

import (
	"math"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/c1b99f93/cleanroom/rawset"
)

// RawSet holds keyed hashes (rawset.Keyer of canonical forms) of the raw values of a job's
// identifier and sensitive columns. It never holds values. rawset.HashSet implements it, and
// rawset.Union over the sets of several datasets.
type RawSet interface {
	// Contains reports whether h is the keyed hash of a raw value.
	Contains(h uint64) bool
}

var (
	_ RawSet = (*rawset.HashSet)(nil)
	_ RawSet = (*rawset.Union)(nil)
)

// hasher is one review's HMAC state (rawset.Hasher) with the lookups the checks make.
type hasher struct{ *rawset.Hasher }

// lookup reports whether s (canonical) is long enough and its hash is in set.
func (h *hasher) lookup(set RawSet, s string) bool {
	return len(s) >= rawset.MinRawLength && set.Contains(h.Hash(s))
}

// stringHit reports whether a string that would leave matches a raw value: as a whole; any
// token of it (split on characters other than letters and digits); any digit run once the
// separators between digits are removed; or, if it reads as a number, its CanonicalNumber
// form, subject to the number rule (see numberEligible).
func (h *hasher) stringHit(set RawSet, s string, allNumbers bool) bool {
	c := rawset.CanonicalString(s)
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
	if m, ok := rawset.MergeDigitSeparators(c); ok {
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
	if f, ok := rawset.ParseNumber(c); ok {
		if n := rawset.CanonicalNumber(f); n != c && numberEligible(n, f == math.Trunc(f), allNumbers) && h.lookup(set, n) {
			return true
		}
	}
	return false
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
		n = rawset.CanonicalNumber(f)
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

// checkRawValues looks up, in the raw-value set, the cells that came from the data: noisy
// aggregates, answers and parameters, and the values of group keys of OriginData. Nothing the
// applicant chose is looked up — column names, group keys the query may have written
// (OriginQuery), public domains (OriginPublic), error messages (built from codes, names and
// fixed text) — so that no verdict on such a string depends on whether some raw record
// holds it.
func (st *state) checkRawValues() error {
	if st.r.keyer == nil {
		return nil
	}
	h, set := hasher{st.r.keyer.Hasher()}, st.r.raw
	// Group-key values repeat across rows; each distinct string is hashed once.
	type memoKey struct {
		s   string
		all bool
	}
	memo := map[memoKey]bool{}
	for col, c := range st.cols {
		if c.Kind == KindGroupKey && c.Origin != OriginData {
			continue // written by the query, or public: not data-derived
		}
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
	return nil
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
