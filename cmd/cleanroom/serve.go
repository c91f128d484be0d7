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

	"github.com/c1b99f93/cleanroom/server"
)

func newServeCmd() *cobra.Command {
	var dataDir, listen, principals, policyDir string
	var importRoots []string
	var roots map[string]string
	var grace, quantum time.Duration
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
				CompletionQuantum: quantum})
			if err != nil {
				return err
			}
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				srv.Close()
				return err
			}
			logger.Info("cleanroom serving", "listen", ln.Addr().String(), "data_dir", dataDir, "policy_digest", srv.Engine().PolicyDigest())
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
	_ = cmd.MarkFlagRequired("data-dir")
	_ = cmd.MarkFlagRequired("principals")
	return cmd
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
