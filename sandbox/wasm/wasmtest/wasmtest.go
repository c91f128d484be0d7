// Package wasmtest builds the WebAssembly modules under testdata/wasm for tests: the sample
// model and the hostile modules, with the Go toolchain that runs the tests (GOOS=wasip1
// GOARCH=wasm, -buildmode=c-shared). Each module is built once per test process into a
// temporary directory; Go's build cache makes later runs fast.
package wasmtest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// The modules under testdata/wasm.
const (
	// Sample is testdata/wasm/sample: per block, the means of the first two float64 columns
	// and the least-squares line through them (4 elements).
	Sample = "sample"
	// Mean is testdata/wasm/mean: per block, the mean of each float64 column, read with a
	// minimal IPC reader of its own (no arrow-go: ~2 MB, compiles in about a second).
	Mean = "mean"
)

// Hostile modules, built from testdata/wasm/hostile with the tag of the same name; each
// declares 2 output elements unless said otherwise.
const (
	Loop       = "loop"       // never returns
	MemBomb    = "membomb"    // allocates until growth fails
	Escape     = "escape"     // files, sockets, environment, arguments: counts successes
	Stdout     = "stdout"     // prints its rows to stdout and stderr
	NonFinite  = "nonfinite"  // returns NaN and +Inf
	WrongLen   = "wronglen"   // returns 3 elements
	Huge       = "huge"       // returns ±1e300
	InitPanic  = "initpanic"  // traps in _initialize, before any data
	Identifier = "identifier" // encodes the first row's ID number in its output
	Predicate  = "predicate"  // traps when a row's first float64 column is 4242
	WrongABI   = "wrongabi"   // run has the wrong type
)

var (
	mu    sync.Mutex
	dir   string
	built = map[string]*result{}
)

type result struct {
	once sync.Once
	bin  []byte
	err  error
}

// Build returns the module's bytes, building it on first use; it fails the test if the
// toolchain cannot.
func Build(t testing.TB, name string) []byte {
	t.Helper()
	mu.Lock()
	r := built[name]
	if r == nil {
		r = &result{}
		built[name] = r
	}
	mu.Unlock()
	r.once.Do(func() { r.bin, r.err = build(name) })
	if r.err != nil {
		t.Fatalf("building wasm module %s: %v", name, r.err)
	}
	return r.bin
}

func build(name string) ([]byte, error) {
	root, err := moduleRoot()
	if err != nil {
		return nil, err
	}
	mu.Lock()
	if dir == "" {
		dir, err = os.MkdirTemp("", "cleanroom-wasm-")
	}
	d := dir
	mu.Unlock()
	if err != nil {
		return nil, err
	}
	pkg, tags := "./testdata/wasm/hostile", name
	if name == Sample || name == Mean {
		pkg, tags = "./testdata/wasm/"+name, ""
	}
	out := filepath.Join(d, name+".wasm")
	goBin, err := toolchain()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(goBin, "build", "-buildmode=c-shared", "-trimpath", "-tags="+tags, "-o", out, pkg)
	cmd.Dir = root
	cmd.Env = append(withoutGoEnv(os.Environ()), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0", "GOFLAGS=")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%w: %s", err, stderr.String())
	}
	return os.ReadFile(out)
}

// toolchain is the go command of the toolchain on PATH (go env GOROOT, so a toolchain switch
// is honoured).
func toolchain() (string, error) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("wasmtest: the go command is not on PATH: %w", err)
	}
	out, err := exec.Command(goBin, "env", "GOROOT").Output()
	if err != nil {
		return "", fmt.Errorf("wasmtest: go env GOROOT: %w", err)
	}
	return filepath.Join(strings.TrimSpace(string(out)), "bin", "go"), nil
}

// CacheDir is a compilation cache directory for tests' runtimes (sandbox/wasm Config.CacheDir)
// that outlives the test process, under the user's cache directory: compiling the sample
// module takes ~17 s on two cores, loading it from the cache ~0.1 s. It falls back to a
// directory removed by Cleanup.
func CacheDir(t testing.TB) string {
	t.Helper()
	if base, err := os.UserCacheDir(); err == nil {
		d := filepath.Join(base, "cleanroom", "wasm-test-compilation")
		if err := os.MkdirAll(d, 0o700); err == nil {
			return d
		}
	}
	mu.Lock()
	defer mu.Unlock()
	var err error
	if dir == "" {
		if dir, err = os.MkdirTemp("", "cleanroom-wasm-"); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(dir, "compilation")
}

// Cleanup removes the modules built so far; call it from TestMain after the tests ran.
func Cleanup() {
	mu.Lock()
	defer mu.Unlock()
	if dir != "" {
		_ = os.RemoveAll(dir)
		dir = ""
		built = map[string]*result{}
	}
}

func withoutGoEnv(env []string) []string {
	var out []string
	for _, kv := range env {
		if k, _, _ := strings.Cut(kv, "="); k != "GOOS" && k != "GOARCH" && k != "CGO_ENABLED" && k != "GOFLAGS" {
			out = append(out, kv)
		}
	}
	return out
}

// moduleRoot is the directory of cleanroom's go.mod, found upwards from this file's package
// directory at test time (the working directory of a test is its package's).
func moduleRoot() (string, error) {
	d, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(d, "go.mod")); err == nil && bytes.HasPrefix(b, []byte("module github.com/c1b99f93/cleanroom\n")) {
			return d, nil
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", fmt.Errorf("wasmtest: no cleanroom go.mod above the working directory")
		}
		d = parent
	}
}
