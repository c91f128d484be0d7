package engine

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	_ "github.com/duckdb/duckdb-go/v2"

	"github.com/c1b99f93/cleanroom/catalog"
	"github.com/c1b99f93/cleanroom/dp"
	"github.com/c1b99f93/cleanroom/engine/gate"
	"github.com/c1b99f93/cleanroom/engine/plan"
	"github.com/c1b99f93/cleanroom/sandbox"
	"github.com/c1b99f93/cleanroom/sandbox/wire"
)

// heavyUnit sorts after every resident ID, so adding it leaves every other unit's dense key and
// rowids — and with them the keyed choice of its kept rows — unchanged: the difference between
// the two runs is the heavy unit's contribution alone.
const heavyUnit = "ZZ-HEAVY-PERSON"

// withHeavyUnit writes a copy of a committed parquet dataset with one more person: rows copies
// of the first n rows (so spread over many groups and values), each with the heavy unit.
func withHeavyUnit(t *testing.T, db *sql.DB, spec *catalog.Spec, n int, renamed map[string]string) *catalog.Spec {
	t.Helper()
	out := filepath.Join(t.TempDir(), spec.Name+".parquet")
	repl := []string{fmt.Sprintf("'%s' AS %s", heavyUnit, spec.PrivacyUnit)}
	for col, prefix := range renamed {
		repl = append(repl, fmt.Sprintf("'%s' || rn AS %s", prefix, col))
	}
	src := strings.ReplaceAll(spec.Source.Path, "'", "''")
	q := fmt.Sprintf(`COPY (SELECT * FROM read_parquet('%[1]s') UNION ALL BY NAME
		SELECT * EXCLUDE (rn) REPLACE (%[2]s) FROM (SELECT *, row_number() OVER () AS rn FROM read_parquet('%[1]s') LIMIT %[3]d))
		TO '%[4]s' (FORMAT parquet)`, src, strings.Join(repl, ", "), n, out)
	if _, err := db.Exec(q); err != nil {
		t.Fatal(err)
	}
	heavy := *spec
	heavy.Source.Path = out
	return &heavy
}

// exactTotals reads the exact bounded totals of the kinds whose pre-noise state holds one:
// a row count (Count), a unit count (CountDistinct), a distinct count of values
// (CountDistinctValues), a clamped sum (Sum) or a mean's row count.
func exactTotals(t *testing.T, spec dp.Spec, state []byte) (float64, bool) {
	t.Helper()
	if state == nil {
		return 0, true
	}
	c, err := spec.Canonical(state)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(c, &m); err != nil {
		t.Fatal(err)
	}
	switch spec.Kind {
	case dp.Count, dp.CountDistinctValues, dp.Sum:
		return m["Sum"].(float64), true
	case dp.CountDistinct:
		return m["Count"].(float64), true
	case dp.Mean:
		return m["count"].(map[string]any)["Count"].(float64), true
	}
	return 0, false
}

// bound is how far one unit can move an aggregate's total in one partition.
func bound(s dp.Spec) float64 {
	switch s.Kind {
	case dp.CountDistinct:
		return 1
	case dp.Sum:
		return float64(s.MaxPerPartition) * math.Max(math.Abs(s.Lower), math.Abs(s.Upper))
	}
	return float64(s.MaxPerPartition)
}

// TestEveryAdmittedQueryBoundsEachUnitBeforeAggregating is the bounding property over the
// whole SQL surface: every released example of docs/sql.md (joins and per-unit subqueries
// included) plus join shapes that multiply rows is planned and run twice in the worker — on
// the committed testdata, and with one more person who has 1,000 visits and 1,000 claims
// (1,000,000 rows in a visits ⋈ claims join). Whatever the query, the extra person moves each
// exact pre-noise total by at most its per-partition bound, in at most max_groups_contributed
// partitions. A query that aggregated before bounding, or bounded before a join, fails this.
func TestEveryAdmittedQueryBoundsEachUnitBeforeAggregating(t *testing.T) {
	ctx := context.Background()
	duck, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer duck.Close()
	load := func(name string) *catalog.Spec {
		spec, err := catalog.LoadFile(filepath.Join("..", "testdata", "datasets", name+".yaml"))
		if err != nil {
			t.Fatal(err)
		}
		if !spec.Public {
			spec.Budget = catalog.Budget{Epsilon: 1e6, Delta: 1e-2}
		}
		return spec
	}
	base := map[string]*catalog.Spec{}
	for _, name := range []string{"medical_visits", "residents", "insurance_claims", "districts", "icd10_chapters"} {
		base[name] = load(name)
	}
	heavy := map[string]*catalog.Spec{
		"medical_visits":   withHeavyUnit(t, duck, base["medical_visits"], 1000, map[string]string{"visit_id": "HV"}),
		"insurance_claims": withHeavyUnit(t, duck, base["insurance_claims"], 1000, map[string]string{"claim_id": "HC", "visit_id": "HCV"}),
		"residents":        withHeavyUnit(t, duck, base["residents"], 1, map[string]string{"name": "HN", "mobile": "HM"}),
		"districts":        base["districts"],
		"icd10_chapters":   base["icd10_chapters"],
	}
	open := func(specs map[string]*catalog.Spec) *Engine {
		e, err := Open(ctx, Config{DataDir: t.TempDir(), WorkerDB: sandbox.DBLimits{MemoryLimit: "4GB"}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { e.Close() })
		for _, s := range specs {
			if _, err := e.RegisterDataset(ctx, s, openTestSource(t, s.Source.Path)); err != nil {
				t.Fatal(err)
			}
		}
		return e
	}
	e0, e1 := open(base), open(heavy)

	queries := releasedExamples(t)
	queries = append(queries,
		"SELECT COUNT(*), SUM(c.amount) FROM medical_visits v JOIN insurance_claims c ON v.person_id = c.person_id",
		"SELECT v.district, COUNT(*), COUNT(DISTINCT v.person_id), SUM(v.cost) FROM medical_visits v JOIN insurance_claims c USING (person_id) GROUP BY v.district",
		"SELECT d.name, COUNT(*) FROM medical_visits v JOIN districts d ON v.district = d.code JOIN residents r ON r.person_id = v.person_id GROUP BY d.name",
		"SELECT n, COUNT(*) FROM (SELECT v.person_id, LEAST(COUNT(*), 50) AS n FROM medical_visits v JOIN insurance_claims c ON v.person_id = c.person_id GROUP BY v.person_id) AS t GROUP BY n",
		"SELECT SUM(total) FROM (SELECT person_id, age_band, LEAST(SUM(cost), 100000) AS total FROM medical_visits GROUP BY person_id, age_band) AS t",
	)
	opts := plan.Options{Epsilon: 1, Delta: 1e-6, MaxGroupsContributed: 2, MaxContributionsPerGroup: 3, TimeoutMS: 120_000}
	checked := 0
	for _, sqlText := range queries {
		run := func(e *Engine) (*plan.Planned, map[string][][]byte, bool) {
			q, err := gate.Admit(ctx, e.parser, e, sqlText)
			if err != nil {
				return nil, nil, false // refused by the gate in both engines alike (checked below)
			}
			ds, err := e.sourcesOf(q)
			if err != nil {
				t.Fatal(err)
			}
			p, err := plan.Build(q, ds.snapshots(), opts, 99)
			if err != nil {
				return nil, nil, false
			}
			w, err := e.worker(ctx, ds.domain())
			if err != nil {
				t.Fatal(err)
			}
			parts, err := w.Execute(ctx, &p.Worker)
			if err != nil {
				t.Fatalf("%s: %v", sqlText, err)
			}
			out := map[string][][]byte{}
			for _, pt := range parts {
				out[wire.KeyString(pt.Key)] = pt.States
			}
			return p, out, true
		}
		p, before, ok0 := run(e0)
		_, after, ok1 := run(e1)
		if ok0 != ok1 {
			t.Fatalf("%s: admitted in one engine only", sqlText)
		}
		if !ok0 {
			continue
		}
		moved := map[string]bool{}
		for key := range union(before, after) {
			for j, s := range p.Worker.Aggregates {
				var b, a []byte
				if before[key] != nil {
					b = before[key][j]
				}
				if after[key] != nil {
					a = after[key][j]
				}
				x, ok := exactTotals(t, s, b)
				y, _ := exactTotals(t, s, a)
				if !ok {
					continue
				}
				if d := math.Abs(y - x); d > bound(s)+1e-6 {
					t.Fatalf("%s: one unit moved %s in partition %q by %g, bound %g", sqlText, s.Kind, key, d, bound(s))
				} else if d > 0 {
					moved[key] = true
				}
			}
		}
		if len(moved) > int(opts.MaxGroupsContributed) {
			t.Fatalf("%s: one unit moved %d partitions, bound %d", sqlText, len(moved), opts.MaxGroupsContributed)
		}
		checked++
	}
	if checked < 30 {
		t.Fatalf("only %d queries checked; is docs/sql.md readable?", checked)
	}
}

func union(a, b map[string][][]byte) map[string]bool {
	out := map[string]bool{}
	for k := range a {
		out[k] = true
	}
	for k := range b {
		out[k] = true
	}
	return out
}

// releasedExamples reads the SQL of every "released" row of docs/sql.md.
func releasedExamples(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "docs", "sql.md"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(string(data), "\n") {
		cells := strings.Split(strings.Trim(strings.TrimSpace(line), "|"), "|")
		if len(cells) == 3 && strings.TrimSpace(cells[2]) == "released" {
			out = append(out, strings.Trim(strings.TrimSpace(cells[1]), "`"))
		}
	}
	return out
}
