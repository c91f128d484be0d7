package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime/metrics"
	"strings"
	"time"

	"github.com/c1b99f93/cleanroom/catalog"
	"github.com/c1b99f93/cleanroom/engine"
	"github.com/c1b99f93/cleanroom/engine/ledger"
	"github.com/c1b99f93/cleanroom/engine/plan"
	"github.com/c1b99f93/cleanroom/errcode"
	"github.com/c1b99f93/cleanroom/policy"
	"github.com/c1b99f93/cleanroom/sandbox"
	"github.com/c1b99f93/cleanroom/server/loadgen"
)

// workload is one DP query measured against the same SQL raw in DuckDB (and, with beam set,
// against the Beam binary's same DP aggregate).
type workload struct {
	name, sql string
	opts      plan.Options
	residents bool   // reads residents too (registered and loaded raw)
	beam      string // the Beam binary's workload (count, sum, mean), "" none
}

// fixedBounds are the contribution bounds the Go benchmark (engine BenchmarkDPAggregates) and
// the Beam comparison use: one partition per person, five rows in it; values are clamped to
// the catalog's bounds (cost: [0, 50000]). Explicit bounds make the work the same every run.
var fixedBounds = plan.Options{Epsilon: 1, MaxGroupsContributed: 1, MaxContributionsPerGroup: 5}

// workloads, in report order. Every query is of a form docs/sql.md lists as admitted.
var workloads = []workload{
	// Grouped COUNT/SUM over the 14 public districts: the headline ratio.
	{name: "count_sum", sql: "SELECT district, COUNT(*) AS visits, SUM(cost) AS total_cost FROM medical_visits GROUP BY district", opts: fixedBounds},
	// The same with bounds chosen under DP: two more passes (clamping quantiles, the
	// contribution histogram) before the execution.
	{name: "count_sum_auto", sql: "SELECT district, COUNT(*) AS visits, SUM(cost) AS total_cost FROM medical_visits GROUP BY district", opts: plan.Options{Epsilon: 1}},
	// AVG and quantiles (one DP quantile tree) by the ICD-10 chapter, a column with a public
	// domain of 18 letters.
	{name: "avg_quantiles_by_chapter", sql: "SELECT diagnosis_chapter, AVG(cost) AS mean_cost, MEDIAN(cost) AS median_cost, QUANTILE_CONT(cost, 0.9) AS p90_cost FROM medical_visits GROUP BY diagnosis_chapter", opts: fixedBounds},
	// Distinct persons over district × visit date (keys from the data: DP partition
	// selection); a person's visits fall on up to five dates.
	// The dates stop at November 2025 (14 × 700 = 9,800 candidates) so that the output stays
	// within the shipped policy's max_rows (10,000): at 1e7 rows nearly every candidate
	// passes selection, and a larger output is refused at egress (rows_over_limit).
	{name: "count_distinct_10k_partitions", sql: "SELECT district, visit_date, COUNT(DISTINCT person_id) AS persons FROM medical_visits WHERE visit_date < DATE '2025-12-01' GROUP BY district, visit_date", opts: plan.Options{Epsilon: 1, MaxGroupsContributed: 5, MaxContributionsPerGroup: 1}},
	// Visits joined to the resident register on the privacy unit.
	{name: "join_residents", sql: "SELECT r.income_band, COUNT(*) AS visits, SUM(v.cost) AS total_cost FROM medical_visits v JOIN residents r ON v.person_id = r.person_id GROUP BY r.income_band", opts: fixedBounds, residents: true},
	// A per-person subquery: each person's total, then the DP mean of the totals.
	{name: "per_person_subquery", sql: "SELECT AVG(total) AS mean_per_person FROM (SELECT person_id, SUM(cost) AS total FROM medical_visits GROUP BY person_id) AS t", opts: fixedBounds},
	// The Beam comparison: Privacy on Beam's Count, Sum and Mean per district with the same
	// bounds (one partition per person, five contributions, cost clamped to [0, 50000]) and
	// the districts as public partitions.
	{name: "beam_count", sql: "SELECT district, COUNT(*) AS visits FROM medical_visits GROUP BY district", opts: fixedBounds, beam: "count"},
	{name: "beam_sum", sql: "SELECT district, SUM(cost) AS total_cost FROM medical_visits GROUP BY district", opts: fixedBounds, beam: "sum"},
	{name: "beam_mean", sql: "SELECT district, AVG(cost) AS mean_cost FROM medical_visits GROUP BY district", opts: fixedBounds, beam: "mean"},
}

// Ingest rows: registration of the same file as CSV and as Parquet.
const (
	IngestParquet = "ingest_parquet"
	IngestCSV     = "ingest_csv"
)

// HTTP rows (each suffixed with the server's completion quantum, e.g. http_query_q500ms).
const (
	HTTPQuery  = "http_query"
	HTTPRepeat = "http_repeat"
)

// Names lists every workload name --workloads accepts.
func Names() []string {
	var out []string
	for _, w := range workloads {
		out = append(out, w.name)
	}
	return append(out, IngestParquet, IngestCSV, HTTPQuery, HTTPRepeat)
}

// benchApplicant submits the jobs; benchReviewers approve what the egress policy holds.
var benchApplicant = policy.Principal{Name: "bench-applicant", Role: "applicant", Org: "bench-insurance"}

// grantBudget is each repetition's fresh grant: room for a job, none for anything else.
var grantBudget = ledger.Budget{Epsilon: 10, Delta: 1e-3}

// datasetBudget replaces the catalog's lifetime budget: many jobs run on one dataset, and its
// cap is not what is measured.
var datasetBudget = catalog.Budget{Epsilon: ledger.MaxEpsilon, Delta: 0.5}

// runScale measures the ingest rows and every selected query workload at one scale.
func runScale(ctx context.Context, o Options, rows int) ([]Result, error) {
	var todo []workload
	residents := false
	for _, w := range workloads {
		if o.selected(w.name) {
			todo = append(todo, w)
			residents = residents || w.residents
		}
	}
	if len(todo) == 0 && !o.Selects(IngestParquet, IngestCSV) {
		return nil, nil // nothing at this scale: no data to generate
	}
	d, err := ensureData(ctx, o, rows)
	if err != nil {
		return nil, err
	}
	var out []Result
	for _, csv := range []bool{false, true} {
		name := IngestParquet
		if csv {
			name = IngestCSV
		}
		if o.selected(name) {
			r, err := measureIngest(ctx, o, d, name, csv)
			if err != nil {
				return nil, err
			}
			out = append(out, r)
		}
	}
	if len(todo) == 0 {
		return out, nil
	}

	dir, err := os.MkdirTemp("", "cleanroom-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	e, err := engine.Open(ctx, engine.Config{DataDir: filepath.Join(dir, "data"), WorkerDB: workerLimits(o, dir), Stderr: o.WorkerLog})
	if err != nil {
		return nil, fmt.Errorf("bench: opening the engine: %w", err)
	}
	defer e.Close()
	raw, err := openRaw(o, dir)
	if err != nil {
		return nil, err
	}
	defer raw.Close()
	names := []string{"medical_visits"}
	if residents {
		names = append(names, "residents")
	}
	visitRows := int64(0)
	for _, name := range names {
		spec, err := d.spec(o, name, false)
		if err != nil {
			return nil, err
		}
		start := time.Now()
		ds, err := register(ctx, e, spec)
		if err != nil {
			return nil, fmt.Errorf("bench: registering %s (%d rows): %w", name, rows, err)
		}
		fmt.Fprintf(o.Log, "registered %s: %d rows, %d units in %s\n", name, ds.Snapshot.Rows, ds.Snapshot.Units, time.Since(start).Round(time.Millisecond))
		if name == "medical_visits" {
			visitRows = ds.Snapshot.Rows
		}
		if _, err := raw.Load(ctx, name, spec.Source.Path, false); err != nil {
			return nil, err
		}
	}
	visits, _ := e.Lookup("medical_visits")
	m := &measurer{ctx: ctx, o: o, e: e, raw: raw, d: d, partitions: districts(visits)}
	for _, w := range todo {
		r, err := m.measure(w)
		r.Scale = visitRows
		if err != nil {
			// One workload failing does not lose the others' figures: the row says what
			// failed, and Run reports the failure after the whole report.
			fmt.Fprintf(o.Log, "%s at %d rows failed: %v\n", w.name, visitRows, err)
			out = append(out, failed(w.name, visitRows, err))
			continue
		}
		out = append(out, r)
		fmt.Fprintf(o.Log, "%s at %d rows: DP %s, raw %s\n", w.name, visitRows, dur(&r.MedianS), dur(r.RawMedianS))
	}
	return out, nil
}

// failed is the row of a workload that failed: its error code and safe message (the full
// error went to the progress log).
func failed(name string, scale int64, err error) Result {
	pub := errcode.Public(err)
	return Result{Name: name, Scale: scale, Error: string(pub.Code) + ": " + pub.Message}
}

// workerLimits are o's worker limits, spilling under dir unless a temp dir is set.
func workerLimits(o Options, dir string) sandbox.DBLimits {
	l := o.WorkerDB
	if l.TempDir == "" {
		l.TempDir = filepath.Join(dir, "spill")
	}
	if l.Threads <= 0 {
		l.Threads = 2 // the product's default (sandbox.DBLimits), and the raw baseline's
	}
	return l
}

// openRaw opens the raw DuckDB baseline under the worker's limits (o's, or the product's
// defaults), spilling under dir in a directory of its own: at 1e8 rows neither side holds the
// table in memory, as in a deployment.
func openRaw(o Options, dir string) (*sandbox.Baseline, error) {
	l := workerLimits(o, dir)
	l.TempDir = filepath.Join(dir, "raw-spill")
	return sandbox.OpenBaseline(l)
}

// register registers spec's source in e, as the server does (an open file handed over).
func register(ctx context.Context, e *engine.Engine, spec *catalog.Spec) (*engine.Dataset, error) {
	f, err := os.Open(spec.Source.Path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return e.RegisterDataset(ctx, spec, f)
}

// measurer runs one scale's query workloads.
type measurer struct {
	ctx    context.Context
	o      Options
	e      *engine.Engine
	raw    *sandbox.Baseline
	d      *data
	grants int
	// partitions are the districts, the Beam jobs' public partitions.
	partitions string
}

// measure warms each side once, then alternates raw, DP (and Beam) repetitions.
func (m *measurer) measure(w workload) (Result, error) {
	if _, err := m.raw.Query(m.ctx, w.sql); err != nil {
		return Result{}, err
	}
	if _, err := m.dp(w); err != nil {
		return Result{}, err
	}
	if err := loadgen.ResetPeaks(os.Getpid()); err != nil {
		return Result{}, err
	}
	goPeak := startGoPeak()
	var dpS, rawS, beamS []float64
	held := 0
	for i := range m.o.Reps {
		t0 := time.Now()
		if _, err := m.raw.Query(m.ctx, w.sql); err != nil {
			return Result{}, err
		}
		rawS = append(rawS, time.Since(t0).Seconds())
		t0 = time.Now()
		h, err := m.dp(w)
		if err != nil {
			return Result{}, err
		}
		dpS = append(dpS, time.Since(t0).Seconds())
		if h {
			held++
		}
		if w.beam != "" && m.o.Beam != "" && i < m.o.BeamReps {
			s, err := runBeam(m.ctx, m.o.Beam, m.d, w.beam, m.partitions)
			if err != nil {
				return Result{}, err
			}
			beamS = append(beamS, s)
		}
	}
	goMB := goPeak()
	mem, err := loadgen.ProcMem(os.Getpid())()
	if err != nil {
		return Result{}, err
	}
	r := Result{Name: w.name, MedianS: median(dpS), RawMedianS: ptr(median(rawS)), Samples: m.o.Reps, HeldForReview: held,
		ServerPeakRSSMB: ptr(goMB), WorkerPeakRSSMB: ptr(float64(mem.WorkersHWMKiB) / 1024)}
	r.RatioVsRaw = ratio(r.MedianS, *r.RawMedianS)
	r.PeakRSSMB = ptr(*r.ServerPeakRSSMB + *r.WorkerPeakRSSMB)
	if len(beamS) > 0 {
		r.BeamMedianS = ptr(median(beamS))
		r.RatioVsBeam = ratio(r.MedianS, *r.BeamMedianS)
	}
	if w.beam != "" && m.o.Beam == "" {
		r.Note = "no --beam binary: ratio_vs_beam not measured"
	}
	return r, nil
}

// dp runs w once end to end on a fresh grant and reports whether the egress policy held it
// (then reviewed and released inside the timing, as two reviewers would).
func (m *measurer) dp(w workload) (held bool, err error) {
	m.grants++
	g := fmt.Sprintf("bench-%s-%d", w.name, m.grants)
	if err := m.e.OpenGrant(m.ctx, g, grantBudget); err != nil {
		return false, err
	}
	out, err := m.e.Run(m.ctx, engine.Job{Principal: benchApplicant, Grant: g, SQL: w.sql, Options: w.opts})
	if err != nil {
		return false, err
	}
	if out.Held == nil {
		return false, nil
	}
	var reviewers []string
	for i := range out.Held.Reviewers {
		r := policy.Principal{Name: fmt.Sprintf("bench-reviewer-%d", i+1), Role: "reviewer", Org: "platform"}
		if err := m.e.RecordReview(m.ctx, out.Result.Job, engine.Review{Reviewer: r, Approve: true}); err != nil {
			return true, err
		}
		reviewers = append(reviewers, r.Name)
	}
	if _, err := m.e.ReleaseHeld(m.ctx, out.Result.Job, out.Held, out.Result, reviewers); err != nil {
		return true, err
	}
	return true, m.e.EndHold(m.ctx, out.Result.Job)
}

// startGoPeak samples this process's Go memory (mapped and not released to the OS: what the
// engine holds; DuckDB's C memory — the raw baseline's table — is not in it) every 5 ms until
// the returned function is called, which returns the peak in MiB.
func startGoPeak() func() float64 {
	samples := []metrics.Sample{{Name: "/memory/classes/total:bytes"}, {Name: "/memory/classes/heap/released:bytes"}}
	read := func() float64 {
		metrics.Read(samples)
		return float64(samples[0].Value.Uint64()-samples[1].Value.Uint64()) / (1 << 20)
	}
	peak := read()
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				peak = max(peak, read())
			}
		}
	}()
	return func() float64 {
		close(done)
		<-stopped // peak is the sampler's until it has stopped
		return max(peak, read())
	}
}

// districts is the catalog's district domain (the Beam job's public partitions).
func districts(spec *catalog.Spec) string {
	return strings.Join(spec.Columns["district"].Domain, ",")
}
