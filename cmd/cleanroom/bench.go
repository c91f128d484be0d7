package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/c1b99f93/cleanroom/bench"
	"github.com/c1b99f93/cleanroom/sandbox"
	"github.com/c1b99f93/cleanroom/server"
)

// benchFlags are the flags of `cleanroom bench`.
type benchFlags struct {
	scales, workloads, quanta string
	reps, beamReps, samples   int
	json, http, verbose       bool
	output                    string
	beam, dataDir, datasets   string
	workerDB                  sandbox.DBLimits
}

func newBenchCmd() *cobra.Command {
	return newBenchCmdWith(func(args []string) *exec.Cmd {
		exe, err := os.Executable()
		if err != nil {
			exe = os.Args[0]
		}
		return exec.Command(exe, args...)
	})
}

// newBenchCmdWith is `cleanroom bench`; serve makes the command that starts `cleanroom serve`
// with the given arguments (the HTTP rows).
func newBenchCmdWith(serve func(args []string) *exec.Cmd) *cobra.Command {
	f := benchFlags{}
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure DP jobs against raw DuckDB and Privacy on Beam, ingest, memory and HTTP latency",
		Long: `Measure cleanroom against the alternatives a user has, in one process and one run so that
ratios hold on a noisy machine:

  - each DP workload end to end (gate to release, provenance included, through a real sandbox
    worker) against the same SQL raw in DuckDB in this process (an in-memory table under the
    worker's limits: --worker-memory, --worker-threads, --worker-max-temp, spilling alike),
    repetitions alternating; a fresh grant per repetition, since a repeated query on one
    grant is answered from its first release;
  - with --beam, Privacy on Beam's Count, Sum and Mean per district with the same bounds
    (the bench/beam program, built apart: it is not part of this binary);
  - registration of the same file as Parquet and as CSV, against DuckDB reading it;
  - peak RSS of the engine and of the sandbox worker per workload;
  - with --http (default), p50/p99 of a small DP query and of a repeated one through
    ` + "`cleanroom serve`" + ` on the 10k-person testdata, once with the default completion
    quantum and once with the minimum, 10ms (the quantum hides how long jobs compute:
    docs/threat-model.md; it is never turned off; a repeat, which reads no data, is
    shown without it).

Data are generated once per scale under --data-dir (persons-N, N = rows/5, seed 1) and reused.
A ratio is cleanroom's median time over the other's: below 1 is faster. Nothing is asserted
about time.`,
		Example: `  cleanroom bench --scales 1e6,1e7 --beam bin/beam-bench
  cleanroom bench --scales 1e6 --workloads count_sum,join_residents --reps 3 --http=false
  cleanroom bench --scales 1e8 --workloads count_sum --reps 1 --http=false --json`,
		Args: cobra.NoArgs,
		PreRunE: func(cmd *cobra.Command, _ []string) error {
			if f.json {
				f.output = outputJSON
			}
			o, err := benchOptions(f, serve, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			return o.Validate()
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			o, err := benchOptions(f, serve, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			if ctx == nil {
				ctx = context.Background()
			}
			rep, err := bench.Run(ctx, o)
			if rep == nil {
				return err
			}
			write := rep.WriteTable
			if f.output == outputJSON {
				write = rep.WriteJSON
			}
			return errors.Join(write(cmd.OutOrStdout()), err) // the report, then what failed
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.scales, "scales", "1e6,1e7", "rows of medical_visits to measure at, comma-separated (1e8 only when asked: about 10 GB of data)")
	fl.IntVar(&f.reps, "reps", 5, "timed repetitions of each workload (the median is reported)")
	fl.IntVar(&f.beamReps, "beam-reps", 1, "runs of the Beam binary per Beam workload (each takes seconds to minutes)")
	fl.BoolVar(&f.json, "json", false, "print one JSON object (same as --output json)")
	fl.StringVarP(&f.output, "output", "o", outputTable, "table or json")
	fl.StringVar(&f.beam, "beam", "", "the Privacy on Beam benchmark binary (bench/beam); without it ratio_vs_beam is null")
	fl.StringVar(&f.workloads, "workloads", "", "comma-separated workloads to run (default all): "+strings.Join(bench.Names(), ", "))
	fl.StringVar(&f.dataDir, "data-dir", "testdata/generated", "where generated data are kept (one folder per scale, reused)")
	fl.StringVar(&f.datasets, "datasets", "testdata/datasets", "the folder of catalog specs (and the HTTP rows' testdata)")
	fl.BoolVar(&f.http, "http", true, "measure latency through `cleanroom serve` on the testdata")
	fl.IntVar(&f.samples, "http-samples", 50, "jobs timed per HTTP row")
	fl.StringVar(&f.quanta, "http-quanta", server.DefaultCompletionQuantum.String()+",10ms", "completion quanta to run the server with, one row pair each")
	addWorkerFlags(fl, &f.workerDB)
	fl.BoolVarP(&f.verbose, "verbose", "v", false, "also print the workers' logs to stderr")
	return cmd
}

// benchOptions turns the flags into the measurement's options; progress receives progress
// lines (and, with --verbose, the workers' logs).
func benchOptions(f benchFlags, serve func(args []string) *exec.Cmd, progress io.Writer) (bench.Options, error) {
	if f.output != outputTable && f.output != outputJSON {
		return bench.Options{}, fmt.Errorf("--output must be %s or %s", outputTable, outputJSON)
	}
	o := bench.Options{Reps: f.reps, BeamReps: f.beamReps, DataDir: f.dataDir, DatasetsDir: f.datasets, Beam: f.beam,
		WorkerDB: f.workerDB, Log: progress}
	if err := f.workerDB.Check(); err != nil {
		return o, err
	}
	if f.verbose {
		o.WorkerLog = progress
	}
	var err error
	if f.scales != "" {
		if o.Scales, err = bench.ParseScales(f.scales); err != nil {
			return o, err
		}
	}
	if f.workloads != "" {
		o.Workloads = strings.Split(f.workloads, ",")
	}
	if f.beam != "" {
		if _, err := os.Stat(f.beam); err != nil {
			return o, fmt.Errorf("--beam: %w (build it: make beam)", err)
		}
	}
	if f.http && o.Selects(bench.HTTPQuery, bench.HTTPRepeat) {
		var quanta []time.Duration
		for _, s := range strings.Split(f.quanta, ",") {
			q, err := time.ParseDuration(strings.TrimSpace(s))
			if err != nil || q < 10*time.Millisecond {
				return o, fmt.Errorf("--http-quanta: %q is not a duration of at least 10ms (the server's minimum)", s)
			}
			quanta = append(quanta, q)
		}
		o.HTTP = &bench.HTTPOptions{Samples: f.samples, Quanta: quanta,
			Start: func(ctx context.Context, q time.Duration) (*bench.Server, error) {
				return startBenchServer(ctx, serve, f.datasets, q)
			}}
	}
	return o, nil
}

// startBenchServer starts the loadtest's self-contained platform (a `cleanroom serve` child on
// a loopback port, medical_visits of the testdata registered, three applicants with two grants
// each) with completion quantum q.
func startBenchServer(ctx context.Context, serve func(args []string) *exec.Cmd, datasets string, q time.Duration) (*bench.Server, error) {
	const dataset = "medical_visits"
	p, err := startLoadPlatform(ctx, serve, datasets, dataset, loadHTTPClient(8), []string{"--completion-quantum", q.String()})
	if err != nil {
		return nil, err
	}
	srv := &bench.Server{Dataset: dataset, PID: p.cmd.Process.Pid, Stop: p.stop}
	for _, a := range p.target.Applicants {
		for _, g := range a.Grants {
			srv.Grants = append(srv.Grants, bench.Grant{Client: a.Client, ID: g})
		}
	}
	d, err := p.clients["provider"].Dataset(ctx, dataset)
	if err == nil && d.Rows == nil {
		err = errors.New("the server does not disclose it")
	}
	if err != nil {
		return nil, errors.Join(fmt.Errorf("bench: the size of %s: %w", dataset, err), p.stop())
	}
	srv.Rows = *d.Rows
	return srv, nil
}
