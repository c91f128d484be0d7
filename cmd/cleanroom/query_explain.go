package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/c1b99f93/cleanroom/server/api"
)

// runExplain asks the server for a job's dry run (POST /v1/explain) and prints it. It is
// free: nothing is read, reserved or queued.
func runExplain(cmd *cobra.Command, f *clientFlags, req api.JobRequest) error {
	c, err := f.client()
	if err != nil {
		return err
	}
	x, err := c.Explain(cmd.Context(), req)
	if err != nil {
		return withSQLPosition(err, req.SQL)
	}
	if f.asJSON() {
		return writeJSON(cmd.OutOrStdout(), x)
	}
	return writeExplanation(cmd.OutOrStdout(), x)
}

// writeExplanation prints a dry run for people: the policy's decision and the cost first
// (what decides whether to run it), then each aggregate's mechanism, noise and expected
// error, then partitions and bounds.
func writeExplanation(w io.Writer, x *api.Explanation) error {
	decision := x.Policy.Result
	if x.Policy.Reviewers > 0 {
		decision += fmt.Sprintf(" (%d reviewer(s))", x.Policy.Reviewers)
	}
	fmt.Fprintf(w, "dry run on %s: nothing was read, reserved or queued\n", x.Dataset)
	fmt.Fprintf(w, "policy:     %s\n", decision)
	for _, r := range x.Policy.Reasons {
		fmt.Fprintf(w, "  reason: %s\n", r)
	}
	if x.AnsweredFromRelease != "" {
		fmt.Fprintf(w, "cost:       none — job %s released the same query on this grant, and its answer would be returned\n", x.AnsweredFromRelease)
	} else {
		fmt.Fprintf(w, "cost:       epsilon %s, delta %s\n", fmtFloat(x.Cost.Epsilon), fmtFloat(x.Cost.Delta))
	}
	for _, b := range x.Budget {
		fmt.Fprintf(w, "  %s has epsilon %s, delta %s left\n", b.Account, fmtFloat(b.Remaining.Epsilon), fmtFloat(b.Remaining.Delta))
	}
	fmt.Fprintln(w)
	tw := newTabWriter(w)
	fmt.Fprintln(tw, "AGGREGATE\tMECHANISM\tEPSILON\tDELTA\tNOISE σ\tEXPECTED 95% ERROR PER CELL")
	for _, a := range x.Aggregates {
		var sigmas []string
		for _, c := range a.Components {
			sigmas = append(sigmas, fmtNum(c.NoiseScale))
		}
		expected := "see below"
		if a.ExpectedError != nil {
			expected = "±" + fmtNum(*a.ExpectedError)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", a.Name, a.Mechanism, fmtFloat(a.Epsilon), fmtFloat(a.Delta),
			orDash(strings.Join(sigmas, ", ")), expected)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, a := range x.Aggregates {
		if a.Note != "" {
			fmt.Fprintf(w, "  %s: %s\n", a.Name, a.Note)
		}
	}
	fmt.Fprintf(w, "\npartitions: %s\n", x.Partitions)
	fmt.Fprintf(w, "bounds:     %s\n", x.Bounds)
	fmt.Fprintf(w, "            %s\n", x.BoundsChoice)
	if x.Split != "" {
		fmt.Fprintf(w, "budget split: %s\n", x.Split)
	}
	return nil
}
