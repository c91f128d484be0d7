package sandbox

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/c1b99f93/cleanroom/catalog"
	"github.com/c1b99f93/cleanroom/server/loadgen"
)

// memRows and memLimitMB size TestRegistrationAndLoadStayNearTheMemoryLimit: 2M rows of about
// 100 bytes, so the staging and sorted tables hold about 5× the DuckDB limit and must spill.
const (
	memRows    = 2_000_000
	memPersons = 400_000
	memLimitMB = 100
	// memBoundMB is the worker's allowed peak RSS: DuckDB's limit plus what lives outside it
	// (the Go runtime, the connector's and the file writer's batches, the raw-value set's
	// hashes, DuckDB's code and allocator). Measured on this machine: 503 MB for the
	// registration (584 MB before it streamed the sorted table), 250 MB for the load; the band
	// is wide so the test does not flake, and a pipeline that held the sorted rows in Go (about
	// 250 MB more) would exceed it.
	memBoundMB = 700
)

// writeMemCSV writes memRows visits of memPersons persons in a scrambled order.
func writeMemCSV(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "many.csv")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	fmt.Fprintln(w, "person_id,district,cost,note")
	for i := range memRows {
		p := (i * 7919) % memPersons
		// note makes the rows wide (about 100 bytes each) and distinct.
		fmt.Fprintf(w, "53010219%010d,%c,%d.%03d,%064x\n", p, 'A'+byte(i%2), i%5000, i%997, uint64(i)*0x9e3779b97f4a7c15)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// workerPeakMB is the peak RSS (VmHWM) of this process's worker processes since the last reset.
func workerPeakMB(t *testing.T) float64 {
	t.Helper()
	m, err := loadgen.ProcMem(os.Getpid())()
	if err != nil {
		t.Fatal(err)
	}
	return float64(m.WorkersHWMKiB) / 1024
}

// Registration streams the sorted rows from DuckDB (which spills to its temporary directory)
// to the snapshot file, and a load spills the same way: the worker's peak memory follows its
// DuckDB limit, not the number of rows. Bound, not timing: the rows and the bound are fixed.
func TestRegistrationAndLoadStayNearTheMemoryLimit(t *testing.T) {
	ctx := context.Background()
	path := writeMemCSV(t)
	dir := t.TempDir()
	start := func() *Client {
		cfg := Config{Worker: WorkerConfig{Dir: dir, Domain: "test",
			DB: DBLimits{MemoryLimit: fmt.Sprintf("%dMB", memLimitMB), Threads: 2, TempDir: t.TempDir()}}, RawValueKey: testRawKey}
		c, _, err := Start(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	c := start()
	if err := loadgen.ResetPeaks(os.Getpid()); err != nil {
		t.Fatal(err)
	}
	spec := visitsSpec(path)
	spec.Columns["note"] = catalog.Column{Tags: []catalog.Tag{catalog.TagAttribute}}
	snap, err := register(ctx, t, c, spec)
	if err != nil {
		t.Fatal(err)
	}
	if snap.Rows != memRows || snap.Units != memPersons {
		t.Fatalf("rows=%d units=%d, want %d and %d", snap.Rows, snap.Units, memRows, memPersons)
	}
	peak := workerPeakMB(t)
	t.Logf("registration of %d rows under memory_limit %d MB: worker peak RSS %.0f MB", memRows, memLimitMB, peak)
	if peak > memBoundMB {
		t.Errorf("registration: worker peak RSS %.0f MB, above %d MB", peak, memBoundMB)
	}
	c.Close()

	// A fresh worker loads the snapshot from its file.
	c = start()
	if err := loadgen.ResetPeaks(os.Getpid()); err != nil {
		t.Fatal(err)
	}
	loaded, err := c.Load(ctx, snap.Digest)
	if err != nil {
		t.Fatal(err)
	}
	if loaded.Rows != memRows || loaded.Units != memPersons {
		t.Fatalf("loaded rows=%d units=%d, want %d and %d", loaded.Rows, loaded.Units, memRows, memPersons)
	}
	peak = workerPeakMB(t)
	t.Logf("load of %d rows under memory_limit %d MB: worker peak RSS %.0f MB", memRows, memLimitMB, peak)
	if peak > memBoundMB {
		t.Errorf("load: worker peak RSS %.0f MB, above %d MB", peak, memBoundMB)
	}
}
