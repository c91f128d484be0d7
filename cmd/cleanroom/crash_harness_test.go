package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/c1b99f93/cleanroom/catalog"
	"github.com/c1b99f93/cleanroom/engine"
	"github.com/c1b99f93/cleanroom/engine/provenance"
	"github.com/c1b99f93/cleanroom/server/api"
	"github.com/c1b99f93/cleanroom/server/client"
	"github.com/c1b99f93/cleanroom/server/governance"
)

// The crash harness (docs/reliability.md, "Crash safety"): a real `cleanroom serve` process and
// its sandbox workers, a stream of jobs, reviews and governance decisions, and SIGKILL at random
// points, to the server or to a worker. The short run is part of `make test`; `make crashtest`
// runs the full one.
var (
	crashKills = flag.Int("crash.kills", 0, "faults the crash harness injects (default 4, or $CLEANROOM_CRASH_KILLS)")
	crashSeed  = flag.Uint64("crash.seed", 0, "the crash harness's random seed (default: from the clock, or $CLEANROOM_CRASH_SEED)")
)

// crashPrincipals are the harness's principals: two applicant organisations, two reviewers of
// the platform (a two-person review needs both), an operator, two providers and an auditor.
const crashPrincipals = `principals:
  - {name: hospital-a, role: provider,  org: health-commission,      token: "hospital-a-token-0123456789"}
  - {name: psb-1,      role: provider,  org: public-security-bureau, token: "psb-1-token-0123456789"}
  - {name: op-1,       role: operator,  org: platform,               token: "op-1-token-0123456789"}
  - {name: insurer-1,  role: applicant, org: acme-insurance,         token: "insurer-1-token-0123456789"}
  - {name: insurer-2,  role: applicant, org: beta-insurance,         token: "insurer-2-token-0123456789"}
  - {name: rev-1,      role: reviewer,  org: platform,               token: "rev-1-token-0123456789"}
  - {name: rev-2,      role: reviewer,  org: platform,               token: "rev-2-token-0123456789"}
  - {name: aud-1,      role: auditor,   org: audit-office,           token: "aud-1-token-0123456789"}
`

// crashQuery is one kind of job the stream submits.
type crashQuery struct {
	name string
	sql  string
	opts api.JobOptions // bounds set here are used as set; unset ones are chosen under DP
}

var crashQueries = []crashQuery{
	{"public partitions, automatic bounds", "SELECT district, COUNT(*) AS visits FROM medical_visits GROUP BY district", api.JobOptions{}},
	{"public partitions, fixed bounds", "SELECT age_band, COUNT(*) AS n, AVG(cost) AS c FROM medical_visits GROUP BY age_band",
		api.JobOptions{MaxGroupsContributed: 2, MaxContributionsPerGroup: 4}},
	{"partition selection", "SELECT hospital_id, COUNT(*) AS n FROM medical_visits GROUP BY hospital_id",
		api.JobOptions{MaxGroupsContributed: 4, MaxContributionsPerGroup: 2}},
	{"partition selection, automatic bounds", "SELECT hospital_id, SUM(cost) AS s FROM medical_visits GROUP BY hospital_id", api.JobOptions{}},
	{"no keys, quantile", "SELECT COUNT(*) AS n, QUANTILE_CONT(cost, 0.5) AS median FROM medical_visits", api.JobOptions{MaxContributionsPerGroup: 8}},
	{"held for two reviewers (L3 join)", "SELECT r.income_band, COUNT(*) AS visits FROM medical_visits v JOIN residents r ON v.person_id = r.person_id GROUP BY r.income_band",
		api.JobOptions{MaxGroupsContributed: 1, MaxContributionsPerGroup: 4}},
}

// crashEpsilons: each (query, epsilon) is its own output; a repeat of one is answered from
// its release (or its decision) at no cost.
var crashEpsilons = []float64{0.005, 0.007, 0.01, 0.013, 0.017, 0.02}

// crashCounters are the harness's figures.
type crashCounters struct {
	ServerKills, WorkerKills, WorkerKillsMissed, Restarts            int
	Submitted, Refused, Explains                                     int
	Released, ReleasedFromCache, InReview, Denied, Failed            int
	Interrupted, WorkerFailures                                      int
	InterruptedCharged, InterruptedRefunded, InterruptedAfterRelease int
	Reviews, Approvals, GrantActions, ReviewReleasesRolledBack       int
	Checks                                                           int
	DataLost, Overspend, Violations                                  int
}

func (c crashCounters) String() string {
	return fmt.Sprintf("faults injected %d (server SIGKILL %d, worker SIGKILL %d; %d worker kills found no worker), restarts %d\n"+
		"jobs submitted %d (refused at submission %d), explains %d\n"+
		"jobs released %d (+%d answered from an earlier release), in review %d, denied %d, failed %d (interrupted by a server kill %d: reservation kept %d, refunded before the kill %d, release recorded but not yet stored %d; failed by a worker kill %d)\n"+
		"reviews %d (approvals that released, cut off and rolled back at restart: %d), applications approved %d, grant suspensions/resumptions/revocations %d\n"+
		"invariant checks %d; data lost %d, overspend %d, other violations %d",
		c.ServerKills+c.WorkerKills, c.ServerKills, c.WorkerKills, c.WorkerKillsMissed, c.Restarts,
		c.Submitted, c.Refused, c.Explains,
		c.Released, c.ReleasedFromCache, c.InReview, c.Denied, c.Failed, c.Interrupted, c.InterruptedCharged, c.InterruptedRefunded, c.InterruptedAfterRelease, c.WorkerFailures,
		c.Reviews, c.ReviewReleasesRolledBack, c.Approvals, c.GrantActions,
		c.Checks, c.DataLost, c.Overspend, c.Violations)
}

// crashHarness holds the platform under test and what the harness knows it was told.
type crashHarness struct {
	t       *testing.T
	rng     *rand.Rand
	rngMu   sync.Mutex
	command []string // the server's command, before "serve …"
	env     []string
	args    []string // serve's flags, but --listen
	dataDir string
	logFile *os.File // the servers' stderr, one file over every restart

	proc   *exec.Cmd
	exited chan error // the running server's exit
	url    string
	pub    string

	mu         sync.Mutex
	n          crashCounters
	acked      map[string]string          // job → grant: submissions answered 202
	seen       map[string]string          // job → state at the last check
	results    map[string]string          // released job → SHA-256 of its result
	reviews    map[string]map[string]bool // job → reviewers whose decision was answered
	grantWant  map[string][]string        // grant → states it may be in (an unanswered action adds one)
	appWant    map[string][]string        // application → states it may be in
	grantJobs  map[string]int             // grant → jobs submitted on it
	current    map[string]string          // applicant → the grant it submits on
	logSize    uint64                     // entries the log held at the last check
	logHead    string                     // hash of its last entry then
	violations []string
}

func crashKillCount() int {
	if *crashKills > 0 {
		return *crashKills
	}
	if v, err := strconv.Atoi(os.Getenv("CLEANROOM_CRASH_KILLS")); err == nil && v > 0 {
		return v
	}
	return 4
}

// TestCrashHarnessKillsServerAndWorker runs the stream and injects crashKillCount() faults:
// each a SIGKILL of the server (then restarted on the same data directory) or of a sandbox
// worker, at a random point. After each it lets the platform settle and checks: the log
// verifies and kept every record it had; every job the server accepted exists and none is left
// queued or running; every released result is still there, unchanged, with its receipt, its
// release record and its debit; each job's ledger entry agrees with its records and its state
// by the phase rules; no reservation or debit is doubled; no grant or dataset overspends; every
// governance intent has one outcome; grants, applications and reviews are as the answered
// requests left them. Any violation fails the test; the figures are logged.
func TestCrashHarnessKillsServerAndWorker(t *testing.T) {
	kills := crashKillCount()
	seed := *crashSeed
	if seed == 0 {
		if v, err := strconv.ParseUint(os.Getenv("CLEANROOM_CRASH_SEED"), 10, 64); err == nil && v > 0 {
			seed = v
		} else {
			seed = uint64(time.Now().UnixNano())
		}
	}
	t.Logf("crash harness: %d faults, seed %d (rerun with -crash.seed=%d)", kills, seed, seed)
	began := time.Now()
	h := newCrashHarness(t, seed)
	defer h.stop(false)
	h.setUp()

	// Each fault is a worker kill with probability 1/3, but a run proves something only with
	// both kinds: the last fault is a worker kill if none was, the last two give the server its
	// kill if none was (a run of 4 drew four worker kills about once in thirty). The draw is
	// made either way, so a seed's schedule is what it was wherever both kinds came anyway.
	workerKilled, serverKilled := false, false
	for i := range kills {
		worker := h.intn(3) == 0
		switch {
		case i == kills-1 && !workerKilled:
			worker = true
		case i >= kills-2 && !serverKilled:
			worker = false
		}
		workerKilled, serverKilled = workerKilled || worker, serverKilled || !worker
		h.cycle(i, worker)
		if t.Failed() {
			break
		}
	}
	// A clean stop, then the log checked offline as an auditor would, with the key alone.
	h.stop(true)
	rep, err := provenance.VerifyAll(filepath.Join(h.dataDir, "provenance.log"), h.pub)
	if err != nil || !rep.OK() {
		h.violate(false, "after the last stop the log does not verify offline: %s at %d (%v)", rep.Problem, rep.FirstBad, err)
	}
	h.mu.Lock()
	n := h.n
	h.mu.Unlock()
	t.Logf("crash harness figures (seed %d, %s):\n%s", seed, time.Since(began).Round(time.Second), n)
	if n.ServerKills == 0 || n.WorkerKills == 0 || n.Released == 0 {
		t.Errorf("the run proved too little: %d server kills, %d worker kills, %d releases", n.ServerKills, n.WorkerKills, n.Released)
	}
}

func newCrashHarness(t *testing.T, seed uint64) *crashHarness {
	dir := t.TempDir()
	h := &crashHarness{t: t, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), dataDir: filepath.Join(dir, "data"),
		acked: map[string]string{}, seen: map[string]string{}, results: map[string]string{}, reviews: map[string]map[string]bool{},
		grantWant: map[string][]string{}, appWant: map[string][]string{}, grantJobs: map[string]int{}, current: map[string]string{}}
	principals := filepath.Join(dir, "principals.yaml")
	if err := os.WriteFile(principals, []byte(crashPrincipals), 0o600); err != nil {
		t.Fatal(err)
	}
	datasets, _ := filepath.Abs(filepath.Join("..", "..", "testdata", "datasets"))
	h.args = []string{"--data-dir", h.dataDir, "--principals", principals,
		"--import-root", "health-commission=" + filepath.Join(datasets, "health-commission"),
		"--import-root", "public-security-bureau=" + filepath.Join(datasets, "public-security-bureau")}
	// The real binary when make crashtest built one; otherwise this test binary, which runs
	// the same main (maybeRunMain) and is its own sandbox worker (TestMain).
	if bin := os.Getenv("CLEANROOM_CRASH_BIN"); bin != "" {
		h.command = []string{bin}
		t.Logf("crash harness: server binary %s", bin)
	} else {
		h.command = []string{os.Args[0], "-test.run=^$"}
	}
	var err error
	if h.logFile, err = os.Create(filepath.Join(dir, "serve.log")); err != nil {
		t.Fatal(err)
	}
	return h
}

func (h *crashHarness) intn(n int) int {
	h.rngMu.Lock()
	defer h.rngMu.Unlock()
	return h.rng.IntN(n)
}

func (h *crashHarness) pick(d time.Duration) time.Duration {
	return time.Duration(h.intn(int(d/time.Millisecond))+1) * time.Millisecond
}

// violate records a broken invariant; lost marks one that lost data the platform had answered.
func (h *crashHarness) violate(lost bool, format string, args ...any) {
	h.t.Helper()
	msg := fmt.Sprintf(format, args...)
	h.mu.Lock()
	if lost {
		h.n.DataLost++
	} else {
		h.n.Violations++
	}
	h.mu.Unlock()
	h.t.Error(msg)
}

func (h *crashHarness) as(who string) *client.Client {
	c, err := client.New(h.url, who+"-token-0123456789")
	if err != nil {
		h.t.Fatal(err)
	}
	return c
}

// start runs `cleanroom serve` on a free loopback port and waits until it answers.
func (h *crashHarness) start() {
	t := h.t
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	args := append([]string{"serve", "--listen", addr}, h.args...)
	cmd := exec.Command(h.command[0], h.command[1:]...)
	if len(h.command) == 1 {
		cmd.Args = append(cmd.Args, args...)
		cmd.Env = os.Environ()
	} else {
		raw, _ := json.Marshal(args)
		cmd.Env = append(os.Environ(), envTestMain+"="+string(raw))
	}
	cmd.Stdout, cmd.Stderr = h.logFile, h.logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	h.proc, h.url = cmd, "http://"+addr
	c, _ := client.New(h.url, "")
	// A bound on liveness, not an assertion on speed: a server that never answers is stuck.
	for deadline := time.Now().Add(3 * time.Minute); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		select {
		case err := <-exited:
			t.Fatalf("cleanroom serve exited at start (%v); its log: %s", err, h.logTail())
		default:
		}
		if _, err := c.Health(context.Background()); err == nil {
			h.exited = exited
			return
		}
	}
	t.Fatalf("cleanroom serve did not answer; its log: %s", h.logTail())
}

func (h *crashHarness) logTail() string {
	b, _ := os.ReadFile(h.logFile.Name())
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// stop ends the server: SIGTERM (a clean stop) or nothing if already gone.
func (h *crashHarness) stop(clean bool) {
	if h.proc == nil {
		return
	}
	if clean {
		_ = h.proc.Process.Signal(syscall.SIGTERM)
	} else {
		_ = h.proc.Process.Kill()
	}
	<-h.exited
	h.proc = nil
}

// children are the pids of the server's child processes (its sandbox workers).
func children(pid int) []int {
	var out []int
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	for _, f := range tasks {
		b, _ := os.ReadFile(f)
		for _, s := range strings.Fields(string(b)) {
			if n, err := strconv.Atoi(s); err == nil && !slices.Contains(out, n) {
				out = append(out, n)
			}
		}
	}
	return out
}

// setUp registers the datasets and opens a grant for each applicant organisation.
func (h *crashHarness) setUp() {
	t := h.t
	h.start()
	ctx := context.Background()
	pub, err := h.as("aud-1").PublicKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	h.pub = strings.TrimSpace(pub)
	datasets := filepath.Join("..", "..", "testdata", "datasets")
	for who, name := range map[string]string{"hospital-a": "medical_visits", "psb-1": "residents"} {
		spec, err := catalog.LoadFile(filepath.Join(datasets, name+".yaml"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := h.as(who).RegisterDataset(ctx, spec); err != nil {
			t.Fatalf("registering %s: %v", name, err)
		}
	}
	for _, who := range []string{"insurer-1", "insurer-2"} {
		if g := h.openGrant(ctx, who); g == "" {
			t.Fatalf("no grant for %s", who)
		}
	}
}

// openGrant applies for a grant for who and approves it; it returns "" if either answer was
// lost (the server died), leaving what may have happened in appWant.
func (h *crashHarness) openGrant(ctx context.Context, who string) string {
	app, err := h.as(who).CreateApplication(ctx, api.ApplicationRequest{Purpose: "price outpatient cover",
		Scenario: "visits by district, hospital and income band", Datasets: []string{"medical_visits", "residents"},
		Start: "2020-01-01", End: "2099-12-31", Epsilon: 0.6, Delta: 1e-8, JobKinds: []string{"sql"}})
	if err != nil {
		return ""
	}
	h.mu.Lock()
	h.appWant[app.ID] = []string{api.ApplicationPending, api.ApplicationApproved}
	h.mu.Unlock()
	ok, err := h.as("op-1").ApproveApplication(ctx, app.ID, api.ApproveRequest{})
	if err != nil {
		var apiErr *client.Error
		if errors.As(err, &apiErr) { // refused (a dataset's budget is allocated): still pending
			h.mu.Lock()
			h.appWant[app.ID] = []string{api.ApplicationPending}
			h.mu.Unlock()
			h.t.Logf("approving a grant for %s was refused: %s", who, apiErr.Code)
		}
		return ""
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.n.Approvals++
	h.appWant[app.ID] = []string{api.ApplicationApproved}
	h.grantWant[ok.GrantID] = []string{api.GrantActive}
	h.current[who] = ok.GrantID
	return ok.GrantID
}

// cycle runs the stream, injects one fault, lets the platform settle and checks it.
func (h *crashHarness) cycle(i int, worker bool) {
	ctx, stopStream := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, who := range []string{"insurer-1", "insurer-2"} {
		wg.Add(1)
		go func() { defer wg.Done(); h.applicant(ctx, who) }()
	}
	wg.Add(2)
	go func() { defer wg.Done(); h.reviewer(ctx) }()
	go func() { defer wg.Done(); h.operator(ctx) }()

	time.Sleep(300*time.Millisecond + h.pick(4*time.Second))
	if worker {
		h.killWorker(ctx)
		time.Sleep(h.pick(time.Second))
		stopStream()
		wg.Wait()
	} else {
		if err := h.proc.Process.Signal(syscall.SIGKILL); err != nil {
			h.t.Fatal(err)
		}
		<-h.exited
		h.proc = nil
		stopStream()
		wg.Wait()
		h.mu.Lock()
		h.n.ServerKills++
		h.mu.Unlock()
		h.start()
		h.mu.Lock()
		h.n.Restarts++
		h.mu.Unlock()
	}
	h.settle()
	h.check(fmt.Sprintf("fault %d (%s kill)", i+1, map[bool]string{true: "worker", false: "server"}[worker]))
}

// killWorker SIGKILLs a sandbox worker of the server, waiting a little for a job to start one.
func (h *crashHarness) killWorker(ctx context.Context) {
	for range 40 {
		if kids := children(h.proc.Process.Pid); len(kids) > 0 {
			victim := kids[h.intn(len(kids))]
			if err := syscall.Kill(victim, syscall.SIGKILL); err == nil {
				h.mu.Lock()
				h.n.WorkerKills++
				h.mu.Unlock()
				return
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
	h.mu.Lock()
	h.n.WorkerKillsMissed++
	h.mu.Unlock()
}

// applicant submits jobs (and now and then explains one) on its organisation's current grant.
func (h *crashHarness) applicant(stop context.Context, who string) {
	ctx := context.Background() // a request under way finishes: the checks must not race it
	c := h.as(who)
	for stop.Err() == nil {
		h.mu.Lock()
		grant := h.current[who]
		used := h.grantJobs[grant]
		h.mu.Unlock()
		if grant == "" || used >= 80 { // the policy allows 120 jobs per grant an hour
			if h.openGrant(ctx, who) == "" {
				return
			}
			continue
		}
		q := crashQueries[h.intn(len(crashQueries))]
		opts := q.opts
		opts.Epsilon = crashEpsilons[h.intn(len(crashEpsilons))]
		req := api.JobRequest{Grant: grant, Kind: api.KindSQL, SQL: q.sql, Options: opts}
		if h.intn(8) == 0 {
			if _, err := c.Explain(ctx, req); err == nil {
				h.mu.Lock()
				h.n.Explains++
				h.mu.Unlock()
			}
			continue
		}
		h.mu.Lock()
		h.grantJobs[grant]++
		h.mu.Unlock()
		j, err := c.SubmitJob(ctx, req)
		var apiErr *client.Error
		switch {
		case err == nil:
			h.mu.Lock()
			h.acked[j.ID] = grant
			h.n.Submitted++
			h.mu.Unlock()
		case errors.As(err, &apiErr):
			h.mu.Lock()
			h.n.Refused++
			h.mu.Unlock()
			if apiErr.Code == "budget_exhausted" || apiErr.Code == "grant_revoked" || apiErr.Code == "rate_limited" {
				h.mu.Lock()
				h.grantJobs[grant] = 1 << 20 // move on to a new grant
				h.mu.Unlock()
			}
		default:
			return // the server is gone
		}
		select {
		case <-stop.Done():
		case <-time.After(50*time.Millisecond + h.pick(250*time.Millisecond)):
		}
	}
}

// reviewer decides held outputs: mostly approvals (two release one), now and then a rejection.
func (h *crashHarness) reviewer(stop context.Context) {
	ctx := context.Background() // a request under way finishes: the checks must not race it
	for stop.Err() == nil {
		who := []string{"rev-1", "rev-2"}[h.intn(2)]
		c := h.as(who)
		q, err := c.Reviews(ctx)
		if err != nil {
			var apiErr *client.Error
			if !errors.As(err, &apiErr) {
				return
			}
		} else if len(q.Reviews) > 0 {
			item := q.Reviews[h.intn(len(q.Reviews))]
			var err error
			if h.intn(6) == 0 {
				_, err = c.RejectReview(ctx, item.Job.ID, "bands too fine for this purpose")
			} else {
				_, err = c.ApproveReview(ctx, item.Job.ID, "coarse bands")
			}
			if err == nil {
				h.mu.Lock()
				if h.reviews[item.Job.ID] == nil {
					h.reviews[item.Job.ID] = map[string]bool{}
				}
				h.reviews[item.Job.ID][who] = true
				h.n.Reviews++
				h.mu.Unlock()
			}
		}
		select {
		case <-stop.Done():
		case <-time.After(100*time.Millisecond + h.pick(300*time.Millisecond)):
		}
	}
}

// operator now and then suspends a grant and resumes it, or revokes an older one.
func (h *crashHarness) operator(stop context.Context) {
	ctx := context.Background() // a request under way finishes: the checks must not race it
	c := h.as("op-1")
	for stop.Err() == nil {
		select {
		case <-stop.Done():
			return
		case <-time.After(500*time.Millisecond + h.pick(1500*time.Millisecond)):
		}
		h.mu.Lock()
		var grants []string
		for g, want := range h.grantWant {
			if len(want) == 1 && want[0] != api.GrantRevoked {
				grants = append(grants, g)
			}
		}
		sort.Strings(grants)
		h.mu.Unlock()
		if len(grants) == 0 {
			continue
		}
		g := grants[h.intn(len(grants))]
		h.mu.Lock()
		cur := h.grantWant[g][0]
		inUse := slices.Contains(slices.Collect(maps.Values(h.current)), g)
		h.mu.Unlock()
		var to string
		var act func() (*api.Grant, error)
		switch {
		case cur == api.GrantSuspended:
			to, act = api.GrantActive, func() (*api.Grant, error) { return c.ResumeGrant(ctx, g, "checked") }
		case !inUse:
			to, act = api.GrantRevoked, func() (*api.Grant, error) { return c.RevokeGrant(ctx, g, "superseded") }
		case h.intn(3) == 0:
			to, act = api.GrantSuspended, func() (*api.Grant, error) { return c.SuspendGrant(ctx, g, "spot check") }
		default:
			continue
		}
		h.mu.Lock()
		h.grantWant[g] = []string{cur, to}
		h.mu.Unlock()
		_, err := act()
		h.mu.Lock()
		var apiErr *client.Error
		switch {
		case err == nil:
			h.grantWant[g] = []string{to}
			h.n.GrantActions++
		case errors.As(err, &apiErr):
			h.grantWant[g] = []string{cur} // refused: nothing changed
		}
		h.mu.Unlock()
	}
}

// settle waits until no job is queued or running, and resumes suspended grants.
func (h *crashHarness) settle() {
	ctx := context.Background()
	op := h.as("op-1")
	for deadline := time.Now().Add(5 * time.Minute); ; time.Sleep(100 * time.Millisecond) {
		js, err := op.Jobs(ctx)
		if err != nil {
			h.t.Fatalf("listing jobs: %v", err)
		}
		busy := 0
		for _, j := range js.Jobs {
			if j.State == api.JobQueued || j.State == api.JobRunning {
				busy++
			}
		}
		if busy == 0 {
			return
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("%d jobs still queued or running five minutes after the fault; the server's log: %s", busy, h.logTail())
		}
	}
}

// jobRecords is what the log says of one job.
type jobRecords struct {
	types       map[string]int
	release     *provenance.Release
	interrupted *provenance.JobInterrupted
	debitedFail bool // budget_debited after a failure (released: false)
}

// check verifies every invariant against the settled platform.
func (h *crashHarness) check(when string) {
	t := h.t
	t.Helper()
	ctx := context.Background()
	h.mu.Lock()
	h.n.Checks++
	h.mu.Unlock()

	// The log verifies (the auditor's route: chain, tree, checkpoints) and kept every entry.
	rep, err := h.as("aud-1").VerifyAudit(ctx)
	if err != nil || !rep.OK() {
		h.violate(false, "%s: the log does not verify: %+v %v", when, rep, err)
		return
	}
	ents, err := provenance.Read(filepath.Join(h.dataDir, "provenance.log"), func(string, string) bool { return true })
	if err != nil {
		h.violate(false, "%s: reading the log: %v", when, err)
		return
	}
	if uint64(len(ents)) < h.logSize || (h.logSize > 0 && ents[h.logSize-1].Hash != h.logHead) {
		h.violate(true, "%s: the log lost entries: %d now, %d with head %s before", when, len(ents), h.logSize, h.logHead)
	}
	recs := map[string]*jobRecords{}
	intents, outcomes, rolledBack := map[string]bool{}, map[string]int{}, map[string]bool{}
	grantLogState, approvedApps := map[string]string{}, map[string]bool{}
	for _, e := range ents {
		r, err := e.Decode()
		if err != nil {
			h.violate(false, "%s: entry %d: %v", when, e.Index, err)
			return
		}
		jr := recs[r.Job]
		if jr == nil {
			jr = &jobRecords{types: map[string]int{}}
			recs[r.Job] = jr
		}
		jr.types[r.Type]++
		switch ev := r.Event.(type) {
		case *provenance.Release:
			jr.release = ev
		case *provenance.JobInterrupted:
			jr.interrupted = ev
		case *provenance.BudgetDebited:
			if ev.Released != nil && !*ev.Released {
				jr.debitedFail = true
			}
		case *provenance.GovernanceIntent:
			intents[ev.ID] = true
		case *provenance.GovernanceOutcome:
			outcomes[ev.ID]++
			if ev.Outcome == governance.OutcomeRolledBack {
				rolledBack[ev.Subject] = true
			}
		case *provenance.GrantState:
			grantLogState[ev.Grant] = ev.To
		case *provenance.ApplicationApproved:
			approvedApps[ev.Application] = true
		}
	}
	for id := range intents {
		if outcomes[id] != 1 {
			h.violate(false, "%s: governance intent %s has %d outcomes, want 1", when, id, outcomes[id])
		}
	}

	// Jobs: every accepted one is there, none is left queued or running, and each is what its
	// records say.
	js, err := h.as("op-1").Jobs(ctx)
	if err != nil {
		t.Fatalf("%s: listing jobs: %v", when, err)
	}
	jobs := map[string]api.Job{}
	for _, j := range js.Jobs {
		jobs[j.ID] = j
	}
	h.mu.Lock()
	acked := maps.Clone(h.acked)
	seen := maps.Clone(h.seen)
	results := maps.Clone(h.results)
	reviews := map[string][]string{}
	for j, rs := range h.reviews {
		for r := range rs {
			reviews[j] = append(reviews[j], r)
		}
	}
	h.mu.Unlock()
	for id := range acked {
		if _, ok := jobs[id]; !ok {
			h.violate(true, "%s: job %s was accepted (202) and is gone", when, id)
		}
	}
	ledger := h.ledgerByJob(ctx, when)
	var c crashCounters
	newSeen := map[string]string{}
	for id, j := range jobs {
		newSeen[id] = j.State
		jr := recs[id]
		if jr == nil {
			jr = &jobRecords{types: map[string]int{}}
		}
		le, charged := ledger[id]
		// A repeat answered from an earlier release costs nothing (and a repeat of an output
		// released after review is held for review again).
		cached := jr.types[provenance.TypeAnsweredFromRelease] > 0
		if prev := seen[id]; prev != "" && prev != j.State && !(prev == api.JobInReview && (j.State == api.JobReleased || j.State == api.JobDenied)) {
			h.violate(true, "%s: job %s went from %s to %s", when, id, prev, j.State)
		}
		for _, r := range reviews[id] {
			if j.State == api.JobInReview && !slices.ContainsFunc(j.Review.Reviews, func(v api.Review) bool { return v.Reviewer == r }) {
				h.violate(true, "%s: job %s lost the answered review of %s", when, id, r)
			}
		}
		if jr.types[provenance.TypeJobInterrupted] > 0 && j.State != api.JobFailed {
			h.violate(false, "%s: job %s is %s with a job_interrupted record", when, id, j.State)
		}
		// A release recorded for a job that is not released: a job interrupted after it (its
		// record says so), or a reviewers' approval the kill cut off before its store write,
		// which start-up rolled back (governance_outcome rolled_back; the job waits in review).
		if jr.release != nil && j.State != api.JobReleased {
			switch {
			case jr.interrupted != nil && jr.interrupted.Released:
			case j.State == api.JobInReview && rolledBack[id]:
				c.ReviewReleasesRolledBack++
			default:
				h.violate(false, "%s: job %s has a release record but is %s, with no record of why", when, id, j.State)
			}
		}
		if jr.interrupted != nil && jr.interrupted.Released != (jr.release != nil) {
			h.violate(false, "%s: job %s's job_interrupted record says released=%v; its release recorded: %v", when, id, jr.interrupted.Released, jr.release != nil)
		}
		if jr.types[provenance.TypeJobInterrupted] > 1 {
			h.violate(false, "%s: job %s has %d job_interrupted records", when, id, jr.types[provenance.TypeJobInterrupted])
		}
		switch j.State {
		case api.JobQueued, api.JobRunning:
			h.violate(false, "%s: job %s is still %s after the platform settled", when, id, j.State)
		case api.JobReleased:
			if jr.release == nil {
				h.violate(false, "%s: job %s is released without a release record", when, id)
				break
			}
			if cached {
				c.ReleasedFromCache++
				if charged {
					h.violate(false, "%s: job %s, answered from an earlier release, has a ledger entry", when, id)
				}
			} else {
				c.Released++
				if !charged || le.State != "debited" || jr.types[provenance.TypeBudgetDebited] != 1 {
					h.violate(false, "%s: released job %s: ledger %+v (present %v), %d budget_debited records; want one debit", when, id, le, charged, jr.types[provenance.TypeBudgetDebited])
				}
			}
			h.checkResult(ctx, when, id, j.Org, results[id], le, !cached)
		case api.JobInReview:
			c.InReview++
			if jr.types[provenance.TypeHeld] != 1 || cached == charged || (charged && le.State != "debited") {
				h.violate(false, "%s: held job %s: %d held records, ledger %+v (present %v)", when, id, jr.types[provenance.TypeHeld], le, charged)
			}
		case api.JobDenied:
			c.Denied++
			if charged && (le.State != "debited" || jr.types[provenance.TypeBudgetDebited] != 1) {
				h.violate(false, "%s: denied job %s: ledger %+v, %d budget_debited records", when, id, le, jr.types[provenance.TypeBudgetDebited])
			}
		case api.JobFailed:
			c.Failed++
			interrupted := jr.types[provenance.TypeJobInterrupted] > 0
			ended := jr.types[provenance.TypeJobFailed] + jr.types[provenance.TypeJobRefused]
			switch {
			case interrupted:
				c.Interrupted++
				if jr.release != nil {
					c.InterruptedAfterRelease++
				}
				// The crash left the reservation standing (counted as spent), or the ledger
				// had settled it and the process died before the record of it. Either way
				// the log must show the job reserved what the ledger holds.
				switch {
				case !charged:
				case jr.types[provenance.TypeBudgetReserved] == 0:
					h.violate(false, "%s: interrupted job %s is in the ledger (%s) without a budget_reserved record", when, id, le.State)
				case le.State == "refunded":
					c.InterruptedRefunded++
				default:
					c.InterruptedCharged++
				}
			case ended != 1:
				h.violate(false, "%s: failed job %s has %d job_failed/job_refused records and no job_interrupted", when, id, ended)
			case !charged:
				if jr.types[provenance.TypeBudgetReserved] > 0 {
					h.violate(false, "%s: failed job %s reserved budget and has no ledger entry", when, id)
				}
			case le.State == "refunded":
				if jr.types[provenance.TypeBudgetRefunded] != 1 || jr.types[provenance.TypeExecution] > 0 {
					h.violate(false, "%s: failed job %s refunded: %d budget_refunded records, %d execution records", when, id,
						jr.types[provenance.TypeBudgetRefunded], jr.types[provenance.TypeExecution])
				}
			case le.State == "debited":
				if jr.types[provenance.TypeBudgetDebited] != 1 {
					h.violate(false, "%s: failed job %s charged with %d budget_debited records", when, id, jr.types[provenance.TypeBudgetDebited])
				}
			default:
				h.violate(false, "%s: failed job %s left its reservation %s without being interrupted", when, id, le.State)
			}
			if !interrupted && j.Error != nil && (j.Error.Code == "sandbox_failed" || j.Error.Code == "sandbox_timeout") {
				c.WorkerFailures++
			}
		}
		if charged && le.State == "reserved" && jr.types[provenance.TypeJobInterrupted] == 0 {
			h.violate(false, "%s: job %s (%s) holds a reservation and was not interrupted", when, id, j.State)
		}
	}
	for id := range ledger {
		if _, ok := jobs[id]; !ok {
			h.violate(false, "%s: the ledger charges %s, which is no job", when, id)
		}
	}

	h.checkGovernance(ctx, when, grantLogState, approvedApps)

	h.mu.Lock()
	h.seen = newSeen
	h.logSize, h.logHead = uint64(len(ents)), ""
	if len(ents) > 0 {
		h.logHead = ents[len(ents)-1].Hash
	}
	keep := h.n
	keep.Released, keep.ReleasedFromCache, keep.InReview, keep.Denied, keep.Failed = c.Released, c.ReleasedFromCache, c.InReview, c.Denied, c.Failed
	keep.Interrupted, keep.WorkerFailures = c.Interrupted, c.WorkerFailures
	keep.InterruptedCharged, keep.InterruptedRefunded, keep.InterruptedAfterRelease = c.InterruptedCharged, c.InterruptedRefunded, c.InterruptedAfterRelease
	keep.ReviewReleasesRolledBack = c.ReviewReleasesRolledBack
	h.n = keep
	h.mu.Unlock()
}

// ledgerEntry is a job's charge to its grant.
type ledgerEntry struct {
	State string
	Cost  api.Budget
}

// ledgerByJob reads every grant's and dataset's budget report: each job is charged at most once
// per account, what an account has spent is the sum of its reserved and debited entries, and
// no account has spent (or, a dataset, allocated) more than its total. It returns the grants'
// entries by job.
func (h *crashHarness) ledgerByJob(ctx context.Context, when string) map[string]ledgerEntry {
	op := h.as("op-1")
	out := map[string]ledgerEntry{}
	gs, err := op.Grants(ctx)
	if err != nil {
		h.t.Fatalf("%s: listing grants: %v", when, err)
	}
	accounts := [][2]string{{client.BudgetDataset, "medical_visits"}, {client.BudgetDataset, "residents"}}
	for _, g := range gs.Grants {
		accounts = append(accounts, [2]string{client.BudgetGrant, g.ID})
	}
	for _, a := range accounts {
		rep, err := op.Budget(ctx, a[0], a[1])
		if err != nil {
			h.t.Fatalf("%s: the budget of %s %s: %v", when, a[0], a[1], err)
		}
		var spent api.Budget
		perJob := map[string]int{}
		for _, e := range rep.History {
			perJob[e.Job]++
			if perJob[e.Job] == 2 {
				h.violate(false, "%s: %s %s charges job %s twice", when, a[0], a[1], e.Job)
			}
			if e.State == "reserved" || e.State == "debited" {
				spent.Epsilon += e.Cost.Epsilon
				spent.Delta += e.Cost.Delta
			}
			if a[0] == client.BudgetGrant {
				out[e.Job] = ledgerEntry{State: e.State, Cost: e.Cost}
			}
		}
		b := rep.Balance
		if !near(spent.Epsilon, b.Spent.Epsilon) || !near(spent.Delta, b.Spent.Delta) {
			h.violate(false, "%s: %s %s has spent %+v by its balance and %+v by its entries: a debit lost or doubled", when, a[0], a[1], b.Spent, spent)
		}
		over := b.Spent.Epsilon > b.Total.Epsilon*(1+1e-9) || b.Spent.Delta > b.Total.Delta*(1+1e-9) ||
			(a[0] == client.BudgetDataset && b.Allocated.Epsilon > b.Total.Epsilon*(1+1e-9))
		if over {
			h.mu.Lock()
			h.n.Overspend++
			h.mu.Unlock()
			h.t.Errorf("%s: %s %s overspent: spent %+v, allocated %+v of %+v", when, a[0], a[1], b.Spent, b.Allocated, b.Total)
		}
	}
	return out
}

func near(a, b float64) bool {
	return math.Abs(a-b) <= 1e-9*math.Max(1e-12, math.Max(math.Abs(a), math.Abs(b)))
}

// checkResult reads a released job's result as its applicant: there, unchanged since first
// seen, with a receipt that verifies, and (a fresh release) its spend equal to its debit.
func (h *crashHarness) checkResult(ctx context.Context, when, id, org, digest string, le ledgerEntry, fresh bool) {
	who := map[string]string{"acme-insurance": "insurer-1", "beta-insurance": "insurer-2"}[org]
	j, err := h.as(who).Job(ctx, id, 0)
	if err != nil {
		h.t.Fatalf("%s: reading released job %s: %v", when, id, err)
	}
	if len(j.Result) == 0 || j.Receipt == "" {
		h.violate(true, "%s: released job %s has no result or receipt", when, id)
		return
	}
	if _, err := engine.VerifyReceipt([]byte(j.Receipt), j.Result, h.pub); err != nil {
		h.violate(false, "%s: released job %s: its receipt does not verify: %v", when, id, err)
	}
	sum := sha256.Sum256(j.Result)
	got := hex.EncodeToString(sum[:])
	if digest != "" && digest != got {
		h.violate(true, "%s: released job %s's result changed", when, id)
	}
	if fresh {
		var res api.Result
		if err := json.NewDecoder(bytes.NewReader(j.Result)).Decode(&res); err != nil {
			h.t.Fatalf("%s: job %s's result: %v", when, id, err)
		}
		if !near(res.Spent.Epsilon, le.Cost.Epsilon) || !near(res.Spent.Delta, le.Cost.Delta) {
			h.violate(false, "%s: released job %s spent %+v by its result and %+v by its debit", when, id, res.Spent, le.Cost)
		}
	}
	h.mu.Lock()
	h.results[id] = got
	h.mu.Unlock()
}

// checkGovernance: applications and grants are as the answered requests left them (or, for a
// request the kill cut off, before or after it), and the store agrees with the log.
func (h *crashHarness) checkGovernance(ctx context.Context, when string, grantLogState map[string]string, approvedApps map[string]bool) {
	op := h.as("op-1")
	gs, err := op.Grants(ctx)
	if err != nil {
		h.t.Fatalf("%s: listing grants: %v", when, err)
	}
	as, err := op.Applications(ctx)
	if err != nil {
		h.t.Fatalf("%s: listing applications: %v", when, err)
	}
	type problem struct {
		lost bool
		msg  string
	}
	var problems []problem
	h.mu.Lock()
	stored := map[string]bool{}
	for _, g := range gs.Grants {
		stored[g.ID] = true
		want := grantLogState[g.ID]
		if want == "" {
			want = api.GrantActive
		}
		if g.State != want {
			problems = append(problems, problem{false, fmt.Sprintf("grant %s is %s in the store and %s in the log", g.ID, g.State, want)})
		}
		if allowed, ok := h.grantWant[g.ID]; ok && !slices.Contains(allowed, g.State) {
			problems = append(problems, problem{true, fmt.Sprintf("grant %s is %s; the answered requests left it %v", g.ID, g.State, allowed)})
		}
		h.grantWant[g.ID] = []string{g.State}
	}
	for g := range h.grantWant {
		if !stored[g] {
			problems = append(problems, problem{true, fmt.Sprintf("grant %s is gone", g)})
		}
	}
	for _, a := range as.Applications {
		if approvedApps[a.ID] != (a.State == api.ApplicationApproved) {
			problems = append(problems, problem{false, fmt.Sprintf("application %s is %s with application_approved recorded %v", a.ID, a.State, approvedApps[a.ID])})
		}
		if allowed, ok := h.appWant[a.ID]; ok && !slices.Contains(allowed, a.State) {
			problems = append(problems, problem{true, fmt.Sprintf("application %s is %s; the answered requests left it %v", a.ID, a.State, allowed)})
		}
		h.appWant[a.ID] = []string{a.State}
	}
	// An applicant whose grant was revoked opens another (the operator resumes a suspended one).
	for who, g := range h.current {
		if w := h.grantWant[g]; len(w) == 1 && w[0] == api.GrantRevoked {
			h.current[who] = ""
		}
	}
	h.mu.Unlock()
	for _, p := range problems {
		h.violate(p.lost, "%s: %s", when, p.msg)
	}
}
