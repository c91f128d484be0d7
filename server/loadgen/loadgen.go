// Package loadgen drives a cleanroom server with open-loop mixed API traffic and reports what
// it saw: throughput, latency per request class, errors, and the server's memory.
//
// Invariant: the traffic is open loop. Requests are started on a fixed schedule (Rate per
// second) whether or not earlier ones have finished, so a slow server shows as latency and as
// requests shed at the in-flight bound, never as a quietly lower offered rate. A request that
// finds MaxInFlight requests outstanding is not sent and is counted as shed.
//
// Errors are of two kinds: deliberate ones (a principal reading a grant it may not see, which
// must be answered 404 not_found or 403 forbidden) and every other failure, including a
// deliberate request answered otherwise, a job that ends other than released, and a repeated
// query whose answer differs from its first release. Run's caller decides what to do with
// unexpected errors; `cleanroom loadtest` fails on any.
//
// The package speaks to the server only through server/client, so it builds without cgo.
package loadgen

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/c1b99f93/cleanroom/errcode"
	"github.com/c1b99f93/cleanroom/server/api"
	"github.com/c1b99f93/cleanroom/server/client"
)

// Request classes, in report order.
const (
	ClassHealth       = "health"
	ClassDatasetList  = "dataset_list"
	ClassDatasetShow  = "dataset_show"
	ClassExplain      = "explain"
	ClassGrantBudget  = "grant_budget"
	ClassJobSubmit    = "job_submit"
	ClassJobWait      = "job_wait"
	ClassRepeatSubmit = "repeat_submit"
	ClassRepeatWait   = "repeat_wait"
	ClassForbidden    = "forbidden_read"
)

var classOrder = []string{ClassHealth, ClassDatasetList, ClassDatasetShow, ClassExplain, ClassGrantBudget,
	ClassJobSubmit, ClassJobWait, ClassRepeatSubmit, ClassRepeatWait, ClassForbidden}

// Mix is the share of each scheduled request, by what it starts (a job is a submission and its
// long polls; a repeat is the same). Forbidden reads are a stream of their own (ForbiddenRate),
// since the server rate-limits a principal's denied requests.
var Mix = []struct {
	Class  string
	Weight int
}{
	{ClassHealth, 10}, {ClassDatasetList, 15}, {ClassDatasetShow, 15}, {ClassExplain, 20},
	{ClassGrantBudget, 34}, {ClassJobSubmit, 4}, {ClassRepeatSubmit, 2},
}

// Applicant is a principal that submits jobs on its grants.
type Applicant struct {
	Name   string
	Client *client.Client
	Grants []string
}

// Target is what the traffic is sent to and as whom.
type Target struct {
	// Anonymous sends the health checks (no token).
	Anonymous *client.Client
	// Applicants read datasets and their grants' budgets, explain and submit jobs; every grant
	// must cover Dataset.
	Applicants []Applicant
	// Dataset is the dataset the queries read; Datasets are the names shown (default Dataset).
	Dataset  string
	Datasets []string
	// Repeat is the query repeated on every grant; RepeatResults holds each grant's first
	// release of it (SeedRepeats fills it), which every repeat must equal.
	Repeat        api.JobRequest
	RepeatResults map[string]json.RawMessage
	// Snoop reads the budget of ForbiddenGrant, which it may not see.
	Snoop          *client.Client
	ForbiddenGrant string
}

// Config is the load's shape.
type Config struct {
	Rate          float64       // scheduled requests per second (Mix)
	ForbiddenRate float64       // forbidden reads per second (0: none)
	Duration      time.Duration // how long requests are started; in-flight ones then finish
	Warmup        time.Duration // memory is compared from the end of the warm-up
	MaxInFlight   int           // requests outstanding at once; beyond, a request is shed
	PollWait      time.Duration // long-poll wait of a job (default 30s)
	// Memory samples the server's memory; nil: not reported.
	Memory func() (Mem, error)
	// Epsilon of a new job: Epsilon + n·EpsilonStep for the n-th job, so that no two jobs are
	// the same query (a repeat is answered from its release). Defaults 0.01 and 1e-5.
	Epsilon, EpsilonStep float64
}

// Mem is a sample of a process's memory from /proc/<pid>/status, in KiB.
type Mem struct {
	RSSKiB int64 `json:"rss_kib"` // VmRSS
	HWMKiB int64 `json:"hwm_kib"` // VmHWM, the peak RSS so far
	// WorkersRSSKiB is the VmRSS of the process's descendants together: the server's sandbox
	// workers. WorkersHWMKiB sums their VmHWM (each one's peak; an upper bound of their peak
	// together).
	WorkersRSSKiB int64 `json:"workers_rss_kib"`
	WorkersHWMKiB int64 `json:"workers_hwm_kib"`
}

// ClassReport is one request class's figures. Latency is of single HTTP requests.
type ClassReport struct {
	Class      string        `json:"class"`
	Requests   int           `json:"requests"`
	Deliberate int           `json:"deliberate_errors"`
	Unexpected int           `json:"unexpected_errors"`
	P50        time.Duration `json:"p50_ns"`
	P99        time.Duration `json:"p99_ns"`
	Max        time.Duration `json:"max_ns"`
}

// Report is what a run saw.
type Report struct {
	Rate          float64       `json:"rate"`
	ForbiddenRate float64       `json:"forbidden_rate"`
	Duration      time.Duration `json:"duration_ns"`
	Elapsed       time.Duration `json:"elapsed_ns"` // until the last in-flight request ended
	Scheduled     int           `json:"scheduled"`  // requests the schedule started or shed
	Shed          int           `json:"shed"`
	Requests      int           `json:"requests"` // HTTP requests sent (a job is several)
	Throughput    float64       `json:"throughput"`
	JobsReleased  int           `json:"jobs_released"`
	Repeats       int           `json:"repeats_answered"`
	Classes       []ClassReport `json:"classes"`
	Deliberate    int           `json:"deliberate_errors"`
	Unexpected    int           `json:"unexpected_errors"`
	// Failures counts the unexpected errors by class and code (or a short description).
	Failures map[string]int `json:"failures,omitempty"`
	// Memory: before the traffic, at the end of the warm-up, after the traffic, and the peak.
	MemBefore *Mem  `json:"mem_before,omitempty"`
	MemWarm   *Mem  `json:"mem_warm,omitempty"`
	MemAfter  *Mem  `json:"mem_after,omitempty"`
	MemMaxKiB int64 `json:"mem_max_rss_kib,omitempty"`
}

// RSSGrowthKiB is the server's RSS growth from the end of the warm-up to the end (0 when not
// sampled).
func (r *Report) RSSGrowthKiB() int64 {
	if r.MemWarm == nil || r.MemAfter == nil {
		return 0
	}
	return r.MemAfter.RSSKiB - r.MemWarm.RSSKiB
}

// recorder collects latencies and errors; safe for concurrent use.
type recorder struct {
	mu       sync.Mutex
	lat      map[string][]time.Duration
	delib    map[string]int
	unexp    map[string]int
	failures map[string]int
	released int
	repeats  int
}

func newRecorder() *recorder {
	return &recorder{lat: map[string][]time.Duration{}, delib: map[string]int{}, unexp: map[string]int{}, failures: map[string]int{}}
}

func (r *recorder) add(class string, d time.Duration) {
	r.mu.Lock()
	r.lat[class] = append(r.lat[class], d)
	r.mu.Unlock()
}

func (r *recorder) fail(class, what string) {
	r.mu.Lock()
	r.unexp[class]++
	r.failures[class+": "+what]++
	r.mu.Unlock()
}

func (r *recorder) deliberate(class string) {
	r.mu.Lock()
	r.delib[class]++
	r.mu.Unlock()
}

// errWhat names an error by its code, never by its text (which could carry anything).
func errWhat(err error) string {
	var ae *client.Error
	switch {
	case errors.As(err, &ae):
		return fmt.Sprintf("%d %s", ae.Status, ae.Code)
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	default:
		return "transport error"
	}
}

// timed runs one request of class and records its latency, and its error as unexpected.
func timed(rec *recorder, class string, f func() error) error {
	start := time.Now()
	err := f()
	rec.add(class, time.Since(start))
	if err != nil {
		rec.fail(class, errWhat(err))
	}
	return err
}

// SeedRepeats releases the repeated query once on every grant and keeps each answer in
// t.RepeatResults. The jobs count against the grants' rate limits like any.
func SeedRepeats(ctx context.Context, t *Target, wait time.Duration) error {
	t.RepeatResults = map[string]json.RawMessage{}
	for _, a := range t.Applicants {
		for _, g := range a.Grants {
			req := t.Repeat
			req.Grant = g
			j, err := a.Client.SubmitJob(ctx, req)
			if err != nil {
				return fmt.Errorf("loadgen: seeding the repeated query on %s: %w", g, err)
			}
			for client.Pending(j.State) {
				if j, err = a.Client.Job(ctx, j.ID, wait); err != nil {
					return fmt.Errorf("loadgen: seeding the repeated query on %s: %w", g, err)
				}
			}
			if j.State != api.JobReleased {
				return fmt.Errorf("loadgen: the repeated query on %s ended %s, not released", g, j.State)
			}
			rows, err := resultRows(j.Result)
			if err != nil {
				return err
			}
			t.RepeatResults[g] = rows
		}
	}
	return nil
}

// resultRows is the rows of a released result, as JSON.
func resultRows(raw json.RawMessage) (json.RawMessage, error) {
	var r struct {
		Rows json.RawMessage `json:"rows"`
	}
	if err := json.Unmarshal(raw, &r); err != nil || len(r.Rows) == 0 {
		return nil, errors.New("loadgen: a released job has no result rows")
	}
	return r.Rows, nil
}

// newQueries are the small DP queries of new jobs (and explains), taken in turn.
var newQueries = []string{
	"SELECT district, COUNT(*) AS visits FROM %s GROUP BY district",
	"SELECT age_band, COUNT(*) AS visits FROM %s GROUP BY age_band",
	"SELECT inpatient, COUNT(*) AS visits, SUM(cost) AS cost FROM %s GROUP BY inpatient",
	"SELECT diagnosis_chapter, COUNT(*) AS visits FROM %s GROUP BY diagnosis_chapter",
}

// Run sends the load and returns its report. It stops starting requests after cfg.Duration
// and returns when every in-flight request has ended (or ctx ends).
func Run(ctx context.Context, t *Target, cfg Config) (*Report, error) {
	if cfg.Rate <= 0 || cfg.Duration <= 0 || cfg.MaxInFlight <= 0 {
		return nil, errors.New("loadgen: rate, duration and max in flight must be positive")
	}
	if len(t.Applicants) == 0 || t.Dataset == "" || t.Anonymous == nil {
		return nil, errors.New("loadgen: the target needs an anonymous client, applicants and a dataset")
	}
	if cfg.ForbiddenRate > 0 && (t.Snoop == nil || t.ForbiddenGrant == "") {
		return nil, errors.New("loadgen: forbidden reads need a snoop client and a grant it may not see")
	}
	if cfg.PollWait <= 0 {
		cfg.PollWait = 30 * time.Second
	}
	if cfg.Epsilon <= 0 {
		cfg.Epsilon = 0.01
	}
	if cfg.EpsilonStep <= 0 {
		cfg.EpsilonStep = 1e-5
	}
	datasets := t.Datasets
	if len(datasets) == 0 {
		datasets = []string{t.Dataset}
	}
	type grantOf struct {
		a     *Applicant
		grant string
	}
	var grants []grantOf
	for i := range t.Applicants {
		for _, g := range t.Applicants[i].Grants {
			grants = append(grants, grantOf{&t.Applicants[i], g})
		}
	}
	if len(grants) == 0 {
		return nil, errors.New("loadgen: no grants")
	}
	for _, g := range grants {
		if _, ok := t.RepeatResults[g.grant]; !ok {
			return nil, fmt.Errorf("loadgen: grant %s has no seeded release of the repeated query (SeedRepeats)", g.grant)
		}
	}

	// The mix as a smooth weighted round robin: each class recurs at even spacing (a job every
	// 25 requests at weight 4), so a short run sees every class in its share.
	deck := smoothMix()

	rec := newRecorder()
	sem := make(chan struct{}, cfg.MaxInFlight)
	var wg sync.WaitGroup
	var mu sync.Mutex
	counter := map[string]int{} // per class: which dataset, grant and query comes next
	next := func(class string) int {
		mu.Lock()
		defer mu.Unlock()
		n := counter[class]
		counter[class]++
		return n
	}
	jobs := 0 // new jobs so far, for their epsilon
	nextJob := func() int {
		mu.Lock()
		defer mu.Unlock()
		jobs++
		return jobs
	}

	wait := func(c *client.Client, class, id string) (*api.Job, error) {
		for {
			var j *api.Job
			if err := timed(rec, class, func() (err error) { j, err = c.Job(ctx, id, cfg.PollWait); return err }); err != nil {
				return nil, err
			}
			if !client.Pending(j.State) {
				return j, nil
			}
		}
	}
	newJob := func(g grantOf, n int) api.JobRequest {
		return api.JobRequest{Grant: g.grant, Kind: api.KindSQL, SQL: fmt.Sprintf(newQueries[n%len(newQueries)], t.Dataset),
			Options: api.JobOptions{Epsilon: cfg.Epsilon + float64(n)*cfg.EpsilonStep}}
	}

	do := func(class string) {
		switch class {
		case ClassHealth:
			_ = timed(rec, class, func() error { _, err := t.Anonymous.Health(ctx); return err })
		case ClassDatasetList:
			a := t.Applicants[next(class)%len(t.Applicants)]
			_ = timed(rec, class, func() error { _, err := a.Client.Datasets(ctx); return err })
		case ClassDatasetShow:
			n := next(class)
			a := t.Applicants[n%len(t.Applicants)]
			_ = timed(rec, class, func() error { _, err := a.Client.Dataset(ctx, datasets[n%len(datasets)]); return err })
		case ClassExplain:
			n := next(class)
			g := grants[n%len(grants)]
			_ = timed(rec, class, func() error { _, err := g.a.Client.Explain(ctx, newJob(g, n)); return err })
		case ClassGrantBudget:
			g := grants[next(class)%len(grants)]
			_ = timed(rec, class, func() error { _, err := g.a.Client.Budget(ctx, client.BudgetGrant, g.grant); return err })
		case ClassJobSubmit:
			g := grants[next(class)%len(grants)]
			var j *api.Job
			if timed(rec, class, func() (err error) { j, err = g.a.Client.SubmitJob(ctx, newJob(g, nextJob())); return err }) != nil {
				return
			}
			j, err := wait(g.a.Client, ClassJobWait, j.ID)
			if err != nil {
				return
			}
			if j.State != api.JobReleased {
				rec.fail(ClassJobWait, "job "+j.State+codeOf(j))
				return
			}
			rec.mu.Lock()
			rec.released++
			rec.mu.Unlock()
		case ClassRepeatSubmit:
			g := grants[next(class)%len(grants)]
			req := t.Repeat
			req.Grant = g.grant
			var j *api.Job
			if timed(rec, class, func() (err error) { j, err = g.a.Client.SubmitJob(ctx, req); return err }) != nil {
				return
			}
			j, err := wait(g.a.Client, ClassRepeatWait, j.ID)
			if err != nil {
				return
			}
			if j.State != api.JobReleased {
				rec.fail(ClassRepeatWait, "repeat "+j.State+codeOf(j))
				return
			}
			rows, err := resultRows(j.Result)
			if err != nil || string(rows) != string(t.RepeatResults[g.grant]) {
				rec.fail(ClassRepeatWait, "a repeat's answer differs from its first release")
				return
			}
			rec.mu.Lock()
			rec.repeats++
			rec.mu.Unlock()
		case ClassForbidden:
			start := time.Now()
			_, err := t.Snoop.Budget(ctx, client.BudgetGrant, t.ForbiddenGrant)
			rec.add(class, time.Since(start))
			var ae *client.Error
			switch {
			case err == nil:
				rec.fail(class, "a forbidden read was answered")
			case errors.As(err, &ae) && (ae.Status == http.StatusNotFound && ae.Code == string(errcode.NotFound) || ae.Status == http.StatusForbidden && ae.Code == string(errcode.Forbidden)):
				rec.deliberate(class)
			default:
				rec.fail(class, errWhat(err))
			}
		}
	}

	rep := &Report{Rate: cfg.Rate, ForbiddenRate: cfg.ForbiddenRate, Duration: cfg.Duration, Failures: map[string]int{}}
	sample := func() *Mem {
		if cfg.Memory == nil {
			return nil
		}
		m, err := cfg.Memory()
		if err != nil {
			rec.fail("memory", "the server's memory could not be read")
			return nil
		}
		if m.RSSKiB > rep.MemMaxKiB {
			rep.MemMaxKiB = m.RSSKiB
		}
		return &m
	}
	rep.MemBefore = sample()

	start := time.Now()
	end := start.Add(cfg.Duration)
	launch := func(class string) {
		rep.Scheduled++
		select {
		case sem <- struct{}{}:
		default:
			rep.Shed++
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			do(class)
		}()
	}
	interval := time.Duration(float64(time.Second) / cfg.Rate)
	var fInterval time.Duration
	if cfg.ForbiddenRate > 0 {
		fInterval = time.Duration(float64(time.Second) / cfg.ForbiddenRate)
	}
	nextMain, nextForbidden := start, start.Add(fInterval/2)
	nextSample, warmTaken := start.Add(time.Second), false
	dealt := 0
	for {
		at := nextMain
		if fInterval > 0 && nextForbidden.Before(at) {
			at = nextForbidden
		}
		if !at.Before(end) {
			break
		}
		if d := time.Until(at); d > 0 {
			select {
			case <-ctx.Done():
				wg.Wait()
				return nil, ctx.Err()
			case <-time.After(d):
			}
		}
		if fInterval > 0 && at.Equal(nextForbidden) {
			launch(ClassForbidden)
			nextForbidden = nextForbidden.Add(fInterval)
		} else {
			launch(deck[dealt%len(deck)])
			dealt++
			nextMain = nextMain.Add(interval)
		}
		// Memory, once a second and at the end of the warm-up (off the schedule's path: a
		// read of /proc takes microseconds).
		if now := time.Now(); now.After(nextSample) {
			m := sample()
			if !warmTaken && now.Sub(start) >= cfg.Warmup {
				rep.MemWarm, warmTaken = m, true
			}
			nextSample = nextSample.Add(time.Second)
		}
	}
	wg.Wait()
	rep.Elapsed = time.Since(start)
	if !warmTaken {
		rep.MemWarm = sample()
	}
	rep.MemAfter = sample()
	if rep.MemAfter != nil && rep.MemAfter.HWMKiB > rep.MemMaxKiB {
		rep.MemMaxKiB = rep.MemAfter.HWMKiB
	}

	rec.mu.Lock()
	defer rec.mu.Unlock()
	for _, class := range classOrder {
		lat := rec.lat[class]
		if len(lat) == 0 && rec.unexp[class] == 0 {
			continue
		}
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		cr := ClassReport{Class: class, Requests: len(lat), Deliberate: rec.delib[class], Unexpected: rec.unexp[class]}
		if len(lat) > 0 {
			cr.P50, cr.P99, cr.Max = percentile(lat, 50), percentile(lat, 99), lat[len(lat)-1]
		}
		rep.Classes = append(rep.Classes, cr)
		rep.Requests += len(lat)
	}
	for _, n := range rec.delib {
		rep.Deliberate += n
	}
	for _, n := range rec.unexp {
		rep.Unexpected += n
	}
	for k, n := range rec.failures {
		rep.Failures[k] = n
	}
	rep.JobsReleased, rep.Repeats = rec.released, rec.repeats
	if rep.Elapsed > 0 {
		rep.Throughput = float64(rep.Requests) / rep.Elapsed.Seconds()
	}
	return rep, nil
}

// smoothMix lays Mix out as one cycle of smooth weighted round robin: at each step every class
// gains its weight, and the class with the most is taken and loses the total.
func smoothMix() []string {
	total := 0
	for _, m := range Mix {
		total += m.Weight
	}
	credit := make([]int, len(Mix))
	out := make([]string, 0, total)
	for range total {
		best := 0
		for i, m := range Mix {
			credit[i] += m.Weight
			if credit[i] > credit[best] {
				best = i
			}
		}
		credit[best] -= total
		out = append(out, Mix[best].Class)
	}
	return out
}

// percentile is the nearest-rank p-th percentile of sorted durations.
func percentile(sorted []time.Duration, p int) time.Duration {
	i := (p*len(sorted)+99)/100 - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

func codeOf(j *api.Job) string {
	if j.Error != nil {
		return " (" + j.Error.Code + ")"
	}
	return ""
}

// ProcMem returns a sampler of process pid's memory from /proc/<pid>/status (Linux), with the
// RSS of its descendants (found in /proc/<pid>/task/*/children) summed apart.
func ProcMem(pid int) func() (Mem, error) {
	return func() (Mem, error) {
		m, err := procStatus(pid)
		if err != nil {
			return Mem{}, err
		}
		for _, child := range descendants(pid) {
			if c, err := procStatus(child); err == nil { // a worker may exit between the reads
				m.WorkersRSSKiB += c.RSSKiB
				m.WorkersHWMKiB += c.HWMKiB
			}
		}
		return m, nil
	}
}

// ResetPeaks resets the VmHWM of process pid and of its descendants to their current RSS
// (Linux: "5" written to /proc/<pid>/clear_refs), so that the next ProcMem sample's peaks are
// those since the reset: a benchmark reads one workload's peak apart from the ones before.
func ResetPeaks(pid int) error {
	for _, p := range append([]int{pid}, descendants(pid)...) {
		if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", p), []byte("5"), 0); err != nil && p == pid {
			return fmt.Errorf("loadgen: resetting the peak RSS of process %d: %w", p, err)
		}
	}
	return nil
}

// descendants lists pid's descendant processes.
func descendants(pid int) []int {
	var out []int
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			if c, err := strconv.Atoi(f); err == nil {
				out = append(out, c)
				out = append(out, descendants(c)...)
			}
		}
	}
	return out
}

func procStatus(pid int) (Mem, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return Mem{}, err
	}
	var m Mem
	for _, line := range strings.Split(string(b), "\n") {
		key, val, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		var dst *int64
		switch key {
		case "VmRSS":
			dst = &m.RSSKiB
		case "VmHWM":
			dst = &m.HWMKiB
		default:
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(val), "kB")), 10, 64)
		if err != nil {
			return Mem{}, fmt.Errorf("loadgen: /proc/%d/status: %s is not a size in kB", pid, key)
		}
		*dst = n
	}
	if m.RSSKiB == 0 {
		return Mem{}, fmt.Errorf("loadgen: /proc/%d/status has no VmRSS", pid)
	}
	return m, nil
}

// WriteTable prints the report for people.
func (r *Report) WriteTable(w io.Writer) {
	ms := func(d time.Duration) string {
		return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 1, 64)
	}
	fmt.Fprintf(w, "offered %.1f req/s (+ %.2f forbidden reads/s) for %s; ran %s until the last request ended\n",
		r.Rate, r.ForbiddenRate, r.Duration, r.Elapsed.Round(time.Millisecond))
	fmt.Fprintf(w, "scheduled %d, shed at the in-flight bound %d; HTTP requests %d, throughput %.1f req/s\n",
		r.Scheduled, r.Shed, r.Requests, r.Throughput)
	fmt.Fprintf(w, "jobs released %d, repeats answered from their release %d\n", r.JobsReleased, r.Repeats)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "class\trequests\tp50 ms\tp99 ms\tmax ms\tdeliberate\tunexpected\t")
	for _, c := range r.Classes {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%d\t%d\t\n", c.Class, c.Requests, ms(c.P50), ms(c.P99), ms(c.Max), c.Deliberate, c.Unexpected)
	}
	tw.Flush()
	fmt.Fprintf(w, "errors: deliberate %d, unexpected %d\n", r.Deliberate, r.Unexpected)
	keys := slices.Sorted(maps.Keys(r.Failures))
	for _, k := range keys {
		fmt.Fprintf(w, "  unexpected %s: %d\n", k, r.Failures[k])
	}
	if r.MemBefore != nil && r.MemWarm != nil && r.MemAfter != nil {
		mib := func(k int64) string { return strconv.FormatFloat(float64(k)/1024, 'f', 1, 64) }
		fmt.Fprintf(w, "server memory (VmRSS, MiB): before %s, after warm-up %s, after %s (growth after warm-up %s); peak (VmHWM) %s\n",
			mib(r.MemBefore.RSSKiB), mib(r.MemWarm.RSSKiB), mib(r.MemAfter.RSSKiB), mib(r.RSSGrowthKiB()), mib(max(r.MemAfter.HWMKiB, r.MemMaxKiB)))
		fmt.Fprintf(w, "sandbox workers' memory (VmRSS, MiB): before %s, after warm-up %s, after %s\n",
			mib(r.MemBefore.WorkersRSSKiB), mib(r.MemWarm.WorkersRSSKiB), mib(r.MemAfter.WorkersRSSKiB))
	}
}
