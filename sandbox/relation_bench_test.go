package sandbox

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/c1b99f93/cleanroom/catalog"
	"github.com/c1b99f93/cleanroom/sandbox/wire"
)

// BenchmarkRelation materializes the relations of the bench's join_residents (visits ⋈
// residents on the unit, five rows per unit before the join) and per_person_subquery (each
// person's SUM(cost), a thousand rows per unit) over the generated data (benchPersons), so a
// CPU profile shows materialize alone. The snapshots' unit tables are built before the timer.
func BenchmarkRelation(b *testing.B) {
	w, visits, _ := benchWorker(b)
	ctx := context.Background()
	dir, _ := filepath.Abs(fmt.Sprintf("../testdata/generated/persons-%d", benchPersons(b)))
	spec, err := catalog.LoadFile("../testdata/datasets/residents.yaml")
	if err != nil {
		b.Fatal(err)
	}
	res, err := w.snapshot(ctx, &registerArgs{Kind: "parquet", src: openSource(b, filepath.Join(dir, "residents.parquet")), Name: "residents.parquet", PrivacyUnit: "person_id", Columns: spec.ColumnNames()})
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		rel  *wire.Relation
	}{
		{"join", &wire.Relation{Keyed: true,
			Sources:        []wire.RelationSource{{Snapshot: visits.Digest, Alias: "v", Unit: "person_id"}, {Snapshot: res.Digest, Alias: "r", Unit: "person_id", Join: "inner"}},
			Columns:        []wire.RelationColumn{{Name: "r.income_band", Expr: wire.Col("r", "income_band")}, {Name: "v.cost", Expr: wire.Col("v", "cost")}},
			MaxRowsPerUnit: 5}},
		{"per_unit", &wire.Relation{Keyed: true,
			Sources: []wire.RelationSource{{Snapshot: visits.Digest, Alias: "t", Unit: "person_id"}},
			Columns: []wire.RelationColumn{{Name: "total", Aggregate: "sum", Expr: wire.Col("t", "cost")}},
			PerUnit: true, MaxRowsPerUnit: 1000}},
	} {
		// The reference (the rendering before unit tables, referenceMaterialize) beside it, in
		// the same process: this machine's load moves absolute times, not their ratio.
		for _, keyed := range []bool{true, false} {
			name := c.name + "/keyed"
			if !keyed {
				name = c.name + "/reference"
			}
			b.Run(name, func(b *testing.B) {
				if _, drop, err := w.materialize(ctx, c.rel, 42); err != nil { // builds the unit tables
					b.Fatal(err)
				} else {
					drop()
				}
				var rows int64
				for b.Loop() {
					var snap *snapTable
					var err error
					if keyed {
						var drop func()
						snap, drop, err = w.materialize(ctx, c.rel, 42)
						if err == nil {
							drop()
						}
					} else if snap, err = referenceMaterialize(ctx, w, c.rel, 42); err == nil {
						_, err = w.db.ExecContext(ctx, "DROP TABLE "+snap.table)
					}
					if err != nil {
						b.Fatal(err)
					}
					rows = snap.Rows
				}
				b.ReportMetric(float64(rows), "rows")
			})
		}
	}
}
