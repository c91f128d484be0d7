package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/c1b99f93/cleanroom/catalog"
	"github.com/c1b99f93/cleanroom/server/api"
	"github.com/c1b99f93/cleanroom/server/client"
	"github.com/c1b99f93/cleanroom/server/loadgen"
)

// loadOptions are the flags of `cleanroom loadtest`.
type loadOptions struct {
	url, token, forbiddenToken, forbiddenGrant, dataset, datasets string
	grants                                                        []string
	serverPID                                                     int
	rate, forbiddenRate                                           float64
	duration, warmup                                              time.Duration
	maxInFlight                                                   int
	rssGrowthMiB                                                  int64
	output                                                        string
}

// loadRepeatSQL is the query every grant releases once and then repeats.
const loadRepeatSQL = "SELECT district, COUNT(*) AS visits FROM %s GROUP BY district"

func newLoadtestCmd() *cobra.Command {
	o := loadOptions{}
	cmd := &cobra.Command{
		Use:   "loadtest",
		Short: "Send open-loop mixed API traffic at a fixed rate and report latency, errors and server memory",
		Long: `Send open-loop mixed API traffic at a fixed rate for a fixed time and report throughput,
p50/p99 latency per request class, errors and the server's memory; exit non-zero on any
unexpected error or on RSS growth after the warm-up beyond --rss-growth-max.

Requests start on schedule whether or not earlier ones finished; at most --max-in-flight are
outstanding (keep it below the server's --max-conns-per-addr), and one that finds them all
busy is shed and counted. The mix: health checks, dataset list and show, explain, grant budget
reads, small DP query jobs submitted and long-polled to their release, a query repeated on its
grant and answered from its first release, and forbidden reads (a grant the reader may not see:
deliberate errors, counted apart, at --forbidden-rate so as to stay within the server's limit
on denied requests).

Without --url it starts its own platform: ` + "`cleanroom serve`" + ` (this binary) on a loopback port
over a temporary data directory, the provider registering --dataset from --datasets, three
applicant organisations with two grants each (the hourly job limit is per grant), and a
fourth organisation's snoop for the forbidden reads. With --url it drives an existing server
as the applicant --token on its --grant grants, each covering --dataset.`,
		Example: `  cleanroom loadtest                                  # its own server, 25 req/s for 60s
  cleanroom loadtest --rate 50 --duration 30s --output json
  CLEANROOM_TOKEN=… cleanroom loadtest --url http://127.0.0.1:8080 --grant g-1 --grant g-2 --server-pid 4242`,
		Args: cobra.NoArgs,
		PreRunE: func(*cobra.Command, []string) error {
			switch {
			case o.rate <= 0 || o.forbiddenRate < 0:
				return errors.New("--rate must be positive and --forbidden-rate not negative")
			case o.duration <= 0 || o.warmup < 0 || o.warmup >= o.duration:
				return errors.New("--duration must be positive and --warmup shorter than it")
			case o.maxInFlight < 1:
				return errors.New("--max-in-flight must be at least 1")
			case o.output != outputTable && o.output != outputJSON:
				return fmt.Errorf("--output must be %s or %s", outputTable, outputJSON)
			}
			if o.url != "" {
				if o.token == "" {
					o.token = os.Getenv(envToken)
				}
				if o.token == "" || len(o.grants) == 0 {
					return errors.New("--url needs the applicant's --token (or " + envToken + ") and at least one --grant")
				}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			exe, err := os.Executable()
			if err != nil {
				return err
			}
			return runLoadtest(cmd.Context(), cmd.OutOrStdout(), o, func(args []string) *exec.Cmd { return exec.Command(exe, args...) })
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.url, "url", "", "the server to load (default: start one on loopback)")
	f.StringVar(&o.token, "token", "", "with --url: the applicant's bearer token (default $"+envToken+")")
	f.StringArrayVar(&o.grants, "grant", nil, "with --url: a grant of the applicant covering --dataset (repeat; the hourly job limit is per grant)")
	f.StringVar(&o.forbiddenToken, "forbidden-token", "", "with --url: who makes the forbidden reads (default --token)")
	f.StringVar(&o.forbiddenGrant, "forbidden-grant", "g-loadtest-not-yours", "with --url: the grant the forbidden reads ask for (one the reader may not see)")
	f.IntVar(&o.serverPID, "server-pid", 0, "with --url: the server's process id, to report its memory (same machine)")
	f.StringVar(&o.dataset, "dataset", "medical_visits", "the dataset the queries read")
	f.StringVar(&o.datasets, "datasets", "testdata/datasets", "without --url: the folder of catalog specs and their data")
	f.Float64Var(&o.rate, "rate", 25, "requests started per second (the mix)")
	f.Float64Var(&o.forbiddenRate, "forbidden-rate", 0.5, "forbidden reads per second (below the server's --denied-per-minute)")
	f.DurationVar(&o.duration, "duration", 60*time.Second, "how long requests are started")
	f.DurationVar(&o.warmup, "warmup", 10*time.Second, "memory growth is measured from the end of the warm-up")
	f.IntVar(&o.maxInFlight, "max-in-flight", 48, "requests outstanding at once (below the server's --max-conns-per-addr)")
	f.Int64Var(&o.rssGrowthMiB, "rss-growth-max", 64, "largest growth of the server's RSS after the warm-up, in MiB")
	f.StringVarP(&o.output, "output", "o", outputTable, "table or json")
	return cmd
}

// runLoadtest runs the load and writes the report; serve makes the command that starts
// `cleanroom serve` with the given arguments (self-contained mode).
func runLoadtest(ctx context.Context, out io.Writer, o loadOptions, serve func(args []string) *exec.Cmd) (err error) {
	if ctx == nil {
		ctx = context.Background()
	}
	hc := loadHTTPClient(o.maxInFlight)
	var target *loadgen.Target
	var pid int
	if o.url == "" {
		p, err := startLoadPlatform(ctx, serve, o.datasets, o.dataset, hc, nil)
		if err != nil {
			return err
		}
		defer func() { err = errors.Join(err, p.stop()) }()
		target, pid = p.target, p.cmd.Process.Pid
	} else {
		if target, err = urlTarget(o, hc); err != nil {
			return err
		}
		pid = o.serverPID
	}
	target.Repeat = api.JobRequest{Kind: api.KindSQL, SQL: fmt.Sprintf(loadRepeatSQL, o.dataset), Options: api.JobOptions{Epsilon: 0.05}}
	if err := loadgen.SeedRepeats(ctx, target, 30*time.Second); err != nil {
		return err
	}
	cfg := loadgen.Config{Rate: o.rate, ForbiddenRate: o.forbiddenRate, Duration: o.duration, Warmup: o.warmup,
		MaxInFlight: o.maxInFlight}
	if pid > 0 {
		cfg.Memory = loadgen.ProcMem(pid)
	}
	rep, err := loadgen.Run(ctx, target, cfg)
	if err != nil {
		return err
	}
	if o.output == outputJSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		rep.WriteTable(out)
	}
	var problems []string
	if rep.Unexpected > 0 {
		problems = append(problems, fmt.Sprintf("%d unexpected errors", rep.Unexpected))
	}
	if g := rep.RSSGrowthKiB(); g > o.rssGrowthMiB<<10 {
		problems = append(problems, fmt.Sprintf("the server's RSS grew %d KiB after the warm-up (bound %d MiB)", g, o.rssGrowthMiB))
	}
	if len(problems) > 0 {
		return errors.New("loadtest: " + strings.Join(problems, "; "))
	}
	return nil
}

// loadHTTPClient shares one connection pool, sized to the in-flight bound, between every
// principal's client; its timeout exceeds the long poll.
func loadHTTPClient(maxInFlight int) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxConnsPerHost = maxInFlight + 4 // the bound, and the set-up and memory reads around it
	tr.MaxIdleConns = maxInFlight + 4
	tr.MaxIdleConnsPerHost = maxInFlight + 4
	return &http.Client{Transport: tr, Timeout: 2 * time.Minute}
}

// urlTarget is the target of --url: the applicant --token on its --grant grants.
func urlTarget(o loadOptions, hc *http.Client) (*loadgen.Target, error) {
	opts := []client.Option{client.WithHTTPClient(hc), client.WithUserAgent("cleanroom-loadtest")}
	anon, err := client.New(o.url, "", opts...)
	if err != nil {
		return nil, err
	}
	app, err := client.New(o.url, o.token, opts...)
	if err != nil {
		return nil, err
	}
	snoop := app
	if o.forbiddenToken != "" {
		if snoop, err = client.New(o.url, o.forbiddenToken, opts...); err != nil {
			return nil, err
		}
	}
	return &loadgen.Target{Anonymous: anon, Applicants: []loadgen.Applicant{{Name: "applicant", Client: app, Grants: o.grants}},
		Dataset: o.dataset, Snoop: snoop, ForbiddenGrant: o.forbiddenGrant}, nil
}

// loadPlatform is a `cleanroom serve` child process with its principals and grants.
type loadPlatform struct {
	cmd    *exec.Cmd
	url    string
	dir    string
	target *loadgen.Target
	// tokens by principal name, and clients (sharing the load's connection pool).
	tokens  map[string]string
	clients map[string]*client.Client
	stop    func() error
}

// Principals of the self-contained platform: the dataset's provider, an operator, three
// applicant organisations and a snoop of a fourth.
var loadApplicants = []struct{ name, org string }{
	{"insurer-a", "acme-insurance"}, {"insurer-b", "beta-insurance"}, {"insurer-c", "gamma-insurance"},
}

const loadGrantsPerApplicant = 2

// startLoadPlatform starts `cleanroom serve` (serve with extra arguments appended) over a
// temporary data directory on a free loopback port, registers the dataset and makes the grants.
func startLoadPlatform(ctx context.Context, serve func(args []string) *exec.Cmd, datasetsDir, dataset string, hc *http.Client, extra []string) (p *loadPlatform, err error) {
	spec, err := catalog.LoadFile(filepath.Join(datasetsDir, dataset+".yaml"))
	if err != nil {
		return nil, fmt.Errorf("loadtest: the dataset's spec (run from the repository root or pass --datasets): %w", err)
	}
	root, err := filepath.Abs(filepath.Join(datasetsDir, spec.Provider))
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "cleanroom-loadtest-")
	if err != nil {
		return nil, err
	}
	p = &loadPlatform{dir: dir, tokens: map[string]string{}, clients: map[string]*client.Client{}}
	p.stop = func() error { return os.RemoveAll(dir) }
	defer func() {
		if err != nil {
			err = errors.Join(err, p.stop())
		}
	}()

	people := []api.Principal{{Name: "provider", Role: "provider", Org: spec.Provider}, {Name: "op-1", Role: "operator", Org: "platform"}}
	for _, a := range loadApplicants {
		people = append(people, api.Principal{Name: a.name, Role: "applicant", Org: a.org})
	}
	people = append(people, api.Principal{Name: "snoop", Role: "applicant", Org: "delta-analytics"})
	b, tokens, err := principalsDoc(people)
	if err != nil {
		return nil, err
	}
	maps.Copy(p.tokens, tokens)
	principals := filepath.Join(dir, "principals.yaml")
	if err := os.WriteFile(principals, b, 0o600); err != nil {
		return nil, err
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	args := append([]string{"serve", "--data-dir", filepath.Join(dir, "data"), "--principals", principals,
		"--listen", addr, "--import-root", spec.Provider + "=" + root}, extra...)
	cmd := serve(args)
	logf, err := os.Create(filepath.Join(dir, "serve.log"))
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	p.cmd, p.url = cmd, "http://"+addr
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait(); logf.Close() }()
	p.stop = func() error {
		var werr error
		select {
		case werr = <-exited:
			werr = fmt.Errorf("loadtest: cleanroom serve ended early (%v)%s", werr, logTail(filepath.Join(dir, "serve.log")))
		default:
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(90 * time.Second):
				_ = cmd.Process.Kill()
				<-exited
				werr = errors.New("loadtest: cleanroom serve did not stop within 90s of SIGTERM; killed")
			}
		}
		return errors.Join(werr, os.RemoveAll(dir))
	}

	opts := []client.Option{client.WithHTTPClient(hc), client.WithUserAgent("cleanroom-loadtest")}
	anon, err := client.New(p.url, "", opts...)
	if err != nil {
		return nil, err
	}
	for up := time.Now().Add(2 * time.Minute); ; time.Sleep(50 * time.Millisecond) {
		if _, err := anon.Health(ctx); err == nil {
			break
		}
		select {
		case werr := <-exited:
			exited <- werr
			return nil, fmt.Errorf("loadtest: cleanroom serve did not start (%v)%s", werr, logTail(filepath.Join(dir, "serve.log")))
		default:
		}
		if time.Now().After(up) {
			return nil, errors.New("loadtest: cleanroom serve did not answer /healthz within 2 minutes")
		}
	}
	for name, tok := range p.tokens {
		if p.clients[name], err = client.New(p.url, tok, opts...); err != nil {
			return nil, err
		}
	}
	if _, err := p.clients["provider"].RegisterDataset(ctx, spec); err != nil {
		return nil, fmt.Errorf("loadtest: registering %s: %w", dataset, err)
	}
	// Each grant gets a share of the dataset's lifetime budget.
	n := len(loadApplicants) * loadGrantsPerApplicant
	eps, delta := spec.Budget.Epsilon/float64(n+1), spec.Budget.Delta/float64(n+1)
	today := time.Now().UTC()
	p.target = &loadgen.Target{Anonymous: anon, Dataset: dataset, Snoop: p.clients["snoop"]}
	for _, a := range loadApplicants {
		app := loadgen.Applicant{Name: a.name, Client: p.clients[a.name]}
		for range loadGrantsPerApplicant {
			g, err := p.grant(ctx, a.name, dataset, today, eps, delta)
			if err != nil {
				return nil, err
			}
			app.Grants = append(app.Grants, g)
		}
		p.target.Applicants = append(p.target.Applicants, app)
	}
	p.target.ForbiddenGrant = p.target.Applicants[0].Grants[0]
	return p, nil
}

// grant has applicant apply for dataset and the operator approve it; it returns the grant.
func (p *loadPlatform) grant(ctx context.Context, applicant, dataset string, today time.Time, eps, delta float64) (string, error) {
	app, err := p.clients[applicant].CreateApplication(ctx, api.ApplicationRequest{Purpose: "load test", Scenario: "visits by district, age band and diagnosis chapter",
		Datasets: []string{dataset}, Start: today.Format(time.DateOnly), End: today.AddDate(0, 1, 0).Format(time.DateOnly),
		Epsilon: eps, Delta: delta, JobKinds: []string{api.KindSQL}})
	if err != nil {
		return "", fmt.Errorf("loadtest: %s applying: %w", applicant, err)
	}
	ok, err := p.clients["op-1"].ApproveApplication(ctx, app.ID, api.ApproveRequest{})
	if err != nil {
		return "", fmt.Errorf("loadtest: approving %s's application: %w", applicant, err)
	}
	return ok.GrantID, nil
}

// logTail is the end of the server's log, to explain a failed start (the log holds no tokens:
// the server never logs them).
func logTail(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > 10 {
			lines = lines[1:]
		}
	}
	if len(lines) == 0 {
		return ""
	}
	return "; its log ends:\n" + strings.Join(lines, "\n")
}
