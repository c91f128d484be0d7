package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/c1b99f93/cleanroom/engine/gate"
	"github.com/c1b99f93/cleanroom/engine/ledger"
	"github.com/c1b99f93/cleanroom/engine/plan"
	"github.com/c1b99f93/cleanroom/engine/provenance"
	"github.com/c1b99f93/cleanroom/errcode"
	"github.com/c1b99f93/cleanroom/policy"
	"github.com/c1b99f93/cleanroom/policy/screen"
	"github.com/c1b99f93/cleanroom/sandbox"
	"github.com/c1b99f93/cleanroom/sandbox/wire"
	"github.com/c1b99f93/cleanroom/server/api"
)

// jobState is what a SQL job's stages read and write, in stage order.
type jobState struct {
	id     string
	job    Job
	opts   plan.Options
	dryRun bool
	phase  phase
	// last is the entry of the last event the runner wrote (the release record's index).
	last     provenance.Entry
	cleanups []func()

	q           *gate.Query // gate
	ds          sources
	p           *plan.Planned
	access      policy.AccessInput // policy_access: the input, and the decision once made
	decision    *policy.Decision
	fingerprint string // fingerprint

	// repeat is set when an identical earlier release answers the job (release_recall): the
	// budget and the worker are skipped, and the release record names the first job.
	repeat *provenance.Release
	// rawCold is set on a repeat whose screen will load a raw-value set into memory: its
	// duration then depends on the data, so it is not shown at once (Outcome.Repeat).
	rawCold bool

	w           *sandbox.Client // worker
	parts       []wire.Partition
	choice      *plan.Choice       // choose_bounds: the contribution bounds chosen under DP
	clamps      []plan.ClampChoice // choose_bounds: the clamping bounds chosen under DP
	bias        *wire.BiasStates   // execute: the bounding-cost counts' pre-noise states
	probeStates [][]byte
	probePre    []byte
	started     time.Time

	res    *Result      // mechanism (or release_recall)
	stored storedAnswer // what remember keeps: every noisy row, before post-processing

	screening screen.Screening // screen
	summary   policy.Output
	digest    string
	egress    policy.Decision // egress_policy
	evaluated bool            // the egress policy could be evaluated
	held      *Hold           // hold
	receipt   []byte          // receipt

	v    *verifyState    // a verification job's (verifyStages)
	fed  *federatedState // a federated job's (federatedStages)
	m    *modelState     // a model job's (modelStages)
	wasm *wasmState      // a custom model job's (wasmStages)
}

func (s *jobState) cleanup() {
	for _, f := range slices.Backward(s.cleanups) {
		f()
	}
}

func (s *jobState) isRepeat() bool { return s.repeat != nil }

// timingFree says the job was answered from an earlier release without any work whose duration
// depends on the data (Outcome.Repeat).
func (s *jobState) timingFree() bool { return s.repeat != nil && !s.rawCold }

func (s *jobState) isHeld() bool { return s.held != nil }

func events(evs ...provenance.Event) []provenance.Event { return evs }

// sqlStages is the DP SQL job's pipeline. The package doc and docs/architecture.md list it
// (TestStagesAreDocumented).
func sqlStages() []stage {
	return []stage{
		{name: "submit", local: true, dryRun: true, run: submitStage, records: events(&provenance.JobSubmitted{}),
			doc: "record the job and its options"},
		{name: "gate", local: true, dryRun: true, run: gateStage, records: events(&provenance.Gate{}), replay: replaySnapshots,
			doc: "admit the SQL; its datasets must be within the grant"},
		{name: "plan", local: true, dryRun: true, run: planStage, records: events(&provenance.Plan{}),
			doc: "bound contributions, choose partitions, split the budget, set the deadline from the rows the plan may read; note the filter and add one differencing check against every earlier filter that could pair with it, under the grant's lock"},
		{name: "policy_access", local: true, dryRun: true, run: accessStage, records: events(&provenance.PolicyAccess{}), replay: replayAccess,
			doc: "ask the access policy; an L4 dataset is never operated"},
		{name: "fingerprint", local: true, run: fingerprintStage,
			doc: "name the output; one job at a time per output"},
		{name: "decision_recall", local: true, run: decisionRecallStage, records: events(&provenance.DecisionRecalled{}),
			doc: "an output held, rejected or denied answers its repeats"},
		{name: "release_recall", local: true, run: releaseRecallStage, records: events(&provenance.AnsweredFromRelease{}),
			doc: "an output released before is answered again, at no cost"},
		{name: "reserve", reaches: phaseReserved, skip: (*jobState).isRepeat, run: reserveStage, records: events(&provenance.BudgetReserved{}),
			doc: "reserve the cost on the grant and the datasets"},
		{name: "worker", skip: (*jobState).isRepeat, run: workerStage,
			doc: "start the domain's sandbox worker"},
		{name: "choose_bounds", enters: phaseReading, skip: noAutoBounds, run: chooseBoundsStage, records: events(&provenance.BoundsChosen{}), replay: replayChooseBounds,
			doc: "choose unset bounds under DP: clamping bounds from DP quantiles, contribution bounds from DP histograms of contributions per unit"},
		{name: "execute", enters: phaseReading, skip: (*jobState).isRepeat, run: executeStage, records: events(&provenance.Execution{}), replay: replayExecution,
			doc: "the worker runs the plan: pre-noise aggregates, never rows"},
		{name: "debit", reaches: phaseDebited, skip: (*jobState).isRepeat, run: debitStage, records: events(&provenance.BudgetDebited{}),
			doc: "make the debit final, before any noise is drawn"},
		{name: "mechanism", local: true, skip: (*jobState).isRepeat, run: mechanismStage, records: events(&provenance.Mechanism{}),
			doc: "draw the noise: the DP mechanisms release cells and intervals"},
		{name: "screen", local: true, run: screenStage, records: events(&provenance.Reviewer{}),
			doc: "screen the output; withhold rows of too few units; post-process"},
		{name: "egress_policy", local: true, run: egressStage, records: events(&provenance.PolicyEgress{}), replay: replayEgress,
			doc: "ask the egress policy: allow, review or deny"},
		{name: "hold", skip: func(s *jobState) bool { return s.egress.Result != policy.ResultReview }, run: holdStage, records: events(&provenance.Held{}, &provenance.OutputDecision{}),
			doc: "an output for review is held, and the hold sticks to it"},
		{name: "deny", skip: func(s *jobState) bool {
			return s.egress.Result == policy.ResultReview || s.egress.Result == policy.ResultAllow
		}, run: denyStage, records: events(&provenance.OutputDecision{}),
			doc: "a denial sticks to the output; the job ends charged"},
		{name: "store_decision", skip: func(s *jobState) bool { return s.egress.Result == policy.ResultAllow || !s.evaluated }, run: storeDecisionStage,
			doc: "store the decision on the output"},
		{name: "release", local: true, skip: (*jobState).isHeld, run: releaseStage, records: events(&provenance.Release{}), replay: replayRelease,
			doc: "record the release with its output digest"},
		{name: "receipt", skip: (*jobState).isHeld, run: receiptStage,
			doc: "sign the release receipt"},
		{name: "remember", skip: (*jobState).isRepeat, run: rememberStage, records: events(&provenance.ReleaseNotStored{}),
			doc: "keep the noisy rows, so a repeat gets the same answer"},
	}
}

func submitStage(_ context.Context, _ *Engine, s *jobState) ([]provenance.Event, error) {
	j := s.job
	return events(&provenance.JobSubmitted{Kind: KindSQL, Principal: provenance.Principal(j.Principal), Grant: j.Grant, SQL: j.SQL,
		Options: provenance.DocOf(s.opts)}), nil
}

func gateStage(ctx context.Context, e *Engine, s *jobState) ([]provenance.Event, error) {
	q, err := gate.Admit(ctx, e.parser, e, s.job.SQL)
	if err != nil {
		return nil, err
	}
	ds, err := e.sourcesOf(q)
	if err != nil {
		return nil, err
	}
	if err := ds.within(s.job.Grant, s.job.Terms); err != nil {
		return nil, err
	}
	// The public partitions are all computed and released: a query with more than the output
	// limits allow is refused now, from the SQL and the catalog, before any work.
	if err := checkPartitions(q, e.policy.Params()); err != nil {
		return nil, err
	}
	s.q, s.ds = q, ds
	return events(&provenance.Gate{Admitted: true, Dataset: ds.primary().Spec.Name, Snapshots: ds.snapshots()}), nil
}

func planStage(ctx context.Context, e *Engine, s *jobState) ([]provenance.Event, error) {
	shape, err := queryShape(s.q, s.ds)
	if err != nil {
		return nil, errcode.Wrap(errcode.Internal, err, "the query could not be fingerprinted")
	}
	priors, err := e.differencing(ctx, s.job.Grant, shape, s.id, s.q.Filter, s.ds, s.dryRun)
	if err != nil {
		return nil, err
	}
	var key uint64
	if !s.dryRun { // a dry run shows no sampling key: it would never be used
		key = randomKey()
	}
	p, err := plan.Build(s.q, s.ds.snapshots(), s.opts, key, priors...)
	if err != nil {
		return nil, err
	}
	p.Worker.Job = s.id
	setDeadline(s.job, s.ds, p)
	s.p = p
	return events(&provenance.Plan{WorkerPlan: provenance.DocOf(p.Worker), PublicPartitions: provenance.DocOf(p.Public),
		Cost: provenance.DocOf(p.Cost), Split: provenance.DocOf(p.Split), DifferencingChecks: provenance.DocOf(p.Probes)}), nil
}

func accessStage(ctx context.Context, e *Engine, s *jobState) ([]provenance.Event, error) {
	s.access = accessInput(s.job, s.ds, s.q, s.p, s.opts)
	return e.askAccess(ctx, s, "job")
}

// askAccess asks the access policy about s.access, records the decision, and refuses a job
// (what names it in the refusal) it denies or that reads an L4 dataset.
func (e *Engine) askAccess(ctx context.Context, s *jobState, what string) ([]provenance.Event, error) {
	d, err := e.policy.Access(ctx, s.access)
	if err != nil {
		return nil, errcode.Wrap(errcode.PolicyDenied, err, "the access policy could not be evaluated; denied")
	}
	s.decision = &d
	evs := events(&provenance.PolicyAccess{PolicyDecision: decisionRecord(d, s.access)})
	if !d.Allowed() {
		return evs, errcode.New(errcode.PolicyDenied, "the access policy denied this %s: %s", what, strings.Join(d.Reasons, "; "))
	}
	return evs, s.ds.operable()
}

// fingerprintStage names the output and takes its lock: an identical query on this grant is
// answered from its first release, one at a time, so two identical jobs in flight cannot both
// draw fresh noise.
func fingerprintStage(_ context.Context, e *Engine, s *jobState) ([]provenance.Event, error) {
	fp, err := fingerprintOf(s.job.Grant, s.q, s.ds, s.opts)
	if err != nil {
		return nil, errcode.Wrap(errcode.Internal, err, "the query could not be fingerprinted")
	}
	s.fingerprint = fp
	s.cleanups = append(s.cleanups, e.lockFingerprint(s.job.Grant+"/"+fp))
	return nil, nil
}

// decisionRecallStage: a decision on this output (held, rejected, denied) answers every
// repeat, whatever the repeat's aliases, ORDER BY or LIMIT (decision.go).
func decisionRecallStage(ctx context.Context, e *Engine, s *jobState) ([]provenance.Event, error) {
	d, ok, err := e.ledger.DecisionFor(ctx, s.job.Grant, s.fingerprint)
	if err != nil {
		return nil, errcode.Wrap(errcode.Internal, err, "the store of output decisions is unavailable")
	}
	if !ok || !d.Sticks() {
		return nil, nil
	}
	return events(&provenance.DecisionRecalled{DecidedJob: d.Job, State: string(d.State), Code: string(d.Code)}), recalledRefusal(d)
}

func reserveStage(ctx context.Context, e *Engine, s *jobState) ([]provenance.Event, error) {
	return e.reserveCost(ctx, s, s.p.Cost, mechanisms(s.p), "job", func(left ledger.Budget) string { return exhaustedHint(s.p.Cost, left) })
}

// exhaustedHint says what would still run when a job's delta is what the budget cannot cover:
// a smaller delta, or keys with a public domain, which spend no delta at all. (An epsilon
// shortfall has no such way round: every job spends epsilon.)
func exhaustedHint(need plan.Cost, left ledger.Budget) string {
	if need.Delta <= left.Delta || need.Epsilon > left.Epsilon {
		return ""
	}
	smaller := ""
	if left.Delta > 0 {
		smaller = fmt.Sprintf("give a smaller delta (at most %.3g), or ", left.Delta)
	}
	return "; its delta pays for DP partition selection: " + smaller +
		"group by keys with a public domain, which spend no delta — a catalog column with a domain, width_bucket(col, lo, hi, n), date_trunc of a column with a catalog date_range, or a CASE whose THEN and ELSE branches are all literals — and set delta 0"
}

func workerStage(ctx context.Context, e *Engine, s *jobState) ([]provenance.Event, error) {
	w, err := e.worker(ctx, s.ds.domain())
	s.w = w
	return nil, err
}

func executeStage(ctx context.Context, e *Engine, s *jobState) ([]provenance.Event, error) {
	start := time.Now()
	parts, bias, err := s.w.ExecuteWithBias(ctx, &s.p.Worker)
	if err == nil {
		s.probeStates, s.probePre, err = executeProbes(ctx, s.w, s.id, s.p.Probes)
	}
	if err != nil {
		return nil, err
	}
	pre, err := preNoiseBytes(s.p, parts)
	if err == nil {
		var b []byte
		b, err = biasPreNoise(&s.p.Worker, bias)
		pre = append(pre, b...)
	}
	if err != nil {
		return nil, errcode.Wrap(errcode.SandboxFailed, err, "the worker returned states that do not match the plan; nothing was released")
	}
	s.parts, s.bias = parts, bias
	exec := &provenance.Execution{
		Domain: s.ds.domain(), Snapshots: s.ds.snapshots(), DurationMS: time.Since(start).Milliseconds(),
		PreNoiseDigest: e.auditKey.Digest(pre),
	}
	if len(s.p.Probes) > 0 {
		exec.DifferencingPreNoiseDigest = e.auditKey.Digest(s.probePre)
	}
	return events(exec), nil
}

func debitStage(ctx context.Context, e *Engine, s *jobState) ([]provenance.Event, error) {
	return e.debitCost(ctx, s, s.p.Cost)
}

func mechanismStage(_ context.Context, _ *Engine, s *jobState) ([]provenance.Event, error) {
	res, err := release(s.q, s.p, s.parts)
	if err != nil {
		return nil, errcode.Wrap(errcode.Internal, err, "the DP mechanism failed; nothing was released")
	}
	probes, err := releaseProbes(s.p.Probes, s.probeStates)
	if err != nil {
		return nil, err
	}
	if res.Bias, err = releaseBias(s.p, s.choice, s.bias); err != nil {
		return nil, errcode.Wrap(errcode.Internal, err, "the DP mechanism failed; nothing was released")
	}
	flagClampBounds(s.q, s.p, res)
	// The noisy rows are remembered whether released or held: a repeat of a held query gets
	// the same rows (and the same review), never fresh noise.
	s.stored = storedAnswer{Rows: slices.Clone(res.Rows), Units: res.units, Probes: probes, Bias: res.Bias}
	res.probes = probes
	res.Job, res.Dataset = s.id, s.ds.name()
	res.Bounds = boundsText(s.ds, s.p)
	res.Spent = api.Budget(s.p.Cost)
	res.Split = s.p.Split
	s.res = res
	return events(&provenance.Mechanism{Aggregates: provenance.DocOf(mechanisms(s.p)), RowsReleased: len(res.Rows), DifferencingChecks: provenance.DocOf(probes)}), nil
}

// screenStage screens the result (every row, before ORDER BY and LIMIT), withholds the rows
// that stand for too few privacy units and post-processes the rest. The findings go to the
// egress policy and into provenance (they name columns and codes, never values).
func screenStage(ctx context.Context, e *Engine, s *jobState) ([]provenance.Event, error) {
	s.summary = outputSummary(s.ds, s.q, s.p, s.res)
	sc, err := e.jobScreener(ctx, s.ds, s.p, s.res.probes)
	if err != nil {
		return nil, err
	}
	s.screening = sc.Screen(ctx, newResultOutput(s.summary, s.q, s.res))
	// Withholding reads only noisy unit counts, so it is post-processing: it costs no budget,
	// and telling how many rows were withheld (when the policy allows) leaks nothing more.
	withhold(s.res, s.screening.Suppressed)
	if e.policy.Params().DiscloseSuppressed && s.p.UnitCount >= 0 {
		n := len(s.screening.Suppressed)
		s.res.Suppressed = &n
	}
	if err := e.postProcessRelease(ctx, s); err != nil {
		return nil, err
	}
	// One encoding of the output gives its size (for the limits) and its digest (for the hold,
	// the release record and the receipt).
	size, digest, err := outputDigest(s.res)
	if err != nil {
		return nil, err
	}
	s.digest = digest
	s.summary.Rows, s.summary.Cells = len(s.res.Rows), len(s.res.Rows)*len(s.res.Columns)
	s.summary.Bytes, s.summary.Suppressed = size, len(s.screening.Suppressed)
	return events(&provenance.Reviewer{Findings: provenance.DocOf(s.screening.Findings), SuppressedRows: len(s.screening.Suppressed)}), nil
}

func egressStage(ctx context.Context, e *Engine, s *jobState) ([]provenance.Event, error) {
	in := policy.EgressInput{Principal: s.job.Principal, Datasets: s.access.Datasets, Job: s.access.Job, Output: s.summary,
		Findings: s.screening.Findings, Grant: s.job.Terms}
	d, err := e.policy.Egress(ctx, in)
	s.evaluated = err == nil
	if !s.evaluated {
		d = policy.Decision{Result: "deny", Reasons: []string{"policy_error: the egress policy could not be evaluated"}, BundleDigest: e.policy.Digest()}
	}
	s.egress = d
	return events(&provenance.PolicyEgress{PolicyDecision: decisionRecord(d, in)}), nil
}

// holdStage holds an output the egress policy sends to review (a SQL or federated result, or
// a model). A fresh job stays charged: the decision is a function of the noisy output.
func holdStage(_ context.Context, _ *Engine, s *jobState) ([]provenance.Event, error) {
	s.held = &Hold{Grant: s.job.Grant, Reviewers: max(s.egress.Reviewers, 1), Reasons: s.egress.Reasons, OutputDigest: s.digest}
	if s.m != nil {
		s.held.Kind = KindModel
	}
	return events(
		&provenance.Held{Grant: s.held.Grant, Reviewers: s.held.Reviewers, Reasons: s.held.Reasons, OutputDigest: s.held.OutputDigest},
		s.outputDecision(ledger.Decision{State: ledger.DecisionHeld, Job: s.id}),
	), nil
}

// denyStage records the egress policy's denial as the output's decision (not when the policy
// could not be evaluated: that decided nothing about the output). A fresh job stays charged:
// a denial cannot be used to probe for free.
func denyStage(_ context.Context, _ *Engine, s *jobState) ([]provenance.Event, error) {
	if !s.evaluated {
		return nil, s.denial()
	}
	return events(s.outputDecision(s.deniedDecision())), nil
}

func (s *jobState) denial() error {
	return errcode.New(errcode.EgressDenied, "the output was withheld by egress review: %s", strings.Join(s.egress.Reasons, "; "))
}

func (s *jobState) deniedDecision() ledger.Decision {
	return ledger.Decision{State: ledger.DecisionDenied, Job: s.id, Code: errcode.EgressDenied, Reason: strings.Join(s.egress.Reasons, "; ")}
}

func (s *jobState) outputDecision(d ledger.Decision) *provenance.OutputDecision {
	return &provenance.OutputDecision{Fingerprint: s.fingerprint, State: string(d.State), Code: string(d.Code), Reason: d.Reason}
}

// storeDecisionStage stores the hold or the denial, after its record, under the output's
// lock. Fail closed: without the stored decision the job fails and nothing is released.
func storeDecisionStage(ctx context.Context, e *Engine, s *jobState) ([]provenance.Event, error) {
	d := ledger.Decision{State: ledger.DecisionHeld, Job: s.id}
	if s.held == nil {
		d = s.deniedDecision()
	}
	if err := e.ledger.Decide(ctx, s.job.Grant, s.fingerprint, d); err != nil {
		return nil, errcode.Wrap(errcode.Internal, err, "the decision on the output could not be stored; nothing was released")
	}
	if s.held == nil {
		return nil, s.denial()
	}
	return nil, nil
}

func releaseStage(_ context.Context, _ *Engine, s *jobState) ([]provenance.Event, error) {
	data := &provenance.Release{}
	if s.repeat != nil {
		data = s.repeat
	}
	data.OutputDigest, data.Rows = s.digest, len(s.res.Rows)
	return events(data), nil
}

// receiptStage stamps the result with its release record's log index and signs the receipt.
func receiptStage(ctx context.Context, e *Engine, s *jobState) ([]provenance.Event, error) {
	s.res.LogIndex = s.last.Index
	r, err := e.receipt(ctx, s.job.Grant, s.res, s.digest, nil)
	s.receipt = r
	return nil, err
}

// rememberStage stores a fresh release (or hold) for identical queries. The release is already
// recorded, so a failure here does not withdraw it; it is recorded, and the next identical
// query will be computed (and charged) again.
func rememberStage(ctx context.Context, e *Engine, s *jobState) ([]provenance.Event, error) {
	st := s.stored
	st.Spent, st.Split, st.Bounds = s.res.Spent, s.res.Split, s.res.Bounds
	return e.remember(ctx, s, st, "the answer could not be stored for repeated queries"), nil
}

// remember stores answer (as JSON) for the repeats of s's output on its grant. A failure
// withdraws nothing already recorded: it is recorded with reason, and the next repeat is
// computed (and charged) again.
func (e *Engine) remember(ctx context.Context, s *jobState, answer any, reason string) []provenance.Event {
	b, err := json.Marshal(answer)
	if err == nil {
		err = e.ledger.Remember(ctx, s.job.Grant, s.fingerprint, s.id, b)
	}
	if err != nil {
		return events(&provenance.ReleaseNotStored{Reason: reason})
	}
	return nil
}

// recall returns the stored answer to s's output on its grant, if there is one.
func (e *Engine) recall(ctx context.Context, s *jobState) (ledger.Released, bool, error) {
	prior, ok, err := e.ledger.Recall(ctx, s.job.Grant, s.fingerprint)
	if err != nil {
		return prior, false, errcode.Wrap(errcode.Internal, err, "the store of released answers is unavailable")
	}
	return prior, ok, nil
}

// releaseRecallStage answers a job whose output was computed before on the same grant and has
// no decision that sticks (it was released, perhaps after review): the same noisy rows, to be
// re-post-processed for this query and reviewed again; nothing is charged. An output held,
// rejected or denied never gets here (decision_recall).
func releaseRecallStage(ctx context.Context, e *Engine, s *jobState) ([]provenance.Event, error) {
	prior, ok, err := e.recall(ctx, s)
	if !ok {
		return nil, err
	}
	var st storedAnswer
	if err := json.Unmarshal(prior.Result, &st); err != nil {
		return nil, errcode.Wrap(errcode.Internal, err, "the stored answer could not be read")
	}
	if st.Rows == nil {
		st.Rows = [][]api.Cell{}
	}
	for _, row := range st.Rows {
		if len(row) != len(s.q.Outputs) {
			return nil, errcode.New(errcode.Internal, "the stored answer does not match the query's outputs")
		}
	}
	if s.p.UnitCount >= 0 && st.Units == nil && len(st.Rows) == 0 {
		st.Units = []float64{} // an empty answer's counts were omitted when stored
	}
	if (s.p.UnitCount >= 0) != (st.Units != nil) || (st.Units != nil && len(st.Units) != len(st.Rows)) {
		return nil, errcode.New(errcode.Internal, "the stored answer's unit counts do not match the plan")
	}
	res := &Result{Result: api.Result{Job: s.id, Dataset: s.ds.name(), Rows: st.Rows, Bounds: st.Bounds, Bias: st.Bias,
		Split: fmt.Sprintf("identical to job %s on this grant: its released answer is returned and no budget is spent (it cost epsilon %.4g, delta %.3g)",
			prior.Job, st.Spent.Epsilon, st.Spent.Delta)}, units: st.Units, probes: st.Probes}
	res.Columns = resultColumns(s.q, s.p)
	s.res = res
	s.repeat = &provenance.Release{ReleasedJob: prior.Job, Charged: new(bool)}
	s.rawCold = !e.rawSetsCached(s.ds)
	return events(&provenance.AnsweredFromRelease{ReleasedJob: prior.Job}), nil
}
