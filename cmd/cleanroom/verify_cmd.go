package main

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/c1b99f93/cleanroom/he/verify"
	"github.com/c1b99f93/cleanroom/server/client"
)

// loadOrPinKeys loads the pinned key pair in dir or, when dir holds only candidates, pins one
// on grant by the key cut-and-choose, saves its key pair and deletes the spent seeds.
func loadOrPinKeys(ctx context.Context, c *client.Client, grant, dir string) (*verify.Client, error) {
	keys, err := verify.LoadKeys(dir)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		if err != nil {
			return nil, fmt.Errorf("load the keys in %s: %w", dir, err)
		}
		return keys, nil
	}
	cands, err := verify.LoadKeyCandidates(dir)
	if err != nil {
		return nil, fmt.Errorf("load the keys in %s (run verify keygen first): %w", dir, err)
	}
	k, err := c.PinVerifyKey(ctx, grant, cands)
	if err != nil {
		return nil, err
	}
	if err := k.Client().Save(dir); err != nil {
		return nil, err
	}
	if err := os.Remove(filepath.Join(dir, verify.CandidatesFile)); err != nil {
		return nil, err
	}
	return k.Client(), nil
}

func newVerifyCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "verify", Short: "Verify customers' declared facts against authoritative records, under homomorphic encryption (核验)"}

	var out string
	var candidates int
	keygen := &cobra.Command{
		Use:   "keygen --out KEYDIR",
		Short: "Make the applicant's verification key candidates",
		Long: `keygen makes K candidate BGV key pairs (` + verify.ParameterSet + `, 128-bit security) in
KEYDIR, each determined by a 32-byte seed kept in ` + verify.CandidatesFile + ` (mode 0600). The
first "verify check" on a grant pins one of them by cut-and-choose: it commits to all K public
keys, the platform draws which one is pinned, and the other K−1 seeds are opened for the
platform to rebuild (a malformed key is caught with probability 1 − 1/K). The pinned key's
secret key is then written to KEYDIR (mode 0600) and never leaves this machine; the opened
seeds are deleted. K must be at least the operator's verify_key_candidates (16 shipped). Use
one key directory per grant.`,
		Example: "  cleanroom verify keygen --out ~/.cleanroom/verify-keys",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cands, err := verify.GenerateKeyCandidates(candidates)
			if err != nil {
				return err
			}
			if err := verify.SaveKeyCandidates(out, cands); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%d key candidates written to %s; the first verification on a grant pins one\n", len(cands), out)
			return nil
		},
	}
	keygen.Flags().StringVar(&out, "out", "", "the key directory to write (created with mode 0700)")
	keygen.Flags().IntVar(&candidates, "candidates", 16, "how many candidate keys to make (at least the policy's verify_key_candidates)")
	_ = keygen.MarkFlagRequired("out")

	var grant, keyDir, input, output, consent string
	var perJob int
	check := &cobra.Command{
		Use:   "check --grant GRANT --keys KEYDIR --input claims.csv --out results.csv",
		Short: "Check declared facts: match or no match per row, and nothing else",
		Long: `check reads claims.csv — a header and the columns dataset, subject, attribute, claimed, and
optionally consent — encrypts each claimed value under the key in KEYDIR, has the platform
compare it with the authoritative record, decrypts the answers here, and writes the rows to
--out with a last column match (true or false). The platform never sees a claimed value; this
side learns per row whether the record agrees, nothing else. A subject without a record, or
with no single value, does not match.

Each row carries a consent or contract reference (the consent column, or --consent for rows
without one); the platform keeps it only as a keyed hash. The operator's policy limits how
often one fact (a subject's attribute) may be checked (by default once per 30 days): rows
that ask again are refused, not answered. Verifiable attributes are listed by
"cleanroom dataset show NAME"; a banded attribute is claimed by its band's number.`,
		Example: `  cleanroom verify check --grant g-1a2b --keys ~/.cleanroom/verify-keys --input claims.csv --out results.csv
  # claims.csv:
  # dataset,subject,attribute,claimed,consent
  # residents,530102198001010017,income_band,middle,policy-2026-0001
  # enterprises,91530100MA6K0001X1,registered_capital_band,1,contract-77`,
		Args: cobra.NoArgs,
		PreRunE: func(*cobra.Command, []string) error {
			if perJob < 0 {
				return errors.New("--per-job must be ≥ 0 (0: the default)")
			}
			return nil
		},
	}
	f := addClientFlags(check)
	check.Flags().StringVar(&grant, "grant", "", "the grant to verify under (its job kinds include verify)")
	check.Flags().StringVar(&keyDir, "keys", "", "the key directory made by verify keygen")
	check.Flags().StringVar(&input, "input", "", "the claims CSV (- for stdin)")
	check.Flags().StringVar(&output, "out", "", "the results CSV to write (- for stdout)")
	check.Flags().StringVar(&consent, "consent", "", "the consent or contract reference of rows without a consent column")
	check.Flags().IntVar(&perJob, "per-job", 0, "claims per verification job (0: the default, 65536)")
	for _, name := range []string{"grant", "keys", "input", "out"} {
		_ = check.MarkFlagRequired(name)
	}
	check.RunE = func(cmd *cobra.Command, _ []string) error {
		c, err := f.client()
		if err != nil {
			return err
		}
		keys, err := loadOrPinKeys(cmd.Context(), c, grant, keyDir)
		if err != nil {
			return err
		}
		in := cmd.InOrStdin()
		if input != "-" {
			file, err := os.Open(input)
			if err != nil {
				return err
			}
			defer file.Close()
			in = file
		}
		header, rows, claims, err := readClaims(in, consent)
		if err != nil {
			return err
		}
		start := time.Now()
		rep, err := c.Verify(cmd.Context(), grant, keys, claims, perJob)
		if err != nil {
			return err
		}
		took := time.Since(start)
		w := cmd.OutOrStdout()
		if output != "-" {
			file, err := os.OpenFile(output, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
			if err != nil {
				return err
			}
			defer file.Close()
			w = file
		}
		cw := csv.NewWriter(w)
		_ = cw.Write(append(header, "match"))
		matched := 0
		for i, r := range rows {
			if rep.Matches[i] {
				matched++
			}
			_ = cw.Write(append(r, fmt.Sprint(rep.Matches[i])))
		}
		cw.Flush()
		if err := cw.Error(); err != nil {
			return err
		}
		msg := fmt.Sprintf("%d of %d claims matched; %d verification job(s): %s; %.1f s (%.0f checks/s)",
			matched, len(claims), len(rep.Jobs), strings.Join(rep.Jobs, ", "), took.Seconds(), float64(len(claims))/took.Seconds())
		if output == "-" {
			fmt.Fprintln(cmd.ErrOrStderr(), msg)
		} else {
			fmt.Fprintln(cmd.OutOrStdout(), msg)
		}
		return nil
	}
	cmd.AddCommand(keygen, check)
	return cmd
}

// readClaims reads a claims CSV: the header, the rows as read, and the claims.
func readClaims(r io.Reader, defaultConsent string) ([]string, [][]string, []client.Claim, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	header, err := cr.Read()
	if err != nil {
		return nil, nil, nil, fmt.Errorf("claims CSV: no header: %w", err)
	}
	col := map[string]int{}
	for i, h := range header {
		col[strings.ToLower(strings.TrimSpace(h))] = i
	}
	for _, need := range []string{"dataset", "subject", "attribute", "claimed"} {
		if _, ok := col[need]; !ok {
			return nil, nil, nil, fmt.Errorf("claims CSV: the header has no %s column (it needs dataset, subject, attribute, claimed and optionally consent)", need)
		}
	}
	ci, hasConsent := col["consent"]
	var rows [][]string
	var claims []client.Claim
	for line := 2; ; line++ {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, nil, nil, fmt.Errorf("claims CSV: %w", err)
		}
		if len(rec) != len(header) {
			return nil, nil, nil, fmt.Errorf("claims CSV line %d: %d fields, the header has %d", line, len(rec), len(header))
		}
		cl := client.Claim{Dataset: rec[col["dataset"]], Subject: rec[col["subject"]], Attribute: rec[col["attribute"]],
			Claimed: rec[col["claimed"]], Consent: defaultConsent}
		if hasConsent && strings.TrimSpace(rec[ci]) != "" {
			cl.Consent = rec[ci]
		}
		if strings.TrimSpace(cl.Consent) == "" {
			return nil, nil, nil, fmt.Errorf("claims CSV line %d: no consent or contract reference (a consent column, or --consent)", line)
		}
		rows = append(rows, slices.Clone(rec))
		claims = append(claims, cl)
	}
	if len(claims) == 0 {
		return nil, nil, nil, errors.New("claims CSV: no claims")
	}
	return header, rows, claims, nil
}
