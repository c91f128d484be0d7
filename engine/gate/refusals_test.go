package gate_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/c1b99f93/cleanroom/engine/gate"
	"github.com/c1b99f93/cleanroom/errcode"
)

// mistakes are ordinary analyst mistakes and the refusal each should get: its code, and a
// phrase of the one hint it should carry. The same list feeds testdata/refusals.golden.
var mistakes = []struct {
	name string
	sql  string
	code errcode.Code
	hint string // a phrase the message must contain
}{
	{"misspelt dataset", "SELECT COUNT(*) FROM medical_visit", errcode.UnknownDataset, `did you mean "medical_visits"?`},
	{"dataset in another case", "SELECT COUNT(*) FROM Medical_Visits", errcode.UnknownDataset, `did you mean "medical_visits"?`},
	{"unrelated dataset", "SELECT COUNT(*) FROM secret_table", errcode.UnknownDataset, "is registered"},
	{"misspelt column", "SELECT COUNT(*) FROM medical_visits WHERE dignosis = 'J45'", errcode.UnknownColumn, `did you mean "diagnosis"?`},
	{"transposed column", "SELECT COUNT(*) FROM medical_visits WHERE csot > 10", errcode.UnknownColumn, `did you mean "cost"?`},
	{"column of a dataset not in scope", "SELECT COUNT(*) FROM medical_visits WHERE gendr = 'F'", errcode.UnknownColumn, `has no column "gendr"`},
	{"misspelt qualifier", "SELECT COUNT(*) FROM medical_visits v JOIN residents r ON v.person_id = r.person_id WHERE rr.gender = 'F'", errcode.UnknownColumn, `did you mean "r"?`},
	{"misspelt output in ORDER BY", "SELECT district, COUNT(*) AS visits FROM medical_visits GROUP BY district ORDER BY vists DESC", errcode.UnknownColumn, `did you mean "visits"?`},
	{"misspelt aggregate", "SELECT cout(*) FROM medical_visits", errcode.UnsupportedSQL, "did you mean count?"},
	{"misspelt function", "SELECT COUNT(*) FROM medical_visits WHERE lenght(diagnosis) > 3", errcode.UnsupportedSQL, "did you mean length?"},
	{"function outside the list", "SELECT COUNT(*) FROM medical_visits WHERE md5(diagnosis) = 'x'", errcode.UnsupportedSQL, "the admitted functions are"},
	{"aggregate in WHERE", "SELECT COUNT(*) FROM medical_visits WHERE SUM(cost) > 10", errcode.UnsupportedSQL, "select item of its own"},
	{"misspelt SELECT", "SELEC COUNT(*) FROM medical_visits", errcode.SyntaxError, "did you mean SELECT?"},
	{"misspelt FROM", "SELECT COUNT(*) FORM medical_visits", errcode.SyntaxError, "did you mean FROM?"},
	{"misspelt WHERE", "SELECT COUNT(*) FROM medical_visits WHER cost > 1", errcode.SyntaxError, "did you mean WHERE?"},
	{"GROUP without BY", "SELECT district, COUNT(*) FROM medical_visits GROUP district", errcode.SyntaxError, "write GROUP BY"},
	{"unclosed parenthesis", "SELECT COUNT(*) FROM medical_visits WHERE (cost > 1", errcode.SyntaxError, "a parenthesis is not closed"},
	{"unclosed string", "SELECT COUNT(*) FROM medical_visits WHERE diagnosis = 'J4", errcode.SyntaxError, "a string literal is not closed"},
	{"query ends early", "SELECT COUNT(*) FROM medical_visits WHERE", errcode.SyntaxError, `stops after "WHERE"`},
	{"two literals in a row", "SELECT COUNT(*) FROM medical_visits WHERE diagnosis = 'Zhang San' 'x'", errcode.SyntaxError, "at a string literal"},
	{"LAG over raw rows", "SELECT person_id, LAG(cost) OVER (PARTITION BY person_id ORDER BY visit_date) AS prev FROM medical_visits", errcode.UnsupportedSQL, "per-unit subquery"},
	{"ROW_NUMBER in a subquery", "SELECT COUNT(*) FROM (SELECT person_id, ROW_NUMBER() OVER (PARTITION BY person_id ORDER BY visit_date) AS rn FROM medical_visits) t WHERE rn = 1", errcode.UnsupportedSQL, "GROUP BY person_id"},
	{"ROW_NUMBER over a raw column", "SELECT district, ROW_NUMBER() OVER (ORDER BY cost DESC) AS r, COUNT(*) FROM medical_visits GROUP BY district", errcode.UnsupportedSQL, "ORDER BY an output column and LIMIT n"},
	{"COUNT OVER ()", "SELECT COUNT(*) OVER () FROM medical_visits", errcode.UnsupportedSQL, "drop OVER"},
	{"SUM OVER PARTITION", "SELECT SUM(cost) OVER (PARTITION BY district) FROM medical_visits", errcode.UnsupportedSQL, "GROUP BY the PARTITION BY columns"},
	{"WITH as a view", "WITH x AS (SELECT district, cost FROM medical_visits WHERE cost > 10) SELECT district, COUNT(*) FROM x GROUP BY district", errcode.UnsupportedSQL, "query medical_visits directly"},
	{"WITH grouped by another key", "WITH x AS (SELECT district, COUNT(*) AS n FROM medical_visits GROUP BY district) SELECT SUM(n) FROM x", errcode.UnsupportedSQL, "must group by the privacy unit (GROUP BY person_id"},
	{"subquery as a view", "SELECT COUNT(*) FROM (SELECT * FROM medical_visits WHERE inpatient) t", errcode.UnsupportedSQL, "query medical_visits directly"},
	{"HAVING an aggregate not selected", "SELECT district, COUNT(*) FROM medical_visits GROUP BY district HAVING SUM(cost) > 5", errcode.UnsupportedSQL, "add this SUM to the select list"},
	{"HAVING in a per-unit subquery", "SELECT AVG(n) FROM (SELECT person_id, LEAST(COUNT(*), 9) AS n FROM medical_visits GROUP BY person_id HAVING COUNT(*) > 1) t", errcode.UnsupportedSQL, "filter its per-unit values in the outer WHERE"},
	{"arithmetic on a raw column", "SELECT district, COUNT(*) * cost FROM medical_visits GROUP BY district", errcode.RawColumnInOutput, "aggregates and GROUP BY keys only"},
	{"WITH over a DP query grouped again", "WITH t AS (SELECT district, COUNT(*) AS n FROM medical_visits GROUP BY district) SELECT n, COUNT(*) FROM t GROUP BY n", errcode.UnsupportedSQL, "cannot"},
	{"unbounded expression aggregated", "SELECT SUM(length(diagnosis)) FROM medical_visits", errcode.MissingBounds, "CASE WHEN … THEN 1 ELSE 0 END"},
	{"aggregate FILTER", "SELECT COUNT(*) FILTER (WHERE cost > 1) FROM medical_visits", errcode.UnsupportedSQL, "put the condition in WHERE"},
	{"raw column", "SELECT cost FROM medical_visits", errcode.RawColumnInOutput, "group by it or aggregate it"},
	{"COPY", "COPY medical_visits TO '/tmp/out.csv'", errcode.UnsupportedSQL, "only a single SELECT statement"},
	{"SELECT * for a first look", "SELECT * FROM medical_visits LIMIT 10", errcode.IdentifierInOutput, "e.g. SELECT age_band, COUNT(*) FROM medical_visits GROUP BY age_band"},
	{"a value per person as a window", "SELECT visit_id, SUM(cost) OVER (PARTITION BY person_id) AS total FROM medical_visits", errcode.UnsupportedSQL, "FROM (SELECT person_id, SUM(col) AS v FROM … GROUP BY person_id) AS t"},
	{"distinct count of an expression of an identifier", "SELECT COUNT(DISTINCT substr(visit_id, 1, 4)) FROM medical_visits", errcode.IdentifierInOutput, "count units with COUNT(DISTINCT"},
	{"distinct count of an identifier", "SELECT COUNT(DISTINCT visit_id) FROM medical_visits", errcode.UnsupportedSQL, "with COUNT(visit_id)"},
	{"subquery in WHERE", "SELECT COUNT(*) FROM medical_visits WHERE cost > (SELECT AVG(cost) FROM medical_visits)", errcode.UnsupportedSQL, "write its released value here as a constant"},
	{"per-unit sum of an unbounded column", "SELECT AVG(total) FROM (SELECT person_id, SUM(diagnosis) AS total FROM medical_visits GROUP BY person_id) t", errcode.MissingBounds, "clamp it in the subquery"},
}

// maxMessage bounds a refusal's message: one hint, not the grammar.
const maxMessage = 400

// quoted finds the string literals of a query.
var quoted = regexp.MustCompile(`'(?:[^']|'')*'`)

func TestRefusalsTeachOneHint(t *testing.T) {
	p := newParser(t)
	for _, m := range mistakes {
		t.Run(m.name, func(t *testing.T) {
			_, err := gate.Admit(context.Background(), p, testCatalog(), m.sql)
			if got := errcode.Of(err); got != m.code {
				t.Fatalf("code = %q (%v), want %q", got, err, m.code)
			}
			msg := errcode.Public(err).Message
			if !strings.Contains(msg, m.hint) {
				t.Errorf("message %q lacks the hint %q", msg, m.hint)
			}
			if len(msg) > maxMessage {
				t.Errorf("message is %d bytes long (> %d): %q", len(msg), maxMessage, msg)
			}
			for _, grammar := range []string{"admitted: SELECT <group keys>", "syntax error at or near", "Parser Error"} {
				if strings.Contains(msg, grammar) {
					t.Errorf("message %q carries %q", msg, grammar)
				}
			}
			for _, lit := range quoted.FindAllString(m.sql, -1) {
				if inner := strings.Trim(lit, "'"); len(inner) > 1 && strings.Contains(msg, inner) {
					t.Errorf("message %q shows the literal %s of the query", msg, lit)
				}
			}
		})
	}
}

// A suggestion names only what the query may read: never a column of a dataset it does not
// read, even when that column is the closer name.
func TestSuggestionsStayInScope(t *testing.T) {
	p := newParser(t)
	for _, q := range []string{
		"SELECT COUNT(*) FROM medical_visits WHERE mobil = 'x'",  // residents.mobile
		"SELECT COUNT(*) FROM medical_visits WHERE gender = 'F'", // residents.gender
		"SELECT COUNT(*) FROM medical_visits WHERE usc = 'x'",    // enterprises.uscc
		"SELECT COUNT(*) FROM districts d WHERE nam = 'x'",       // refused before: lookup table alone
		"SELECT SUM(n) FROM (SELECT person_id, COUNT(*) AS n FROM medical_visits GROUP BY person_id) t WHERE cst > 1",
	} {
		_, err := gate.Admit(context.Background(), p, testCatalog(), q)
		msg := errcode.Public(err).Message
		for _, out := range []string{`"mobile"`, `"gender"`, `"uscc"`, `"name"`, `"cost"`} {
			if strings.Contains(msg, "did you mean "+out) {
				t.Errorf("%s: %q suggests %s, a column out of scope", q, msg, out)
			}
		}
	}
}

// TestRefusalGolden pins the refusal messages of the ordinary mistakes; review their diffs like
// code (go test -run TestRefusalGolden -rewrite).
func TestRefusalGolden(t *testing.T) {
	p := newParser(t)
	var b strings.Builder
	for _, m := range mistakes {
		_, err := gate.Admit(context.Background(), p, testCatalog(), m.sql)
		pub := errcode.Public(err)
		at := "-"
		if pub.Position != nil {
			at = fmt.Sprint(*pub.Position)
		}
		fmt.Fprintf(&b, "# %s\n%s\n----\n%s at %s\n%s\n\n", m.name, m.sql, pub.Code, at, pub.Message)
	}
	path := filepath.Join("testdata", "refusals.golden")
	if *rewrite {
		if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run TestRefusalGolden -rewrite)", err)
	}
	if b.String() != string(want) {
		t.Fatalf("refusals differ from %s (review, then -rewrite):\n%s", path, b.String())
	}
}

// Positions are byte offsets into the SQL, also after multi-byte text (the CLI's caret relies
// on it).
func TestRefusalPositionIsAByteOffset(t *testing.T) {
	q := "SELECT COUNT(*) FROM medical_visits WHERE diagnosis = '哮喘' AND salary > 1"
	_, err := gate.Admit(context.Background(), newParser(t), testCatalog(), q)
	pub := errcode.Public(err)
	if pub.Position == nil || !strings.HasPrefix(q[*pub.Position:], "salary") {
		t.Fatalf("position = %v, want the byte offset of salary", pub.Position)
	}
	q = "SELECT COUNT(*) FROM medical_visits WHERE diagnosis = '哮喘' FORM"
	_, err = gate.Admit(context.Background(), newParser(t), testCatalog(), q)
	pub = errcode.Public(err)
	if pub.Position == nil || !strings.HasPrefix(q[*pub.Position:], "FORM") {
		t.Fatalf("syntax error position = %d (%v), want the byte offset of FORM", *pub.Position, err)
	}
}
