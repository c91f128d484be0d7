package sandbox

import (
	"context"
	"path/filepath"
	"slices"
	"testing"

	"github.com/c1b99f93/cleanroom/catalog"
	"github.com/c1b99f93/cleanroom/sandbox/wire"
)

// Every operation that reads snapshots names them to the worker, which loads them before the
// operation's deadline starts; the others name none (a wasm request checks its module first,
// and its deadline is per block, after the rows are read).
func TestRequestSnapshotsNameWhatTheOperationReads(t *testing.T) {
	rel := &wire.Relation{Sources: []wire.RelationSource{{Snapshot: "sha256:a"}, {Snapshot: "sha256:b"}, {Snapshot: "sha256:a"}}}
	for _, tc := range []struct {
		name string
		req  request
		want []string
	}{
		{"execute", request{Op: "execute", Plan: &wire.Plan{Snapshot: "sha256:s"}}, []string{"sha256:s"}},
		{"execute a relation", request{Op: "execute", Plan: &wire.Plan{Relation: rel}}, []string{"sha256:a", "sha256:b"}},
		{"claims", request{Op: "claims", Claims: &wire.Claims{Snapshot: "sha256:c"}}, []string{"sha256:c"}},
		{"model", request{Op: "model", Model: &wire.ModelPass{Relation: *rel}}, []string{"sha256:a", "sha256:b"}},
		{"wasm", request{Op: "wasm", Wasm: &wire.Wasm{Relation: rel}}, nil},
		{"execute without a plan", request{Op: "execute"}, nil},
		{"load", request{Op: "load", Digest: "sha256:l"}, nil},
		{"register", request{Op: "register"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.req.snapshots(); !slices.Equal(got, tc.want) {
				t.Fatalf("snapshots() = %v, want %v", got, tc.want)
			}
		})
	}
}

// After a restart, the first job on a snapshot loads it; the load does not count against the
// job's deadline. With a 1 ms deadline the plan itself may time out, but the snapshot is loaded
// (inside the deadline, the load would have been cancelled).
func TestASnapshotLoadIsOutsideTheJobsDeadline(t *testing.T) {
	ctx := context.Background()
	spec, err := catalog.LoadFile("../testdata/datasets/medical_visits.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	snap, err := inProcessWorker(t, dir).snapshot(ctx, &registerArgs{Kind: string(spec.Source.Kind), src: openSource(t, spec.Source.Path),
		Name: filepath.Base(spec.Source.Path), PrivacyUnit: spec.PrivacyUnit, Columns: spec.ColumnNames()})
	if err != nil {
		t.Fatal(err)
	}
	restarted := inProcessWorker(t, dir)
	p := countPlan(snap.Digest, 1, 2)
	p.TimeoutMS = 1
	_, _ = restarted.dispatch(ctx, &request{Op: "execute", Plan: p}, &response{})
	restarted.mu.Lock()
	loaded := restarted.tables[snap.Digest] != nil
	restarted.mu.Unlock()
	if !loaded {
		t.Fatal("the snapshot was not loaded: its load ran inside the plan's 1 ms deadline")
	}
}
