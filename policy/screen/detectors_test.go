package screen

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/c1b99f93/cleanroom/policy"
	"github.com/c1b99f93/cleanroom/policy/pii"
	"github.com/c1b99f93/cleanroom/rawset"
)

// The detectors one by one, on bare values (TestScreen covers them inside outputs).
func TestScanTextDetectsEachKind(t *testing.T) {
	cases := []struct {
		in   string
		want pii.Kinds
	}{
		{idGB, pii.ResidentID},
		{idValid, pii.ResidentID},
		// Glued to letters outside the code alphabet (I, O): glued to letters inside it, an ID's
		// windows may also pass the code's mod-31 check by chance, and both are reported.
		{"i" + idValid + "o", pii.ResidentID},
		{idValid[:17], 0},
		{idBadCheck, 0},
		{id30Feb, 0},
		{usccGB, pii.USCC},
		{"A" + usccGB, pii.USCC},
		{mobile, pii.Mobile},
		{"86" + mobile, pii.Mobile},
		{"0086" + mobile, pii.Mobile},
		{"186" + mobile, 0}, // 14 digits
		{"1381234567", 0},
		{"138123456789", 0},
		{cardUP19, pii.BankCard},
		{cardUP16, pii.BankCard},
		{cardVisa, pii.BankCard},
		{withLuhn("222100000000000"), pii.BankCard}, // Mastercard 2-series
		{withLuhn("272100000000000"), 0},            // past 2720
		{withLuhn("35280000000000000"), pii.BankCard},
		{withLuhn("955880000000000000"), pii.BankCard},
		{withLuhn("12345678901234567"), 0},
		{email, pii.Email},
		{"mail:" + email + ";", pii.Email},
		{strings.Repeat("a", 100) + "@example.com", pii.Email}, // the last 64 characters are a local part
		{"a@b", 0},
		{"@@@", 0},
		{"", 0},
		{idGB + " " + mobile + " " + email, pii.ResidentID | pii.Mobile | pii.Email},
	}
	for _, c := range cases {
		if got := pii.ScanText(c.in); got != c.want {
			t.Errorf("pii.ScanText(%q) = %05b, want %05b", c.in, got, c.want)
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
	if pii.ScanText(code)&pii.USCC == 0 {
		t.Errorf("all-digit code %q on its own not found", code)
	}
	if pii.ScanText("ORG"+code)&pii.USCC == 0 {
		t.Errorf("all-digit code glued to letters not found")
	}
	if pii.ScanText("1"+code)&pii.USCC != 0 {
		t.Errorf("all-digit window inside a longer number reported")
	}
}

func TestScanNumbers(t *testing.T) {
	cases := []struct {
		v    Value
		want pii.Kinds
	}{
		{Float(13812345678), pii.Mobile},
		{Float(-13812345678), pii.Mobile},
		{Float(13812345678.25), 0},
		{Float(1.3812345678e10), pii.Mobile},
		{Float(num(cardUP16)), pii.BankCard},
		{Float(num(cardVisa)), pii.BankCard},
		{Float(num(idValid)), pii.ResidentID},
		{Float(num(idValid[:17])), pii.ResidentID},
		{Float(math.NaN()), 0},
		{Float(math.Inf(1)), 0},
		{Float(1e300), 0},
		{Float(12345), 0},
		{Int(int64Of(idValid)), pii.ResidentID},
		{Int(int64Of(idBadCheck)), 0},
		{Int(int64Of(idValid[:17])), pii.ResidentID},
		{Int(int64Of(cardUP19)), pii.BankCard},
		{Int(math.MinInt64), 0},
		{Str(mobile), pii.Mobile},
		{Value{}, 0},
		// A number a DP mechanism released is noise around an aggregate: never an identifier.
		{Noisy(13812345678), 0},
		{Noisy(num(cardUP16)), 0},
		{Noisy(num(idValid)), 0},
	}
	for _, c := range cases {
		if got := scanValue(c.v); got != c.want {
			t.Errorf("scanValue(%v %v %v %v) = %05b, want %05b", c.v.Type, c.v.Str, c.v.Float, c.v.Int, got, c.want)
		}
	}
}

func TestNewValidatesOptions(t *testing.T) {
	k, _ := rawset.NewKeyer(testKey)
	other, _ := rawset.NewKeyer(bytes.Repeat([]byte{1}, 40))
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
		{"set without key ID", WithRawValues(other, rawset.NewHashSet([]uint64{1})), nil},
		{"matching key", WithRawValues(k, built), nil},
		{"limits", WithLimits(Limits{MaxRows: 1, MinUnitsPerGroup: 0.5}), nil},
	}
	for _, c := range cases {
		if _, err := New(c.opt); !errors.Is(err, c.want) {
			t.Errorf("%s: err = %v, want %v", c.name, err, c.want)
		}
	}
}

func TestScreenFailsClosedWhenCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	rev := newScreener(t, Limits{MaxRows: 1}, true).Screen(ctx, strTable(idGB, "a", "b"))
	if got := codes(rev.Findings); !slices.Equal(got, []string{CodeReviewerFailed}) {
		t.Fatalf("codes = %v, want one reviewer_failed", got)
	}

	// Cancelled while the identifiers check reads the cells.
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	out := &cancelling{Table: strTable(make([]string, 1000)...), at: 300, cancel: cancel}
	rev = newScreener(t, Limits{}, true).Screen(ctx, out)
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

func TestScreenFailedNeverQuotesThePanic(t *testing.T) {
	rev := newScreener(t, Limits{}, false).Screen(context.Background(), panicky{Table: strTable("a"), cell: true})
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
	rev := newScreener(t, Limits{}, false).Screen(context.Background(), out)
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
	rev := newScreener(t, Limits{}, false).Screen(context.Background(), out)
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

func TestScreenerIsSafeForConcurrentUse(t *testing.T) {
	r := newScreener(t, Limits{MaxRows: 100}, true)
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, c := range cases[:20] {
				r.Screen(context.Background(), c.out)
			}
		}()
	}
	wg.Wait()
}

func fmtValue(v Value) string {
	return fmt.Sprintf("%v %+v %#v %s", v, struct{ V Value }{v}, []Value{v}, v)
}
