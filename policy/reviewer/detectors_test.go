package reviewer

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/c1b99f93/cleanroom/policy"
)

func TestFoldNormalisesFullWidthCaseAndSpaces(t *testing.T) {
	cases := []struct{ in, want string }{
		{"abc123", "ABC123"},
		{"ABC 123", "ABC 123"}, // unchanged: no allocation path
		{"１３８１２３４５６７８", "13812345678"},
		{"ｚｈａｎｇ＠ｅｘａｍｐｌｅ．ｃｏｍ", "ZHANG@EXAMPLE.COM"},
		{"１１０１０５１９４９１２３１００２ｘ", "11010519491231002X"},
		{"138\u3000 1234\u00a05678", "138  1234 5678"},
		{"138\u20141234\u22125678", "138-1234-5678"},
		{"客户ａ", "客户A"},
		{"\xff\xfe", "\ufffd\ufffd"}, // invalid UTF-8 becomes replacement characters
	}
	for _, c := range cases {
		if got := fold(c.in); got != c.want {
			t.Errorf("fold(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestMergeDigitSeparatorsJoinsDigitGroupsOnly(t *testing.T) {
	cases := []struct {
		in, want string
		merged   bool
	}{
		{"138 1234 5678", "13812345678", true},
		{"138-1234-5678", "13812345678", true},
		{"138 - 1234 - 5678", "13812345678", true},
		{"138    1234", "138    1234", false}, // four separators: not one number
		{"ABC-123", "ABC-123", false},         // a letter before the hyphen
		{"12 AB 34", "12 AB 34", false},
		{"tel: 138 1234", "tel: 1381234", true},
		{"1 2 3", "123", true},
		{"-1 ", "-1 ", false},
		{"", "", false},
	}
	for _, c := range cases {
		got, merged := mergeDigitSeparators(c.in)
		if got != c.want || merged != c.merged {
			t.Errorf("mergeDigitSeparators(%q) = %q, %v; want %q, %v", c.in, got, merged, c.want, c.merged)
		}
	}
}

// The detectors one by one, on bare values (TestReview covers them inside outputs).
func TestScanTextDetectsEachKind(t *testing.T) {
	cases := []struct {
		in   string
		want found
	}{
		{idGB, foundResidentID},
		{idValid, foundResidentID},
		// Glued to letters outside the code alphabet (I, O): glued to letters inside it, an ID's
		// windows may also pass the code's mod-31 check by chance, and both are reported.
		{"i" + idValid + "o", foundResidentID},
		{idValid[:17], 0},
		{idBadCheck, 0},
		{id30Feb, 0},
		{usccGB, foundUSCC},
		{"A" + usccGB, foundUSCC},
		{mobile, foundMobile},
		{"86" + mobile, foundMobile},
		{"0086" + mobile, foundMobile},
		{"186" + mobile, 0}, // 14 digits
		{"1381234567", 0},
		{"138123456789", 0},
		{cardUP19, foundCard},
		{cardUP16, foundCard},
		{cardVisa, foundCard},
		{withLuhn("222100000000000"), foundCard}, // Mastercard 2-series
		{withLuhn("272100000000000"), 0},         // past 2720
		{withLuhn("35280000000000000"), foundCard},
		{withLuhn("955880000000000000"), foundCard},
		{withLuhn("12345678901234567"), 0},
		{email, foundEmail},
		{"mail:" + email + ";", foundEmail},
		{strings.Repeat("a", 100) + "@example.com", foundEmail}, // the last 64 characters are a local part
		{"a@b", 0},
		{"@@@", 0},
		{"", 0},
		{idGB + " " + mobile + " " + email, foundResidentID | foundMobile | foundEmail},
	}
	for _, c := range cases {
		if got := scanText(c.in); got != c.want {
			t.Errorf("scanText(%q) = %05b, want %05b", c.in, got, c.want)
		}
	}
}

func TestScanUSCCSkipsWindowsInsideLongNumbers(t *testing.T) {
	// An all-digit code (its check character happens to be a digit), then digits around it.
	var code string
	for i := 0; code == "" && i < 1000; i++ {
		if c := withUSCC(fmt.Sprintf("91530100%09d", i)); c[17] >= '0' && c[17] <= '9' {
			code = c
		}
	}
	if scanText(code)&foundUSCC == 0 {
		t.Errorf("all-digit code %q on its own not found", code)
	}
	if scanText("ORG"+code)&foundUSCC == 0 {
		t.Errorf("all-digit code glued to letters not found")
	}
	if scanText("1"+code)&foundUSCC != 0 {
		t.Errorf("all-digit window inside a longer number reported")
	}
}

func TestScanNumbers(t *testing.T) {
	cases := []struct {
		v    Value
		want found
	}{
		{Float(13812345678), foundMobile},
		{Float(-13812345678), foundMobile},
		{Float(13812345678.25), 0},
		{Float(1.3812345678e10), foundMobile},
		{Float(num(cardUP16)), foundCard},
		{Float(num(cardVisa)), foundCard},
		{Float(num(idValid)), foundResidentID},
		{Float(num(idValid[:17])), foundResidentID},
		{Float(math.NaN()), 0},
		{Float(math.Inf(1)), 0},
		{Float(1e300), 0},
		{Float(12345), 0},
		{Int(int64Of(idValid)), foundResidentID},
		{Int(int64Of(idBadCheck)), 0},
		{Int(int64Of(idValid[:17])), foundResidentID},
		{Int(int64Of(cardUP19)), foundCard},
		{Int(math.MinInt64), 0},
		{Str(mobile), foundMobile},
		{Value{}, 0},
	}
	for _, c := range cases {
		if got := scanValue(c.v); got != c.want {
			t.Errorf("scanValue(%v %v %v %v) = %05b, want %05b", c.v.Type, c.v.Str, c.v.Float, c.v.Int, got, c.want)
		}
	}
}

func TestCanonicalForms(t *testing.T) {
	str := []struct{ in, want string }{
		{"  Zhang San ", "ZHANG SAN"},
		{"ｚｈａｎｇ\u3000", "ZHANG"},
		{"13800000000", "13800000000"},
	}
	for _, c := range str {
		if got := CanonicalString(c.in); got != c.want {
			t.Errorf("CanonicalString(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	nums := []struct {
		in   float64
		want string
	}{
		{1.38e10, "13800000000"},
		{13800000000.0, "13800000000"},
		{1234.5, "1234.5"},
		{0.1, "0.1"},
		{-7, "-7"},
		{math.Copysign(0, -1), "0"},
		{math.NaN(), ""},
		{math.Inf(-1), ""},
	}
	for _, c := range nums {
		if got := CanonicalNumber(c.in); got != c.want {
			t.Errorf("CanonicalNumber(%v) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestKeyedHashIsTruncatedHMAC(t *testing.T) {
	if _, err := NewKeyer(testKey[:31]); !errors.Is(err, ErrShortKey) {
		t.Errorf("31-byte key: err = %v, want ErrShortKey", err)
	}
	if _, err := KeyedHash(nil, "x"); !errors.Is(err, ErrShortKey) {
		t.Errorf("nil key: err = %v, want ErrShortKey", err)
	}
	m := hmac.New(sha256.New, testKey)
	m.Write([]byte("13800000000"))
	want := binary.BigEndian.Uint64(m.Sum(nil))
	got, err := KeyedHash(testKey, "13800000000")
	if err != nil || got != want {
		t.Fatalf("KeyedHash = %x, %v; want %x", got, err, want)
	}
	k, _ := NewKeyer(testKey)
	if k.Hash("13800000000") != want {
		t.Error("Keyer.Hash differs from KeyedHash")
	}
	// Number and string forms of one value hash alike.
	if k.Hash(CanonicalNumber(1.38e10)) != k.Hash(CanonicalString(" 13800000000 ")) {
		t.Error("1.38e10 and \"13800000000\" hash differently")
	}
	other, _ := NewKeyer(bytes.Repeat([]byte{7}, 32))
	if other.ID() == k.ID() || other.Hash("13800000000") == want {
		t.Error("another key gives the same ID or hash")
	}
}

func TestAppendRawHashesForms(t *testing.T) {
	k, _ := NewKeyer(testKey)
	cases := []struct {
		in   string
		want []string
	}{
		{" zhang san ", []string{"ZHANG SAN"}},
		{"ab", nil},
		{"13812345678.0", []string{"13812345678.0", "13812345678"}},
		{"138-1234-5678", []string{"138-1234-5678", "13812345678"}},
		{"1.38e10", []string{"1.38E10", "13800000000"}},
		{"123456", []string{"123456"}},
	}
	for _, c := range cases {
		var want []uint64
		for _, w := range c.want {
			want = append(want, k.Hash(w))
		}
		if got := k.AppendRawHashes(nil, c.in); !slices.Equal(got, want) {
			t.Errorf("AppendRawHashes(%q) = %x, want %x (%q)", c.in, got, want, c.want)
		}
	}
}

func TestHashSetRoundTrip(t *testing.T) {
	k, _ := NewKeyer(testKey)
	s := k.NewHashSet([]uint64{5, 3, 9, 3, 1 << 63})
	if s.Len() != 4 || !s.Contains(3) || !s.Contains(1<<63) || s.Contains(4) {
		t.Fatalf("set %v: Len %d", s.hashes, s.Len())
	}
	var buf bytes.Buffer
	n, err := s.WriteTo(&buf)
	if err != nil || n != int64(buf.Len()) || n != hashSetHeader+4*8+4 {
		t.Fatalf("WriteTo = %d, %v; buffer %d", n, err, buf.Len())
	}
	got, err := ReadHashSet(bytes.NewReader(buf.Bytes()))
	if err != nil || !slices.Equal(got.hashes, s.hashes) || got.KeyID() != k.ID() {
		t.Fatalf("ReadHashSet = %v (key %x), %v", got, got.KeyID(), err)
	}
	empty := NewHashSet(nil)
	buf.Reset()
	if _, err := empty.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	if got, err := ReadHashSet(&buf); err != nil || got.Len() != 0 || got.KeyID() != 0 {
		t.Fatalf("empty set: %v, %v", got, err)
	}
}

func TestReadHashSetRefusesCorruption(t *testing.T) {
	var buf bytes.Buffer
	if _, err := NewHashSet([]uint64{1, 2, 3}).WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	good := buf.Bytes()
	corrupt := func(f func(b []byte) []byte) []byte { return f(slices.Clone(good)) }
	cases := map[string][]byte{
		"magic":     corrupt(func(b []byte) []byte { b[0] = 'X'; return b }),
		"version":   corrupt(func(b []byte) []byte { b[8] = 2; return b }),
		"reserved":  corrupt(func(b []byte) []byte { b[12] = 1; return b }),
		"unsorted":  corrupt(func(b []byte) []byte { b[hashSetHeader] = 9; return b }),
		"crc":       corrupt(func(b []byte) []byte { b[len(b)-1] ^= 1; return b }),
		"flipped":   corrupt(func(b []byte) []byte { b[hashSetHeader+16] ^= 0x40; return b }), // still ascending
		"truncated": good[:len(good)-5],
		"no crc":    good[:len(good)-4],
		"empty":     nil,
		"huge count": corrupt(func(b []byte) []byte {
			binary.LittleEndian.PutUint64(b[24:], 1<<62)
			return b
		}),
	}
	for name, b := range cases {
		if _, err := ReadHashSet(bytes.NewReader(b)); !errors.Is(err, ErrHashSetFormat) {
			t.Errorf("%s: err = %v, want ErrHashSetFormat", name, err)
		}
	}
}

func TestNewValidatesOptions(t *testing.T) {
	k, _ := NewKeyer(testKey)
	other, _ := NewKeyer(bytes.Repeat([]byte{1}, 40))
	built := rawSet(t)
	cases := []struct {
		name string
		opt  Option
		want error
	}{
		{"negative rows", WithLimits(Limits{MaxRows: -1}), ErrInvalidLimits},
		{"negative bytes", WithLimits(Limits{MaxBytes: -1}), ErrInvalidLimits},
		{"NaN minimum", WithLimits(Limits{MinUnitsPerGroup: math.NaN()}), ErrInvalidLimits},
		{"infinite minimum", WithLimits(Limits{MinUnitsPerGroup: math.Inf(1)}), ErrInvalidLimits},
		{"negative minimum", WithLimits(Limits{MinUnitsPerGroup: -1}), ErrInvalidLimits},
		{"no keyer", WithRawValues(nil, built), ErrNoRawSet},
		{"no set", WithRawValues(k, nil), ErrNoRawSet},
		{"set of another key", WithRawValues(other, built), ErrKeyMismatch},
		{"set without key ID", WithRawValues(other, NewHashSet([]uint64{1})), nil},
		{"matching key", WithRawValues(k, built), nil},
		{"limits", WithLimits(Limits{MaxRows: 1, MinUnitsPerGroup: 0.5}), nil},
	}
	for _, c := range cases {
		if _, err := New(c.opt); !errors.Is(err, c.want) {
			t.Errorf("%s: err = %v, want %v", c.name, err, c.want)
		}
	}
}

func TestReviewFailsClosedWhenCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	rev := newReviewer(t, Limits{MaxRows: 1}, true).Review(ctx, strTable(idGB, "a", "b"))
	if got := codes(rev.Findings); !slices.Equal(got, []string{CodeReviewerFailed}) {
		t.Fatalf("codes = %v, want one reviewer_failed", got)
	}

	// Cancelled while the identifiers check reads the cells.
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	out := &cancelling{Table: strTable(make([]string, 1000)...), at: 300, cancel: cancel}
	rev = newReviewer(t, Limits{}, true).Review(ctx, out)
	if got := codes(rev.Findings); !slices.Equal(got, []string{CodeReviewerFailed}) || !strings.Contains(rev.Findings[0].Message, "during the identifiers check") {
		t.Fatalf("findings = %+v, want one reviewer_failed during identifiers", rev.Findings)
	}
}

type cancelling struct {
	*Table
	at     int
	cancel func()
}

func (c *cancelling) Cell(row, col int) Value {
	if row == c.at {
		c.cancel()
	}
	return c.Table.Cell(row, col)
}

func TestReviewerFailedNeverQuotesThePanic(t *testing.T) {
	rev := newReviewer(t, Limits{}, false).Review(context.Background(), panicky{Table: strTable("a"), cell: true})
	if len(rev.Findings) != 1 || rev.Findings[0].Code != CodeReviewerFailed {
		t.Fatalf("findings = %+v", rev.Findings)
	}
	if strings.Contains(rev.Findings[0].Message, idGB) || strings.Contains(rev.Findings[0].Message, "cell holds") {
		t.Errorf("message quotes the panic: %q", rev.Findings[0].Message)
	}
}

func TestFindingsAggregatePerColumn(t *testing.T) {
	vals := make([]string, 10000)
	for i := range vals {
		vals[i] = "Wuhua"
		if i%3 == 1 {
			vals[i] = mobile
		}
	}
	out := strTable(vals...)
	out.Errs = []string{"a", mobile, mobile}
	rev := newReviewer(t, Limits{}, false).Review(context.Background(), out)
	want := []policy.Finding{
		{Code: CodeMobile, Severity: policy.SeverityHigh, Message: `a mainland mobile number in column 0 "district": 3333 of 10000 rows, first row 1`},
		{Code: CodeMobile, Severity: policy.SeverityHigh, Message: `a mainland mobile number in the error messages: 2 of 3, first message 1`},
	}
	if !slices.Equal(rev.Findings, want) {
		t.Errorf("findings = %+v\nwant %+v", rev.Findings, want)
	}
}

func TestColumnNameQuotedOnlyWhenClean(t *testing.T) {
	out := &Table{Cols: []Column{key(mobile), key("district")}, Data: [][]Value{{Str(idGB), Str(idGB)}}}
	rev := newReviewer(t, Limits{}, false).Review(context.Background(), out)
	var msgs []string
	for _, f := range rev.Findings {
		msgs = append(msgs, f.Message)
	}
	want := []string{
		"a mainland mobile number in the name of column 0",
		"a resident ID number in column 0: 1 of 1 rows, first row 0",
		`a resident ID number in column 1 "district": 1 of 1 rows, first row 0`,
	}
	if !slices.Equal(msgs, want) {
		t.Errorf("messages = %q\nwant %q", msgs, want)
	}
}

func TestValueRedactsItself(t *testing.T) {
	for _, s := range []string{Str(idGB).String(), Str(idGB).GoString(), fmtValue(Str(idGB))} {
		if strings.Contains(s, idGB) {
			t.Errorf("value printed as %q", s)
		}
	}
}

func TestReviewerIsSafeForConcurrentUse(t *testing.T) {
	r := newReviewer(t, Limits{MaxRows: 100}, true)
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, c := range cases[:20] {
				r.Review(context.Background(), c.out)
			}
		}()
	}
	wg.Wait()
}

func fmtValue(v Value) string {
	return fmt.Sprintf("%v %+v %#v %s", v, struct{ V Value }{v}, []Value{v}, v)
}

func TestHashSetIndexedLookup(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	var in []uint64
	for range 5000 {
		in = append(in, rng.Uint64())
	}
	in = append(in, 0, math.MaxUint64, 1<<48-1, 1<<48, 0xFFFF<<48, 0xFFFF<<48-1)
	s := NewHashSet(in)
	if s.index == nil {
		t.Fatal("a 5000-entry set has no index")
	}
	var buf bytes.Buffer
	if _, err := s.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	read, err := ReadHashSet(&buf)
	if err != nil {
		t.Fatal(err)
	}
	in2 := map[uint64]bool{}
	for _, h := range in {
		in2[h] = true
		if !s.Contains(h) || !read.Contains(h) {
			t.Fatalf("member %x not found", h)
		}
	}
	for range 20000 {
		h := rng.Uint64()
		if !in2[h] && (s.Contains(h) || read.Contains(h)) {
			t.Fatalf("non-member %x found", h)
		}
	}
	for _, h := range []uint64{1, math.MaxUint64 - 1, 1<<48 + 1} {
		if !in2[h] && s.Contains(h) {
			t.Fatalf("non-member %x found", h)
		}
	}
}
