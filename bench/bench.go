package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/c1b99f93/cleanroom/connectors/synth"
	"github.com/c1b99f93/cleanroom/sandbox"
	"github.com/c1b99f93/cleanroom/server/client"
)

// Options say what to measure. Scales and the workloads' data come from the synthetic
// generator (connectors/synth) under DataDir; the catalog specs from DatasetsDir.
type Options struct {
	// Scales are row counts of medical_visits (5 visits per person: Persons = rows/5).
	Scales []int
	// Reps is the number of timed repetitions of each workload (the median is reported);
	// BeamReps those of the Beam binary (default 1: a run takes seconds to minutes).
	Reps, BeamReps int
	// Workloads selects by name (Names); nil: all.
	Workloads []string
	// DataDir holds the generated data, one folder per scale (persons-N), reused.
	DataDir string
	// DatasetsDir holds the catalog specs (medical_visits.yaml, residents.yaml).
	DatasetsDir string
	// Beam is the beam-bench binary (bench/beam); "" leaves ratio_vs_beam null.
	Beam string
	// HTTP measures the latency through `cleanroom serve`; nil: no HTTP rows.
	HTTP *HTTPOptions
	// WorkerDB are the sandbox worker's DuckDB limits (zero: the product's defaults).
	WorkerDB sandbox.DBLimits
	// Log receives progress lines; WorkerLog the workers' logs (nil: discarded).
	Log, WorkerLog io.Writer
}

// HTTPOptions configure the HTTP rows.
type HTTPOptions struct {
	// Samples per row (at least 50 for a p99 worth reading).
	Samples int
	// Quanta are the completion quanta to run the server with, one server each.
	Quanta []time.Duration
	// Start starts `cleanroom serve` with the completion quantum q on the 10k-person testdata,
	// with an applicant and its grants; the caller (the CLI) knows how to start the binary.
	Start func(ctx context.Context, q time.Duration) (*Server, error)
}

// Server is a running `cleanroom serve` with applicants' grants on Dataset.
type Server struct {
	Grants  []Grant
	Dataset string
	Rows    int64 // Dataset's rows, reported as the rows' scale
	PID     int   // for its memory (and its workers')
	Stop    func() error
}

// Grant is a grant on a Server and its applicant's client.
type Grant struct {
	Client *client.Client
	ID     string
}

// Report is one run's figures: the machine and one row per workload and scale.
type Report struct {
	Machine   Machine  `json:"machine"`
	Workloads []Result `json:"workloads"`
}

// Machine describes where the figures were measured.
type Machine struct {
	CPUs     int    `json:"cpus"`
	MemMB    int64  `json:"mem"` // MiB of RAM
	Go       string `json:"go"`
	OS       string `json:"os"`
	Kernel   string `json:"kernel"`
	CPUModel string `json:"cpu_model"`
	// LoadStart and LoadEnd are /proc/loadavg's 1-, 5- and 15-minute averages when the run
	// started and ended: other work on the machine shows in the figures.
	LoadStart string `json:"load_start"`
	LoadEnd   string `json:"load_end"`
}

// Result is one workload at one scale. A figure that does not apply is null. Ratios are
// cleanroom's median time over the other's: below 1 is faster.
type Result struct {
	Name        string   `json:"name"`
	Scale       int64    `json:"scale"` // rows read (of medical_visits; HTTP: the testdata's)
	MedianS     float64  `json:"median_s"`
	RatioVsRaw  *float64 `json:"ratio_vs_raw"`
	RatioVsBeam *float64 `json:"ratio_vs_beam"`
	PeakRSSMB   *float64 `json:"peak_rss_mb"`
	// RawMedianS is raw DuckDB's median; BeamMedianS the Beam binary's (its own timing).
	RawMedianS  *float64 `json:"raw_median_s"`
	BeamMedianS *float64 `json:"beam_median_s"`
	// RowsPerS is ingest throughput (rows / median_s), RawRowsPerS DuckDB's.
	RowsPerS    *float64 `json:"rows_per_s"`
	RawRowsPerS *float64 `json:"raw_rows_per_s"`
	// P50S and P99S are the HTTP rows' latency quantiles (median_s is the p50).
	P50S *float64 `json:"p50_s"`
	P99S *float64 `json:"p99_s"`
	// Samples is the number of timed repetitions (HTTP: requests) behind the figures.
	Samples int `json:"samples"`
	// ServerPeakRSSMB is the platform's process without the worker: for the in-process
	// workloads the engine's Go memory (the raw DuckDB baseline shares the process and is
	// left out), over HTTP the server's VmHWM. WorkerPeakRSSMB is the sandbox worker's VmHWM.
	// peak_rss_mb is their sum.
	ServerPeakRSSMB *float64 `json:"server_peak_rss_mb"`
	WorkerPeakRSSMB *float64 `json:"worker_peak_rss_mb"`
	// HeldForReview counts repetitions the egress policy held (reviewed and released by the
	// bench, as a reviewer would, inside the timing).
	HeldForReview int    `json:"held_for_review,omitempty"`
	Note          string `json:"note,omitempty"`
	// Error is why the workload has no figures (its code and safe message); Run then returns
	// ErrWorkloadsFailed with the report.
	Error string `json:"error,omitempty"`
}

// ErrWorkloadsFailed is returned with a report in which some workload failed (its row says
// why); the other rows' figures stand.
var ErrWorkloadsFailed = errors.New("bench: some workloads failed")

// Run measures every selected workload at every scale, then the HTTP rows, and returns the
// report. A query workload that fails gets a row with its error and the run goes on (the
// report comes back with ErrWorkloadsFailed); a failure of the set-up (data, registration,
// the server) ends the run with no report.
func Run(ctx context.Context, o Options) (*Report, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	rep := &Report{Machine: machine()}
	rep.Machine.LoadStart = loadAvg()
	for _, rows := range o.Scales {
		res, err := runScale(ctx, o, rows)
		if err != nil {
			return nil, err
		}
		rep.Workloads = append(rep.Workloads, res...)
	}
	if o.HTTP != nil {
		res, err := runHTTP(ctx, o)
		if err != nil {
			return nil, err
		}
		rep.Workloads = append(rep.Workloads, res...)
	}
	rep.Machine.LoadEnd = loadAvg()
	for _, r := range rep.Workloads {
		if r.Error != "" {
			return rep, ErrWorkloadsFailed
		}
	}
	return rep, nil
}

// loadAvg is the first three fields of /proc/loadavg ("" where unreadable).
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	return strings.Join(f[:min(3, len(f))], " ")
}

// MinScale and MaxScale bound a scale: below a few thousand rows the figures mean nothing,
// and the generator takes at most synth.MaxPersons persons.
const (
	MinScale = 1000
	MaxScale = synth.MaxPersons * 5
)

// Validate checks the options and fills the defaults (BeamReps 1, discarded logs).
func (o *Options) Validate() error {
	if o.Reps < 1 {
		return errors.New("bench: reps must be at least 1")
	}
	if o.BeamReps < 1 {
		o.BeamReps = 1
	}
	for _, s := range o.Scales {
		if s < MinScale || s > MaxScale {
			return fmt.Errorf("bench: scale %d outside [%d, %d]", s, MinScale, MaxScale)
		}
	}
	for _, w := range o.Workloads {
		if !slices.Contains(Names(), w) {
			return fmt.Errorf("bench: no workload %q (have %s)", w, strings.Join(Names(), ", "))
		}
	}
	if len(o.Scales) == 0 && o.HTTP == nil {
		return errors.New("bench: nothing to measure (no scale, no HTTP)")
	}
	if o.HTTP != nil && (o.HTTP.Samples < 1 || o.HTTP.Start == nil || len(o.HTTP.Quanta) == 0) {
		return errors.New("bench: HTTP needs at least one sample, a completion quantum and a way to start the server")
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	if o.WorkerLog == nil {
		o.WorkerLog = io.Discard
	}
	return nil
}

// selected reports whether workload name is to run.
func (o *Options) selected(name string) bool {
	return len(o.Workloads) == 0 || slices.Contains(o.Workloads, name)
}

// Selects reports whether any of the workloads names is to run.
func (o *Options) Selects(names ...string) bool {
	return slices.ContainsFunc(names, o.selected)
}

// ParseScales reads a comma-separated list of row counts, each an integer or a float such
// as 1e6 that is a whole number, within [MinScale, MaxScale].
func ParseScales(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		v, err := strconv.ParseFloat(f, 64)
		if err != nil || v != math.Trunc(v) || v < MinScale || v > MaxScale {
			return nil, fmt.Errorf("bench: scale %q is not a whole number of rows in [%d, %.0e]", f, MinScale, float64(MaxScale))
		}
		out = append(out, int(v))
	}
	if len(out) == 0 {
		return nil, errors.New("bench: no scale given")
	}
	return out, nil
}

// median is the middle of xs (the mean of the two middles for an even count); xs is not
// changed.
func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n == 0 {
		return math.NaN()
	}
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// percentile is the nearest-rank p-th percentile of xs.
func percentile(xs []float64, p int) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	i := (p*len(s)+99)/100 - 1
	return s[max(0, min(i, len(s)-1))]
}

func ptr(v float64) *float64 { return &v }

// ratio is a/b, or nil when b is not positive.
func ratio(a, b float64) *float64 {
	if !(b > 0) {
		return nil
	}
	return ptr(a / b)
}

// machine reads the host's description (Linux /proc; empty where unreadable).
func machine() Machine {
	m := Machine{CPUs: runtime.NumCPU(), Go: runtime.Version(), OS: runtime.GOOS + "/" + runtime.GOARCH}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				if kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64); err == nil {
					m.MemMB = kb >> 10
				}
			}
		}
	}
	return m
}

// WriteJSON writes the report as one indented JSON object.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteTable writes the report for people: the machine, then one line per row.
func (r *Report) WriteTable(w io.Writer) error {
	m := r.Machine
	fmt.Fprintf(w, "machine: %d CPUs (%s), %.1f GiB, %s, kernel %s, %s; load average %s at the start, %s at the end\n",
		m.CPUs, m.CPUModel, float64(m.MemMB)/1024, m.OS, m.Kernel, m.Go, m.LoadStart, m.LoadEnd)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "workload\trows\tmedian\traw\tx raw\tbeam\tx beam\trows/s\tp99\tpeak MB\tn\t")
	for _, x := range r.Workloads {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t\n", x.Name, x.Scale, dur(&x.MedianS), dur(x.RawMedianS),
			num(x.RatioVsRaw, "%.2f×"), dur(x.BeamMedianS), num(x.RatioVsBeam, "%.4f×"), num(x.RowsPerS, "%.3g"), dur(x.P99S), num(x.PeakRSSMB, "%.0f"), x.Samples)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, x := range r.Workloads {
		if x.Note != "" {
			fmt.Fprintf(w, "%s (%d rows): %s\n", x.Name, x.Scale, x.Note)
		}
		if x.Error != "" {
			fmt.Fprintf(w, "%s (%d rows) FAILED: %s\n", x.Name, x.Scale, x.Error)
		}
	}
	return nil
}

// dur renders seconds as ms below 10 s.
func dur(s *float64) string {
	switch {
	case s == nil:
		return "-"
	case *s < 10:
		return strconv.FormatFloat(*s*1000, 'f', 1, 64) + " ms"
	default:
		return strconv.FormatFloat(*s, 'f', 1, 64) + " s"
	}
}

func num(v *float64, format string) string {
	if v == nil {
		return "-"
	}
	return fmt.Sprintf(format, *v)
}
