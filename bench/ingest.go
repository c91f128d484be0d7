package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/c1b99f93/cleanroom/engine"
	"github.com/c1b99f93/cleanroom/server/loadgen"
)

// measureIngest times registering medical_visits (Parquet or CSV) to a snapshot — read,
// cluster by privacy unit, write the content-addressed snapshot, load it, build the raw-value
// set — against DuckDB reading the same file into a table in this process (read_parquet or
// read_csv). Each repetition registers into a fresh engine: the same data registered twice is
// refused (one data, one lifetime budget). Opening that engine is not timed.
func measureIngest(ctx context.Context, o Options, d *data, name string, csv bool) (Result, error) {
	dir, err := os.MkdirTemp("", "cleanroom-bench-raw-")
	if err != nil {
		return Result{}, err
	}
	defer os.RemoveAll(dir)
	raw, err := openRaw(o, dir)
	if err != nil {
		return Result{}, err
	}
	defer raw.Close()
	spec, err := d.spec(o, "medical_visits", csv)
	if err != nil {
		return Result{}, err
	}
	var regS, rawS []float64
	var rows int64
	var workerMB float64
	for range o.Reps {
		t0 := time.Now()
		if rows, err = raw.Load(ctx, "ingest", spec.Source.Path, csv); err != nil {
			return Result{}, err
		}
		rawS = append(rawS, time.Since(t0).Seconds())
		if err := raw.Drop(ctx, "ingest"); err != nil {
			return Result{}, err
		}
		s, mb, err := registerOnce(ctx, o, spec.Source.Path, csv, d)
		if err != nil {
			return Result{}, fmt.Errorf("bench: %s at %d rows: %w", name, rows, err)
		}
		regS = append(regS, s)
		workerMB = max(workerMB, mb)
	}
	r := Result{Name: name, Scale: rows, MedianS: median(regS), RawMedianS: ptr(median(rawS)), Samples: o.Reps,
		WorkerPeakRSSMB: ptr(workerMB), PeakRSSMB: ptr(workerMB)}
	r.RatioVsRaw = ratio(r.MedianS, *r.RawMedianS)
	r.RowsPerS = ptr(float64(rows) / r.MedianS)
	r.RawRowsPerS = ptr(float64(rows) / *r.RawMedianS)
	r.Note = "peak_rss_mb is the worker's alone (the registration's work is in the worker)"
	fmt.Fprintf(o.Log, "%s at %d rows: %s (%.3g rows/s), DuckDB alone %s\n", name, rows, dur(&r.MedianS), *r.RowsPerS, dur(r.RawMedianS))
	return r, nil
}

// registerOnce registers the file into a fresh engine and returns the seconds it took and the
// worker's peak RSS in MiB.
func registerOnce(ctx context.Context, o Options, path string, csv bool, d *data) (float64, float64, error) {
	dir, err := os.MkdirTemp("", "cleanroom-bench-ingest-")
	if err != nil {
		return 0, 0, err
	}
	defer os.RemoveAll(dir)
	e, err := engine.Open(ctx, engine.Config{DataDir: filepath.Join(dir, "data"), WorkerDB: workerLimits(o, dir), Stderr: o.WorkerLog})
	if err != nil {
		return 0, 0, err
	}
	defer e.Close()
	spec, err := d.spec(o, "medical_visits", csv)
	if err != nil {
		return 0, 0, err
	}
	// Start the worker outside the timing (it starts with the first registration otherwise);
	// its peak is reset just before the registration.
	if err := spec.Validate(); err != nil {
		return 0, 0, err
	}
	if _, err := e.Isolation(ctx, spec.Domain); err != nil {
		return 0, 0, err
	}
	if err := loadgen.ResetPeaks(os.Getpid()); err != nil {
		return 0, 0, err
	}
	t0 := time.Now()
	if _, err := register(ctx, e, spec); err != nil {
		return 0, 0, err
	}
	s := time.Since(t0).Seconds()
	mem, err := loadgen.ProcMem(os.Getpid())()
	if err != nil {
		return 0, 0, err
	}
	return s, float64(mem.WorkersHWMKiB) / 1024, nil
}
