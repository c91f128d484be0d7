package main

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/c1b99f93/cleanroom/sandbox"
	"github.com/c1b99f93/cleanroom/server"
)

func newServeCmd() *cobra.Command {
	var dataDir, listen, principals, policyDir string
	var importRoots []string
	var roots map[string]string
	var grace, quantum time.Duration
	var tlsCert, tlsKey string
	limits := server.DefaultLimits()
	var sched server.Scheduling
	var workerDB sandbox.DBLimits
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the platform server (HTTP API, control-plane store, provenance log, sandbox workers)",
		Long: `Run the platform server (HTTP API, control-plane store, provenance log, sandbox workers).

Each provider organisation registers datasets only from its own import root: --import-root
ORG=DIR, once per organisation (ORG as in the principals file). A relative source.path resolves
within the registering provider's own root, an absolute one must lie in it, and no symbolic link
is followed. Roots may not overlap. An organisation without a root cannot register from files
(no_import_root). The old single form --import-root DIR, one folder shared by every
organisation, is refused: it let a provider register another organisation's data as its own.`,
		Example: `  cleanroom token new                      # make a token for the principals file
  cleanroom serve --data-dir /var/lib/cleanroom --listen 127.0.0.1:8080 --principals principals.yaml \
    --import-root health-commission=/srv/import/health-commission \
    --import-root public-security-bureau=/srv/import/public-security-bureau`,
		PreRunE: func(*cobra.Command, []string) error {
			if quantum < 10*time.Millisecond {
				return fmt.Errorf("--completion-quantum must be at least 10ms (it hides how long jobs compute)")
			}
			if err := checkScheduling(sched); err != nil {
				return err
			}
			if (tlsCert == "") != (tlsKey == "") {
				return fmt.Errorf("--tls-cert and --tls-key are given together")
			}
			if err := workerDB.Check(); err != nil {
				return err
			}
			var err error
			roots, err = parseImportRoots(importRoots)
			return err
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			ps, err := server.LoadPrincipals(principals)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			logger := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
			srv, err := server.New(ctx, server.Config{DataDir: dataDir, Principals: ps, PolicyDir: policyDir,
				ImportRoots: roots, Logger: logger, Stderr: cmd.ErrOrStderr(), ShutdownGrace: grace,
				CompletionQuantum: quantum, Limits: limits, Scheduling: sched, TLSCertFile: tlsCert, TLSKeyFile: tlsKey,
				WorkerDB: workerDB})
			if err != nil {
				return err
			}
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				srv.Close()
				return err
			}
			logger.Info("cleanroom serving", "listen", ln.Addr().String(), "tls", tlsCert != "", "data_dir", dataDir, "policy_digest", srv.Engine().PolicyDigest())
			serr := srv.Serve(ctx, ln)
			cerr := srv.Close()
			logger.Info("cleanroom stopped")
			if serr != nil {
				return serr
			}
			return cerr
		},
	}
	f := cmd.Flags()
	f.StringVar(&dataDir, "data-dir", "", "the platform's data directory (created if missing)")
	f.StringVar(&listen, "listen", "127.0.0.1:8080", "address to serve HTTP on")
	f.StringVar(&principals, "principals", "", "YAML file of principals: name, role, org, token or token_sha256")
	f.StringVar(&policyDir, "policy", "", "an operator's policy bundle directory (default: the embedded bundle); its tests must pass")
	f.StringArrayVar(&importRoots, "import-root", nil, "ORG=DIR: the folder organisation ORG's providers register sources from (repeat per organisation; none: no registration from files)")
	f.DurationVar(&quantum, "completion-quantum", server.DefaultCompletionQuantum, "a job's outcome becomes visible only at a whole number of these after it started, so its duration says little about the data")
	f.DurationVar(&grace, "shutdown-grace", 30*time.Second, "how long running jobs may finish on SIGTERM before they are canceled")
	f.StringVar(&tlsCert, "tls-cert", "", "PEM certificate (chain) to serve HTTPS with; with --tls-key")
	f.StringVar(&tlsKey, "tls-key", "", "PEM private key of --tls-cert")
	addLimitFlags(f, &limits)
	addSchedulingFlags(f, &sched)
	addWorkerFlags(f, &workerDB)
	_ = cmd.MarkFlagRequired("data-dir")
	_ = cmd.MarkFlagRequired("principals")
	return cmd
}

// addWorkerFlags registers the sandbox workers' DuckDB limits (sandbox.DBLimits): empty takes
// the product's defaults. docs/reliability.md says when to raise them.
func addWorkerFlags(f *pflag.FlagSet, l *sandbox.DBLimits) {
	f.StringVar(&l.MemoryLimit, "worker-memory", "", "each sandbox worker's DuckDB memory limit, such as 8GB (default 4GB; DuckDB spills beyond it)")
	f.StringVar(&l.MaxTempBytes, "worker-max-temp", "", "the most each sandbox worker's DuckDB may spill to disk, such as 60GB (default 20GB; registering 1e8 rows needs about 30GB)")
	f.IntVar(&l.Threads, "worker-threads", 0, "each sandbox worker's DuckDB threads (default 2)")
}

// addLimitFlags registers a flag for each of the server's limits (server.Limits), with its
// default; docs/reliability.md says what each defends.
func addLimitFlags(f *pflag.FlagSet, l *server.Limits) {
	f.DurationVar(&l.ReadHeaderTimeout, "read-header-timeout", l.ReadHeaderTimeout, "time a client has to send a request's headers")
	f.DurationVar(&l.ReadTimeout, "read-timeout", l.ReadTimeout, "time a client has to send a whole request, body included")
	f.DurationVar(&l.WriteTimeout, "write-timeout", l.WriteTimeout, "time from a request's headers to the end of its answer (must exceed the 60s long-poll)")
	f.DurationVar(&l.LongWriteTimeout, "long-write-timeout", l.LongWriteTimeout, "write timeout of the synchronous routes over data (dataset registration, audit verify, proofs, replay)")
	f.DurationVar(&l.IdleTimeout, "idle-timeout", l.IdleTimeout, "how long a keep-alive connection may wait for its next request")
	f.Int64Var(&l.MaxBodyBytes, "max-body", l.MaxBodyBytes, "largest request body, in bytes (request_too_large)")
	f.Int64Var(&l.MaxJobBodyBytes, "max-job-body", l.MaxJobBodyBytes, "largest job submission (POST /v1/jobs, which may carry a verification's ciphertexts), in bytes")
	f.IntVar(&l.MaxConns, "max-conns", l.MaxConns, "connections served at once, in total")
	f.IntVar(&l.MaxConnsPerAddr, "max-conns-per-addr", l.MaxConnsPerAddr, "connections served at once per client IP address")
	f.IntVar(&l.OverflowConns, "overflow-conns", l.OverflowConns, "connections over the caps held to answer /healthz (others: 503); the oldest gives way")
	f.DurationVar(&l.OverflowTimeout, "overflow-timeout", l.OverflowTimeout, "time a connection over the caps has to send its one request")
	f.IntVar(&l.AuthFailuresFree, "auth-failures-free", l.AuthFailuresFree, "failed authentications per address before backoff (429 rate_limited)")
	f.DurationVar(&l.AuthBackoff, "auth-backoff", l.AuthBackoff, "first backoff after the free failures; doubles with each further failure")
	f.DurationVar(&l.AuthBackoffMax, "auth-backoff-max", l.AuthBackoffMax, "longest backoff; an address quiet this long is forgotten")
	f.IntVar(&l.DeniedBurst, "denied-burst", l.DeniedBurst, "denied requests a principal may make in a burst before 429 rate_limited")
	f.IntVar(&l.DeniedPerMinute, "denied-per-minute", l.DeniedPerMinute, "denied requests a principal may make per minute after its burst")
	f.DurationVar(&l.DeniedWindow, "denied-window", l.DeniedWindow, "window of the requests_denied provenance summaries (one per principal per window)")
}

// addSchedulingFlags registers a flag for each of the job queue's caps (server.Scheduling);
// 0 takes the server's default (docs/reliability.md, Scheduling).
func addSchedulingFlags(f *pflag.FlagSet, s *server.Scheduling) {
	f.IntVar(&s.MaxRunningPerOrg, "max-running-per-org", 0, "jobs one organisation runs at once (0: half the runners, at least 1)")
	f.IntVar(&s.MaxQueued, "max-queued", server.DefaultMaxQueued, "jobs queued on the platform before submissions are refused queue_full (429)")
	f.IntVar(&s.MaxQueuedPerOrg, "max-queued-per-org", server.DefaultMaxQueuedPerOrg, "jobs one organisation may have queued before its submissions are refused queue_full (429)")
	f.DurationVar(&s.RetryAfter, "queue-retry-after", server.DefaultRetryAfter, "the Retry-After hint of a queue_full answer (whole seconds)")
}

// checkScheduling refuses caps the server would read as "no cap" or a hint it cannot send: a
// typo must not remove a limit.
func checkScheduling(s server.Scheduling) error {
	switch {
	case s.MaxRunningPerOrg < 0:
		return fmt.Errorf("--max-running-per-org must be at least 1 (0: the default)")
	case s.MaxQueued < 1:
		return fmt.Errorf("--max-queued must be at least 1")
	case s.MaxQueuedPerOrg < 1:
		return fmt.Errorf("--max-queued-per-org must be at least 1")
	case s.RetryAfter < time.Second:
		return fmt.Errorf("--queue-retry-after must be at least 1s (Retry-After counts whole seconds)")
	}
	return nil
}

func newTokenCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "token", Short: "Bearer tokens for the principals file"}
	cmd.AddCommand(&cobra.Command{
		Use:     "new",
		Short:   "Print a fresh random token and its SHA-256 (put either in the principals file)",
		Example: "  cleanroom token new",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			tok, digest, err := server.NewToken()
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "token:        %s\ntoken_sha256: %s\n", tok, digest)
			return nil
		},
	})
	return cmd
}

// parseImportRoots reads --import-root ORG=DIR values. The earlier form --import-root DIR (one
// root shared by every organisation) is refused with an explanation rather than given a new
// meaning silently.
func parseImportRoots(vals []string) (map[string]string, error) {
	roots := map[string]string{}
	for _, v := range vals {
		org, dir, ok := strings.Cut(v, "=")
		org = strings.TrimSpace(org)
		if !ok || org == "" || dir == "" || strings.ContainsAny(org, `/\`) {
			return nil, fmt.Errorf("--import-root %q: give ORG=DIR, one per provider organisation (e.g. --import-root health-commission=/srv/import/health-commission); "+
				"a single import root shared by every organisation is no longer accepted, because it let one organisation's provider register another's files", v)
		}
		if _, dup := roots[org]; dup {
			return nil, fmt.Errorf("--import-root: organisation %s is given twice", org)
		}
		roots[org] = dir
	}
	return roots, nil
}
