// Package server is cleanroom's platform server: the HTTP API through which providers
// register datasets, applicants apply for grants and run jobs within them, operators decide
// applications and grant states, reviewers release held outputs, and auditors read provenance.
//
//	request ─▶ authenticate (bearer token → principal) ─▶ authorize (OPA data.cleanroom.api)
//	        ─▶ governance rules (grant state, period, scope, separation of duties)
//	        ─▶ governance store (SQLite) ─▶ job runner ─▶ engine (gate, policy, budget, worker,
//	           DP, egress, provenance)
//
// Every request passes the policy's per-request decision; an undefined decision is a deny. The
// rules the regulations make absolute (no job outside an active grant's period and scope; a
// reviewer is never the submitter nor of the applicant's org) are enforced here in Go as well,
// so a lax operator bundle cannot lift them.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/c1b99f93/cleanroom/engine"
	"github.com/c1b99f93/cleanroom/engine/provenance"
	"github.com/c1b99f93/cleanroom/policy"
	"github.com/c1b99f93/cleanroom/sandbox"
	"github.com/c1b99f93/cleanroom/server/governance"
)

// Config configures a server over one data directory.
type Config struct {
	DataDir    string
	Principals *Principals
	// PolicyDir loads an operator's bundle instead of the embedded default; its Rego tests
	// must pass or the server refuses to start.
	PolicyDir string
	// ImportRoots maps a provider organisation (a principal's org) to the one folder its
	// providers may register sources from. A relative source path resolves within the
	// registering provider's own root; an absolute one must lie in it; no symbolic link is
	// followed. Roots may not overlap. An organisation without a root cannot register from files
	// (no_import_root). There is no default and no shared root: one folder for every
	// organisation let a provider register another's data as its own.
	ImportRoots   map[string]string
	WorkerCommand []string
	WorkerDB      sandbox.DBLimits
	Stderr        io.Writer
	Logger        *slog.Logger
	// Now is the clock grant periods are checked against (default time.Now).
	Now func() time.Time
	// Runners is how many jobs run at once (default 2).
	Runners int
	// Scheduling configures the fair queue over the runners: the per-organisation running
	// cap and the queue caps (sched.go; zero fields take the defaults).
	Scheduling Scheduling
	// ShutdownGrace is how long Serve lets running jobs finish after its context ends before
	// canceling them (default 30s).
	ShutdownGrace time.Duration
	// CompletionQuantum rounds up how long a job visibly runs (default
	// DefaultCompletionQuantum; see completeAt). Negative turns it off, for benchmarks only.
	CompletionQuantum time.Duration
	// Limits bound what one client can hold of the server (timeouts, body size, connection
	// caps, authentication backoff, denied requests); zero fields take DefaultLimits.
	Limits Limits
	// TLSCertFile and TLSKeyFile (PEM), given together, make Serve answer HTTPS only.
	TLSCertFile, TLSKeyFile string
}

// DefaultCompletionQuantum is the default CompletionQuantum.
const DefaultCompletionQuantum = 500 * time.Millisecond

// Server is a running platform. Create with New, serve with Serve, and Close when done.
type Server struct {
	cfg        Config
	eng        *engine.Engine
	store      *governance.Store
	gov        *governance.Service // the governance decisions, over the engine and the store
	principals *Principals
	roots      map[string]*importRoot // by organisation; see importroot.go
	log        *slog.Logger
	now        func() time.Time
	limits     Limits
	tls        *tls.Config  // nil: plain HTTP
	auth       *authBackoff // failed authentications per client address
	denied     *denials     // denied requests per principal, and their summaries
	stopFlush  func()       // stops the summaries' flusher and waits for it

	jobsCtx    context.Context // canceled when running jobs must stop
	cancelJobs context.CancelFunc
	wake       chan struct{} // a job was queued
	stopping   chan struct{} // no new jobs are claimed
	stopOnce   sync.Once
	runners    sync.WaitGroup
	sched      *scheduler // the order in which queued jobs are claimed

	changedMu sync.Mutex
	changed   chan struct{} // closed and replaced whenever a job changes state
}

// New checks the policy bundle (it must compile and its tests must pass), opens the engine and
// the governance store, fails jobs a previous process left running, settles governance
// decisions it left without an outcome (governance.Service.Reconcile) and grants that ended,
// and starts the job runners.
func New(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("server: a data directory is required")
	}
	if cfg.Principals == nil {
		return nil, errors.New("server: a principals file is required")
	}
	limits, err := cfg.Limits.withDefaults()
	if err != nil {
		return nil, err
	}
	tlsConf, err := loadTLS(cfg.TLSCertFile, cfg.TLSKeyFile)
	if err != nil {
		return nil, err
	}
	if err := checkPolicy(ctx, cfg.PolicyDir); err != nil {
		return nil, err
	}
	roots, err := openImportRoots(cfg.ImportRoots)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, principals: cfg.Principals, roots: roots, log: cfg.Logger, now: cfg.Now,
		limits: limits, tls: tlsConf, auth: newAuthBackoff(limits, time.Now),
		wake: make(chan struct{}, 1), stopping: make(chan struct{}), changed: make(chan struct{})}
	if s.log == nil {
		s.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if s.now == nil {
		s.now = time.Now
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		s.closeRoots()
		return nil, err
	}
	if s.eng, err = engine.Open(ctx, engine.Config{DataDir: cfg.DataDir, WorkerCommand: cfg.WorkerCommand,
		PolicyDir: cfg.PolicyDir, WorkerDB: cfg.WorkerDB, Stderr: cfg.Stderr}); err != nil {
		s.closeRoots()
		return nil, err
	}
	if s.store, err = governance.Open(ctx, filepath.Join(cfg.DataDir, "control.db")); err != nil {
		s.eng.Close()
		s.closeRoots()
		return nil, err
	}
	// Jobs left running: recorded job_interrupted, then failed (interrupted.go).
	_, err = s.failInterrupted(ctx)
	// Decisions a crash left half-way are settled before anything else reads the store.
	s.gov = governance.NewService(s.governanceDeps())
	if err == nil {
		var n int
		if n, err = s.gov.Reconcile(ctx); n > 0 {
			s.log.Warn("settled governance decisions a previous process left unfinished", "decisions", n)
		}
	}
	if err == nil {
		err = s.gov.Settle(ctx, true)
	}
	if err != nil {
		s.store.Close()
		s.eng.Close()
		s.closeRoots()
		return nil, err
	}
	s.denied = newDenials(limits, time.Now, func(ctx context.Context, ev provenance.Event) error {
		_, err := s.eng.Record(ctx, "", ev)
		return err
	})
	flushCtx, stopFlush := context.WithCancel(context.Background())
	flushed := make(chan struct{})
	go func() {
		defer close(flushed)
		s.denied.run(flushCtx, func(err error) {
			s.log.Error("the summary of denied requests could not be recorded; it is kept for the next try", "err", err)
		})
	}()
	s.stopFlush = func() { stopFlush(); <-flushed }
	s.jobsCtx, s.cancelJobs = context.WithCancel(context.Background())
	runners := cfg.Runners
	if runners <= 0 {
		runners = 2
	}
	s.sched = newScheduler(cfg.Scheduling.withDefaults(runners))
	for range runners {
		s.runners.Add(1)
		go s.runJobs()
	}
	s.kick()
	return s, nil
}

// checkPolicy refuses a bundle that does not compile or whose Rego tests fail, quoting OPA.
func checkPolicy(ctx context.Context, dir string) error {
	var opts []policy.Option
	if dir != "" {
		opts = append(opts, policy.WithBundleDir(dir))
	}
	p, err := policy.New(ctx, opts...)
	if err != nil {
		return fmt.Errorf("server: policy bundle refused: %w", err)
	}
	results, err := p.RunTests(ctx)
	if err != nil {
		return fmt.Errorf("server: policy bundle refused: %w", err)
	}
	var failed []string
	for _, r := range results {
		if !r.Pass {
			failed = append(failed, r.Name+": "+r.Fail)
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("server: policy bundle refused: %d of its tests fail:\n  %s", len(failed), strings.Join(failed, "\n  "))
	}
	return nil
}

// Engine is the server's job pipeline (for the demo and tests that look behind the API).
func (s *Server) Engine() *engine.Engine { return s.eng }

// Serve answers HTTP (HTTPS when the config names a certificate) on ln until ctx ends, within
// the config's Limits: timeouts, and caps on connections in total and per client address, the
// connections over a cap answered by a small overflow server (GET /healthz as usual, anything
// else 503 unavailable). Then it shuts down gracefully: it stops accepting
// requests and claiming jobs, lets in-flight requests and running jobs finish within the grace
// period, then cancels what still runs (those jobs fail cleanly; nothing is half-released).
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	l := s.limits
	hs := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: l.ReadHeaderTimeout, ReadTimeout: l.ReadTimeout,
		WriteTimeout: l.WriteTimeout, IdleTimeout: l.IdleTimeout, MaxHeaderBytes: 64 << 10,
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)}
	over := s.overflowServer()
	lim := newConnLimiter(ln, l.MaxConns, l.MaxConnsPerAddr, l.OverflowConns)
	errc := make(chan error, 2)
	if s.tls != nil {
		hs.TLSConfig, over.TLSConfig = s.tls.Clone(), s.tls.Clone()
		go func() { errc <- hs.ServeTLS(lim, "", "") }()
		go func() { _ = over.ServeTLS(lim.overflow, "", "") }()
	} else {
		go func() { errc <- hs.Serve(lim) }()
		go func() { _ = over.Serve(lim.overflow) }()
	}
	select {
	case err := <-errc:
		over.Close()
		return err
	case <-ctx.Done():
	}
	grace := s.cfg.ShutdownGrace
	if grace <= 0 {
		grace = 30 * time.Second
	}
	s.stopRunners()
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	err := hs.Shutdown(sctx)
	over.Close()
	if ferr := s.denied.flush(context.WithoutCancel(ctx), true); ferr != nil {
		s.log.Error("the summary of denied requests could not be recorded at shutdown", "err", ferr)
	}
	done := make(chan struct{})
	go func() { s.runners.Wait(); close(done) }()
	select {
	case <-done:
	case <-sctx.Done():
		s.cancelJobs()
		<-done
	}
	return err
}

// Close stops the job runners (canceling running jobs) and closes the stores and workers.
func (s *Server) Close() error {
	s.stopRunners()
	s.cancelJobs()
	s.runners.Wait()
	s.stopFlush()
	if err := s.denied.flush(context.Background(), true); err != nil {
		s.log.Error("the summary of denied requests could not be recorded at close", "err", err)
	}
	s.closeRoots()
	return errors.Join(s.store.Close(), s.eng.Close())
}

func (s *Server) closeRoots() {
	for _, r := range s.roots {
		r.dir.Close()
	}
}

func (s *Server) stopRunners() { s.stopOnce.Do(func() { close(s.stopping) }) }

// kick wakes a runner to look for queued jobs.
func (s *Server) kick() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// notify wakes every request waiting on a job's state.
func (s *Server) notify() {
	s.changedMu.Lock()
	close(s.changed)
	s.changed = make(chan struct{})
	s.changedMu.Unlock()
}

func (s *Server) changes() <-chan struct{} {
	s.changedMu.Lock()
	defer s.changedMu.Unlock()
	return s.changed
}
