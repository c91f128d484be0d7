package bench

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/c1b99f93/cleanroom/server/api"
	"github.com/c1b99f93/cleanroom/server/client"
	"github.com/c1b99f93/cleanroom/server/loadgen"
)

// httpQuery is the small DP query of the HTTP rows (14 public partitions).
const httpQuery = "SELECT district, COUNT(*) AS visits FROM %s GROUP BY district"

// httpPollWait is the long poll's wait: a job's outcome is answered as soon as it is stored.
const httpPollWait = 30 * time.Second

// runHTTP measures, on one server per completion quantum, the time from submitting a job to
// reading its released result: for a new query (each sample a different epsilon, so each
// computes) and for a query repeated on its grant (answered from its first release).
func runHTTP(ctx context.Context, o Options) ([]Result, error) {
	var out []Result
	for _, q := range o.HTTP.Quanta {
		res, err := httpRows(ctx, o, q)
		if err != nil {
			return nil, err
		}
		out = append(out, res...)
	}
	return out, nil
}

func httpRows(ctx context.Context, o Options, q time.Duration) (rows []Result, err error) {
	srv, err := o.HTTP.Start(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("bench: starting the server: %w", err)
	}
	defer func() { err = errors.Join(err, srv.Stop()) }()
	if len(srv.Grants) == 0 {
		return nil, errors.New("bench: the server has no grant to query on")
	}
	suffix := "_q" + q.String()
	sql := fmt.Sprintf(httpQuery, srv.Dataset)
	n := 0
	newQuery := func(int) (*client.Client, api.JobRequest) {
		n++
		g := srv.Grants[n%len(srv.Grants)]
		// A new epsilon is a new query: it computes rather than repeating a release.
		return g.Client, api.JobRequest{Grant: g.ID, Kind: api.KindSQL, SQL: sql, Options: api.JobOptions{Epsilon: 0.01 + float64(n)*1e-5}}
	}
	repeat := func(i int) (*client.Client, api.JobRequest) {
		g := srv.Grants[i%len(srv.Grants)]
		return g.Client, api.JobRequest{Grant: g.ID, Kind: api.KindSQL, SQL: sql, Options: api.JobOptions{Epsilon: 0.05}}
	}
	// The repeated query is released once on every grant first.
	seed := make([]func(int) (*client.Client, api.JobRequest), len(srv.Grants))
	for i := range seed {
		seed[i] = repeat
	}
	seed = append(seed, newQuery) // and one new query, to warm
	for i, f := range seed {
		c, req := f(i)
		if _, err := submitAndRead(ctx, c, req); err != nil {
			return nil, err
		}
	}
	for _, row := range []struct {
		name string
		req  func(i int) (*client.Client, api.JobRequest)
		note string
	}{
		{HTTPQuery + suffix, newQuery, "a new DP query each sample, submitted and its result read"},
		{HTTPRepeat + suffix, repeat, "the same query again on its grant: answered from its first release, shown without the completion quantum"},
	} {
		if o.selected(row.name[:len(row.name)-len(suffix)]) {
			r, err := httpRow(ctx, srv, row.name, row.req, o.HTTP.Samples)
			if err != nil {
				return nil, err
			}
			r.Note = row.note + fmt.Sprintf("; completion quantum %s", q)
			rows = append(rows, r)
			fmt.Fprintf(o.Log, "%s: p50 %s, p99 %s\n", r.Name, dur(r.P50S), dur(r.P99S))
		}
	}
	return rows, nil
}

// httpRow times samples jobs in turn (closed loop: one at a time) and reads the server's and
// its workers' peak memory over them.
func httpRow(ctx context.Context, srv *Server, name string, req func(int) (*client.Client, api.JobRequest), samples int) (Result, error) {
	mem := loadgen.ProcMem(srv.PID)
	if err := loadgen.ResetPeaks(srv.PID); err != nil {
		return Result{}, err
	}
	lat := make([]float64, 0, samples)
	for i := range samples {
		c, r := req(i)
		d, err := submitAndRead(ctx, c, r)
		if err != nil {
			return Result{}, err
		}
		lat = append(lat, d.Seconds())
	}
	m, err := mem()
	if err != nil {
		return Result{}, err
	}
	r := Result{Name: name, Scale: srv.Rows, MedianS: median(lat), P50S: ptr(median(lat)), P99S: ptr(percentile(lat, 99)), Samples: samples,
		ServerPeakRSSMB: ptr(float64(m.HWMKiB) / 1024), WorkerPeakRSSMB: ptr(float64(m.WorkersHWMKiB) / 1024)}
	r.PeakRSSMB = ptr(*r.ServerPeakRSSMB + *r.WorkerPeakRSSMB)
	return r, nil
}

// submitAndRead submits req and long-polls the job until it is released, returning the time
// from the submission to the result read. A job ending otherwise is an error.
func submitAndRead(ctx context.Context, c *client.Client, req api.JobRequest) (time.Duration, error) {
	t0 := time.Now()
	j, err := c.SubmitJob(ctx, req)
	if err != nil {
		return 0, fmt.Errorf("bench: submitting a job: %w", err)
	}
	for id := j.ID; client.Pending(j.State); {
		if j, err = c.Job(ctx, id, httpPollWait); err != nil {
			return 0, fmt.Errorf("bench: reading job %s: %w", id, err)
		}
	}
	d := time.Since(t0)
	if j.State != api.JobReleased || len(j.Result) == 0 {
		code := ""
		if j.Error != nil {
			code = " (" + j.Error.Code + ")"
		}
		return 0, fmt.Errorf("bench: job %s ended %s%s, not released", j.ID, j.State, code)
	}
	return d, nil
}
