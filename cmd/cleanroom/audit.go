package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/c1b99f93/cleanroom/engine/provenance"
	"github.com/c1b99f93/cleanroom/server/api"
)

func newAuditCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "audit", Short: "Verify and inspect the provenance log"}
	f := addClientFlags(cmd)
	var dataDir string
	verify := &cobra.Command{
		Use:   "verify",
		Short: "Check the provenance log's hash chain",
		Long: `verify checks the provenance log's hash chain: offline on the log file under --data-dir,
or, without --data-dir, by asking the server (GET /v1/audit/verify). A broken chain is an error.`,
		Example: "  cleanroom audit verify --data-dir /var/lib/cleanroom\n" +
			"  cleanroom audit verify --server https://cleanroom.example:8443\n" +
			"  cleanroom audit verify --json",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var rep provenance.VerifyReport
			if dataDir != "" {
				var err error
				rep, err = provenance.Verify(filepath.Join(dataDir, "provenance.log"))
				if err != nil && rep.OK() {
					return err
				}
			} else {
				c, err := f.client()
				if err != nil {
					return err
				}
				r, err := c.VerifyAudit(cmd.Context())
				if err != nil {
					return err
				}
				rep = *r
			}
			if f.asJSON() {
				if err := writeJSON(cmd.OutOrStdout(), rep); err != nil {
					return err
				}
			}
			if !rep.OK() {
				return fmt.Errorf("provenance log is corrupt: %s at record %d", rep.Problem, rep.FirstBad)
			}
			if !f.asJSON() {
				fmt.Fprintf(cmd.OutOrStdout(), "provenance log ok: %d records, head %s\n", rep.Records, rep.Head)
			}
			return nil
		},
	}
	verify.Flags().StringVar(&dataDir, "data-dir", "", "the platform's data directory (offline check; default: ask the server)")

	show := &cobra.Command{
		Use:   "show JOB",
		Short: "Show a job's provenance records as a timeline",
		Long: `show asks the server for every provenance record of a job and prints them in log order:
index, time, record type and a short summary of the record's data (--json for the records).`,
		Example: "  cleanroom audit show j-1a2b\n  cleanroom audit show j-1a2b --json",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			aj, err := c.AuditJob(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if f.asJSON() {
				return writeJSON(cmd.OutOrStdout(), aj)
			}
			return writeAuditTimeline(cmd.OutOrStdout(), aj)
		},
	}
	replay := &cobra.Command{
		Use:   "replay JOB",
		Short: "Replay a job from its provenance and report each stage as match or mismatch",
		Long: `replay asks the server to re-run a job from its records: the snapshots it read must still be
registered with their digests, the policy bundle that decided is loaded by digest and the recorded
inputs re-evaluated, the recorded worker plan is re-run and the keyed digest of its pre-noise
aggregates compared. DP noise is never drawn again. A mismatch makes the command fail.`,
		Example: "  cleanroom audit replay job-1a2b\n  cleanroom audit replay job-1a2b --json",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			rep, err := c.Replay(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if f.asJSON() {
				if err := writeJSON(cmd.OutOrStdout(), rep); err != nil {
					return err
				}
			} else {
				tw := newTabWriter(cmd.OutOrStdout())
				fmt.Fprintln(tw, "STAGE\tRESULT\tDETAIL")
				for _, s := range rep.Stages {
					fmt.Fprintf(tw, "%s\t%s\t%s\n", s.Stage, s.Result, s.Detail)
				}
				if err := tw.Flush(); err != nil {
					return err
				}
			}
			if !rep.Match {
				return fmt.Errorf("replay of %s does not match its provenance", rep.Job)
			}
			return nil
		},
	}
	cmd.AddCommand(verify, show, replay)
	return cmd
}

// writeAuditTimeline prints one line per record: index, time, type, summary.
func writeAuditTimeline(w io.Writer, aj *api.AuditJob) error {
	if len(aj.Records) == 0 {
		_, err := fmt.Fprintf(w, "no provenance records for job %s\n", aj.Job)
		return err
	}
	tw := newTabWriter(w)
	fmt.Fprintln(tw, "INDEX\tTIME\tTYPE\tSUMMARY")
	for _, e := range aj.Records {
		var r struct {
			Type string          `json:"type"`
			Time time.Time       `json:"time"`
			Data json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal(e.Record, &r); err != nil {
			fmt.Fprintf(tw, "%d\t\t(unreadable record)\t\n", e.Index)
			continue
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", e.Index, r.Time.UTC().Format("2006-01-02 15:04:05.000"), r.Type, summarize(r.Data))
	}
	return tw.Flush()
}

// summaryFirst are the data keys a reader looks for first, in this order; the rest follow
// sorted. summarySkip are bulky keys (the policy input, the worker plan) left to --json.
var (
	summaryFirst = []string{"result", "reasons", "code", "message", "approve", "reviewer", "reason", "grant",
		"principal", "dataset", "sql", "cost", "accounts", "rows", "rows_released", "released", "reviewers",
		"duration_ms", "output_digest"}
	summarySkip = []string{"input", "worker_plan", "options", "snapshots", "aggregates", "bundle_digest",
		"pre_noise_digest", "public_partitions", "split"}
)

// summarize renders a record's data as a short key=value line.
func summarize(data json.RawMessage) string {
	if len(data) == 0 {
		return ""
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return "(unreadable data)"
	}
	m, ok := v.(map[string]any)
	if !ok {
		return shorten(summaryValue(v), 120)
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		if !slices.Contains(summarySkip, k) && !slices.Contains(summaryFirst, k) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range append(slices.Clone(summaryFirst), keys...) {
		x, ok := m[k]
		if !ok || x == nil {
			continue
		}
		if s := summaryValue(x); s != "" {
			parts = append(parts, k+"="+s)
		}
	}
	return shorten(strings.Join(parts, " "), 160)
}

func summaryValue(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return shorten(x, 60)
	case json.Number, bool:
		return fmt.Sprint(x)
	case []any:
		if len(x) == 0 {
			return "[]"
		}
		var items []string
		for _, e := range x {
			switch e.(type) {
			case map[string]any, []any:
				return fmt.Sprintf("[%d items]", len(x))
			}
			items = append(items, summaryValue(e))
		}
		return shorten(strings.Join(items, ","), 60)
	case map[string]any:
		if name, ok := x["name"].(string); ok { // a principal
			return name
		}
		keys := make([]string, 0, len(x))
		for k, e := range x {
			switch e.(type) {
			case map[string]any, []any:
				return "{…}"
			}
			keys = append(keys, k)
		}
		if len(keys) > 4 {
			return "{…}"
		}
		sort.Strings(keys)
		var items []string
		for _, k := range keys {
			items = append(items, k+"="+summaryValue(x[k]))
		}
		return "{" + strings.Join(items, " ") + "}"
	}
	return fmt.Sprint(v)
}
