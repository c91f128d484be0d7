package engine_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/c1b99f93/cleanroom/catalog"
	"github.com/c1b99f93/cleanroom/engine"
	"github.com/c1b99f93/cleanroom/engine/plan"
	"github.com/c1b99f93/cleanroom/errcode"
)

// The totality property (DESIGN §5, sandbox/total.go): a job's outcome — released, failed,
// refused, and with which code — is the same on two datasets that differ in one unit, whatever
// expression the applicant writes. The attack it pins: an expression that fails only on rows
// matching a predicate (an overflow, abs of the smallest integer, a date part read from the
// data) ended the job as failed exactly when some row matched, a noise-free answer.
//
// twinEngines registers the "trial" dataset twice: without, and with, one extra unit whose one
// row alone satisfies the trigger predicate (code = 'TRIG'). Every failing sub-expression below
// fails on that row only, so before the fix every such query failed on the second engine alone.

const trigger = `code = 'TRIG'`

// trialCSV writes persons 1..n, one to three rows each, and, with extra, the trigger person.
func trialCSV(t testing.TB, dir string, n int, extra bool) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("person_id,district,code,n,cost,visit_date\n")
	for i := 1; i <= n; i++ {
		for r := 0; r <= i%3; r++ {
			fmt.Fprintf(&b, "P%05d,%s,C%d,%d,%d,2024-0%d-1%d\n", i, []string{"A", "B", "C"}[i%3], i%7, 1+i%5, 50+i%200, 1+r, i%9)
		}
	}
	if extra {
		b.WriteString("P99999,A,TRIG,3,120,2024-03-15\n")
	}
	path := filepath.Join(dir, fmt.Sprintf("trial-%v.csv", extra))
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func trialSpec(name, path string) *catalog.Spec {
	return &catalog.Spec{Name: name, Provider: "health-commission", Grade: catalog.GradeL2, PrivacyUnit: "person_id",
		Source: catalog.Source{Kind: catalog.SourceCSV, Path: path}, Budget: catalog.Budget{Epsilon: 1000, Delta: 1e-3},
		Columns: map[string]catalog.Column{
			"person_id":  {Tags: []catalog.Tag{catalog.TagIdentifier}},
			"district":   {Tags: []catalog.Tag{catalog.TagQuasiIdentifier}, Domain: []string{"A", "B", "C"}},
			"code":       {Tags: []catalog.Tag{catalog.TagAttribute}},
			"n":          {Tags: []catalog.Tag{catalog.TagAttribute}, Bounds: []float64{0, 10}},
			"cost":       {Tags: []catalog.Tag{catalog.TagSensitive}, Bounds: []float64{0, 1000}},
			"visit_date": {Tags: []catalog.Tag{catalog.TagAttribute}},
		}}
}

// twinEngines opens two engines: [0] on the trial data, [1] on the same data plus the trigger
// person. Each also has "regs", a second dataset with the same units, for joins.
func twinEngines(t testing.TB) [2]*engine.Engine {
	t.Helper()
	dir := t.TempDir()
	var out [2]*engine.Engine
	for i, extra := range []bool{false, true} {
		e := openEngineWithoutDifferencing(t)
		path := trialCSV(t, dir, 60, extra)
		register(t, e, trialSpec("trial", path))
		// regs: the same persons and one more (other data: one budget per data refuses a copy).
		regs := strings.Replace(path, ".csv", "-regs.csv", 1)
		copyFile(t, path, regs)
		f, err := os.OpenFile(regs, os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteString("P88888,B,C1,1,10,2024-01-01\n"); err != nil {
			t.Fatal(err)
		}
		f.Close()
		register(t, e, trialSpec("regs", regs))
		grant(t, e, "g", 1e6)
		out[i] = e
	}
	return out
}

func copyFile(t testing.TB, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// failing are expressions that raise an error on the trigger row only (given p, a condition
// true on that row alone, and the columns of the trial dataset under prefix q).
var failing = []func(p, q string) string{
	// BIGINT overflow
	func(p, q string) string {
		return fmt.Sprintf("CASE WHEN %s THEN 9223372036854775807 + %sn ELSE 0 END", p, q)
	},
	// multiplication overflow
	func(p, q string) string {
		return fmt.Sprintf("(%sn * CASE WHEN %s THEN 9223372036854775807 ELSE 1 END)", q, p)
	},
	// abs of the smallest BIGINT
	func(p, q string) string {
		return fmt.Sprintf("abs(CASE WHEN %s THEN -9223372036854775807 - %sn ELSE %sn END)", p, q, q)
	},
	// subtraction underflow
	func(p, q string) string {
		return fmt.Sprintf("(CASE WHEN %s THEN -9223372036854775807 ELSE 0 END - %sn)", p, q)
	},
	// an invalid date part read from the data
	func(p, q string) string {
		return fmt.Sprintf("date_part(CASE WHEN %s THEN %scode ELSE 'year' END, %svisit_date)", p, q, q)
	},
	// an invalid date_trunc part, compared as a date
	func(p, q string) string {
		return fmt.Sprintf("year(date_trunc(CASE WHEN %s THEN %scode ELSE 'month' END, %svisit_date))", p, q, q)
	},
	// date arithmetic out of range
	func(p, q string) string {
		return fmt.Sprintf("year(%svisit_date + to_days(CASE WHEN %s THEN 2147483647 ELSE 0 END))", q, p)
	},
	// interval out of range
	func(p, q string) string {
		return fmt.Sprintf("year(%svisit_date + to_years(CASE WHEN %s THEN 2147483647 ELSE 0 END))", q, p)
	},
	// 32-bit overflow after a cast
	func(p, q string) string {
		return fmt.Sprintf("(CAST(%sn AS INTEGER) * CASE WHEN %s THEN 2147483647 ELSE 1 END)", q, p)
	},
}

// wrap nests a numeric expression e in admitted functions and operators, depth levels deep.
func wrap(r *rand.Rand, e string, depth int) string {
	for range depth {
		switch r.IntN(9) {
		case 0:
			e = "coalesce(" + e + ", 0)"
		case 1:
			e = "least(" + e + ", 5)"
		case 2:
			e = "abs(" + e + ")"
		case 3:
			e = "(" + e + " + 1)"
		case 4:
			e = "floor(" + e + ")"
		case 5:
			e = "CAST(" + e + " AS DOUBLE)"
		case 6:
			e = "CASE WHEN " + e + " > 2 THEN 1 ELSE 0 END"
		case 7:
			e = "greatest(" + e + ", -5)"
		case 8:
			e = "(" + e + " * 2)"
		}
	}
	return e
}

// condition turns a numeric expression into a condition, in one of the admitted forms.
func condition(r *rand.Rand, e string) string {
	switch r.IntN(6) {
	case 0:
		return e + " > 0"
	case 1:
		return e + " BETWEEN 0 AND 3"
	case 2:
		return e + " IN (1, 2, 3)"
	case 3:
		return "NOT (" + e + " < 0)"
	case 4:
		return "(" + e + " > 0 OR district = 'A')"
	default:
		return "(district <> 'Z' AND " + e + " >= 0)"
	}
}

// positions are the places the gate admits a row-level expression, as query templates over a
// numeric expression E (on the trial dataset, columns unqualified, or qualified by "v." where
// the template says so) and a condition C.
var positions = []struct {
	name      string
	qualified bool // columns are read as v.<column>
	sql       func(e, c string) string
}{
	{"filter", false, func(e, c string) string { return "SELECT COUNT(*) FROM trial WHERE " + c }},
	{"filter with keys", false, func(e, c string) string {
		return "SELECT district, COUNT(*), SUM(cost) FROM trial WHERE " + c + " GROUP BY district"
	}},
	{"selected key", false, func(e, c string) string { return "SELECT " + e + " AS k, COUNT(*) FROM trial GROUP BY 1" }},
	{"public key", false, func(e, c string) string {
		return "SELECT CASE WHEN " + c + " THEN 'yes' ELSE 'no' END AS k, COUNT(*) FROM trial GROUP BY 1"
	}},
	{"bucket key", false, func(e, c string) string {
		return "SELECT width_bucket(" + e + ", 0, 10, 5) AS k, AVG(cost) FROM trial GROUP BY 1"
	}},
	{"second key", false, func(e, c string) string {
		return "SELECT district, " + e + " AS k, COUNT(*) FROM trial GROUP BY district, k"
	}},
	{"per-unit key", true, func(e, c string) string {
		return "SELECT k, COUNT(*) FROM (SELECT v.person_id, " + e + " AS k, COUNT(*) AS rows_n FROM trial v GROUP BY v.person_id, k) s GROUP BY k"
	}},
	{"per-unit filter", true, func(e, c string) string {
		return "SELECT COUNT(*), AVG(total) FROM (SELECT v.person_id, LEAST(SUM(v.cost), 500) AS total FROM trial v WHERE " + c + " GROUP BY v.person_id) s"
	}},
	{"outer filter on per-unit values", false, func(e, c string) string {
		c = strings.ReplaceAll(strings.ReplaceAll(c, "district", "d"), "code", "'C1'")
		c = strings.ReplaceAll(c, "visit_date", "DATE '2024-01-01'")
		return "SELECT COUNT(*) FROM (SELECT person_id, district AS d, LEAST(SUM(n), 10) AS n FROM trial GROUP BY person_id, district) s WHERE " + c
	}},
	{"join key", true, func(e, c string) string {
		return "SELECT " + e + " AS k, COUNT(*) FROM trial v JOIN regs r ON v.person_id = r.person_id GROUP BY 1"
	}},
	{"join filter", true, func(e, c string) string {
		return "SELECT r.district, COUNT(*) FROM trial v JOIN regs r ON v.person_id = r.person_id WHERE " + c + " GROUP BY r.district"
	}},
	{"join per-unit key", true, func(e, c string) string {
		return "SELECT k, COUNT(*) FROM (SELECT v.person_id, " + e + " AS k, COUNT(*) AS rows_n FROM trial v JOIN regs r ON v.person_id = r.person_id GROUP BY v.person_id, k) s GROUP BY k"
	}},
}

// totalityCases generates n queries, each a failing expression wrapped to a random depth at
// one of the admitted positions, from a fixed seed (the same queries on every run).
func totalityCases(n int) []string {
	r := rand.New(rand.NewPCG(13, 2026))
	var out []string
	for i := range n {
		pos := positions[i%len(positions)]
		q, p := "", trigger
		if pos.qualified {
			q, p = "v.", "v."+trigger
		}
		e := wrap(r, failing[r.IntN(len(failing))](p, q), r.IntN(4))
		c := condition(r, e)
		if pos.qualified {
			c = strings.ReplaceAll(c, "district", "v.district")
		}
		out = append(out, pos.sql(e, c))
	}
	return out
}

// outcome runs sql as a job and says how it ended: "released" or its error code.
func outcome(e *engine.Engine, sql string) string {
	_, err := e.Submit(context.Background(), engine.Job{Principal: applicant, Grant: "g", SQL: sql,
		Options: plan.Options{Epsilon: 0.01, Delta: 1e-8, MaxGroupsContributed: 3}})
	if err != nil {
		return string(errcode.Of(err))
	}
	return "released"
}

// TestJobOutcomeDoesNotDependOnOneUnit is the property test: for every generated query, the
// outcome on the data with the trigger unit equals the outcome without it, and enough of them
// are released (a gate that refused everything would pass vacuously).
func TestJobOutcomeDoesNotDependOnOneUnit(t *testing.T) {
	es := twinEngines(t)
	n := 3 * len(positions) * len(failing)
	if testing.Short() {
		n = 2 * len(positions)
	}
	released := map[string]int{}
	for i, sql := range totalityCases(n) {
		a, b := outcome(es[0], sql), outcome(es[1], sql)
		if a != b {
			t.Errorf("case %d (%s): without the unit %s, with it %s\n%s", i, positions[i%len(positions)].name, a, b, sql)
		}
		if a == "released" {
			released[positions[i%len(positions)].name]++
		}
	}
	for _, p := range positions {
		if released[p.name] == 0 {
			t.Errorf("no query at position %q was released: the property was not exercised there", p.name)
		}
	}
}

// FuzzJobOutcomeDoesNotDependOnOneUnit runs any SQL on both twin engines and demands the same
// outcome. Seeds: the property test's cases. `make fuzz` runs it.
func FuzzJobOutcomeDoesNotDependOnOneUnit(f *testing.F) {
	for _, sql := range totalityCases(2 * len(positions)) {
		f.Add(sql)
	}
	es := twinEngines(f)
	f.Fuzz(func(t *testing.T, sql string) {
		if a, b := outcome(es[0], sql), outcome(es[1], sql); a != b {
			t.Fatalf("without the unit %s, with it %s\n%s", a, b, sql)
		}
	})
}
