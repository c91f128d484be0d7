package main

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/c1b99f93/cleanroom/server/api"
	"github.com/c1b99f93/cleanroom/server/client"
	"github.com/c1b99f93/cleanroom/server/redteam"
)

// envOperatorToken is the operator's token for --record (prefer it to the flag: flags show in ps).
const envOperatorToken = "CLEANROOM_OPERATOR_TOKEN"

// redteamOutput is what --json prints: the report, its SHA-256 (of the report as json.Marshal
// encodes it, as provenance records it) and, with --record, the provenance record.
type redteamOutput struct {
	Report   *redteam.Report      `json:"report"`
	SHA256   string               `json:"report_sha256"`
	Recorded *api.RedteamRecorded `json:"recorded,omitempty"`
}

func newRedteamCmd() *cobra.Command {
	var (
		cfg                     redteam.Config
		attacks, truthDir, opTk string
		record                  bool
	)
	cmd := &cobra.Command{
		Use:   "redteam --grant GRANT",
		Short: "Attack a grant as its applicant would and report what the known attacks recover",
		Long: `redteam runs the known attacks against a live server through a grant, with the applicant's token,
exactly as a malicious applicant would: averaging, differencing, tracker, small-group isolation,
identifier exfiltration and Dinur–Nissim reconstruction (see docs/redteam.md). For each it reports
the jobs released, held and refused (by code), whether it was blocked, the budget it cost, the
attacker's estimate and its noise against what the attack needs.

--truth-dir points at the raw datasets (their catalog specs and sources, e.g. the provider's copy
inside the data domain); the tool reads them locally only to score each attack against a baseline
guess, and to scan every answer for raw identifier values. Without it scoring is skipped.

--record sends the report's summary and SHA-256 with an operator's token (--operator-token or
$` + envOperatorToken + `) to POST /v1/grants/{id}/redteam, which records it in provenance.

The command fails (exit status 1) when any attack recovered more than its baseline beyond its
margin, or any raw identifier value was seen, so operators can script it before approving a grant.
The attacks spend the grant's budget: run it on a test grant.`,
		Example: `  CLEANROOM_TOKEN=$APPLICANT cleanroom redteam --grant grant-1a2b --truth-dir testdata/datasets
  CLEANROOM_TOKEN=$APPLICANT CLEANROOM_OPERATOR_TOKEN=$OPERATOR \
    cleanroom redteam --grant grant-1a2b --attacks averaging,reconstruction --epsilon 0.2 --max-jobs 80 --record --json`,
		Args: cobra.NoArgs,
		PreRunE: func(cmd *cobra.Command, _ []string) error {
			if err := cmd.ValidateRequiredFlags(); err != nil {
				return err
			}
			switch {
			case cfg.Epsilon < 0 || math.IsNaN(cfg.Epsilon) || math.IsInf(cfg.Epsilon, 0):
				return errors.New("--epsilon must be a finite number ≥ 0 (0: the tool's default)")
			case cfg.MaxJobs < 0:
				return errors.New("--max-jobs must be ≥ 0 (0: the tool's default)")
			}
			if attacks != "" {
				cfg.Attacks = strings.Split(attacks, ",")
			}
			if opTk == "" {
				opTk = os.Getenv(envOperatorToken)
			}
			if record && opTk == "" {
				return errors.New("--record needs an operator's token: set " + envOperatorToken + " (or pass --operator-token)")
			}
			return nil
		},
	}
	f := addClientFlags(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		c, err := f.client()
		if err != nil {
			return err
		}
		ctx := cmd.Context()
		if truthDir != "" {
			if cfg.Truth, err = redteam.LoadTruth(ctx, truthDir); err != nil {
				return err
			}
		}
		rep, err := redteam.Run(ctx, c, cfg)
		if err != nil {
			return err
		}
		summary, err := rep.Summary()
		if err != nil {
			return err
		}
		out := redteamOutput{Report: rep, SHA256: summary.ReportSHA256}
		if record {
			op, err := client.New(f.serverURL(), opTk)
			if err != nil {
				return err
			}
			if out.Recorded, err = op.RecordRedteam(ctx, cfg.Grant, summary); err != nil {
				return fmt.Errorf("record the report: %w", err)
			}
		}
		if f.asJSON() {
			err = writeJSON(cmd.OutOrStdout(), out)
		} else {
			err = writeRedteam(cmd.OutOrStdout(), out)
		}
		if err != nil {
			return err
		}
		return redteamVerdict(rep)
	}
	fl := cmd.Flags()
	fl.StringVar(&cfg.Grant, "grant", "", "the grant to attack, as its applicant (required)")
	fl.StringVar(&attacks, "attacks", "", "attacks to run, comma-separated (default all: "+strings.Join(redteam.AttackNames(), ",")+")")
	fl.Float64Var(&cfg.Epsilon, "epsilon", 0, fmt.Sprintf("epsilon each job asks for (default %g)", redteam.DefaultEpsilon))
	fl.IntVar(&cfg.MaxJobs, "max-jobs", 0, fmt.Sprintf("most jobs the whole run submits (default %d)", redteam.DefaultMaxJobs))
	fl.Uint64Var(&cfg.Seed, "seed", redteam.DefaultSeed, "seed of the attacker's own choices (targets, subsets)")
	fl.StringVar(&truthDir, "truth-dir", "", "folder of the raw datasets' catalog specs (*.yaml), read locally only to score")
	fl.BoolVar(&record, "record", false, "record the report's summary in provenance (needs an operator's token)")
	fl.StringVar(&opTk, "operator-token", "", "operator's token for --record (default $"+envOperatorToken+"; prefer the variable)")
	_ = cmd.MarkFlagRequired("grant")
	return cmd
}

// redteamVerdict fails when any attack recovered more than its baseline beyond its margin.
func redteamVerdict(rep *redteam.Report) error {
	if bad := rep.Exceeded(); len(bad) > 0 {
		return fmt.Errorf("recovered more than the baseline: %s", strings.Join(bad, ", "))
	}
	return nil
}

func writeRedteam(w io.Writer, out redteamOutput) error {
	rep := out.Report
	scored := "no: " + rep.Note
	if rep.Scored {
		scored = "yes, against the raw data"
		if rep.IdentifierLeaks != nil {
			scored += fmt.Sprintf("; raw identifier values seen in answers: %d", *rep.IdentifierLeaks)
		}
	}
	fields := []field{
		{"grant", rep.Grant},
		{"dataset", rep.Dataset},
		{"jobs", fmt.Sprintf("%d at epsilon %s each (seed %d)", rep.Jobs, fmtFloat(rep.EpsilonPerJob), rep.Seed)},
		{"spent", fmt.Sprintf("epsilon %.6g, delta %.6g", rep.Spent.Epsilon, rep.Spent.Delta)},
		{"scored", scored},
		{"report sha256", out.SHA256},
	}
	if r := out.Recorded; r != nil {
		fields = append(fields, field{"recorded", fmt.Sprintf("%s, provenance record %d", r.ID, r.Index)})
	}
	if err := writeFields(w, fields); err != nil {
		return err
	}
	fmt.Fprintln(w)
	tw := newTabWriter(w)
	fmt.Fprintln(tw, "ATTACK\tJOBS\tRELEASED\tHELD\tREFUSED\tBLOCKED\tEPSILON\tNOISE/NEED\tSCORE\tBASELINE+MARGIN\tVERDICT")
	for _, a := range rep.Attacks {
		score, base, verdict := "-", "-", "not scored"
		if s := a.Score; s != nil {
			score, base, verdict = fmtNum(s.Attack), fmtNum(s.Baseline)+"+"+fmtNum(s.Margin), "ok"
			if s.Exceeds() {
				verdict = "EXCEEDS"
			}
		}
		noise := "-"
		if a.Need > 0 && a.Noise > 0 {
			noise = "±" + fmtNum(a.Noise) + "/±" + fmtNum(a.Need)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%v\t%s\t%s\t%s\t%s\t%s\n", a.Name, a.Jobs, a.Released, a.Held, refusedCount(a),
			a.Blocked, fmtNum(a.Cost.Epsilon), noise, score, base, verdict)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, a := range rep.Attacks {
		fmt.Fprintf(w, "\n%s: %s\n  %s\n", a.Name, a.Summary, a.Estimate)
		if len(a.HeldFor) > 0 {
			fmt.Fprintf(w, "  held for review: %s\n", strings.Join(a.HeldFor, ", "))
		}
		if len(a.Refused) > 0 {
			fmt.Fprintf(w, "  refused: %s\n", fmtCodes(a.Refused))
		}
		if a.SuppressedRows > 0 {
			fmt.Fprintf(w, "  small-group rows withheld: %d\n", a.SuppressedRows)
		}
		if a.Skipped > 0 {
			fmt.Fprintf(w, "  not submitted (--max-jobs reached): %d\n", a.Skipped)
		}
		if a.Why != "" {
			fmt.Fprintf(w, "  blocked: %s\n", a.Why)
		}
		if a.Score != nil {
			fmt.Fprintf(w, "  score: %s\n", a.Score.Metric)
		}
	}
	return nil
}

func refusedCount(a redteam.Attack) int {
	n := 0
	for _, c := range a.Refused {
		n += c
	}
	return n
}

func fmtCodes(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s ×%d", k, m[k])
	}
	return strings.Join(parts, ", ")
}
