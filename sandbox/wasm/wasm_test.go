package wasm

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/c1b99f93/cleanroom/errcode"
	"github.com/c1b99f93/cleanroom/sandbox/wasm/wasmtest"
	"github.com/c1b99f93/cleanroom/sandbox/wire"
)

func TestMain(m *testing.M) {
	code := m.Run()
	wasmtest.Cleanup()
	os.Exit(code)
}

// testKey is a fixed block key: the tests' block assignment is reproducible.
var testKey = []byte("cleanroom wasm test block key, 32+ bytes long")

// rows is a generated table: unit (utf8), x and y (float64), id (utf8, an 18-digit ID
// number per unit), with y = 2 + 3x + noise, from a fixed seed.
type rows struct {
	units []string
	x, y  []float64
	ids   []string
}

func genRows(nUnits, perUnit int, seed uint64) rows {
	rng := rand.New(rand.NewPCG(seed, 7))
	var r rows
	for u := range nUnits {
		unit := fmt.Sprintf("U%07d", u)
		id := fmt.Sprintf("11010119900101%03d%d", u%1000, u%10)
		for range perUnit {
			x := rng.Float64() * 10
			r.units = append(r.units, unit)
			r.x = append(r.x, x)
			r.y = append(r.y, 2+3*x+rng.NormFloat64())
			r.ids = append(r.ids, id)
		}
	}
	return r
}

var rowSchema = arrow.NewSchema([]arrow.Field{
	{Name: "unit", Type: arrow.BinaryTypes.String},
	{Name: "x", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
	{Name: "y", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
	{Name: "id", Type: arrow.BinaryTypes.String, Nullable: true},
}, nil)

// split feeds the rows to a Splitter in batches of 1000 and returns the k blocks.
func (r rows) split(t testing.TB, k int) [][]byte {
	t.Helper()
	s, err := NewSplitter(rowSchema, testKey, k)
	if err != nil {
		t.Fatal(err)
	}
	for lo := 0; lo < len(r.units); lo += 1000 {
		hi := min(lo+1000, len(r.units))
		b := array.NewRecordBuilder(memory.DefaultAllocator, rowSchema)
		b.Field(0).(*array.StringBuilder).AppendValues(r.units[lo:hi], nil)
		b.Field(1).(*array.Float64Builder).AppendValues(r.x[lo:hi], nil)
		b.Field(2).(*array.Float64Builder).AppendValues(r.y[lo:hi], nil)
		b.Field(3).(*array.StringBuilder).AppendValues(r.ids[lo:hi], nil)
		rec := b.NewRecordBatch()
		if err := s.Add(rec); err != nil {
			t.Fatal(err)
		}
		rec.Release()
		b.Release()
	}
	blocks, err := s.Blocks()
	if err != nil {
		t.Fatal(err)
	}
	return blocks
}

func newRuntime(t testing.TB, cfg Config) *Runtime {
	t.Helper()
	r, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(context.Background()) })
	return r
}

func compile(t testing.TB, r *Runtime, name string) *Module {
	t.Helper()
	m, err := r.Compile(context.Background(), wasmtest.Build(t, name))
	if err != nil {
		t.Fatalf("compile %s: %v", name, err)
	}
	t.Cleanup(m.Release)
	return m
}

// sampleOut is the sample module's declared output: mean x, mean y, slope, intercept.
var sampleOut = wire.WasmOutput{Length: 4, Bounds: [][2]float64{{0, 10}, {0, 40}, {-10, 10}, {-10, 10}}, Default: []float64{5, 20, 0, 0}}

// TestSampleModuleFitsTheLine: the sample module, run by sample-and-aggregate over 4 blocks
// of 3000 rows from y = 2 + 3x + N(0, 1), x ~ U(0, 10), returns per block and on average
// the means and the line within sampling error (bands are over 10 standard errors wide).
func TestSampleModuleFitsTheLine(t *testing.T) {
	r := newRuntime(t, Config{CacheDir: wasmtest.CacheDir(t)})
	m := compile(t, r, wasmtest.Sample)
	blocks := genRows(1000, 3, 1).split(t, 4)
	runs, err := m.aggregate(context.Background(), blocks, sampleOut, 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	for i, run := range runs {
		if run.failure != failNone {
			t.Fatalf("block %d failed: %s", i, run.failure)
		}
	}
	got := mean(runs, sampleOut)
	want := []float64{5, 17, 3, 2}
	tol := []float64{0.5, 1.5, 0.1, 0.5}
	for i := range want {
		if math.Abs(got[i]-want[i]) > tol[i] {
			t.Errorf("element %d = %.4f, want %.1f ± %.1f", i, got[i], want[i], tol[i])
		}
	}
	again, err := m.Aggregate(context.Background(), blocks, sampleOut, 20*time.Second)
	if err != nil || !slices.Equal(again, got) {
		t.Errorf("a second run gave %v (%v), the first %v: runs must be deterministic", again, err, got)
	}
}

// TestHostileModulesEndClampedOrDefault runs each hostile module over the same 4 blocks: each
// block either fails (and counts as the default) or returns a vector that is then clamped;
// the job never fails, nothing the module printed reaches the result, and the runtime runs
// the sample module afterwards exactly as before.
func TestHostileModulesEndClampedOrDefault(t *testing.T) {
	r := newRuntime(t, Config{CacheDir: wasmtest.CacheDir(t), CaptureBytes: 1024, MemoryPages: 512})
	data := genRows(400, 2, 2)
	blocks := data.split(t, 4)
	sample := compile(t, r, wasmtest.Sample)
	baseline, err := sample.Aggregate(context.Background(), blocks, sampleOut, 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	two := func(lo, hi, d float64) wire.WasmOutput {
		return wire.WasmOutput{Length: 2, Bounds: [][2]float64{{lo, hi}, {lo, hi}}, Default: []float64{d, d}}
	}
	cases := []struct {
		name     string
		out      wire.WasmOutput
		deadline time.Duration
		failure  blockFailure // of every block
		want     []float64    // the pre-noise average
	}{
		{wasmtest.Loop, two(-1, 1, 0.25), 300 * time.Millisecond, failDeadline, []float64{0.25, 0.25}},
		{wasmtest.MemBomb, two(-1, 1, 0.25), 20 * time.Second, failTrap, []float64{0.25, 0.25}},
		{wasmtest.Escape, two(0, 4096, 50), 20 * time.Second, failNone, []float64{0, 1}},
		{wasmtest.Stdout, two(-1, 1, 0.25), 20 * time.Second, failNone, []float64{0, 0}},
		{wasmtest.NonFinite, two(-1, 1, 0.25), 20 * time.Second, failOutput, []float64{0.25, 0.25}},
		{wasmtest.WrongLen, two(-1, 1, 0.25), 20 * time.Second, failOutput, []float64{0.25, 0.25}},
		{wasmtest.Huge, two(-1, 1, 0.25), 20 * time.Second, failNone, []float64{1, -1}},
		// Every block finds an ID number and outputs its digits; the bounds clamp them to 1.
		{wasmtest.Identifier, two(0, 1, 0), 20 * time.Second, failNone, []float64{1, 1}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := compile(t, r, c.name)
			t0 := time.Now()
			runs, err := m.aggregate(context.Background(), blocks, c.out, c.deadline)
			if err != nil {
				t.Fatalf("the job failed (%v); a block's behaviour must never fail it", err)
			}
			t.Logf("%d blocks in %v", len(blocks), time.Since(t0))
			for i, run := range runs {
				if run.failure != c.failure {
					t.Errorf("block %d: failure %q, want %q", i, run.failure, c.failure)
				}
				if len(run.captured) > 1024 {
					t.Errorf("block %d captured %d bytes, more than the 1024 bound", i, len(run.captured))
				}
			}
			if got := mean(runs, c.out); !slices.Equal(got, c.want) {
				t.Errorf("average %v, want %v", got, c.want)
			}
			if c.name == wasmtest.Stdout && !strings.Contains(string(runs[0].captured), data.units[0][:1]) {
				t.Errorf("the rows the module printed were not captured")
			}
			after, err := sample.Aggregate(context.Background(), blocks, sampleOut, 20*time.Second)
			if err != nil || !slices.Equal(after, baseline) {
				t.Errorf("after %s the sample module gave %v (%v), before %v", c.name, after, err, baseline)
			}
		})
	}
}

// TestModulesRefusedBeforeAnyData: a module that does not compile, lacks an export, has an
// export of the wrong type, or traps while initialising is refused by Compile with
// wasm_invalid_module — the only failures that may fail a job, and all decided without data.
func TestModulesRefusedBeforeAnyData(t *testing.T) {
	r := newRuntime(t, Config{CacheDir: wasmtest.CacheDir(t), MaxModuleBytes: 8 << 20})
	cases := []struct {
		name string
		bin  func(t *testing.T) []byte
	}{
		{"empty", func(*testing.T) []byte { return nil }},
		{"not_wasm", func(*testing.T) []byte { return []byte("#!/bin/sh\nrm -rf /\n") }},
		{"no_exports", func(*testing.T) []byte { return []byte("\x00asm\x01\x00\x00\x00") }},
		{"truncated", func(t *testing.T) []byte { b := wasmtest.Build(t, wasmtest.Huge); return b[:len(b)/2] }},
		{"wrong_abi", func(t *testing.T) []byte { return wasmtest.Build(t, wasmtest.WrongABI) }},
		{"init_traps", func(t *testing.T) []byte { return wasmtest.Build(t, wasmtest.InitPanic) }},
		{"too_large", func(*testing.T) []byte { return make([]byte, 8<<20+1) }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, err := r.Compile(context.Background(), c.bin(t))
			if err == nil {
				m.Release()
				t.Fatal("compiled; want wasm_invalid_module")
			}
			if got := errcode.Of(err); got != errcode.WasmInvalidModule {
				t.Fatalf("code %s (%v), want %s", got, err, errcode.WasmInvalidModule)
			}
			if !errors.Is(err, ErrInvalidModule) {
				t.Errorf("%v does not wrap ErrInvalidModule", err)
			}
		})
	}
}

// TestTrapOnPredicateDoesNotShowInTheOutcome: a module that traps only when a block holds a
// target row. With and without the target's unit, the job completes; the only difference is
// the target's block contributing the default instead of its output, which moves each element
// of the pre-noise average by at most (hi − lo)/k — the sensitivity the noise covers — and
// every other block's rows are byte-identical.
func TestTrapOnPredicateDoesNotShowInTheOutcome(t *testing.T) {
	r := newRuntime(t, Config{CacheDir: wasmtest.CacheDir(t)})
	m := compile(t, r, wasmtest.Predicate)
	const k = 8
	without := genRows(800, 2, 3)
	with := without
	with.units = append(slices.Clone(with.units), "TARGET")
	with.x = append(slices.Clone(with.x), 4242)
	with.y = append(slices.Clone(with.y), 0)
	with.ids = append(slices.Clone(with.ids), "110101199001019999")
	out := wire.WasmOutput{Length: 2, Bounds: [][2]float64{{0, 1}, {0, 64}}, Default: []float64{0, 0}}
	bWithout, bWith := without.split(t, k), with.split(t, k)
	changed := 0
	for i := range k {
		if !slices.Equal(bWithout[i], bWith[i]) {
			changed++
		}
	}
	if changed != 1 {
		t.Fatalf("adding one unit changed %d blocks, want exactly 1", changed)
	}
	runsWithout, err1 := m.aggregate(context.Background(), bWithout, out, 20*time.Second)
	runsWith, err2 := m.aggregate(context.Background(), bWith, out, 20*time.Second)
	if err1 != nil || err2 != nil {
		t.Fatalf("outcomes differ in kind: %v / %v; both must complete", err1, err2)
	}
	failed := 0
	for _, run := range runsWith {
		if run.failure == failTrap {
			failed++
		}
	}
	if failed != 1 {
		t.Fatalf("%d blocks trapped with the target, want 1", failed)
	}
	a, b := mean(runsWithout, out), mean(runsWith, out)
	for i := range a {
		if d, sens := math.Abs(a[i]-b[i]), (out.Bounds[i][1]-out.Bounds[i][0])/k; d > sens {
			t.Errorf("element %d moved by %g, more than the sensitivity %g", i, d, sens)
		}
	}
}

// TestCompiledModulesAreCachedByDigest: the same bytes compile once; beyond CacheSize the
// least recently used module leaves the cache, and a Module still held keeps working.
func TestCompiledModulesAreCachedByDigest(t *testing.T) {
	r := newRuntime(t, Config{CacheDir: wasmtest.CacheDir(t), CacheSize: 1})
	a := compile(t, r, wasmtest.Huge)
	a2 := compile(t, r, wasmtest.Huge)
	if a.e != a2.e {
		t.Fatal("the same module was compiled twice")
	}
	b := compile(t, r, wasmtest.WrongLen)
	r.mu.Lock()
	n, held := len(r.cache), r.cache[a.Digest] != nil
	r.mu.Unlock()
	if n != 1 || held {
		t.Fatalf("cache holds %d modules (first still cached: %v), want only the last", n, held)
	}
	blocks := genRows(10, 1, 4).split(t, 2)
	out := wire.WasmOutput{Length: 2, Bounds: [][2]float64{{-1, 1}, {-1, 1}}, Default: []float64{0, 0}}
	for _, m := range []*Module{a, b} {
		if _, err := m.Aggregate(context.Background(), blocks, out, 20*time.Second); err != nil {
			t.Errorf("%s: %v", m.Digest, err)
		}
	}
}

// TestCanceledJobReleasesNothing: canceling the job (from outside, never by a block) returns
// canceled and no average.
func TestCanceledJobReleasesNothing(t *testing.T) {
	r := newRuntime(t, Config{CacheDir: wasmtest.CacheDir(t)})
	m := compile(t, r, wasmtest.Loop)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	blocks := genRows(10, 1, 5).split(t, 2)
	got, err := m.Aggregate(ctx, blocks, wire.WasmOutput{Length: 2, Bounds: [][2]float64{{0, 1}, {0, 1}}, Default: []float64{0, 0}}, 10*time.Second)
	if errcode.Of(err) != errcode.Canceled || got != nil {
		t.Fatalf("got %v, %v; want canceled and nothing", got, err)
	}
}

// FuzzCompile: any bytes either compile into a module of the ABI or are refused with
// wasm_invalid_module; nothing panics.
func FuzzCompile(f *testing.F) {
	f.Add([]byte("\x00asm\x01\x00\x00\x00"))
	f.Add([]byte("\x00asm\x01\x00\x00\x00\x01\x05\x01\x60\x00\x01\x7f"))
	f.Add([]byte("not wasm"))
	f.Add([]byte{})
	r := newRuntime(f, Config{})
	f.Fuzz(func(t *testing.T, bin []byte) {
		m, err := r.Compile(context.Background(), bin)
		if err == nil {
			m.Release()
			return
		}
		if c := errcode.Of(err); c != errcode.WasmInvalidModule {
			t.Fatalf("code %s, want %s", c, errcode.WasmInvalidModule)
		}
	})
}
