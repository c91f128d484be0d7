package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/c1b99f93/cleanroom/engine"
	"github.com/c1b99f93/cleanroom/engine/provenance"
	"github.com/c1b99f93/cleanroom/errcode"
	"github.com/c1b99f93/cleanroom/server/api"
)

func newAuditCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "audit", Short: "Verify and inspect the provenance log"}
	f := addClientFlags(cmd)
	var dataDir string
	var pubkey, archive string
	verify := &cobra.Command{
		Use:   "verify",
		Short: "Check the provenance log: hash chain, Merkle tree and every signed checkpoint",
		Long: `verify checks the provenance log. Offline on the files under --data-dir: the hash chain,
and with --pubkey (the platform's verifier key, kept out of band; a file or the key text) the
RFC 6962 tree and every signed checkpoint. Offline on an exported archive with --archive and
--pubkey: no server, no data. Without either, by asking the server (GET /v1/audit/verify).
Any problem is an error naming the first bad index.`,
		Example: "  cleanroom audit verify --data-dir /var/lib/cleanroom --pubkey platform.pub\n" +
			"  cleanroom audit verify --archive audit-2026.tar --pubkey platform.pub\n" +
			"  cleanroom audit verify --server https://cleanroom.example:8443 --json",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			key, err := readKey(pubkey)
			if err != nil {
				return err
			}
			if archive != "" {
				if key == "" {
					return fmt.Errorf("--archive needs --pubkey: an archive is checked only against a key you hold")
				}
				rep, err := provenance.VerifyArchive(archive, key)
				if f.asJSON() {
					if werr := writeJSON(cmd.OutOrStdout(), rep); werr != nil {
						return werr
					}
				}
				if rep.Problem != "" {
					return fmt.Errorf("archive does not verify: %s at index %d", rep.Problem, rep.FirstBad)
				}
				if err != nil {
					return err
				}
				if !f.asJSON() {
					fmt.Fprintf(cmd.OutOrStdout(), "archive ok: entries [%d, %d) are in the signed checkpoint of size %d (root %s)\n",
						rep.From, rep.To, rep.CheckpointSize, rep.Root)
				}
				return nil
			}
			var rep api.VerifyReport
			if dataDir != "" {
				logPath := filepath.Join(dataDir, "provenance.log")
				var local provenance.VerifyReport
				if key != "" {
					local, err = provenance.VerifyAll(logPath, key)
				} else {
					local, err = provenance.Verify(logPath)
				}
				rep = api.VerifyReport(local)
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
				switch {
				case rep.Root != "":
					fmt.Fprintf(cmd.OutOrStdout(), "merkle tree root %s; %d signed checkpoint(s) verified\n", rep.Root, rep.Checkpoints)
				case dataDir != "":
					fmt.Fprintln(cmd.OutOrStdout(), "hash chain only: give --pubkey to verify the tree and the signed checkpoints")
				}
			}
			return nil
		},
	}
	verify.Flags().StringVar(&dataDir, "data-dir", "", "the platform's data directory (offline check; default: ask the server)")
	verify.Flags().StringVar(&pubkey, "pubkey", "", "the platform's verifier key: a file holding it, or the key text")
	verify.Flags().StringVar(&archive, "archive", "", "verify an exported archive offline (needs --pubkey)")

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
	pub := &cobra.Command{
		Use:     "pubkey",
		Short:   "Print the platform's public verifier key (keep it out of band)",
		Example: "  cleanroom audit pubkey > platform.pub",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			k, err := c.PublicKey(cmd.Context())
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), k)
			return nil
		},
	}
	checkpoint := &cobra.Command{
		Use:     "checkpoint",
		Short:   "Print the latest signed checkpoint of the log (a C2SP signed note)",
		Example: "  cleanroom audit checkpoint > checkpoint.txt",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			note, err := c.Checkpoint(cmd.Context())
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(note)
			return err
		},
	}
	var from, to uint64
	export := &cobra.Command{
		Use:   "export OUT",
		Short: "Export log entries [from, to) as a self-verifying archive (offline, from the data directory)",
		Long: `export writes entries [--from, --to) of the provenance log under --data-dir, with a signed
checkpoint that covers them, their inclusion proofs and the verifier key, into one archive file
for long retention. Check it anywhere with: cleanroom audit verify --archive OUT --pubkey KEY.`,
		Example: "  cleanroom audit export --data-dir /var/lib/cleanroom --from 0 --to 5000 audit-2026.tar",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if dataDir == "" {
				return fmt.Errorf("export reads the log files: give --data-dir")
			}
			if err := provenance.Export(filepath.Join(dataDir, "provenance.log"), from, to, args[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "exported entries [%d, %d) to %s\n", from, to, args[0])
			return nil
		},
	}
	export.Flags().StringVar(&dataDir, "data-dir", "", "the platform's data directory")
	export.Flags().Uint64Var(&from, "from", 0, "first entry index")
	export.Flags().Uint64Var(&to, "to", 0, "one past the last entry index")
	cmd.AddCommand(verify, show, replay, pub, checkpoint, export, newReceiptCmd())
	return cmd
}

// readKey reads a verifier key given as a file or as the key text ("" stays "").
func readKey(arg string) (string, error) {
	if arg == "" {
		return "", nil
	}
	if _, err := os.Stat(arg); err != nil {
		return strings.TrimSpace(arg), nil // not a file: the key itself
	}
	b, err := os.ReadFile(arg)
	if err != nil {
		return "", fmt.Errorf("--pubkey: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

func newReceiptCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "receipt", Short: "Release receipts"}
	var result, pubkey string
	verify := &cobra.Command{
		Use:   "verify RECEIPT",
		Short: "Check a release receipt offline with the platform's public key",
		Long: `verify checks, with the public key only (no server, no data), that the receipt is signed by
the platform, that its release record is in the log under a signed checkpoint, and with --result
that the result file (the released result as JSON) is exactly the output released.`,
		Example: "  cleanroom audit receipt verify job-1a2b.receipt --result job-1a2b.json --pubkey platform.pub",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			key, err := readKey(pubkey)
			if err != nil {
				return err
			}
			if key == "" {
				return fmt.Errorf("--pubkey is required")
			}
			receipt, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			var res []byte
			if result != "" {
				if res, err = os.ReadFile(result); err != nil {
					return err
				}
			}
			body, err := engine.VerifyReceipt(receipt, res, key)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "receipt ok: job %s on grant %s was released with output digest %s\n", body.Job, body.Grant, body.OutputDigest)
			fmt.Fprintf(w, "  spent epsilon %g, delta %g; release record %d is in the signed log\n", body.Spent.Epsilon, body.Spent.Delta, body.LogIndex)
			if len(body.Reviewers) > 0 {
				fmt.Fprintf(w, "  approved by %s\n", strings.Join(body.Reviewers, ", "))
			}
			if result != "" {
				fmt.Fprintln(w, "  the result file is exactly the released output")
			} else {
				fmt.Fprintln(w, "  (no --result given: the output itself was not compared)")
			}
			return nil
		},
	}
	verify.Flags().StringVar(&result, "result", "", "the released result (JSON) to compare with the receipt")
	verify.Flags().StringVar(&pubkey, "pubkey", "", "the platform's verifier key: a file holding it, or the key text")
	cmd.AddCommand(verify)
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
		// Every record is read through the event registry: a type or version this build does
		// not know, or data that is not its type's, is shown as such, never guessed at.
		r, err := provenance.Entry(e).Decode()
		if err != nil {
			fmt.Fprintf(tw, "%d\t\t(unreadable record: %s)\t\n", e.Index, errcode.Of(err))
			continue
		}
		data, err := provenance.Canonical(r.Event)
		if err != nil {
			data = nil
		}
		typ := r.Type
		if r.Version != 1 {
			typ = fmt.Sprintf("%s/v%d", r.Type, r.Version)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", e.Index, r.Time.UTC().Format("2006-01-02 15:04:05.000"), typ, summarize(data))
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
