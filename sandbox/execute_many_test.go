package sandbox

import (
	"context"
	"errors"
	"testing"

	"github.com/c1b99f93/cleanroom/dp"
	"github.com/c1b99f93/cleanroom/errcode"
	"github.com/c1b99f93/cleanroom/sandbox/wire"
)

// TestExecuteManyGivesEachPlanItsOwnResult: plans over the same rows run over one scan
// (execute_many) return, plan by plan, the pre-noise states the worker returns for each plan
// run alone — the automatic bounds' tuning plans (a quantile tree without keys, a histogram
// keyed by another expression, a profile over the public districts) and an aggregate plan,
// all under one filter. Compared in the specs' canonical form, as the provenance digests are.
func TestExecuteManyGivesEachPlanItsOwnResult(t *testing.T) {
	ctx := context.Background()
	c := startWorker(t, nil)
	path, _ := visitsCSV(t, t.TempDir(), false)
	snap, err := register(ctx, t, c, visitsSpec(path))
	if err != nil {
		t.Fatal(err)
	}
	filter := wire.Compare(">", wire.Col("", "cost"), wire.Num("790"))
	agg := countPlan(snap.Digest, 1, 3)
	agg.Filter = filter
	tree := &wire.Plan{Snapshot: snap.Digest, Filter: filter, Values: []*wire.Expr{wire.Col("", "cost")},
		Aggregates: []dp.Spec{{Kind: dp.Quantiles, Value: 0, Lower: 0, Upper: 5000, Ranks: []float64{0.01, 0.5, 0.99},
			Epsilon: 0.1, MaxPartitions: 1, MaxPerPartition: 1}},
		Bounds: wire.Bounds{MaxGroupsContributed: 1, MaxContributionsPerGroup: 1}, SamplingKey: 42, TimeoutMS: 30_000}
	hist := &wire.Plan{Snapshot: snap.Digest, Filter: filter, Keys: []*wire.Expr{wire.Func("floor", wire.Arith("/", wire.Col("", "cost"), wire.Num("500")))},
		Domains:    [][]string{{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10"}},
		Aggregates: []dp.Spec{{Kind: dp.Count, Value: -1, Epsilon: 0.1, MaxPartitions: 1, MaxPerPartition: 1}},
		Bounds:     wire.Bounds{MaxGroupsContributed: 1, MaxContributionsPerGroup: 1}, SamplingKey: 42, TimeoutMS: 30_000}
	profile := &wire.Plan{Snapshot: snap.Digest, Filter: filter, Keys: agg.Keys, Domains: [][]string{{"A", "B"}},
		Bounds: wire.Bounds{MaxGroupsContributed: 2, MaxContributionsPerGroup: 64}, SamplingKey: 42, TimeoutMS: 30_000,
		Profile: &wire.Profile{MaxGroups: 2, MaxRows: 64, Spec: dp.Spec{Kind: dp.CountDistinct, Value: -1, Epsilon: 0.1, MaxPartitions: 2, MaxPerPartition: 1}}}
	plans := []*wire.Plan{tree, hist, profile, agg}
	together, err := c.ExecuteMany(ctx, plans)
	if err != nil {
		t.Fatal(err)
	}
	for k, p := range plans {
		var alone []wire.Partition
		var specs func(j int) dp.Spec
		if p.Profile != nil {
			alone, err = c.Profile(ctx, p)
			specs = func(int) dp.Spec { return p.Profile.Spec }
		} else {
			alone, err = c.Execute(ctx, p)
			specs = func(j int) dp.Spec { return p.Aggregates[j] }
		}
		if err != nil {
			t.Fatal(err)
		}
		if got, want := canonicalParts(t, together[k], specs), canonicalParts(t, alone, specs); got != want || want == "" {
			t.Errorf("plan %d: run with the others its states differ from its own run (or are empty)", k)
		}
	}
	other := *tree
	other.Filter = nil
	var ce *errcode.Error
	if _, err := c.ExecuteMany(ctx, []*wire.Plan{tree, &other}); !errors.As(err, &ce) || ce.Code != errcode.Internal {
		t.Errorf("plans reading different rows ran together: %v", err)
	}
}

// canonicalParts is partitions' keys and canonical states as one comparable string.
func canonicalParts(t *testing.T, parts []wire.Partition, spec func(j int) dp.Spec) string {
	t.Helper()
	var s string
	for _, p := range parts {
		s += wire.KeyString(p.Key) + "|"
		for j, st := range p.States {
			c, err := spec(j).Canonical(st)
			if err != nil {
				t.Fatal(err)
			}
			s += string(c) + "|"
		}
	}
	return s
}
