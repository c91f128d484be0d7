package sandbox

import (
	"context"
	"path/filepath"
	"testing"
)

// TestBaselineLoadsAndCountsRowsOnly: the baseline reads the committed Parquet into a table,
// reports its row count, and a query answers how many rows it produced; a query against a
// table it does not have is an error, not a zero.
func TestBaselineLoadsAndCountsRowsOnly(t *testing.T) {
	ctx := context.Background()
	b, err := OpenBaseline(2)
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
