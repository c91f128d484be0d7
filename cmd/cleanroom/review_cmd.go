package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/c1b99f93/cleanroom/server/api"
)

func newReviewCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "review", Short: "Review results held by the egress policy (reviewers)"}
	f := addClientFlags(cmd)

	list := &cobra.Command{
		Use:     "list",
		Short:   "List held jobs with the results that wait for your decision",
		Example: "  cleanroom review list\n  cleanroom review list --json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			rs, err := c.Reviews(cmd.Context())
			if err != nil {
				return err
			}
			if f.asJSON() {
				return writeJSON(cmd.OutOrStdout(), rs)
			}
			return writeReviews(cmd.OutOrStdout(), rs.Reviews)
		},
	}

	var approveReason, rejectReason string
	approve := &cobra.Command{
		Use:     "approve JOB",
		Short:   "Approve a held result; it is released once enough reviewers approve",
		Example: "  cleanroom review approve j-1a2b\n  cleanroom review approve j-1a2b --reason \"groups are large enough\"",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			j, err := c.ApproveReview(cmd.Context(), args[0], approveReason)
			if err != nil {
				return err
			}
			if f.asJSON() {
				return writeJSON(cmd.OutOrStdout(), j)
			}
			return writeJob(cmd.OutOrStdout(), j)
		},
	}
	approve.Flags().StringVar(&approveReason, "reason", "", "why, shown to the applicant; never quote data values")

	reject := &cobra.Command{
		Use:     "reject JOB --reason TEXT",
		Short:   "Reject a held result; it is never released",
		Example: `  cleanroom review reject j-1a2b --reason "a district group is too small to publish"`,
		Args:    cobra.ExactArgs(1),
		PreRunE: requireReason(&rejectReason),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			j, err := c.RejectReview(cmd.Context(), args[0], rejectReason)
			if err != nil {
				return err
			}
			if f.asJSON() {
				return writeJSON(cmd.OutOrStdout(), j)
			}
			return writeJob(cmd.OutOrStdout(), j)
		},
	}
	reject.Flags().StringVar(&rejectReason, "reason", "", "why, shown to the applicant; never quote data values (required)")
	_ = reject.MarkFlagRequired("reason")

	cmd.AddCommand(list, approve, reject)
	return cmd
}

// writeReviews prints a summary line per held job, then each held result as a table.
func writeReviews(w io.Writer, items []api.ReviewItem) error {
	if len(items) == 0 {
		_, err := fmt.Fprintln(w, "no results wait for review")
		return err
	}
	tw := newTabWriter(w)
	fmt.Fprintln(tw, "JOB\tGRANT\tORG\tSUBMITTED BY\tAPPROVALS\tHELD BECAUSE")
	for _, it := range items {
		j := it.Job
		given, reasons := "-", "-"
		if r := j.Review; r != nil {
			given = fmt.Sprintf("%d/%d", approvals(r), r.Required)
			reasons = shorten(strings.Join(r.Reasons, "; "), 80)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", j.ID, j.Grant, j.Org, j.SubmittedBy, given, reasons)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, it := range items {
		sql := it.Job.SQL
		if it.Job.Model != nil {
			sql = it.Job.Model.SQL
		}
		fmt.Fprintf(w, "\n== job %s: %s\n", it.Job.ID, shorten(sql, 200))
		if len(it.Result) == 0 || string(it.Result) == "null" {
			fmt.Fprintln(w, "(no result attached)")
			continue
		}
		if it.Job.Kind == api.KindModel { // a held model: its coefficients are what is reviewed
			var m api.ModelResult
			if err := json.Unmarshal(it.Result, &m); err != nil {
				return fmt.Errorf("job %s: %w", it.Job.ID, err)
			}
			if err := writeModelResult(w, &m); err != nil {
				return err
			}
			continue
		}
		res, err := decodeResult(it.Result)
		if err != nil {
			return fmt.Errorf("job %s: %w", it.Job.ID, err)
		}
		if err := writeResultTable(w, res, "held for review"); err != nil {
			return err
		}
	}
	return nil
}
