package pii

import (
	"strings"
	"testing"
)

func TestResidentIDCheckDigit(t *testing.T) {
	cases := []struct {
		in   string
		want byte
		err  bool
	}{
		{"11010519491231002", 'X', false}, // GB 11643-1999 example
		{"44052418800101001", '4', false}, // GB 11643-1999 example
		{"53010219900307451", '9', false}, // 256 mod 11 = 3
		{"1101051949123100", 0, true},     // 16 chars
		{"110105194912310021", 0, true},   // 18 chars
		{"1101051949123100A", 0, true},    // letter
		{"11010519491231 02", 0, true},    // space
		{"", 0, true},
	}
	for _, c := range cases {
		got, err := ResidentIDCheckDigit(c.in)
		if (err != nil) != c.err {
			t.Errorf("ResidentIDCheckDigit(%q) err = %v, want err %v", c.in, err, c.err)
			continue
		}
		if !c.err && got != c.want {
			t.Errorf("ResidentIDCheckDigit(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func withCheck(t *testing.T, first17 string) string {
	t.Helper()
	c, err := ResidentIDCheckDigit(first17)
	if err != nil {
		t.Fatalf("check digit of %q: %v", first17, err)
	}
	return first17 + string(c)
}

func TestValidResidentID(t *testing.T) {
	valid := []string{
		"11010519491231002X", // GB 11643-1999 example
		withCheck(t, "53010219900307451"),
		withCheck(t, "53011120000229002"), // leap day
		withCheck(t, "53012919000101001"), // lower year bound
		withCheck(t, "53012921001231001"), // upper year bound
		withCheck(t, "81000019800101001"), // Hong Kong province prefix
	}
	for _, s := range valid {
		if !ValidResidentID(s) {
			t.Errorf("ValidResidentID(%q) = false, want true", s)
		}
	}
	invalid := []struct{ s, why string }{
		{"110105194912310021", "wrong check digit"},
		{"11010519491231002x", "lower-case x"},
		{"11010519491231002", "17 chars"},
		{"11010519491231002X0", "19 chars"},
		{"", "empty"},
		{"440524188001010014", "born 1880 (standard example, outside 1900..2100)"},
		{withCheck(t, "53010220230230001"), "30 February"},
		{withCheck(t, "53010220230229001"), "29 February in a common year"},
		{withCheck(t, "53010219000229001"), "1900 is not a leap year"},
		{withCheck(t, "53010220231301001"), "month 13"},
		{withCheck(t, "53010220230000001"), "month 0"},
		{withCheck(t, "53010220230100001"), "day 0"},
		{withCheck(t, "53010220230431001"), "31 April"},
		{withCheck(t, "53010221010101001"), "year 2101"},
		{withCheck(t, "00000019900101001"), "no such province"},
		{withCheck(t, "99010219900101001"), "no such province"},
		{"1101051949123100AX", "letter in body"},
		{"11010519491231002Y", "bad check letter"},
		{"１１0105194912310021", "full-width digits"},
	}
	for _, c := range invalid {
		if ValidResidentID(c.s) {
			t.Errorf("ValidResidentID(%q) = true, want false (%s)", c.s, c.why)
		}
	}
}

func TestUSCC(t *testing.T) {
	c, err := USCCCheckChar("91350100M000100Y4")
	if err != nil || c != '3' {
		t.Fatalf("USCCCheckChar(GB 32100 example) = %q, %v; want '3'", c, err)
	}
	for _, bad := range []string{"91350100M000100Y", "91350100M000100Y43", "91350100M000100I4", "91350100m000100Y4"} {
		if _, err := USCCCheckChar(bad); err == nil {
			t.Errorf("USCCCheckChar(%q) succeeded, want error", bad)
		}
	}
	valid := []string{"91350100M000100Y43", "91530100MA6K1234X5"}
	for _, s := range valid {
		if !ValidUSCC(s) {
			t.Errorf("ValidUSCC(%q) = false, want true", s)
		}
	}
	invalid := []struct{ s, why string }{
		{"91350100M000100Y44", "wrong check char"},
		{"91350100M000100Y4", "17 chars"},
		{"91350100M000100Y430", "19 chars"},
		{"91350100m000100Y43", "lower case"},
		{"9135010OM000100Y43", "letter O in region"},
		{"91350100M000100I43", "letter I not in charset"},
		{"", "empty"},
	}
	for _, c := range invalid {
		if ValidUSCC(c.s) {
			t.Errorf("ValidUSCC(%q) = true, want false (%s)", c.s, c.why)
		}
	}
	// A body whose region is not digits is refused even with a correct check char.
	body := "91A50100M000100Y4"
	ch, err := USCCCheckChar(body)
	if err != nil {
		t.Fatal(err)
	}
	if ValidUSCC(body + string(ch)) {
		t.Errorf("ValidUSCC accepted a non-numeric region")
	}
}

func TestOrgCodeCheckChar(t *testing.T) {
	cases := map[string]byte{
		"M000100Y": '4', // the organisation code inside the GB 32100 example
		"00000000": '0', // remainder 11 maps to '0'
	}
	for in, want := range cases {
		got, err := OrgCodeCheckChar(in)
		if err != nil || got != want {
			t.Errorf("OrgCodeCheckChar(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	// Some body must map to 'X' (remainder 10); find one and check the range of outputs.
	seenX := false
	for i := 0; i < 1000; i++ {
		b := []byte("1234567")
		b = append(b, byte('0'+i%10))
		b[6] = byte('0' + i/10%10)
		b[5] = byte('0' + i/100%10)
		c, err := OrgCodeCheckChar(string(b))
		if err != nil {
			t.Fatal(err)
		}
		if c == 'X' {
			seenX = true
		} else if c < '0' || c > '9' {
			t.Fatalf("OrgCodeCheckChar(%q) = %q", b, c)
		}
	}
	if !seenX {
		t.Error("no body produced check char X")
	}
	if _, err := OrgCodeCheckChar("1234567"); err == nil {
		t.Error("7 chars accepted")
	}
	if _, err := OrgCodeCheckChar("1234567a"); err == nil {
		t.Error("lower-case letter accepted")
	}
}

func TestLuhn(t *testing.T) {
	cases := []struct {
		s    string
		want bool
	}{
		{"4111111111111111", true},
		{"5555555555554444", true},
		{"378282246310005", true}, // 15 digits
		{"6011111111111117", true},
		{"4222222222222", true}, // 13 digits
		{"4111111111111112", false},
		{"411111111111", false},         // 12 digits
		{"41111111111111111111", false}, // 20 digits
		{"4111 1111 1111 1111", false},  // separators
		{"411111111111111a", false},
		{"", false},
	}
	for _, c := range cases {
		if got := LuhnValid(c.s); got != c.want {
			t.Errorf("LuhnValid(%q) = %v, want %v", c.s, got, c.want)
		}
	}
	for _, body := range []string{"621226400000000000", "622202123456789012", "411111111111111"} {
		d, err := LuhnCheckDigit(body)
		if err != nil {
			t.Fatal(err)
		}
		if !LuhnValid(body + string(d)) {
			t.Errorf("LuhnCheckDigit(%q) = %q does not validate", body, d)
		}
	}
	if _, err := LuhnCheckDigit("12a"); err == nil {
		t.Error("LuhnCheckDigit accepted a letter")
	}
}

func TestValidMobile(t *testing.T) {
	cases := []struct {
		s    string
		want bool
	}{
		{"13800138000", true},
		{"19912345678", true},
		{"16612345678", true},
		{"12345678901", false}, // second digit 2
		{"10012345678", false},
		{"23800138000", false},
		{"1380013800", false},   // 10 digits
		{"138001380000", false}, // 12 digits
		{"1380013800a", false},
		{"+8613800138000", false},
		{"", false},
	}
	for _, c := range cases {
		if got := ValidMobile(c.s); got != c.want {
			t.Errorf("ValidMobile(%q) = %v, want %v", c.s, got, c.want)
		}
	}
}

func TestDaysInMonth(t *testing.T) {
	cases := []struct{ y, m, want int }{
		{2024, 2, 29}, {2023, 2, 28}, {1900, 2, 28}, {2000, 2, 29}, {2025, 4, 30}, {2025, 12, 31},
	}
	for _, c := range cases {
		if got := DaysInMonth(c.y, c.m); got != c.want {
			t.Errorf("DaysInMonth(%d, %d) = %d, want %d", c.y, c.m, got, c.want)
		}
	}
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func FuzzValidResidentID(f *testing.F) {
	for _, s := range []string{"11010519491231002X", "440524188001010014", "530102199003074511", "", "X", "11010519491231002x", "53010220230230001X"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !ValidResidentID(s) {
			return
		}
		if len(s) != 18 || !isDigits(s[:17]) {
			t.Fatalf("accepted %q: bad length or body", s)
		}
		c, err := ResidentIDCheckDigit(s[:17])
		if err != nil || s[17] != c {
			t.Fatalf("accepted %q but check digit is %q (%v)", s, c, err)
		}
		if !strings.ContainsRune("0123456789X", rune(s[17])) {
			t.Fatalf("accepted %q: bad check char", s)
		}
	})
}

func FuzzValidUSCC(f *testing.F) {
	for _, s := range []string{"91350100M000100Y43", "91530100MA6K1234X5", "", "91350100M000100Y4", "91350100M000100Y44"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !ValidUSCC(s) {
			return
		}
		if len(s) != 18 {
			t.Fatalf("accepted %q: length %d", s, len(s))
		}
		for i := 0; i < len(s); i++ {
			if strings.IndexByte(USCCCharset, s[i]) < 0 {
				t.Fatalf("accepted %q: %q not in charset", s, s[i])
			}
		}
		if !isDigits(s[2:8]) {
			t.Fatalf("accepted %q: region not digits", s)
		}
		c, err := USCCCheckChar(s[:17])
		if err != nil || s[17] != c {
			t.Fatalf("accepted %q but check char is %q (%v)", s, c, err)
		}
	})
}

func TestValidEmail(t *testing.T) {
	cases := []struct {
		s    string
		want bool
		why  string
	}{
		{"zhang.san@example.com", true, "plain"},
		{"a@b.cd", true, "shortest"},
		{"Zhang_San+tag%x-1@mail.example.com.cn", true, "every local punctuation, four labels"},
		{"ZHANG@EXAMPLE.COM", true, "upper case"},
		{"user@sub-domain.example.org", true, "hyphen inside a label"},
		{"user@localhost", false, "single-label domain"},
		{"pkg@1.2.3", false, "numeric top-level domain (a version string)"},
		{"user@example.c", false, "one-letter top-level domain"},
		{"user@example.c0m", false, "digit in the top-level domain"},
		{"@example.com", false, "empty local part"},
		{"user@", false, "empty domain"},
		{"user@@example.com", false, "two @"},
		{"us@er@example.com", false, "two @ apart"},
		{".user@example.com", false, "local part starts with a dot"},
		{"user.@example.com", false, "local part ends with a dot"},
		{"us..er@example.com", false, "double dot in the local part"},
		{"user@example..com", false, "empty label"},
		{"user@.example.com", false, "domain starts with a dot"},
		{"user@example.com.", false, "domain ends with a dot"},
		{"user@-example.com", false, "label starts with a hyphen"},
		{"user@example-.com", false, "label ends with a hyphen"},
		{"us er@example.com", false, "space"},
		{"\"user\"@example.com", false, "quoted local part"},
		{"user@[10.0.0.1]", false, "IP literal"},
		{"用户@example.com", false, "non-ASCII local part"},
		{strings.Repeat("a", 65) + "@example.com", false, "local part over 64"},
		{strings.Repeat("a", 64) + "@example.com", true, "local part of 64"},
		{"user@" + strings.Repeat("a", 64) + ".com", false, "label over 63"},
		{"user@" + strings.Repeat("a.", 124) + "com", false, "over 254 bytes"},
		{"", false, "empty"},
	}
	for _, c := range cases {
		if got := ValidEmail(c.s); got != c.want {
			t.Errorf("ValidEmail(%q) = %v, want %v (%s)", c.s, got, c.want, c.why)
		}
	}
}

func FuzzValidEmail(f *testing.F) {
	for _, s := range []string{"zhang.san@example.com", "a@b.cd", "pkg@1.2.3", "user@localhost", "", "@", "a@b..cd"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !ValidEmail(s) {
			return
		}
		at := strings.IndexByte(s, '@')
		if at < 1 || strings.Count(s, "@") != 1 || len(s) > 254 {
			t.Fatalf("accepted %q: bad @ or length", s)
		}
		dom := s[at+1:]
		if !strings.Contains(dom, ".") || strings.Contains(s, "..") {
			t.Fatalf("accepted %q: bad domain", s)
		}
	})
}
