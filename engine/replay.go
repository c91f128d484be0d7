package engine

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/c1b99f93/cleanroom/dp/model"
	"github.com/c1b99f93/cleanroom/engine/plan"
	"github.com/c1b99f93/cleanroom/engine/provenance"
	"github.com/c1b99f93/cleanroom/errcode"
	"github.com/c1b99f93/cleanroom/policy"
	"github.com/c1b99f93/cleanroom/sandbox/wire"
	"github.com/c1b99f93/cleanroom/server/api"
)

// jobRecords are the records of one job that replay reads, decoded.
type jobRecords struct {
	kind      string            // job_submitted: the job kind, whose stage list replay walks
	snapshots map[string]string // gate: dataset → snapshot digest
	plan      *wire.Plan
	probes    []plan.Probe // plan: the differencing checks
	access    *recordedDecision
	egress    *recordedDecision
	preNoise  string // execution: keyed digest of the pre-noise states
	// probePreNoise is the execution's keyed digest of the differencing checks' states.
	probePreNoise string
	release       *provenance.Release
	// profile, profileDigest and chosen are choose_bounds': the contribution histograms' plan,
	// the keyed digest of their pre-noise bins and the bounds chosen (applied to plan).
	profile       *wire.Plan
	profileDigest string
	chosen        *plan.Choice
	// clampPlan, clampDigest and clamps are the clamping bounds' quantile plan, the keyed
	// digest of its pre-noise trees and the bounds chosen (applied to plan).
	clampPlan *wire.Plan
	// clampHistograms are the clamping bounds' histogram plans (log-scale values).
	clampHistograms []wire.Plan
	clampDigest     string
	clamps          clampRecord
	refusal         *provenance.JobEnd // job_refused / job_failed
	// modelPass and modelSteps are a model job's recorded pass (model_plan) and logistic steps
	// (model_trained), which replay runs the passes with.
	modelPass  *wire.ModelPass
	modelSteps []model.Step
	// wasm and wasmModule are a custom model job's recorded operation (wasm_plan, without
	// the module's bytes and the block key) and module digest.
	wasm       *wire.Wasm
	wasmModule string
}

// recordedDecision is a recorded policy decision with its input, as policy.WhatIf reads it.
type recordedDecision struct {
	policy.Decision
	Input json.RawMessage
}

func recorded(d provenance.PolicyDecision) (*recordedDecision, error) {
	in, err := d.Input.Raw()
	if err != nil {
		return nil, err
	}
	return &recordedDecision{Decision: policy.Decision{Result: d.Result, Reasons: d.Reasons, Reviewers: d.Reviewers, BundleDigest: d.BundleDigest}, Input: in}, nil
}

// replayEvent is the report as its provenance record.
func replayEvent(rep *api.ReplayReport) *provenance.Replay {
	ev := &provenance.Replay{Job: rep.Job, Match: rep.Match, Stages: make([]provenance.ReplayStage, len(rep.Stages))}
	for i, s := range rep.Stages {
		ev.Stages[i] = provenance.ReplayStage(s)
	}
	return ev
}

func readJobRecords(path, job string) (*jobRecords, error) {
	ents, err := provenance.ReadJob(path, job)
	if err != nil {
		return nil, errcode.Wrap(errcode.Internal, err, "the provenance log could not be read")
	}
	if len(ents) == 0 {
		return nil, errcode.New(errcode.NotFound, "the provenance log has no record of job %s", job)
	}
	r := &jobRecords{}
	for _, e := range ents {
		rec, err := e.Decode()
		if err != nil {
			return nil, errcode.Wrap(errcode.Internal, err, "provenance record %d cannot be read", e.Index)
		}
		var derr error
		switch ev := rec.Event.(type) {
		case *provenance.JobSubmitted:
			r.kind = cmp.Or(ev.Kind, KindSQL)
		case *provenance.Gate:
			r.snapshots = ev.Snapshots
		case *provenance.ClaimsAnswered:
			r.snapshots = ev.Snapshots
		case *provenance.Plan:
			if !ev.WorkerPlan.IsNull() {
				r.plan = &wire.Plan{}
				derr = ev.WorkerPlan.Decode(r.plan)
			}
			if derr == nil {
				derr = ev.DifferencingChecks.Decode(&r.probes)
			}
		case *provenance.BoundsChosen:
			derr = r.readBoundsChosen(ev)
		case *provenance.PolicyAccess:
			r.access, derr = recorded(ev.PolicyDecision)
		case *provenance.PolicyEgress:
			r.egress, derr = recorded(ev.PolicyDecision)
		case *provenance.Execution:
			r.preNoise, r.probePreNoise = ev.PreNoiseDigest, ev.DifferencingPreNoiseDigest
		case *provenance.ModelPlan:
			r.modelPass = &wire.ModelPass{}
			derr = ev.Pass.Decode(r.modelPass)
		case *provenance.ModelTrained:
			r.snapshots, r.preNoise = ev.Snapshots, ev.PreNoiseDigest
			if !ev.Steps.IsNull() {
				derr = ev.Steps.Decode(&r.modelSteps)
			}
		case *provenance.WasmPlan:
			r.wasm, r.wasmModule = &wire.Wasm{Blocks: ev.Blocks, BlockTimeoutMS: ev.DeadlineMS}, ev.ModuleDigest
			if derr = ev.Relation.Decode(&r.wasm.Relation); derr == nil {
				derr = ev.Output.Decode(&r.wasm.Output)
			}
		case *provenance.WasmRan:
			r.snapshots, r.preNoise = ev.Snapshots, ev.PreNoiseDigest
		case *provenance.Release:
			r.release = ev
		case *provenance.JobRefused:
			r.refusal = &ev.JobEnd
		case *provenance.JobFailed:
			r.refusal = &ev.JobEnd
		}
		if derr != nil {
			return nil, errcode.Wrap(errcode.Internal, derr, "provenance record %d (%s) cannot be read", e.Index, rec.Type)
		}
	}
	return r, nil
}

// replayState is what replay's stages share: the job's decoded records, the report as it
// grows, and what earlier stages found (the data unchanged, the bundle that decided).
type replayState struct {
	job    string
	r      *jobRecords
	rep    *api.ReplayReport
	dataOK bool
	bundle *policy.Engine
}

func (rs *replayState) add(stage, result, detail string, args ...any) {
	rs.rep.Stages = append(rs.rep.Stages, api.ReplayStage{Stage: stage, Result: result, Detail: fmt.Sprintf(detail, args...)})
}

// Replay re-runs a job from its provenance records by walking its kind's stage list: each
// stage that can be checked again re-checks what it recorded. For a SQL job: the recorded
// snapshots are the registered ones and still have their digests (the data did not change);
// the policy bundle that decided (by digest) re-evaluates the recorded access and egress
// inputs; the recorded worker plan re-runs (with its recorded sampling key) and the keyed
// digest of the pre-noise aggregates is compared. Noise is never drawn again. The report is
// recorded.
func (e *Engine) Replay(ctx context.Context, job string) (*api.ReplayReport, error) {
	r, err := readJobRecords(e.logPath, job)
	if err != nil {
		return nil, err
	}
	stages, ok := jobKinds()[cmp.Or(r.kind, KindSQL)]
	if !ok {
		return nil, errcode.New(errcode.QueryInvalid, "job %s is of kind %q, which this build cannot replay", job, r.kind)
	}
	rs := &replayState{job: job, r: r, rep: &api.ReplayReport{Job: job}}
	for _, st := range stages {
		if st.replay != nil {
			st.replay(ctx, e, rs)
		}
	}
	rep := rs.rep
	rep.Match = true
	for _, s := range rep.Stages {
		if s.Result == api.ReplayMismatch {
			rep.Match = false
		}
	}
	if _, err := e.record(ctx, job, replayEvent(rep)); err != nil {
		return nil, err
	}
	return rep, nil
}

// replayAccess loads the bundle that made the access decision and re-evaluates its input.
func replayAccess(ctx context.Context, e *Engine, rs *replayState) {
	if rs.r.access != nil {
		rs.bundle = e.replayBundle(ctx, rs.r.access.BundleDigest, rs.add)
	} else {
		rs.add("policy_bundle", api.ReplayNotRun, "the job was refused before the access policy")
	}
	replayDecision(ctx, "access_decision", policy.AccessQuery, rs.job, rs.bundle, rs.r.access, rs.add)
}

// replayExecution re-runs the recorded plan, when the job reached execution and its data is
// unchanged.
func replayExecution(ctx context.Context, e *Engine, rs *replayState) {
	switch {
	case rs.r.plan == nil || rs.r.preNoise == "":
		rs.add("execution", api.ReplayNotRun, "the job did not reach execution%s", refusalText(rs.r.refusal))
	case !rs.dataOK:
		rs.add("execution", api.ReplayNotRun, "not re-run: the data it read is not the data recorded")
	default:
		e.replayExecution(ctx, rs.job, rs.r, rs.add)
	}
}

// replayEgress re-evaluates the egress decision, under its own bundle if it was not the
// access decision's.
func replayEgress(ctx context.Context, e *Engine, rs *replayState) {
	r := rs.r
	if r.egress != nil && r.egress.BundleDigest != "" && (r.access == nil || r.egress.BundleDigest != r.access.BundleDigest) {
		rs.bundle = e.replayBundle(ctx, r.egress.BundleDigest, rs.add)
	}
	replayDecision(ctx, "egress_decision", policy.EgressQuery, rs.job, rs.bundle, r.egress, rs.add)
}

// replayRelease says what was released; noise is drawn once, so the output is not recomputed.
func replayRelease(_ context.Context, _ *Engine, rs *replayState) {
	if rs.r.release != nil {
		rs.add("release", api.ReplayNotReplayed, "released with output digest %v; DP noise is drawn once and never again, so the output itself is not recomputed", rs.r.release.OutputDigest)
	} else {
		rs.add("release", api.ReplayNotRun, "nothing was released")
	}
}

// replaySnapshots checks the data the job read is unchanged.
func replaySnapshots(ctx context.Context, e *Engine, rs *replayState) {
	rs.dataOK = e.checkSnapshots(ctx, rs.r, rs.add)
}

func refusalText(refusal *provenance.JobEnd) string {
	if refusal == nil {
		return ""
	}
	return fmt.Sprintf(" (it ended %v)", refusal.Code)
}

// checkSnapshots checks each recorded snapshot is the dataset's registered one and that its
// file still has its digest.
func (e *Engine) checkSnapshots(ctx context.Context, r *jobRecords, add func(stage, result, detail string, args ...any)) bool {
	if len(r.snapshots) == 0 {
		add("snapshots", api.ReplayNotRun, "the job was refused before it named its data")
		return false
	}
	names := make([]string, 0, len(r.snapshots))
	for n := range r.snapshots {
		names = append(names, n)
	}
	sort.Strings(names)
	var problems []string
	for _, name := range names {
		digest := r.snapshots[name]
		d, ok := e.Dataset(name)
		if !ok {
			problems = append(problems, fmt.Sprintf("dataset %s is no longer registered", name))
			continue
		}
		if d.Snapshot.Digest != digest {
			problems = append(problems, fmt.Sprintf("dataset %s: recorded snapshot %s, registered %s", name, digest, d.Snapshot.Digest))
			continue
		}
		w, err := e.worker(ctx, d.Spec.Domain)
		if err == nil {
			err = w.Verify(ctx, digest)
		}
		if err != nil {
			problems = append(problems, fmt.Sprintf("dataset %s: %s", name, errcode.Public(err).Message))
		}
	}
	if len(problems) > 0 {
		add("snapshots", api.ReplayMismatch, "%s", strings.Join(problems, "; "))
		return false
	}
	add("snapshots", api.ReplayMatch, "%d snapshot(s) present with their recorded digests", len(names))
	return true
}

// replayBundle loads the bundle that made a decision, by digest: the one in force, or the copy
// kept under the data directory when it was loaded.
func (e *Engine) replayBundle(ctx context.Context, digest string, add func(stage, result, detail string, args ...any)) *policy.Engine {
	if digest == e.policy.Digest() {
		add("policy_bundle", api.ReplayMatch, "bundle %s (in force)", digest)
		return e.policy
	}
	dir := e.bundleDir(digest)
	if !exists(dir) {
		add("policy_bundle", api.ReplayMismatch, "bundle %s is gone: it is neither in force nor kept under the data directory", digest)
		return nil
	}
	p, err := policy.New(ctx, policy.WithBundleDir(dir))
	if err != nil {
		add("policy_bundle", api.ReplayMismatch, "bundle %s no longer loads: %v", digest, err)
		return nil
	}
	if p.Digest() != digest {
		add("policy_bundle", api.ReplayMismatch, "the bundle kept for %s now has digest %s: it was altered", digest, p.Digest())
		return nil
	}
	add("policy_bundle", api.ReplayMatch, "bundle %s (kept copy)", digest)
	return p
}

// replayDecision re-evaluates a recorded decision's input under the bundle that made it.
func replayDecision(ctx context.Context, stage, query, job string, bundle *policy.Engine, rec *recordedDecision, add func(stage, result, detail string, args ...any)) {
	switch {
	case rec == nil:
		add(stage, api.ReplayNotRun, "no decision was recorded")
		return
	case len(rec.Input) == 0 || string(rec.Input) == "null":
		add(stage, api.ReplayNotRun, "the decision was recorded without its input")
		return
	case bundle == nil:
		add(stage, api.ReplayNotRun, "the bundle that decided is not available")
		return
	}
	changes, err := policy.WhatIf(ctx, bundle, []policy.Recorded{{Job: job, Query: query, Input: rec.Input, Result: rec.Result, Reasons: rec.Reasons}})
	switch {
	case err != nil:
		add(stage, api.ReplayMismatch, "the recorded input cannot be evaluated: %v", err)
	case len(changes) > 0:
		add(stage, api.ReplayMismatch, "recorded %s, re-evaluated %s (%s)", changes[0].From, changes[0].To, strings.Join(changes[0].ToReasons, "; "))
	default:
		add(stage, api.ReplayMatch, "%s again", rec.Result)
	}
}

// replayExecution re-runs the recorded worker plan and compares the keyed digest of its
// pre-noise states with the recorded one.
func (e *Engine) replayExecution(ctx context.Context, job string, r *jobRecords, add func(stage, result, detail string, args ...any)) {
	var domain string
	for name := range r.snapshots {
		if d, ok := e.Dataset(name); ok {
			domain = d.Spec.Domain
			break
		}
	}
	w, err := e.worker(ctx, domain)
	if err != nil {
		add("execution", api.ReplayMismatch, "the worker could not start: %s", errcode.Public(err).Message)
		return
	}
	wp := *r.plan
	wp.Job = "replay-" + job
	parts, bias, err := w.ExecuteWithBias(ctx, &wp)
	if err != nil {
		add("execution", api.ReplayMismatch, "re-running the plan failed: %s", errcode.Public(err).Message)
		return
	}
	pre, err := preNoiseBytes(&plan.Planned{Worker: wp}, parts)
	if err == nil {
		var b []byte
		b, err = biasPreNoise(&wp, bias)
		pre = append(pre, b...)
	}
	if err != nil {
		add("execution", api.ReplayMismatch, "the re-run returned states that do not match the plan")
		return
	}
	if got := e.auditKey.Digest(pre); got != r.preNoise {
		add("execution", api.ReplayMismatch, "the pre-noise aggregates differ from the recorded ones (keyed digest %s, recorded %s)", got, r.preNoise)
		return
	}
	if len(r.probes) == 0 {
		add("execution", api.ReplayMatch, "%d partition(s); the keyed digest of the pre-noise aggregates is the recorded one", len(parts))
		return
	}
	_, probePre, err := executeProbes(ctx, w, wp.Job, slices.Clone(r.probes))
	if err != nil {
		add("execution", api.ReplayMismatch, "re-running the differencing checks failed: %s", errcode.Public(err).Message)
		return
	}
	if got := e.auditKey.Digest(probePre); got != r.probePreNoise {
		add("execution", api.ReplayMismatch, "the differencing checks' pre-noise counts differ from the recorded ones (keyed digest %s, recorded %s)", got, r.probePreNoise)
		return
	}
	add("execution", api.ReplayMatch, "%d partition(s) and %d differencing check(s); the keyed digests of the pre-noise aggregates are the recorded ones", len(parts), len(r.probes))
}

// readBoundsChosen reads the bounds a job chose under DP and applies them to the recorded plan,
// so the execution re-runs at the bounds it ran with.
func (r *jobRecords) readBoundsChosen(ev *provenance.BoundsChosen) error {
	if !ev.ClampPlan.IsNull() || !ev.ClampHistograms.IsNull() {
		r.clampDigest = ev.ClampPreNoiseDigest
		if !ev.ClampPlan.IsNull() {
			r.clampPlan = &wire.Plan{}
			if err := ev.ClampPlan.Decode(r.clampPlan); err != nil {
				return err
			}
		}
		if !ev.ClampHistograms.IsNull() {
			if err := ev.ClampHistograms.Decode(&r.clampHistograms); err != nil {
				return err
			}
		}
		if err := ev.ClampBounds.Decode(&r.clamps); err != nil {
			return err
		}
		if r.plan != nil {
			if err := plan.ApplyClamps(r.plan, &plan.AutoClamp{Targets: r.clamps.Targets}, r.clamps.Chosen); err != nil {
				return err
			}
		}
	}
	if !ev.ProfilePlan.IsNull() {
		r.profile, r.chosen, r.profileDigest = &wire.Plan{}, &plan.Choice{}, ev.PreNoiseDigest
		if err := ev.ProfilePlan.Decode(r.profile); err != nil {
			return err
		}
		if err := ev.Chosen.Decode(r.chosen); err != nil {
			return err
		}
		if r.plan != nil {
			return plan.ApplyBounds(r.plan, r.chosen.Bounds())
		}
	}
	return nil
}
