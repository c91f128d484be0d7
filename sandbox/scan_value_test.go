package sandbox

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/duckdb/duckdb-go/v2"

	"github.com/c1b99f93/cleanroom/catalog"
	"github.com/c1b99f93/cleanroom/dp"
	"github.com/c1b99f93/cleanroom/sandbox/wire"
)

func TestAsDoubleRendering(t *testing.T) {
	snap := &snapTable{Snapshot: wire.Snapshot{Columns: []wire.Column{
		{Name: "d", Type: "float64"}, {Name: "i", Type: "int64"}, {Name: "f", Type: "float32"},
		{Name: "s", Type: "utf8"}, {Name: "m", Type: "decimal(38, 2)"}, {Name: "u"},
	}}}
	for _, tc := range []struct {
		name     string
		v        *wire.Expr
		identity bool
		want     string
	}{
		{"double column as it is", wire.Col("", "d"), false, `"d"`},
		{"integer column cast without try", wire.Col("", "i"), false, `CAST("i" AS DOUBLE)`},
		{"float column cast without try", wire.Col("", "f"), false, `CAST("f" AS DOUBLE)`},
		{"text column keeps try", wire.Col("", "s"), false, `try(CAST("s" AS DOUBLE))`},
		{"decimal column keeps try", wire.Col("", "m"), false, `try(CAST("m" AS DOUBLE))`},
		{"column of unknown type (a relation's) keeps try", wire.Col("", "u"), false, `try(CAST("u" AS DOUBLE))`},
		{"qualified column keeps try", wire.Col("t", "d"), false, `try(CAST("d" AS DOUBLE))`},
		{"identity keeps try", wire.Col("", "d"), true, `try(CAST("d" AS DOUBLE))`},
		{"expression keeps try", wire.Func("abs", wire.Col("", "d")), false, `try(CAST(x AS DOUBLE))`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := `"` + tc.v.Name + `"`
			if tc.v.Kind != wire.KindColumn {
				r = "x"
			}
			if got := asDouble(r, tc.v, tc.identity, snap); got != tc.want {
				t.Fatalf("asDouble = %s, want %s", got, tc.want)
			}
		})
	}
}

// oldValueRendering is scanSQL's query with every value read through try(CAST(… AS DOUBLE)),
// as before asDouble.
func oldValueRendering(q string, p *wire.Plan) string {
	for _, v := range p.Values {
		c := `"` + v.Name + `"`
		q = strings.Replace(q, ", CAST("+c+" AS DOUBLE)", ", try(CAST("+c+" AS DOUBLE))", 1)
		q = strings.Replace(q, ", "+c, ", try(CAST("+c+" AS DOUBLE))", 1)
	}
	return q
}

// Reading a bare numeric column without try() must not change a single pre-noise state: the
// values are the same DOUBLEs (NULLs included), so the encoded DP states match byte for byte
// those of the old try(CAST(…)) scan, for DOUBLE, integer and text columns with NULLs and
// values outside the bounds.
func TestBareNumericColumnsScanAsTheTotalCastDid(t *testing.T) {
	ctx := context.Background()
	db, err := openLockedDB(DBLimits{MemoryLimit: "1GB", Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	w := &worker{dir: t.TempDir(), db: db, log: slog.New(slog.NewTextHandler(io.Discard, nil)), tables: map[string]*snapTable{}, shards: 2, shardRows: 1}
	var b strings.Builder
	b.WriteString("person_id,district,cost,n,note\n")
	for i := 0; i < 6000; i++ {
		cost, n, note := fmt.Sprintf("%d.%03d", (i*7919)%6000-50, (i*37)%1000), fmt.Sprint((i*31)%9000-100), fmt.Sprint(i%50)
		switch i % 11 {
		case 3:
			cost, n = "", ""
		case 5:
			note = "n/a"
		}
		fmt.Fprintf(&b, "5301021980%08d,%s,%s,%s,%s\n", (i*13)%1700, []string{"A", "B"}[i%2], cost, n, note)
	}
	path := writeCSV(t, "v.csv", b.String())
	spec := visitsSpec(path)
	spec.Columns["n"] = catalog.Column{Tags: []catalog.Tag{catalog.TagAttribute}}
	spec.Columns["note"] = catalog.Column{Tags: []catalog.Tag{catalog.TagAttribute}}
	snap, err := w.snapshot(ctx, &registerArgs{Kind: "csv", src: openSource(t, path), Name: "v.csv", PrivacyUnit: "person_id", Columns: spec.ColumnNames()})
	if err != nil {
		t.Fatal(err)
	}
	p := countPlan(snap.Digest, 1, 3)
	p.Values = []*wire.Expr{wire.Col("", "cost"), wire.Col("", "n"), wire.Col("", "note")}
	for v := range 3 {
		p.Aggregates = append(p.Aggregates, dp.Spec{Kind: dp.Sum, Value: v, Lower: 0, Upper: 5000, Epsilon: 1, MaxPartitions: 1, MaxPerPartition: 3},
			dp.Spec{Kind: dp.Count, Value: v, Epsilon: 1, MaxPartitions: 1, MaxPerPartition: 3})
	}
	q, err := scanSQL(p, snap, 0, snap.Units, false)
	if err != nil {
		t.Fatal(err)
	}
	old := oldValueRendering(q, p)
	if !strings.Contains(q, `, "cost"`) || !strings.Contains(q, `, CAST("n" AS DOUBLE)`) || !strings.Contains(q, `try(CAST("note" AS DOUBLE))`) ||
		strings.Count(old, "try(CAST(") != 3 {
		t.Fatalf("renderings do not exercise the change:\n%s\n%s", q, old)
	}
	states := func(q string) map[uint64]string {
		pass := newBoundPass(p, 0, snap.Units, snap.Units, nil)
		if err := w.scanQuery(ctx, q, snap, pass); err != nil {
			t.Fatal(err)
		}
		if err := pass.finish(); err != nil {
			t.Fatal(err)
		}
		return encodedStates(t, pass)
	}
	got, want := states(q), states(old)
	if len(got) != 2 || len(want) != 2 {
		t.Fatalf("partitions: %d and %d, want 2", len(got), len(want))
	}
	for g := range want {
		if got[g] != want[g] {
			t.Fatalf("partition %x: the bare-column scan gives different pre-noise states", g)
		}
	}
}

// BenchmarkScanValue times the count_sum scan alone (DuckDB executing it and the Arrow
// conversion, no bounding) with the value read as the column itself and, for comparison, through
// try(CAST(… AS DOUBLE)), alternating; cpu-ms/op is the process's CPU time, DuckDB's threads
// included, which holds better than wall time on a shared machine.
func BenchmarkScanValue(b *testing.B) {
	w, snap, p := benchWorker(b)
	ctx := context.Background()
	q, err := scanSQL(p, snap, 0, snap.Units, false)
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct{ name, q string }{{"bare", q}, {"try_cast", oldValueRendering(q, p)}, {"bare", q}, {"try_cast", oldValueRendering(q, p)}} {
		b.Run(c.name, func(b *testing.B) {
			c0 := processCPU()
			for b.Loop() {
				err := withArrow(ctx, w.db, func(ar *duckdb.Arrow) error {
					rdr, err := ar.QueryContext(ctx, c.q)
					if err != nil {
						return err
					}
					defer rdr.Release()
					for rdr.Next() {
					}
					return rdr.Err()
				})
				if err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64((processCPU()-c0).Microseconds())/1e3/float64(b.N), "cpu-ms/op")
		})
	}
}
