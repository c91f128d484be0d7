package sandbox

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/c1b99f93/cleanroom/sandbox/wire"
)

// referenceMaterialize is materialize as it was before unit tables (kept here as the reference
// the keyed rendering must agree with): every row's unit normalised as text, joined and grouped
// on that text, kept rows chosen by boundedRows' windows, units ranked with dense_rank and rows
// sorted by the normalised unit and every column. The table keeps the normalised unit as
// __cr_norm, so rows can be compared by unit identity.
func referenceMaterialize(ctx context.Context, w *worker, r *wire.Relation, samplingKey uint64) (*snapTable, error) {
	_, tables, sc, err := w.relationSources(ctx, r)
	if err != nil {
		return nil, err
	}
	from, unit, err := relationFrom(r, tables, samplingKey, sc)
	if err != nil {
		return nil, err
	}
	argTypes, err := w.argumentTypes(ctx, r.Columns, from, sc)
	if err != nil {
		return nil, err
	}
	inner, err := relationSQL(r, from, unit, argTypes, sc)
	if err != nil {
		return nil, err
	}
	order := []string{normColumn}
	names := []string{normColumn}
	for _, c := range r.Columns {
		order = append(order, quoteIdent(c.Name))
		names = append(names, quoteIdent(c.Name))
	}
	table := fmt.Sprintf("ref_%d", w.nextID())
	sel := strings.Join(append([]string{fmt.Sprintf("(dense_rank() OVER (ORDER BY %s) - 1) AS %s", normColumn, unitColumn)}, names...), ", ")
	if _, err := w.db.ExecContext(ctx, fmt.Sprintf("CREATE TABLE %s AS SELECT %s FROM (%s) ORDER BY %s", table, sel, inner, strings.Join(order, ", "))); err != nil {
		return nil, err
	}
	snap := &snapTable{table: table}
	for _, c := range r.Columns {
		snap.Columns = append(snap.Columns, wire.Column{Name: c.Name})
	}
	if err := w.db.QueryRowContext(ctx, fmt.Sprintf("SELECT count(*), coalesce(max(%s) + 1, 0) FROM %s", unitColumn, table)).Scan(&snap.Rows, &snap.Units); err != nil {
		return nil, err
	}
	if snap.starts, err = w.unitStarts(ctx, table, snap.Units, snap.Rows); err != nil {
		return nil, err
	}
	return snap, nil
}

// relRow is one row of a materialized relation: its unit's place among the relation's units
// (the bounding pass's unit), the unit's normalised text, and its columns as text.
type relRow struct {
	unit int
	norm string
	cols string
}

// relRows reads a materialized relation in rowid order. norm gives the normalised unit of a
// row: a column of the table (the reference's __cr_norm), a literal (none), or read through the
// first source's unit table.
func relRows(t *testing.T, w *worker, snap *snapTable, norm string) []relRow {
	t.Helper()
	vals := []string{"'|'"}
	for _, c := range snap.Columns {
		vals = append(vals, fmt.Sprintf("coalesce(CAST(r.%s AS VARCHAR), '<null>')", quoteIdent(c.Name)), "'|'")
	}
	q := fmt.Sprintf("SELECT r.rowid, %s, concat(%s) FROM %s AS r ORDER BY r.rowid", norm, strings.Join(vals, ", "), snap.table)
	if !strings.HasPrefix(norm, "r.") && !strings.HasPrefix(norm, "'") { // a column or a literal
		q = fmt.Sprintf("SELECT r.rowid, u.__cr_norm, concat(%s) FROM %s AS r JOIN %s AS u ON r.%s = u.%[4]s ORDER BY r.rowid", strings.Join(vals, ", "), snap.table, norm, unitColumn)
	}
	rows, err := w.db.Query(q)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []relRow
	u := 0
	for rows.Next() {
		var id int64
		var r relRow
		if err := rows.Scan(&id, &r.norm, &r.cols); err != nil {
			t.Fatal(err)
		}
		u = snap.unitOf(id, u)
		r.unit = u
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if int64(len(out)) != snap.Rows {
		t.Fatalf("read %d rows of a relation of %d (a unit without a unit-table entry?)", len(out), snap.Rows)
	}
	return out
}

// unitCols drops the normalised unit, which only the reference's table holds.
func unitCols(rows []relRow) []relRow {
	out := slices.Clone(rows)
	for i := range out {
		out[i].norm = ""
	}
	return out
}

// byUnit sorts each unit's rows, so two relations compare as multisets of (unit, row).
func byUnit(rows []relRow) []relRow {
	out := slices.Clone(rows)
	slices.SortStableFunc(out, func(a, b relRow) int {
		if a.unit != b.unit {
			return a.unit - b.unit
		}
		return strings.Compare(a.cols, b.cols)
	})
	return out
}

// relSpell writes person i's unit as a provider might: in either case, with stray spaces.
func relSpell(rng *rand.Rand, i int) string {
	id := fmt.Sprintf("53010219800101%03dx", i)
	switch rng.IntN(4) {
	case 1:
		id = strings.ToUpper(id)
	case 2:
		id = `" ` + id + `"`
	case 3:
		id = `"` + strings.ToUpper(id) + ` "`
	}
	return id
}

// relRandom registers seeded random datasets: A (person, district, cost) and B (person, ward,
// score) with messy unit spellings, duplicated rows, heavy persons and persons in one dataset
// only, and a lookup table L (code, name) with a duplicated code and a district it lacks.
func relRandom(t *testing.T, w *worker, seed uint64) (a, b, l string) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 7))
	var ra, rb []string
	for i := range 40 {
		n := rng.IntN(5)
		if rng.IntN(5) == 0 {
			n = 6 + rng.IntN(10) // heavy
		}
		if i%7 == 3 {
			n = 0 // in B only
		}
		for range n {
			row := fmt.Sprintf("%s,%s,%d", relSpell(rng, i), []string{"A", "B", "C"}[rng.IntN(3)], rng.IntN(20))
			ra = append(ra, row)
			if rng.IntN(6) == 0 {
				ra = append(ra, row) // a duplicated row
			}
		}
		m := rng.IntN(4)
		if i%5 == 1 {
			m = 0 // in A only
		}
		for range m {
			rb = append(rb, fmt.Sprintf("%s,W%d,%d", relSpell(rng, i), rng.IntN(3), rng.IntN(9)))
		}
	}
	rng.Shuffle(len(ra), func(i, j int) { ra[i], ra[j] = ra[j], ra[i] })
	return relRegister(t, w, "person_id", "person_id,district,cost", ra),
		relRegister(t, w, "person_id", "person_id,ward,score", rb),
		relRegister(t, w, "", "code,name", []string{"A,Alpha", "A,Alfa", "B,Beta"})
}

// relCases are relations over relRandom's datasets: unit joins (inner, left, a self-join), a
// lookup join, and per-unit relations with and without group keys and filters, each with
// several row caps.
func relCases(a, b, l string) map[string]*wire.Relation {
	srcA := wire.RelationSource{Snapshot: a, Alias: "a", Unit: "person_id"}
	srcB := wire.RelationSource{Snapshot: b, Alias: "b", Unit: "person_id", Join: "inner"}
	leftB := srcB
	leftB.Join = "left"
	self := wire.RelationSource{Snapshot: a, Alias: "a2", Unit: "person_id", Join: "inner"}
	lookup := wire.RelationSource{Snapshot: l, Alias: "l", Join: "left", On: wire.Compare("=", wire.Col("a", "district"), wire.Col("l", "code"))}
	rowCols := []wire.RelationColumn{{Name: "a.district", Expr: wire.Col("a", "district")}, {Name: "a.cost", Expr: wire.Col("a", "cost")}}
	bCols := append(slices.Clone(rowCols), wire.RelationColumn{Name: "b.ward", Expr: wire.Col("b", "ward")})
	perUnit := []wire.RelationColumn{{Name: "n", Aggregate: "count_star"}, {Name: "total", Aggregate: "sum", Expr: wire.Col("a", "cost")}}
	out := map[string]*wire.Relation{}
	for _, n := range []int64{0, 1, 2, 3} {
		add := func(name string, r wire.Relation) {
			r.MaxRowsPerUnit, r.Keyed = n, true
			out[fmt.Sprintf("%s/max%d", name, n)] = &r
		}
		add("inner", wire.Relation{Sources: []wire.RelationSource{srcA, srcB}, Columns: bCols})
		add("left", wire.Relation{Sources: []wire.RelationSource{srcA, leftB}, Columns: bCols})
		add("self", wire.Relation{Sources: []wire.RelationSource{srcA, self}, Columns: append(slices.Clone(rowCols), wire.RelationColumn{Name: "a2.cost", Expr: wire.Col("a2", "cost")})})
		add("lookup", wire.Relation{Sources: []wire.RelationSource{srcA, srcB, lookup}, Columns: append(slices.Clone(bCols), wire.RelationColumn{Name: "l.name", Expr: wire.Col("l", "name")})})
		add("per unit", wire.Relation{Sources: []wire.RelationSource{srcA}, Columns: perUnit, PerUnit: true})
		add("per unit filtered", wire.Relation{Sources: []wire.RelationSource{srcA}, Columns: perUnit, PerUnit: true, Filter: wire.Compare(">", wire.Col("a", "cost"), wire.Num("12"))})
		add("per unit by district", wire.Relation{Sources: []wire.RelationSource{srcA}, PerUnit: true, GroupBy: []*wire.Expr{wire.Col("a", "district")},
			Columns: append([]wire.RelationColumn{{Name: "district", Expr: wire.Col("a", "district")}}, perUnit...)})
		add("per unit joined", wire.Relation{Sources: []wire.RelationSource{srcA, leftB}, PerUnit: true,
			Columns: append(slices.Clone(perUnit), wire.RelationColumn{Name: "top", Aggregate: "max", Expr: wire.Col("b", "score")})})
	}
	return out
}

// The keyed relation (unit tables, integer joins, kept places without windows) holds exactly
// the reference's rows: the same multiset of (unit, row) — so the same persons match across
// spellings, the same rows of each unit are kept for the key, nothing is split or merged — and
// per-unit relations hold them in the same order. Rows per unit stay within the cap's product.
// Seeds 1–4 (fixed); no timing or randomness in what is checked.
func TestRelationKeyedMatchesReference(t *testing.T) {
	ctx := context.Background()
	for seed := uint64(1); seed <= 4; seed++ {
		w := relWorker(t)
		a, b, l := relRandom(t, w, seed)
		for name, rel := range relCases(a, b, l) {
			t.Run(fmt.Sprintf("seed%d/%s", seed, name), func(t *testing.T) {
				ref, err := referenceMaterialize(ctx, w, rel, 42)
				if err != nil {
					t.Fatal(err)
				}
				got := relMaterialize(t, w, rel)
				if got.Units != ref.Units || got.Rows != ref.Rows {
					t.Fatalf("units=%d rows=%d, reference %d and %d", got.Units, got.Rows, ref.Units, ref.Rows)
				}
				first, err := w.loaded(ctx, rel.Sources[0].Snapshot)
				if err != nil {
					t.Fatal(err)
				}
				ut, err := w.unitTable(ctx, first, rel.Sources[0].Unit)
				if err != nil {
					t.Fatal(err)
				}
				gotRows, refRows := relRows(t, w, got, ut), relRows(t, w, ref, "r."+normColumn)
				if rel.PerUnit {
					if fmt.Sprint(gotRows) != fmt.Sprint(refRows) {
						t.Fatalf("per-unit rows differ from the reference:\n got %v\nwant %v", gotRows, refRows)
					}
				} else if g, r := byUnit(gotRows), byUnit(refRows); fmt.Sprint(g) != fmt.Sprint(r) {
					t.Fatalf("(unit, row) multisets differ from the reference:\n got %v\nwant %v", g, r)
				}
				// A plan recorded before relations were keyed (Keyed false) is materialized as
				// it was then, row for row in the same order, so its replay reproduces it.
				unkeyed := *rel
				unkeyed.Keyed = false
				old := relMaterialize(t, w, &unkeyed)
				if oldRows := relRows(t, w, old, "''"); fmt.Sprint(unitCols(oldRows)) != fmt.Sprint(unitCols(refRows)) {
					t.Fatalf("an unkeyed relation differs from the rendering it was recorded with:\n got %v\nwant %v", unitCols(oldRows), unitCols(refRows))
				}
				if n := rel.MaxRowsPerUnit; n > 0 && !rel.PerUnit {
					limit := n * n // two sources with a unit; the lookup doubles at most
					if len(rel.Sources) == 3 {
						limit *= 2
					}
					for u := range got.Units {
						if rows := got.starts[u+1] - got.starts[u]; rows > limit {
							t.Fatalf("unit %d has %d rows, cap %d", u, rows, limit)
						}
					}
				}
			})
		}
	}
}

// A relation's table depends only on the data and the key: materializing it twice, or in a
// fresh worker that registered the same files, gives the same rows in the same order with the
// same unit keys.
func TestRelationTableIsTheSameInAFreshWorker(t *testing.T) {
	w1, w2 := relWorker(t), relWorker(t)
	a, b, l := relRandom(t, w1, 9)
	if a2, b2, l2 := relRandom(t, w2, 9); a2 != a || b2 != b || l2 != l {
		t.Fatal("the same files registered twice give different snapshots")
	}
	for name, rel := range relCases(a, b, l) {
		t.Run(name, func(t *testing.T) {
			read := func(w *worker) string {
				snap := relMaterialize(t, w, rel)
				rows := relRows(t, w, snap, "r."+unitColumn)
				return fmt.Sprint(snap.starts, rows)
			}
			first, again, fresh := read(w1), read(w1), read(w2)
			if first != again || first != fresh {
				t.Fatalf("the relation's table differs between materializations:\n%s\n%s\n%s", first, again, fresh)
			}
		})
	}
}
