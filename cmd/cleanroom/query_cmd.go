package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"strings"

	"github.com/spf13/cobra"

	"github.com/c1b99f93/cleanroom/engine"
	"github.com/c1b99f93/cleanroom/server/api"
	"github.com/c1b99f93/cleanroom/server/client"
)

func newQueryCmd() *cobra.Command {
	var req api.JobRequest
	var saveTo string
	var delta float64
	var explain bool
	var federated []string
	var f *clientFlags
	cmd := &cobra.Command{
		Use:   "query --grant GRANT SQL",
		Short: "Run a DP SQL query under a grant and print the released result",
		Long: `query submits a SQL job under a grant, waits for it, and prints the released result: the
group keys, then each aggregate's noisy value and ± half its 95% confidence interval, and a
footer with the mechanisms, the budget spent and its split. SQL "-" reads the query from stdin.

--json prints the job document (the result under "result"); --csv and --output arrow print the
result in engine's flat layout (value, ci_low, ci_high, mechanism, epsilon, delta per aggregate).

A job held for review, denied or failed ends the command with an error (exit status 1) that
names the job; a held job's result is released once reviewers approve it (see "job show").

--explain asks for the dry run instead: the cost, each aggregate's mechanism, noise and expected
95% error per cell, the partitions (public or selected), the bounds and the access policy's
decision. It reads no data, spends nothing, is not a job and does not count against rate limits;
--json prints the whole explanation document.

Without --delta the job spends the platform's default delta (a small share of the grant's) if
it needs any; --delta 0 asks for pure DP: only public partitions, and a query that would need
partition selection is refused with what would work instead.`,
		Example: `  cleanroom query --grant g-1a2b "SELECT district, COUNT(*) AS visits FROM medical_visits GROUP BY district"
  cleanroom query --grant g-1a2b --epsilon 0.5 --max-groups 1 --max-contributions 5 \
    "SELECT age_band, AVG(cost) AS mean_cost FROM medical_visits GROUP BY age_band" --csv > mean_cost.csv
  echo "SELECT COUNT(*) AS n FROM medical_visits" | cleanroom query --grant g-1a2b - --json
  cleanroom query --grant g-1a2b --explain --delta 0 "SELECT district, COUNT(*) FROM medical_visits GROUP BY district"
  cleanroom query --grant g-1a2b --federated visits_health,visits_insurance \
    "SELECT district, COUNT(*) AS visits FROM visits_health GROUP BY district"`,
		Args: cobra.ExactArgs(1),
		PreRunE: func(cmd *cobra.Command, _ []string) error {
			if err := cmd.ValidateRequiredFlags(); err != nil {
				return err
			}
			o := req.Options
			switch {
			case o.Epsilon < 0 || math.IsNaN(o.Epsilon) || math.IsInf(o.Epsilon, 0):
				return errors.New("--epsilon must be a finite number ≥ 0 (0: the platform default)")
			case !(delta >= 0 && delta < 1):
				return errors.New("--delta must be in [0, 1) (0: pure DP, public partitions only; leave it out for the platform default)")
			case explain && len(federated) > 0:
				return errors.New("--explain is for SQL jobs; a federated job has no dry run yet")
			case explain && (saveTo != "" || f.output == outputCSV || f.output == outputArrow):
				return errors.New("--explain prints the dry run (a table, or --json); it has no result to --save, --csv or --output arrow")
			case o.MaxGroupsContributed < 0 || o.MaxContributionsPerGroup < 0:
				return errors.New("--max-groups and --max-contributions must be ≥ 0 (0: chosen automatically under DP)")
			}
			return nil
		},
	}
	f = addClientFlags(cmd, outputCSV, outputArrow)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		sql := args[0]
		if sql == "-" {
			b, err := io.ReadAll(io.LimitReader(cmd.InOrStdin(), 1<<20))
			if err != nil {
				return fmt.Errorf("read the query from stdin: %w", err)
			}
			sql = string(b)
		}
		if strings.TrimSpace(sql) == "" {
			return errors.New("the query is empty")
		}
		req.Kind, req.SQL = api.KindSQL, sql
		if len(federated) > 0 {
			req.Kind, req.Federated = api.KindFederated, &api.FederatedRequest{Datasets: federated}
		}
		// A --delta given, even 0, is sent; left out, the server's default applies.
		if cmd.Flags().Changed("delta") {
			req.Options.Delta = &delta
		}
		if explain {
			return runExplain(cmd, f, req)
		}
		return runQuery(cmd, f, req, saveTo)
	}
	fl := cmd.Flags()
	fl.StringVar(&req.Grant, "grant", "", "the grant the job runs under (required)")
	fl.StringVar(&saveTo, "save", "", "also write the released result to PREFIX.json and its signed receipt to PREFIX.receipt (check with: cleanroom audit receipt verify)")
	fl.Float64Var(&req.Options.Epsilon, "epsilon", 0, "epsilon this job spends (default: the platform's)")
	fl.Float64Var(&delta, "delta", 0, "delta this job may spend; 0 is pure DP (public partitions only) (default: a share of the grant's delta)")
	fl.StringSliceVar(&federated, "federated", nil, "run the query as one DP statistic over these datasets, each in another data domain, under a collective key (kind federated_sql; the SQL names the first; docs/he-collective.md)")
	fl.BoolVar(&explain, "explain", false, "print the dry run (cost, noise, expected error, partitions, policy decision) instead of running the job; free")
	fl.Int64Var(&req.Options.MaxGroupsContributed, "max-groups", 0, "groups one privacy unit may contribute to (default: chosen under DP within the operator's maximum)")
	fl.Int64Var(&req.Options.MaxContributionsPerGroup, "max-contributions", 0, "rows one privacy unit may contribute per group (default: chosen under DP within the operator's maximum)")
	_ = cmd.MarkFlagRequired("grant")
	return cmd
}

func runQuery(cmd *cobra.Command, f *clientFlags, req api.JobRequest, saveTo string) error {
	c, err := f.client()
	if err != nil {
		return err
	}
	// Interrupting the wait does not cancel the job; say where to find it.
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt)
	defer stop()
	j, err := c.SubmitJob(ctx, req)
	if err != nil {
		return withSQLPosition(err, req.SQL)
	}
	if client.Pending(j.State) {
		fmt.Fprintf(cmd.ErrOrStderr(), "submitted job %s; waiting for its result\n", j.ID)
		id := j.ID
		if j, err = c.WaitJob(ctx, id); err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("stopped waiting for job %s, which goes on on the server (see: cleanroom job show %s): %w", id, id, err)
			}
			return err
		}
	}
	if saveTo != "" && j.State == api.JobReleased {
		if err := os.WriteFile(saveTo+".json", j.Result, 0o600); err != nil {
			return err
		}
		if err := os.WriteFile(saveTo+".receipt", []byte(j.Receipt), 0o600); err != nil {
			return err
		}
		fmt.Fprintf(cmd.ErrOrStderr(), "saved %s.json and %s.receipt\n", saveTo, saveTo)
	}
	return writeJobOutcome(cmd.OutOrStdout(), f, j)
}

// writeJobOutcome prints a finished job's result in f's format; a job that did not release
// one is an error naming the job and why.
func writeJobOutcome(w io.Writer, f *clientFlags, j *api.Job) error {
	if j.State == api.JobReleased {
		if f.asJSON() {
			return writeJSON(w, j)
		}
		res, err := decodeResult(j.Result)
		if err != nil {
			return fmt.Errorf("job %s: %w", j.ID, err)
		}
		if f.output == outputTable {
			return writeResultTable(w, res, "released")
		}
		return res.Write(w, f.output)
	}
	if f.asJSON() {
		if err := writeJSON(w, j); err != nil {
			return err
		}
	} else if f.output == outputTable && j.State == api.JobInReview {
		writeHeld(w, j)
	}
	return jobStateError(j)
}

// writeHeld says that a job is held for review, how many approvals it needs and why.
func writeHeld(w io.Writer, j *api.Job) {
	fmt.Fprintf(w, "job %s is held for review", j.ID)
	if r := j.Review; r != nil {
		fmt.Fprintf(w, ": %d approval(s) needed, %d given", r.Required, approvals(r))
		for _, reason := range r.Reasons {
			fmt.Fprintf(w, "\n  reason: %s", reason)
		}
	}
	fmt.Fprintln(w)
}

// jobStateError says why a job has no result to print.
func jobStateError(j *api.Job) error {
	switch j.State {
	case api.JobReleased:
		return nil
	case api.JobInReview:
		return fmt.Errorf("job %s waits for review; its result is released once reviewers approve it (see: cleanroom job show %s)", j.ID, j.ID)
	case api.JobDenied, api.JobFailed:
		if j.Error != nil {
			return atPosition(fmt.Errorf("job %s %s: %s: %s", j.ID, j.State, j.Error.Code, j.Error.Message), j.Error, j.SQL)
		}
		return fmt.Errorf("job %s %s", j.ID, j.State)
	case api.JobQueued, api.JobRunning:
		return fmt.Errorf("job %s is still %s", j.ID, j.State)
	}
	return fmt.Errorf("job %s is in an unknown state %q", j.ID, j.State)
}

func approvals(r *api.JobReview) int {
	n := 0
	for _, x := range r.Reviews {
		if x.Decision == "approve" {
			n++
		}
	}
	return n
}

func decodeResult(raw json.RawMessage) (*engine.Result, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, errors.New("the server sent no result (your role may not read results)")
	}
	var r engine.Result
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, fmt.Errorf("the result does not decode: %w", err)
	}
	return &r, nil
}

// derivedValue is a post-processed cell's value, NULL where the expression is undefined.
func derivedValue(d *api.Derived, format func(float64) string) string {
	if d.Value == nil {
		return "NULL"
	}
	return format(*d.Value)
}

// derivedHalfWidth is ± half a derived cell's interval, "±∞" when it is unbounded on a side.
func derivedHalfWidth(d *api.Derived) string {
	if d.CILow == nil || d.CIHigh == nil {
		return "±∞"
	}
	return "±" + fmtNum((*d.CIHigh-*d.CILow)/2)
}

// writeResultTable prints a result for people: group keys, then each aggregate's value and ±
// half its 95% interval width; then the mechanisms, the budget spent and its split. status is
// what became of the rows ("released", or "held for review" in the review queue).
func writeResultTable(w io.Writer, r *engine.Result, status string) error {
	tw := newTabWriter(w)
	var hdr []string
	for _, c := range r.Columns {
		if c.Kind == "group_key" {
			hdr = append(hdr, c.Name)
		} else {
			hdr = append(hdr, c.Name, "±")
		}
	}
	fmt.Fprintln(tw, strings.Join(hdr, "\t"))
	var mechs []string
	cols := map[string][]string{} // mechanism → aggregate columns
	for i, row := range r.Rows {
		var cells []string
		for j, c := range row {
			switch {
			case c.DP != nil:
				v := fmtNum(c.DP.Value)
				if c.AtClampBound != "" {
					v += " (at " + c.AtClampBound + " bound)"
				}
				cells = append(cells, v, "±"+fmtNum((c.DP.CIHigh-c.DP.CILow)/2))
				if i == 0 && j < len(r.Columns) {
					if _, ok := cols[c.DP.Mechanism]; !ok {
						mechs = append(mechs, c.DP.Mechanism)
					}
					cols[c.DP.Mechanism] = append(cols[c.DP.Mechanism], r.Columns[j].Name)
				}
			case c.Derived != nil:
				cells = append(cells, derivedValue(c.Derived, fmtNum), derivedHalfWidth(c.Derived))
			case c.Key != nil:
				cells = append(cells, *c.Key)
			default:
				cells = append(cells, "NULL")
			}
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\n%d row(s) %s%s, job %s", len(r.Rows), status, withheldText(r), r.Job)
	if r.LogIndex > 0 {
		fmt.Fprintf(w, " (provenance record %d)", r.LogIndex)
	}
	fmt.Fprintln(w, "; ± is half the width of the 95% confidence interval of the noise (not of the bias below)")
	if len(mechs) > 0 {
		var parts []string
		for _, m := range mechs {
			parts = append(parts, fmt.Sprintf("%s (%s)", m, strings.Join(cols[m], ", ")))
		}
		fmt.Fprintf(w, "mechanism: %s\n", strings.Join(parts, "; "))
	}
	fmt.Fprintf(w, "spent: epsilon %s, delta %s\n", fmtFloat(r.Spent.Epsilon), fmtFloat(r.Spent.Delta))
	if r.Split != "" {
		fmt.Fprintf(w, "budget split: %s\n", r.Split)
	}
	if r.Bounds != "" {
		fmt.Fprintf(w, "bounds: %s\n", r.Bounds)
	}
	for _, c := range r.Columns {
		if c.Note != "" {
			fmt.Fprintf(w, "note on %s: %s\n", c.Name, c.Note)
		}
	}
	writeBias(w, r.Bias)
	return nil
}

// writeBias states what bounding cost the answer: one line of noisy estimates, each share with
// its 95% tolerance ("8.1% ± 1.2%"), then a warning line for each bias above
// api.BiasWarnShare that says what to do about it.
func writeBias(w io.Writer, b *api.Bias) {
	if b == nil {
		return
	}
	tol := ""
	if b.RowsDroppedTolerance > 0 {
		tol = "; ± is a 95% tolerance"
	}
	line := fmt.Sprintf("bias (noisy, epsilon %s%s): bounding dropped rows of %s of units (%s of a unit's rows on average",
		fmtFloat(b.Epsilon), tol, api.ShareText(b.UnitsWithDroppedRows, b.UnitsWithDroppedRowsTolerance), api.ShareText(b.RowsDropped, b.RowsDroppedTolerance))
	if b.ModelRowsDropped != nil {
		line += fmt.Sprintf("; about %.1f%% of all rows by the bounds' model, no tolerance stated", 100**b.ModelRowsDropped)
	}
	line += ")"
	for _, c := range b.Clamped {
		line += fmt.Sprintf("; %s clamped values of %s of units", c.Aggregate, api.ShareText(c.Units, c.UnitsTolerance))
	}
	fmt.Fprintln(w, line)
	for _, warn := range b.Warnings() {
		fmt.Fprintln(w, warn)
	}
}

// withheldText says how many rows were withheld as small groups, when the result says.
func withheldText(r *engine.Result) string {
	if r.Suppressed == nil || *r.Suppressed == 0 {
		return ""
	}
	return fmt.Sprintf(" (%d more withheld: fewer privacy units than the policy's minimum)", *r.Suppressed)
}
