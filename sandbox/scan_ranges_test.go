package sandbox

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/c1b99f93/cleanroom/catalog"
	"github.com/c1b99f93/cleanroom/dp"
	"github.com/c1b99f93/cleanroom/sandbox/wire"
)

// scanRanges covers [lo, hi) with consecutive ranges of at most maxRows rows each, a unit with
// more rows being a range of its own.
func TestScanRangesCoverTheShardWithinTheRowLimit(t *testing.T) {
	// unit u has (u%7)+1 rows, unit 30 has 40
	var starts []int64
	next := int64(0)
	for u := range 50 {
		starts = append(starts, next)
		n := int64(u%7 + 1)
		if u == 30 {
			n = 40
		}
		next += n
	}
	starts = append(starts, next)
	snap := &snapTable{Snapshot: wire.Snapshot{Units: 50, Rows: next}, starts: starts}
	for _, tc := range []struct{ lo, hi, maxRows int64 }{{0, 50, 1}, {0, 50, 10}, {3, 41, 12}, {0, 50, 1 << 20}, {25, 25, 10}, {49, 50, 5}} {
		t.Run(fmt.Sprintf("%d-%d_by_%d", tc.lo, tc.hi, tc.maxRows), func(t *testing.T) {
			ranges := scanRanges(snap, tc.lo, tc.hi, tc.maxRows)
			at := tc.lo
			for _, r := range ranges {
				if r[0] != at || (r[1] <= r[0] && tc.hi > tc.lo) {
					t.Fatalf("ranges %v do not continue at %d", ranges, at)
				}
				if rows := starts[r[1]] - starts[r[0]]; rows > tc.maxRows && r[1]-r[0] > 1 {
					t.Fatalf("range %v holds %d rows, over %d, with more than one unit", r, rows, tc.maxRows)
				}
				// a range stops only where the next unit would take it over the limit
				if r[1] < tc.hi && starts[r[1]+1]-starts[r[0]] <= tc.maxRows {
					t.Fatalf("range %v stops early: the next unit fits within %d rows", r, tc.maxRows)
				}
				at = r[1]
			}
			if at != tc.hi {
				t.Fatalf("ranges %v end at %d, want %d", ranges, at, tc.hi)
			}
		})
	}
	noStarts := &snapTable{Snapshot: wire.Snapshot{Units: 50, Rows: 500}}
	if got := scanRanges(noStarts, 0, 50, 100); len(got) != 5 || got[0] != [2]int64{0, 10} || got[4] != [2]int64{40, 50} {
		t.Fatalf("ranges without unit starts: %v", got)
	}
}

// A shard scanned as many small ranges gives the same encoded partitions, byte for byte, as
// one query per shard: the kept rows, the states and the keys do not depend on how a shard is
// split.
func TestScanRangesDoNotChangeTheStates(t *testing.T) {
	ctx := context.Background()
	w := relWorker(t)
	_, snap := visitsSnapshot(t, w)
	p := &wire.Plan{Snapshot: snap.Digest, Keys: []*wire.Expr{wire.Col("", "district")},
		Values: []*wire.Expr{wire.Col("", "cost"), wire.Col("", "person_id")},
		Filter: wire.Compare(">", wire.Col("", "cost"), wire.Num("100")),
		Aggregates: []dp.Spec{
			{Kind: dp.Count, Value: -1, Epsilon: 0.5, MaxPartitions: 1, MaxPerPartition: 3},
			{Kind: dp.Sum, Value: 0, Lower: 0, Upper: 50000, Epsilon: 0.5, MaxPartitions: 1, MaxPerPartition: 3},
			{Kind: dp.CountDistinct, Value: 1, Epsilon: 0.5, MaxPartitions: 1, MaxPerPartition: 3},
		},
		Bounds: wire.Bounds{MaxGroupsContributed: 1, MaxContributionsPerGroup: 3}, SamplingKey: 7, TimeoutMS: 60_000}
	whole, _, err := w.executePass(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	w.scanRows = 500
	if n := len(scanRanges(snap, 0, snap.Units/2, w.scanRows)); n < 20 {
		t.Fatalf("only %d ranges per shard at 500 rows", n)
	}
	split, _, err := w.executePass(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	if len(whole) == 0 || !bytes.Equal(whole, split) {
		t.Fatalf("one query per shard and 500-row ranges encode different partitions (%d and %d bytes)", len(whole), len(split))
	}
}

// shardsFor gives a shard to each rows rows, up to the cores and the units, and always one.
func TestShardsForSmallData(t *testing.T) {
	for _, tc := range []struct {
		cores       int
		rows, units int64
		per         int64
		want        int
	}{
		{2, 52_121, 10_000, minShardRows, 1},
		{2, minShardRows, 100, minShardRows, 1},
		{2, minShardRows + 1, 100, minShardRows, 2},
		{2, 10_000_000, 2_000_000, minShardRows, 2},
		{8, 1_000_000, 200_000, minShardRows, 4},
		{2, 52_121, 1, 1, 1},
		{2, 0, 0, minShardRows, 1},
		{2, 52_121, 10_000, 1, 2},
	} {
		snap := &snapTable{Snapshot: wire.Snapshot{Rows: tc.rows, Units: tc.units}}
		if got := shardsFor(tc.cores, tc.per, snap); got != tc.want {
			t.Errorf("shardsFor(%d cores, %d rows per shard) of %d rows, %d units = %d, want %d", tc.cores, tc.per, tc.rows, tc.units, got, tc.want)
		}
	}
}

// TestShardsAndCachedKeysDoNotChangeTheStates: the committed visits scanned as one shard (the
// default at 52k rows) and as two encode the same partitions, and so does a plan whose public
// domains' hashes come from the worker's cache; the cache holds one entry per snapshot, keys
// and domains.
func TestShardsAndCachedKeysDoNotChangeTheStates(t *testing.T) {
	ctx := context.Background()
	w := relWorker(t)
	spec, snap := visitsSnapshot(t, w)
	p := &wire.Plan{Snapshot: snap.Digest, Keys: []*wire.Expr{wire.Col("", "district")}, Domains: [][]string{spec.Columns["district"].Domain},
		Values: []*wire.Expr{wire.Col("", "cost")},
		Aggregates: []dp.Spec{
			{Kind: dp.Count, Value: -1, Epsilon: 0.5, MaxPartitions: 1, MaxPerPartition: 3},
			{Kind: dp.Sum, Value: 0, Lower: 0, Upper: 50000, Epsilon: 0.5, MaxPartitions: 1, MaxPerPartition: 3},
		},
		Bounds: wire.Bounds{MaxGroupsContributed: 1, MaxContributionsPerGroup: 3}, SamplingKey: 7, TimeoutMS: 60_000}
	if len(p.Domains[0]) != 14 {
		t.Fatalf("the district domain has %d values, want 14", len(p.Domains[0]))
	}
	run := func(shardRows int64) []byte {
		w.shardRows = shardRows
		out, _, err := w.executePass(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	two := run(1) // computes the domains' hashes
	if len(w.pubKeys.sets) != 1 || w.pubKeys.tuples != 14 {
		t.Fatalf("the cache holds %d sets, %d tuples; want 1 and 14", len(w.pubKeys.sets), w.pubKeys.tuples)
	}
	one := run(0) // one shard, the hashes from the cache
	if shardsFor(2, minShardRows, snap) != 1 {
		t.Fatal("the committed visits are not one shard by default")
	}
	if len(two) == 0 || !bytes.Equal(one, two) {
		t.Fatalf("one shard with cached key hashes and two shards encode different partitions (%d and %d bytes)", len(one), len(two))
	}
	p.Domains = [][]string{spec.Columns["district"].Domain[:3]}
	if _, _, err := w.executePass(ctx, p); err != nil {
		t.Fatal(err)
	}
	if len(w.pubKeys.sets) != 2 || w.pubKeys.tuples != 17 {
		t.Fatalf("another domain: the cache holds %d sets, %d tuples; want 2 and 17", len(w.pubKeys.sets), w.pubKeys.tuples)
	}
}

// visitsSnapshot registers the committed medical_visits in w and returns its spec and table.
func visitsSnapshot(t *testing.T, w *worker) (*catalog.Spec, *snapTable) {
	t.Helper()
	spec, err := catalog.LoadFile("../testdata/datasets/medical_visits.yaml")
	if err != nil {
		t.Fatal(err)
	}
	snap, err := w.snapshot(context.Background(), &registerArgs{Kind: string(spec.Source.Kind), src: openSource(t, spec.Source.Path),
		Name: filepath.Base(spec.Source.Path), PrivacyUnit: spec.PrivacyUnit, Columns: spec.ColumnNames()})
	if err != nil {
		t.Fatal(err)
	}
	return spec, snap
}
