package main

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/c1b99f93/cleanroom/server/api"
	"github.com/c1b99f93/cleanroom/server/client"
)

func newModelWasmCmd() *cobra.Command {
	var w api.WasmRequest
	var grant, module string
	var bounds []string
	var defaults []float64
	var eps, delta float64
	var f *clientFlags
	cmd := &cobra.Command{
		Use:   "wasm --grant GRANT --module F.wasm --sql SQL --length N --bounds LO:HI,… --blocks K",
		Short: "Run custom model code (a WebAssembly module) by sample-and-aggregate and print its DP output",
		Long: `model wasm uploads a WebAssembly module (POST /v1/wasm/modules, once per module: the job
names it by digest) and submits a custom model job (kind wasm). The rows of a row-level SQL —
the privacy unit first, then the module's columns by name, no identifier — are split by a
keyed hash of the unit into K disjoint blocks; the module runs once per block on that block's
rows as an Arrow IPC stream and returns N float64; each vector is clamped to --bounds (a block
that fails gives --default); only the average over the blocks is released, with noise
calibrated to (hi − lo)/K per element: Laplace with --delta 0, else Gaussian (docs/models.md).

--default is the vector a failing block contributes (default: the middle of each bound).`,
		Example: `  cleanroom model wasm --grant g-1a2b --module mean.wasm \
    --sql "SELECT person_id, cost, CAST(inpatient AS INTEGER) AS stay FROM medical_visits" \
    --length 2 --bounds 0:5000,0:1 --blocks 50 --epsilon 0.5 --delta 0`,
		Args: cobra.NoArgs,
		PreRunE: func(cmd *cobra.Command, _ []string) error {
			if err := cmd.ValidateRequiredFlags(); err != nil {
				return err
			}
			switch {
			case eps < 0 || math.IsNaN(eps) || math.IsInf(eps, 0):
				return errors.New("--epsilon must be a finite number ≥ 0 (0: the platform default)")
			case !(delta >= 0 && delta < 1):
				return errors.New("--delta must be in [0, 1): 0 for Laplace noise, more for Gaussian")
			}
			b, err := parseWasmBounds(bounds)
			if err != nil {
				return err
			}
			if len(b) != w.Output.Length {
				return fmt.Errorf("--bounds gives %d pairs for --length %d", len(b), w.Output.Length)
			}
			w.Output.Bounds, w.Output.Default = b, defaults
			if w.Output.Default == nil {
				for _, p := range b {
					w.Output.Default = append(w.Output.Default, p[0]/2+p[1]/2)
				}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			bin, err := os.ReadFile(module)
			if err != nil {
				return fmt.Errorf("--module: %w", err)
			}
			opts := api.JobOptions{Epsilon: eps}
			if cmd.Flags().Changed("delta") {
				opts.Delta = &delta
			}
			c, err := f.client()
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt)
			defer stop()
			up, err := c.UploadWasmModule(ctx, grant, bin)
			if err != nil {
				return err
			}
			w.ModuleDigest = up.Digest
			j, err := c.RunWasm(ctx, grant, w, opts)
			if err != nil {
				return withSQLPosition(err, w.SQL)
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "module %s uploaded; submitted custom model job %s; waiting for its result\n", up.Digest, j.ID)
			return waitAndShow(ctx, cmd, f, c, j, func(j *api.Job) error {
				res, err := client.WasmResult(j)
				if err != nil {
					return fmt.Errorf("job %s: %w", j.ID, err)
				}
				return writeWasmResult(cmd.OutOrStdout(), res)
			})
		},
	}
	f = addClientFlags(cmd)
	fl := cmd.Flags()
	fl.StringVar(&grant, "grant", "", "the grant the job runs under (required)")
	fl.StringVar(&module, "module", "", "the WebAssembly module's file (required)")
	fl.StringVar(&w.SQL, "sql", "", "SELECT <privacy unit>, <the module's columns> FROM … (required; never released)")
	fl.IntVar(&w.Output.Length, "length", 0, "how many float64 the module returns (required)")
	fl.StringSliceVar(&bounds, "bounds", nil, "lo:hi per element, in order (required); outputs are clamped to them")
	fl.Float64SliceVar(&defaults, "default", nil, "the vector a failing block contributes (default: the middle of each bound)")
	fl.IntVar(&w.Blocks, "blocks", 0, "k, the number of disjoint blocks of privacy units (required)")
	fl.Int64Var(&w.DeadlineMS, "deadline-ms", 0, "each block's wall-clock deadline in ms (default 10000)")
	fl.Float64Var(&eps, "epsilon", 0, "epsilon this job spends (default: the platform's)")
	fl.Float64Var(&delta, "delta", 0, "delta this job spends: 0 for Laplace noise (default: a share of the grant's delta, Gaussian)")
	for _, name := range []string{"grant", "module", "sql", "length", "bounds", "blocks"} {
		_ = cmd.MarkFlagRequired(name)
	}
	return cmd
}

// parseWasmBounds reads --bounds lo:hi entries, in element order.
func parseWasmBounds(entries []string) ([][2]float64, error) {
	var out [][2]float64
	for _, e := range entries {
		lo, hi, ok := strings.Cut(e, ":")
		l, err1 := strconv.ParseFloat(lo, 64)
		h, err2 := strconv.ParseFloat(hi, 64)
		if !ok || err1 != nil || err2 != nil || !(l < h) || math.IsInf(l, 0) || math.IsInf(h, 0) {
			return nil, fmt.Errorf("--bounds %q: write lo:hi with finite numbers lo < hi", e)
		}
		out = append(out, [2]float64{l, h})
	}
	return out, nil
}

// writeWasmResult prints a released custom model: each element with its interval, bounds and
// noise, then k, the spend and what k trades.
func writeWasmResult(w io.Writer, r *api.WasmResult) error {
	var b strings.Builder
	fmt.Fprintf(&b, "custom model %s on %s over k = %d blocks (job %s)\n", r.ModuleDigest, r.Dataset, r.Blocks, r.Job)
	fmt.Fprintf(&b, "  %-8s %12s   %-26s %-20s %s\n", "element", "value", fmt.Sprintf("%.0f%% interval", 100*r.Confidence), "bounds", "noise stddev")
	for _, v := range r.Values {
		fmt.Fprintf(&b, "  %-8d %12.4g   %-26s %-20s %.3g\n", v.Index, v.Value, fmt.Sprintf("[%.4g, %.4g]", v.Lower, v.Upper),
			fmt.Sprintf("[%g, %g]", v.Bounds[0], v.Bounds[1]), v.NoiseScale)
	}
	fmt.Fprintf(&b, "spent: epsilon %g, delta %.3g; %s\n", r.Spent.Epsilon, r.Spent.Delta, r.Mechanism)
	_, err := io.WriteString(w, b.String())
	return err
}
