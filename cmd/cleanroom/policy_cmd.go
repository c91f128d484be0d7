package main

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/c1b99f93/cleanroom/engine"
	"github.com/c1b99f93/cleanroom/policy"
)

func newPolicyCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "policy", Short: "Test policy bundles and see what a candidate bundle would change"}
	cmd.AddCommand(newPolicyTestCmd(), newPolicyWhatIfCmd())
	return cmd
}

// loadBundle opens a bundle directory, or the embedded default when dir is empty.
func loadBundle(cmd *cobra.Command, dir string) (*policy.Engine, error) {
	var opts []policy.Option
	if dir != "" {
		opts = append(opts, policy.WithBundleDir(dir))
	}
	return policy.New(cmd.Context(), opts...)
}

func newPolicyTestCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "test [DIR]",
		Short: "Run a bundle's Rego tests with OPA's tester (default: the embedded bundle)",
		Example: `  cleanroom policy test                  # the embedded default bundle
  cleanroom policy test ./my-bundle        # an operator's bundle (the same tests pass under opa test)`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := ""
			if len(args) == 1 {
				dir = args[0]
			}
			p, err := loadBundle(cmd, dir)
			if err != nil {
				return err
			}
			results, err := p.RunTests(cmd.Context())
			if err != nil {
				return err
			}
			failed := 0
			for _, r := range results {
				if !r.Pass {
					failed++
				}
			}
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				if err := enc.Encode(map[string]any{"bundle_digest": p.Digest(), "results": results}); err != nil {
					return err
				}
			} else {
				for _, r := range results {
					if !r.Pass {
						fmt.Fprintf(out, "FAIL %s: %s\n", r.Name, r.Fail)
					}
				}
				fmt.Fprintf(out, "bundle %s: %d tests, %d passed, %d failed\n", p.Digest(), len(results), len(results)-failed, failed)
			}
			if failed > 0 {
				return fmt.Errorf("%d policy tests failed", failed)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the results as JSON")
	return cmd
}

func newPolicyWhatIfCmd() *cobra.Command {
	var dataDir string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "whatif DIR",
		Short: "Evaluate a candidate bundle against the recorded inputs of past jobs and list every decision it would change",
		Example: `  cleanroom policy whatif ./candidate-bundle --data-dir /var/lib/cleanroom
  # reads the provenance log only; the running server is not affected`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			candidate, err := loadBundle(cmd, args[0])
			if err != nil {
				return err
			}
			recorded, err := engine.RecordedDecisions(filepath.Join(dataDir, "provenance.log"))
			if err != nil {
				return err
			}
			changes, err := policy.WhatIf(cmd.Context(), candidate, recorded)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(map[string]any{"candidate_digest": candidate.Digest(), "decisions": len(recorded), "changes": changes})
			}
			fmt.Fprintf(out, "candidate %s against %d recorded decisions: %d would change\n", candidate.Digest(), len(recorded), len(changes))
			if len(changes) == 0 {
				return nil
			}
			tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "job\tdecision\tfrom\tto\tcandidate's reasons")
			for _, c := range changes {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", c.Job, strings.TrimPrefix(c.Query, "data.cleanroom."), c.From, c.To, strings.Join(c.ToReasons, "; "))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&dataDir, "data-dir", "", "the platform's data directory (its provenance log holds the recorded inputs)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the changes as JSON")
	_ = cmd.MarkFlagRequired("data-dir")
	return cmd
}
