package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/c1b99f93/cleanroom/engine"
	"github.com/c1b99f93/cleanroom/engine/catalog"
	"github.com/c1b99f93/cleanroom/engine/errcode"
	"github.com/c1b99f93/cleanroom/engine/ledger"
	"github.com/c1b99f93/cleanroom/engine/plan"
	"github.com/c1b99f93/cleanroom/engine/provenance"
	"github.com/c1b99f93/cleanroom/policy"
	"github.com/c1b99f93/cleanroom/sandbox"
)

func newDemoCmd() *cobra.Command {
	var datasets, dataDir, output string
	var keep bool
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run the flagship scenario end to end on the committed test data",
		Long: `demo starts a temporary platform (engine and a sandboxed worker), registers the
committed synthetic datasets, and runs the medical-insurance scenario: DP statistics by district,
age band and hospital, refused attempts to read identifiers, export a file and query an L4
dataset, the remaining budget, and a check of the provenance log.`,
		Example: "  cleanroom demo\n  cleanroom demo --output json\n  cleanroom demo --datasets testdata/datasets --keep",
		PreRunE: func(*cobra.Command, []string) error { return checkOutput(output) },
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dataDir == "" {
				d, err := os.MkdirTemp("", "cleanroom-demo-")
				if err != nil {
					return err
				}
				dataDir = d
				if !keep {
					defer os.RemoveAll(d)
				}
			}
			return runDemo(cmd.Context(), cmd.OutOrStdout(), datasets, dataDir, output)
		},
	}
	cmd.Flags().StringVar(&datasets, "datasets", "testdata/datasets", "directory of catalog specs (*.yaml) and their data")
	cmd.Flags().StringVar(&dataDir, "data-dir", "", "platform data directory (default: a temporary one)")
	cmd.Flags().BoolVar(&keep, "keep", false, "keep the temporary data directory for inspection")
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table or json")
	return cmd
}

func checkOutput(format string) error {
	if format != "table" && format != "json" {
		return fmt.Errorf("--output must be table or json, not %q", format)
	}
	return nil
}

// demoReport is everything the demo shows, rendered as a table or as JSON.
type demoReport struct {
	DataDir      string                  `json:"data_dir"`
	PolicyBundle string                  `json:"policy_bundle"`
	Isolation    *sandbox.Isolation      `json:"isolation"`
	Datasets     []demoDataset           `json:"datasets"`
	Grant        string                  `json:"grant"`
	Applicant    policy.Principal        `json:"applicant"`
	Jobs         []demoJob               `json:"jobs"`
	Budget       []ledger.Balance        `json:"budget"`
	Provenance   provenance.VerifyReport `json:"provenance"`
}

type demoDataset struct {
	Name     string        `json:"name"`
	Provider string        `json:"provider"`
	Grade    catalog.Grade `json:"grade"`
	Snapshot string        `json:"snapshot"`
}

type demoJob struct {
	Title  string               `json:"title"`
	SQL    string               `json:"sql"`
	Result *engine.Result       `json:"result,omitempty"`
	Error  *errcode.PublicError `json:"error,omitempty"`
	// Held and ReviewedBy: the egress policy held the output, and these reviewers approved it.
	Held       *engine.Hold `json:"held,omitempty"`
	ReviewedBy []string     `json:"reviewed_by,omitempty"`
}

var demoSteps = []struct {
	title string
	sql   string
	opts  plan.Options
}{
	{title: "Visits and total cost by district (public partitions)",
		sql:  "SELECT district, COUNT(*) AS visits, SUM(cost) AS total_cost FROM medical_visits GROUP BY district",
		opts: plan.Options{Epsilon: 1, MaxGroupsContributed: 1, MaxContributionsPerGroup: 5}},
	{title: "Persons with an inpatient visit, by age band",
		sql:  "SELECT age_band, COUNT(DISTINCT person_id) AS persons FROM medical_visits WHERE inpatient GROUP BY age_band",
		opts: plan.Options{Epsilon: 0.5, MaxGroupsContributed: 1}},
	{title: "Visits by hospital in 2025 (no public domain: DP partition selection)",
		sql:  "SELECT hospital_id, COUNT(*) AS visits FROM medical_visits WHERE visit_date >= DATE '2025-01-01' GROUP BY hospital_id",
		opts: plan.Options{Epsilon: 1, Delta: 1e-6, MaxGroupsContributed: 2, MaxContributionsPerGroup: 5}},
	{title: "Average, median and 90th percentile of cost per visit, by age band",
		sql:  "SELECT age_band, AVG(cost) AS mean_cost, MEDIAN(cost) AS median_cost, QUANTILE_CONT(cost, 0.9) AS p90_cost FROM medical_visits GROUP BY age_band ORDER BY age_band",
		opts: plan.Options{Epsilon: 1, MaxGroupsContributed: 1, MaxContributionsPerGroup: 5}},
	{title: "Visits and mean cost by income band (medical_visits joined with residents on person_id, bounded after the join)",
		sql:  "SELECT r.income_band, COUNT(*) AS visits, AVG(v.cost) AS mean_cost FROM medical_visits v JOIN residents r ON v.person_id = r.person_id GROUP BY r.income_band",
		opts: plan.Options{Epsilon: 1, MaxGroupsContributed: 1, MaxContributionsPerGroup: 5}},
	{title: "Persons by number of visits (a per-unit subquery counts each person's visits, clamped to 1..10; the histogram is DP)",
		sql:  "SELECT visits, COUNT(*) AS persons FROM (SELECT person_id, GREATEST(LEAST(COUNT(*), 10), 1) AS visits FROM medical_visits GROUP BY person_id) AS per_person GROUP BY visits ORDER BY visits",
		opts: plan.Options{Epsilon: 1, MaxGroupsContributed: 1, MaxContributionsPerGroup: 1}},
	{title: "The first query again, spelled differently (answered from its release: no budget spent)",
		sql:  "select district, count(*) as visits, sum(cost) as total_cost from medical_visits group by 1",
		opts: plan.Options{Epsilon: 1, MaxGroupsContributed: 1, MaxContributionsPerGroup: 5}},
	{title: "Attempt to read raw identifiers (must be refused)",
		sql: "SELECT person_id, cost FROM medical_visits WHERE cost > 40000"},
	{title: "Attempt to export a file (must be refused)",
		sql: "COPY medical_visits TO '/tmp/out.csv'"},
	{title: "Query on an L4 (不予开放) dataset (must be refused)",
		sql: "SELECT COUNT(*) FROM criminal_records"},
}

func runDemo(ctx context.Context, out io.Writer, datasetDir, dataDir, format string) error {
	r, err := buildDemo(ctx, datasetDir, dataDir)
	if err != nil {
		return err
	}
	if format == "json" {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	r.writeTable(out)
	return nil
}

func buildDemo(ctx context.Context, datasetDir, dataDir string) (*demoReport, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	specs, err := filepath.Glob(filepath.Join(datasetDir, "*.yaml"))
	if err != nil || len(specs) == 0 {
		return nil, fmt.Errorf("no catalog specs in %s (run from the repository root or pass --datasets)", datasetDir)
	}
	eng, err := engine.Open(ctx, engine.Config{DataDir: dataDir})
	if err != nil {
		return nil, err
	}
	defer eng.Close()
	r := &demoReport{DataDir: dataDir, PolicyBundle: eng.PolicyDigest(), Grant: "demo-insurer",
		Applicant: policy.Principal{Name: "insurer-1", Role: "applicant", Org: "acme-insurance"}}
	if r.Isolation, err = eng.Isolation(ctx, catalog.DefaultDomain); err != nil {
		return nil, err
	}
	for _, path := range specs {
		spec, err := catalog.LoadFile(path)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		d, err := eng.RegisterDataset(ctx, spec)
		if err != nil {
			return nil, fmt.Errorf("register %s: %w", spec.Name, err)
		}
		r.Datasets = append(r.Datasets, demoDataset{Name: spec.Name, Provider: spec.Provider, Grade: spec.Grade, Snapshot: d.Snapshot.Digest})
	}
	if err := eng.OpenGrant(ctx, r.Grant, ledger.Budget{Epsilon: 10, Delta: 1e-5}); err != nil {
		return nil, err
	}
	for _, s := range demoSteps {
		job := demoJob{Title: s.title, SQL: s.sql}
		out, err := eng.Run(ctx, engine.Job{Principal: r.Applicant, Grant: r.Grant, SQL: s.sql, Options: s.opts})
		if err == nil && out.Held != nil {
			job.Held = out.Held
			job.ReviewedBy, err = demoReview(ctx, eng, out)
		}
		if err != nil {
			pub := errcode.Public(err)
			job.Error = &pub
		} else {
			job.Result = out.Result
		}
		r.Jobs = append(r.Jobs, job)
	}
	accounts := []string{engine.GrantAccount(r.Grant)}
	for _, d := range eng.Datasets() {
		if !d.Spec.Public {
			accounts = append(accounts, engine.DatasetAccount(d.Spec.Name))
		}
	}
	for _, a := range accounts {
		b, err := eng.Balance(ctx, a)
		if err != nil {
			return nil, err
		}
		r.Budget = append(r.Budget, b)
	}
	rep, err := eng.VerifyLog()
	if err != nil || !rep.OK() {
		return nil, fmt.Errorf("provenance log does not verify: %v (%s at %d)", err, rep.Problem, rep.FirstBad)
	}
	r.Provenance = rep
	return r, nil
}

// demoReviewers are the operator-side reviewers of the demo: independent of the applicant
// and of each other, as a two-person review (双人复核) requires.
var demoReviewers = []policy.Principal{
	{Name: "rev-1", Role: "reviewer", Org: "platform"},
	{Name: "rev-2", Role: "reviewer", Org: "platform"},
}

// demoReview has as many demo reviewers as the hold asks for approve a held output, and
// releases it.
func demoReview(ctx context.Context, eng *engine.Engine, out *engine.Outcome) ([]string, error) {
	if out.Held.Reviewers > len(demoReviewers) {
		return nil, fmt.Errorf("the output needs %d reviewers; the demo has %d", out.Held.Reviewers, len(demoReviewers))
	}
	var names []string
	for _, rv := range demoReviewers[:out.Held.Reviewers] {
		if err := eng.RecordReview(ctx, out.Result.Job, engine.Review{Reviewer: rv, Approve: true, Reason: "aggregate bands only"}); err != nil {
			return nil, err
		}
		names = append(names, rv.Name)
	}
	return names, eng.ReleaseHeld(ctx, out.Result.Job, out.Held, out.Result, names)
}

func (r *demoReport) writeTable(out io.Writer) {
	fmt.Fprintf(out, "cleanroom demo — data dir %s\n\n", r.DataDir)
	fmt.Fprintf(out, "policy bundle %s (embedded default)\n", r.PolicyBundle)
	iso := r.Isolation
	fmt.Fprintf(out, "sandbox worker: network namespace=%v (interfaces %s), no_new_privs=%v, rlimit AS=%d GiB, CPU=%ds\n",
		iso.NetworkNamespace, strings.Join(iso.Interfaces, ","), iso.NoNewPrivs, iso.AddressSpace>>30, iso.CPUSeconds)
	for _, w := range iso.Warnings {
		fmt.Fprintf(out, "  warning: %s\n", w)
	}
	fmt.Fprintln(out, "\nregistered datasets (raw rows stay in the sandbox worker):")
	tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  name\tprovider\tgrade\tsnapshot")
	for _, d := range r.Datasets {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", d.Name, d.Provider, d.Grade, d.Snapshot[:23]+"…")
	}
	tw.Flush()
	fmt.Fprintf(out, "\ngrant %s for %s (%s): epsilon 10, delta 1e-5\n", r.Grant, r.Applicant.Org, r.Applicant.Name)
	for _, j := range r.Jobs {
		fmt.Fprintf(out, "\n== %s\n   %s\n", j.Title, j.SQL)
		if j.Error != nil {
			fmt.Fprintf(out, "   refused: %s — %s\n", j.Error.Code, j.Error.Message)
			continue
		}
		if j.Held != nil {
			fmt.Fprintf(out, "   held by egress review (%s); released after approval by %s\n", strings.Join(j.Held.Reasons, "; "), strings.Join(j.ReviewedBy, " and "))
		}
		printResult(out, j.Result)
	}
	fmt.Fprintln(out, "\nbudget:")
	tw = tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  account\tepsilon total\tspent\tremaining\tdelta spent")
	for _, b := range r.Budget {
		fmt.Fprintf(tw, "  %s\t%.3g\t%.3g\t%.3g\t%.3g\n", b.Account, b.Total.Epsilon, b.Spent.Epsilon, b.Remaining.Epsilon, b.Spent.Delta)
	}
	tw.Flush()
	fmt.Fprintf(out, "\nprovenance: %d records, hash chain verified, head %s\n", r.Provenance.Records, r.Provenance.Head)
}

func printResult(out io.Writer, r *engine.Result) {
	tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', tabwriter.AlignRight)
	var hdr []string
	for _, c := range r.Columns {
		if c.Kind == "group_key" {
			hdr = append(hdr, c.Name)
		} else {
			hdr = append(hdr, c.Name, "95% CI")
		}
	}
	fmt.Fprintln(tw, "   "+strings.Join(hdr, "\t")+"\t")
	for _, row := range r.Rows {
		var cells []string
		for _, c := range row {
			switch {
			case c.DP != nil:
				cells = append(cells, fmt.Sprintf("%.0f", c.DP.Value), fmt.Sprintf("[%.0f, %.0f]", c.DP.CILow, c.DP.CIHigh))
			case c.Key != nil:
				cells = append(cells, *c.Key)
			default:
				cells = append(cells, "NULL")
			}
		}
		fmt.Fprintln(tw, "   "+strings.Join(cells, "\t")+"\t")
	}
	tw.Flush()
	fmt.Fprintf(out, "   released job %s: %d rows; spent epsilon %.3g, delta %.3g (%s)\n   bounds: %s\n",
		r.Job, len(r.Rows), r.Spent.Epsilon, r.Spent.Delta, r.Split, r.Bounds)
}
