package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/c1b99f93/cleanroom/catalog"
	"github.com/c1b99f93/cleanroom/engine/ledger"
	"github.com/c1b99f93/cleanroom/engine/provenance"
	"github.com/c1b99f93/cleanroom/errcode"
	"github.com/c1b99f93/cleanroom/he/verify"
	"github.com/c1b99f93/cleanroom/policy"
	"github.com/c1b99f93/cleanroom/sandbox/wire"
	"github.com/c1b99f93/cleanroom/server/api"
)

// KindVerify is the kind of a verification job (核验): encrypted claims about persons checked
// against a dataset's verifiable attributes (he/verify). It spends no privacy budget — each
// check answers one exact question about one person — so it is governed by count instead:
// checks per job (the access policy), per fact and period and per grant and day (the ledger,
// all or none), one applicant key per grant, and never an identifier.
const KindVerify = "verify"

// MaxVerifyChecks bounds one verification job whatever the policy says: the request is held
// in memory whole, and every check is one row of the ledger.
const MaxVerifyChecks = 1 << 20

// verifyState is what a verification job's stages read and write.
type verifyState struct {
	req       *api.VerifyRequest
	attrs     []catalog.VerifyAttribute // per batch
	checks    int
	keyDigest string
	// combined are, per batch, the ciphertexts the domain evaluates: each closed share plus
	// the opened shares' plaintexts (openClaims).
	combined [][][]byte
	answers  [][][]byte // per batch
	result   *api.VerifyResult
}

// verifyStages is the verification job's pipeline. The package doc and docs/architecture.md
// list it (TestStagesAreDocumented).
func verifyStages() []stage {
	return []stage{
		{name: "submit", dryRun: true, run: verifySubmitStage, records: events(&provenance.JobSubmitted{}),
			doc: "record the job: per batch its dataset, attribute, number of checks and ciphertext digests, never a subject or a claim"},
		{name: "claims", dryRun: true, run: claimsStage, records: events(&provenance.VerifyOpened{}, &provenance.VerifySuspended{}),
			doc: "resolve each batch's dataset within the grant and its declared verifiable attribute; the ciphertexts must carry the checks; open the claims commitment: every opened share must rebuild its digest (else the grant's verification is suspended), the domain gets each closed share plus the opened shares' plaintexts"},
		{name: "policy_access", dryRun: true, run: verifyAccessStage, records: events(&provenance.PolicyAccess{}), replay: replayAccess,
			doc: "ask the access policy (kind verify, the number of checks); an L4 dataset is never operated"},
		{name: "reserve", reaches: phaseReserved, run: reserveChecksStage, records: events(&provenance.BudgetReserved{}, &provenance.ChecksReserved{}),
			doc: "count the checks against the limits per fact and period and per grant and day, all or none; the key must be the grant's pinned key, and the claims commitment becomes used"},
		{name: "worker", run: workerStage,
			doc: "start the domain's sandbox worker"},
		{name: "answer", enters: phaseReading, run: answerStage, records: events(&provenance.ClaimsAnswered{}), replay: replayClaims,
			doc: "the worker answers the encrypted claims: r·(claimed − actual) per check under the applicant's key, nothing it can read"},
		{name: "debit", reaches: phaseDebited, run: verifyDebitStage, records: events(&provenance.BudgetDebited{}),
			doc: "make the checks final"},
		{name: "release", run: verifyReleaseStage, records: events(&provenance.Release{}),
			doc: "record the release with its output digest"},
		{name: "receipt", run: verifyReceiptStage,
			doc: "sign the release receipt"},
	}
}

// runVerify runs a verification job through its stages.
func (e *Engine) runVerify(ctx context.Context, id string, j Job) (*Outcome, error) {
	if j.Verify == nil {
		return nil, errcode.New(errcode.InvalidRequest, "a verification job carries its claims")
	}
	s := &jobState{id: id, job: j, v: &verifyState{req: j.Verify}}
	if err := e.runStages(ctx, verifyStages(), s); err != nil {
		return nil, err
	}
	return &Outcome{Verify: s.v.result, Receipt: s.receipt, Datasets: s.ds.names()}, nil
}

// verifySummary is what job_submitted keeps of a verification: counts and digests only.
type verifySummary struct {
	PublicKey  string               `json:"public_key"` // sha256
	Commitment string               `json:"commitment,omitempty"`
	Batches    []verifyBatchSummary `json:"batches"`
}

type verifyBatchSummary struct {
	Dataset     string   `json:"dataset"`
	Attribute   string   `json:"attribute"`
	Checks      int      `json:"checks"`
	Ciphertexts []string `json:"ciphertexts,omitempty"` // sha256 of each
	Openings    []string `json:"openings,omitempty"`    // sha256 of each opening, per ciphertext in share order
	Answers     []string `json:"answers,omitempty"`     // sha256 of each (claims_answered)
}

func sha(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

func verifySubmitStage(_ context.Context, _ *Engine, s *jobState) ([]provenance.Event, error) {
	r := s.v.req
	sum := verifySummary{PublicKey: sha(r.PublicKey), Commitment: r.Commitment}
	for _, b := range r.Batches {
		bs := verifyBatchSummary{Dataset: b.Dataset, Attribute: b.Attribute, Checks: len(b.Subjects)}
		for _, ct := range b.Ciphertexts {
			bs.Ciphertexts = append(bs.Ciphertexts, sha(ct))
		}
		for _, os := range b.Openings {
			for _, o := range os {
				bs.Openings = append(bs.Openings, sha(o))
			}
		}
		sum.Batches = append(sum.Batches, bs)
	}
	return events(&provenance.JobSubmitted{Kind: KindVerify, Principal: provenance.Principal(s.job.Principal), Grant: s.job.Grant,
		Options: provenance.DocOf(sum)}), nil
}

// claimsStage resolves and checks the request before anything is asked or counted.
func claimsStage(ctx context.Context, e *Engine, s *jobState) ([]provenance.Event, error) {
	r := s.v.req
	if len(r.Batches) == 0 {
		return nil, errcode.New(errcode.InvalidRequest, "a verification carries at least one batch of claims")
	}
	if len(r.PublicKey) == 0 {
		return nil, errcode.New(errcode.MalformedCiphertext, "a verification carries the applicant's public key")
	}
	// The commitment is opened first, so that a request refused below for another reason
	// (an unknown attribute, say) still answers its challenge and does not abandon it. The
	// events of an opening (verify_opened, verify_suspension) are recorded under the
	// commitment's id, where an auditor finds the commitment and its challenge.
	s.v.keyDigest = sha(r.PublicKey)
	if err := e.openClaims(ctx, s); err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for i, b := range r.Batches {
		d, ok := e.Dataset(b.Dataset)
		if !ok {
			return nil, errcode.New(errcode.UnknownDataset, "batch %d: no dataset named %q is registered", i+1, b.Dataset)
		}
		if d.Spec.Public {
			return nil, errcode.New(errcode.InvalidRequest, "batch %d: %s is a public lookup table, with no persons to verify", i+1, b.Dataset)
		}
		attr, ok := d.Spec.Verify[b.Attribute]
		if !ok {
			return nil, errcode.New(errcode.UnknownAttribute, "batch %d: dataset %s declares no verifiable attribute %q%s", i+1, b.Dataset, b.Attribute, attributesHint(d.Spec))
		}
		n := len(b.Subjects)
		switch {
		case n == 0:
			return nil, errcode.New(errcode.InvalidRequest, "batch %d carries no claims", i+1)
		case len(b.Consents) != n:
			return nil, errcode.New(errcode.InvalidRequest, "batch %d has %d subjects and %d consent references: every claim carries one", i+1, n, len(b.Consents))
		case len(b.Ciphertexts) != verify.CiphertextsFor(n):
			return nil, errcode.New(errcode.MalformedCiphertext, "batch %d: %d claims take %d ciphertexts (%d a ciphertext), not %d", i+1, n, verify.CiphertextsFor(n), verify.Slots, len(b.Ciphertexts))
		}
		if err := verify.CheckClaims(r.PublicKey, b.Ciphertexts, n); err != nil {
			return nil, errcode.Wrap(errcode.MalformedCiphertext, err, "batch %d: the public key or the ciphertexts do not decode as the platform's verification parameters (%s)", i+1, verify.ParameterSet)
		}
		for j := range n {
			if sub := strings.TrimSpace(b.Subjects[j]); sub == "" || len(sub) > 128 || !printableASCII(b.Subjects[j]) {
				return nil, errcode.New(errcode.InvalidRequest, "batch %d, claim %d: a subject is 1 to 128 printable ASCII characters", i+1, j+1)
			}
			if c := strings.TrimSpace(b.Consents[j]); c == "" || len(c) > 256 {
				return nil, errcode.New(errcode.InvalidRequest, "batch %d, claim %d: a consent or contract reference is 1 to 256 characters", i+1, j+1)
			}
		}
		s.v.checks += n
		if s.v.checks > MaxVerifyChecks {
			return nil, errcode.New(errcode.InvalidRequest, "a verification carries at most %d checks", MaxVerifyChecks)
		}
		if len(s.ds) > 0 && d.Spec.Domain != s.ds.domain() {
			return nil, errcode.New(errcode.InvalidRequest, "batches over datasets of different data domains (%s, %s) go in separate verifications", s.ds.domain(), d.Spec.Domain)
		}
		if !seen[d.Spec.Name] {
			seen[d.Spec.Name] = true
			s.ds = append(s.ds, d)
		}
		s.v.attrs = append(s.v.attrs, attr)
	}
	return nil, s.ds.within(s.job.Grant, s.job.Terms)
}

// printableASCII: a subject is an identifier in printable ASCII. The limits count a fact under
// the subject as the engine normalises it (trimmed, upper-cased) and the worker looks it up as
// DuckDB does; on printable ASCII the two agree, so no spelling of one subject can count as
// another fact while reaching the same unit.
func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

func attributesHint(spec *catalog.Spec) string {
	if len(spec.Verify) == 0 {
		return " (it declares none)"
	}
	names := make([]string, 0, len(spec.Verify))
	for n := range spec.Verify {
		names = append(names, n)
	}
	slices.Sort(names)
	return fmt.Sprintf(" (it declares %s)", strings.Join(names, ", "))
}

func verifyAccessStage(ctx context.Context, e *Engine, s *jobState) ([]provenance.Event, error) {
	var cols []policy.ColumnUse
	seen := map[string]bool{}
	for i, b := range s.v.req.Batches {
		spec := s.ds.spec(b.Dataset)
		col := s.v.attrs[i].Column
		if seen[b.Dataset+"."+col] {
			continue
		}
		seen[b.Dataset+"."+col] = true
		var tags []string
		for _, t := range spec.Columns[col].Tags {
			tags = append(tags, string(t))
		}
		cols = append(cols, policy.ColumnUse{Dataset: b.Dataset, Column: col, Tags: tags, Usage: policy.UsageVerifyAttribute})
	}
	s.access = policy.AccessInput{Principal: s.job.Principal, Action: policy.ActionSubmitJob, Datasets: s.ds.refs(), Columns: cols,
		Grant: s.job.Terms, Job: policy.JobParams{Kind: KindVerify, Checks: s.v.checks}}
	return e.askAccess(ctx, s, "verification")
}

// checkLimits are the ledger's limits from the policy's parameters; none set, none run.
func (e *Engine) checkLimits() (ledger.CheckLimits, error) {
	p := e.policy.Params()
	lim := ledger.CheckLimits{PerFact: p.VerifyChecksPerFact, FactPeriod: time.Duration(p.VerifyFactPeriodDays) * 24 * time.Hour,
		PerGrantDay: p.VerifyChecksPerGrantDay}
	if lim.PerFact < 1 || lim.FactPeriod <= 0 || lim.PerGrantDay < 1 {
		return lim, errcode.New(errcode.PolicyDenied, "the operator's policy sets no verification limits (verify_checks_per_fact, verify_fact_period_days, verify_checks_per_grant_per_day), so no verification runs")
	}
	return lim, nil
}

// fact is the keyed digest a check is counted under: the dataset, the attribute and the
// subject as the worker reads units (trimmed, upper-case). The key never leaves the platform.
func (e *Engine) fact(dataset, attribute, subject string) string {
	return e.auditKey.Digest([]byte("verify-fact\x00" + dataset + "\x00" + attribute + "\x00" + strings.ToUpper(strings.TrimSpace(subject))))
}

func reserveChecksStage(ctx context.Context, e *Engine, s *jobState) ([]provenance.Event, error) {
	lim, err := e.checkLimits()
	if err != nil {
		return nil, err
	}
	var facts, consents []string
	for _, b := range s.v.req.Batches {
		for j, sub := range b.Subjects {
			facts = append(facts, e.fact(b.Dataset, b.Attribute, sub))
			consents = append(consents, e.auditKey.Digest([]byte("verify-consent\x00"+strings.TrimSpace(b.Consents[j]))))
		}
	}
	grant := s.job.Grant
	org := s.job.Principal.Org
	if s.job.Terms != nil {
		org = s.job.Terms.Org
	}
	err = e.ledger.ReserveChecks(ctx, s.id, org, grant, GrantAccount(grant), s.v.keyDigest, s.v.req.Commitment, facts, consents, lim)
	var le *ledger.CheckLimitError
	switch {
	case errors.As(err, &le) && le.PerFact:
		return nil, errcode.Wrap(errcode.VerifyLimit, err, "claim %d asks about a fact (a subject's attribute) this organisation checked within the last %d day(s), and the policy allows %d check(s) of a fact in that time: nothing was checked or counted",
			le.Index+1, int(le.Period.Hours()/24), le.Limit)
	case errors.As(err, &le):
		return nil, errcode.Wrap(errcode.VerifyLimit, err, "this verification would take the grant past its %d checks in 24 hours: nothing was checked or counted", le.Limit)
	case errors.Is(err, ledger.ErrKeyPinned), errors.Is(err, ledger.ErrKeyNotPinned), errors.Is(err, ledger.ErrVerifySuspended),
		errors.Is(err, ledger.ErrCommitmentUsed), errors.Is(err, ledger.ErrCommitmentState), errors.Is(err, ledger.ErrNoCommitment):
		return nil, ledgerVerifyError(err)
	case errors.Is(err, ledger.ErrUnknownAccount):
		return nil, errcode.Wrap(errcode.PolicyDenied, err, "grant %q has no budget account", grant)
	case err != nil:
		return nil, errcode.Wrap(errcode.Internal, err, "the ledger is unavailable")
	}
	return events(&provenance.BudgetReserved{Accounts: []string{GrantAccount(grant)}, Cost: provenance.DocOf(api.Budget{})},
		&provenance.ChecksReserved{Checks: s.v.checks, FactsDigest: e.auditKey.Digest([]byte(strings.Join(facts, "\n"))),
			ConsentsDigest: e.auditKey.Digest([]byte(strings.Join(consents, "\n"))), PublicKey: s.v.keyDigest, Limits: provenance.DocOf(lim)}), nil
}

func answerStage(ctx context.Context, e *Engine, s *jobState) ([]provenance.Event, error) {
	start := time.Now()
	sum := []verifyBatchSummary{}
	for i, b := range s.v.req.Batches {
		d := s.ds.spec(b.Dataset)
		snap := s.ds.snapshots()[b.Dataset]
		answers, err := s.w.AnswerClaims(ctx, &wire.Claims{Job: s.id, Snapshot: snap, PrivacyUnit: d.PrivacyUnit, Attribute: s.v.attrs[i],
			Subjects: b.Subjects, PublicKey: s.v.req.PublicKey, Ciphertexts: s.v.combined[i], TimeoutMS: DeadlineMax.Milliseconds()})
		if err != nil {
			return nil, err
		}
		bs := verifyBatchSummary{Dataset: b.Dataset, Attribute: b.Attribute, Checks: len(b.Subjects)}
		for j := range s.v.combined[i] {
			bs.Ciphertexts = append(bs.Ciphertexts, sha(s.v.combined[i][j]))
			bs.Answers = append(bs.Answers, sha(answers[j]))
		}
		sum = append(sum, bs)
		s.v.answers = append(s.v.answers, answers)
	}
	return events(&provenance.ClaimsAnswered{Domain: s.ds.domain(), Snapshots: s.ds.snapshots(), ParameterSet: verify.ParameterSet,
		Batches: provenance.DocOf(sum), DurationMS: time.Since(start).Milliseconds()}), nil
}

func verifyDebitStage(ctx context.Context, e *Engine, s *jobState) ([]provenance.Event, error) {
	if err := e.ledger.Commit(ctx, s.id); err != nil {
		return nil, errcode.Wrap(errcode.Internal, err, "the checks could not be made final; nothing was released")
	}
	return events(&provenance.BudgetDebited{Cost: ptr(provenance.DocOf(api.Budget{}))}), nil
}

func verifyReleaseStage(_ context.Context, _ *Engine, s *jobState) ([]provenance.Event, error) {
	res := &api.VerifyResult{Job: s.id, ParameterSet: verify.ParameterSet}
	for i, b := range s.v.req.Batches {
		res.Batches = append(res.Batches, api.VerifyAnswer{Dataset: b.Dataset, Attribute: b.Attribute, Checks: len(b.Subjects), Ciphertexts: s.v.answers[i]})
	}
	out, err := provenance.Canonical(res)
	if err != nil {
		return nil, errcode.Wrap(errcode.Internal, err, "the answer could not be encoded; nothing is released")
	}
	s.v.result, s.digest = res, sha(out)
	return events(&provenance.Release{OutputDigest: s.digest, Rows: s.v.checks}), nil
}

func verifyReceiptStage(ctx context.Context, e *Engine, s *jobState) ([]provenance.Event, error) {
	s.v.result.LogIndex = s.last.Index
	var mechs []ReceiptMechanism
	for _, b := range s.v.req.Batches {
		mechs = append(mechs, ReceiptMechanism{Column: b.Dataset + "." + b.Attribute, Mechanism: verify.ParameterSet})
	}
	r, err := e.signReceipt(ctx, ReceiptBody{Job: s.id, Grant: s.job.Grant, OutputDigest: s.digest, Mechanisms: mechs, LogIndex: s.last.Index})
	s.receipt = r
	return nil, err
}

// replayClaims checks the data a verification read is still the data recorded. Its answers
// are not computed again: each drew fresh randomness, and only the applicant can open them.
func replayClaims(ctx context.Context, e *Engine, rs *replayState) {
	replaySnapshots(ctx, e, rs)
	rs.add("answers", api.ReplayNotRun, "a verification's answers are not computed again: each drew fresh randomness under the applicant's key; the recorded digests are what was released")
}
