package main

import (
	"github.com/spf13/cobra"

	"github.com/c1b99f93/cleanroom/sandbox"
)

// newWorkerCmd is the hidden `cleanroom worker` subcommand: the engine starts this binary with
// it as a data domain's sandbox worker (sandbox.Start). It parses no flags and prints nothing:
// stdout is the engine's pipe.
func newWorkerCmd() *cobra.Command {
	return &cobra.Command{
		Use:                sandbox.WorkerArg,
		Short:              "Run as a sandbox worker (started by the engine, not by people)",
		Hidden:             true,
		DisableFlagParsing: true,
		Args:               cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			if code := sandbox.RunWorker(); code != 0 {
				return exitCode(code)
			}
			return nil
		},
	}
}
