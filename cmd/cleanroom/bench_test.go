package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/c1b99f93/cleanroom/bench"
	"github.com/c1b99f93/cleanroom/sandbox"
)

// fakeBeam stands in for the bench/beam program (its own module, built apart) in this test
// only: it answers the contract's invocation with one result line for the workload it is
// given, and fails on anything it does not recognise.
const fakeBeam = `#!/bin/sh
w=""; parquet=""
while [ $# -gt 0 ]; do
  case "$1" in
    --workload) w="$2"; shift 2;;
    --parquet) parquet="$2"; shift 2;;
    --csv|--epsilon|--delta|--max-partitions|--max-contributions|--min|--max|--partition-column|--value-column|--unit-column|--partitions|--reps) shift 2;;
    *) echo "unknown argument $1" >&2; exit 2;;
  esac
done
[ -f "$parquet" ] || { echo "no parquet file" >&2; exit 1; }
echo "{\"workload\":\"$w\",\"rows\":20000,\"seconds\":0.25,\"partitions\":14}"
`

// TestBenchTinyRunReportsEveryFigureThatApplies is `cleanroom bench` at a tiny scale, so the
// harness cannot rot: every workload at 2e4 rows with one repetition, a stand-in Beam binary,
// and both HTTP rows through a real `cleanroom serve` child. It checks the JSON's shape —
// the machine, one row per workload, null exactly where a figure does not apply — and that
// every figure that applies is a positive number. Nothing is asserted about time.
func TestBenchTinyRunReportsEveryFigureThatApplies(t *testing.T) {
	dir := t.TempDir()
	beam := filepath.Join(dir, "beam-bench")
	if err := os.WriteFile(beam, []byte(fakeBeam), 0o755); err != nil {
		t.Fatal(err)
	}
	datasets := filepath.Join("..", "..", "testdata", "datasets")
	cmd := newBenchCmdWith(serveFromTestBinary)
	cmd.SetArgs([]string{"--scales", "2e4", "--reps", "1", "--json", "--beam", beam, "--data-dir", filepath.Join(dir, "generated"),
		"--datasets", datasets, "--http-samples", "2", "--http-quanta", "500ms,10ms"})
	var out, progress bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&progress)
	if err := cmd.ExecuteContext(context.Background()); err != nil {
		t.Fatalf("bench: %v\n%s", err, progress.String())
	}

	var rep struct {
		Machine   map[string]any   `json:"machine"`
		Workloads []map[string]any `json:"workloads"`
	}
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("the JSON report: %v\n%s", err, out.String())
	}
	for _, k := range []string{"cpus", "mem"} {
		if v, ok := rep.Machine[k].(float64); !ok || v <= 0 {
			t.Errorf("machine.%s = %v, want a positive number", k, rep.Machine[k])
		}
	}
	for _, k := range []string{"go", "os", "kernel", "cpu_model", "load_start", "load_end"} {
		if v, ok := rep.Machine[k].(string); !ok || v == "" {
			t.Errorf("machine.%s = %v, want a string", k, rep.Machine[k])
		}
	}

	var want []string
	for _, n := range bench.Names() {
		if n == bench.HTTPQuery || n == bench.HTTPRepeat {
			want = append(want, n+"_q500ms", n+"_q10ms")
			continue
		}
		want = append(want, n)
	}
	var got []string
	for _, w := range rep.Workloads {
		name, _ := w["name"].(string)
		got = append(got, name)
		http := strings.HasPrefix(name, "http_")
		beamRow := strings.HasPrefix(name, "beam_")
		ingest := strings.HasPrefix(name, "ingest_")
		applies := map[string]bool{
			"scale": true, "median_s": true, "peak_rss_mb": true, "worker_peak_rss_mb": true, "samples": true,
			"ratio_vs_raw": !http, "raw_median_s": !http,
			"ratio_vs_beam": beamRow, "beam_median_s": beamRow,
			"rows_per_s": ingest, "raw_rows_per_s": ingest,
			"p50_s": http, "p99_s": http,
			"server_peak_rss_mb": !ingest,
		}
		if e, ok := w["error"]; ok {
			t.Errorf("%s failed: %v", name, e)
		}
		for k, ok := range applies {
			v, present := w[k]
			if !present {
				t.Errorf("%s: no %s field (null where it does not apply)", name, k)
				continue
			}
			if !ok {
				if v != nil {
					t.Errorf("%s: %s = %v, want null", name, k, v)
				}
				continue
			}
			if x, isNum := v.(float64); !isNum || !(x > 0) {
				t.Errorf("%s: %s = %v, want a positive number", name, k, v)
			}
		}
		if http && w["p50_s"] != nil && w["p99_s"] != nil && w["p50_s"].(float64) > w["p99_s"].(float64) {
			t.Errorf("%s: p50 %v above p99 %v", name, w["p50_s"], w["p99_s"])
		}
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("workload rows %v, want %v", got, want)
	}
	if t.Failed() {
		t.Logf("report:\n%s\nprogress:\n%s", out.String(), progress.String())
	}
}

// TestBenchFlagsRefuseWhatCannotBeMeasured: bad scales, unknown workloads, a missing Beam
// binary, a completion quantum below the server's minimum and an unknown output format are
// refused before anything runs (no data is generated: the data folder stays empty).
func TestBenchFlagsRefuseWhatCannotBeMeasured(t *testing.T) {
	for _, args := range [][]string{
		{"--scales", "1e6,abc"},
		{"--scales", "2.5e4,1234.5"},
		{"--scales", "10"},
		{"--scales", "1e9"},
		{"--workloads", "count_sum,nope"},
		{"--reps", "0"},
		{"--beam", filepath.Join(t.TempDir(), "missing")},
		{"--http-quanta", "1ms"},
		{"--http-samples", "0"},
		{"--output", "yaml"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			data := t.TempDir()
			cmd := newBenchCmdWith(serveFromTestBinary)
			cmd.SetArgs(append([]string{"--data-dir", data}, args...))
			cmd.SetOut(io.Discard)
			cmd.SetErr(io.Discard)
			if err := cmd.Execute(); err == nil {
				t.Fatalf("%v accepted", args)
			}
			if entries, _ := os.ReadDir(data); len(entries) > 0 {
				t.Fatalf("%v generated data before refusing", args)
			}
		})
	}
}

// The worker's limits reach the measurement: a 1e8-row registration spills beyond the
// product's 20 GB default (docs/performance.md, "1e8 rows").
func TestBenchPassesTheWorkerLimits(t *testing.T) {
	f := benchFlags{scales: "1e6", reps: 1, beamReps: 1, samples: 1, output: outputTable, workerDB: sandbox.DBLimits{MemoryLimit: "6GB", MaxTempBytes: "60GB"}}
	o, err := benchOptions(f, serveFromTestBinary, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.WorkerDB.MemoryLimit != "6GB" || o.WorkerDB.MaxTempBytes != "60GB" {
		t.Fatalf("worker limits %+v, want the flags' 6GB and 60GB", o.WorkerDB)
	}
}
