package sandbox

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/duckdb/duckdb-go/v2"

	"github.com/c1b99f93/cleanroom/catalog"
	"github.com/c1b99f93/cleanroom/connectors/synth"
	"github.com/c1b99f93/cleanroom/dp"
	"github.com/c1b99f93/cleanroom/rawset"
	"github.com/c1b99f93/cleanroom/sandbox/wire"
)

// benchPersons is the size of the generated dataset the worker benchmarks read: 200,000
// persons (about 1M medical_visits rows) unless CLEANROOM_BENCH_PERSONS says otherwise
// (2000000 gives the engine benchmark's 10M rows).
func benchPersons(b *testing.B) int {
	v := os.Getenv("CLEANROOM_BENCH_PERSONS")
	if v == "" {
		return 200_000
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		b.Fatalf("CLEANROOM_BENCH_PERSONS=%q is not a positive number", v)
	}
	return n
}

// benchWorker registers the generated medical_visits in an in-process worker and returns it
// with the plan the engine sends for COUNT(*), SUM(cost) by district (public partitions, the
// hidden unit count for small-group suppression, the default bounds).
func benchWorker(b *testing.B) (*worker, *snapTable, *wire.Plan) {
	b.Helper()
	ctx := context.Background()
	persons := benchPersons(b)
	dir, _ := filepath.Abs(fmt.Sprintf("../testdata/generated/persons-%d", persons))
	path := filepath.Join(dir, "medical_visits.parquet")
	if _, err := os.Stat(path); err != nil {
		if _, err := synth.Generate(ctx, synth.Options{Persons: persons, Seed: 1, OutDir: dir}); err != nil {
			b.Fatal(err)
		}
	}
	// The product's limits, with room to spill a 1e8-row registration (about 28 GB).
	db, err := openLockedDB(DBLimits{MemoryLimit: "4GB", Threads: 2, TempDir: b.TempDir(), MaxTempBytes: "36GB"})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	w := &worker{dir: b.TempDir(), db: db, log: slog.Default(), tables: map[string]*snapTable{}, shards: 2}
	spec, err := catalog.LoadFile("../testdata/datasets/medical_visits.yaml")
	if err != nil {
		b.Fatal(err)
	}
	snap, err := w.snapshot(ctx, &registerArgs{Kind: "parquet", src: openSource(b, path), Name: "visits.parquet", PrivacyUnit: "person_id", Columns: spec.ColumnNames()})
	if err != nil {
		b.Fatal(err)
	}
	p := &wire.Plan{Snapshot: snap.Digest, Keys: []*wire.Expr{wire.Col("", "district")}, Values: []*wire.Expr{wire.Col("", "cost")},
		Aggregates: []dp.Spec{
			{Kind: dp.Count, Value: -1, Epsilon: 0.5, MaxPartitions: 1, MaxPerPartition: 5},
			{Kind: dp.Sum, Value: 0, Lower: 0, Upper: 50000, Epsilon: 0.5, MaxPartitions: 1, MaxPerPartition: 5},
			{Kind: dp.CountDistinct, Value: -1, Epsilon: 0.5, MaxPartitions: 1, MaxPerPartition: 5},
		},
		Domains: [][]string{{"530102", "530103", "530111", "530112", "530113", "530114", "530115",
			"530124", "530125", "530126", "530127", "530128", "530129", "530181"}},
		Bounds: wire.Bounds{MaxGroupsContributed: 1, MaxContributionsPerGroup: 5}, SamplingKey: 1}
	return w, snap, p
}

// BenchmarkWorkerExecute runs the worker's execute step in-process (no pipe), so a CPU profile
// shows the scan and bounding pass alone, over about 1M generated medical_visits rows.
func BenchmarkWorkerExecute(b *testing.B) {
	w, _, p := benchWorker(b)
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, _, err := w.execute(ctx, p); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBoundPass times the bounding pass alone, on one core: the scan's batches of both
// shards are read from DuckDB once, before the timer, then bounded in every iteration.
func BenchmarkBoundPass(b *testing.B) {
	w, snap, p := benchWorker(b)
	ctx := context.Background()
	public, err := w.publicKeys(ctx, p, snap)
	if err != nil {
		b.Fatal(err)
	}
	const shards = 2
	batches := make([][]arrow.RecordBatch, shards)
	var rows int64
	for s := range shards {
		lo, hi := snap.Units*int64(s)/shards, snap.Units*int64(s+1)/shards
		err := withArrow(ctx, w.db, func(ar *duckdb.Arrow) error {
			q, err := scanSQL(p, snap, lo, hi, false)
			if err != nil {
				return err
			}
			rdr, err := ar.QueryContext(ctx, q)
			if err != nil {
				return err
			}
			defer rdr.Release()
			for rdr.Next() {
				rec := rdr.RecordBatch()
				rec.Retain()
				batches[s] = append(batches[s], rec)
				rows += rec.NumRows()
			}
			return rdr.Err()
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	defer func() {
		for _, bs := range batches {
			for _, rec := range bs {
				rec.Release()
			}
		}
	}()
	b.ResetTimer()
	for b.Loop() {
		var first *boundPass
		for s := range shards {
			lo, hi := snap.Units*int64(s)/shards, snap.Units*int64(s+1)/shards
			pass := newBoundPass(p, lo, hi, snap.Units, public)
			for _, rec := range batches[s] {
				if err := pass.addScanned(snap, rec); err != nil {
					b.Fatal(err)
				}
			}
			if err := pass.finish(); err != nil {
				b.Fatal(err)
			}
			if first == nil {
				first = pass
			} else if err := first.merge(pass); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(rows), "ns/row")
}

// BenchmarkRegister registers testdata datasets in-process and times the two steps of each
// registration apart: the snapshot (read, sort, write, load) and the raw-value set built from
// it, so their ratio is what the set adds, measured on the same iteration (this VM's timings
// drift between runs). The data are the committed testdata, or the parquet files in
// $CLEANROOM_BENCH_DATA (cleanroom testdata gen --out).
func BenchmarkRegister(b *testing.B) {
	ctx := context.Background()
	dir := os.Getenv("CLEANROOM_BENCH_DATA")
	for _, name := range []string{"residents", "medical_visits"} {
		spec, err := catalog.LoadFile("../testdata/datasets/" + name + ".yaml")
		if err != nil {
			b.Fatal(err)
		}
		if dir != "" {
			spec.Source.Path = filepath.Join(dir, name+".parquet")
		}
		// The source is read to its end by each registration: a fresh handle per iteration.
		args := func() *registerArgs {
			return &registerArgs{Kind: string(spec.Source.Kind), src: openSource(b, spec.Source.Path), Name: filepath.Base(spec.Source.Path), PrivacyUnit: spec.PrivacyUnit, Columns: spec.ColumnNames()}
		}
		raw := &rawValuesArgs{Key: testRawKey, Columns: RawValueColumns(spec)}
		b.Run(name, func(b *testing.B) {
			var snapTime, setTime time.Duration
			var entries int
			for b.Loop() {
				db, err := openLockedDB(DBLimits{MemoryLimit: "4GB", Threads: 2})
				if err != nil {
					b.Fatal(err)
				}
				w := &worker{dir: b.TempDir(), tmp: b.TempDir(), rawSetHashes: defaultRawSetHashes, db: db, log: slog.Default(), tables: map[string]*snapTable{}, shards: 2}
				start := time.Now()
				snap, err := w.snapshot(ctx, args())
				mid := time.Now()
				var info *wire.RawSetInfo
				if err == nil {
					info, err = w.buildRawSet(ctx, snap, raw)
				}
				setTime += time.Since(mid)
				snapTime += mid.Sub(start)
				db.Close()
				if err != nil {
					b.Fatal(err)
				}
				entries = info.Entries
			}
			n := float64(b.N)
			b.ReportMetric(snapTime.Seconds()*1e3/n, "snapshot-ms")
			b.ReportMetric(setTime.Seconds()*1e3/n, "rawset-ms")
			b.ReportMetric(100*setTime.Seconds()/snapTime.Seconds(), "rawset-%")
			b.ReportMetric(float64(entries), "entries")
		})
	}
}

// BenchmarkParserSerialize times parsing the HTTP rows' small query with the parser's
// prepared statement against the same statement prepared for each text (how Serialize ran
// before), in the same run.
func BenchmarkParserSerialize(b *testing.B) {
	p, err := NewParser()
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	ctx := context.Background()
	const q = "SELECT district, COUNT(*) AS visits FROM medical_visits GROUP BY district"
	b.Run("prepared", func(b *testing.B) {
		for b.Loop() {
			if _, err := p.Serialize(ctx, q); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("per-text", func(b *testing.B) {
		for b.Loop() {
			var out string
			if err := p.db.QueryRowContext(ctx, "SELECT CAST(json_serialize_sql(?::VARCHAR) AS VARCHAR)", q).Scan(&out); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkHashValues hashes 1M distinct identifier-like values (500 Arrow batches of 2048, as
// DuckDB hands a distinct column over) into a raw-value set's builder on one goroutine and on
// two (the worker's default, one per DuckDB thread), in the same run.
func BenchmarkHashValues(b *testing.B) {
	schema := arrow.NewSchema([]arrow.Field{{Name: "v", Type: arrow.BinaryTypes.String}}, nil)
	var batches []arrow.RecordBatch
	for i := range 500 {
		sb := array.NewStringBuilder(memory.DefaultAllocator)
		for j := range 2048 {
			sb.Append(fmt.Sprintf("V%09d", i*2048+j))
		}
		col := sb.NewArray()
		batches = append(batches, array.NewRecordBatch(schema, []arrow.Array{col}, 2048))
		col.Release()
	}
	k, err := rawset.NewKeyer(testRawKey)
	if err != nil {
		b.Fatal(err)
	}
	for _, workers := range []int{1, 2} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			for b.Loop() {
				rdr, err := array.NewRecordReader(schema, batches)
				if err != nil {
					b.Fatal(err)
				}
				set := k.NewBuilder(b.TempDir(), defaultRawSetHashes)
				if err := hashValues(rdr, k, set, workers); err != nil {
					b.Fatal(err)
				}
				set.Close()
				rdr.Release()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/(500*2048), "ns/value")
		})
	}
}
