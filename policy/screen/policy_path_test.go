package screen

import (
	"context"
	"strings"
	"testing"

	"github.com/c1b99f93/cleanroom/policy"
)

// TestEveryFindingsPathThroughTheDefaultPolicy puts each code the reviewer emits, with its
// own severity, into an otherwise clean egress input and checks what the shipped bundle
// decides: high denies, medium holds for one reviewer, low releases. The engine records the
// findings and the decision (engine tests check the records for high, medium and low).
func TestEveryFindingsPathThroughTheDefaultPolicy(t *testing.T) {
	ctx := context.Background()
	pe, err := policy.New(ctx)
	if err != nil {
		t.Fatal(err)
	}
	unit := policy.ColumnUse{Dataset: "visits", Column: "person_id", Tags: []string{"identifier"}, Usage: policy.UsageCountDistinctUnit, PrivacyUnit: true}
	clean := policy.EgressInput{
		Principal: policy.Principal{Name: "alice", Role: "applicant", Org: "insurer_a"},
		Datasets:  []policy.DatasetRef{{Name: "visits", Provider: "health", Grade: "L2", Domain: "platform", PrivacyUnit: "person_id"}},
		Job:       policy.JobParams{Kind: "sql", Epsilon: 1, Delta: 1e-6, MaxGroupsContributed: 1, MaxContributionsPerGroup: 5, PublicPartitions: true},
		Output: policy.Output{
			Columns: []policy.OutputColumn{{Name: "persons", Kind: policy.KindAggregate, Aggregate: policy.AggregateCountDistinct, DerivedFrom: []policy.ColumnUse{unit}}},
			Rows:    1, Cells: 1, Bytes: 100, Mechanisms: []string{"laplace"},
		},
		Findings: []policy.Finding{},
	}
	if d, err := pe.Egress(ctx, clean); err != nil || d.Result != policy.ResultAllow {
		t.Fatalf("the clean input is not allowed: %+v, %v", d, err)
	}
	want := map[string]struct{ result, reason string }{
		policy.SeverityHigh:   {policy.ResultDeny, "finding_high"},
		policy.SeverityMedium: {policy.ResultReview, "finding_medium"},
		policy.SeverityLow:    {policy.ResultAllow, ""},
	}
	seen := map[string]bool{}
	for _, code := range Codes() {
		sev := Severity(code)
		seen[sev] = true
		in := clean
		in.Findings = []policy.Finding{{Code: code, Severity: sev, Message: "a message with no data"}}
		d, err := pe.Egress(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		w, ok := want[sev]
		if !ok {
			t.Fatalf("%s has severity %q", code, sev)
		}
		if d.Result != w.result || (w.reason != "" && !strings.Contains(strings.Join(d.Reasons, ";"), w.reason+": reviewer finding "+code)) {
			t.Errorf("%s (%s): decision %+v, want %s with %s", code, sev, d, w.result, w.reason)
		}
		if d.Result == policy.ResultReview && d.Reviewers != 1 {
			t.Errorf("%s: %d reviewers, want 1", code, d.Reviewers)
		}
	}
	for sev := range want {
		if !seen[sev] {
			t.Errorf("no code has severity %s: that path is untested", sev)
		}
	}
}
