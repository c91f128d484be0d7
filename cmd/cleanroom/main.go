// Command cleanroom is the single binary of the platform: server, client commands, demo,
// test-data generator, audit and policy tools, and — when started by the engine as
// `cleanroom worker` — the sandbox worker.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

func main() {
	os.Exit(runMain(os.Args[1:]))
}

// runMain executes the command line args (without the program name) and returns the process's
// exit code.
func runMain(args []string) int {
	root := newRootCmd()
	root.SetArgs(args)
	err := root.Execute()
	var code exitCode
	switch {
	case err == nil:
		return 0
	case errors.As(err, &code):
		return int(code)
	default:
		fmt.Fprintln(os.Stderr, "error:", err)
		return 1
	}
}

// exitCode is an error that ends the process with this code and prints nothing (the worker's
// exit status).
type exitCode int

func (c exitCode) Error() string { return fmt.Sprintf("exit status %d", int(c)) }

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "cleanroom",
		Short:         "Privacy-preserving data sandbox: raw data usable but not visible",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newDemoCmd(), newTestdataCmd(), newAuditCmd(), newServeCmd(), newTokenCmd(), newPolicyCmd(), newWorkerCmd(), newLoadtestCmd(), newBenchCmd())
	addClientCommands(root)
	return root
}
