package engine

import (
	"fmt"

	"github.com/c1b99f93/cleanroom/engine/provenance"
	"github.com/c1b99f93/cleanroom/policy"
)

// RecordedDecisions reads the access and egress decisions of past jobs, with the inputs they
// were made on, from a provenance log: what policy.WhatIf evaluates a candidate bundle against.
// Decisions recorded before inputs were kept are skipped.
func RecordedDecisions(logPath string) ([]policy.Recorded, error) {
	queries := map[string]string{provenance.TypePolicyAccess: policy.AccessQuery, provenance.TypePolicyEgress: policy.EgressQuery}
	ents, err := provenance.Read(logPath, func(typ, _ string) bool { return queries[typ] != "" })
	if err != nil {
		return nil, err
	}
	var out []policy.Recorded
	for _, e := range ents {
		r, err := e.Decode()
		if err != nil {
			return nil, fmt.Errorf("engine: provenance record %d: %w", e.Index, err)
		}
		var d provenance.PolicyDecision
		switch ev := r.Event.(type) {
		case *provenance.PolicyAccess:
			d = ev.PolicyDecision
		case *provenance.PolicyEgress:
			d = ev.PolicyDecision
		default:
			continue
		}
		if d.Input.IsNull() {
			continue
		}
		in, err := d.Input.Raw()
		if err != nil {
			return nil, fmt.Errorf("engine: provenance record %d: %w", e.Index, err)
		}
		out = append(out, policy.Recorded{Job: r.Job, Query: queries[r.Type], Input: in, Result: d.Result, Reasons: d.Reasons})
	}
	return out, nil
}
