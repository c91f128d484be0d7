package main

import (
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/c1b99f93/cleanroom/server/api"
)

func newApplicationCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "application",
		Aliases: []string{"app"},
		Short:   "Apply for a grant; approve or reject applications (operators)",
	}
	f := addClientFlags(cmd)
	cmd.AddCommand(newApplicationNewCmd(f), newApplicationApproveCmd(f), newApplicationRejectCmd(f),
		newApplicationListCmd(f), newApplicationShowCmd(f))
	return cmd
}

func newApplicationNewCmd(f *clientFlags) *cobra.Command {
	var req api.ApplicationRequest
	cmd := &cobra.Command{
		Use:   "new",
		Short: "Apply for a grant: purpose, datasets, period and privacy budget",
		Long: `new submits an application for a grant. Start and end are RFC 3339 times or dates
(YYYY-MM-DD); a date as end means the end of that day (UTC). Start defaults to now.`,
		Example: `  cleanroom application new --purpose "claims analysis by district" --scenario insurance \
    --datasets medical_visits,residents --end 2026-12-31 --epsilon 5 --delta 1e-6
  cleanroom application new --purpose "..." --scenario research --datasets medical_visits --start 2026-01-01 \
    --end 2026-06-30 --epsilon 1 --kinds sql --json`,
		Args: cobra.NoArgs,
		PreRunE: func(cmd *cobra.Command, _ []string) error {
			// cobra checks required flags only after PreRunE; name a missing flag first.
			if err := cmd.ValidateRequiredFlags(); err != nil {
				return err
			}
			if req.Start == "" {
				req.Start = time.Now().UTC().Format(time.RFC3339)
			}
			for _, s := range []struct{ name, value string }{{"start", req.Start}, {"end", req.End}} {
				if _, err := parseWhen(s.value); err != nil {
					return fmt.Errorf("--%s: %w", s.name, err)
				}
			}
			if err := checkBudget(req.Epsilon, req.Delta); err != nil {
				return err
			}
			if len(req.Datasets) == 0 || slicesHasEmpty(req.Datasets) {
				return errors.New("--datasets: name at least one dataset, comma-separated")
			}
			for _, k := range req.JobKinds {
				switch k {
				case api.KindSQL, api.KindVerify, api.KindModel:
				default:
					return fmt.Errorf("--kinds: unknown job kind %q (want %s, %s or %s)", k, api.KindSQL, api.KindVerify, api.KindModel)
				}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			a, err := c.CreateApplication(cmd.Context(), req)
			if err != nil {
				return err
			}
			return writeApplication(cmd.OutOrStdout(), f, a)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&req.Purpose, "purpose", "", "what the results are for (required)")
	fl.StringVar(&req.Scenario, "scenario", "", "the application scenario (required)")
	fl.StringSliceVar(&req.Datasets, "datasets", nil, "datasets the grant covers, comma-separated (required)")
	fl.StringVar(&req.Start, "start", "", "start of the period: RFC 3339 time or YYYY-MM-DD (default now)")
	fl.StringVar(&req.End, "end", "", "end of the period: RFC 3339 time or YYYY-MM-DD, inclusive (required)")
	fl.Float64Var(&req.Epsilon, "epsilon", 0, "privacy budget epsilon for the whole grant (required)")
	fl.Float64Var(&req.Delta, "delta", 0, "privacy budget delta for the whole grant")
	fl.StringSliceVar(&req.JobKinds, "kinds", []string{api.KindSQL}, "job kinds the grant allows: sql, verify, federated_sql, model")
	for _, name := range []string{"purpose", "scenario", "datasets", "end", "epsilon"} {
		_ = cmd.MarkFlagRequired(name)
	}
	return cmd
}

func newApplicationApproveCmd(f *clientFlags) *cobra.Command {
	var epsilon, delta float64
	var end string
	cmd := &cobra.Command{
		Use:   "approve ID",
		Short: "Approve an application, creating its grant (operators)",
		Long: `approve turns a pending application into a grant. --epsilon, --delta and --end may lower the
budget or end the period earlier than applied for, never widen them.`,
		Example: "  cleanroom application approve app-1a2b\n  cleanroom application approve app-1a2b --epsilon 2 --end 2026-06-30",
		Args:    cobra.ExactArgs(1),
		PreRunE: func(cmd *cobra.Command, _ []string) error {
			if cmd.Flags().Changed("end") {
				if _, err := parseWhen(end); err != nil {
					return fmt.Errorf("--end: %w", err)
				}
			}
			if cmd.Flags().Changed("epsilon") && !(epsilon > 0 && !math.IsInf(epsilon, 0)) {
				return errors.New("--epsilon must be a positive finite number")
			}
			if cmd.Flags().Changed("delta") && !(delta >= 0 && delta < 1) {
				return errors.New("--delta must be in [0, 1)")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			var req api.ApproveRequest
			if cmd.Flags().Changed("epsilon") {
				req.Epsilon = &epsilon
			}
			if cmd.Flags().Changed("delta") {
				req.Delta = &delta
			}
			req.End = end
			c, err := f.client()
			if err != nil {
				return err
			}
			ok, err := c.ApproveApplication(cmd.Context(), args[0], req)
			if err != nil {
				return err
			}
			if f.asJSON() {
				return writeJSON(cmd.OutOrStdout(), ok)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "application %s approved: grant %s\n", args[0], ok.GrantID)
			return err
		},
	}
	cmd.Flags().Float64Var(&epsilon, "epsilon", 0, "lower the grant's epsilon")
	cmd.Flags().Float64Var(&delta, "delta", 0, "lower the grant's delta")
	cmd.Flags().StringVar(&end, "end", "", "end the period earlier: RFC 3339 time or YYYY-MM-DD")
	return cmd
}

func newApplicationRejectCmd(f *clientFlags) *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use:     "reject ID --reason TEXT",
		Short:   "Reject an application (operators)",
		Example: `  cleanroom application reject app-1a2b --reason "purpose does not justify L3 data"`,
		Args:    cobra.ExactArgs(1),
		PreRunE: requireReason(&reason),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			a, err := c.RejectApplication(cmd.Context(), args[0], reason)
			if err != nil {
				return err
			}
			return writeApplication(cmd.OutOrStdout(), f, a)
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why, shown to the applicant (required)")
	_ = cmd.MarkFlagRequired("reason")
	return cmd
}

func newApplicationListCmd(f *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:     "list",
		Short:   "List the applications you may see",
		Example: "  cleanroom application list\n  cleanroom application list --json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			as, err := c.Applications(cmd.Context())
			if err != nil {
				return err
			}
			if f.asJSON() {
				return writeJSON(cmd.OutOrStdout(), as)
			}
			tw := newTabWriter(cmd.OutOrStdout())
			fmt.Fprintln(tw, "ID\tSTATE\tORG\tAPPLICANT\tDATASETS\tEPSILON\tDELTA\tEND\tGRANT\tPURPOSE")
			for _, a := range as.Applications {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", a.ID, a.State, a.Org, a.Applicant,
					strings.Join(a.Datasets, ","), fmtFloat(a.Epsilon), fmtFloat(a.Delta), fmtTime(a.End),
					orDash(a.Grant), shorten(a.Purpose, 40))
			}
			return tw.Flush()
		},
	}
}

func newApplicationShowCmd(f *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:     "show ID",
		Short:   "Show one application",
		Example: "  cleanroom application show app-1a2b",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			a, err := c.Application(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return writeApplication(cmd.OutOrStdout(), f, a)
		},
	}
}

func writeApplication(w io.Writer, f *clientFlags, a *api.Application) error {
	if f.asJSON() {
		return writeJSON(w, a)
	}
	decided := ""
	if a.DecidedAt != nil {
		decided = fmt.Sprintf("by %s at %s", orDash(a.DecidedBy), fmtTime(*a.DecidedAt))
	}
	return writeFields(w, []field{
		{"id", a.ID},
		{"state", a.State},
		{"org", a.Org},
		{"applicant", a.Applicant},
		{"purpose", a.Purpose},
		{"scenario", a.Scenario},
		{"datasets", strings.Join(a.Datasets, ", ")},
		{"period", fmtPeriod(a.Start, a.End)},
		{"budget", fmt.Sprintf("epsilon %s, delta %s", fmtFloat(a.Epsilon), fmtFloat(a.Delta))},
		{"job kinds", strings.Join(a.JobKinds, ", ")},
		{"created", fmtTime(a.CreatedAt)},
		{"decided", decided},
		{"reason", a.Reason},
		{"grant", a.Grant},
	})
}

// parseWhen accepts what the API accepts for a period bound: an RFC 3339 time or a date.
func parseWhen(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("%q is neither an RFC 3339 time nor a date (YYYY-MM-DD)", s)
}

// checkBudget refuses budgets no grant can have, before asking the server.
func checkBudget(epsilon, delta float64) error {
	if !(epsilon > 0) || math.IsInf(epsilon, 0) {
		return errors.New("--epsilon must be a positive finite number")
	}
	if !(delta >= 0 && delta < 1) {
		return errors.New("--delta must be in [0, 1)")
	}
	return nil
}

func slicesHasEmpty(xs []string) bool {
	for _, x := range xs {
		if strings.TrimSpace(x) == "" {
			return true
		}
	}
	return false
}
