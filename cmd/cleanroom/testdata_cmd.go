package main

import (
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/c1b99f93/cleanroom/connectors/synth"
)

// newTestdataCmd returns `cleanroom testdata`, the tools for the scenario's synthetic data.
func newTestdataCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "testdata",
		Short: "Generate the flagship scenario's synthetic datasets",
		Long: `Generate the flagship scenario's synthetic public datasets (Kunming medical insurance
pilot): residents, medical_visits, insurance_claims and enterprises.`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newTestdataGenCmd())
	return cmd
}

func newTestdataGenCmd() *cobra.Command {
	var (
		scale int
		seed  uint64
		out   string
		csv   bool
		byOrg bool
	)
	cmd := &cobra.Command{
		Use:   "gen",
		Short: "Write the synthetic datasets as Parquet (and CSV)",
		Long: `Write residents, medical_visits, insurance_claims and enterprises as <name>.parquet
(and <name>.csv with --csv) into --out; with --by-provider, into a folder per provider
organisation (--out/<org>/<name>.parquet), the layout of the server's per-organisation import
roots (cleanroom serve --import-root ORG=DIR).

The data are deterministic: the same --scale and --seed give byte-identical files. --scale is the
number of residents; there are about 5 visits per resident, one claim per 1.5 visits and one
enterprise per 20 residents. Identifiers are valid by GB 11643 and GB 32100. The committed
testdata/datasets files are --scale 10000 --seed 1 --by-provider; the L4 stand-in
public-security-bureau/criminal_records.parquet is the residents.parquet of --scale 200 --seed 2.`,
		Example: `  # regenerate the committed test datasets (from the repository root)
  cleanroom testdata gen --scale 10000 --seed 1 --out testdata/datasets --by-provider

  # a large run with CSV copies
  cleanroom testdata gen --scale 2000000 --seed 7 --out /tmp/pilot --csv`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			start := time.Now()
			counts, err := synth.Generate(cmd.Context(), synth.Options{
				Persons: scale, Seed: seed, OutDir: out, CSV: csv, ByProvider: byOrg,
			})
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			opt := synth.Options{OutDir: out, ByProvider: byOrg}
			for _, name := range synth.Datasets {
				exts := []string{".parquet"}
				if csv {
					exts = append(exts, ".csv")
				}
				for _, ext := range exts {
					path := synth.Path(opt, name, ext)
					var size int64
					if fi, err := os.Stat(path); err == nil {
						size = fi.Size()
					}
					fmt.Fprintf(w, "%-18s %10d rows %12d bytes  %s\n", name, counts[name], size, path)
				}
			}
			fmt.Fprintf(w, "generated in %s\n", time.Since(start).Round(time.Millisecond))
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVar(&scale, "scale", 10000, "number of residents (other datasets scale with it)")
	f.Uint64Var(&seed, "seed", 1, "random seed; the same scale and seed give identical files")
	f.StringVar(&out, "out", "", "output directory (created if missing)")
	f.BoolVar(&csv, "csv", false, "also write <name>.csv with a header row")
	f.BoolVar(&byOrg, "by-provider", false, "write each dataset into a folder named for its provider organisation")
	_ = cmd.MarkFlagRequired("out")
	return cmd
}
