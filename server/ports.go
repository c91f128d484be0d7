package server

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/c1b99f93/cleanroom/engine"
	"github.com/c1b99f93/cleanroom/engine/ledger"
	"github.com/c1b99f93/cleanroom/engine/provenance"
	"github.com/c1b99f93/cleanroom/errcode"
	"github.com/c1b99f93/cleanroom/policy"
	"github.com/c1b99f93/cleanroom/server/api"
	"github.com/c1b99f93/cleanroom/server/governance"
)

// The engine as the governance service's ports (declared in server/governance): the service
// never sees the engine itself.

// governanceDeps are the service's dependencies over the server's engine and store.
func (s *Server) governanceDeps() governance.Deps {
	return governance.Deps{Log: engineLog{s.eng}, Budget: engineBudget{s.eng}, Holds: engineHolds{s.eng},
		Store: s.store, Rules: engineRules{s.eng}, Now: s.now, Changed: s.notify, Logger: s.log}
}

type engineLog struct{ e *engine.Engine }

func (l engineLog) Record(ctx context.Context, job string, ev provenance.Event) (uint64, error) {
	return l.e.Record(ctx, job, ev)
}

// decisionType reports the records reconciliation reads.
func decisionType(typ string) bool {
	switch typ {
	case provenance.TypeGovernanceIntent, provenance.TypeGovernanceOutcome, provenance.TypeApplicationApproved,
		provenance.TypeApplicationRejected, provenance.TypeGrantState, provenance.TypeReview, provenance.TypeWithheld:
		return true
	}
	return false
}

func (l engineLog) Decisions(context.Context) ([]provenance.Record, error) {
	ents, err := l.e.Audit().Records(func(typ, _ string) bool { return decisionType(typ) })
	if err != nil {
		return nil, err
	}
	out := make([]provenance.Record, 0, len(ents))
	for _, ent := range ents {
		r, err := ent.Decode()
		if err != nil {
			return nil, fmt.Errorf("record %d: %w", ent.Index, err)
		}
		out = append(out, r)
	}
	return out, nil
}

type engineBudget struct{ e *engine.Engine }

func (b engineBudget) OpenGrant(ctx context.Context, grant string, epsilon, delta float64, datasets []string) error {
	return b.e.OpenGrant(ctx, grant, ledger.Budget{Epsilon: epsilon, Delta: delta}, datasets...)
}

func (b engineBudget) CloseGrant(ctx context.Context, grant, reason string, returnUnspent bool) error {
	switch reason {
	case governance.CloseRevoked:
		reason = engine.CloseRevoked
	case governance.CloseExpired:
		reason = engine.CloseExpired
	case governance.CloseCancelled:
		reason = engine.CloseCancelled
	default:
		return fmt.Errorf("server: no closing reason %q", reason)
	}
	_, err := b.e.CloseGrant(ctx, grant, reason, returnUnspent)
	return err
}

func (b engineBudget) AllocatedGrants(ctx context.Context) ([]string, error) {
	return b.e.AllocatedGrants(ctx)
}

type engineHolds struct{ e *engine.Engine }

func (h engineHolds) RecordReview(ctx context.Context, job string, by provenance.Principal, approve bool, reason string) error {
	return h.e.RecordReview(ctx, job, engine.Review{Reviewer: policy.Principal(by), Approve: approve, Reason: reason})
}

func (h engineHolds) Release(ctx context.Context, job string, hold, output json.RawMessage, reviewers []string) (json.RawMessage, []byte, error) {
	var hd engine.Hold
	if err := json.Unmarshal(hold, &hd); err != nil {
		return nil, nil, err
	}
	if hd.Kind == engine.KindModel { // the hold says what it holds; the digest check pins it
		return releaseAs(output, func(m *api.ModelResult) ([]byte, error) { return h.e.ReleaseHeldModel(ctx, job, &hd, m, reviewers) })
	}
	return releaseAs(output, func(r *engine.Result) ([]byte, error) { return h.e.ReleaseHeld(ctx, job, &hd, r, reviewers) })
}

// releaseAs decodes a held output as a T, releases it, and returns it as released (stamped
// with its release's log index) with the receipt.
func releaseAs[T any](output json.RawMessage, release func(*T) ([]byte, error)) (json.RawMessage, []byte, error) {
	var res T
	if err := json.Unmarshal(output, &res); err != nil {
		return nil, nil, err
	}
	receipt, err := release(&res)
	if err != nil {
		return nil, nil, err
	}
	out, err := json.Marshal(&res)
	return out, receipt, err
}

func (h engineHolds) EndHold(ctx context.Context, job string) error { return h.e.EndHold(ctx, job) }

func (h engineHolds) Withhold(ctx context.Context, job string, code errcode.Code, reason string) error {
	return h.e.Withhold(ctx, job, code, reason)
}

type engineRules struct{ e *engine.Engine }

func (r engineRules) ReturnUnspent(reason string) bool {
	p := r.e.Params()
	if reason == governance.CloseExpired {
		return p.ReturnUnspentOnExpiry
	}
	return p.ReturnUnspentOnRevoke
}
