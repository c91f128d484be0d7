package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/c1b99f93/cleanroom/server/api"
	"github.com/c1b99f93/cleanroom/server/client"
)

func newGrantCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "grant", Short: "Show grants; suspend, resume or revoke them (operators)"}
	f := addClientFlags(cmd)

	show := &cobra.Command{
		Use:     "show ID",
		Short:   "Show a grant and its budget",
		Example: "  cleanroom grant show g-1a2b\n  cleanroom grant show g-1a2b --json",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			g, err := c.Grant(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return writeGrant(cmd.OutOrStdout(), f, g)
		},
	}

	list := &cobra.Command{
		Use:     "list",
		Short:   "List the grants you may see",
		Example: "  cleanroom grant list\n  cleanroom grant list --json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			gs, err := c.Grants(cmd.Context())
			if err != nil {
				return err
			}
			if f.asJSON() {
				return writeJSON(cmd.OutOrStdout(), gs)
			}
			tw := newTabWriter(cmd.OutOrStdout())
			fmt.Fprintln(tw, "ID\tSTATE\tORG\tDATASETS\tKINDS\tEND\tEPSILON SPENT/TOTAL\tDELTA SPENT/TOTAL")
			for _, g := range gs.Grants {
				b := g.Budget
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s/%s\t%s/%s\n", g.ID, g.State, g.Org,
					strings.Join(g.Datasets, ","), strings.Join(g.JobKinds, ","), fmtTime(g.End),
					fmtFloat(b.EpsilonSpent), fmtFloat(b.EpsilonTotal), fmtFloat(b.DeltaSpent), fmtFloat(b.DeltaTotal))
			}
			return tw.Flush()
		},
	}

	cmd.AddCommand(show, list,
		newGrantActionCmd(f, "suspend", "Suspend a grant: no new jobs until it is resumed",
			(*client.Client).SuspendGrant),
		newGrantActionCmd(f, "resume", "Resume a suspended grant", (*client.Client).ResumeGrant),
		newGrantActionCmd(f, "revoke", "Revoke a grant for good; results held for review are withheld",
			(*client.Client).RevokeGrant))
	return cmd
}

// newGrantActionCmd is suspend, resume or revoke: one POST with an optional reason.
func newGrantActionCmd(f *clientFlags, verb, short string,
	act func(*client.Client, context.Context, string, string) (*api.Grant, error)) *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use:   verb + " ID",
		Short: short,
		Example: fmt.Sprintf("  cleanroom grant %s g-1a2b\n  cleanroom grant %s g-1a2b --reason \"audit in progress\"",
			verb, verb),
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			g, err := act(c, cmd.Context(), args[0], reason)
			if err != nil {
				return err
			}
			return writeGrant(cmd.OutOrStdout(), f, g)
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why, kept in the audit log")
	return cmd
}

func writeGrant(w io.Writer, f *clientFlags, g *api.Grant) error {
	if f.asJSON() {
		return writeJSON(w, g)
	}
	b := g.Budget
	return writeFields(w, []field{
		{"id", g.ID},
		{"state", g.State},
		{"org", g.Org},
		{"application", g.Application},
		{"purpose", g.Purpose},
		{"scenario", g.Scenario},
		{"datasets", strings.Join(g.Datasets, ", ")},
		{"job kinds", strings.Join(g.JobKinds, ", ")},
		{"period", fmtPeriod(g.Start, g.End)},
		{"epsilon", fmt.Sprintf("%s spent of %s (%.6g left)", fmtFloat(b.EpsilonSpent), fmtFloat(b.EpsilonTotal),
			max(b.EpsilonTotal-b.EpsilonSpent, 0))},
		{"delta", fmt.Sprintf("%s spent of %s", fmtFloat(b.DeltaSpent), fmtFloat(b.DeltaTotal))},
		{"created", fmtTime(g.CreatedAt)},
		{"updated", fmtTime(g.UpdatedAt)},
	})
}
