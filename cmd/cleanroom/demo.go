package main

import (
	"context"
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
	"github.com/c1b99f93/cleanroom/policy"
)

func newDemoCmd() *cobra.Command {
	var datasets, dataDir string
	var keep bool
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run the flagship scenario end to end on the committed test data",
		Long: `demo starts a temporary platform (engine and a sandboxed worker), registers the
committed synthetic datasets, and runs the medical-insurance scenario: DP statistics by district
and age band, a refused attempt to read identifiers, the remaining budget, and a check of the
provenance log.`,
		Example: "  cleanroom demo\n  cleanroom demo --datasets testdata/datasets --keep",
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
			return runDemo(cmd.Context(), cmd.OutOrStdout(), datasets, dataDir)
		},
	}
	cmd.Flags().StringVar(&datasets, "datasets", "testdata/datasets", "directory of catalog specs (*.yaml) and their data")
	cmd.Flags().StringVar(&dataDir, "data-dir", "", "platform data directory (default: a temporary one)")
	cmd.Flags().BoolVar(&keep, "keep", false, "keep the temporary data directory for inspection")
	return cmd
}

type demoStep struct {
	title string
	sql   string
	opts  plan.Options
}

func runDemo(ctx context.Context, out io.Writer, datasetDir, dataDir string) error {
	if ctx == nil {
		ctx = context.Background()
	}
	fmt.Fprintf(out, "cleanroom demo — data dir %s\n\n", dataDir)
	eng, err := engine.Open(ctx, engine.Config{DataDir: dataDir})
	if err != nil {
		return err
	}
	defer eng.Close()
	fmt.Fprintf(out, "policy bundle %s (embedded default)\n", eng.PolicyDigest())

	iso, err := eng.Isolation(ctx, catalog.DefaultDomain)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "sandbox worker: network namespace=%v (interfaces %s), no_new_privs=%v, rlimit AS=%d GiB, CPU=%ds\n",
		iso.NetworkNamespace, strings.Join(iso.Interfaces, ","), iso.NoNewPrivs, iso.AddressSpace>>30, iso.CPUSeconds)
	for _, w := range iso.Warnings {
		fmt.Fprintf(out, "  warning: %s\n", w)
	}

	specs, err := filepath.Glob(filepath.Join(datasetDir, "*.yaml"))
	if err != nil || len(specs) == 0 {
		return fmt.Errorf("no catalog specs in %s (run from the repository root or pass --datasets)", datasetDir)
	}
	fmt.Fprintln(out, "\nregistered datasets (raw rows stay in the sandbox worker):")
	tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  name\tprovider\tgrade\tsnapshot")
	for _, path := range specs {
		spec, err := catalog.LoadFile(path)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		d, err := eng.RegisterDataset(ctx, spec)
		if err != nil {
			return fmt.Errorf("register %s: %w", spec.Name, err)
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", spec.Name, spec.Provider, spec.Grade, d.Snapshot.Digest[:23]+"…")
	}
	tw.Flush()

	const grant = "demo-insurer"
	if err := eng.OpenGrant(ctx, grant, ledger.Budget{Epsilon: 10, Delta: 1e-5}); err != nil {
		return err
	}
	who := policy.Principal{Name: "insurer-1", Role: "applicant", Org: "acme-insurance"}
	fmt.Fprintf(out, "\ngrant %s for %s (%s): epsilon 10, delta 1e-5\n", grant, who.Org, who.Name)

	steps := []demoStep{
		{title: "Visits and total cost by district (public partitions)",
			sql:  "SELECT district, COUNT(*) AS visits, SUM(cost) AS total_cost FROM medical_visits GROUP BY district",
			opts: plan.Options{Epsilon: 1, MaxGroupsContributed: 1, MaxContributionsPerGroup: 5}},
		{title: "Persons with an inpatient visit, by age band",
			sql:  "SELECT age_band, COUNT(DISTINCT person_id) AS persons FROM medical_visits WHERE inpatient GROUP BY age_band",
			opts: plan.Options{Epsilon: 0.5, MaxGroupsContributed: 1}},
		{title: "Claims by hospital (no public domain: DP partition selection)",
			sql:  "SELECT hospital_id, COUNT(*) AS visits FROM medical_visits WHERE visit_date >= DATE '2025-01-01' GROUP BY hospital_id",
			opts: plan.Options{Epsilon: 1, Delta: 1e-6, MaxGroupsContributed: 2, MaxContributionsPerGroup: 5}},
		{title: "Attempt to read raw identifiers (must be refused)",
			sql: "SELECT person_id, cost FROM medical_visits WHERE cost > 40000"},
		{title: "Attempt to export a file (must be refused)",
			sql: "COPY medical_visits TO '/tmp/out.csv'"},
		{title: "Query on an L4 (不予开放) dataset (must be refused)",
			sql: "SELECT COUNT(*) FROM criminal_records"},
	}
	for _, s := range steps {
		fmt.Fprintf(out, "\n== %s\n   %s\n", s.title, s.sql)
		res, err := eng.Submit(ctx, engine.Job{Principal: who, Grant: grant, SQL: s.sql, Options: s.opts})
		if err != nil {
			pub := errcode.Public(err)
			fmt.Fprintf(out, "   refused: %s — %s\n", pub.Code, pub.Message)
			continue
		}
		printResult(out, res)
	}

	fmt.Fprintln(out, "\nbudget:")
	tw = tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  account\tepsilon total\tspent\tremaining\tdelta spent")
	accounts := []string{engine.GrantAccount(grant)}
	for _, d := range eng.Datasets() {
		accounts = append(accounts, engine.DatasetAccount(d.Spec.Name))
	}
	for _, a := range accounts {
		b, err := eng.Balance(ctx, a)
		if err != nil {
			return err
		}
		fmt.Fprintf(tw, "  %s\t%.3g\t%.3g\t%.3g\t%.3g\n", a, b.Total.Epsilon, b.Spent.Epsilon, b.Remaining.Epsilon, b.Spent.Delta)
	}
	tw.Flush()

	rep, err := eng.VerifyLog()
	if err != nil || !rep.OK() {
		return fmt.Errorf("provenance log does not verify: %v (%s at %d)", err, rep.Problem, rep.FirstBad)
	}
	fmt.Fprintf(out, "\nprovenance: %d records, hash chain verified, head %s\n", rep.Records, rep.Head)
	return nil
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
