package policy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"strings"

	"github.com/c1b99f93/cleanroom/errcode"
	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
)

// Decision results.
const (
	ResultAllow  = "allow"
	ResultReview = "review"
	ResultDeny   = "deny"
)

// Reason codes the engine itself gives when the policy cannot decide. The default bundle's
// own codes are listed in its Rego.
const (
	ReasonDecisionUndefined = "decision_undefined"
	ReasonDecisionMalformed = "decision_malformed"
	ReasonEvalFailed        = string(errcode.PolicyEvalFailed)
	ReasonInputInvalid      = "input_invalid"
)

// Queries the engine prepares.
const (
	AccessQuery = "data.cleanroom.access.decision"
	EgressQuery = "data.cleanroom.egress.decision"
	APIQuery    = "data.cleanroom.api.decision"
)

// MaxReviewers is the most independent reviewers a review decision may ask for.
const MaxReviewers = 3

// Decision is a policy's answer with its reasons and the digest of the bundle that gave it.
type Decision struct {
	Result  string   `json:"result"` // ResultAllow, ResultReview or ResultDeny
	Reasons []string `json:"reasons"`
	// Reviewers is how many independent reviewers must approve a held result: 1..MaxReviewers
	// for ResultReview, 0 otherwise.
	Reviewers    int    `json:"reviewers,omitempty"`
	BundleDigest string `json:"bundle_digest"`
}

// Allowed reports whether the decision lets the job run or the result leave without a
// person's review. Review is not allowed.
func (d Decision) Allowed() bool { return d.Result == ResultAllow }

// ReasonCode returns the stable code of a reason: the text before the first colon.
func ReasonCode(reason string) string {
	code, _, _ := strings.Cut(reason, ":")
	return code
}

// Codes returns the codes of d's reasons, in order.
func (d Decision) Codes() []string {
	codes := make([]string, len(d.Reasons))
	for i, r := range d.Reasons {
		codes[i] = ReasonCode(r)
	}
	return codes
}

// Engine evaluates a policy bundle's access, egress and request decisions. It never allows
// what the policy did not positively allow: undefined, malformed and failed decisions are
// denies. An Engine is immutable after New and safe for concurrent use.
type Engine struct {
	snap   *snapshot
	caps   *ast.Capabilities
	access rego.PreparedEvalQuery
	egress rego.PreparedEvalQuery
	api    rego.PreparedEvalQuery
	params Params
}

// Params are the tunables the engine acts on itself (rather than through a decision), read
// from the bundle's data.cleanroom.params when the Engine is made: the bundle's data cannot
// change after.
type Params struct {
	// MinUnitsPerGroup (min_units_per_group) is the least noisy count of privacy units an
	// output row may stand for; rows below it are withheld. 0 turns suppression off.
	MinUnitsPerGroup float64 `json:"min_units_per_group"`
	// DiscloseSuppressed (disclose_suppressed_groups) lets a result say how many rows were
	// withheld.
	DiscloseSuppressed bool `json:"disclose_suppressed_groups"`
	// DifferencingMinUnits (differencing_min_units) flags a query whose filter differs from an
	// earlier one's on the same grant by a condition fewer than this many privacy units (a
	// noisy count) satisfy. 0 turns the check off.
	DifferencingMinUnits float64 `json:"differencing_min_units"`
	// MaxDifferencingChecks (max_differencing_checks) is how many earlier filters one job's
	// differencing check compares at most (one noisy count for all of them, but each is one
	// more condition the worker evaluates on every row); a query whose filter could pair with
	// more is refused with differencing_limit. A whole number from 0 to
	// MaxDifferencingChecksCeiling. A bundle without it has 0 here — every query that could pair
	// with an earlier one is refused — and the access policy denies every job (params_invalid).
	MaxDifferencingChecks int `json:"max_differencing_checks"`
	// Verification limits (kind verify; whole numbers, 0 when absent, and then no
	// verification runs): VerifyChecksPerFact (verify_checks_per_fact) is how often one
	// organisation may check one subject's attribute per VerifyFactPeriodDays
	// (verify_fact_period_days); VerifyChecksPerGrantDay (verify_checks_per_grant_per_day) is
	// how many checks one grant may make per 24 hours.
	VerifyChecksPerFact     int `json:"verify_checks_per_fact"`
	VerifyFactPeriodDays    int `json:"verify_fact_period_days"`
	VerifyChecksPerGrantDay int `json:"verify_checks_per_grant_per_day"`
	// Cut-and-choose against a malicious applicant (docs/he.md; 0 when absent: the engine's
	// defaults): VerifyKeyCandidates (verify_key_candidates) is the least number of candidate
	// keys an applicant commits to before one is pinned (default 16, at least 2: a crafted key
	// is caught with probability 1 − 1/K); VerifyClaimShares (verify_claim_shares) the least
	// number of shares per claims ciphertext (default 2); VerifyOpeningDeadlineSeconds
	// (verify_opening_deadline_seconds) how long a challenge waits for its opening (default 600).
	VerifyKeyCandidates          int `json:"verify_key_candidates"`
	VerifyClaimShares            int `json:"verify_claim_shares"`
	VerifyOpeningDeadlineSeconds int `json:"verify_opening_deadline_seconds"`
	// ReturnUnspentOnRevoke (return_unspent_on_revoke) gives what a revoked grant never spent
	// back to its datasets' lifetime budgets, for other grants to be allocated; otherwise it
	// stays allocated to the revoked grant. ReturnUnspentOnExpiry (return_unspent_on_expiry)
	// does the same when a grant's period ends. Both default to true when the bundle does not
	// set them: budget never spent was never used to release anything, so returning it weakens
	// no guarantee.
	ReturnUnspentOnRevoke bool `json:"return_unspent_on_revoke"`
	ReturnUnspentOnExpiry bool `json:"return_unspent_on_expiry"`
	// MaxDeltaPerJob (max_delta_per_job) is the access policy's exclusive upper limit on one
	// job's delta; the engine keeps a default delta below it. 0: no limit is known.
	MaxDeltaPerJob float64 `json:"max_delta_per_job"`
	// DiscloseDatasetSize (disclose_dataset_size) says what a dataset's metadata tells any
	// caller of its size: "public" (the exact numbers of rows and privacy units; the default
	// when the bundle does not say) or "none". A noisy count is not offered: it would have to be
	// released once and kept, never drawn afresh per request (averaging would undo it).
	DiscloseDatasetSize string `json:"disclose_dataset_size"`
	// DiscloseDatasetBudget (disclose_dataset_budget) shows any caller of a dataset's metadata
	// what its lifetime budget has left to allocate to grants; otherwise only those who may read
	// the dataset's budget report (dataset.usage) see it.
	DiscloseDatasetBudget bool `json:"disclose_dataset_budget"`
	// MaxGroups (max_groups_contributed) and MaxRows (max_contributions_per_group) are the
	// access policy's limits on a job's contribution bounds; 0: no limit is known.
	MaxGroups float64 `json:"max_groups_contributed"`
	MaxRows   float64 `json:"max_contributions_per_group"`
	// AutoMaxGroups (auto_max_groups_contributed) and AutoMaxRows
	// (auto_max_contributions_per_group) are the operator's maxima for contribution bounds the
	// engine chooses under DP when a job leaves them unset (never above MaxGroups, MaxRows); 0:
	// the engine's fallback.
	AutoMaxGroups float64 `json:"auto_max_groups_contributed"`
	AutoMaxRows   float64 `json:"auto_max_contributions_per_group"`
	// AutoMaxTotal (auto_max_rows_per_unit) is the operator's maximum for the L1 bound the
	// engine chooses where every key has a public domain: the rows a unit keeps in all groups
	// together (never above AutoMaxGroups × AutoMaxRows); 0: the engine's fallback.
	AutoMaxTotal float64 `json:"auto_max_rows_per_unit"`
	// OutputMaxRows (max_rows) and OutputMaxCells (max_cells) are the egress policy's limits
	// on an output's size; the engine also refuses, before anything runs, a query whose public
	// partitions alone would exceed them (every public partition is computed and released).
	// 0: no limit is known (the engine's own ceiling still applies).
	OutputMaxRows  float64 `json:"max_rows"`
	OutputMaxCells float64 `json:"max_cells"`
}

// MaxDifferencingChecksCeiling is the largest max_differencing_checks a bundle may set: the
// most conditions the worker evaluates in one check (sandbox.MaxDifferences).
const MaxDifferencingChecksCeiling = 1000

// Values of disclose_dataset_size.
const (
	DatasetSizePublic = "public"
	DatasetSizeNone   = "none"
)

// ParamsQuery is where a bundle keeps the operator's tunables.
const ParamsQuery = "data.cleanroom.params"

type config struct {
	bundleDir string
}

// Option configures New.
type Option func(*config)

// WithBundleDir loads an operator's bundle from dir instead of the embedded default. Every
// regular file under dir belongs to the bundle and to its digest.
func WithBundleDir(dir string) Option {
	return func(c *config) { c.bundleDir = dir }
}

// New reads the bundle, computes its digest and prepares the access, egress and request
// queries. A bundle need not define all three: a query it leaves undefined is a deny.
func New(ctx context.Context, opts ...Option) (*Engine, error) {
	var cfg config
	for _, o := range opts {
		o(&cfg)
	}
	fsys, err := cfg.bundleFS()
	if err != nil {
		return nil, &Error{Code: errcode.PolicyBundleInvalid, Op: "open bundle", Err: err}
	}
	snap, err := readSnapshot(fsys)
	if err != nil {
		return nil, &Error{Code: errcode.PolicyBundleInvalid, Op: "read bundle", Err: err}
	}
	e := &Engine{snap: snap, caps: capabilities()}
	if e.access, err = e.prepare(ctx, AccessQuery); err != nil {
		return nil, &Error{Code: errcode.PolicyBundleInvalid, Op: "prepare access", Err: err}
	}
	if e.egress, err = e.prepare(ctx, EgressQuery); err != nil {
		return nil, &Error{Code: errcode.PolicyBundleInvalid, Op: "prepare egress", Err: err}
	}
	if e.api, err = e.prepare(ctx, APIQuery); err != nil {
		return nil, &Error{Code: errcode.PolicyBundleInvalid, Op: "prepare api", Err: err}
	}
	if e.params, err = e.readParams(ctx); err != nil {
		return nil, &Error{Code: errcode.PolicyBundleInvalid, Op: "read params", Err: err}
	}
	return e, nil
}

// Params returns the tunables the engine acts on itself.
func (e *Engine) Params() Params { return e.params }

// readParams reads the Params fields. A bundle without one gets its zero value (that check
// off); a mistyped or negative value is refused, so a typo cannot silently turn a check off.
func (e *Engine) readParams(ctx context.Context) (Params, error) {
	pq, err := e.prepare(ctx, ParamsQuery)
	if err != nil {
		return Params{}, err
	}
	rs, err := pq.Eval(ctx)
	if err != nil {
		return Params{}, err
	}
	p := Params{ReturnUnspentOnRevoke: true, ReturnUnspentOnExpiry: true, DiscloseDatasetSize: DatasetSizePublic}
	if len(rs) == 0 || len(rs[0].Expressions) == 0 {
		return p, nil
	}
	params, _ := rs[0].Expressions[0].Value.(map[string]any)
	for key, dst := range map[string]*float64{"min_units_per_group": &p.MinUnitsPerGroup, "differencing_min_units": &p.DifferencingMinUnits,
		"max_delta_per_job": &p.MaxDeltaPerJob, "max_groups_contributed": &p.MaxGroups, "max_contributions_per_group": &p.MaxRows,
		"auto_max_groups_contributed": &p.AutoMaxGroups, "auto_max_contributions_per_group": &p.AutoMaxRows, "auto_max_rows_per_unit": &p.AutoMaxTotal,
		"max_rows": &p.OutputMaxRows, "max_cells": &p.OutputMaxCells} {
		if v, ok := params[key]; ok {
			f, ok := number(v)
			if !ok || f < 0 || math.IsInf(f, 0) {
				return Params{}, fmt.Errorf("data.cleanroom.params.%s must be a non-negative number", key)
			}
			*dst = f
		}
	}
	if v, ok := params["max_differencing_checks"]; ok {
		f, ok := number(v)
		if !ok || f < 0 || f > MaxDifferencingChecksCeiling || f != math.Trunc(f) {
			return Params{}, fmt.Errorf("data.cleanroom.params.max_differencing_checks must be a whole number from 0 to %d", MaxDifferencingChecksCeiling)
		}
		p.MaxDifferencingChecks = int(f)
	}
	for key, dst := range map[string]*int{"verify_checks_per_fact": &p.VerifyChecksPerFact,
		"verify_fact_period_days": &p.VerifyFactPeriodDays, "verify_checks_per_grant_per_day": &p.VerifyChecksPerGrantDay} {
		if v, ok := params[key]; ok {
			f, ok := number(v)
			if !ok || f < 0 || f > math.MaxInt32 || f != math.Trunc(f) {
				return Params{}, fmt.Errorf("data.cleanroom.params.%s must be a whole number", key)
			}
			*dst = int(f)
		}
	}
	for key, dst := range map[string]*int{"verify_key_candidates": &p.VerifyKeyCandidates, "verify_claim_shares": &p.VerifyClaimShares,
		"verify_opening_deadline_seconds": &p.VerifyOpeningDeadlineSeconds} {
		if v, ok := params[key]; ok {
			f, ok := number(v)
			if !ok || f != math.Trunc(f) || f > 86400 || (key != "verify_opening_deadline_seconds" && (f < 2 || f > 64)) || f < 1 {
				return Params{}, fmt.Errorf("data.cleanroom.params.%s must be a whole number (candidates and shares 2 to 64, a deadline 1 to 86400 seconds)", key)
			}
			*dst = int(f)
		}
	}
	if v, ok := params["disclose_dataset_size"]; ok {
		if v != DatasetSizePublic && v != DatasetSizeNone {
			return Params{}, fmt.Errorf("data.cleanroom.params.disclose_dataset_size must be %q or %q (a noisy size is not offered)", DatasetSizePublic, DatasetSizeNone)
		}
		p.DiscloseDatasetSize = v.(string)
	}
	for key, dst := range map[string]*bool{"disclose_suppressed_groups": &p.DiscloseSuppressed,
		"return_unspent_on_revoke": &p.ReturnUnspentOnRevoke, "return_unspent_on_expiry": &p.ReturnUnspentOnExpiry,
		"disclose_dataset_budget": &p.DiscloseDatasetBudget} {
		if v, ok := params[key]; ok {
			b, ok := v.(bool)
			if !ok {
				return Params{}, fmt.Errorf("data.cleanroom.params.%s must be true or false", key)
			}
			*dst = b
		}
	}
	return p, nil
}

func (c *config) bundleFS() (fs.FS, error) {
	if c.bundleDir == "" {
		return fs.Sub(defaultBundle, "bundle")
	}
	fi, err := os.Stat(c.bundleDir)
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("%s is not a directory", c.bundleDir)
	}
	return os.DirFS(c.bundleDir), nil
}

func (e *Engine) prepare(ctx context.Context, query string) (rego.PreparedEvalQuery, error) {
	b, err := e.snap.bundle(e.caps)
	if err != nil {
		return rego.PreparedEvalQuery{}, err
	}
	return rego.New(
		rego.Query(query),
		rego.ParsedBundle(bundleName, b),
		rego.SetRegoVersion(ast.RegoV1),
		rego.Capabilities(e.caps),
		rego.Strict(true),
		// A built-in error inside a deny rule would otherwise just make that rule
		// undefined, i.e. silently drop a deny reason. Strict errors fail the evaluation,
		// which is a deny.
		rego.StrictBuiltinErrors(true),
	).PrepareForEval(ctx)
}

// Digest is "sha256:" + hex over the bundle's files (sorted by slash path; path, NUL,
// content, NUL for each). It depends only on the files, so it is stable across runs and
// machines, and a directory copy of the embedded bundle has the embedded bundle's digest.
func (e *Engine) Digest() string { return e.snap.digest }

// Access decides whether in.Principal may do in.Action on in.Datasets. A non-nil error
// (an *Error with errcode.PolicyEvalFailed) comes with a deny Decision.
func (e *Engine) Access(ctx context.Context, in AccessInput) (Decision, error) {
	if err := checkJob(in.Job); err != nil {
		return e.deny(ReasonInputInvalid + ": " + err.Error()), nil
	}
	return e.eval(ctx, "evaluate access", e.access, in.normalized())
}

// Egress decides whether a computed result may leave: allow, review (hold for
// Decision.Reviewers independent reviewers) or deny. A non-nil error (an *Error with
// errcode.PolicyEvalFailed) comes with a deny Decision.
func (e *Engine) Egress(ctx context.Context, in EgressInput) (Decision, error) {
	if err := checkJob(in.Job); err != nil {
		return e.deny(ReasonInputInvalid + ": " + err.Error()), nil
	}
	return e.eval(ctx, "evaluate egress", e.egress, in.normalized())
}

func (e *Engine) eval(ctx context.Context, op string, pq rego.PreparedEvalQuery, input any) (Decision, error) {
	// OPA notices cancellation only at its own checkpoints, which a short evaluation may never
	// reach; a canceled caller gets a deny every time.
	if err := ctx.Err(); err != nil {
		return e.deny(ReasonEvalFailed + ": the policy could not be evaluated"), &Error{Code: errcode.PolicyEvalFailed, Op: op, Err: err}
	}
	rs, err := pq.Eval(ctx, rego.EvalInput(input))
	if err != nil {
		return e.deny(ReasonEvalFailed + ": the policy could not be evaluated"),
			&Error{Code: errcode.PolicyEvalFailed, Op: op, Err: err}
	}
	if len(rs) == 0 || len(rs[0].Expressions) == 0 {
		return e.deny(ReasonDecisionUndefined + ": the policy gave no decision"), nil
	}
	d, err := decode(rs[0].Expressions[0].Value)
	if err != nil {
		return e.deny(ReasonDecisionMalformed + ": " + err.Error()), nil
	}
	d.BundleDigest = e.snap.digest
	return d, nil
}

func (e *Engine) deny(reason string) Decision {
	return Decision{Result: ResultDeny, Reasons: []string{reason}, BundleDigest: e.snap.digest}
}

// decode reads a decision document
// {"result": "allow"|"review"|"deny", "reasons": [string], "reviewers": n}. reasons may be
// absent; reviewers may be absent, and when present must be a whole number in
// 1..MaxReviewers. A review needs one reviewer unless the decision asks for more; allow and
// deny need none. Anything else is malformed.
func decode(v any) (Decision, error) {
	obj, ok := v.(map[string]any)
	if !ok {
		return Decision{}, errors.New("decision is not an object")
	}
	var d Decision
	switch r, _ := obj["result"].(string); r {
	case ResultAllow, ResultReview, ResultDeny:
		d.Result = r
	default:
		return Decision{}, errors.New("result is not allow, review or deny")
	}
	d.Reasons = []string{}
	if raw, present := obj["reasons"]; present {
		list, ok := raw.([]any)
		if !ok {
			return Decision{}, errors.New("reasons is not a list")
		}
		for _, x := range list {
			s, ok := x.(string)
			if !ok {
				return Decision{}, errors.New("reasons holds a non-string")
			}
			d.Reasons = append(d.Reasons, s)
		}
	}
	n := 1
	if raw, present := obj["reviewers"]; present {
		var ok bool
		if n, ok = reviewerCount(raw); !ok {
			return Decision{}, fmt.Errorf("reviewers is not a whole number in 1..%d", MaxReviewers)
		}
	}
	if d.Result == ResultReview {
		d.Reviewers = n
	}
	return d, nil
}

// reviewerCount reads a whole number in 1..MaxReviewers from a decoded JSON value.
func reviewerCount(v any) (int, bool) {
	f, ok := number(v)
	if !ok || f != math.Trunc(f) || f < 1 || f > MaxReviewers {
		return 0, false
	}
	return int(f), true
}

// number reads a number from a value OPA decoded.
func number(v any) (float64, bool) {
	switch x := v.(type) {
	case json.Number:
		f, err := x.Float64()
		return f, err == nil
	case float64:
		return x, true
	case int:
		return float64(x), true
	case int64:
		return float64(x), true
	}
	return 0, false
}
