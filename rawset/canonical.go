package rawset

import (
	"math"
	"strconv"
	"strings"
)

// MinRawLength is the least length in bytes of a canonical form that is hashed into a set or
// looked up: 6 ASCII characters or 2 CJK characters. Shorter values ("M", "A+", "北京")
// recur in unrelated data, so a match would say nothing about a leak.
const MinRawLength = 6

// CanonicalString is the form in which a string value is hashed: full-width forms folded to
// ASCII, surrounding white space trimmed, upper-cased — the privacy unit's normalisation
// (trim, upper) plus the full-width folding that matters for Chinese text. It is not a full
// Unicode normalisation (NFC/NFKC): the module's dependencies stay as they are, and the
// values the scan is for (identifiers, codes, names) are not written in decomposed form.
func CanonicalString(s string) string {
	return strings.ToUpper(strings.TrimSpace(Fold(s)))
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

// ParseNumber reads a canonical string as a decimal number ("1.38E10", "-7", ".5"); it
// skips strings that cannot be one without calling ParseFloat (whose error allocates), and
// does not read "INF", "NAN" or hexadecimal forms.
func ParseNumber(c string) (float64, bool) {
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

// Fold returns s with ASCII letters upper-cased, full-width forms U+FF01-U+FF5E folded to
// ASCII (the NFKC mappings that matter for Chinese text), the ideographic and no-break spaces
// mapped to ' ' and dashes to '-'. Other characters are kept. The output screen's identifier scans
// read text through it too, so a value is seen the same way by every check.
func Fold(s string) string {
	clean := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 0x80 || c >= 'a' && c <= 'z' {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		if r >= 0xFF01 && r <= 0xFF5E {
			r -= 0xFEE0
		}
		switch {
		case r >= 'a' && r <= 'z':
			b.WriteByte(byte(r - 'a' + 'A'))
		case r < 0x80:
			b.WriteByte(byte(r))
		case r == 0x3000 || r == 0xA0:
			b.WriteByte(' ')
		case r >= 0x2010 && r <= 0x2015 || r == 0x2212:
			b.WriteByte('-')
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isSep(c byte) bool { return c == ' ' || c == '-' }

// MergeDigitSeparators removes runs of one to three spaces or hyphens between two digits
// ("138 1234 5678" → "13812345678"), reporting whether it removed any.
func MergeDigitSeparators(t string) (string, bool) {
	var b []byte
	last := 0
	for i := 1; i < len(t); i++ {
		if !isSep(t[i]) || !isDigit(t[i-1]) {
			continue
		}
		j := i
		for j < len(t) && j-i < 3 && isSep(t[j]) {
			j++
		}
		if j < len(t) && isDigit(t[j]) {
			if b == nil {
				b = make([]byte, 0, len(t))
			}
			b = append(b, t[last:i]...)
			last = j
		}
		i = j - 1
	}
	if b == nil {
		return t, false
	}
	return string(append(b, t[last:]...)), true
}
