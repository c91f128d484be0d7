package sandbox

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/c1b99f93/cleanroom/dp"
	"github.com/c1b99f93/cleanroom/errcode"
	"github.com/c1b99f93/cleanroom/sandbox/wire"
)

// relWorker is an in-process worker, so tests can read the exact bounded totals, which never
// leave a real worker.
func relWorker(t *testing.T) *worker { return inProcessWorker(t, t.TempDir()) }

// inProcessWorker is an in-process worker on directory dir: two on one directory are one
// worker before and after a restart.
func inProcessWorker(t *testing.T, dir string) *worker {
	t.Helper()
	db, err := openLockedDB(DBLimits{MemoryLimit: "1GB", Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return &worker{dir: dir, db: db, log: slog.New(slog.NewTextHandler(io.Discard, nil)), tables: map[string]*snapTable{}, shards: 2, shardRows: 1}
}

// relRegister registers a CSV (header, then rows) and returns its digest; unit "" registers a
// public lookup table.
func relRegister(t *testing.T, w *worker, unit, header string, rows []string) string {
	t.Helper()
	path := writeCSV(t, "t.csv", header+"\n"+strings.Join(rows, "\n")+"\n")
	snap, err := w.snapshot(context.Background(), &registerArgs{Kind: "csv", src: openSource(t, path), Name: "t.csv", PrivacyUnit: unit, Columns: strings.Split(header, ",")})
	if err != nil {
		t.Fatal(err)
	}
	return snap.Digest
}

func relID(i int) string { return fmt.Sprintf("5301021980010%05d", i) }

// relHeavy registers dataset A (person_id, district, cost) and B (person_id, ward): person
// relID(0) has heavyA rows in A (district A, cost(v)) and heavyB rows in B; persons 1..others
// have one row in each, district A for odd i and B for even i, cost 10. Person 0 sorts first,
// so it is unit 0.
func relHeavy(t *testing.T, w *worker, heavyA, heavyB, others int, cost func(v int) float64) (a, b string) {
	t.Helper()
	var ra, rb []string
	for v := 0; v < heavyA; v++ {
		ra = append(ra, fmt.Sprintf("%s,A,%g", relID(0), cost(v)))
	}
	for v := 0; v < heavyB; v++ {
		rb = append(rb, fmt.Sprintf("%s,W%d", relID(0), v))
	}
	for i := 1; i <= others; i++ {
		ra = append(ra, fmt.Sprintf("%s,%s,10", relID(i), []string{"B", "A"}[i%2]))
		rb = append(rb, fmt.Sprintf("%s,W%d", relID(i), i))
	}
	return relRegister(t, w, "person_id", "person_id,district,cost", ra), relRegister(t, w, "person_id", "person_id,ward", rb)
}

// relJoin is A inner-joined with B on the unit, projecting A's district and cost under the
// engine's "alias.column" names.
func relJoin(a, b string) *wire.Relation {
	return &wire.Relation{Keyed: true,
		Sources: []wire.RelationSource{{Snapshot: a, Alias: "a", Unit: "person_id"}, {Snapshot: b, Alias: "b", Unit: "person_id", Join: "inner"}},
		Columns: []wire.RelationColumn{{Name: "a.district", Expr: wire.Col("a", "district")}, {Name: "a.cost", Expr: wire.Col("a", "cost")}},
	}
}

// relPlan counts rows and sums value (clamped to [0, 100]) per key, bounded by L0 and L∞.
func relPlan(rel *wire.Relation, key, value string, l0, linf int64) *wire.Plan {
	return &wire.Plan{Relation: rel, Keys: []*wire.Expr{wire.Col("", key)}, Values: []*wire.Expr{wire.Col("", value)},
		Aggregates: []dp.Spec{
			{Kind: dp.Count, Value: -1, Epsilon: 1, MaxPartitions: l0, MaxPerPartition: linf},
			{Kind: dp.Sum, Value: 0, Lower: 0, Upper: 100, Epsilon: 1, MaxPartitions: l0, MaxPerPartition: linf},
		},
		Bounds: wire.Bounds{MaxGroupsContributed: l0, MaxContributionsPerGroup: linf}, SamplingKey: 42, TimeoutMS: 30_000}
}

// relMaterialize materializes rel, dropping the table at the end of the test.
func relMaterialize(t *testing.T, w *worker, rel *wire.Relation) *snapTable {
	t.Helper()
	snap, drop, err := w.materialize(context.Background(), rel, 42)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(drop)
	return snap
}

// relPass bounds a materialized relation in one in-process pass and fetches the group keys.
func relPass(t *testing.T, w *worker, p *wire.Plan, snap *snapTable) *boundPass {
	t.Helper()
	ctx := context.Background()
	pass := newBoundPass(p, 0, snap.Units, snap.Units, nil)
	pass.tally = true
	if err := w.scan(ctx, p, snap, 0, snap.Units, true, pass); err != nil {
		t.Fatal(err)
	}
	if err := w.fetchKeys(ctx, p, snap, pass); err != nil {
		t.Fatal(err)
	}
	return pass
}

// relTotals is the exact (units, rows, clamped sum) of each partition by its key value
// ("NULL" for a SQL NULL key).
func relTotals(b *boundPass) map[string][3]float64 {
	out := map[string][3]float64{}
	for _, p := range b.parts {
		k := "NULL"
		if p.key[0] != nil {
			k = *p.key[0]
		}
		out[k] = [3]float64{float64(p.units), float64(p.rows), p.sums[1]}
	}
	return out
}

// One person spelled "…x" in A and " …X " in B must match in the join and be one unit: the
// join normalises both sides' units as registration does.
func TestRelationJoinNormalisesUnits(t *testing.T) {
	w := relWorker(t)
	a := relRegister(t, w, "person_id", "person_id,district,cost", []string{
		"530102199001011234x,A,1", "530102199001011234x,A,2", "530102199001011234x,B,3", "530102199001011234x,B,4",
		"530102199001015678,A,5",
	})
	b := relRegister(t, w, "person_id", "person_id,ward", []string{`" 530102199001011234X ",W1`, "530102199001019999,W2"})
	for _, c := range []struct {
		join        string
		units, rows int64
	}{
		{"inner", 1, 4}, // only the person in both; without normalisation nothing would match
		{"left", 2, 5},  // A's other person is kept, unmatched
	} {
		t.Run(c.join, func(t *testing.T) {
			rel := relJoin(a, b)
			rel.Sources[1].Join = c.join
			snap := relMaterialize(t, w, rel)
			if snap.Units != c.units || snap.Rows != c.rows {
				t.Fatalf("units=%d rows=%d, want %d and %d", snap.Units, snap.Rows, c.units, c.rows)
			}
			// The matched person's rows are consecutive under one unit key.
			var n int64
			q := fmt.Sprintf(`SELECT count(DISTINCT %s) FROM %s WHERE "a.cost" <= 4`, unitColumn, snap.table)
			if err := w.db.QueryRow(q).Scan(&n); err != nil || n != 1 {
				t.Fatalf("the person's 4 rows span %d unit keys (%v), want 1", n, err)
			}
		})
	}
}

// A join that gives one person 1000×3 rows is still bounded per person: with L0=1, L∞=3 the
// heavy person adds one unit, 3 rows and at most 3×upper to its district.
func TestRelationJoinBoundsMultipliedRows(t *testing.T) {
	w := relWorker(t)
	a, b := relHeavy(t, w, 1000, 3, 50, func(int) float64 { return 500 }) // 500 clamps to 100
	rel := relJoin(a, b)
	snap := relMaterialize(t, w, rel)
	if snap.Rows != 3050 || snap.Units != 51 {
		t.Fatalf("relation rows=%d units=%d, want 3050 and 51", snap.Rows, snap.Units)
	}
	got := relTotals(relPass(t, w, relPlan(rel, "a.district", "a.cost", 1, 3), snap))
	want := map[string][3]float64{"A": {1 + 25, 3 + 25, 3*100 + 25*10}, "B": {25, 25, 25 * 10}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("totals (units, rows, sum) = %v, want %v", got, want)
	}
}

// A per-unit relation has exactly one row per unit, its aggregates computed over all of the
// unit's joined rows, and Filter applies before grouping.
func TestRelationPerUnit(t *testing.T) {
	w := relWorker(t)
	a, b := relHeavy(t, w, 1000, 3, 50, func(int) float64 { return 500 })
	cols := []wire.RelationColumn{{Name: "n", Aggregate: "count_star", Clamps: []wire.Clamp{{Func: "least", Value: "10"}}},
		{Name: "total", Aggregate: "sum", Expr: wire.Col("a", "cost"), Clamps: []wire.Clamp{{Func: "least", Value: "1000"}}}}
	for _, c := range []struct {
		name     string
		filter   *wire.Expr
		units    int64
		heavyN   int64 // -1: the heavy person has no row
		heavySum float64
	}{
		{"all rows", nil, 51, 10, 1000}, // 3000 joined rows, both clamped
		{"filtered", wire.Compare("<", wire.Col("a", "cost"), wire.Num("100")), 50, -1, 0}, // every heavy row is filtered out
		// Casting "W…" fails on every row: the row is dropped, never fails the query.
		{"filter error drops", wire.Compare(">", wire.Cast(wire.Col("b", "ward"), "INTEGER"), wire.Num("0")), 0, -1, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			rel := relJoin(a, b)
			rel.Columns, rel.PerUnit, rel.Filter = cols, true, c.filter
			snap := relMaterialize(t, w, rel)
			if snap.Units != c.units || snap.Rows != c.units {
				t.Fatalf("units=%d rows=%d, want one row for each of %d units", snap.Units, snap.Rows, c.units)
			}
			var ones int64
			if err := w.db.QueryRow(fmt.Sprintf(`SELECT count(*) FROM %s WHERE n = 1 AND total = 10`, snap.table)).Scan(&ones); err != nil {
				t.Fatal(err)
			}
			if want := min(c.units, 50); ones != want {
				t.Fatalf("%d light persons have n=1, total=10; want %d", ones, want)
			}
			if c.heavyN < 0 {
				return
			}
			var n int64
			var total float64
			q := fmt.Sprintf(`SELECT n, total FROM %s WHERE %s = 0`, snap.table, unitColumn)
			if err := w.db.QueryRow(q).Scan(&n, &total); err != nil {
				t.Fatal(err)
			}
			if n != c.heavyN || total != c.heavySum {
				t.Fatalf("heavy person n=%d total=%v, want %d and %v", n, total, c.heavyN, c.heavySum)
			}
		})
	}
}

// A LEFT join with a lookup table whose key appears twice doubles the matched rows, yet the
// unit stays bounded; rows without a match are kept with NULL lookup columns.
func TestRelationLeftLookupJoin(t *testing.T) {
	w := relWorker(t)
	var rows []string
	for v := 0; v < 5; v++ {
		rows = append(rows, relID(0)+",A,500")
	}
	for i := 1; i <= 20; i++ {
		rows = append(rows, fmt.Sprintf("%s,%s,10", relID(i), []string{"B", "C"}[i%2])) // C has no lookup row
	}
	a := relRegister(t, w, "person_id", "person_id,district,cost", rows)
	l := relRegister(t, w, "", "code,name", []string{"A,Alpha", "A,Alfa", "B,Beta"})
	rel := &wire.Relation{Keyed: true,
		Sources: []wire.RelationSource{{Snapshot: a, Alias: "a", Unit: "person_id"}, {Snapshot: l, Alias: "l", Join: "left", On: wire.Compare("=", wire.Col("a", "district"), wire.Col("l", "code"))}},
		Columns: []wire.RelationColumn{{Name: "l.name", Expr: wire.Col("l", "name")}, {Name: "a.cost", Expr: wire.Col("a", "cost")}},
	}
	snap := relMaterialize(t, w, rel)
	if snap.Rows != 5*2+20 || snap.Units != 21 {
		t.Fatalf("relation rows=%d units=%d, want 30 and 21", snap.Rows, snap.Units)
	}
	got := relTotals(relPass(t, w, relPlan(rel, "l.name", "a.cost", 1, 2), snap))
	// The heavy person's 10 rows fall in Alpha and Alfa; with L0=1, L∞=2 it contributes to one
	// of them (the other may hold an empty partition), 2 rows, 2×100.
	var heavy [3]float64
	for i := range heavy {
		heavy[i] = got["Alpha"][i] + got["Alfa"][i]
	}
	if heavy != [3]float64{1, 2, 200} || got["Beta"] != [3]float64{10, 10, 100} || got["NULL"] != [3]float64{10, 10, 100} {
		t.Fatalf("totals (units, rows, sum) = %v, want Alpha+Alfa {1 2 200}, Beta and NULL {10 10 100}", got)
	}
}

// The pre-noise states depend only on the data: rows sit in unit order, and within a unit in
// the order of the sources' rowids, whatever order the join emits them in, and materializing
// twice, or executing with one shard or two, gives the same bytes. The heavy person's costs
// differ row by row, so which rows are kept shows in the sums.
func TestRelationStatesAreDeterministic(t *testing.T) {
	ctx := context.Background()
	w := relWorker(t)
	a, b := relHeavy(t, w, 200, 3, 300, func(v int) float64 { return float64(v%97) + 0.125 })
	rel := relJoin(a, b)
	// B's column first: the join emits the heavy person's rows grouped by A's row, so only an
	// explicit sort puts them in (A's rowid, B's rowid) order.
	rel.Columns = append([]wire.RelationColumn{{Name: "b.ward", Expr: wire.Col("b", "ward")}}, rel.Columns...)
	p := relPlan(rel, "a.district", "a.cost", 1, 3)
	s1, s2 := relMaterialize(t, w, p.Relation), relMaterialize(t, w, p.Relation)
	// The relation's rows are the join's rows in (A's rowid, B's rowid) order: A's snapshot is
	// clustered by unit, so that is unit order too.
	ta, err := w.loaded(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	tb, err := w.loaded(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	rowsOf := func(q string) string {
		t.Helper()
		var out string
		if err := w.db.QueryRow(q).Scan(&out); err != nil {
			t.Fatal(err)
		}
		return out
	}
	want := rowsOf(fmt.Sprintf(`SELECT string_agg(x.cost || '/' || y.ward, ',' ORDER BY x.rowid, y.rowid) FROM %s AS x JOIN %s AS y ON %s = %s`,
		ta.table, tb.table, normUnit("x.person_id"), normUnit("y.person_id")))
	got := rowsOf(fmt.Sprintf(`SELECT string_agg("a.cost" || '/' || "b.ward", ',' ORDER BY rowid) FROM %s`, s1.table))
	if got != want {
		t.Fatalf("the relation's rows are not in (A's row, B's row) order:\n got %.200s…\nwant %.200s…", got, want)
	}
	if e1, e2 := encodedStates(t, relPass(t, w, p, s1)), encodedStates(t, relPass(t, w, p, s2)); len(e1) != 2 || fmt.Sprint(e1) != fmt.Sprint(e2) {
		t.Fatalf("two materializations give different pre-noise states (%d and %d partitions)", len(e1), len(e2))
	}
	byKey := func(shards int) map[string]string {
		w.shards = shards
		payload, _, err := w.execute(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		parts, err := decodePartitions(payload, 1, 2)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]string{}
		for _, pt := range parts {
			out[*pt.Key[0]] = fmt.Sprint(pt.States)
		}
		return out
	}
	if one, two := byKey(1), byKey(2); len(one) != 2 || fmt.Sprint(one) != fmt.Sprint(two) {
		t.Fatalf("1 and 2 shards give different pre-noise states (%d and %d partitions)", len(one), len(two))
	}
}

func TestRelationSQLRefusesMalformedRelations(t *testing.T) {
	valid := func() *wire.Relation {
		return &wire.Relation{
			Sources: []wire.RelationSource{{Alias: "a", Unit: "u"}, {Alias: "l", Join: "left", On: wire.Compare("=", wire.Col("a", "k"), wire.Col("l", "k"))}},
			Columns: []wire.RelationColumn{{Name: "x", Expr: wire.Col("a", "x")}},
		}
	}
	tables := []string{"t0", "t1"}
	// Both renderings: the text one (model passes) and the keyed one (materialize).
	render := func(r *wire.Relation, tables []string, keyed bool) (string, error) {
		sc := relationScope(r, [][]wire.Column{{{Name: "u"}, {Name: "k"}, {Name: "x"}}, {{Name: "k"}}})
		from, unit, err := relationFrom(r, tables, 42, sc)
		if keyed {
			units := make([]string, len(tables))
			for i := range units {
				if i < len(r.Sources) && r.Sources[i].Unit != "" {
					units[i] = tables[i] + "_units"
				}
			}
			from, unit, _, err = keyedFrom(r, tables, units, 42, sc)
		}
		if err != nil {
			return "", err
		}
		return relationSQL(r, from, unit, nil, sc)
	}
	for _, keyed := range []bool{false, true} {
		if _, err := render(valid(), tables, keyed); err != nil {
			t.Fatalf("the valid base relation is refused (keyed %v): %v", keyed, err) // so each case below fails for its own reason
		}
	}
	for name, edit := range map[string]func(r *wire.Relation){
		"first source without unit": func(r *wire.Relation) { r.Sources[0].Unit = "" },
		"first source joined":       func(r *wire.Relation) { r.Sources[0].Join = "inner" },
		"unknown join kind":         func(r *wire.Relation) { r.Sources[1].Join = "cross" },
		"lookup join without on":    func(r *wire.Relation) { r.Sources[1].On = nil },
		"lookup join on a column outside its sources": func(r *wire.Relation) {
			r.Sources[1].On = wire.Compare("=", wire.Col("a", "k"), wire.Col("l", "secret"))
		},
		"lookup join on a worker column": func(r *wire.Relation) {
			r.Sources[1].On = wire.Compare("=", wire.Col("a", "__cr_unit"), wire.Col("l", "k"))
		},
		"unit join with a condition": func(r *wire.Relation) {
			r.Sources = append(r.Sources, wire.RelationSource{Alias: "b", Unit: "u", Join: "inner", On: wire.Bool(true)})
		},
		"column of an unknown source":  func(r *wire.Relation) { r.Columns[0].Expr = wire.Col("z", "x") },
		"unqualified column":           func(r *wire.Relation) { r.Columns[0].Expr = wire.Col("", "x") },
		"unadmitted function":          func(r *wire.Relation) { r.Columns[0].Expr = wire.Func("getenv", wire.Str("HOME")) },
		"column without an expression": func(r *wire.Relation) { r.Columns[0].Expr = nil },
		"reserved column":              func(r *wire.Relation) { r.Columns[0].Name = "__cr_x" },
		"reserved column, upper":       func(r *wire.Relation) { r.Columns[0].Name = "__CR_NORM" },
		"rowid column":                 func(r *wire.Relation) { r.Columns[0].Name = "RowID" },
		"names differing in case": func(r *wire.Relation) {
			r.Columns = append(r.Columns, wire.RelationColumn{Name: strings.ToUpper(r.Columns[0].Name), Expr: wire.Num("1")})
		},
		"empty column name":       func(r *wire.Relation) { r.Columns[0].Name = "" },
		"filter without per unit": func(r *wire.Relation) { r.Filter = wire.Compare(">", wire.Col("a", "x"), wire.Num("0")) },
		"tables do not match":     func(r *wire.Relation) { r.Sources = r.Sources[:1] },
		"aggregate without per unit": func(r *wire.Relation) {
			r.Columns = append(r.Columns, wire.RelationColumn{Name: "n", Aggregate: "count_star"})
		},
		"unknown aggregate": func(r *wire.Relation) {
			r.PerUnit = true
			r.Columns[0].Aggregate = "string_agg"
		},
		"unknown clamp": func(r *wire.Relation) {
			r.PerUnit = true
			r.Columns[0].Aggregate, r.Columns[0].Clamps = "sum", []wire.Clamp{{Func: "power", Value: "2"}}
		},
	} {
		t.Run(name, func(t *testing.T) {
			for _, keyed := range []bool{false, true} {
				r := valid()
				edit(r)
				if _, err := render(r, tables, keyed); errcode.Of(err) != errcode.Internal {
					t.Fatalf("keyed %v: err = %v, want %s", keyed, err, errcode.Internal)
				}
			}
		})
	}
}

// The materialized relation is per query: execute drops it whether the plan succeeds or fails
// after materializing.
func TestRelationTableIsDroppedAfterExecute(t *testing.T) {
	ctx := context.Background()
	w := relWorker(t)
	a, b := relHeavy(t, w, 10, 2, 20, func(int) float64 { return 1 })
	relTables := func() int {
		var n int
		if err := w.db.QueryRow(`SELECT count(*) FROM duckdb_tables() WHERE table_name LIKE 'rel_%'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	// Control: the query sees a materialized table while it exists.
	snap, drop, err := w.materialize(ctx, relJoin(a, b), 42)
	if err != nil {
		t.Fatal(err)
	}
	if n := relTables(); n != 1 {
		t.Fatalf("%d rel_ tables while %s exists, want 1", n, snap.table)
	}
	drop()
	for _, c := range []struct {
		name string
		key  string
		fail bool
	}{
		{"success", "a.district", false},
		{"failure after materializing", "no_such_column", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := w.execute(ctx, relPlan(relJoin(a, b), c.key, "a.cost", 1, 3))
			if (err != nil) != c.fail {
				t.Fatalf("err = %v, want failure %v", err, c.fail)
			}
			if n := relTables(); n != 0 {
				t.Fatalf("%d rel_ tables left after execute", n)
			}
		})
	}
}
