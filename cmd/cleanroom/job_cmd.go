package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/c1b99f93/cleanroom/server/api"
	"github.com/c1b99f93/cleanroom/server/client"
)

func newJobCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "job", Short: "Show submitted jobs and their results"}
	f := addClientFlags(cmd)

	var wait time.Duration
	show := &cobra.Command{
		Use:   "show ID",
		Short: "Show a job: its state, error or review, and its result once released",
		Long: `show prints a job. --wait long-polls: the server answers as soon as the job leaves queued or
running, or after the wait, whichever is first.`,
		Example: "  cleanroom job show j-1a2b\n  cleanroom job show j-1a2b --wait 30s\n  cleanroom job show j-1a2b --json",
		Args:    cobra.ExactArgs(1),
		PreRunE: func(*cobra.Command, []string) error {
			if wait < 0 {
				return errors.New("--wait must not be negative")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			j, err := c.Job(cmd.Context(), args[0], wait)
			if err != nil {
				return err
			}
			if f.asJSON() {
				return writeJSON(cmd.OutOrStdout(), j)
			}
			return writeJob(cmd.OutOrStdout(), j)
		},
	}
	show.Flags().DurationVar(&wait, "wait", 0, "wait up to this long for the job to finish (e.g. 30s)")

	list := &cobra.Command{
		Use:     "list",
		Short:   "List the jobs you may see",
		Example: "  cleanroom job list\n  cleanroom job list --json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			js, err := c.Jobs(cmd.Context())
			if err != nil {
				return err
			}
			if f.asJSON() {
				return writeJSON(cmd.OutOrStdout(), js)
			}
			tw := newTabWriter(cmd.OutOrStdout())
			fmt.Fprintln(tw, "ID\tSTATE\tGRANT\tKIND\tSUBMITTED BY\tCREATED\tERROR\tSQL")
			for _, j := range js.Jobs {
				code := ""
				if j.Error != nil {
					code = j.Error.Code
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", j.ID, j.State, j.Grant, j.Kind, j.SubmittedBy,
					fmtTime(j.CreatedAt), orDash(code), shorten(j.SQL, 50))
			}
			return tw.Flush()
		},
	}
	cmd.AddCommand(show, list)
	return cmd
}

// writeJob prints a job for people, with its released result as a table.
func writeJob(w io.Writer, j *api.Job) error {
	o := j.Options
	delta := ""
	if o.Delta != nil {
		delta = fmtFloat(*o.Delta)
	}
	var opts []string
	for _, p := range []struct {
		name string
		set  bool
		v    string
	}{
		{"epsilon", o.Epsilon != 0, fmtFloat(o.Epsilon)},
		{"delta", o.Delta != nil, delta},
		{"max_groups_contributed", o.MaxGroupsContributed != 0, fmt.Sprint(o.MaxGroupsContributed)},
		{"max_contributions_per_group", o.MaxContributionsPerGroup != 0, fmt.Sprint(o.MaxContributionsPerGroup)},
	} {
		if p.set {
			opts = append(opts, p.name+"="+p.v)
		}
	}
	fields := []field{
		{"id", j.ID},
		{"state", j.State},
		{"grant", j.Grant},
		{"org", j.Org},
		{"submitted by", j.SubmittedBy},
		{"kind", j.Kind},
		{"sql", shorten(j.SQL, 200)},
		{"options", strings.Join(opts, " ")},
		{"datasets", strings.Join(j.Datasets, ", ")},
		{"created", fmtTime(j.CreatedAt)},
		{"updated", fmtTime(j.UpdatedAt)},
	}
	if e := j.Error; e != nil {
		fields = append(fields, field{"error", e.Code + ": " + e.Message})
	}
	if r := j.Review; r != nil {
		fields = append(fields, field{"review", fmt.Sprintf("%d approval(s) needed, %d given", r.Required, approvals(r))})
		for _, reason := range r.Reasons {
			fields = append(fields, field{"  held because", reason})
		}
		for _, x := range r.Reviews {
			v := fmt.Sprintf("%s by %s (%s) at %s", x.Decision, x.Reviewer, x.Org, fmtTime(x.At))
			if x.Reason != "" {
				v += ": " + x.Reason
			}
			fields = append(fields, field{"  review", v})
		}
	}
	if err := writeFields(w, fields); err != nil {
		return err
	}
	if e := j.Error; e != nil && e.Position != nil {
		if x := sqlCaret(j.SQL, *e.Position); x != "" {
			fmt.Fprintln(w, x)
		}
	}
	if j.State != api.JobReleased || len(j.Result) == 0 {
		return nil
	}
	if j.Kind == api.KindVerify {
		// Ciphertexts only the applicant's key opens: "verify check" decrypts them.
		var v api.VerifyResult
		if err := json.Unmarshal(j.Result, &v); err != nil {
			return fmt.Errorf("job %s: the verification's answer does not decode: %w", j.ID, err)
		}
		fmt.Fprintln(w)
		for _, b := range v.Batches {
			fmt.Fprintf(w, "%s.%s: %d checks answered in %d ciphertext(s) (%s); decrypt with cleanroom verify check\n",
				b.Dataset, b.Attribute, b.Checks, len(b.Ciphertexts), v.ParameterSet)
		}
		return nil
	}
	if j.Kind == api.KindWasm {
		m, err := client.WasmResult(j)
		if err != nil {
			return fmt.Errorf("job %s: the custom model's output does not decode: %w", j.ID, err)
		}
		fmt.Fprintln(w)
		return writeWasmResult(w, m)
	}
	if j.Kind == api.KindModel {
		m, err := client.ModelResult(j)
		if err != nil {
			return fmt.Errorf("job %s: the model does not decode: %w", j.ID, err)
		}
		fmt.Fprintln(w)
		return writeModelResult(w, m)
	}
	res, err := decodeResult(j.Result)
	if err != nil {
		return fmt.Errorf("job %s: %w", j.ID, err)
	}
	fmt.Fprintln(w)
	return writeResultTable(w, res, "released")
}
