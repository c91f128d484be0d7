package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/c1b99f93/cleanroom/server/api"
	"github.com/c1b99f93/cleanroom/server/client"
)

// The demo's custom model (kind wasm): testdata/wasm/mean — per block, the mean of each float64
// column — over each visit's cost and whether it was an inpatient stay.
const (
	demoWasmSQL = `SELECT person_id, cost, CASE WHEN inpatient THEN 1 ELSE 0 END AS inpatient_stay FROM medical_visits`
	// demoWasmBlocks is k: about 100 persons a block at the demo's 10,000.
	demoWasmBlocks  = 100
	demoWasmEpsilon = 0.5
)

var demoWasmOutput = api.WasmOutput{Length: 2, Bounds: [][2]float64{{0, 5000}, {0, 1}}, Default: []float64{2500, 0.5}}

// demoWasm is what the demo shows of the custom model step: the released output, or why the
// step did not run (no Go toolchain to build the module with).
type demoWasm struct {
	Result  *api.WasmResult `json:"result,omitempty"`
	Skipped string          `json:"skipped,omitempty"`
	// BuildSeconds is the module's build time (0 when it came from the cache).
	BuildSeconds float64 `json:"build_seconds"`
}

// demoWasmModule builds testdata/wasm/mean (next to the datasets directory) with the Go
// toolchain on PATH into the user's cache directory, keyed by a digest of its source, so a
// second demo reuses it. The build reads only the standard library: it never downloads
// (GOPROXY=off, GOTOOLCHAIN=local). It returns "" and why not when it cannot build.
func demoWasmModule(ctx context.Context, datasetDir string) (bin []byte, took time.Duration, skipped string) {
	src := filepath.Join(datasetDir, "..", "wasm", "mean")
	files, _ := filepath.Glob(filepath.Join(src, "*.go"))
	if len(files) == 0 {
		return nil, 0, "the module's source (testdata/wasm/mean) is not next to the datasets"
	}
	h := sha256.New()
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, 0, "the module's source cannot be read"
		}
		fmt.Fprintf(h, "%s\x00%d\x00", filepath.Base(f), len(b))
		h.Write(b)
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		return nil, 0, "no Go toolchain on PATH to build the sample module with"
	}
	ver, _ := exec.CommandContext(ctx, goBin, "env", "GOVERSION").Output()
	h.Write(ver)
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	out := filepath.Join(cache, "cleanroom", "wasm", "mean-"+hex.EncodeToString(h.Sum(nil))[:16]+".wasm")
	if b, err := os.ReadFile(out); err == nil {
		return b, 0, ""
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o700); err != nil {
		return nil, 0, "the build cache directory cannot be created"
	}
	start := time.Now()
	tmp := out + ".tmp"
	cmd := exec.CommandContext(ctx, goBin, "build", "-buildmode=c-shared", "-trimpath", "-o", tmp, ".")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0", "GOFLAGS=", "GOPROXY=off", "GOTOOLCHAIN=local")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return nil, 0, "building the sample module failed: " + strings.TrimSpace(stderr.String())
	}
	if err := os.Rename(tmp, out); err != nil {
		return nil, 0, "the built module cannot be cached"
	}
	b, err := os.ReadFile(out)
	if err != nil {
		return nil, 0, "the built module cannot be read"
	}
	return b, time.Since(start), ""
}

// runDemoWasm uploads the sample module and runs it as insurer-1's custom model job.
func runDemoWasm(ctx context.Context, p *demoPlatform, grant, datasetDir string) (*demoWasm, error) {
	bin, took, skipped := demoWasmModule(ctx, datasetDir)
	if skipped != "" {
		return &demoWasm{Skipped: skipped}, nil
	}
	c := p.as("insurer-1")
	up, err := c.UploadWasmModule(ctx, grant, bin)
	if err != nil {
		return nil, fmt.Errorf("insurer-1 uploading the sample module: %w", err)
	}
	j, err := c.RunWasm(ctx, grant, api.WasmRequest{ModuleDigest: up.Digest, SQL: demoWasmSQL, Output: demoWasmOutput, Blocks: demoWasmBlocks},
		api.JobOptions{Epsilon: demoWasmEpsilon, Delta: new(0.0)})
	if err != nil {
		return nil, fmt.Errorf("insurer-1 running the sample module: %w", err)
	}
	if j, err = c.WaitJob(ctx, j.ID); err != nil {
		return nil, err
	}
	if err := jobStateError(j); err != nil {
		return nil, err
	}
	res, err := client.WasmResult(j)
	if err != nil {
		return nil, err
	}
	return &demoWasm{Result: res, BuildSeconds: took.Seconds()}, nil
}

func (w *demoWasm) writeTable(out io.Writer, applicant string) {
	fmt.Fprintf(out, "\n== Custom model code: %s runs its own WebAssembly module (testdata/wasm/mean) over each visit's cost and inpatient stay\n", applicant)
	if w.Skipped != "" {
		fmt.Fprintf(out, "   skipped: %s\n", w.Skipped)
		return
	}
	fmt.Fprintln(out, "   sample-and-aggregate: the module runs once per block of persons inside the sandbox; only the clamped, noisy average of its outputs leaves")
	_ = writeWasmResult(indent{out}, w.Result) // the report is printed best-effort, as its other lines are
}
