package screen

import (
	"context"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/c1b99f93/cleanroom/policy"
	"github.com/c1b99f93/cleanroom/rawset"
)

// chosenPlaces are the kinds of string an applicant chooses in an output: each builds an
// output that carries s there (beside ordinary data-derived cells).
var chosenPlaces = []struct {
	name  string
	build func(s string) Output
}{
	{"alias of an aggregate", func(s string) Output {
		return &Table{Cols: []Column{key("district"), agg(s, useUnit)}, Data: [][]Value{{Str("Wuhua"), Float(120)}}}
	}},
	{"alias of a group key", func(s string) Output {
		c := key(s)
		return &Table{Cols: []Column{c, agg("n", useUnit)}, Data: [][]Value{{Str("Wuhua"), Float(120)}}}
	}},
	{"name derived from an alias", func(s string) Output {
		return &Table{Cols: []Column{agg("count_" + s), agg("count_" + s + "_ci_low"), agg("count_" + s + "_ci_high")}, Data: [][]Value{{Float(3), Float(1), Float(5)}}}
	}},
	{"literal in a public-domain key", func(s string) Output {
		c := Column{Name: "k", Kind: KindGroupKey, DerivedFrom: []policy.ColumnUse{useDistrict}, Origin: OriginPublic}
		return &Table{Cols: []Column{c, agg("n", useUnit)}, Data: [][]Value{{Str(s), Float(0.7)}, {Str("other"), Float(210)}}}
	}},
	{"literal in a partition-selected key", func(s string) Output {
		c := Column{Name: "k", Kind: KindGroupKey, DerivedFrom: []policy.ColumnUse{useDistrict}, Origin: OriginQuery}
		return &Table{Cols: []Column{c, agg("n", useUnit)}, Data: [][]Value{{Str(s), Float(130)}}}
	}},
	{"literal among data values of one key", func(s string) Output {
		c := Column{Name: "k", Kind: KindGroupKey, DerivedFrom: []policy.ColumnUse{useDistrict}, Origin: OriginQuery}
		return &Table{Cols: []Column{c, agg("n", useUnit)}, Data: [][]Value{{Str("Wuhua"), Float(130)}, {Str(s), Float(90)}}}
	}},
	{"text in an error message", func(s string) Output {
		return &Table{Cols: []Column{agg("n", useUnit)}, Data: [][]Value{{Float(1)}}, Errs: []string{"unknown column " + s}}
	}},
}

// randomName draws a string of the kind an attacker would try: a name in Latin or Chinese
// script, digits (an account or phone-like number), or a mix, 1 to 20 characters.
func randomName(r *rand.Rand) string {
	alphabets := []string{"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ", "张王李赵欧阳修远三丰伟芳", "0123456789", "aZ09 -张."}
	a := []rune(alphabets[r.IntN(len(alphabets))])
	n := 1 + r.IntN(20)
	var b strings.Builder
	for range n {
		b.WriteRune(a[r.IntN(len(a))])
	}
	return b.String()
}

// No verdict on an applicant-chosen string depends on the raw data: for every kind of place
// an applicant writes a string into (an alias, a name derived from one, a literal key of a
// public domain or of a partition-selected key, an error message), the review of the output
// is the same whether the raw-value set holds the string (a resident of that name exists) or
// not (the neighbouring dataset without that resident). A membership test through the
// reviewer is therefore impossible.
func TestNoVerdictOnAnApplicantChosenStringDependsOnTheRawData(t *testing.T) {
	k, err := rawset.NewKeyer(testKey)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(13, 2))
	for i := range 300 {
		x := randomName(r)
		if i < len(rawValues) {
			x = rawValues[i] // the fixed corpus's raw values are tried too
		}
		others := slices.DeleteFunc(slices.Clone(rawValues), func(v string) bool { return v == x })
		without, err := rawset.BuildHashSet(testKey, slices.Values(others))
		if err != nil {
			t.Fatal(err)
		}
		with, err := rawset.BuildHashSet(testKey, slices.Values(append(others, x)))
		if err != nil {
			t.Fatal(err)
		}
		revWith, err := New(WithRawValues(k, with))
		if err != nil {
			t.Fatal(err)
		}
		revWithout, err := New(WithRawValues(k, without))
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range chosenPlaces {
			a := revWith.Screen(context.Background(), p.build(x))
			b := revWithout.Screen(context.Background(), p.build(x))
			if !reflect.DeepEqual(a, b) {
				t.Fatalf("%s %q: the verdict depends on whether the raw data holds it:\nwith:    %+v\nwithout: %+v", p.name, x, a.Findings, b.Findings)
			}
		}
	}
}

// The rule does not switch the scan off: the same string as a value that came from the data
// (a partition-selected column's key, OriginData) is looked up and found.
func TestDataDerivedKeysAreStillLookedUp(t *testing.T) {
	out := &Table{Cols: []Column{key("k"), agg("n", useUnit)}, Data: [][]Value{{Str("ZhangSanFeng"), Float(130)}}}
	rev := newScreener(t, Limits{}, true).Screen(context.Background(), out)
	if got := codes(rev.Findings); !slices.Equal(got, []string{CodeRawValue}) {
		t.Fatalf("codes = %v, want %s", got, CodeRawValue)
	}
}
