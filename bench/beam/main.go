// Command beam-bench is the Privacy on Beam baseline of `cleanroom bench` (issue 19, item 2): it
// runs one DP count, sum or mean per partition over a Parquet or CSV file with Google's
// Privacy on Beam on a local Beam runner, with the bounds the DP SQL job uses, and prints one
// JSON line per timed run:
//
//	{"workload":"count","rows":N,"seconds":S,"partitions":K}
//
// It lives in its own module so that the cleanroom binary never links Beam.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/log"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := mainErr(ctx)
	stop()
	switch {
	case errors.Is(err, flag.ErrHelp): // -h: the usage is printed
	case err != nil:
		fmt.Fprintln(os.Stderr, "beam-bench:", err)
		os.Exit(1)
	}
}

// mainErr does the process-wide setup that tests leave alone, then runs.
func mainErr(ctx context.Context) error {
	c, err := parseConfig(os.Args[1:], os.Stderr)
	if err != nil {
		return err
	}
	// Beam logs every pipeline at info level (prism through slog); keep stderr for warnings and
	// errors unless --verbose.
	level := slog.LevelWarn
	if c.verbose {
		level = slog.LevelDebug
	}
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})))
	log.SetLogger(minSeverity{min: log.SevWarn, verbose: c.verbose, w: os.Stderr})
	// Beam's loopback mode (prism) leaves an empty beamloopbackworker-* file in the temporary
	// directory on every run; give it one of ours and remove that.
	tmp, err := os.MkdirTemp("", "beam-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if err := os.Setenv("TMPDIR", tmp); err != nil {
		return err
	}
	beam.Init()
	return run(ctx, c, os.Stdout)
}

// line is the output contract with the cleanroom bench harness.
type line struct {
	Workload   string  `json:"workload"`
	Rows       int64   `json:"rows"`
	Seconds    float64 `json:"seconds"`
	Partitions int     `json:"partitions"`
}

// run inspects the input once and prints one line per timed run.
func run(ctx context.Context, c config, stdout io.Writer) error {
	in, err := inspect(c)
	if err != nil {
		return err
	}
	if c.cpuProfile != "" {
		f, err := os.Create(c.cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	enc := json.NewEncoder(stdout)
	for range c.reps {
		res, err := runOnce(ctx, c, in)
		if err != nil {
			return err
		}
		if err := enc.Encode(line{c.workload, res.rows, res.seconds, len(res.values)}); err != nil {
			return err
		}
	}
	return nil
}

// minSeverity writes Beam's log lines at or above min (all with verbose) to w.
type minSeverity struct {
	min     log.Severity
	verbose bool
	w       io.Writer
}

func (l minSeverity) Log(_ context.Context, sev log.Severity, _ int, msg string) {
	if l.verbose || sev >= l.min {
		fmt.Fprintf(l.w, "beam (severity %d): %s\n", sev, msg)
	}
}
