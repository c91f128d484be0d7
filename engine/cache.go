package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"

	"github.com/c1b99f93/cleanroom/engine/gate"
	"github.com/c1b99f93/cleanroom/engine/ledger"
	"github.com/c1b99f93/cleanroom/engine/plan"
	"github.com/c1b99f93/cleanroom/engine/provenance"
	"github.com/c1b99f93/cleanroom/errcode"
	"github.com/c1b99f93/cleanroom/policy"
	"github.com/c1b99f93/cleanroom/policy/screen"
	"github.com/c1b99f93/cleanroom/server/api"
)

// queryFingerprint names what a release's noise depends on: the grant and the bounded plan —
// keys, filter and values as expression trees (wire.Expr, so whitespace, case and aliases do
// not matter), the mechanisms with their budget shares, the contribution bounds, the
// partitions and the snapshot digest — and the shape of the outputs. It leaves out the job id, the per-job
// sampling key and the deadline, and the ORDER BY/LIMIT applied after release, which the
// stored answer is re-post-processed with.
func queryFingerprint(grant string, q *gate.Query, p *plan.Planned) (string, error) {
	w := p.Worker
	w.Job, w.SamplingKey, w.TimeoutMS = "", 0, 0
	type shape struct{ Key, Aggregate, Rank int }
	outs := make([]shape, len(q.Outputs))
	for i, o := range q.Outputs {
		outs[i] = shape{o.Key, o.Aggregate, o.Rank}
	}
	return canonicalDigest(map[string]any{"grant": grant, "plan": w, "public": p.Public, "outputs": outs})
}

// canonicalDigest is "sha256:" + hex of v's canonical JSON: a name that depends only on v's
// content.
func canonicalDigest(v any) (string, error) {
	b, err := provenance.Canonical(v)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:]), nil
}

// storedAnswer is what the control-plane store keeps of a release: every released row before
// ORDER BY/LIMIT, and how it was computed.
type storedAnswer struct {
	Rows   [][]api.Cell `json:"rows"`
	Spent  api.Budget   `json:"spent"`
	Split  string       `json:"budget_split"`
	Bounds string       `json:"bounds"`
	// Units are the rows' noisy unit counts, so a repeat withholds the same rows.
	Units []float64 `json:"units,omitempty"`
	// Probes are the differencing checks' noisy counts, so a repeat is reviewed alike.
	Probes []screen.DifferenceProbe `json:"differencing_checks,omitempty"`
}

// fingerprintOf is queryFingerprint of the query's plan without differencing checks: which
// checks a query gets depends on what was asked before it, and a repeat must find the first
// answer whatever was asked in between.
func fingerprintOf(grant string, q *gate.Query, ds sources, opts plan.Options) (string, error) {
	p, err := plan.Build(q, ds.snapshots(), opts, 0)
	if err != nil {
		return "", err
	}
	return queryFingerprint(grant, q, p)
}

// remember stores a fresh release for identical queries. The release is already recorded, so
// a failure here does not withdraw it; it is recorded, and the next identical query will be
// computed (and charged) again.
func (e *Engine) remember(ctx context.Context, id, grant, fingerprint string, st storedAnswer, res *Result) error {
	st.Spent, st.Split, st.Bounds = res.Spent, res.Split, res.Bounds
	b, err := json.Marshal(st)
	if err == nil {
		err = e.ledger.Remember(ctx, grant, fingerprint, id, b)
	}
	if err != nil {
		if _, rerr := e.record(context.WithoutCancel(ctx), id, &provenance.ReleaseNotStored{Reason: "the answer could not be stored for repeated queries"}); rerr != nil {
			return rerr
		}
	}
	return nil
}

// answerFromRelease answers a job whose fingerprint was computed before on the same grant and
// whose output has no decision that sticks (it was released, perhaps after review): the same
// noisy rows, re-post-processed for this query, through the egress policy again, and nothing
// is charged. An output held, rejected or denied never gets here (decision.go).
func (e *Engine) answerFromRelease(ctx context.Context, id string, j Job, ds sources, q *gate.Query, p *plan.Planned,
	dref []policy.DatasetRef, params policy.JobParams, fingerprint string, prior ledger.Released) (*Outcome, error) {
	var st storedAnswer
	if err := json.Unmarshal(prior.Result, &st); err != nil {
		return nil, errcode.Wrap(errcode.Internal, err, "the stored answer could not be read")
	}
	if st.Rows == nil {
		st.Rows = [][]api.Cell{}
	}
	for _, row := range st.Rows {
		if len(row) != len(q.Outputs) {
			return nil, errcode.New(errcode.Internal, "the stored answer does not match the query's outputs")
		}
	}
	if p.UnitCount >= 0 && st.Units == nil && len(st.Rows) == 0 {
		st.Units = []float64{} // an empty answer's counts were omitted when stored
	}
	if (p.UnitCount >= 0) != (st.Units != nil) || (st.Units != nil && len(st.Units) != len(st.Rows)) {
		return nil, errcode.New(errcode.Internal, "the stored answer's unit counts do not match the plan")
	}
	if _, err := e.record(ctx, id, &provenance.AnsweredFromRelease{ReleasedJob: prior.Job}); err != nil {
		return nil, err
	}
	res := &Result{Result: api.Result{Job: id, Dataset: ds.name(), Rows: st.Rows, Bounds: st.Bounds,
		Split: fmt.Sprintf("identical to job %s on this grant: its released answer is returned and no budget is spent (it cost epsilon %.4g, delta %.3g)",
			prior.Job, st.Spent.Epsilon, st.Spent.Delta)}, units: st.Units, probes: st.Probes}
	for _, o := range q.Outputs {
		kind := "aggregate"
		if o.Key >= 0 {
			kind = "group_key"
		}
		res.Columns = append(res.Columns, api.ResultCol{Name: o.Name, Kind: kind})
	}
	held, receipt, err := e.egressAndRelease(ctx, id, j, ds, q, p, dref, params, fingerprint, res, &provenance.Release{ReleasedJob: prior.Job, Charged: new(bool)})
	if err != nil {
		return nil, err
	}
	return &Outcome{Result: res, Receipt: receipt, Held: held, Datasets: ds.names()}, nil
}

// lockFingerprint serialises jobs with one fingerprint; it returns the unlock function.
func (e *Engine) lockFingerprint(key string) (unlock func()) {
	e.fpMu.Lock()
	l := e.fpLocks[key]
	if l == nil {
		l = &fpLock{}
		e.fpLocks[key] = l
	}
	l.waiters++
	e.fpMu.Unlock()
	l.mu.Lock()
	return func() {
		l.mu.Unlock()
		e.fpMu.Lock()
		if l.waiters--; l.waiters == 0 {
			delete(e.fpLocks, key)
		}
		e.fpMu.Unlock()
	}
}
