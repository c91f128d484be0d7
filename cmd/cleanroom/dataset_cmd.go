package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/c1b99f93/cleanroom/catalog"
	"github.com/c1b99f93/cleanroom/server/api"
)

func newDatasetCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "dataset", Short: "Register and list datasets on a server"}
	f := addClientFlags(cmd)

	add := &cobra.Command{
		Use:   "add SPEC.yaml",
		Short: "Register a dataset from its catalog spec",
		Long: `add reads a catalog spec (YAML, or JSON when the file ends in .json), checks it, and
registers it. A relative source path is resolved against the spec file's folder and sent as an
absolute path: the server reads the data from there, so the path must be valid on its host and
lie in the import root of the provider's organisation (cleanroom serve --import-root ORG=DIR),
with no symbolic link on the way. The same data can be registered only once
(dataset_already_registered).`,
		Example: "  cleanroom dataset add testdata/datasets/medical_visits.yaml\n" +
			"  CLEANROOM_SERVER=https://cleanroom.example:8443 cleanroom dataset add spec.yaml --json",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			// LoadFile validates the spec and makes a relative source path absolute against the
			// spec's folder, so the server reads the file the provider meant.
			spec, err := catalog.LoadFile(args[0])
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			c, err := f.client()
			if err != nil {
				return err
			}
			reg, err := c.RegisterDataset(cmd.Context(), spec)
			if err != nil {
				return fmt.Errorf("register %s: %w", spec.Name, err)
			}
			if f.asJSON() {
				return writeJSON(cmd.OutOrStdout(), reg)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "registered dataset %s: %d rows, digest %s\n  source %s (%s)\n",
				reg.Name, reg.Rows, reg.Digest, spec.Source.Path, spec.Source.Kind)
			return err
		},
	}

	list := &cobra.Command{
		Use:     "list",
		Short:   "List the registered datasets (metadata only)",
		Example: "  cleanroom dataset list\n  cleanroom dataset list --json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			ds, err := c.Datasets(cmd.Context())
			if err != nil {
				return err
			}
			if f.asJSON() {
				return writeJSON(cmd.OutOrStdout(), ds)
			}
			return writeDatasets(cmd.OutOrStdout(), ds.Datasets)
		},
	}
	cmd.AddCommand(add, list)
	return cmd
}

func writeDatasets(w io.Writer, ds []api.Dataset) error {
	tw := newTabWriter(w)
	fmt.Fprintln(tw, "NAME\tPROVIDER\tGRADE\tDOMAIN\tPRIVACY UNIT\tROWS\tEPSILON CAP\tDELTA CAP\tCOLUMNS")
	for _, d := range ds {
		unit := d.PrivacyUnit
		if d.Public {
			unit = "(public table)"
		}
		eps, delta := "-", "-"
		if d.Budget != nil {
			eps, delta = fmtFloat(d.Budget.Epsilon), fmtFloat(d.Budget.Delta)
		}
		cols := (&catalog.Spec{Columns: d.Columns}).ColumnNames()
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", d.Name, d.Provider, d.Grade, d.Domain,
			orDash(unit), d.Rows, eps, delta, shorten(strings.Join(cols, ","), 60))
	}
	return tw.Flush()
}
