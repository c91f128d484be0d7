package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/c1b99f93/cleanroom/engine/catalog"
	"github.com/c1b99f93/cleanroom/engine/dp"
	"github.com/c1b99f93/cleanroom/engine/errcode"
	"github.com/c1b99f93/cleanroom/engine/gate"
	"github.com/c1b99f93/cleanroom/engine/ledger"
	"github.com/c1b99f93/cleanroom/engine/plan"
	"github.com/c1b99f93/cleanroom/engine/provenance"
	"github.com/c1b99f93/cleanroom/policy"
	"github.com/c1b99f93/cleanroom/sandbox"
)

// Job is an applicant's SQL job within a grant.
type Job struct {
	Principal policy.Principal
	Grant     string
	SQL       string
	Options   plan.Options
}

// Result is a released result: noisy cells with their mechanism, budget and 95% interval.
type Result struct {
	Job      string      `json:"job"`
	Dataset  string      `json:"dataset"`
	Columns  []ResultCol `json:"columns"`
	Rows     [][]Cell    `json:"rows"`
	Spent    plan.Cost   `json:"spent"`
	Split    string      `json:"budget_split"`
	Bounds   string      `json:"bounds"`
	LogIndex uint64      `json:"log_index"`
}

// ResultCol describes an output column.
type ResultCol struct {
	Name string `json:"name"`
	Kind string `json:"kind"` // group_key or aggregate
}

// Cell is a group key value or a released aggregate.
type Cell struct {
	Key *string      `json:"key,omitempty"`
	DP  *dp.Released `json:"dp,omitempty"`
}

// Submit runs a job through the pipeline and returns its released result, or an *errcode.Error
// whose message is safe to show to the applicant.
func (e *Engine) Submit(ctx context.Context, j Job) (*Result, error) {
	id := newJobID()
	opts := j.Options.Defaults()
	if _, err := e.record(ctx, "job_submitted", id, map[string]any{
		"principal": j.Principal, "grant": j.Grant, "sql": j.SQL, "options": opts,
	}); err != nil {
		return nil, err
	}
	res, stage, err := e.run(ctx, id, j, opts)
	if err != nil {
		typ := "job_refused"
		if stage == stageAfterReserve {
			typ = "job_failed"
		}
		pub := errcode.Public(err)
		if _, rerr := e.record(context.WithoutCancel(ctx), typ, id, map[string]any{"code": pub.Code, "message": pub.Message, "position": pub.Position}); rerr != nil {
			return nil, errors.Join(err, rerr)
		}
		return nil, err
	}
	return res, nil
}

type stage int

const (
	stageBeforeReserve stage = iota
	stageAfterReserve
)

func (e *Engine) run(ctx context.Context, id string, j Job, opts plan.Options) (*Result, stage, error) {
	q, err := gate.Admit(ctx, e.parser, e, j.SQL)
	if err != nil {
		return nil, stageBeforeReserve, err
	}
	e.mu.RLock()
	ds := e.datasets[q.Dataset.Name]
	e.mu.RUnlock()
	if _, err := e.record(ctx, "gate", id, map[string]any{"admitted": true, "dataset": q.Dataset.Name, "snapshot": ds.Snapshot.Digest}); err != nil {
		return nil, stageBeforeReserve, err
	}
	p, err := plan.Build(q, ds.Snapshot.Digest, opts, randomKey())
	if err != nil {
		return nil, stageBeforeReserve, err
	}
	p.Worker.Job = id
	if _, err := e.record(ctx, "plan", id, map[string]any{"worker_plan": p.Worker, "public_partitions": p.Public, "cost": p.Cost, "split": p.Split}); err != nil {
		return nil, stageBeforeReserve, err
	}

	dref := []policy.DatasetRef{{Name: ds.Spec.Name, Provider: ds.Spec.Provider, Grade: string(ds.Spec.Grade), Domain: ds.Spec.Domain, PrivacyUnit: ds.Spec.PrivacyUnit}}
	params := policy.JobParams{Kind: "sql", Epsilon: opts.Epsilon, Delta: opts.Delta,
		MaxGroupsContributed: int(opts.MaxGroupsContributed), MaxContributionsPerGroup: int(opts.MaxContributionsPerGroup), PublicPartitions: p.Public}
	var uses []policy.ColumnUse
	for _, u := range q.Uses {
		uses = append(uses, e.columnUse(ds.Spec, u.Column, string(u.Usage)))
	}
	access, err := e.policy.Access(ctx, policy.AccessInput{Principal: j.Principal, Action: policy.ActionSubmitJob, Datasets: dref, Columns: uses, Job: params})
	if err != nil {
		return nil, stageBeforeReserve, errcode.Wrap(errcode.PolicyDenied, err, "the access policy could not be evaluated; denied")
	}
	if _, err := e.record(ctx, "policy_access", id, access); err != nil {
		return nil, stageBeforeReserve, err
	}
	if !access.Allowed() {
		return nil, stageBeforeReserve, errcode.New(errcode.PolicyDenied, "the access policy denied this job: %s", strings.Join(access.Reasons, "; "))
	}
	if !ds.Spec.Operable() { // the policy already denies L4; this holds even under a lax bundle
		return nil, stageBeforeReserve, errcode.New(errcode.NotOperable, "dataset %q is graded L4 (不予开放) and is never operated", ds.Spec.Name)
	}

	mech, _ := json.Marshal(mechanisms(p))
	accounts := []string{GrantAccount(j.Grant), DatasetAccount(ds.Spec.Name)}
	if err := e.ledger.Reserve(ctx, id, accounts, ledger.Budget{Epsilon: p.Cost.Epsilon, Delta: p.Cost.Delta}, mech); err != nil {
		var ex *ledger.ExhaustedError
		if errors.As(err, &ex) {
			return nil, stageBeforeReserve, errcode.Wrap(errcode.BudgetExhausted, err,
				"the budget of %s cannot cover this job (needs epsilon %.4g, delta %.3g; remaining epsilon %.4g, delta %.3g); nothing was run or charged",
				ex.Account, p.Cost.Epsilon, p.Cost.Delta, ex.Remaining.Epsilon, ex.Remaining.Delta)
		}
		if errors.Is(err, ledger.ErrUnknownAccount) {
			return nil, stageBeforeReserve, errcode.Wrap(errcode.PolicyDenied, err, "grant %q has no budget account", j.Grant)
		}
		return nil, stageBeforeReserve, errcode.Wrap(errcode.Internal, err, "the budget ledger is unavailable")
	}
	if _, err := e.record(ctx, "budget_reserved", id, map[string]any{"accounts": accounts, "cost": p.Cost}); err != nil {
		return nil, stageAfterReserve, e.refund(ctx, id, err)
	}

	res, err := e.executeAndRelease(ctx, id, j, ds, q, p, dref, params)
	if err != nil {
		return nil, stageAfterReserve, err
	}
	return res, stageAfterReserve, nil
}

// charge makes a reservation final after a failure that may depend on the data; nothing was
// released.
func (e *Engine) charge(ctx context.Context, id string, cause error) error {
	ctx = context.WithoutCancel(ctx)
	if err := e.ledger.Commit(ctx, id); err != nil {
		return errors.Join(cause, err)
	}
	if _, err := e.record(ctx, "budget_debited", id, map[string]any{"reason": errcode.Code(cause), "released": false}); err != nil {
		return errors.Join(cause, err)
	}
	return cause
}

// refund returns a reservation after a failure that released nothing and read no data.
func (e *Engine) refund(ctx context.Context, id string, cause error) error {
	ctx = context.WithoutCancel(ctx)
	if err := e.ledger.Refund(ctx, id, errcode.Code(cause)); err != nil {
		return errors.Join(cause, err)
	}
	if _, err := e.record(ctx, "budget_refunded", id, map[string]any{"reason": errcode.Code(cause)}); err != nil {
		return errors.Join(cause, err)
	}
	return cause
}

func (e *Engine) executeAndRelease(ctx context.Context, id string, j Job, ds *Dataset, q *gate.Query, p *plan.Planned, dref []policy.DatasetRef, params policy.JobParams) (*Result, error) {
	w, err := e.worker(ctx, ds.Spec.Domain)
	if err != nil {
		return nil, e.refund(ctx, id, err)
	}
	start := time.Now()
	parts, err := w.Execute(ctx, &p.Worker)
	if err != nil {
		switch errcode.Code(err) {
		case errcode.QueryInvalid, errcode.Canceled:
			// Known before any row was read, or stopped by the applicant: nothing about the
			// data was learned, so the reservation is returned.
			return nil, e.refund(ctx, id, err)
		}
		// A failure while rows were being read (a deadline, a resource limit, a crash) can
		// depend on the data: it stays charged, so probing with failures is never free.
		return nil, e.charge(ctx, id, err)
	}
	if _, err := e.record(ctx, "execution", id, map[string]any{
		"domain": ds.Spec.Domain, "snapshot": ds.Snapshot.Digest, "duration_ms": time.Since(start).Milliseconds(),
		"pre_noise_digest": e.auditKey.Digest(stateBytes(parts)),
	}); err != nil {
		return nil, e.charge(ctx, id, err)
	}
	// The debit is final before any noise is drawn: whatever happens after this point, the
	// job has been charged for what it computed.
	if err := e.ledger.Commit(ctx, id); err != nil {
		return nil, errcode.Wrap(errcode.Internal, err, "the budget could not be debited; nothing was released")
	}
	if _, err := e.record(ctx, "budget_debited", id, map[string]any{"cost": p.Cost}); err != nil {
		return nil, err
	}

	res, err := release(q, p, parts)
	if err != nil {
		return nil, errcode.Wrap(errcode.Internal, err, "the DP mechanism failed; nothing was released")
	}
	res.Job, res.Dataset = id, ds.Spec.Name
	res.Bounds = fmt.Sprintf("each %s contributes to at most %d group(s) and at most %d row(s) per group; values clamped to catalog bounds",
		ds.Spec.PrivacyUnit, p.Worker.Bounds.MaxGroupsContributed, p.Worker.Bounds.MaxContributionsPerGroup)
	if _, err := e.record(ctx, "mechanism", id, map[string]any{"aggregates": mechanisms(p), "rows_released": len(res.Rows)}); err != nil {
		return nil, err
	}

	egress, err := e.policy.Egress(ctx, policy.EgressInput{Principal: j.Principal, Datasets: dref, Job: params, Output: e.outputSummary(ds.Spec, q, p, res), Findings: []policy.Finding{}})
	if err != nil {
		egress = policy.Decision{Result: "deny", Reasons: []string{"policy_error: the egress policy could not be evaluated"}, BundleDigest: e.policy.Digest()}
	}
	if _, err := e.record(ctx, "policy_egress", id, egress); err != nil {
		return nil, err
	}
	if !egress.Allowed() {
		// Already charged: the decision is a function of the noisy output, so a denial cannot be
		// used to probe for free.
		code := errcode.EgressDenied
		if egress.Result == "review" {
			code = errcode.HeldForReview
		}
		return nil, errcode.New(code, "the output was withheld by egress review: %s", strings.Join(egress.Reasons, "; "))
	}
	res.Spent = p.Cost
	res.Split = p.Split
	out, err := provenance.Canonical(res)
	if err != nil {
		return nil, errcode.Wrap(errcode.Internal, err, "the result could not be encoded; nothing was released")
	}
	sum := sha256.Sum256(out)
	ent, err := e.record(ctx, "release", id, map[string]any{"output_digest": "sha256:" + hex.EncodeToString(sum[:]), "rows": len(res.Rows)})
	if err != nil {
		return nil, err
	}
	res.LogIndex = ent.Index
	return res, nil
}

func stateBytes(parts []sandbox.Partition) []byte {
	var b []byte
	for _, p := range parts {
		for _, k := range p.Key {
			if k == nil {
				b = append(b, 0)
			} else {
				b = append(b, 1)
				b = append(b, *k...)
			}
			b = append(b, 0xff)
		}
		for _, s := range p.States {
			b = append(b, s...)
			b = append(b, 0xfe)
		}
		b = append(b, p.Selection...)
		b = append(b, 0xfd)
	}
	return b
}

type mechanismRecord struct {
	Aggregate  string  `json:"aggregate"`
	Kind       dp.Kind `json:"kind"`
	Mechanism  string  `json:"mechanism"`
	Epsilon    float64 `json:"epsilon"`
	Delta      float64 `json:"delta"`
	L0         int64   `json:"l0_sensitivity"`
	LInf       float64 `json:"linf_sensitivity"`
	NoiseScale float64 `json:"noise_stddev"`
}

func mechanisms(p *plan.Planned) []mechanismRecord {
	var out []mechanismRecord
	for i, s := range p.Worker.Aggregates {
		l0, lInf := s.Sensitivity()
		out = append(out, mechanismRecord{Aggregate: p.Query.Aggregates[i].Name, Kind: s.Kind, Mechanism: s.Mechanism(),
			Epsilon: s.Epsilon, Delta: s.Delta, L0: l0, LInf: lInf, NoiseScale: s.NoiseScale()})
	}
	if sel := p.Worker.Selection; sel != nil {
		out = append(out, mechanismRecord{Aggregate: "partition_selection", Mechanism: "preagg_select_partition",
			Epsilon: sel.Epsilon, Delta: sel.Delta, L0: sel.MaxPartitions, LInf: 1})
	}
	return out
}

// release applies the mechanisms: partition selection (or the public domain), then noise.
func release(q *gate.Query, p *plan.Planned, parts []sandbox.Partition) (*Result, error) {
	res := &Result{}
	for _, o := range q.Outputs {
		kind := "aggregate"
		if o.Key >= 0 {
			kind = "group_key"
		}
		res.Columns = append(res.Columns, ResultCol{Name: o.Name, Kind: kind})
	}
	type row struct {
		key    []*string
		states [][]byte
	}
	var rows []row
	if p.Public {
		byKey := map[string]sandbox.Partition{}
		for _, pt := range parts {
			byKey[keyString(pt.Key)] = pt
		}
		for _, key := range crossProduct(p.Domains) {
			pt := byKey[keyString(key)]
			rows = append(rows, row{key: key, states: pt.States})
		}
	} else {
		for _, pt := range parts {
			keep, err := p.Worker.Selection.Keep(pt.Selection)
			if err != nil {
				return nil, err
			}
			if keep {
				rows = append(rows, row{key: pt.Key, states: pt.States})
			}
		}
		// The worker's partition order follows the data; release in key order instead.
		sort.Slice(rows, func(i, j int) bool { return keyString(rows[i].key) < keyString(rows[j].key) })
	}
	for _, r := range rows {
		cells := make([]Cell, len(q.Outputs))
		for i, o := range q.Outputs {
			if o.Key >= 0 {
				cells[i] = Cell{Key: r.key[o.Key]}
				continue
			}
			var st []byte
			if r.states != nil {
				st = r.states[o.Aggregate]
			}
			rel, err := p.Worker.Aggregates[o.Aggregate].Release(st)
			if err != nil {
				return nil, err
			}
			cells[i] = Cell{DP: &rel}
		}
		res.Rows = append(res.Rows, cells)
	}
	return res, nil
}

func keyString(k []*string) string {
	var b strings.Builder
	for _, v := range k {
		if v == nil {
			b.WriteString("\x00N")
		} else {
			b.WriteString("\x00V" + *v)
		}
	}
	return b.String()
}

func crossProduct(domains [][]string) [][]*string {
	out := [][]*string{{}}
	for _, d := range domains {
		var next [][]*string
		for _, prefix := range out {
			for _, v := range d {
				v := v
				k := append(append([]*string{}, prefix...), &v)
				next = append(next, k)
			}
		}
		out = next
	}
	return out
}

func (e *Engine) columnUse(spec *catalog.Spec, col, usage string) policy.ColumnUse {
	return policy.ColumnUse{Dataset: spec.Name, Column: col, Tags: tags(spec.Columns[col]), Usage: usage, PrivacyUnit: col == spec.PrivacyUnit}
}

// outputSummary describes the result's lineage for the egress policy, from the plan (not from
// column names).
func (e *Engine) outputSummary(spec *catalog.Spec, q *gate.Query, p *plan.Planned, res *Result) policy.Output {
	out := policy.Output{Rows: len(res.Rows), Cells: len(res.Rows) * len(q.Outputs)}
	for _, o := range q.Outputs {
		if o.Key >= 0 {
			out.Columns = append(out.Columns, policy.OutputColumn{Name: o.Name, Kind: policy.KindGroupKey,
				DerivedFrom: []policy.ColumnUse{e.columnUse(spec, q.Keys[o.Key].Column, policy.UsageGroupKey)}})
			continue
		}
		a := q.Aggregates[o.Aggregate]
		oc := policy.OutputColumn{Name: o.Name, Kind: policy.KindAggregate, Aggregate: string(a.Kind), DerivedFrom: []policy.ColumnUse{}}
		switch a.Kind {
		case dp.Sum:
			oc.DerivedFrom = append(oc.DerivedFrom, e.columnUse(spec, a.Column, policy.UsageAggregate))
		case dp.CountDistinct:
			oc.DerivedFrom = append(oc.DerivedFrom, e.columnUse(spec, a.Column, policy.UsageCountDistinctUnit))
		}
		out.Columns = append(out.Columns, oc)
	}
	seen := map[string]bool{}
	for _, s := range p.Worker.Aggregates {
		if !seen[s.Mechanism()] {
			seen[s.Mechanism()] = true
			out.Mechanisms = append(out.Mechanisms, s.Mechanism())
		}
	}
	if p.Worker.Selection != nil {
		out.Mechanisms = append(out.Mechanisms, "preagg_select_partition")
	}
	return out
}
