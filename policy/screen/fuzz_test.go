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

// fuzzOutput puts the fuzzed values into a fixed output: the string in a group key, in a
// parameter and in an error message, the error text in a cell and a message, the numbers in
// an aggregate, an answer and the unit counts.
func fuzzOutput(s, e string, x float64, i int64) *Table {
	return &Table{
		Cols: []Column{
			key("district"),
			{Name: "label", Kind: KindParameter},
			agg("total", useCost),
			{Name: "answer", Kind: KindAnswer},
		},
		Data: [][]Value{
			{Str(s), Str(e), Float(x), Int(i)},
			{Str("Wuhua"), Str(s + " " + e), Float(-x), Int(i / 7)},
		},
		Units: []float64{x, 25},
		Errs:  []string{e, "row " + s},
	}
}

// FuzzScreen: any strings and numbers are reviewed without a check failing; every finding
// has a known code, its severity and a message of a known shape with no scanned value of six
// or more characters; and a string that is by itself a valid identifier is always reported.
func FuzzScreen(f *testing.F) {
	for _, c := range cases {
		vals := caseValues(c.out)
		for _, v := range vals {
			f.Add(v, "no such district", 1523.4, int64(7))
		}
		var x float64
		var i int64
		if t, ok := c.out.(*Table); ok && len(t.Data) > 0 && len(t.Data[0]) > 0 {
			x, i = t.Data[0][0].Float, t.Data[0][0].Int
		}
		f.Add("Wuhua", strings.Join(vals, " "), x, i)
	}
	k, err := rawset.NewKeyer(testKey)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, s, e string, x float64, i int64) {
		raw := k.NewHashSet(k.AppendRawHashes(k.AppendRawHashes(nil, e), "ZhangSanFeng"))
		r, err := New(WithLimits(Limits{MaxRows: 1000, MaxCells: 1000, MinUnitsPerGroup: 20}), WithRawValues(k, raw))
		if err != nil {
			t.Fatal(err)
		}
		out := fuzzOutput(s, e, x, i)
		rev := r.Screen(context.Background(), out)
		for _, fd := range rev.Findings {
			if fd.Code == CodeReviewerFailed {
				t.Fatalf("a check failed on a well-formed output: %+v", fd)
			}
		}
		scanned := []string{s, e, s + " " + e, "row " + s, rawset.CanonicalNumber(x), rawset.CanonicalNumber(-x), strconv.FormatInt(i, 10)}
		checkFindings(t, rev, out, scanned)
		for _, n := range rev.Suppressed {
			if n < 0 || n >= 2 {
				t.Fatalf("suppressed row %d of 2", n)
			}
		}
		if !(x >= 20) != slices.Contains(rev.Suppressed, 0) {
			t.Fatalf("unit count %v: suppressed %v", x, rev.Suppressed)
		}
		has := func(code string) bool {
			return slices.ContainsFunc(rev.Findings, func(f policy.Finding) bool { return f.Code == code })
		}
		for _, want := range []struct {
			valid bool
			code  string
		}{
			{pii.ValidResidentID(s), CodeResidentID},
			{pii.ValidUSCC(s), CodeUSCC},
			{pii.ValidMobile(s), CodeMobile},
			{pii.ValidBankCard(s), CodeBankCard},
			{pii.ValidEmail(s), CodeEmail},
			{x == math.Trunc(x) && math.Abs(x) < 1e11 && math.Abs(x) >= 1e10 && pii.ValidMobile(strconv.FormatFloat(math.Abs(x), 'f', 0, 64)), CodeMobile},
		} {
			if want.valid && !has(want.code) {
				t.Fatalf("valid identifier not reported as %s: findings %+v", want.code, rev.Findings)
			}
		}
	})
}
