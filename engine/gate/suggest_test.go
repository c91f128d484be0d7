package gate

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/c1b99f93/cleanroom/errcode"
)

func TestSuggestPicksOneCloseName(t *testing.T) {
	names := []string{"medical_visits", "residents", "insurance_claims", "districts"}
	for _, tc := range []struct{ name, want string }{
		{"medical_visit", "medical_visits"},
		{"medcial_visits", "medical_visits"}, // a transposition is one edit
		{"MEDICAL_VISITS", "medical_visits"}, // case alone
		{"resident", "residents"},
		{"residents", ""}, // the name itself is no suggestion
		{"visits", ""},    // too far
		{"", ""},
		{"x", ""},
		{strings.Repeat("a", maxSuggestLen+1), ""},
	} {
		if got := Suggest(tc.name, names); got != tc.want {
			t.Errorf("Suggest(%q) = %q, want %q", tc.name, got, tc.want)
		}
	}
	if got := Suggest("WHER", clauseKeywords); got != "WHERE" {
		t.Errorf("Suggest(WHER) = %q, want WHERE (the longer common prefix breaks the tie with WHEN)", got)
	}
	if got := Suggest("md5", functionNames()); got != "" {
		t.Errorf("Suggest(md5) = %q, want none", got)
	}
}

func TestDistanceIsOptimalStringAlignment(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"", "", 0}, {"a", "", 1}, {"", "abc", 3}, {"form", "from", 1}, {"kitten", "sitting", 3},
		{"ca", "abc", 3}, {"病历", "病例", 1},
	} {
		if got := distance(tc.a, tc.b); got != tc.want {
			t.Errorf("distance(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}

// syntaxSeeds are SQL texts with a syntax error, for the fuzz target's corpus.
var syntaxSeeds = []string{
	"SELEC COUNT(*) FROM medical_visits", "SELECT COUNT(*) FORM medical_visits", "SELECT 'a", `SELECT "a`,
	"SELECT (((", "", "  ", "-- only a comment", "/* open", "SELECT 'it''s", "SELECT 1e+", "SELECT é", "\xff\xfe",
	"SELECT COUNT(*) FROM t WHERE x = '13812345678' '1'", "SELECT COUNT(*) FROM t GROUP x",
}

func FuzzSuggest(f *testing.F) {
	for _, s := range syntaxSeeds {
		f.Add(s, "medical_visits")
	}
	f.Fuzz(func(t *testing.T, name, candidate string) {
		got := Suggest(name, []string{candidate, "medical_visits", "count", name})
		if got != "" && got != candidate && got != "medical_visits" && got != "count" {
			t.Fatalf("Suggest(%q) = %q, not a candidate", name, got)
		}
		if got != "" && got == name {
			t.Fatalf("Suggest(%q) suggested the name itself", name)
		}
		if d := distance(name, candidate); d < 0 || d > max(utf8.RuneCountInString(name), utf8.RuneCountInString(candidate)) {
			t.Fatalf("distance(%q, %q) = %d", name, candidate, d)
		}
	})
}

// FuzzSyntaxError: any text and position give a syntax_error whose message is bounded and
// quotes no string literal or number of the SQL.
func FuzzSyntaxError(f *testing.F) {
	for _, s := range syntaxSeeds {
		f.Add(s, len(s)/2, "syntax error at or near")
		f.Add(s, len(s), "syntax error at end of input")
	}
	f.Fuzz(func(t *testing.T, sql string, at int, duckMsg string) {
		err := syntaxError(sql, at, duckMsg)
		if errcode.Of(err) != errcode.SyntaxError {
			t.Fatalf("code %q", errcode.Of(err))
		}
		msg := errcode.Public(err).Message
		if len(msg) > 400 {
			t.Fatalf("message of %d bytes: %q", len(msg), msg)
		}
		if strings.Contains(msg, duckMsg) && len(duckMsg) > 12 {
			t.Fatalf("message %q repeats the parser's message", msg)
		}
		for _, tok := range tokenize(sql) {
			text := sql[tok.start:tok.end]
			if (tok.kind == tokString || tok.kind == tokNumber || tok.kind == tokQuoted) && len(text) > 3 && strings.Contains(msg, text) {
				t.Fatalf("message %q shows the literal %q", msg, text)
			}
		}
	})
}
