package engine_test

import (
	"database/sql"
	"fmt"
	"math"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	_ "github.com/duckdb/duckdb-go/v2"

	"github.com/c1b99f93/cleanroom/engine"
	"github.com/c1b99f93/cleanroom/engine/plan"
	"github.com/c1b99f93/cleanroom/errcode"
)

// The fifteen kinds of query issue 15 tried as a new analyst, plus its per-unit subquery, with
// the truth computed by DuckDB directly on the committed testdata (the same SQL over the raw
// parquet files: no bounds, no noise) and the engine's answer at epsilon 1. The table in
// docs/accuracy.md ("The fifteen kinds of query") is this test's log:
//
//	go test ./engine -run TestFifteenKindsAccuracyTable -v
type accuracyCase struct {
	kind, sql string
	// value is the output column compared with the truth (the first columns before it are the
	// keys); top keeps the truth's n largest cells (a top-n query), else all of them.
	value, top int
	// keys is how many leading columns are keys, when fewer than value.
	keys int
	// abs compares absolute errors (a difference of counts, whose truth may be near 0).
	abs bool
}

func (c accuracyCase) keyColumns() int {
	if c.keys > 0 {
		return c.keys
	}
	return c.value
}

var fifteenKinds = []accuracyCase{
	{kind: "visits by district", sql: "SELECT district, COUNT(*) AS visits FROM medical_visits GROUP BY district", value: 1},
	{kind: "visits by month", sql: "SELECT date_trunc('month', visit_date) AS month, COUNT(*) AS visits FROM medical_visits GROUP BY month", value: 1},
	{kind: "top-10 diagnoses", sql: "SELECT diagnosis, COUNT(*) AS visits FROM medical_visits GROUP BY diagnosis ORDER BY visits DESC LIMIT 10", value: 1, top: 10},
	{kind: "AVG(cost) by age group", sql: "SELECT age_band, AVG(cost) AS mean_cost FROM medical_visits GROUP BY age_band", value: 1},
	{kind: "SUM(cost) by month", sql: "SELECT date_trunc('month', visit_date) AS month, SUM(cost) AS total FROM medical_visits GROUP BY month", value: 1},
	{kind: "top-10 hospitals by total cost", sql: "SELECT hospital_id, SUM(cost) AS total FROM medical_visits GROUP BY hospital_id ORDER BY total DESC LIMIT 10", value: 1, top: 10},
	{kind: "MAX(cost)", sql: "SELECT MAX(cost) AS largest FROM medical_visits"},
	{kind: "HAVING", sql: "SELECT district, COUNT(*) AS visits FROM medical_visits GROUP BY district HAVING COUNT(*) > 1000", value: 1},
	{kind: "ratio of two sums", sql: "SELECT district, SUM(reimbursed) / SUM(amount) AS reimbursed_share FROM insurance_claims GROUP BY district", value: 1},
	{kind: "AVG(CASE …)", sql: "SELECT district, AVG(CASE WHEN diagnosis LIKE 'I%' THEN 1 ELSE 0 END) AS circulatory FROM medical_visits GROUP BY district", value: 1},
	{kind: "window over released rows", sql: "SELECT district, COUNT(*) * 100.0 / SUM(COUNT(*)) OVER () AS pct FROM medical_visits GROUP BY district", value: 1},
	{kind: "CTE with LAG", sql: "WITH t AS (SELECT date_trunc('month', visit_date) AS month, COUNT(*) AS n FROM medical_visits GROUP BY month) SELECT month, n, n - LAG(n) OVER (ORDER BY month) AS change FROM t", value: 2, keys: 1, abs: true},
	{kind: "AVG(total) per person (per-unit subquery)", sql: "SELECT AVG(total) AS mean_per_person FROM (SELECT person_id, SUM(cost) AS total FROM medical_visits GROUP BY person_id) AS t"},
	{kind: "AVG(visits) per person (per-unit COUNT(*))", sql: "SELECT AVG(n) AS visits_per_person FROM (SELECT person_id, COUNT(*) AS n FROM medical_visits GROUP BY person_id) AS t"},
}

// fifteenKindsRefused are the two kinds that are refused on purpose, with the hint the refusal
// must carry.
var fifteenKindsRefused = []struct{ kind, sql, hint string }{
	{"misspelt dataset", "SELECT COUNT(*) FROM medical_visit", `did you mean "medical_visits"`},
	{"syntax error", "SELEC COUNT(*) FROM medical_visits", "did you mean SELECT"},
}

// truthDB opens DuckDB over the committed parquet files, one view per dataset name.
func truthDB(t *testing.T) *sql.DB {
	t.Helper()
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	for _, name := range []string{"medical_visits", "insurance_claims", "residents"} {
		spec := loadDataset(t, name)
		if _, err := db.Exec(fmt.Sprintf("CREATE VIEW %s AS SELECT * FROM read_parquet('%s')", name, strings.ReplaceAll(spec.Source.Path, "'", "''"))); err != nil {
			t.Fatal(err)
		}
	}
	return db
}

var dateKey = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}`)

// cellKey normalises a key for comparison: a date or timestamp to its day.
func cellKey(v any) string {
	if tm, ok := v.(time.Time); ok {
		return tm.UTC().Format("2006-01-02")
	}
	s := fmt.Sprint(v)
	if m := dateKey.FindString(s); m != "" {
		return m
	}
	return s
}

// truthCells runs a query in DuckDB and returns its value column by key (the columns before it).
func truthCells(t *testing.T, db *sql.DB, c accuracyCase) map[string]float64 {
	t.Helper()
	rows, err := db.Query(c.sql)
	if err != nil {
		t.Fatalf("%s: %v", c.kind, err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	out := map[string]float64{}
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		var key []string
		for _, v := range vals[:c.keyColumns()] {
			key = append(key, cellKey(v))
		}
		var f float64
		switch v := vals[c.value].(type) {
		case nil:
			continue // LAG before the first row
		case float64:
			f = v
		case int64:
			f = float64(v)
		case int32:
			f = float64(v)
		default:
			fmt.Sscan(fmt.Sprint(v), &f)
		}
		out[strings.Join(key, "|")] = f
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// releasedCells reads an engine result's value column by key.
func releasedCells(res *engine.Result, c accuracyCase) map[string]float64 {
	out := map[string]float64{}
	for _, row := range res.Rows {
		var key []string
		for _, cell := range row[:c.keyColumns()] {
			if cell.Key != nil {
				key = append(key, cellKey(*cell.Key))
			} else {
				key = append(key, "NULL")
			}
		}
		cell := row[c.value]
		switch {
		case cell.DP != nil:
			out[strings.Join(key, "|")] = cell.DP.Value
		case cell.Derived != nil && cell.Derived.Value != nil:
			out[strings.Join(key, "|")] = *cell.Derived.Value
		}
	}
	return out
}

// cellError is the median over the truth's cells of |released − true| / |true| (or the
// absolute error, c.abs); a cell not released counts as released 0.
func cellError(truth, got map[string]float64, c accuracyCase) float64 {
	var errs []float64
	for k, v := range truth {
		d := math.Abs(got[k] - v)
		if !c.abs {
			d /= math.Abs(v)
		}
		errs = append(errs, d)
	}
	sort.Float64s(errs)
	return errs[len(errs)/2]
}

// topCells keeps the n largest cells.
func topCells(m map[string]float64, n int) map[string]float64 {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int { return -compareFloat(m[a], m[b]) })
	out := map[string]float64{}
	for _, k := range keys[:min(n, len(keys))] {
		out[k] = m[k]
	}
	return out
}

func compareFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// fifteenKindsRuns is how many times each query runs (each on a fresh grant).
const fifteenKindsRuns = 3

// TestFifteenKindsAccuracyTable runs issue 15's fifteen kinds of query at epsilon 1 against the
// truth DuckDB computes on the raw testdata, and logs docs/accuracy.md's table. It pins that
// every kind runs or is refused with its hint, and that the per-unit AVG(total), which needs no
// hand-written clamp now, lands within 40% of the truth in every run (bounds chosen under DP).
func TestFifteenKindsAccuracyTable(t *testing.T) {
	db := truthDB(t)
	e := openEngine(t)
	for _, name := range []string{"medical_visits", "residents", "insurance_claims"} {
		register(t, e, loadDataset(t, name))
	}
	for i, c := range fifteenKinds {
		truth := truthCells(t, db, c)
		if c.top > 0 {
			truth = topCells(truth, c.top)
		}
		var errs []float64
		var answers []string
		for run := range fifteenKindsRuns {
			g := fmt.Sprintf("fifteen-%d-%d", i, run)
			grant(t, e, g, 10)
			res, err := submitReviewed(e, g, c.sql, plan.Options{Epsilon: 1})
			if err != nil {
				t.Fatalf("%s: %s: %s", c.kind, errcode.Of(err), errcode.Public(err).Message)
			}
			got := releasedCells(res, c)
			m := cellError(truth, got, c)
			errs = append(errs, m)
			if len(truth) == 1 {
				answers = append(answers, fmt.Sprintf("%.1f", got[""]))
			} else {
				answers = append(answers, fmt.Sprintf("%d cells", len(got)))
			}
		}
		sort.Float64s(errs)
		unit := "%"
		scale := 100.0
		if c.abs {
			unit, scale = "", 1
		}
		lo, hi := math.Inf(1), math.Inf(-1)
		for _, v := range truth {
			lo, hi = math.Min(lo, v), math.Max(hi, v)
		}
		summary := fmt.Sprintf("%d cells, %.4g to %.4g", len(truth), lo, hi)
		if len(truth) == 1 {
			for _, v := range truth {
				summary = fmt.Sprintf("%.1f", v)
			}
		}
		t.Logf("| %s | truth %s | after %s | median cell error %.1f%s–%.1f%s |", c.kind, summary, strings.Join(answers, ", "),
			scale*errs[0], unit, scale*errs[len(errs)-1], unit)
		// Every run: the per-person totals' upper clamp is read from a half-octave histogram
		// whose tail must stand above its noise, so it lands within a bin or two of the 0.99
		// quantile (131k–185k; a tail too thin to stand above the noise can pull it to the
		// 0.97 one) and the answer 12–30% below the truth (9% of that from the catalog's
		// per-visit bound of 50,000), with a noise deviation near 1%. The quantile tree it
		// replaced sent one run in five to a clamp 100–300 times too high.
		if worst := errs[len(errs)-1]; strings.HasPrefix(c.kind, "AVG(total)") && worst > 0.40 {
			t.Errorf("%s: a run off by %.0f%%, want every run within 40%%", c.kind, 100*worst)
		}
	}
	grant(t, e, "fifteen-refused", 10)
	for _, c := range fifteenKindsRefused {
		_, err := submit(e, "fifteen-refused", c.sql, plan.Options{Epsilon: 1})
		msg := errcode.Public(err).Message
		if err == nil || !strings.Contains(msg, c.hint) {
			t.Errorf("%s: got %v, want a refusal with %q", c.kind, err, c.hint)
		}
		t.Logf("| %s | refused: %s: %s |", c.kind, errcode.Of(err), msg)
	}
}
