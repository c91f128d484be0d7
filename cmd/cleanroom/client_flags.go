package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/c1b99f93/cleanroom/server/client"
)

// The client commands speak to a cleanroom server over its HTTP API (server/client). This file
// holds what they share: the --server/--token/--output flags and the output helpers.

// Environment variables the client flags fall back to.
const (
	envServer = "CLEANROOM_SERVER"
	envToken  = "CLEANROOM_TOKEN"
	envCA     = "CLEANROOM_CA"
)

// defaultServer is where `cleanroom serve` listens unless told otherwise.
const defaultServer = "http://127.0.0.1:8080"

// Output formats of the client commands; query adds csv and arrow (engine.Result.Write).
const (
	outputTable = "table"
	outputJSON  = "json"
	outputCSV   = "csv"
	outputArrow = "arrow"
)

// addClientCommands adds the command groups that speak to a server: dataset, application,
// grant, query, verify, job, review, budget and redteam, and audit (verify and show) unless root
// already has an audit command (newAuditCmd carries the server subcommands too).
func addClientCommands(root *cobra.Command) {
	root.AddCommand(newDatasetCmd(), newApplicationCmd(), newGrantCmd(), newQueryCmd(), newVerifyCmd(),
		newJobCmd(), newReviewCmd(), newBudgetCmd(), newRedteamCmd(), newModelCmd())
	for _, c := range root.Commands() {
		if c.Name() == "audit" {
			return
		}
	}
	root.AddCommand(newAuditCmd())
}

// clientFlags are the flags every client command shares. The token is never a flag default
// (that would print it in --help) and is never written to output or errors.
type clientFlags struct {
	server  string
	token   string
	ca      string // PEM file of the CA to trust for an https server
	output  string
	json    bool
	csv     bool
	formats []string // accepted --output values
}

// addClientFlags registers the shared flags as persistent flags of cmd (a group, so that every
// subcommand has them) and validates them before any subcommand runs. formats are the accepted
// --output values after table and json.
func addClientFlags(cmd *cobra.Command, formats ...string) *clientFlags {
	f := &clientFlags{formats: append([]string{outputTable, outputJSON}, formats...)}
	fs := cmd.PersistentFlags()
	fs.StringVar(&f.server, "server", "", "server URL (default $"+envServer+", else "+defaultServer+")")
	fs.StringVar(&f.token, "token", "", "bearer token (default $"+envToken+"; prefer the variable: flags show in ps)")
	fs.StringVar(&f.ca, "ca", "", "PEM file of the certificate authority to trust for an https server (default $"+envCA+"; default: the system's)")
	fs.StringVarP(&f.output, "output", "o", outputTable, "output format: "+strings.Join(f.formats, ", "))
	fs.BoolVar(&f.json, "json", false, "shorthand for --output json")
	if slices.Contains(formats, outputCSV) {
		fs.BoolVar(&f.csv, "csv", false, "shorthand for --output csv")
	}
	cmd.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error { return f.resolveOutput(cmd) }
	return f
}

// resolveOutput folds --json and --csv into output and checks it.
func (f *clientFlags) resolveOutput(cmd *cobra.Command) error {
	explicit := cmd.Flags().Changed("output")
	for _, s := range []struct {
		set    bool
		format string
	}{{f.json, outputJSON}, {f.csv, outputCSV}} {
		if !s.set {
			continue
		}
		if explicit && f.output != s.format {
			return fmt.Errorf("--%s contradicts --output %s", s.format, f.output)
		}
		f.output, explicit = s.format, true
	}
	if !slices.Contains(f.formats, f.output) {
		return fmt.Errorf("--output must be one of %s, not %q", strings.Join(f.formats, ", "), f.output)
	}
	return nil
}

// serverURL is the configured server: the flag first, then the environment, then the default.
func (f *clientFlags) serverURL() string {
	if f.server != "" {
		return f.server
	}
	if s := os.Getenv(envServer); s != "" {
		return s
	}
	return defaultServer
}

// client returns a client of the configured server: the flags first, then the environment.
func (f *clientFlags) client() (*client.Client, error) {
	server := f.serverURL()
	token := f.token
	if token == "" {
		token = os.Getenv(envToken)
	}
	if token == "" {
		return nil, errors.New("no token: set " + envToken + " (or pass --token)")
	}
	var opts []client.Option
	ca := f.ca
	if ca == "" {
		ca = os.Getenv(envCA)
	}
	if ca != "" {
		pem, err := os.ReadFile(ca)
		if err != nil {
			return nil, fmt.Errorf("--ca: %w", err)
		}
		opts = append(opts, client.WithCA(pem))
	}
	return client.New(server, token, opts...)
}

// asJSON reports whether the command prints JSON.
func (f *clientFlags) asJSON() bool { return f.output == outputJSON }

// writeJSON writes v as indented JSON: the API documents, unchanged.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func newTabWriter(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 4, 2, ' ', 0) }

// field is one line of a "key  value" block.
type field struct{ key, value string }

// writeFields prints non-empty fields as an aligned two-column block.
func writeFields(w io.Writer, fields []field) error {
	tw := newTabWriter(w)
	for _, f := range fields {
		if f.value != "" {
			fmt.Fprintf(tw, "%s\t%s\n", f.key, f.value)
		}
	}
	return tw.Flush()
}

// fmtFloat is the shortest text that reads back as v: 1, 0.5, 1e-06.
func fmtFloat(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

// fmtNum prints a released value or interval for people: whole numbers whole, others with a
// few significant digits.
func fmtNum(v float64) string {
	a := math.Abs(v)
	switch {
	case math.IsNaN(v) || math.IsInf(v, 0):
		return fmtFloat(v)
	case v == math.Trunc(v) && a < 1e15:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case a >= 1000:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case a >= 100:
		return strconv.FormatFloat(v, 'f', 1, 64)
	case a >= 1:
		return strconv.FormatFloat(v, 'f', 2, 64)
	default:
		return strconv.FormatFloat(v, 'g', 3, 64)
	}
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

func fmtPeriod(start, end time.Time) string {
	return fmtTime(start) + " → " + fmtTime(end)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// shorten cuts s to n runes with an ellipsis, on one line.
func shorten(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// requireReason is the PreRunE of a command that must say why (a rejection): --reason is
// required and may not be blank.
func requireReason(reason *string) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, _ []string) error {
		if err := cmd.ValidateRequiredFlags(); err != nil {
			return err
		}
		if strings.TrimSpace(*reason) == "" {
			return errors.New("--reason must not be empty")
		}
		return nil
	}
}
