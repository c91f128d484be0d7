// Command cleanroom is the single binary of the platform: server, client commands, demo,
// test-data generator, audit and policy tools, and — when started by the engine — the
// sandbox worker.
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/c1b99f93/cleanroom/sandbox"
)

func main() {
	// A worker is this same binary started by the engine; it must not parse flags or print.
	sandbox.MaybeRunWorker()
	if err := newRootCmd().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "cleanroom",
		Short:         "Privacy-preserving data sandbox: raw data usable but not visible",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newDemoCmd(), newTestdataCmd(), newAuditCmd(), newServeCmd(), newTokenCmd(), newPolicyCmd())
	addClientCommands(root)
	return root
}
