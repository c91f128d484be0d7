package sandbox

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/c1b99f93/cleanroom/catalog"
	"github.com/c1b99f93/cleanroom/errcode"
	"github.com/c1b99f93/cleanroom/sandbox/wasm/wasmtest"
	"github.com/c1b99f93/cleanroom/sandbox/wire"
)

// wasmCSV writes n people with 3 rows each: person_id (an 18-digit ID), x ~ U(0, 10) and
// y = 2 + 3x + N(0, 1), from a fixed seed.
func wasmCSV(t *testing.T, n int) string {
	rng := rand.New(rand.NewPCG(11, 12))
	lines := []string{"person_id,x,y"}
	for i := range n {
		for range 3 {
			x := 10 * rng.Float64()
			lines = append(lines, fmt.Sprintf("53010219800101%04d,%.6f,%.6f", i, x, 2+3*x+rng.NormFloat64()))
		}
	}
	path := filepath.Join(t.TempDir(), "xy.csv")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func wasmRequest(t *testing.T, snap, module string, cols ...string) *wire.Wasm {
	rel := &wire.Relation{Sources: []wire.RelationSource{{Snapshot: snap, Alias: "d", Unit: "person_id"}}}
	for _, c := range cols {
		rel.Columns = append(rel.Columns, wire.RelationColumn{Name: c, Expr: wire.Col("d", c)})
	}
	return &wire.Wasm{Job: "j-" + module, Module: wasmtest.Build(t, module), Relation: rel, Blocks: 4,
		BlockKey: []byte("a per-job block key of 32 bytes or more"), BlockTimeoutMS: 20_000,
		Output: wire.WasmOutput{Length: 4, Bounds: [][2]float64{{0, 10}, {0, 40}, {-10, 10}, {-10, 10}}, Default: []float64{5, 20, 0, 0}}}
}

// TestWorkerRunsCustomModelsAndStaysHealthy runs the sample module in the worker process over
// a registered snapshot (4 blocks of ~300 people), then hostile modules — an infinite loop,
// a memory bomb, one that prints its rows, one that encodes an ID number — and the sample
// again: each hostile job completes with its default or clamped average, nothing in any
// response holds a row's value, and the sample's answer is unchanged.
func TestWorkerRunsCustomModelsAndStaysHealthy(t *testing.T) {
	ctx := context.Background()
	tap := &lockedBuffer{}
	c := startWorker(t, tap)
	path := wasmCSV(t, 1200)
	spec := &catalog.Spec{Name: "xy", Provider: "p", Grade: catalog.GradeL2, PrivacyUnit: "person_id",
		Source: catalog.Source{Kind: catalog.SourceCSV, Path: path}, Budget: catalog.Budget{Epsilon: 1},
		Columns: map[string]catalog.Column{
			"person_id": {Tags: []catalog.Tag{catalog.TagIdentifier}},
			"x":         {Tags: []catalog.Tag{catalog.TagSensitive}, Bounds: []float64{0, 10}},
			"y":         {Tags: []catalog.Tag{catalog.TagSensitive}, Bounds: []float64{-10, 50}},
		}}
	snap, err := register(ctx, t, c, spec)
	if err != nil {
		t.Fatal(err)
	}
	first, err := c.RunWasm(ctx, wasmRequest(t, snap.Digest, wasmtest.Sample, "x", "y"))
	if err != nil {
		t.Fatal(err)
	}
	want, tol := []float64{5, 17, 3, 2}, []float64{0.5, 1.5, 0.1, 0.5}
	for i := range want {
		if math.Abs(first.Mean[i]-want[i]) > tol[i] {
			t.Errorf("element %d = %.4f, want %.1f ± %.1f", i, first.Mean[i], want[i], tol[i])
		}
	}
	two := wire.WasmOutput{Length: 2, Bounds: [][2]float64{{0, 1}, {0, 1}}, Default: []float64{0.5, 0.5}}
	hostile := []struct {
		module string
		cols   []string
		want   []float64
	}{
		{wasmtest.Loop, []string{"x"}, []float64{0.5, 0.5}},
		{wasmtest.MemBomb, []string{"x"}, []float64{0.5, 0.5}},
		{wasmtest.Stdout, []string{"person_id", "x"}, []float64{0, 0}},
		{wasmtest.Identifier, []string{"person_id"}, []float64{1, 1}},
	}
	for _, h := range hostile {
		req := wasmRequest(t, snap.Digest, h.module, h.cols...)
		req.Output, req.BlockTimeoutMS = two, 2000
		got, err := c.RunWasm(ctx, req)
		if err != nil {
			t.Fatalf("%s: the job failed (%v); a block's behaviour must never fail it", h.module, err)
		}
		if !slices.Equal(got.Mean, h.want) {
			t.Errorf("%s: average %v, want %v", h.module, got.Mean, h.want)
		}
	}
	again, err := c.RunWasm(ctx, wasmRequest(t, snap.Digest, wasmtest.Sample, "x", "y"))
	if err != nil || !slices.Equal(again.Mean, first.Mean) {
		t.Fatalf("after the hostile modules the sample gave %v (%v), before %v", again, err, first.Mean)
	}
	// The worker's responses (the tap sees what it writes) carry no raw ID number.
	if out := string(tap.Bytes()); strings.Contains(out, "530102198001010") {
		t.Error("a response from the worker holds a raw ID number")
	}
}

// TestWorkerRefusesBadCustomModelsBeforeReadingRows: a bad shape or an invalid module is
// refused with its code; both are decided without the data.
func TestWorkerRefusesBadCustomModelsBeforeReadingRows(t *testing.T) {
	ctx := context.Background()
	c := startWorker(t, nil)
	cases := []struct {
		name string
		edit func(*wire.Wasm)
		want errcode.Code
	}{
		{"not_wasm", func(a *wire.Wasm) { a.Module = []byte("hello") }, errcode.WasmInvalidModule},
		{"wrong_abi", func(a *wire.Wasm) { a.Module = wasmtest.Build(t, wasmtest.WrongABI) }, errcode.WasmInvalidModule},
		{"one_block", func(a *wire.Wasm) { a.Blocks = 1 }, errcode.InvalidOptions},
		{"default_outside_bounds", func(a *wire.Wasm) { a.Output.Default[0] = 11 }, errcode.InvalidOptions},
		{"short_key", func(a *wire.Wasm) { a.BlockKey = []byte("short") }, errcode.InvalidOptions},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// The snapshot does not exist: a request that got past the checks would fail on it.
			req := wasmRequest(t, "sha256:"+strings.Repeat("0", 64), wasmtest.Huge, "x")
			tc.edit(req)
			_, err := c.RunWasm(ctx, req)
			if got := errcode.Of(err); got != tc.want {
				t.Fatalf("code %s (%v), want %s", got, err, tc.want)
			}
		})
	}
}
