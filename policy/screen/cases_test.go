package screen

import (
	"context"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/c1b99f93/cleanroom/policy"
	"github.com/c1b99f93/cleanroom/policy/pii"
	"github.com/c1b99f93/cleanroom/rawset"
)

// The case corpus: one list of outputs with the codes the reviewer must report, used by
// TestScreen, as FuzzScreen's seeds and by BenchmarkScreenCases (STYLE.md convention 6).

// Identifiers built with the check-character functions, so that every valid one is valid by
// construction and every near miss differs in one stated way.
var (
	idGB       = "11010519491231002X" // GB 11643-1999 example, check character X
	idValid    = withID("53010219900307451")
	idBadCheck = idValid[:17] + map[bool]string{true: "1", false: "0"}[idValid[17] == '0'] // a digit, not the check digit
	id30Feb    = withID("53010220230230001")                                               // 30 February: a check digit, but no such date
	usccGB     = "91350100M000100Y43"                                                      // GB 32100-2015 example
	usccValid  = withUSCC("91530100MA6K1234X")
	mobile     = "13812345678"
	cardUP19   = withLuhn("621226400000000000") // China UnionPay, 19 digits
	cardUP16   = withLuhn("621226400000000")    // 16 digits, below 2^53
	cardVisa   = "4111111111111111"
	email      = "zhang.san@example.com"
)

func withID(first17 string) string {
	c, err := pii.ResidentIDCheckDigit(first17)
	if err != nil {
		panic(err)
	}
	return first17 + string(c)
}

func withUSCC(first17 string) string {
	c, err := pii.USCCCheckChar(first17)
	if err != nil {
		panic(err)
	}
	return first17 + string(c)
}

func withLuhn(body string) string {
	c, err := pii.LuhnCheckDigit(body)
	if err != nil {
		panic(err)
	}
	return body + string(c)
}

// fullWidth writes ASCII in its full-width forms.
func fullWidth(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r > ' ' && r < 0x7F {
			r += 0xFEE0
		}
		b.WriteRune(r)
	}
	return b.String()
}

func num(s string) float64 {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		panic(err)
	}
	return f
}

func int64Of(s string) int64 {
	i, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		panic(err)
	}
	return i
}

// Lineage fixtures.
var (
	useDistrict = policy.ColumnUse{Dataset: "visits", Column: "district", Tags: []string{"attribute"}, Usage: policy.UsageGroupKey}
	useCost     = policy.ColumnUse{Dataset: "visits", Column: "cost", Tags: []string{"sensitive"}, Usage: policy.UsageAggregate}
	useDiag     = policy.ColumnUse{Dataset: "visits", Column: "diagnosis", Tags: []string{"sensitive"}, Usage: policy.UsageGroupKey}
	useUnit     = policy.ColumnUse{Dataset: "visits", Column: "id_number", Tags: []string{"identifier"}, Usage: policy.UsageCountDistinctUnit, PrivacyUnit: true}
	usePhoneRow = policy.ColumnUse{Dataset: "visits", Column: "phone", Tags: []string{"identifier"}, Usage: policy.UsageCountRows}
	usePhoneKey = policy.ColumnUse{Dataset: "visits", Column: "phone", Tags: []string{"identifier"}, Usage: policy.UsageGroupKey}
)

func key(name string, from ...policy.ColumnUse) Column {
	if from == nil {
		from = []policy.ColumnUse{useDistrict}
	}
	return Column{Name: name, Kind: KindGroupKey, DerivedFrom: from, Origin: OriginData}
}

func agg(name string, from ...policy.ColumnUse) Column {
	return Column{Name: name, Kind: KindAggregate, DerivedFrom: from}
}

// strTable is a one-column table of group-key strings (district lineage).
func strTable(vals ...string) *Table {
	t := &Table{Cols: []Column{key("district")}}
	for _, v := range vals {
		t.Data = append(t.Data, []Value{Str(v)})
	}
	return t
}

// numTable is a one-column table of aggregate numbers.
func numTable(vals ...Value) *Table {
	t := &Table{Cols: []Column{agg("total", useCost)}}
	for _, v := range vals {
		t.Data = append(t.Data, []Value{v})
	}
	return t
}

func errTable(msgs ...string) *Table { return &Table{Cols: []Column{agg("n")}, Errs: msgs} }

// rawValues are the raw identifier and sensitive values of the raw-value cases.
var rawValues = []string{
	"ZhangSanFeng",     // a name
	"13812345678.0",    // a phone number as a DOUBLE cast to text
	"1234.5",           // a sensitive amount
	"12345678901",      // an 11-digit account number
	"9876543210",       // a 10-digit account number
	"ab",               // shorter than rawset.MinRawLength: never hashed
	"糖尿病伴视网膜病变",        // a diagnosis
	" acct-0042-7781 ", // an account code with separators and spaces
}

type reviewCase struct {
	name       string
	out        Output
	limits     Limits
	raw        bool     // scan against rawValues
	want       []string // codes, in any order, with repeats
	suppressed []int
	contains   []string // substrings some message must have
}

var testKey = []byte("0123456789abcdef0123456789abcdef")

var cases = []reviewCase{
	// --- clean outputs ---
	{name: "clean sql result", out: &Table{
		Cols:  []Column{key("district"), agg("visits", useUnit), agg("cost", useCost)},
		Data:  [][]Value{{Str("Wuhua"), Float(1523.4), Float(98211.7)}, {Str("Panlong"), Float(88.2), Float(4410.1)}},
		Units: []float64{1523.4, 88.2},
	}, limits: Limits{MaxRows: 10, MaxCells: 100, MaxBytes: 1000, MinUnitsPerGroup: 20}, raw: true},
	{name: "empty output", out: &Table{}},
	{name: "count rows over identifier", out: &Table{Cols: []Column{agg("with_phone", usePhoneRow)}, Data: [][]Value{{Float(12)}}}},

	// --- lineage ---
	{name: "group key from identifier", out: &Table{Cols: []Column{key("phone", usePhoneKey)}}, want: []string{CodeIdentifierLineage},
		contains: []string{`column 0 "phone" derives from visits.phone, tagged identifier, used as group_key`}},
	{name: "count distinct of a non-unit identifier", out: &Table{Cols: []Column{agg("n", policy.ColumnUse{Dataset: "visits", Column: "phone", Tags: []string{"identifier"}, Usage: policy.UsageCountDistinctUnit})}},
		want: []string{CodeIdentifierLineage}},
	{name: "group key counting rows is not a count", out: &Table{Cols: []Column{key("k", usePhoneRow)}}, want: []string{CodeIdentifierLineage}},
	{name: "parameter from identifier", out: &Table{Cols: []Column{{Name: "w", Kind: KindParameter, DerivedFrom: []policy.ColumnUse{{Dataset: "d", Column: "id", Tags: []string{"quasi_identifier", "identifier"}, Usage: policy.UsageAggregate}}}}},
		want: []string{CodeIdentifierLineage}},
	{name: "sensitive group key", out: &Table{Cols: []Column{key("diagnosis", useDiag), agg("n", useUnit)}}, want: []string{CodeSensitiveGroupKey}},
	{name: "sum of sensitive is fine", out: &Table{Cols: []Column{agg("cost", useCost), {Name: "a", Kind: KindAnswer}}}},
	{name: "unknown kind", out: &Table{Cols: []Column{{Name: "x", Kind: "row"}}}, want: []string{CodeColumnKindUnknown}},

	// --- resident ID numbers ---
	{name: "id valid", out: strTable(idValid), want: []string{CodeResidentID}, contains: []string{`a resident ID number in column 0 "district": 1 of 1 rows, first row 0`}},
	{name: "id GB example with X", out: strTable(idGB), want: []string{CodeResidentID}},
	{name: "id lower-case x", out: strTable(strings.ToLower(idGB)), want: []string{CodeResidentID}},
	{name: "id full-width", out: strTable(fullWidth(idValid)), want: []string{CodeResidentID}},
	{name: "id full-width X", out: strTable(fullWidth(idGB)), want: []string{CodeResidentID}},
	{name: "id with spaces", out: strTable(idValid[:6] + " " + idValid[6:14] + " " + idValid[14:]), want: []string{CodeResidentID}},
	{name: "id embedded in text", out: strTable("身份证号：" + idGB + "，已核验"), want: []string{CodeResidentID}},
	{name: "id glued to letters", out: strTable("ID" + idValid + "END"), want: []string{CodeResidentID}},
	{name: "id window in a longer digit run", out: strTable("20230101" + idValid), want: []string{CodeResidentID}},
	{name: "id 17 digits", out: strTable(idValid[:17])},
	{name: "id wrong check digit", out: strTable(idBadCheck)},
	{name: "id 30 February", out: strTable(id30Feb)},
	{name: "id 19 digits, no valid window", out: strTable(notLuhn(idBadCheck))},
	{name: "id in column name", out: &Table{Cols: []Column{agg(idGB)}}, want: []string{CodeResidentID}, contains: []string{"a resident ID number in the name of column 0"}},
	{name: "dirty column name is not quoted", out: &Table{Cols: []Column{key("tel " + mobile)}, Data: [][]Value{{Str(idGB)}}}, want: []string{CodeMobile, CodeResidentID},
		contains: []string{"a resident ID number in column 0: 1 of 1 rows, first row 0"}},
	{name: "id in error message", out: errTable("ok", "value "+idGB+" is not a date"), want: []string{CodeResidentID},
		contains: []string{"a resident ID number in the error messages: 1 of 2, first message 1"}},
	{name: "id as int", out: numTable(Int(int64Of(idValid))), want: []string{CodeResidentID}},
	{name: "id as int, wrong check digit", out: numTable(Int(int64Of(idBadCheck)))},
	{name: "id as 17-digit int", out: numTable(Int(int64Of(idValid[:17]))), want: []string{CodeResidentID}},
	{name: "id as float (rounded)", out: numTable(Float(num(idValid))), want: []string{CodeResidentID}},
	{name: "id as float, wrong check digit (unknowable)", out: numTable(Float(num(idBadCheck))), want: []string{CodeResidentID}},
	{name: "id prefix as 17-digit float", out: numTable(Float(num(idValid[:17]))), want: []string{CodeResidentID}},
	{name: "18-digit float, no such region", out: numTable(Float(9.9e17))},
	{name: "18-digit float, no such date", out: numTable(Float(num(id30Feb)))},

	// --- unified social credit codes ---
	{name: "uscc GB example", out: strTable(usccGB), want: []string{CodeUSCC}},
	{name: "uscc built", out: strTable(usccValid), want: []string{CodeUSCC}},
	{name: "uscc lower case", out: strTable(strings.ToLower(usccValid)), want: []string{CodeUSCC}},
	{name: "uscc full-width", out: strTable(fullWidth(usccGB)), want: []string{CodeUSCC}},
	{name: "uscc embedded", out: strTable("统一社会信用代码:" + usccGB + "。"), want: []string{CodeUSCC}},
	{name: "uscc wrong check", out: strTable(usccGB[:17] + "4")},
	{name: "uscc letter I", out: strTable("91350100M000100I43")},
	{name: "uscc 17 chars", out: strTable(usccGB[:17])},
	{name: "uscc in error", out: errTable("enterprise " + usccValid + " not found"), want: []string{CodeUSCC}},

	// --- mobile numbers ---
	{name: "mobile", out: strTable(mobile), want: []string{CodeMobile}},
	{name: "mobile with spaces", out: strTable("138 1234 5678"), want: []string{CodeMobile}},
	{name: "mobile with hyphens", out: strTable("138-1234-5678"), want: []string{CodeMobile}},
	{name: "mobile with +86", out: strTable("+86 138 1234 5678"), want: []string{CodeMobile}},
	{name: "mobile with +86 glued", out: strTable("+86" + mobile), want: []string{CodeMobile}},
	{name: "mobile with 0086", out: strTable("0086" + mobile), want: []string{CodeMobile}},
	{name: "mobile full-width", out: strTable(fullWidth(mobile)), want: []string{CodeMobile}},
	{name: "mobile full-width separators", out: strTable("１３８－１２３４－５６７８"), want: []string{CodeMobile}},
	{name: "mobile embedded", out: strTable("客户" + mobile + "已注册"), want: []string{CodeMobile}},
	{name: "two mobiles apart", out: strTable(mobile + " 13912345678"), want: []string{CodeMobile}},
	{name: "mobile 10 digits", out: strTable("1381234567")},
	{name: "mobile 12 digits", out: strTable("138123456789")},
	{name: "mobile inside a longer run", out: strTable("9" + mobile + "9")},
	{name: "mobile second digit 2", out: strTable("12812345678")},
	{name: "mobile separators too long", out: strTable("138    1234    5678")},
	{name: "mobile in column name", out: &Table{Cols: []Column{agg("n_" + mobile)}}, want: []string{CodeMobile}},
	{name: "mobile as float", out: numTable(Float(13812345678)), want: []string{CodeMobile}},
	{name: "mobile as negative float", out: numTable(Float(-13812345678)), want: []string{CodeMobile}},
	{name: "mobile as int", out: numTable(Int(13812345678)), want: []string{CodeMobile}},
	{name: "mobile-sized non-integral float", out: numTable(Float(13812345678.5))},
	{name: "mobile-sized 1.38e10 float", out: numTable(Float(1.38e10)), want: []string{CodeMobile}},

	// --- bank cards ---
	{name: "card unionpay 19", out: strTable(cardUP19), want: []string{CodeBankCard}},
	{name: "card visa 16", out: strTable(cardVisa), want: []string{CodeBankCard}},
	{name: "card with spaces", out: strTable(cardUP19[:4] + " " + cardUP19[4:8] + " " + cardUP19[8:12] + " " + cardUP19[12:16] + " " + cardUP19[16:]), want: []string{CodeBankCard}},
	{name: "card full-width", out: strTable(fullWidth(cardVisa)), want: []string{CodeBankCard}},
	{name: "card embedded", out: strTable("卡号" + cardUP19 + "（借记卡）"), want: []string{CodeBankCard}},
	{name: "card wrong luhn", out: strTable("4111111111111112")},
	{name: "card 15 digits (amex)", out: strTable("378282246310005")},
	{name: "card no issuer prefix", out: strTable(withLuhn("111111111111111"))},
	{name: "card 20 digits", out: strTable(withLuhn("6212264000000000000"))},
	{name: "card as float", out: numTable(Float(num(cardUP16))), want: []string{CodeBankCard}},
	{name: "card as int", out: numTable(Int(int64Of(cardUP19))), want: []string{CodeBankCard}},
	{name: "card in error", out: errTable("card " + cardVisa + " declined"), want: []string{CodeBankCard}},

	// --- e-mail addresses ---
	{name: "email", out: strTable(email), want: []string{CodeEmail}},
	{name: "email embedded", out: strTable("联系 " + email + "。"), want: []string{CodeEmail}},
	{name: "email end of sentence", out: strTable("write to " + email + "."), want: []string{CodeEmail}},
	{name: "email full-width", out: strTable(fullWidth(email)), want: []string{CodeEmail}},
	{name: "email in error", out: errTable("user " + email + " unknown"), want: []string{CodeEmail}},
	{name: "email version string", out: strTable("pkg@1.2.3")},
	{name: "email single-label domain", out: strTable("root@localhost")},
	{name: "email handle", out: strTable("@zhangsan")},

	// --- several at once ---
	{name: "several kinds in one column", out: strTable(idGB, mobile, "Wuhua", mobile), want: []string{CodeResidentID, CodeMobile},
		contains: []string{`a mainland mobile number in column 0 "district": 2 of 4 rows, first row 1`}},

	// --- raw values ---
	{name: "raw whole value, case and spaces", out: strTable("  zhangsanfeng "), raw: true, want: []string{CodeRawValue},
		contains: []string{`a value of an identifier or sensitive input column in column 0 "district": 1 of 1 rows, first row 0`}},
	{name: "raw token in text", out: strTable("patient zhangsanfeng, ward 3"), raw: true, want: []string{CodeRawValue}},
	{name: "raw CJK value", out: strTable("糖尿病伴视网膜病变"), raw: true, want: []string{CodeRawValue}},
	{name: "raw value with separators", out: strTable("ACCT-0042-7781"), raw: true, want: []string{CodeRawValue}},
	{name: "raw phone written with separators", out: strTable("tel 138 1234 5678"), raw: true, want: []string{CodeMobile, CodeRawValue}},
	{name: "raw phone as integral float", out: numTable(Float(13812345678)), raw: true, want: []string{CodeMobile, CodeRawValue}},
	{name: "raw phone as 1.3812345678E10 string", out: strTable("1.3812345678E10"), raw: true, want: []string{CodeRawValue}},
	{name: "raw 11-digit integral aggregate", out: numTable(Float(12345678901)), raw: true, want: []string{CodeRawValue}},
	{name: "raw 11-digit int", out: numTable(Int(12345678901)), raw: true, want: []string{CodeRawValue}},
	{name: "raw amount equal by chance is not checked", out: numTable(Float(1234.5)), raw: true},
	{name: "raw 10-digit integral aggregate is not checked", out: numTable(Float(9876543210)), raw: true},
	{name: "raw amount in identifier column is checked", out: &Table{Cols: []Column{key("k", usePhoneKey)}, Data: [][]Value{{Float(1234.5)}}}, raw: true,
		want: []string{CodeIdentifierLineage, CodeRawValue}},
	{name: "raw short value never matches", out: strTable("AB", "ab"), raw: true},
	{name: "raw miss", out: strTable("zhangsanfenG2", "Wuhua"), raw: true},
	{name: "raw sensitive group key is left to lineage", out: &Table{Cols: []Column{key("diagnosis", useDiag)}, Data: [][]Value{{Str("糖尿病伴视网膜病变")}}}, raw: true,
		want: []string{CodeSensitiveGroupKey}},
	// What the applicant wrote is never looked up: the verdict would say whether a raw record
	// holds it (a membership oracle). Identifier formats are still scanned there.
	{name: "raw in error message is not looked up", out: errTable("no visits for ZhangSanFeng"), raw: true},
	{name: "raw in column name is not looked up", out: &Table{Cols: []Column{agg("zhangsanfeng")}, Data: [][]Value{{Float(1)}}}, raw: true},
	{name: "raw in a key the query wrote is not looked up", out: &Table{Cols: []Column{{Name: "k", Kind: KindGroupKey, DerivedFrom: []policy.ColumnUse{useDistrict}}},
		Data: [][]Value{{Str("ZhangSanFeng")}}}, raw: true},
	{name: "raw in a public-domain key is not looked up", out: &Table{Cols: []Column{{Name: "k", Kind: KindGroupKey, DerivedFrom: []policy.ColumnUse{useDistrict}, Origin: OriginPublic}},
		Data: [][]Value{{Str("ZhangSanFeng")}}}, raw: true},
	{name: "identifier in a key the query wrote is found", out: &Table{Cols: []Column{{Name: "k", Kind: KindGroupKey, DerivedFrom: []policy.ColumnUse{useDistrict}}},
		Data: [][]Value{{Str(mobile)}}}, raw: true, want: []string{CodeMobile}},

	// --- small groups ---
	{name: "small groups suppressed", out: &Table{Cols: []Column{key("district"), agg("n", useUnit)},
		Data:  [][]Value{{Str("a"), Float(30)}, {Str("b"), Float(3)}, {Str("c"), Float(math.NaN())}, {Str("d"), Float(20)}},
		Units: []float64{30, 3, math.NaN(), 20}}, limits: Limits{MinUnitsPerGroup: 20},
		want: []string{CodeSmallGroupsSuppressed}, suppressed: []int{1, 2},
		contains: []string{"2 of 4 rows stand for fewer privacy units than the minimum and are suppressed"}},
	{name: "no unit counts", out: &Table{Cols: []Column{{Name: "answer", Kind: KindAnswer}}, Data: [][]Value{{Int(1)}}}, limits: Limits{MinUnitsPerGroup: 20},
		want: []string{CodeUnitCountUnavailable}},
	{name: "unit counts do not match rows", out: &Table{Cols: []Column{agg("n")}, Data: [][]Value{{Float(1)}, {Float(2)}}, Units: []float64{50}},
		limits: Limits{MinUnitsPerGroup: 20}, want: []string{CodeReviewerFailed}, contains: []string{"the small_groups check could not run: the output's unit counts do not match its rows"}},
	{name: "no minimum, no suppression", out: &Table{Cols: []Column{agg("n")}, Data: [][]Value{{Float(1)}}, Units: []float64{1}}},

	// --- limits ---
	{name: "rows over limit", out: strTable("a", "b", "c"), limits: Limits{MaxRows: 2}, want: []string{CodeRowsOverLimit},
		contains: []string{"the output has 3 rows, over the limit of 2"}},
	{name: "cells over limit", out: &Table{Cols: []Column{key("district"), agg("n")}, Data: [][]Value{{Str("a"), Float(1)}, {Str("b"), Float(2)}}},
		limits: Limits{MaxRows: 2, MaxCells: 3}, want: []string{CodeCellsOverLimit}},
	{name: "bytes over limit", out: &Table{Cols: []Column{agg("n")}, Size: 2048}, limits: Limits{MaxBytes: 1024}, want: []string{CodeBytesOverLimit}},
	{name: "all limits at once", out: &Table{Cols: []Column{key("district"), agg("n")}, Data: [][]Value{{Str("a"), Float(1)}, {Str("b"), Float(2)}}, Size: 99},
		limits: Limits{MaxRows: 1, MaxCells: 1, MaxBytes: 1}, want: []string{CodeRowsOverLimit, CodeCellsOverLimit, CodeBytesOverLimit}},

	// --- failing closed ---
	{name: "nil output", out: nil, want: []string{CodeReviewerFailed}, contains: []string{"the output check could not run: there is no output"}},
	{name: "cells panic", out: panicky{Table: strTable("a"), cell: true}, raw: true, want: []string{CodeReviewerFailed, CodeReviewerFailed},
		contains: []string{"the identifiers check failed unexpectedly", "the raw_values check failed unexpectedly"}},
	{name: "columns panic", out: panicky{Table: strTable("a"), columns: true}, want: []string{CodeReviewerFailed}},
	{name: "negative size", out: negBytes{&Table{Cols: []Column{agg("n")}}}, want: []string{CodeReviewerFailed}},
	{name: "negative rows", out: negRows{&Table{}}, want: []string{CodeReviewerFailed}},
}

// panicky is an Output whose methods panic, with a data value in the panic.
type panicky struct {
	*Table
	cell, columns bool
}

func (p panicky) Cell(row, col int) Value {
	if p.cell {
		panic("cell holds " + idGB)
	}
	return p.Table.Cell(row, col)
}

func (p panicky) Columns() []Column {
	if p.columns {
		panic("columns")
	}
	return p.Table.Columns()
}

type negRows struct{ *Table }

type negBytes struct{ *Table }

func (negBytes) Bytes() int { return -1 }

// notLuhn appends a digit that makes s fail the Luhn check (so that a near miss is not
// reported as a card number by chance).
func notLuhn(s string) string {
	for d := '0'; d <= '9'; d++ {
		if !pii.LuhnValid(s + string(d)) {
			return s + string(d)
		}
	}
	panic("unreachable")
}

func (negRows) Rows() int { return -1 }

func rawSet(tb testing.TB) *rawset.HashSet {
	s, err := rawset.BuildHashSet(testKey, slices.Values(rawValues))
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

func newScreener(tb testing.TB, l Limits, raw bool) *Screener {
	opts := []Option{WithLimits(l)}
	if raw {
		k, err := rawset.NewKeyer(testKey)
		if err != nil {
			tb.Fatal(err)
		}
		opts = append(opts, WithRawValues(k, rawSet(tb)))
	}
	r, err := New(opts...)
	if err != nil {
		tb.Fatal(err)
	}
	return r
}

func codes(fs []policy.Finding) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.Code)
	}
	slices.Sort(out)
	return out
}

func TestScreen(t *testing.T) {
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rev := newScreener(t, c.limits, c.raw).Screen(context.Background(), c.out)
			want := slices.Clone(c.want)
			slices.Sort(want)
			if got := codes(rev.Findings); !slices.Equal(got, want) {
				t.Errorf("codes = %v, want %v\nfindings: %+v", got, want, rev.Findings)
			}
			if !slices.Equal(rev.Suppressed, c.suppressed) {
				t.Errorf("suppressed = %v, want %v", rev.Suppressed, c.suppressed)
			}
			for _, s := range c.contains {
				if !slices.ContainsFunc(rev.Findings, func(f policy.Finding) bool { return strings.Contains(f.Message, s) }) {
					t.Errorf("no message contains %q: %+v", s, rev.Findings)
				}
			}
			if rev.Findings == nil {
				t.Error("Findings is nil; the policy must see []")
			}
			checkFindings(t, rev, c.out, caseValues(c.out))
		})
	}
}

// caseValues returns the strings an output would release: cells, names and errors.
func caseValues(out Output) []string {
	defer func() { recover() }() // a panicking output releases nothing
	var vals []string
	if out == nil {
		return nil
	}
	cols := out.Columns()
	for _, c := range cols {
		vals = append(vals, c.Name)
	}
	for r := 0; r < out.Rows(); r++ {
		for c := range cols {
			v := out.Cell(r, c)
			switch v.Type {
			case TypeString:
				vals = append(vals, v.Str)
			case TypeFloat:
				vals = append(vals, rawset.CanonicalNumber(v.Float))
			case TypeInt:
				vals = append(vals, strconv.FormatInt(v.Int, 10))
			}
		}
	}
	return append(vals, out.Errors()...)
}
