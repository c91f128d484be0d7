package main

import (
	"fmt"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/c1b99f93/cleanroom/engine/provenance"
)

func newAuditCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "audit", Short: "Verify and inspect the provenance log"}
	var dataDir string
	verify := &cobra.Command{
		Use:     "verify",
		Short:   "Check the provenance log's hash chain",
		Example: "  cleanroom audit verify --data-dir /var/lib/cleanroom",
		RunE: func(cmd *cobra.Command, _ []string) error {
			rep, err := provenance.Verify(filepath.Join(dataDir, "provenance.log"))
			if !rep.OK() {
				return fmt.Errorf("provenance log is corrupt: %s at record %d", rep.Problem, rep.FirstBad)
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "provenance log ok: %d records, head %s\n", rep.Records, rep.Head)
			return nil
		},
	}
	verify.Flags().StringVar(&dataDir, "data-dir", "", "the platform's data directory")
	_ = verify.MarkFlagRequired("data-dir")
	cmd.AddCommand(verify)
	return cmd
}
