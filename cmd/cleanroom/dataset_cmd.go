package main

import (
	"cmp"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/c1b99f93/cleanroom/catalog"
	"github.com/c1b99f93/cleanroom/server/api"
)

func newDatasetCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "dataset", Short: "Register, list and show datasets on a server"}
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
	show := &cobra.Command{
		Use:   "show NAME",
		Short: "Show what a dataset holds: columns with types, tags, bounds and domains; its size and budget left",
		Long: `show prints a dataset's metadata as an applicant may read it: each column with its type (from
the registered snapshot), its tags, clamping bounds and public domain; the privacy unit; the
numbers of rows and privacy units when the policy discloses them (disclose_dataset_size); the
dataset's lifetime cap and, when the policy allows, what it has left to allocate; and the budget
left to each of your grants that names it. Never rows, never the source location.`,
		Example: "  cleanroom dataset show medical_visits\n  cleanroom dataset show medical_visits --json",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			d, err := c.Dataset(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if f.asJSON() {
				return writeJSON(cmd.OutOrStdout(), d)
			}
			return writeDatasetDetail(cmd.OutOrStdout(), d)
		},
	}
	cmd.AddCommand(add, list, show)
	return cmd
}

// writeDatasetDetail prints one dataset for people: a header of facts, the columns as a table,
// then the budget left to the caller's grants.
func writeDatasetDetail(w io.Writer, d *api.DatasetDetail) error {
	unit := d.PrivacyUnit
	if d.Public {
		unit = "(public lookup table)"
	}
	fmt.Fprintf(w, "dataset %s (grade %s, provider %s, domain %s)\n", d.Name, d.Grade, d.Provider, orDash(d.Domain))
	fmt.Fprintf(w, "privacy unit: %s\n", orDash(unit))
	if d.Rows != nil && d.Units != nil {
		fmt.Fprintf(w, "size:         %d rows, %d privacy units\n", *d.Rows, *d.Units)
	} else {
		fmt.Fprintf(w, "size:         not disclosed by the policy\n")
	}
	fmt.Fprintf(w, "snapshot:     %s\n", d.Digest)
	if d.Budget != nil {
		fmt.Fprintf(w, "budget cap:   epsilon %s, delta %s", fmtFloat(d.Budget.Epsilon), fmtFloat(d.Budget.Delta))
		if d.Remaining != nil {
			fmt.Fprintf(w, " (left to allocate: epsilon %s, delta %s)", fmtFloat(d.Remaining.Epsilon), fmtFloat(d.Remaining.Delta))
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintln(w)
	tw := newTabWriter(w)
	fmt.Fprintln(tw, "COLUMN	TYPE	TAGS	BOUNDS	DOMAIN")
	for _, c := range d.Columns {
		tags := strings.Join(c.Tags, ",")
		if c.PrivacyUnit {
			tags = strings.Trim(tags+",privacy unit", ",")
		}
		bounds := ""
		if len(c.Bounds) == 2 {
			bounds = fmt.Sprintf("[%s, %s]", fmtFloat(c.Bounds[0]), fmtFloat(c.Bounds[1]))
		}
		if len(c.DateRange) == 2 {
			bounds = fmt.Sprintf("[%s, %s]", c.DateRange[0], c.DateRange[1])
		}
		domain := ""
		if len(c.Domain) > 0 {
			domain = fmt.Sprintf("%d values: %s", len(c.Domain), shorten(strings.Join(c.Domain, ","), 50))
		}
		fmt.Fprintf(tw, "%s	%s	%s	%s	%s\n", c.Name, c.Type, orDash(tags), orDash(bounds), orDash(domain))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if d.Public {
		return nil
	}
	if len(d.Verify) > 0 {
		fmt.Fprintln(w)
		tw = newTabWriter(w)
		fmt.Fprintln(tw, "VERIFIABLE ATTRIBUTE	COLUMN	READ AS	CLAIM")
		for _, name := range slices.Sorted(maps.Keys(d.Verify)) {
			a := d.Verify[name]
			claim := "the value"
			if len(a.Bands) > 0 {
				var edges []string
				for _, e := range a.Bands {
					edges = append(edges, fmtFloat(e))
				}
				claim = fmt.Sprintf("band 0..%d (edges %s)", len(a.Bands), strings.Join(edges, ", "))
			} else if a.Reduce == catalog.ReduceAny {
				claim = "true or false"
			}
			fmt.Fprintf(tw, "%s	%s	%s	%s\n", name, a.Column, cmp.Or(a.Reduce, catalog.ReduceValue), claim)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	fmt.Fprintln(w)
	if len(d.Grants) == 0 {
		fmt.Fprintln(w, "none of your grants names this dataset")
		return nil
	}
	tw = newTabWriter(w)
	fmt.Fprintln(tw, "GRANT	STATE	EPSILON LEFT	DELTA LEFT")
	for _, g := range d.Grants {
		fmt.Fprintf(tw, "%s	%s	%s	%s\n", g.ID, g.State, fmtFloat(g.Remaining.Epsilon), fmtFloat(g.Remaining.Delta))
	}
	return tw.Flush()
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
		rows := "-" // the policy does not disclose sizes
		if d.Rows != nil {
			rows = fmt.Sprint(*d.Rows)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", d.Name, d.Provider, d.Grade, d.Domain,
			orDash(unit), rows, eps, delta, shorten(strings.Join(cols, ","), 60))
	}
	return tw.Flush()
}
