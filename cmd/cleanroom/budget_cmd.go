package main

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/c1b99f93/cleanroom/server/api"
	"github.com/c1b99f93/cleanroom/server/client"
)

func newBudgetCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "budget", Short: "Show a grant's or a dataset's privacy budget"}
	f := addClientFlags(cmd)

	var grant, dataset string
	show := &cobra.Command{
		Use:   "show (--grant GRANT | --dataset DATASET)",
		Short: "Show an account's balance, per-job history and accounting",
		Long: `show prints a budget account: its total, what it has allocated, what its jobs spent
(reservations of running jobs count as spent), what remains, its allocations, each job's charge,
and beside the basic composition the ledger enforces, a tighter bound over the same charges (for
information).

A grant's budget is carved out of each of its datasets' lifetime budgets when it is approved: a
dataset shows what it has allocated to grants and what it has left to allocate ("remaining"); a
grant shows its allocation ("total"), what its jobs spent and what remains. A revoked or expired
grant gives back what it never spent when the operator's policy says so ("returned").`,
		Example: "  cleanroom budget show --grant g-1a2b\n  cleanroom budget show --dataset medical_visits --json",
		Args:    cobra.NoArgs,
		PreRunE: func(*cobra.Command, []string) error {
			if (grant == "") == (dataset == "") {
				return errors.New("give exactly one of --grant and --dataset")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			kind, name := client.BudgetGrant, grant
			if dataset != "" {
				kind, name = client.BudgetDataset, dataset
			}
			c, err := f.client()
			if err != nil {
				return err
			}
			rep, err := c.Budget(cmd.Context(), kind, name)
			if err != nil {
				return err
			}
			if f.asJSON() {
				return writeJSON(cmd.OutOrStdout(), rep)
			}
			return writeBudget(cmd.OutOrStdout(), rep)
		},
	}
	show.Flags().StringVar(&grant, "grant", "", "the grant's budget")
	show.Flags().StringVar(&dataset, "dataset", "", "the dataset's lifetime budget (providers, operators)")
	cmd.AddCommand(show)
	return cmd
}

func fmtBudget(b api.Budget) string {
	return fmt.Sprintf("epsilon %.6g, delta %.6g", b.Epsilon, b.Delta)
}

func writeBudget(w io.Writer, rep *api.BudgetReport) error {
	b, a := rep.Balance, rep.Tighter
	accounting := fmt.Sprintf("basic epsilon %.6g; tighter epsilon %.6g at delta %.6g (%s, %d events)",
		a.Basic.Epsilon, a.Tighter.Epsilon, a.Tighter.Delta, orDash(a.Method), a.Events)
	if err := writeFields(w, []field{
		{"account", b.Account},
		{"total", fmtBudget(b.Total)},
		{"allocated to grants", fmtBudget(b.Allocated)},
		{"spent", fmtBudget(b.Spent)},
		{"reserved", fmtBudget(b.Reserved)},
		{"remaining", fmtBudget(b.Remaining)},
		{"accounting", accounting},
	}); err != nil {
		return err
	}
	if len(rep.Allocations) > 0 {
		fmt.Fprintln(w)
		tw := newTabWriter(w)
		fmt.Fprintln(tw, "GRANT	DATASET	EPSILON	DELTA	RETURNED EPSILON	RETURNED DELTA	CLOSED	CREATED")
		for _, a := range rep.Allocations {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", strings.TrimPrefix(a.Holder, "grant:"), strings.TrimPrefix(a.Source, "dataset:"),
				fmtFloat(a.Amount.Epsilon), fmtFloat(a.Amount.Delta), fmtFloat(a.Returned.Epsilon), fmtFloat(a.Returned.Delta),
				orDash(a.Closed), fmtTime(a.CreatedAt))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if len(rep.History) == 0 {
		_, err := fmt.Fprintln(w, "\nno jobs charged")
		return err
	}
	fmt.Fprintln(w)
	tw := newTabWriter(w)
	fmt.Fprintln(tw, "JOB\tSTATE\tEPSILON\tDELTA\tCREATED\tREASON")
	for _, e := range rep.History {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", e.Job, e.State, fmtFloat(e.Cost.Epsilon), fmtFloat(e.Cost.Delta),
			fmtTime(e.CreatedAt), orDash(e.Reason))
	}
	return tw.Flush()
}
