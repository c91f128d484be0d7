package main

import (
	"context"
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

func newModelCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "model", Short: "Train DP models (kind model) or run custom model code (kind wasm) under a grant"}
	cmd.AddCommand(newModelTrainCmd(), newModelWasmCmd())
	return cmd
}

func newModelTrainCmd() *cobra.Command {
	var m api.ModelRequest
	var grant string
	var bounds []string
	var eps, delta float64
	var f *clientFlags
	cmd := &cobra.Command{
		Use:   "train --grant GRANT --type TYPE --sql SQL --features A,B --label Y",
		Short: "Train a DP linear or logistic regression and print its coefficients",
		Long: `model train submits a model job: a DP linear_regression or logistic_regression of the rows
of a row-level SQL that selects the privacy unit first, then the features and the label by
name. The rows never leave the sandbox; the worker returns only bounded sums, the platform adds
the noise, and only the coefficients (with intervals for a linear model), the intercept and
noisy metrics are released (docs/models.md).

Each feature and the label needs public bounds: the catalog's, those the SQL implies (a CASE
of numbers, a condition's 0/1), or --bounds name=lo:hi, which win. Values are clipped to them.
A logistic label is positive where its value is at least 0.5 (select a condition).`,
		Example: `  cleanroom model train --grant g-1a2b --type linear_regression \
    --sql "SELECT person_id, CASE age_band WHEN '0-17' THEN 0 WHEN '18-34' THEN 1 WHEN '35-49' THEN 2 WHEN '50-64' THEN 3 ELSE 4 END AS age_group, CAST(inpatient AS INTEGER) AS inpatient, cost FROM medical_visits" \
    --features age_group,inpatient --label cost --bounds cost=0:20000 --epsilon 1
  cleanroom model train --grant g-1a2b --type logistic_regression --json \
    --sql "SELECT person_id, cost, inpatient = 'true' AS stay FROM medical_visits" --features cost --label stay`,
		Args: cobra.NoArgs,
		PreRunE: func(cmd *cobra.Command, _ []string) error {
			if err := cmd.ValidateRequiredFlags(); err != nil {
				return err
			}
			switch {
			case eps < 0 || math.IsNaN(eps) || math.IsInf(eps, 0):
				return errors.New("--epsilon must be a finite number ≥ 0 (0: the platform default)")
			case !(delta >= 0 && delta < 1):
				return errors.New("--delta must be in (0, 1) (leave it out for the platform default)")
			}
			b, err := parseModelBounds(bounds)
			m.Bounds = b
			return err
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
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
			j, err := c.TrainModel(ctx, grant, m, opts)
			if err != nil {
				return withSQLPosition(err, m.SQL)
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "submitted model job %s; waiting for its result\n", j.ID)
			return waitAndShow(ctx, cmd, f, c, j, func(j *api.Job) error {
				res, err := client.ModelResult(j)
				if err != nil {
					return fmt.Errorf("job %s: %w", j.ID, err)
				}
				return writeModelResult(cmd.OutOrStdout(), res)
			})
		},
	}
	f = addClientFlags(cmd)
	fl := cmd.Flags()
	fl.StringVar(&grant, "grant", "", "the grant the job runs under (required)")
	fl.StringVar(&m.Type, "type", "", "linear_regression or logistic_regression (required)")
	fl.StringVar(&m.SQL, "sql", "", "SELECT <privacy unit>, <features>, <label> FROM … (required; never released)")
	fl.StringSliceVar(&m.Features, "features", nil, "the features, by their names in the SQL's select list (required)")
	fl.StringVar(&m.Label, "label", "", "the label, by its name in the SQL's select list (required)")
	fl.StringSliceVar(&bounds, "bounds", nil, "public bounds name=lo:hi for features or the label (values are clipped to them)")
	fl.IntVar(&m.MaxRowsPerUnit, "max-rows", 0, "rows of one privacy unit the model reads at most (default 1)")
	fl.IntVar(&m.Iterations, "iterations", 0, "a logistic fit's gradient steps (default 100)")
	fl.Float64Var(&eps, "epsilon", 0, "epsilon this job spends (default: the platform's)")
	fl.Float64Var(&delta, "delta", 0, "delta this job spends, > 0 (default: a share of the grant's delta)")
	for _, name := range []string{"grant", "type", "sql", "features", "label"} {
		_ = cmd.MarkFlagRequired(name)
	}
	return cmd
}

// waitAndShow waits for a submitted job and prints it: as JSON with --json, else through show
// once it is released (a hold is printed with its reasons); a job that did not release is the
// command's error.
func waitAndShow(ctx context.Context, cmd *cobra.Command, f *clientFlags, c *client.Client, j *api.Job, show func(*api.Job) error) error {
	j, err := c.WaitJob(ctx, j.ID)
	if err != nil {
		return err
	}
	if f.asJSON() {
		if err := writeJSON(cmd.OutOrStdout(), j); err != nil {
			return err
		}
		return jobStateError(j)
	}
	if j.State == api.JobInReview {
		writeHeld(cmd.OutOrStdout(), j)
	}
	if err := jobStateError(j); err != nil {
		return err
	}
	return show(j)
}

// parseModelBounds reads --bounds name=lo:hi entries.
func parseModelBounds(entries []string) (map[string][]float64, error) {
	if len(entries) == 0 {
		return nil, nil
	}
	out := map[string][]float64{}
	for _, e := range entries {
		name, rng, ok := strings.Cut(e, "=")
		lo, hi, ok2 := strings.Cut(rng, ":")
		l, err1 := strconv.ParseFloat(lo, 64)
		h, err2 := strconv.ParseFloat(hi, 64)
		if !ok || !ok2 || name == "" || err1 != nil || err2 != nil || !(l < h) || math.IsInf(l, 0) || math.IsInf(h, 0) {
			return nil, fmt.Errorf("--bounds %q: write name=lo:hi with finite numbers lo < hi", e)
		}
		out[name] = []float64{l, h}
	}
	return out, nil
}

// writeModelResult prints a released model: each coefficient with its interval, the intercept,
// the metrics and what was spent.
func writeModelResult(w io.Writer, r *api.ModelResult) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s of %s on %s (job %s)\n", r.Type, r.Label, r.Dataset, r.Job)
	row := func(c api.ModelCoefficient) {
		if r.Confidence > 0 {
			fmt.Fprintf(&b, "  %-24s %12.4g   [%.4g, %.4g]\n", c.Name, c.Value, c.Lower, c.Upper)
		} else {
			fmt.Fprintf(&b, "  %-24s %12.4g\n", c.Name, c.Value)
		}
	}
	if r.Confidence > 0 {
		fmt.Fprintf(&b, "  %-24s %12s   %.0f%% interval\n", "coefficient", "value", 100*r.Confidence)
	}
	for _, c := range r.Coefficients {
		row(c)
	}
	row(r.Intercept)
	m := r.Metrics
	fmt.Fprintf(&b, "metrics (noisy): n ≈ %.0f", m.N)
	if m.RMSE != nil {
		fmt.Fprintf(&b, ", RMSE %.4g", *m.RMSE)
	}
	if m.R2 != nil {
		fmt.Fprintf(&b, ", R² %.3f", *m.R2)
	}
	if m.Accuracy != nil {
		fmt.Fprintf(&b, ", accuracy %.3f", *m.Accuracy)
	}
	fmt.Fprintf(&b, "\nspent: epsilon %g, delta %.3g; %s\n", r.Spent.Epsilon, r.Spent.Delta, r.Mechanism)
	if rp := r.Repeat; rp != nil {
		fmt.Fprintf(&b, "identical to job %s: answered from its release, no new noise, nothing spent (it spent epsilon %g, delta %.3g)\n",
			rp.Job, rp.Spent.Epsilon, rp.Spent.Delta)
	}
	if r.Intervals != "" {
		fmt.Fprintf(&b, "intervals: %s\n", r.Intervals)
	}
	_, err := io.WriteString(w, b.String())
	return err
}
