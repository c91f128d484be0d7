package main

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/c1b99f93/cleanroom/server"
)

func newServeCmd() *cobra.Command {
	var dataDir, listen, principals, policyDir, importRoot string
	var grace, quantum time.Duration
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the platform server (HTTP API, control-plane store, provenance log, sandbox workers)",
		Example: `  cleanroom token new                      # make a token for the principals file
  cleanroom serve --data-dir /var/lib/cleanroom --listen 127.0.0.1:8080 --principals principals.yaml`,
		PreRunE: func(*cobra.Command, []string) error {
			if quantum < 10*time.Millisecond {
				return fmt.Errorf("--completion-quantum must be at least 10ms (it hides how long jobs compute)")
			}
			return nil
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
				ImportRoot: importRoot, Logger: logger, Stderr: cmd.ErrOrStderr(), ShutdownGrace: grace,
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
	f.StringVar(&importRoot, "import-root", "", "where dataset sources may be read from (default: the working directory)")
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
