package engine_test

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/c1b99f93/cleanroom/catalog"
	"github.com/c1b99f93/cleanroom/engine/plan"
	"github.com/c1b99f93/cleanroom/errcode"
	"github.com/c1b99f93/cleanroom/server/api"
)

// sqlDoc is the conformance table this test keeps honest.
var sqlDoc = filepath.Join("..", "docs", "sql.md")

// minConformanceRows guards the parser: a table format change that made it match nothing
// would otherwise pass silently.
const minConformanceRows = 30

// conformanceRow is one row of a docs/sql.md table: construct | `example SQL` | result, where
// result is "released" or a refusal code in backticks.
type conformanceRow struct {
	line      int
	construct string
	sql       string
	want      string // "released" or an error code
}

// conformanceRows reads every table row of doc whose example cell is backticked SQL.
func conformanceRows(t *testing.T, doc string) []conformanceRow {
	t.Helper()
	data, err := os.ReadFile(doc)
	if err != nil {
		t.Fatal(err)
	}
	var rows []conformanceRow
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "|") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		for j := range cells {
			cells[j] = strings.TrimSpace(cells[j])
		}
		if len(cells) < 2 || !isCode(cells[1]) {
			continue // header, separator, or a row without an example
		}
		if len(cells) != 3 {
			t.Fatalf("%s:%d: want 3 cells (construct | `example` | result), got %d (is there a | inside the SQL?)", doc, i+1, len(cells))
		}
		r := conformanceRow{line: i + 1, construct: cells[0], sql: strings.Trim(cells[1], "`"), want: cells[2]}
		switch {
		case r.want == "released":
		case isCode(r.want):
			r.want = strings.Trim(r.want, "`")
		default:
			t.Fatalf("%s:%d: result %q is neither released nor a `code`", doc, i+1, r.want)
		}
		if r.construct == "" || r.sql == "" || r.want == "" {
			t.Fatalf("%s:%d: empty cell", doc, i+1)
		}
		rows = append(rows, r)
	}
	return rows
}

func isCode(s string) bool {
	return len(s) > 2 && strings.HasPrefix(s, "`") && strings.HasSuffix(s, "`") && !strings.Contains(s[1:len(s)-1], "`")
}

// loadDataset loads a committed catalog spec with a lifetime budget large enough for the whole
// table (the committed caps are sized for the demo, not for dozens of jobs).
func loadDataset(t *testing.T, name string) *catalog.Spec {
	t.Helper()
	spec, err := catalog.LoadFile(filepath.Join("..", "testdata", "datasets", name+".yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !spec.Public {
		spec.Budget = catalog.Budget{Epsilon: 1e6, Delta: 1e-2}
	}
	return spec
}

// TestSQLConformanceTableRunsEndToEnd runs every example of docs/sql.md through the engine —
// gate, plan, policy, budget, worker, mechanism, egress — and checks the documented outcome:
// "released" means (after the reviews the egress policy asks for, if it holds the output) a
// result with aggregate columns whose every cell carries a mechanism, an
// epsilon and a 95% interval around its value; a code means the job is refused with that code.
func TestSQLConformanceTableRunsEndToEnd(t *testing.T) {
	rows := conformanceRows(t, sqlDoc)
	if len(rows) < minConformanceRows {
		t.Fatalf("%s has %d example rows, want at least %d: has the table format changed?", sqlDoc, len(rows), minConformanceRows)
	}
	e := openEngine(t)
	for _, name := range []string{"medical_visits", "residents", "insurance_claims", "criminal_records", "districts", "icd10_chapters"} {
		register(t, e, loadDataset(t, name))
	}
	opts := plan.Options{Epsilon: 1}

	for i, row := range rows {
		t.Run(row.construct, func(t *testing.T) {
			// A grant per example: dozens of filters on one grant and dataset would meet the
			// differencing checks' limit (differencing_limit), which is not what the table shows.
			g := fmt.Sprintf("g%d", i)
			grant(t, e, g, 1000)
			r, err := submitReviewed(e, g, row.sql, opts)
			if row.want != "released" {
				if got := errcode.Of(err); string(got) != row.want {
					t.Fatalf("sql.md:%d: %s\ncode %q (%v), documented %q", row.line, row.sql, got, err, row.want)
				}
				return
			}
			if err != nil {
				t.Fatalf("sql.md:%d: %s\ndocumented released, got %q: %v", row.line, row.sql, errcode.Of(err), err)
			}
			aggs := 0
			for _, c := range r.Columns {
				if c.Kind == "aggregate" || c.Kind == "derived" {
					aggs++
				}
			}
			if aggs == 0 {
				t.Fatalf("sql.md:%d: result has no aggregate column: %+v", row.line, r.Columns)
			}
			if len(r.Rows) == 0 {
				t.Fatalf("sql.md:%d: released no rows; pick an example that releases something", row.line)
			}
			if r.Split == "" {
				t.Fatalf("sql.md:%d: result does not say how the budget was split", row.line)
			}
			for i, cells := range r.Rows {
				if len(cells) != len(r.Columns) {
					t.Fatalf("row %d has %d cells for %d columns", i, len(cells), len(r.Columns))
				}
				for j, c := range cells {
					if r.Columns[j].Kind == "derived" {
						checkDerived(t, r.Columns[j], c)
						continue
					}
					if r.Columns[j].Kind != "aggregate" {
						if c.DP != nil {
							t.Fatalf("row %d: group key %s carries a DP value", i, r.Columns[j].Name)
						}
						continue
					}
					d := c.DP
					if d == nil {
						t.Fatalf("row %d: aggregate %s has no DP cell", i, r.Columns[j].Name)
					}
					if math.IsNaN(d.Value) || !(d.CILow <= d.Value && d.Value <= d.CIHigh) {
						t.Fatalf("row %d: %s = %v outside its interval [%v, %v]", i, r.Columns[j].Name, d.Value, d.CILow, d.CIHigh)
					}
					if d.Mechanism == "" || !(d.Epsilon > 0 && d.Epsilon <= opts.Epsilon) {
						t.Fatalf("row %d: %s lacks its mechanism or budget share: %+v", i, r.Columns[j].Name, d)
					}
				}
			}
			t.Logf("%d row(s); %s", len(r.Rows), r.Split)
		})
	}
}

// checkDerived checks a cell computed after release: it says so, carries no DP cost of its own,
// and its value lies within its interval (an end may be unbounded: null).
func checkDerived(t *testing.T, col api.ResultCol, c api.Cell) {
	t.Helper()
	d := c.Derived
	if d == nil || c.DP != nil || c.Key != nil {
		t.Fatalf("derived column %s has cell %+v", col.Name, c)
	}
	if d.Mechanism != api.MechanismPostProcessing || col.Expression == "" {
		t.Fatalf("derived column %s does not say it is post-processed: %+v, expression %q", col.Name, d, col.Expression)
	}
	if d.Value == nil {
		return
	}
	if v := *d.Value; math.IsNaN(v) || d.CILow != nil && *d.CILow > v || d.CIHigh != nil && *d.CIHigh < v {
		t.Fatalf("derived %s = %v outside its interval [%v, %v]", col.Name, v, d.CILow, d.CIHigh)
	}
}
