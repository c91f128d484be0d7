package engine

import (
	"crypto/sha256"
	"encoding/hex"

	"github.com/c1b99f93/cleanroom/engine/gate"
	"github.com/c1b99f93/cleanroom/engine/plan"
	"github.com/c1b99f93/cleanroom/engine/provenance"
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
	// Bias is the released estimate of what bounding cost the answer.
	Bias *api.Bias `json:"bias,omitempty"`
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
