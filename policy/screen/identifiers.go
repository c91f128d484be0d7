package screen

import (
	"math"
	"strconv"
	"strings"

	"github.com/c1b99f93/cleanroom/policy/pii"
	"github.com/c1b99f93/cleanroom/rawset"
)

// maxMemo bounds the per-review memo of scanned strings.
const maxMemo = 1 << 16

// found is a set of identifier kinds found in one value.
type found uint8

const (
	foundResidentID found = 1 << iota
	foundUSCC
	foundMobile
	foundCard
	foundEmail
)

// foundCodes lists the identifier kinds in the order findings report them.
var foundCodes = [...]struct {
	bit  found
	code string
}{
	{foundResidentID, CodeResidentID},
	{foundUSCC, CodeUSCC},
	{foundMobile, CodeMobile},
	{foundCard, CodeBankCard},
	{foundEmail, CodeEmail},
}

// checkIdentifiers scans every cell and every error message for identifier formats.
func (st *state) checkIdentifiers() error {
	// Group-key values repeat across rows; each distinct string is scanned once.
	memo := map[string]found{}
	for col := range st.cols {
		for row := 0; row < st.rows; row++ {
			if err := st.cancelled(row); err != nil {
				return err
			}
			v := st.out.Cell(row, col)
			f, ok := found(0), false
			if v.Type == TypeString {
				f, ok = memo[v.Str]
			}
			if !ok {
				f = scanValue(v)
				if v.Type == TypeString && len(memo) < maxMemo {
					memo[v.Str] = f
				}
			}
			st.report(f, placeCells, col, row, st.rows)
		}
	}
	errs := st.out.Errors()
	for i, e := range errs {
		st.report(scanText(e), placeErrors, 0, i, len(errs))
	}
	return nil
}

// checkNames scans every column name for identifier formats. Names are chosen by the
// applicant (aliases, and names derived from the query's own names) or come from the
// catalog, never from the data, so they are not looked up in the raw-value set: that verdict
// would say whether some raw record holds the name. The gate refuses such names before the
// job runs (gate.CodeIdentifierInQuery); this scan stays as a second line. A name that
// passes (and is short) may be quoted in messages; any other is named by its index only.
func (st *state) checkNames() error {
	for i, c := range st.cols {
		f := scanText(c.Name)
		st.report(f, placeName, i, 0, 1)
		st.nameClean[i] = f == 0 && len(c.Name) <= 64
	}
	return nil
}

// IdentifierCodes returns the codes (CodeResidentID, CodeUSCC, CodeMobile, CodeBankCard,
// CodeEmail) of the identifier formats found in s, scanned exactly as the reviewer scans
// text: folded, and again with the separators between digits removed. Its verdict depends on
// s alone, so the gate uses it on the names and literals a query writes into its output.
func IdentifierCodes(s string) []string {
	f := scanText(s)
	var out []string
	for _, fc := range foundCodes {
		if f&fc.bit != 0 {
			out = append(out, fc.code)
		}
	}
	return out
}

// report records the identifier kinds in f at index i of a place.
func (st *state) report(f found, p place, col, i, total int) {
	if f == 0 {
		return
	}
	for _, fc := range foundCodes {
		if f&fc.bit != 0 {
			st.findings.at(fc.code, p, col, i, total)
		}
	}
}

// scanValue scans one cell.
func scanValue(v Value) found {
	switch v.Type {
	case TypeString:
		return scanText(v.Str)
	case TypeFloat:
		return scanFloat(v.Float)
	case TypeInt:
		return scanInt(v.Int)
	}
	return 0
}

// scanText scans free text: once as folded, once more with the separators inside digit runs
// removed when there are any.
func scanText(s string) found {
	t := rawset.Fold(s)
	f := scanRuns(t) | scanEmails(t)
	if m, ok := rawset.MergeDigitSeparators(t); ok {
		f |= scanRuns(m)
	}
	return f
}

// scanFloat scans a number. Only integral values can be identifiers. Below 2^53 a float64
// holds every integer exactly, so its decimal digits are scanned as text: 11-digit mobile
// numbers and 16-digit card numbers under 9007199254740992 survive intact. An 18-digit
// resident ID cannot: a float64 has about 15.9 significant digits, so from 1e16 up its last
// digits (and with them the check digit) are rounded away. Its leading region code and birth
// date survive, so an integral value of 17 or 18 digits whose first 17 digits, completed with
// their own check digit, form a valid resident ID is reported as one.
func scanFloat(f float64) found {
	if math.IsNaN(f) || math.IsInf(f, 0) || f != math.Trunc(f) {
		return 0
	}
	a := math.Abs(f)
	switch {
	case a < 1<<53:
		return scanRuns(strconv.FormatFloat(a, 'f', 0, 64))
	case a < 1e18:
		return idPrefix(strconv.FormatFloat(a, 'f', 0, 64))
	}
	return 0
}

// scanInt scans an integer: exact, so its digits are scanned as text. A 17-digit integer is
// also checked as a resident ID without its check digit.
func scanInt(i int64) found {
	u := uint64(i)
	if i < 0 {
		u = -u
	}
	d := strconv.FormatUint(u, 10)
	f := scanRuns(d)
	if len(d) == 17 {
		f |= idPrefix(d)
	}
	return f
}

// idPrefix reports a resident ID when the first 17 digits of d (17 or 18 digits), completed
// with their check digit, form a valid resident ID: a valid region and birth date.
func idPrefix(d string) found {
	if len(d) != 17 && len(d) != 18 {
		return 0
	}
	c, err := pii.ResidentIDCheckDigit(d[:17])
	if err != nil {
		return 0
	}
	if pii.ValidResidentID(d[:17] + string(c)) {
		return foundResidentID
	}
	return 0
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// scanRuns scans each maximal run of ASCII digits and upper-case letters.
func scanRuns(t string) found {
	var f found
	for i := 0; i < len(t); {
		if !isDigit(t[i]) && !(t[i] >= 'A' && t[i] <= 'Z') {
			i++
			continue
		}
		j := i
		for j < len(t) && (isDigit(t[j]) || t[j] >= 'A' && t[j] <= 'Z') {
			j++
		}
		f |= scanRun(t[i:j])
		i = j
	}
	return f
}

// scanRun scans one run of digits and upper-case letters: its digit runs for mobile and card
// numbers, its 18-character windows for resident IDs and unified social credit codes.
func scanRun(r string) found {
	var f found
	for i := 0; i < len(r); {
		if !isDigit(r[i]) {
			i++
			continue
		}
		j := i
		for j < len(r) && isDigit(r[j]) {
			j++
		}
		f |= digitRun(r[i:j])
		end := j // a resident ID's check character may be X
		if j < len(r) && r[j] == 'X' {
			end++
		}
		for w := i; w+18 <= end && f&foundResidentID == 0; w++ {
			// Cheap filter before the check digit: a birth year 1900-2100 starts with 1 or 2,
			// a month with 0 or 1.
			if y, m := r[w+6], r[w+10]; y != '1' && y != '2' || m != '0' && m != '1' {
				continue
			}
			if pii.ValidResidentID(r[w : w+18]) {
				f |= foundResidentID
			}
		}
		i = j
	}
	if len(r) < 18 {
		return f
	}
	for i := 0; i < len(r); {
		if !usccChar[r[i]] {
			i++
			continue
		}
		j := i
		for j < len(r) && usccChar[r[j]] {
			j++
		}
		for w := i; w+18 <= j && f&foundUSCC == 0; w++ {
			if allDigits(r[w+2:w+8]) && !insideNumber(r, w) && pii.ValidUSCC(r[w:w+18]) {
				f |= foundUSCC
			}
		}
		i = j
	}
	return f
}

// usccChar marks the unified social credit code's alphabet.
var usccChar = func() (t [256]bool) {
	for i := 0; i < len(pii.USCCCharset); i++ {
		t[pii.USCCCharset[i]] = true
	}
	return t
}()

// insideNumber reports whether the window r[w:w+18] is all digits and part of a longer run
// of digits. Such a window passes the code's mod-31 check one time in 31 by chance, so a
// 19-digit card number or a 20-digit serial would often be reported; a code written on its
// own, or glued to letters, is still found, and a resident ID in the run is found by the ID
// windows.
func insideNumber(r string, w int) bool {
	if !allDigits(r[w : w+18]) {
		return false
	}
	return w > 0 && isDigit(r[w-1]) || w+18 < len(r) && isDigit(r[w+18])
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return true
}

// digitRun checks one maximal run of digits for a mobile or a bank card number.
//
// Mobile: 11 digits starting 13-19, or the same after a country code 86 or 0086 (13 or 15
// digits). Card: 16-19 digits with a plausible issuer prefix and a correct Luhn digit; see
// cardPrefix.
func digitRun(d string) found {
	var f found
	switch n := len(d); {
	case n == 11 && pii.ValidMobile(d),
		n == 13 && d[:2] == "86" && pii.ValidMobile(d[2:]),
		n == 15 && d[:4] == "0086" && pii.ValidMobile(d[4:]):
		f |= foundMobile
	case n >= 16 && n <= 19 && cardPrefix(d) && pii.LuhnValid(d):
		f |= foundCard
	}
	return f
}

// cardPrefix reports a plausible card-issuer prefix: 4 (Visa), 5 (Mastercard, Maestro and
// the Chinese banks' 5-series), 2221-2720 (Mastercard), 35 (JCB), 60, 62 and 65 (China
// UnionPay and Discover), 95 (older domestic bank cards). Luhn alone passes one random
// number in ten; with the length (16-19) and the prefix a long digit run that is not a card
// number is rarely reported.
func cardPrefix(d string) bool {
	switch d[0] {
	case '4', '5':
		return true
	}
	switch d[:2] {
	case "35", "60", "62", "65", "95":
		return true
	}
	p, _ := strconv.Atoi(d[:4])
	return p >= 2221 && p <= 2720
}

// isLocal and isDomain are the characters an e-mail's local part and domain may hold.
func isLocal(c byte) bool {
	return isDigit(c) || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c == '.' || c == '_' || c == '%' || c == '+' || c == '-'
}

func isDomain(c byte) bool {
	return isDigit(c) || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c == '.' || c == '-'
}

// scanEmails looks around every '@' for an address pii.ValidEmail accepts. The local part
// is taken as the up to 64 address characters before the '@', the domain as the address
// characters after it, without a trailing '.' or '-' (the end of a sentence).
func scanEmails(t string) found {
	for at := strings.IndexByte(t, '@'); at >= 0; {
		s := at
		for s > 0 && at-s < 64 && isLocal(t[s-1]) {
			s--
		}
		for s < at && t[s] == '.' {
			s++
		}
		e := at + 1
		for e < len(t) && isDomain(t[e]) {
			e++
		}
		for e > at+1 && (t[e-1] == '.' || t[e-1] == '-') {
			e--
		}
		if pii.ValidEmail(t[s:e]) {
			return foundEmail
		}
		next := strings.IndexByte(t[at+1:], '@')
		if next < 0 {
			break
		}
		at += 1 + next
	}
	return 0
}
