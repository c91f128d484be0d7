// Package pii recognises and builds Chinese personal and organisational identifier formats:
// the resident identity number (公民身份号码, GB 11643-1999), the unified social credit code
// (统一社会信用代码, GB 32100-2015) with its embedded organisation code (GB 11714-1997),
// bank card numbers (Luhn), mainland mobile numbers and e-mail addresses.
//
// Every function is pure, and the validators are allocation-free on the hot path. The synthetic
// data generator uses the check-character functions to build valid identifiers. Validators
// accept only the canonical form (upper-case check letters, no separators); the scans
// (ScanText, ScanFloat, ScanInt) find identifiers in free text and numbers with them, and
// their verdict depends on the text or number alone: the output screen scans every output
// with them, and the gate the names and literals a query writes into its output, so both
// recognise an identifier the same way without the gate linking the screen (and OPA).
package pii

import "errors"

// ErrFormat is returned by the check-character functions when the input body is malformed.
var ErrFormat = errors.New("pii: malformed identifier body")

// residentWeights are the ISO 7064 MOD 11-2 weights 2^(17-i) mod 11 of GB 11643-1999.
var residentWeights = [17]int{7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2}

// residentCheck maps (weighted sum mod 11) to the check character.
const residentCheck = "10X98765432"

// ResidentIDCheckDigit returns the GB 11643-1999 (ISO 7064 MOD 11-2) check character, '0'-'9'
// or 'X', of the first 17 digits of a resident identity number.
func ResidentIDCheckDigit(first17 string) (byte, error) {
	if len(first17) != 17 {
		return 0, ErrFormat
	}
	sum := 0
	for i := 0; i < 17; i++ {
		c := first17[i]
		if c < '0' || c > '9' {
			return 0, ErrFormat
		}
		sum += int(c-'0') * residentWeights[i]
	}
	return residentCheck[sum%11], nil
}

// provinces are the first two digits of GB/T 2260 administrative division codes.
var provinces = map[string]bool{
	"11": true, "12": true, "13": true, "14": true, "15": true,
	"21": true, "22": true, "23": true,
	"31": true, "32": true, "33": true, "34": true, "35": true, "36": true, "37": true,
	"41": true, "42": true, "43": true, "44": true, "45": true, "46": true,
	"50": true, "51": true, "52": true, "53": true, "54": true,
	"61": true, "62": true, "63": true, "64": true, "65": true,
	"71": true, "81": true, "82": true,
}

// ValidResidentID reports whether s is an 18-character resident identity number: a 6-digit
// region code whose province prefix exists in GB/T 2260, a birth date YYYYMMDD that is a real
// calendar date in 1900..2100, a 3-digit sequence, and a correct check character ('X' upper
// case only).
func ValidResidentID(s string) bool {
	if len(s) != 18 {
		return false
	}
	want, err := ResidentIDCheckDigit(s[:17])
	if err != nil || s[17] != want {
		return false
	}
	if !provinces[s[:2]] {
		return false
	}
	return validDate(s[6:14])
}

// validDate reports whether d (8 ASCII digits) is a real calendar date YYYYMMDD in 1900..2100.
func validDate(d string) bool {
	y := atoi(d[0:4])
	m := atoi(d[4:6])
	day := atoi(d[6:8])
	if y < 1900 || y > 2100 || m < 1 || m > 12 || day < 1 {
		return false
	}
	return day <= DaysInMonth(y, m)
}

// DaysInMonth returns the number of days of month m (1-12) of year y in the Gregorian calendar.
func DaysInMonth(y, m int) int {
	switch m {
	case 2:
		if y%4 == 0 && (y%100 != 0 || y%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	default:
		return 31
	}
}

func atoi(s string) int {
	n := 0
	for i := 0; i < len(s); i++ {
		n = n*10 + int(s[i]-'0')
	}
	return n
}

// USCCCharset is the 31-character alphabet of the unified social credit code (no I, O, S, V, Z).
const USCCCharset = "0123456789ABCDEFGHJKLMNPQRTUWXY"

var usccWeights = [17]int{1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28}

// usccValue maps a byte to its value in USCCCharset, or -1.
var usccValue = func() (t [256]int8) {
	for i := range t {
		t[i] = -1
	}
	for i := 0; i < len(USCCCharset); i++ {
		t[USCCCharset[i]] = int8(i)
	}
	return t
}()

// USCCCheckChar returns the GB 32100-2015 check character of the first 17 characters of a
// unified social credit code (weighted sum mod 31 over USCCCharset).
func USCCCheckChar(first17 string) (byte, error) {
	if len(first17) != 17 {
		return 0, ErrFormat
	}
	sum := 0
	for i := 0; i < 17; i++ {
		v := usccValue[first17[i]]
		if v < 0 {
			return 0, ErrFormat
		}
		sum += int(v) * usccWeights[i]
	}
	return USCCCharset[(31-sum%31)%31], nil
}

// ValidUSCC reports whether s is an 18-character unified social credit code: every character
// in USCCCharset, a 6-digit administrative division code in positions 3-8 and a correct check
// character. The registration-authority and organisation-type characters (positions 1-2) are
// not restricted beyond the charset, since the code lists for them keep growing; the embedded
// organisation code's own check (GB 11714) is not required either, as codes issued to some
// authorities do not carry one.
func ValidUSCC(s string) bool {
	if len(s) != 18 {
		return false
	}
	want, err := USCCCheckChar(s[:17])
	if err != nil || s[17] != want {
		return false
	}
	for i := 2; i < 8; i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

var orgWeights = [8]int{3, 7, 9, 10, 5, 8, 4, 2}

// OrgCodeCheckChar returns the GB 11714-1997 check character ('0'-'9' or 'X') of the first 8
// characters (digits or upper-case letters A-Z, A=10 ... Z=35) of an organisation code, the
// 9-character body in positions 9-17 of a unified social credit code.
func OrgCodeCheckChar(first8 string) (byte, error) {
	if len(first8) != 8 {
		return 0, ErrFormat
	}
	sum := 0
	for i := 0; i < 8; i++ {
		c := first8[i]
		var v int
		switch {
		case c >= '0' && c <= '9':
			v = int(c - '0')
		case c >= 'A' && c <= 'Z':
			v = int(c-'A') + 10
		default:
			return 0, ErrFormat
		}
		sum += v * orgWeights[i]
	}
	switch r := 11 - sum%11; r {
	case 10:
		return 'X', nil
	case 11:
		return '0', nil
	default:
		return byte('0' + r), nil
	}
}

// LuhnValid reports whether digits is a 13-19 digit number (a bank card number's length range)
// whose Luhn checksum is correct.
func LuhnValid(digits string) bool {
	n := len(digits)
	if n < 13 || n > 19 {
		return false
	}
	sum := 0
	for i := 0; i < n; i++ {
		c := digits[n-1-i]
		if c < '0' || c > '9' {
			return false
		}
		d := int(c - '0')
		if i%2 == 1 {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
	}
	return sum%10 == 0
}

// LuhnCheckDigit returns the Luhn check digit to append to body (all digits).
func LuhnCheckDigit(body string) (byte, error) {
	if len(body) == 0 {
		return 0, ErrFormat
	}
	sum := 0
	n := len(body)
	for i := 0; i < n; i++ {
		c := body[n-1-i]
		if c < '0' || c > '9' {
			return 0, ErrFormat
		}
		d := int(c - '0')
		if i%2 == 0 { // doubled once the check digit is appended
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
	}
	return byte('0' + (10-sum%10)%10), nil
}

// ValidMobile reports whether s is a mainland China mobile number: 11 digits, "1" followed by
// a second digit 3-9.
func ValidMobile(s string) bool {
	if len(s) != 11 || s[0] != '1' || s[1] < '3' || s[1] > '9' {
		return false
	}
	for i := 2; i < 11; i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// ValidEmail reports whether s is an e-mail address in the conservative form the egress
// reviewer recognises: local@domain, at most 254 bytes, where
//
//   - the local part is 1-64 characters of A-Z a-z 0-9 . _ % + -, neither starting nor ending
//     with '.' and without "..";
//   - the domain has at least two dot-separated labels of 1-63 characters of A-Z a-z 0-9 -,
//     none starting or ending with '-', and the last label (the top-level domain) is 2-63
//     letters.
//
// Quoted local parts, IP-literal domains, internationalised addresses and single-label domains
// ("root@localhost") are not recognised: the form is chosen so that version strings
// ("pkg@1.2.3"), handles ("@name") and similar text are not mistaken for addresses.
func ValidEmail(s string) bool {
	if len(s) < 6 || len(s) > 254 { // a@b.cd is the shortest
		return false
	}
	at := -1
	for i := 0; i < len(s); i++ {
		if s[i] == '@' {
			if at >= 0 {
				return false
			}
			at = i
		}
	}
	if at < 1 || at > 64 {
		return false
	}
	return validLocal(s[:at]) && validDomain(s[at+1:])
}

func validLocal(l string) bool {
	if l[0] == '.' || l[len(l)-1] == '.' {
		return false
	}
	for i := 0; i < len(l); i++ {
		c := l[i]
		switch {
		case isAlnum(c), c == '_', c == '%', c == '+', c == '-':
		case c == '.':
			if l[i-1] == '.' {
				return false
			}
		default:
			return false
		}
	}
	return true
}

func validDomain(d string) bool {
	labels, start := 0, 0
	for i := 0; i <= len(d); i++ {
		if i < len(d) && d[i] != '.' {
			if c := d[i]; !isAlnum(c) && c != '-' {
				return false
			}
			continue
		}
		l := d[start:i]
		if len(l) == 0 || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		labels++
		start = i + 1
		if i == len(d) { // the top-level domain: letters only, at least two
			if len(l) < 2 {
				return false
			}
			for j := 0; j < len(l); j++ {
				if c := l[j]; !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z') {
					return false
				}
			}
		}
	}
	return labels >= 2
}

func isAlnum(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z'
}
