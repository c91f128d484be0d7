package sandbox

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// TestBaselineLoadsAndCountsRowsOnly: the baseline reads the committed Parquet into a table,
// reports its row count, and a query answers how many rows it produced; a query against a
// table it does not have is an error, not a zero.
func TestBaselineLoadsAndCountsRowsOnly(t *testing.T) {
	ctx := context.Background()
	b, err := OpenBaseline(DBLimits{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	n, err := b.Load(ctx, "medical_visits", filepath.Join("..", "testdata", "datasets", "health-commission", "medical_visits.parquet"), false)
	if err != nil {
		t.Fatal(err)
	}
	if n != 52121 {
		t.Fatalf("loaded %d rows, want the committed file's 52121", n)
	}
	rows, err := b.Query(ctx, "SELECT district, COUNT(*) FROM medical_visits GROUP BY district")
	if err != nil || rows != 14 {
		t.Fatalf("grouped by district: %d rows, %v; want 14", rows, err)
	}
	if err := b.Drop(ctx, "medical_visits"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Query(ctx, "SELECT COUNT(*) FROM medical_visits"); err == nil {
		t.Fatal("a dropped table was queried")
	}
}

// TestBaselineRunsUnderTheWorkersLimits: the baseline takes a worker's limits, and a table
// larger than its memory limit spills to its spill directory instead of growing the process
// (the 1e8 bench row depends on it), and the spill goes when the table does.
func TestBaselineRunsUnderTheWorkersLimits(t *testing.T) {
	ctx := context.Background()
	spill := t.TempDir()
	b, err := OpenBaseline(DBLimits{MemoryLimit: "64MB", Threads: 1, TempDir: spill, MaxTempBytes: "2GB"})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for setting, want := range map[string]string{"memory_limit": "61.0 MiB", "threads": "1", "temp_directory": spill, "max_temp_directory_size": "1.8 GiB"} {
		var got string
		if err := b.db.QueryRowContext(ctx, "SELECT current_setting('"+setting+"')::VARCHAR").Scan(&got); err != nil || got != want {
			t.Errorf("%s = %q (%v), want %q", setting, got, err, want)
		}
	}
	// 8M random doubles (64 MB uncompressible) outgrow the 64MB limit.
	if _, err := b.db.ExecContext(ctx, "CREATE TABLE big AS SELECT random() AS x FROM range(8000000)"); err != nil {
		t.Fatalf("a table over the memory limit: %v", err)
	}
	if rows, err := b.Query(ctx, "SELECT sum(x) FROM big"); err != nil || rows != 1 {
		t.Fatalf("querying the spilled table: %d rows, %v", rows, err)
	}
	if entries, err := os.ReadDir(spill); err != nil || len(entries) == 0 {
		t.Fatalf("nothing spilled to %s (%v)", spill, err)
	}
	if _, err := OpenBaseline(DBLimits{MemoryLimit: "lots"}); err == nil {
		t.Error("a memory limit that is not a size was taken")
	}
}
