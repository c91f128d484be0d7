package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strings"

	"github.com/c1b99f93/cleanroom/dp"
	"github.com/c1b99f93/cleanroom/engine/ledger"
	"github.com/c1b99f93/cleanroom/engine/plan"
	"github.com/c1b99f93/cleanroom/engine/provenance"
	"github.com/c1b99f93/cleanroom/errcode"
	"github.com/c1b99f93/cleanroom/sandbox/wire"
	"github.com/c1b99f93/cleanroom/server/api"
)

// Explanation is a dry run of a job: the bounded plan the worker would run, each aggregate's
// mechanism and expected error, and what the job would cost — computed without reading data or
// touching the budget. It is the API's document (api.Explanation); Worker is the plan it shows.
type Explanation struct {
	api.Explanation
	// Worker is the bounded plan (Plan in the document is its JSON).
	Worker wire.Plan `json:"-"`
}

// Explain runs a job's dry-run stages (gate, plan, access policy) exactly as Run would, then
// stops before the budget and the worker: nothing is reserved, read or recorded. A denial by
// the access policy is reported as the policy's decision, not as an error.
func (e *Engine) Explain(ctx context.Context, j Job) (*Explanation, error) {
	opts := e.options(ctx, j)
	s := &jobState{job: j, opts: opts, dryRun: true}
	if err := e.runStages(ctx, sqlStages(), s); err != nil && (s.decision == nil || s.decision.Allowed()) {
		return nil, err
	}
	q, ds, p, access := s.q, s.ds, s.p, *s.decision
	planJSON, err := json.Marshal(p.Worker)
	if err != nil {
		return nil, errcode.Wrap(errcode.Internal, err, "the plan could not be encoded")
	}
	x := &Explanation{Worker: p.Worker, Explanation: api.Explanation{Dataset: ds.name(), Snapshots: ds.snapshots(), Plan: planJSON,
		PublicPartitions: p.Public, Partitions: partitionsText(p), Cost: api.Budget(p.Cost), Split: p.Split, Bounds: boundsText(ds, p),
		BoundsChoice: boundsChoice(p), Budget: []api.LedgerBalance{},
		Policy: api.PolicyDecision{Result: access.Result, Reasons: access.Reasons, Reviewers: access.Reviewers, BundleDigest: access.BundleDigest}}}
	if x.Policy.Reasons == nil {
		x.Policy.Reasons = []string{}
	}
	for i, s := range p.Worker.Aggregates {
		a := api.ExplainedAggregate{Name: aggregateName(p, i), Kind: string(s.Kind), Mechanism: s.Mechanism(), Epsilon: s.Epsilon,
			Delta: s.Delta, Components: noiseComponents(s.Components())}
		if s.ClampsValues() {
			lo, hi := s.Lower, s.Upper
			a.Lower, a.Upper = &lo, &hi
		}
		a.ExpectedError, a.Note = expectedError(s)
		x.Aggregates = append(x.Aggregates, a)
	}
	if fp, err := fingerprintOf(j.Grant, q, ds, opts); err == nil {
		if prior, ok, err := e.ledger.Recall(ctx, j.Grant, fp); err == nil && ok {
			x.AnsweredFromRelease = prior.Job
			x.Cost = api.Budget{}
		}
	}
	for _, acct := range ds.accounts(j.Grant) {
		if b, err := e.ledger.Balance(ctx, acct); err == nil {
			x.Budget = append(x.Budget, ledgerBalance(b))
		}
	}
	return x, nil
}

// Admit runs only a job's gate (parse, allowlist, names against the catalog, datasets within
// the grant), recording nothing: the server answers a request the gate refuses at once, and
// it never becomes a job. The gate reads no data — it parses the SQL and checks names — so
// whether and how fast a request is refused depends on the query and the catalog alone.
func (e *Engine) Admit(ctx context.Context, j Job) error {
	stages, last := sqlStages(), "gate"
	s := &jobState{job: j, dryRun: true}
	switch j.Kind {
	case KindVerify:
		if j.Verify == nil {
			return errcode.New(errcode.InvalidRequest, "a verification job carries its claims")
		}
		// A verification's request is checked whole: datasets, attributes, counts, the key and
		// every ciphertext's encoding.
		stages, last, s.v = verifyStages(), "claims", &verifyState{req: j.Verify}
	case KindFederated:
		if j.Federated == nil {
			return errcode.New(errcode.InvalidRequest, "a federated job names its datasets (federated.datasets)")
		}
		// The SQL is admitted against every dataset, with the federated restrictions.
		stages, s.fed = federatedStages(), &federatedState{req: j.Federated}
		s.opts = e.options(ctx, j)
	case KindModel:
		// The request is checked whole and its SQL admitted against the catalog and the grant.
		stages, s.m = modelStages(), &modelState{req: j.Model}
		s.opts = e.options(ctx, j)
	case KindWasm:
		// The request is checked whole, its module found in the store, its SQL admitted.
		stages, s.wasm = wasmStages(), &wasmState{req: j.Wasm}
		s.opts = e.options(ctx, j)
	default:
		s.opts = e.options(ctx, j)
	}
	var upTo []stage
	for _, st := range stages {
		upTo = append(upTo, st)
		if st.name == last {
			break
		}
	}
	return e.runStages(ctx, upTo, s)
}

// RecordRefusedRequest records a request the gate refused before it became a job: who, on
// which grant, the refusal's code and position, and a keyed digest of the SQL (so that an
// auditor holding the platform's key can match it to a query) — never the SQL's text, whose
// literals the applicant wrote and which was never admitted. A verification has no SQL: the
// digest is of its public key's and ciphertexts' digests, in request order.
func (e *Engine) RecordRefusedRequest(ctx context.Context, j Job, kind string, refusal error) error {
	pub := errcode.Public(refusal)
	text := j.SQL
	if j.Kind == KindModel && j.Model != nil {
		text = j.Model.SQL
	}
	if j.Kind == KindWasm && j.Wasm != nil {
		text = j.Wasm.SQL
	}
	if j.Kind == KindVerify && j.Verify != nil {
		var b strings.Builder
		b.WriteString(sha(j.Verify.PublicKey))
		for _, batch := range j.Verify.Batches {
			for _, ct := range batch.Ciphertexts {
				b.WriteString("\n" + sha(ct))
			}
		}
		text = b.String()
	}
	_, err := e.record(context.WithoutCancel(ctx), "", &provenance.RequestRefused{Principal: provenance.Principal(j.Principal),
		Grant: j.Grant, Kind: kind, Code: string(pub.Code), Position: pub.Position, SQLDigest: e.auditKey.Digest([]byte(text))})
	return err
}

func noiseComponents(cs []dp.Component) []api.NoiseComponent {
	out := []api.NoiseComponent{}
	for _, c := range cs {
		out = append(out, api.NoiseComponent{Name: c.Name, Mechanism: c.Mechanism, Epsilon: c.Epsilon, Delta: c.Delta, L0: c.L0,
			LInf: c.LInf, NoiseScale: c.NoiseScale})
	}
	return out
}

func ledgerBalance(b ledger.Balance) api.LedgerBalance {
	return api.LedgerBalance{Account: b.Account, Total: api.Budget(b.Total), Allocated: api.Budget(b.Allocated),
		Spent: api.Budget(b.Spent), Remaining: api.Budget(b.Remaining), Reserved: api.Budget(b.Reserved)}
}

// partitionsText says which groups the job would release: every public partition (how many),
// or those DP partition selection keeps, with the selection's budget.
func partitionsText(p *plan.Planned) string {
	if p.Public {
		if len(p.Domains) == 0 {
			return "one partition (no group keys), released with noise; no delta spent"
		}
		n := 1
		for _, d := range p.Domains {
			n *= len(d)
		}
		return fmt.Sprintf("public: all %d combination(s) of the keys' public domains are released, empty ones with noise; no delta spent", n)
	}
	sel := p.Worker.Selection
	return fmt.Sprintf("selected: DP partition selection keeps the groups enough units support (epsilon %.4g, delta %.3g, each unit in at most %d group(s)); the rest are suppressed",
		sel.Epsilon, sel.Delta, sel.MaxPartitions)
}

// boundsChoice says where the job's bounds come from: contribution bounds the job set or the
// platform's defaults, clamping bounds from the catalog.
func boundsChoice(p *plan.Planned) string {
	b := p.Worker.Bounds
	contrib := fmt.Sprintf("contribution bounds are fixed: %d group(s) per unit, %d row(s) per group", b.MaxGroupsContributed, b.MaxContributionsPerGroup)
	if a := p.Auto; a != nil {
		var which []string
		if a.Groups {
			which = append(which, fmt.Sprintf("max_groups_contributed (at most %d)", a.MaxGroups))
		}
		switch {
		case a.TotalRows:
			which = append(which, fmt.Sprintf("max_rows_per_unit, the rows a unit keeps in all groups together (at most %d; the noise of a count is that of one group of that many rows, however many groups a unit reaches)", a.MaxTotal))
		case a.Rows:
			which = append(which, fmt.Sprintf("max_contributions_per_group (at most %d)", a.MaxRows))
		}
		contrib = fmt.Sprintf("%s will be chosen under DP when the job runs, from noisy histograms of contributions per unit that spend epsilon %.4g of the job's, to minimise bias plus noise; the result's bias section reports the choice",
			strings.Join(which, " and "), a.Epsilon)
	}
	clamp := "values are clamped to each column's catalog bounds (or a per-unit subquery's derived ones)"
	if c := p.Clamp; c != nil {
		clamp = fmt.Sprintf("clamping bounds of %d value(s) will be chosen under DP within the catalog's, from a noisy quantile tree that spends epsilon %.4g of the job's", len(c.Targets), c.Epsilon)
	}
	return contrib + "; " + clamp
}

// expectedError is the noise-only 95% half-width for counts and sums: the Laplace quantile
// b·ln(1/α) with b = σ/√2, or the Gaussian z·σ.
func expectedError(s dp.Spec) (*float64, string) {
	sigma := s.NoiseScale()
	var w float64
	if s.Delta == 0 {
		w = sigma / math.Sqrt2 * math.Log(1/(1-dp.Confidence))
	} else {
		w = math.Sqrt2 * math.Erfinv(dp.Confidence) * sigma
	}
	switch s.Kind {
	case dp.Count, dp.CountDistinct, dp.CountDistinctValues, dp.Sum:
		return &w, ""
	case dp.Mean:
		return nil, fmt.Sprintf("about ±%.4g/n for a group of n values (noisy sum over noisy count)", w)
	case dp.Variance, dp.StdDev:
		return nil, "shrinks as 1/n with the group's n values; the interval combines its count, sum and sum of squares"
	case dp.Quantiles:
		return nil, "the rank error is about ±(noise of up to 64 tree nodes)/n; small groups give wide intervals"
	}
	return nil, ""
}

func boundsText(ds sources, p *plan.Planned) string {
	after := ""
	if r := p.Worker.Relation; r != nil && r.PerUnit {
		after = " of the per-unit subquery"
	} else if r != nil {
		after = " of the join"
	}
	auto := ""
	if a := p.Auto; a != nil {
		auto = fmt.Sprintf(" (chosen under DP from histograms of contributions, within the operator's maxima of %d group(s) and %d row(s))", a.MaxGroups, a.RowsMax())
	}
	b := p.Worker.Bounds
	if b.MaxRowsPerUnit > 0 {
		return fmt.Sprintf("each %s contributes to at most %d group(s) and at most %d row(s) in all%s; values clamped to their bounds",
			ds.primary().Spec.PrivacyUnit, b.MaxGroupsContributed, b.MaxRowsPerUnit, auto)
	}
	return fmt.Sprintf("each %s contributes to at most %d group(s) and at most %d row(s)%s per group%s; values clamped to their bounds",
		ds.primary().Spec.PrivacyUnit, b.MaxGroupsContributed, b.MaxContributionsPerGroup, after, auto)
}
