package pii

import (
	"math"
	"strconv"
	"strings"

	"github.com/c1b99f93/cleanroom/rawset"
)

// Kinds is a set of identifier formats found in a text or a value.
type Kinds uint8

// The identifier formats the scans recognise, in the order Each lists them.
const (
	ResidentID Kinds = 1 << iota // a resident identity number (GB 11643-1999)
	USCC                         // a unified social credit code (GB 32100-2015)
	Mobile                       // a mainland mobile number, optionally after 86 or 0086
	BankCard                     // a bank card number: issuer prefix, 16-19 digits, Luhn
	Email                        // an e-mail address
)

// kinds lists every format in report order, with what it is called in messages.
var kinds = [...]struct {
	kind Kinds
	desc string
}{
	{ResidentID, "a resident ID number"},
	{USCC, "a unified social credit code"},
	{Mobile, "a mainland mobile number"},
	{BankCard, "a bank card number"},
	{Email, "an e-mail address"},
}

// Each returns the single formats in k, in report order (resident ID, USCC, mobile, bank
// card, e-mail).
func (k Kinds) Each() []Kinds {
	var out []Kinds
	for _, d := range kinds {
		if k&d.kind != 0 {
			out = append(out, d.kind)
		}
	}
	return out
}

// Description says, without a value, what the first format in k is ("a mainland mobile
// number"); "" for an empty set.
func (k Kinds) Description() string {
	for _, d := range kinds {
		if k&d.kind != 0 {
			return d.desc
		}
	}
	return ""
}

// ScanText returns the identifier formats found in free text, scanned once as folded
// (rawset.Fold, so a value is seen as every other check sees it) and once more with the
// separators inside digit runs removed when there are any. Its verdict depends on s alone.
func ScanText(s string) Kinds {
	t := rawset.Fold(s)
	f := scanRuns(t) | scanEmails(t)
	if m, ok := rawset.MergeDigitSeparators(t); ok {
		f |= scanRuns(m)
	}
	return f
}

// ScanFloat returns the identifier formats found in a number. Only integral values can be
// identifiers. Below 2^53 a float64 holds every integer exactly, so its decimal digits are scanned as text: 11-digit mobile
// numbers and 16-digit card numbers under 9007199254740992 survive intact. An 18-digit
// resident ID cannot: a float64 has about 15.9 significant digits, so from 1e16 up its last
// digits (and with them the check digit) are rounded away. Its leading region code and birth
// date survive, so an integral value of 17 or 18 digits whose first 17 digits, completed with
// their own check digit, form a valid resident ID is reported as one.
func ScanFloat(f float64) Kinds {
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

// ScanInt returns the identifier formats found in an integer: exact, so its digits are
// scanned as text. A 17-digit integer is also checked as a resident ID without its check
// digit.
func ScanInt(i int64) Kinds {
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
func idPrefix(d string) Kinds {
	if len(d) != 17 && len(d) != 18 {
		return 0
	}
	c, err := ResidentIDCheckDigit(d[:17])
	if err != nil {
		return 0
	}
	if ValidResidentID(d[:17] + string(c)) {
		return ResidentID
	}
	return 0
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// scanRuns scans each maximal run of ASCII digits and upper-case letters.
func scanRuns(t string) Kinds {
	var f Kinds
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
func scanRun(r string) Kinds {
	var f Kinds
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
		for w := i; w+18 <= end && f&ResidentID == 0; w++ {
			// Cheap filter before the check digit: a birth year 1900-2100 starts with 1 or 2,
			// a month with 0 or 1.
			if y, m := r[w+6], r[w+10]; y != '1' && y != '2' || m != '0' && m != '1' {
				continue
			}
			if ValidResidentID(r[w : w+18]) {
				f |= ResidentID
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
		for w := i; w+18 <= j && f&USCC == 0; w++ {
			if allDigits(r[w+2:w+8]) && !insideNumber(r, w) && ValidUSCC(r[w:w+18]) {
				f |= USCC
			}
		}
		i = j
	}
	return f
}

// usccChar marks the unified social credit code's alphabet.
var usccChar = func() (t [256]bool) {
	for i := 0; i < len(USCCCharset); i++ {
		t[USCCCharset[i]] = true
	}
	return t
}()

// insideNumber reports whether the window r[w:w+18] is all digits and part of a longer run
// of digits. Such a window passes the code's mod-31 check one time in 31 by chance, so a
// 19-digit card number or a 20-digit serial would often be reported; a code written on its
// own, or glued to letters, is still Kinds, and a resident ID in the run is Kinds by the ID
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
func digitRun(d string) Kinds {
	var f Kinds
	switch n := len(d); {
	case n == 11 && ValidMobile(d),
		n == 13 && d[:2] == "86" && ValidMobile(d[2:]),
		n == 15 && d[:4] == "0086" && ValidMobile(d[4:]):
		f |= Mobile
	case ValidBankCard(d):
		f |= BankCard
	}
	return f
}

// ValidBankCard reports whether d is a bank card number as the scans recognise one: 16-19
// digits with a plausible issuer prefix (cardPrefix) and a correct Luhn digit.
func ValidBankCard(d string) bool {
	return len(d) >= 16 && len(d) <= 19 && allDigits(d) && cardPrefix(d) && LuhnValid(d)
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

// scanEmails looks around every '@' for an address ValidEmail accepts. The local part
// is taken as the up to 64 address characters before the '@', the domain as the address
// characters after it, without a trailing '.' or '-' (the end of a sentence).
func scanEmails(t string) Kinds {
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
		if ValidEmail(t[s:e]) {
			return Email
		}
		next := strings.IndexByte(t[at+1:], '@')
		if next < 0 {
			break
		}
		at += 1 + next
	}
	return 0
}
