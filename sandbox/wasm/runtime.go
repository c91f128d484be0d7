package wasm

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/c1b99f93/cleanroom/errcode"
)

// Defaults of Config.
const (
	DefaultMemoryPages = 1024 // 64 MiB per instance
	DefaultCacheSize   = 8
	DefaultMaxModule   = 64 << 20
	DefaultCapture     = 64 << 10
)

// Config limits a Runtime. Zero fields take the defaults above.
type Config struct {
	// MemoryPages caps each instance's linear memory (64 KiB pages); growth beyond it fails.
	MemoryPages uint32
	// CacheSize is how many compiled modules are kept, by digest.
	CacheSize int
	// MaxModuleBytes refuses larger binaries before compiling them.
	MaxModuleBytes int
	// CaptureBytes is how much of a block's stdout and stderr is kept (then dropped).
	CaptureBytes int
	// Parallel is how many blocks run at once (default GOMAXPROCS).
	Parallel int
	// CacheDir, when set, keeps wazero's compiled code on disk across runtimes (a 10 MB Go
	// module takes ~17 s to compile on two cores, ~0.1 s from the cache). It holds native code
	// the worker will run: it must be the worker's own directory, writable by nothing else.
	CacheDir string
}

func (c Config) withDefaults() Config {
	if c.MemoryPages == 0 {
		c.MemoryPages = DefaultMemoryPages
	}
	if c.CacheSize <= 0 {
		c.CacheSize = DefaultCacheSize
	}
	if c.MaxModuleBytes <= 0 {
		c.MaxModuleBytes = DefaultMaxModule
	}
	if c.CaptureBytes <= 0 {
		c.CaptureBytes = DefaultCapture
	}
	if c.Parallel <= 0 {
		c.Parallel = runtime.GOMAXPROCS(0)
	}
	return c
}

// Runtime compiles and runs custom model modules. It is safe for concurrent use.
type Runtime struct {
	cfg Config
	rt  wazero.Runtime
	cc  wazero.CompilationCache // nil without CacheDir

	mu    sync.Mutex
	cache map[string]*entry
	lru   []string // digests, least recently used first
}

type entry struct {
	digest   string
	compiled wazero.CompiledModule
	refs     int  // Modules handed out and not yet released
	evicted  bool // out of the cache: closed when refs reaches 0
	initFunc bool // exports _initialize
}

// The ABI's export names.
const (
	exportMemory = "memory"
	exportInit   = "_initialize"
	exportAlloc  = "alloc"
	exportRun    = "run"
	wasiModule   = wasi_snapshot_preview1.ModuleName
)

// New starts a runtime with WASI available to modules (and nothing else).
func New(ctx context.Context, cfg Config) (*Runtime, error) {
	cfg = cfg.withDefaults()
	if cfg.MemoryPages > 65536 {
		return nil, errcode.New(errcode.InvalidOptions, "the memory cap cannot exceed 65536 pages")
	}
	rc := wazero.NewRuntimeConfig().
		WithMemoryLimitPages(cfg.MemoryPages).
		WithCloseOnContextDone(true)
	var cc wazero.CompilationCache
	if cfg.CacheDir != "" {
		var err error
		if cc, err = wazero.NewCompilationCacheWithDir(cfg.CacheDir); err != nil {
			return nil, fmt.Errorf("wasm: compilation cache: %w", err)
		}
		rc = rc.WithCompilationCache(cc)
	}
	rt := wazero.NewRuntimeWithConfig(ctx, rc)
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, rt); err != nil {
		_ = rt.Close(ctx)
		return nil, fmt.Errorf("wasm: instantiating WASI: %w", err)
	}
	return &Runtime{cfg: cfg, rt: rt, cc: cc, cache: map[string]*entry{}}, nil
}

// Close releases the runtime and every compiled module.
func (r *Runtime) Close(ctx context.Context) error {
	err := r.rt.Close(ctx)
	if r.cc != nil {
		err = errors.Join(err, r.cc.Close(ctx))
	}
	return err
}

// Digest is a module's cache key: "sha256:" and the hex SHA-256 of its bytes.
func Digest(bin []byte) string {
	s := sha256.Sum256(bin)
	return "sha256:" + hex.EncodeToString(s[:])
}

// ErrInvalidModule marks a module refused before any data is read: it does not decode or
// compile, lacks an export of the ABI or has one of the wrong type, imports from anywhere but
// WASI, or fails its trial instantiation.
var ErrInvalidModule = errors.New("wasm: invalid module")

func invalid(format string, args ...any) error {
	return errcode.Wrap(errcode.WasmInvalidModule, ErrInvalidModule, format, args...)
}

// Module is a compiled module checked against the ABI. Release it when done.
type Module struct {
	Digest string
	r      *Runtime
	e      *entry
	once   sync.Once
}

// Release gives the module back to the cache.
func (m *Module) Release() {
	m.once.Do(func() {
		m.r.mu.Lock()
		defer m.r.mu.Unlock()
		m.e.refs--
		if m.e.evicted && m.e.refs == 0 {
			_ = m.e.compiled.Close(context.Background())
		}
	})
}

// Compile returns the module of bin, compiling and checking it only if the cache does not hold
// its digest. Every failure here is data-independent and has code wasm_invalid_module (or
// canceled).
func (r *Runtime) Compile(ctx context.Context, bin []byte) (*Module, error) {
	if len(bin) == 0 || len(bin) > r.cfg.MaxModuleBytes {
		return nil, invalid("the module must be between 1 byte and %d bytes", r.cfg.MaxModuleBytes)
	}
	d := Digest(bin)
	if m := r.cached(d); m != nil {
		return m, nil
	}
	compiled, err := r.rt.CompileModule(ctx, bin)
	if err != nil {
		if ctx.Err() != nil {
			return nil, errcode.Wrap(errcode.Canceled, ctx.Err(), "compiling the module was canceled")
		}
		return nil, invalid("the module does not decode or compile as WebAssembly")
	}
	e := &entry{digest: d, compiled: compiled}
	if err := checkABI(compiled, e); err != nil {
		_ = compiled.Close(ctx)
		return nil, err
	}
	if err := r.trial(ctx, e); err != nil {
		_ = compiled.Close(ctx)
		return nil, err
	}
	return r.insert(e), nil
}

func (r *Runtime) cached(d string) *Module {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.cache[d]
	if e == nil {
		return nil
	}
	r.touch(d)
	e.refs++
	return &Module{Digest: d, r: r, e: e}
}

// insert adds e (or, if another caller compiled the same digest meanwhile, keeps theirs) and
// evicts the least recently used entries beyond the cache size.
func (r *Runtime) insert(e *entry) *Module {
	r.mu.Lock()
	defer r.mu.Unlock()
	if old := r.cache[e.digest]; old != nil {
		_ = e.compiled.Close(context.Background())
		e = old
	} else {
		r.cache[e.digest] = e
	}
	r.touch(e.digest)
	e.refs++
	for len(r.lru) > r.cfg.CacheSize {
		victim := r.cache[r.lru[0]]
		r.lru = r.lru[1:]
		delete(r.cache, victim.digest)
		victim.evicted = true
		if victim.refs == 0 {
			_ = victim.compiled.Close(context.Background())
		}
	}
	return &Module{Digest: e.digest, r: r, e: e}
}

func (r *Runtime) touch(d string) {
	if i := slices.Index(r.lru, d); i >= 0 {
		r.lru = slices.Delete(r.lru, i, i+1)
	}
	r.lru = append(r.lru, d)
}

// checkABI checks the exports and imports against the ABI (doc.go).
func checkABI(c wazero.CompiledModule, e *entry) error {
	i32, i64 := api.ValueTypeI32, api.ValueTypeI64
	want := map[string][2][]api.ValueType{
		exportAlloc: {{i32}, {i32}},
		exportRun:   {{i32, i32}, {i64}},
	}
	fns := c.ExportedFunctions()
	for _, name := range []string{exportAlloc, exportRun} {
		f, ok := fns[name]
		if !ok {
			return invalid("the module does not export the function %q", name)
		}
		if !slices.Equal(f.ParamTypes(), want[name][0]) || !slices.Equal(f.ResultTypes(), want[name][1]) {
			return invalid("the module's export %q does not have the ABI's type", name)
		}
	}
	if f, ok := fns[exportInit]; ok {
		if len(f.ParamTypes()) != 0 || len(f.ResultTypes()) != 0 {
			return invalid("the module's export %q does not have the ABI's type", exportInit)
		}
		e.initFunc = true
	}
	if _, ok := c.ExportedMemories()[exportMemory]; !ok {
		return invalid("the module does not export its memory as %q", exportMemory)
	}
	if len(c.ImportedMemories()) > 0 {
		return invalid("the module imports a memory; it may import only WASI functions")
	}
	for _, f := range c.ImportedFunctions() {
		if mod, _, _ := f.Import(); mod != wasiModule {
			return invalid("the module imports from a module other than %s", wasiModule)
		}
	}
	return nil
}

// trialTimeout bounds the trial instantiation.
const trialTimeout = 10 * time.Second

// trial instantiates the module with no data and runs _initialize: a module whose start or
// initialisation fails (or needs an import WASI does not provide) is refused before any row
// is read.
func (r *Runtime) trial(ctx context.Context, e *entry) error {
	ctx, cancel := context.WithTimeout(ctx, trialTimeout)
	defer cancel()
	var out boundedBuffer
	out.max = r.cfg.CaptureBytes
	mod, err := r.rt.InstantiateModule(ctx, e.compiled, r.moduleConfig(&out))
	if err == nil {
		defer mod.Close(context.WithoutCancel(ctx))
		if e.initFunc {
			_, err = mod.ExportedFunction(exportInit).Call(ctx)
		}
	}
	if err != nil {
		if errors.Is(ctx.Err(), context.Canceled) {
			return errcode.Wrap(errcode.Canceled, err, "checking the module was canceled")
		}
		return invalid("the module cannot be instantiated or initialised without data")
	}
	return nil
}

// fixedWalltime is the wall clock every instance reads: 2000-01-01T00:00:00Z.
func fixedWalltime() (int64, int32) { return 946684800, 0 }

// moduleConfig grants nothing but the captured stdout and stderr: no arguments, environment
// or filesystem (wazero grants none unless asked), a fixed wall clock, wazero's fake monotonic
// clock (1 ms per reading, so a guest's sleep ends), no real sleeping and a fixed random
// source. The module is anonymous so that blocks can run side by side, and its _start (a
// command module's main) is never run.
func (r *Runtime) moduleConfig(out io.Writer) wazero.ModuleConfig {
	return wazero.NewModuleConfig().
		WithName("").
		WithStartFunctions().
		WithStdout(out).
		WithStderr(out).
		WithWalltime(fixedWalltime, 1).
		WithRandSource(rand.NewChaCha8([32]byte{'c', 'l', 'e', 'a', 'n', 'r', 'o', 'o', 'm'}))
}

// boundedBuffer keeps the first max bytes written and drops the rest, reporting success so the
// guest cannot tell. What it holds is never released: it is dropped with the instance.
type boundedBuffer struct {
	max int
	buf []byte
}

func (b *boundedBuffer) Write(p []byte) (int, error) {
	if room := b.max - len(b.buf); room > 0 {
		b.buf = append(b.buf, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

// blockFailure says why a block fell back to the default vector. It stays in this package:
// the caller is never told.
type blockFailure string

const (
	failNone     blockFailure = ""
	failDeadline blockFailure = "deadline"
	failTrap     blockFailure = "trap"   // a trap, an exit, or a failed memory growth
	failAlloc    blockFailure = "alloc"  // alloc returned a pointer the input does not fit at
	failOutput   blockFailure = "output" // the output is out of memory, the wrong length or not finite
)

// blockRun is what one block's run produced, for Aggregate and this package's tests.
type blockRun struct {
	vec      []float64 // nil when the block failed
	failure  blockFailure
	captured []byte // the block's stdout and stderr (bounded); never released
}

// runBlock runs the module once over input in a fresh instance under deadline and returns
// its output if it is n finite numbers. Nothing is clamped here.
func (m *Module) runBlock(ctx context.Context, input []byte, n int, deadline time.Duration) blockRun {
	ctx, cancel := context.WithTimeout(ctx, deadline)
	defer cancel()
	out := &boundedBuffer{max: m.r.cfg.CaptureBytes}
	res := blockRun{}
	fail := func(f blockFailure) blockRun {
		if ctx.Err() != nil {
			f = failDeadline
		}
		res.failure, res.captured = f, out.buf
		return res
	}
	mod, err := m.r.rt.InstantiateModule(ctx, m.e.compiled, m.r.moduleConfig(out))
	if err != nil {
		return fail(failTrap)
	}
	defer mod.Close(context.WithoutCancel(ctx))
	if m.e.initFunc {
		if _, err := mod.ExportedFunction(exportInit).Call(ctx); err != nil {
			return fail(failTrap)
		}
	}
	got, err := mod.ExportedFunction(exportAlloc).Call(ctx, uint64(len(input)))
	if err != nil {
		return fail(failTrap)
	}
	mem := mod.Memory()
	ptr := uint32(got[0])
	if !mem.Write(ptr, input) {
		return fail(failAlloc)
	}
	got, err = mod.ExportedFunction(exportRun).Call(ctx, uint64(ptr), uint64(len(input)))
	if err != nil {
		return fail(failTrap)
	}
	outPtr, outLen := uint32(got[0]>>32), uint32(got[0])
	if int(outLen) != 8*n {
		return fail(failOutput)
	}
	b, ok := mem.Read(outPtr, outLen) // a live view: decoded before the instance closes
	if !ok {
		return fail(failOutput)
	}
	vec := make([]float64, n)
	for i := range vec {
		vec[i] = float64frombits(binary.LittleEndian.Uint64(b[8*i:]))
		if !finite(vec[i]) {
			return fail(failOutput)
		}
	}
	res.vec, res.captured = vec, out.buf
	return res
}

// Check decodes and validates bin and checks it against the ABI, without running any of its
// code: what the platform can tell about a module before it is stored (an upload) or before a
// job is queued. It compiles with wazero's interpreter, which only decodes and validates, so
// it is quick even for a large module and leaves no native code behind; the worker still
// compiles the module and runs its trial instantiation before any row is read. It returns the
// module's digest; every refusal has code wasm_invalid_module (or canceled).
func Check(ctx context.Context, bin []byte, maxBytes int) (string, error) {
	if maxBytes <= 0 {
		maxBytes = DefaultMaxModule
	}
	if len(bin) == 0 || len(bin) > maxBytes {
		return "", invalid("the module must be between 1 byte and %d bytes", maxBytes)
	}
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter())
	defer rt.Close(context.WithoutCancel(ctx))
	compiled, err := rt.CompileModule(ctx, bin)
	if err != nil {
		if ctx.Err() != nil {
			return "", errcode.Wrap(errcode.Canceled, ctx.Err(), "checking the module was canceled")
		}
		return "", invalid("the module does not decode or compile as WebAssembly")
	}
	defer compiled.Close(context.WithoutCancel(ctx))
	if err := checkABI(compiled, &entry{}); err != nil {
		return "", err
	}
	return Digest(bin), nil
}
