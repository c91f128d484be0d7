package sandbox

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/c1b99f93/cleanroom/connectors/synth"
	"github.com/c1b99f93/cleanroom/engine/catalog"
	"github.com/c1b99f93/cleanroom/engine/dp"
)

// BenchmarkWorkerExecute runs the worker's execute step in-process (no pipe), so a CPU profile
// shows the scan and bounding pass alone, over about 1M generated medical_visits rows.
func BenchmarkWorkerExecute(b *testing.B) {
	ctx := context.Background()
	dir, _ := filepath.Abs("../testdata/generated/persons-200000")
	path := filepath.Join(dir, "medical_visits.parquet")
	if _, err := os.Stat(path); err != nil {
		if _, err := synth.Generate(ctx, synth.Options{Persons: 200_000, Seed: 1, OutDir: dir}); err != nil {
			b.Fatal(err)
		}
	}
	db, err := openLockedDB(DBLimits{MemoryLimit: "4GB", Threads: 2})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	w := &worker{dir: b.TempDir(), db: db, log: slog.Default(), tables: map[string]*Snapshot{}, shards: 2}
	spec, err := catalog.LoadFile("../testdata/datasets/medical_visits.yaml")
	if err != nil {
		b.Fatal(err)
	}
	snap, err := w.register(ctx, &registerArgs{Kind: "parquet", Path: path, PrivacyUnit: "person_id", Columns: spec.ColumnNames()})
	if err != nil {
		b.Fatal(err)
	}
	p := &Plan{Snapshot: snap.Digest, Keys: []string{`"district"`}, Values: []string{`"cost"`},
		Aggregates: []dp.Spec{
			{Kind: dp.Count, Value: -1, Epsilon: 0.5, MaxPartitions: 1, MaxPerPartition: 5},
			{Kind: dp.Sum, Value: 0, Lower: 0, Upper: 50000, Epsilon: 0.5, MaxPartitions: 1, MaxPerPartition: 5},
		},
		Domains: [][]string{{"530102", "530103", "530111", "530112", "530113", "530114", "530115",
			"530124", "530125", "530126", "530127", "530128", "530129", "530181"}},
		Bounds: Bounds{MaxGroupsContributed: 1, MaxContributionsPerGroup: 5}, SamplingKey: 1}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := w.execute(ctx, p); err != nil {
			b.Fatal(err)
		}
	}
}
