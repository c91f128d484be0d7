package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
)

// Workloads, readers and runners the program accepts.
const (
	workloadCount = "count"
	workloadSum   = "sum"
	workloadMean  = "mean"

	readerParquet = "parquet"
	readerCSV     = "csv"

	runnerDirect = "direct"
	runnerPrism  = "prism"
)

// defaultRunner and preferredReader are the faster choices measured on the 1e6-row set
// (bench/beam/README.md has the figures): the direct runner beat prism in most runs, and textio
// streams lines where parquetio decodes the whole file into memory first.
const (
	defaultRunner   = runnerDirect
	preferredReader = readerCSV
)

// errUsage marks a bad command line; the message says which flag.
var errUsage = errors.New("usage")

// config is one validated command line.
type config struct {
	parquetPath, csvPath string
	reader               string // parquet or csv: which of the two files the pipeline reads
	runner               string
	workload             string
	epsilon, delta       float64
	maxPartitions        int64 // partitions one unit may contribute to (L0)
	maxContributions     int64 // rows one unit may contribute to one partition
	lower, upper         float64
	partitionColumn      string
	valueColumn          string
	unitColumn           string
	partitions           []string // the public partitions, in the order given
	reps                 int
	verbose              bool
	cpuProfile           string // pprof CPU profile of all runs, for finding where Beam spends its time
}

// parseConfig reads the command line on its own flag set: the DP library's glog registers -v
// and friends on Go's default set, and Beam's own options stay at their defaults.
func parseConfig(args []string, stderr io.Writer) (config, error) {
	var c config
	var partitions string
	fs := flag.NewFlagSet("beam-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.parquetPath, "parquet", "", "Parquet file of the dataset")
	fs.StringVar(&c.csvPath, "csv", "", "CSV file (header row) of the same dataset")
	fs.StringVar(&c.reader, "reader", "", "which file to read: csv or parquet (default: "+preferredReader+" when given, else the other)")
	fs.StringVar(&c.runner, "runner", defaultRunner, "Beam runner: direct or prism (both in-process)")
	fs.StringVar(&c.workload, "workload", "", "count, sum or mean")
	fs.Float64Var(&c.epsilon, "epsilon", 1, "epsilon of the aggregation")
	fs.Float64Var(&c.delta, "delta", 0, "delta of the aggregation: 0 for Laplace noise, > 0 for Gaussian")
	fs.Int64Var(&c.maxPartitions, "max-partitions", 1, "partitions one unit may contribute to")
	fs.Int64Var(&c.maxContributions, "max-contributions", 1, "rows one unit may contribute to one partition")
	fs.Float64Var(&c.lower, "min", 0, "lower bound of one value (sum, mean)")
	fs.Float64Var(&c.upper, "max", 0, "upper bound of one value (sum, mean)")
	fs.StringVar(&c.partitionColumn, "partition-column", "", "column whose values are the partitions")
	fs.StringVar(&c.valueColumn, "value-column", "", "numeric column summed or averaged (sum, mean)")
	fs.StringVar(&c.unitColumn, "unit-column", "", "privacy unit column")
	fs.StringVar(&partitions, "partitions", "", "comma-separated public partitions")
	fs.IntVar(&c.reps, "reps", 1, "number of timed runs, one JSON line each")
	fs.BoolVar(&c.verbose, "verbose", false, "show Beam's info logs on stderr")
	fs.StringVar(&c.cpuProfile, "cpuprofile", "", "write a pprof CPU profile of the timed runs to this file")
	if err := fs.Parse(args); err != nil {
		return config{}, fmt.Errorf("%w: %w", errUsage, err)
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	if partitions != "" {
		c.partitions = strings.Split(partitions, ",")
	}
	if err := c.validate(); err != nil {
		return config{}, err
	}
	return c, nil
}

// validate checks the flags and picks the reader; it checks that the file to be read exists.
func (c *config) validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{errUsage}, a...)...)
	}
	switch c.workload {
	case workloadCount, workloadSum, workloadMean:
	case "":
		return bad("--workload is required (count, sum or mean)")
	default:
		return bad("unknown --workload %q (want count, sum or mean)", c.workload)
	}
	switch c.runner {
	case runnerDirect, runnerPrism:
	default:
		return bad("unknown --runner %q (want direct or prism)", c.runner)
	}
	switch {
	case c.reader == "" && c.parquetPath == "" && c.csvPath == "":
		return bad("give --parquet or --csv")
	case c.reader == "" && preferredReader == readerCSV && c.csvPath != "",
		c.reader == "" && c.parquetPath == "":
		c.reader = readerCSV
	case c.reader == "":
		c.reader = readerParquet
	}
	for _, p := range []*string{&c.parquetPath, &c.csvPath} {
		if *p != "" {
			abs, err := filepath.Abs(*p)
			if err != nil {
				return bad("%w", err)
			}
			*p = abs
		}
	}
	path := c.path()
	switch {
	case c.reader != readerParquet && c.reader != readerCSV:
		return bad("unknown --reader %q (want parquet or csv)", c.reader)
	case path == "":
		return bad("--reader %s needs --%s", c.reader, c.reader)
	}
	if fi, err := os.Stat(path); err != nil {
		return bad("--%s: %w", c.reader, err)
	} else if !fi.Mode().IsRegular() {
		return bad("--%s %s is not a regular file", c.reader, path)
	}
	if !(c.epsilon > 0) || math.IsInf(c.epsilon, 0) {
		return bad("--epsilon must be positive and finite")
	}
	if !(c.delta >= 0 && c.delta < 1) {
		return bad("--delta must be in [0, 1)")
	}
	if c.maxPartitions < 1 {
		return bad("--max-partitions must be at least 1")
	}
	if c.maxContributions < 1 {
		return bad("--max-contributions must be at least 1")
	}
	if c.partitionColumn == "" || c.unitColumn == "" {
		return bad("--partition-column and --unit-column are required")
	}
	if c.workload != workloadCount && c.valueColumn == "" {
		return bad("--workload %s needs --value-column", c.workload)
	}
	// Checked for count too, which ignores them: a harness passing one bound set to every
	// workload learns of a bad one at once.
	if math.IsNaN(c.lower) || math.IsNaN(c.upper) || math.IsInf(c.lower, 0) || math.IsInf(c.upper, 0) {
		return bad("--min and --max must be finite")
	}
	if c.lower > c.upper {
		return bad("--min %g is greater than --max %g", c.lower, c.upper)
	}
	if len(c.partitions) == 0 {
		return bad("--partitions is required (the public partitions, comma-separated)")
	}
	seen := make(map[string]bool, len(c.partitions))
	for _, p := range c.partitions {
		if seen[p] {
			return bad("--partitions lists %q twice", p)
		}
		seen[p] = true
	}
	if c.reps < 1 {
		return bad("--reps must be at least 1")
	}
	return nil
}

// path is the file the chosen reader reads.
func (c *config) path() string {
	if c.reader == readerCSV {
		return c.csvPath
	}
	return c.parquetPath
}
