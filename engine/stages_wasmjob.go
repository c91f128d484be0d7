package engine

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/c1b99f93/cleanroom/dp"
	"github.com/c1b99f93/cleanroom/engine/gate"
	"github.com/c1b99f93/cleanroom/engine/plan"
	"github.com/c1b99f93/cleanroom/engine/provenance"
	"github.com/c1b99f93/cleanroom/errcode"
	"github.com/c1b99f93/cleanroom/policy"
	"github.com/c1b99f93/cleanroom/sandbox/wire"
	"github.com/c1b99f93/cleanroom/server/api"
)

// KindWasm is the kind of a custom model job: the applicant's WebAssembly module runs in the
// worker once per block of privacy units (keyed hash into k disjoint blocks), each output is
// clamped to its declared bounds, and the worker returns only the average over the blocks;
// the engine adds noise calibrated to (hi − lo)/k per element (dp.BlockMean). Whatever the
// module computes, that average is all that leaves (docs/models.md).
const KindWasm = "wasm"

// Custom model request defaults the engine keeps whatever the policy says.
const (
	// DefaultWasmDeadlineMS is a block's deadline when the request sets none.
	DefaultWasmDeadlineMS = 10_000
	// wasmBlockKeyLabel separates the derivation of a job's block key from every other use of
	// the audit key.
	wasmBlockKeyLabel = "cleanroom wasm block key\x00"
)

// wasmState is what a custom model job's stages read and write.
type wasmState struct {
	req    *api.WasmRequest
	rq     *gate.RowQuery
	module []byte // read from the module store at the run stage, never recorded
	size   int    // the module's size in bytes (public: the applicant sent it)
	op     wire.Wasm
	mech   dp.BlockMean
	mean   []float64
	result *api.WasmResult
}

// wasmStages is the custom model job's pipeline. The package doc and docs/architecture.md
// list it (TestStagesAreDocumented).
func wasmStages() []stage {
	return []stage{
		{name: "submit", dryRun: true, run: wasmSubmitStage, records: events(&provenance.JobSubmitted{}),
			doc: "record the job: the module's digest (never its bytes), the SQL, the declared output, k, the deadline and the budget"},
		{name: "gate", dryRun: true, run: wasmGateStage, records: events(&provenance.Gate{}), replay: replaySnapshots,
			doc: "check the declared shape and that the module is stored and has the ABI; admit the row-level SQL (the privacy unit, then the module's columns; no identifier); its datasets must be within the grant"},
		{name: "plan", dryRun: true, run: wasmPlanStage, records: events(&provenance.WasmPlan{}),
			doc: "fix the worker's relation, k, the bounds, the per-block deadline and the block mean's noise (Laplace for delta 0, else Gaussian)"},
		{name: "policy_access", dryRun: true, run: wasmAccessStage, records: events(&provenance.PolicyAccess{}), replay: replayAccess,
			doc: "ask the access policy (kind wasm, its epsilon, delta, k, output length, module size and deadline); an L4 dataset is never operated"},
		{name: "reserve", reaches: phaseReserved, run: wasmReserveStage, records: events(&provenance.BudgetReserved{}),
			doc: "reserve the cost on the grant and the datasets"},
		{name: "worker", run: workerStage,
			doc: "start the domain's sandbox worker"},
		{name: "run", enters: phaseReading, run: wasmRunStage, records: events(&provenance.WasmRan{}), replay: replayWasm,
			doc: "the worker compiles the module, splits the rows into k blocks by a keyed hash of the unit, runs the module per block and returns the clamped block average only; a cancellation after it started is charged"},
		{name: "debit", reaches: phaseDebited, run: wasmDebitStage, records: events(&provenance.BudgetDebited{}),
			doc: "make the debit final, before the released noise is drawn"},
		{name: "mechanism", run: wasmMechanismStage, records: events(&provenance.Mechanism{}),
			doc: "draw the noise (Google DP) on each element of the block average; values and intervals clamped to the bounds"},
		{name: "egress_policy", run: wasmEgressStage, records: events(&provenance.PolicyEgress{}), replay: replayEgress,
			doc: "ask the egress policy; a custom model's output is released on allow only"},
		{name: "release", run: wasmReleaseStage, records: events(&provenance.Release{}), replay: replayRelease,
			doc: "record the release with its output digest"},
		{name: "receipt", run: wasmReceiptStage,
			doc: "sign the release receipt"},
	}
}

// runWasm runs a custom model job through its stages.
func (e *Engine) runWasm(ctx context.Context, id string, j Job) (*Outcome, error) {
	if j.Wasm == nil {
		return nil, errcode.New(errcode.InvalidRequest, "a custom model job carries its module and shape in wasm")
	}
	s := &jobState{id: id, job: j, opts: e.options(ctx, j), wasm: &wasmState{req: j.Wasm}}
	if err := e.runStages(ctx, wasmStages(), s); err != nil {
		return nil, err
	}
	return &Outcome{Wasm: s.wasm.result, Receipt: s.receipt, Datasets: s.ds.names()}, nil
}

// wasmSummary is what job_submitted keeps of a custom model request besides its SQL.
type wasmSummary struct {
	ModuleDigest string          `json:"module_digest"`
	Output       wire.WasmOutput `json:"output"`
	Blocks       int             `json:"blocks"`
	DeadlineMS   int64           `json:"deadline_ms"`
	Epsilon      float64         `json:"epsilon"`
	Delta        float64         `json:"delta"`
}

func wasmOutputOf(o api.WasmOutput) wire.WasmOutput {
	return wire.WasmOutput{Length: o.Length, Bounds: o.Bounds, Default: o.Default}
}

func wasmDeadline(r *api.WasmRequest) int64 {
	if r.DeadlineMS == 0 {
		return DefaultWasmDeadlineMS
	}
	return r.DeadlineMS
}

func wasmSubmitStage(_ context.Context, _ *Engine, s *jobState) ([]provenance.Event, error) {
	r := s.wasm.req
	sum := wasmSummary{ModuleDigest: r.ModuleDigest, Output: wasmOutputOf(r.Output), Blocks: r.Blocks, DeadlineMS: r.DeadlineMS,
		Epsilon: s.opts.Epsilon, Delta: s.opts.Delta}
	return events(&provenance.JobSubmitted{Kind: KindWasm, Principal: provenance.Principal(s.job.Principal), Grant: s.job.Grant, SQL: r.SQL,
		Options: provenance.DocOf(sum)}), nil
}

// CheckWasmRequest checks what a custom model request says without the catalog or the module
// store: the module by exactly one of bytes or digest (a digest well formed), a SQL, the
// declared output (wire.WasmOutput.Validate: length, bounds, default), k and the deadline in
// the platform's ranges. Every refusal has a stable code and names positions only, never a
// value of the request.
func CheckWasmRequest(r *api.WasmRequest) error {
	if r == nil {
		return errcode.New(errcode.InvalidRequest, "a custom model job carries wasm (module or module_digest, sql, output, blocks)")
	}
	switch {
	case len(r.Module) > 0 && r.ModuleDigest != "":
		return errcode.New(errcode.InvalidRequest, "send the module's bytes (wasm.module) or an upload's digest (wasm.module_digest), not both")
	case len(r.Module) == 0 && r.ModuleDigest == "":
		return errcode.New(errcode.InvalidRequest, "a custom model job names its module: wasm.module (base64) or wasm.module_digest (POST /v1/wasm/modules)")
	case len(r.Module) > MaxWasmModuleBytes:
		return errcode.New(errcode.WasmInvalidModule, "the module must be between 1 byte and %d bytes", MaxWasmModuleBytes)
	case r.ModuleDigest != "" && !validModuleDigest(r.ModuleDigest):
		return errcode.New(errcode.InvalidRequest, "wasm.module_digest must be \"sha256:\" and 64 lower-case hex digits")
	case strings.TrimSpace(r.SQL) == "":
		return errcode.New(errcode.InvalidRequest, "a custom model job carries its row-level SQL in wasm.sql")
	case len(r.SQL) > gate.MaxSQLBytes:
		return errcode.New(errcode.InvalidRequest, "the SQL is longer than 64 KiB")
	}
	if err := wasmOutputOf(r.Output).Validate(); err != nil {
		return errcode.Wrap(errcode.InvalidOptions, err, "wasm.output: %s", err.Error())
	}
	for i, b := range r.Output.Bounds {
		if !finite(b[1] - b[0]) { // the sensitivity (hi − lo)/k must be a number
			return errcode.New(errcode.InvalidOptions, "wasm.output: the width of the bounds of element %d must be finite", i+1)
		}
	}
	if r.Blocks < wire.MinWasmBlocks || r.Blocks > wire.MaxWasmBlocks {
		return errcode.New(errcode.InvalidOptions, "wasm.blocks (k) must be between %d and %d", wire.MinWasmBlocks, wire.MaxWasmBlocks)
	}
	if r.DeadlineMS < 0 || r.DeadlineMS > wire.MaxWasmBlockTimeoutMS {
		return errcode.New(errcode.InvalidOptions, "wasm.deadline_ms must be between 1 and %d (0 for the default, %d)", wire.MaxWasmBlockTimeoutMS, DefaultWasmDeadlineMS)
	}
	return nil
}

// wasmGateStage checks the request, finds the module in the store, and admits the SQL: the
// unit first, then the module's columns, none of which may read an identifier (DESIGN §6
// lineage: the unit decides the block and is never passed to the module).
func wasmGateStage(ctx context.Context, e *Engine, s *jobState) ([]provenance.Event, error) {
	r := s.wasm.req
	if err := CheckWasmRequest(r); err != nil {
		return nil, err
	}
	if len(r.Module) > 0 {
		return nil, errcode.New(errcode.InvalidRequest, "the module must be stored before the job runs (the server stores wasm.module and keeps its digest)")
	}
	size, err := e.wasmModuleSize(r.ModuleDigest)
	if err != nil {
		return nil, err
	}
	s.wasm.size = size
	if !(s.opts.Epsilon > 0) || s.opts.Epsilon > dp.MaxEpsilon {
		return nil, errcode.New(errcode.InvalidOptions, "epsilon must be in (0, %d]", dp.MaxEpsilon)
	}
	if !(s.opts.Delta >= 0 && s.opts.Delta < 1) {
		return nil, errcode.New(errcode.InvalidOptions, "delta must be in [0, 1): 0 for Laplace noise, more for Gaussian")
	}
	rq, err := gate.AdmitRows(ctx, e.parser, e, r.SQL, func(string) gate.Usage { return gate.UseWasmInput })
	if err != nil {
		return nil, err
	}
	ds, err := e.sourcesOf(&gate.Query{Sources: rq.Sources})
	if err != nil {
		return nil, err
	}
	if err := ds.within(s.job.Grant, s.job.Terms); err != nil {
		return nil, err
	}
	s.wasm.rq, s.ds = rq, ds
	return events(&provenance.Gate{Admitted: true, Dataset: ds.primary().Spec.Name, Snapshots: ds.snapshots()}), nil
}

// wasmBlockKey is a job's block key: HMAC of the job's ID under the platform's audit key. It
// is secret (no one outside the platform knows which units share a block), different for every
// job, never recorded, and the same when a replay recomputes it.
func (e *Engine) wasmBlockKey(job string) []byte {
	return []byte(e.auditKey.Digest([]byte(wasmBlockKeyLabel + job)))
}

// wasmPlanStage fixes the worker's operation (without the module's bytes) and the mechanism.
func wasmPlanStage(_ context.Context, e *Engine, s *jobState) ([]provenance.Event, error) {
	w, r := s.wasm, s.wasm.req
	rel := w.rq.Relation(s.ds.snapshots(), 0)
	rel.Filter = w.rq.Filter
	for _, c := range w.rq.Columns {
		rel.Columns = append(rel.Columns, wire.RelationColumn{Name: c.Name, Expr: c.Expr})
	}
	w.op = wire.Wasm{Job: s.id, Relation: rel, Output: wasmOutputOf(r.Output), Blocks: r.Blocks, BlockTimeoutMS: wasmDeadline(r)}
	w.mech = dp.BlockMean{Epsilon: s.opts.Epsilon, Delta: s.opts.Delta, Blocks: r.Blocks, Bounds: r.Output.Bounds}
	if err := w.mech.Validate(); err != nil {
		return nil, errcode.Wrap(errcode.InvalidOptions, err, "the block mean cannot be released with these parameters: %s", err.Error())
	}
	return events(&provenance.WasmPlan{ModuleDigest: r.ModuleDigest, ModuleBytes: w.size, Relation: provenance.DocOf(rel),
		Output: provenance.DocOf(w.op.Output), Blocks: r.Blocks, DeadlineMS: w.op.BlockTimeoutMS, Cost: provenance.DocOf(wasmCost(s)),
		Components: provenance.DocOf(w.mech.Components())}), nil
}

func wasmCost(s *jobState) plan.Cost { return plan.Cost{Epsilon: s.opts.Epsilon, Delta: s.opts.Delta} }

func wasmAccessStage(ctx context.Context, e *Engine, s *jobState) ([]provenance.Event, error) {
	var uses []policy.ColumnUse
	for _, u := range s.wasm.rq.Uses {
		uses = append(uses, s.ds.columnUse(gate.ColumnRef{Dataset: u.Dataset, Column: u.Column}, string(u.Usage)))
	}
	op := s.wasm.op
	wp := &policy.WasmParams{Blocks: op.Blocks, OutputLength: op.Output.Length, ModuleBytes: s.wasm.size, DeadlineMS: op.BlockTimeoutMS}
	s.access = policy.AccessInput{Principal: s.job.Principal, Action: policy.ActionSubmitJob, Datasets: s.ds.refs(), Columns: uses, Grant: s.job.Terms,
		Job: policy.JobParams{Kind: KindWasm, Epsilon: s.opts.Epsilon, Delta: s.opts.Delta, Wasm: wp}}
	return e.askAccess(ctx, s, "custom model job")
}

func wasmReserveStage(ctx context.Context, e *Engine, s *jobState) ([]provenance.Event, error) {
	cost := wasmCost(s)
	return e.reserveCost(ctx, s, cost, []mechanismRecord{{Aggregate: "wasm_block_mean", Mechanism: s.wasm.mech.Mechanism(), Epsilon: cost.Epsilon, Delta: cost.Delta,
		Components: s.wasm.mech.Components()}}, "custom model", nil)
}

// meanBytes is what the run record's keyed digest covers: each element's float64 bits, in
// order. The worker sums in block order, so the same data and key give the same bits.
func meanBytes(mean []float64) []byte {
	b := make([]byte, 8*len(mean))
	for i, v := range mean {
		binary.LittleEndian.PutUint64(b[8*i:], math.Float64bits(v))
	}
	return b
}

// wasmRunStage asks the worker for the clamped block average. Once it has asked, the job is
// charged whatever happens, even a cancellation: how long the blocks run depends on the data,
// so whether a cancellation arrives before the answer must not decide the cost. Only a module
// the worker refuses before reading a row (wasm_invalid_module, invalid_options) is refunded.
func wasmRunStage(ctx context.Context, e *Engine, s *jobState) ([]provenance.Event, error) {
	start := time.Now()
	w := s.wasm
	bin, err := e.wasmModule(w.req.ModuleDigest)
	if err != nil {
		return nil, err
	}
	op := w.op
	op.Module, op.BlockKey = bin, e.wasmBlockKey(s.id)
	res, err := s.w.RunWasm(ctx, &op)
	if err != nil {
		if errcode.Of(err) == errcode.Canceled {
			// Charged here, not refunded by the runner (readNothing): see above.
			s.phase = phaseDebited
			return nil, e.charge(ctx, s.id, err)
		}
		return nil, err
	}
	if res.Blocks != op.Blocks || len(res.Mean) != op.Output.Length || res.ModuleDigest != w.req.ModuleDigest {
		return nil, errcode.New(errcode.SandboxFailed, "the worker's answer does not match the custom model job; nothing was released")
	}
	w.mean = res.Mean
	return events(&provenance.WasmRan{Domain: s.ds.domain(), Snapshots: s.ds.snapshots(), ModuleDigest: res.ModuleDigest, Blocks: res.Blocks,
		PreNoiseDigest: e.auditKey.Digest(meanBytes(res.Mean)), DurationMS: time.Since(start).Milliseconds()}), nil
}

func wasmDebitStage(ctx context.Context, e *Engine, s *jobState) ([]provenance.Event, error) {
	return e.debitCost(ctx, s, wasmCost(s))
}

// wasmKNote says what k trades, with the result.
const wasmKNote = "each element is the average over k disjoint blocks of privacy units of the module's clamped output; the noise's stddev shrinks as 1/k, but each block holds about 1/k of the units, so a block's own estimate is noisier: k trades DP noise against sampling error"

func wasmMechanismStage(_ context.Context, _ *Engine, s *jobState) ([]provenance.Event, error) {
	w, r := s.wasm, s.wasm.req
	rel, err := w.mech.Release(w.mean)
	if err != nil {
		return nil, errcode.Wrap(errcode.SandboxFailed, err, "the worker's block average cannot be released; nothing was released")
	}
	res := &api.WasmResult{Job: s.id, Dataset: s.ds.name(), ModuleDigest: r.ModuleDigest, Blocks: r.Blocks, Confidence: dp.Confidence,
		Mechanism:  fmt.Sprintf("%s noise (Google DP) on the average over %d blocks of the module's outputs clamped to their bounds; sensitivity (hi − lo)/%d per element", w.mech.Mechanism(), r.Blocks, r.Blocks),
		Components: noiseComponents(w.mech.Components()), Spent: api.Budget(wasmCost(s)), Note: wasmKNote}
	for i, v := range rel {
		res.Values = append(res.Values, api.WasmElement{Index: i + 1, Value: v.Value, Lower: v.CILow, Upper: v.CIHigh, Bounds: r.Output.Bounds[i],
			NoiseScale: w.mech.NoiseScale(i)})
	}
	w.result = res
	return events(&provenance.Mechanism{Aggregates: provenance.DocOf([]mechanismRecord{{Aggregate: "wasm_block_mean", Mechanism: w.mech.Mechanism(),
		Epsilon: s.opts.Epsilon, Delta: s.opts.Delta, Components: w.mech.Components()}}), RowsReleased: 1}), nil
}

// wasmOutput is the custom model's lineage and size for the egress policy: one aggregate
// column per element, each derived from every column the module read.
func wasmOutput(s *jobState, size int) policy.Output {
	from := []policy.ColumnUse{}
	for _, c := range s.wasm.rq.Columns {
		for _, ref := range c.From {
			from = append(from, s.ds.columnUse(ref, string(gate.UseWasmInput)))
		}
	}
	out := policy.Output{Rows: 1, Bytes: size, Mechanisms: []string{s.wasm.mech.Mechanism()}}
	for i := range s.wasm.req.Output.Length {
		out.Columns = append(out.Columns, policy.OutputColumn{Name: fmt.Sprintf("element_%d", i+1), Kind: policy.KindAggregate,
			Aggregate: "wasm_block_mean", DerivedFrom: from})
	}
	out.Cells = len(out.Columns)
	return out
}

// wasmEgressStage asks the egress policy. Like a model's, a custom model's output goes out on
// allow only: a review decision withholds it (charged: the decision reads the noisy output).
func wasmEgressStage(ctx context.Context, e *Engine, s *jobState) ([]provenance.Event, error) {
	out, err := provenance.Canonical(s.wasm.result)
	if err != nil {
		return nil, errcode.Wrap(errcode.Internal, err, "the result could not be encoded; nothing is released")
	}
	s.digest = sha(out)
	in := policy.EgressInput{Principal: s.job.Principal, Datasets: s.access.Datasets, Job: s.access.Job, Output: wasmOutput(s, len(out)), Grant: s.job.Terms}
	d, err := e.policy.Egress(ctx, in)
	if err != nil {
		d = policy.Decision{Result: "deny", Reasons: []string{"policy_error: the egress policy could not be evaluated"}, BundleDigest: e.policy.Digest()}
	}
	s.egress = d
	evs := events(&provenance.PolicyEgress{PolicyDecision: decisionRecord(d, in)})
	switch d.Result {
	case policy.ResultAllow:
		return evs, nil
	case policy.ResultReview:
		return evs, errcode.New(errcode.EgressDenied, "the egress policy sends this custom model's output to review (%s), and it cannot be held for review on this platform yet; it was withheld", strings.Join(d.Reasons, "; "))
	}
	return evs, s.denial()
}

func wasmReleaseStage(_ context.Context, _ *Engine, s *jobState) ([]provenance.Event, error) {
	return events(&provenance.Release{OutputDigest: s.digest, Rows: 1}), nil
}

func wasmReceiptStage(ctx context.Context, e *Engine, s *jobState) ([]provenance.Event, error) {
	s.wasm.result.LogIndex = s.last.Index
	var mechs []ReceiptMechanism
	for _, v := range s.wasm.result.Values {
		mechs = append(mechs, ReceiptMechanism{Column: fmt.Sprintf("element_%d", v.Index), Mechanism: s.wasm.mech.Mechanism(), Epsilon: s.opts.Epsilon, Delta: s.opts.Delta})
	}
	r, err := e.signReceipt(ctx, ReceiptBody{Job: s.id, Grant: s.job.Grant, OutputDigest: s.digest, Spent: wasmCost(s), Mechanisms: mechs, LogIndex: s.last.Index})
	s.receipt = r
	return nil, err
}

// replayWasm re-runs the recorded operation — the same module (from the store, checked against
// its digest), relation, shape, k, deadline and block key (derived again from the job's ID) —
// over the data, when it is unchanged, and compares the keyed digest of the block average
// with the recorded one. The blocks are fixed by the keyed hash and summed in block order, so
// the digest matches bit for bit unless a block's run ends differently (one that ran near its
// deadline may time out on one run and not the other); the noise is never drawn again.
func replayWasm(ctx context.Context, e *Engine, rs *replayState) {
	r := rs.r
	switch {
	case r.wasm == nil || r.preNoise == "":
		rs.add("run", api.ReplayNotRun, "the job did not reach the worker's run%s", refusalText(r.refusal))
		return
	case !rs.dataOK:
		rs.add("run", api.ReplayNotRun, "not re-run: the data it read is not the data recorded")
		return
	}
	var domain string
	for name := range r.snapshots {
		if d, ok := e.Dataset(name); ok {
			domain = d.Spec.Domain
		}
	}
	bin, err := e.wasmModule(r.wasmModule)
	if err != nil {
		rs.add("run", api.ReplayMismatch, "the module is not in the store: %s", errcode.Public(err).Message)
		return
	}
	w, err := e.worker(ctx, domain)
	if err != nil {
		rs.add("run", api.ReplayMismatch, "the worker could not start: %s", errcode.Public(err).Message)
		return
	}
	op := *r.wasm
	op.Job, op.Module, op.BlockKey = "replay-"+rs.job, bin, e.wasmBlockKey(rs.job)
	res, err := w.RunWasm(ctx, &op)
	switch {
	case err != nil:
		rs.add("run", api.ReplayMismatch, "re-running the module failed: %s", errcode.Public(err).Message)
	case e.auditKey.Digest(meanBytes(res.Mean)) != r.preNoise:
		rs.add("run", api.ReplayMismatch, "the block average differs from the recorded one (keyed digest %s, recorded %s)", e.auditKey.Digest(meanBytes(res.Mean)), r.preNoise)
	default:
		rs.add("run", api.ReplayMatch, "%d blocks; the keyed digest of the pre-noise block average is the recorded one", res.Blocks)
	}
}
