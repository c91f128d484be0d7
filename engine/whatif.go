package engine

import (
	"encoding/json"
	"fmt"

	"github.com/c1b99f93/cleanroom/engine/provenance"
	"github.com/c1b99f93/cleanroom/policy"
)

// RecordedDecisions reads the access and egress decisions of past jobs, with the inputs they
// were made on, from a provenance log: what policy.WhatIf evaluates a candidate bundle against.
// Decisions recorded before inputs were kept are skipped.
func RecordedDecisions(logPath string) ([]policy.Recorded, error) {
	queries := map[string]string{"policy_access": policy.AccessQuery, "policy_egress": policy.EgressQuery}
	ents, err := provenance.Read(logPath, func(typ, _ string) bool { return queries[typ] != "" })
	if err != nil {
		return nil, err
	}
	var out []policy.Recorded
	for _, e := range ents {
		var r struct {
			Type string `json:"type"`
			Job  string `json:"job"`
			Data struct {
				Result  string          `json:"result"`
				Reasons []string        `json:"reasons"`
				Input   json.RawMessage `json:"input"`
			} `json:"data"`
		}
		if err := json.Unmarshal(e.Record, &r); err != nil {
			return nil, fmt.Errorf("engine: provenance record %d: %w", e.Index, err)
		}
		if len(r.Data.Input) == 0 || string(r.Data.Input) == "null" {
			continue
		}
		out = append(out, policy.Recorded{Job: r.Job, Query: queries[r.Type], Input: r.Data.Input, Result: r.Data.Result, Reasons: r.Data.Reasons})
	}
	return out, nil
}
