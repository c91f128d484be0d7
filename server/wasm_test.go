package server_test

import (
	"context"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/c1b99f93/cleanroom/errcode"
	"github.com/c1b99f93/cleanroom/sandbox/wasm"
	"github.com/c1b99f93/cleanroom/sandbox/wasm/wasmtest"
	"github.com/c1b99f93/cleanroom/server/api"
	"github.com/c1b99f93/cleanroom/server/client"
)

func wasmGrant(t *testing.T, p *platform, datasets ...string) string {
	t.Helper()
	var app api.Application
	p.must("insurer-1", "POST", "/v1/applications", api.ApplicationRequest{Purpose: "research", Scenario: "custom model",
		Datasets: datasets, Start: "2026-01-01", End: "2026-12-31", Epsilon: 10, Delta: 1e-6, JobKinds: []string{api.KindWasm}}, &app)
	var ok api.Approved
	p.must("op-1", "POST", "/v1/applications/"+app.ID+"/approve", api.ApproveRequest{}, &ok)
	return ok.GrantID
}

// wasmPlatform starts a server with the model data and a grant covering wasm jobs, and returns
// the applicant's client.
func wasmPlatform(t *testing.T) (*platform, string, *client.Client) {
	t.Helper()
	clk := &clock{now: time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)}
	p := start(t, t.TempDir(), clk)
	writeModelData(t, p, "model_data", false)
	grant := wasmGrant(t, p, "model_data")
	c, err := client.New(p.base, token("insurer-1"))
	if err != nil {
		t.Fatal(err)
	}
	return p, grant, c
}

// meansRequest is a job of the mean module over x1 ∈ [0, 10] and x2 ∈ {0, 1} of the model
// data (true means 5 and 0.5).
func meansRequest(digest string, k int) api.WasmRequest {
	return api.WasmRequest{ModuleDigest: digest, SQL: "SELECT person_id, x1, x2 FROM model_data", Blocks: k,
		Output: api.WasmOutput{Length: 2, Bounds: [][2]float64{{0, 10}, {0, 1}}, Default: []float64{5, 0.5}}}
}

func runWasmOverHTTP(t *testing.T, c *client.Client, grant string, w api.WasmRequest, opts api.JobOptions) (*api.Job, *api.WasmResult) {
	t.Helper()
	ctx := context.Background()
	j, err := c.RunWasm(ctx, grant, w, opts)
	if err != nil {
		t.Fatal(err)
	}
	if j, err = c.WaitJob(ctx, j.ID); err != nil || j.State != api.JobReleased {
		t.Fatalf("wasm job %s: %v, %+v", j.State, err, j.Error)
	}
	res, err := client.WasmResult(j)
	if err != nil {
		t.Fatal(err)
	}
	return j, res
}

// TestWasmJobsOverHTTP uploads the small sample module, runs it by digest (Laplace, delta 0)
// and sent with the job (Gaussian), and checks the released means, the budget (debited once
// per job), that no job document holds the module's bytes, and the replay. Tolerances never
// flake: with k = 100 and epsilon 2 the Laplace scale of x1's mean is 10·2/(100·2) = 0.1 and
// of x2's 0.01, against tolerances of 1.5 and 0.15 (15 scales: probability below 1e-6 each);
// the sampling error of the averages (20,000 persons) is about 0.02 and 0.004. The Gaussian
// job's σ at epsilon 2, delta 1e-8 is about 0.4 and 0.04 (tolerances 3 and 0.3, 7σ).
func TestWasmJobsOverHTTP(t *testing.T) {
	p, grant, c := wasmPlatform(t)
	ctx := context.Background()
	bin := wasmtest.Build(t, wasmtest.Mean)
	up, err := c.UploadWasmModule(ctx, grant, bin)
	if err != nil {
		t.Fatal(err)
	}
	if up.Digest != wasm.Digest(bin) || up.Bytes != len(bin) {
		t.Fatalf("upload answered %+v, want digest %s", up, wasm.Digest(bin))
	}
	again, err := c.UploadWasmModule(ctx, grant, bin)
	if err != nil || again.Digest != up.Digest {
		t.Fatalf("a second upload answered %+v (%v)", again, err)
	}

	j, res := runWasmOverHTTP(t, c, grant, meansRequest(up.Digest, 100), api.JobOptions{Epsilon: 2, Delta: new(0.0)})
	if len(res.Values) != 2 || res.Blocks != 100 || res.ModuleDigest != up.Digest || res.Components[0].Mechanism != "laplace" {
		t.Fatalf("result %+v", res)
	}
	x1, x2 := res.Values[0], res.Values[1]
	if math.Abs(x1.Value-5) > 1.5 || math.Abs(x2.Value-0.5) > 0.15 {
		t.Errorf("means %+v %+v, want about 5 and 0.5", x1, x2)
	}
	if !(x1.Lower <= x1.Value && x1.Value <= x1.Upper) || math.Abs(x1.NoiseScale-math.Sqrt2*0.1) > 1e-9 || res.Confidence != 0.95 {
		t.Errorf("interval or noise scale: %+v (want stddev %g), confidence %g", x1, math.Sqrt2*0.1, res.Confidence)
	}
	if j.Wasm == nil || j.Wasm.ModuleDigest != up.Digest || j.Wasm.Module != nil {
		t.Errorf("the job document's wasm is %+v", j.Wasm)
	}
	spent := func() (grantEps, datasetEps float64) {
		var g api.Grant
		p.must("insurer-1", "GET", "/v1/grants/"+grant, nil, &g)
		var d api.BudgetReport
		p.must("op-1", "GET", "/v1/datasets/model_data/budget", nil, &d)
		return g.Budget.EpsilonSpent, d.Balance.Spent.Epsilon
	}
	if g, d := spent(); math.Abs(g-2) > 1e-9 || math.Abs(d-2) > 1e-9 {
		t.Errorf("after one wasm job the grant spent epsilon %g and the dataset %g, want 2 and 2", g, d)
	}
	var rep api.ReplayReport
	p.must("aud-1", "POST", "/v1/audit/jobs/"+j.ID+"/replay", nil, &rep)
	if !rep.Match || !replayed(rep, "run") {
		t.Errorf("replay of the wasm job: %+v", rep)
	}

	inline := meansRequest("", 100)
	inline.Module = bin
	j, res = runWasmOverHTTP(t, c, grant, inline, api.JobOptions{Epsilon: 2, Delta: new(1e-8)})
	// One σ for the whole vector, calibrated to its L2 sensitivity (dominated by the first
	// element's bounds): at ε 2 it is about 0.27, more than the second element's range, so each
	// value is checked within 6σ (plus 0.1 of sampling error): a miss has probability about
	// 2·10⁻⁹, never a flake; the Laplace run above checks the means closely.
	sigma := res.Values[0].NoiseScale
	if res.Components[0].Mechanism != "gaussian" || !(sigma > 0) || res.Values[1].NoiseScale != sigma ||
		math.Abs(res.Values[0].Value-5) > 6*sigma+0.1 || math.Abs(res.Values[1].Value-0.5) > 6*sigma+0.1 {
		t.Errorf("gaussian result %+v", res)
	}
	if j.Wasm == nil || j.Wasm.Module != nil || j.Wasm.ModuleDigest != up.Digest {
		t.Errorf("a module sent with the job is kept by digest only: %+v", j.Wasm)
	}
	if g, d := spent(); math.Abs(g-4) > 1e-9 || math.Abs(d-4) > 1e-9 {
		t.Errorf("after two wasm jobs the grant spent epsilon %g and the dataset %g, want 4 and 4", g, d)
	}
	var jobs api.Jobs
	p.must("insurer-1", "GET", "/v1/jobs", nil, &jobs)
	for _, lj := range jobs.Jobs {
		if lj.Wasm != nil && lj.Wasm.Module != nil {
			t.Errorf("job %s lists the module's bytes", lj.ID)
		}
	}
}

// TestWasmRequestsRefusedWithStableCodes: a wrong custom model request, or a wrong upload, is
// answered at once with its code, never becomes a job and costs nothing.
func TestWasmRequestsRefusedWithStableCodes(t *testing.T) {
	clk := &clock{now: time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)}
	p := start(t, t.TempDir(), clk)
	writeModelData(t, p, "model_data", false)
	grant := wasmGrant(t, p, "model_data")
	bin := wasmtest.Build(t, wasmtest.Mean)
	var up api.WasmModule
	p.must("insurer-1", "POST", "/v1/wasm/modules?grant="+grant, api.WasmModuleUpload{Module: bin}, &up)
	cases := []struct {
		name string
		edit func(w *api.WasmRequest)
		code errcode.Code
	}{
		{"no module", func(w *api.WasmRequest) { w.ModuleDigest = "" }, errcode.InvalidRequest},
		{"module and digest", func(w *api.WasmRequest) { w.Module = bin }, errcode.InvalidRequest},
		{"malformed digest", func(w *api.WasmRequest) { w.ModuleDigest = "sha256:../../etc/passwd" }, errcode.InvalidRequest},
		{"unknown digest", func(w *api.WasmRequest) { w.ModuleDigest = "sha256:" + strings.Repeat("0", 64) }, errcode.NotFound},
		{"not a module", func(w *api.WasmRequest) { w.ModuleDigest, w.Module = "", []byte("not wasm") }, errcode.WasmInvalidModule},
		{"wrong abi", func(w *api.WasmRequest) { w.ModuleDigest, w.Module = "", wasmtest.Build(t, wasmtest.WrongABI) }, errcode.WasmInvalidModule},
		{"no sql", func(w *api.WasmRequest) { w.SQL = " " }, errcode.InvalidRequest},
		{"length 0", func(w *api.WasmRequest) { w.Output = api.WasmOutput{} }, errcode.InvalidOptions},
		{"length beyond the platform's", func(w *api.WasmRequest) { w.Output.Length = 1025 }, errcode.InvalidOptions},
		{"bounds for another length", func(w *api.WasmRequest) { w.Output.Bounds = w.Output.Bounds[:1] }, errcode.InvalidOptions},
		{"reversed bounds", func(w *api.WasmRequest) { w.Output.Bounds = [][2]float64{{10, 0}, {0, 1}} }, errcode.InvalidOptions},
		{"default outside", func(w *api.WasmRequest) { w.Output.Default = []float64{11, 0.5} }, errcode.InvalidOptions},
		{"one block", func(w *api.WasmRequest) { w.Blocks = 1 }, errcode.InvalidOptions},
		{"too many blocks", func(w *api.WasmRequest) { w.Blocks = 10001 }, errcode.InvalidOptions},
		{"negative deadline", func(w *api.WasmRequest) { w.DeadlineMS = -1 }, errcode.InvalidOptions},
		{"deadline too long", func(w *api.WasmRequest) { w.DeadlineMS = 60001 }, errcode.InvalidOptions},
		{"identifier column", func(w *api.WasmRequest) { w.SQL = "SELECT person_id, x1, length(person_id) AS n FROM model_data" }, errcode.IdentifierInOutput},
		{"unit column again", func(w *api.WasmRequest) { w.SQL = "SELECT person_id, x1, person_id AS p FROM model_data" }, errcode.IdentifierInOutput},
		{"unit not first", func(w *api.WasmRequest) { w.SQL = "SELECT x1, x2 FROM model_data" }, errcode.UnsupportedSQL},
		{"unknown dataset", func(w *api.WasmRequest) { w.SQL = "SELECT person_id, x1 FROM nowhere" }, errcode.UnknownDataset},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := meansRequest(up.Digest, 20)
			w.Output.Bounds = [][2]float64{{0, 10}, {0, 1}}
			w.Output.Default = []float64{5, 0.5}
			tc.edit(&w)
			p.refused("insurer-1", "POST", "/v1/jobs", api.JobRequest{Grant: grant, Kind: api.KindWasm, Wasm: &w}, 400, tc.code)
		})
	}
	w := meansRequest(up.Digest, 20)
	p.refused("insurer-1", "POST", "/v1/jobs", api.JobRequest{Grant: grant, Kind: api.KindWasm, Wasm: &w, SQL: "SELECT 1"}, 400, errcode.InvalidRequest)
	p.refused("insurer-1", "POST", "/v1/jobs", api.JobRequest{Grant: grant, Kind: api.KindWasm}, 400, errcode.InvalidRequest)
	p.refused("insurer-1", "POST", "/v1/wasm/modules?grant="+grant, api.WasmModuleUpload{Module: []byte("not wasm")}, 400, errcode.WasmInvalidModule)
	p.refused("insurer-1", "POST", "/v1/wasm/modules", api.WasmModuleUpload{Module: bin}, 400, errcode.InvalidRequest)
	p.refused("insurer-2", "POST", "/v1/wasm/modules?grant="+grant, api.WasmModuleUpload{Module: bin}, 404, errcode.NotFound)
	var jobs api.Jobs
	p.must("insurer-1", "GET", "/v1/jobs", nil, &jobs)
	var g api.Grant
	p.must("insurer-1", "GET", "/v1/grants/"+grant, nil, &g)
	if len(jobs.Jobs) != 0 || g.Budget.EpsilonSpent != 0 {
		t.Errorf("refused requests became %d jobs and spent epsilon %g", len(jobs.Jobs), g.Budget.EpsilonSpent)
	}

	// Beyond the operator's limits (policy: k ≤ 1000): the job is denied by the access
	// policy, before anything is reserved.
	c, err := client.New(p.base, token("insurer-1"))
	if err != nil {
		t.Fatal(err)
	}
	j, err := c.RunWasm(context.Background(), grant, meansRequest(up.Digest, 2000), api.JobOptions{Epsilon: 1})
	if err == nil {
		j, err = c.WaitJob(context.Background(), j.ID)
	}
	if err != nil || j.State != api.JobDenied || j.Error == nil || j.Error.Code != string(errcode.PolicyDenied) || !strings.Contains(j.Error.Message, "wasm_blocks_out_of_range") {
		t.Errorf("k = 2000: %v, %+v", err, j)
	}
	// A module that passes the upload's check but traps in its initialisation is refused by
	// the worker's trial instantiation, before any row is read: denied and refunded.
	var initpanic api.WasmModule
	p.must("insurer-1", "POST", "/v1/wasm/modules?grant="+grant, api.WasmModuleUpload{Module: wasmtest.Build(t, wasmtest.InitPanic)}, &initpanic)
	j, err = c.RunWasm(context.Background(), grant, meansRequest(initpanic.Digest, 20), api.JobOptions{Epsilon: 1})
	if err == nil {
		j, err = c.WaitJob(context.Background(), j.ID)
	}
	if err != nil || j.State != api.JobDenied || j.Error == nil || j.Error.Code != string(errcode.WasmInvalidModule) {
		t.Errorf("a module that traps in _initialize: %v, %+v", err, j)
	}
	p.must("insurer-1", "GET", "/v1/grants/"+grant, nil, &g)
	if g.Budget.EpsilonSpent != 0 {
		t.Errorf("denied jobs spent epsilon %g", g.Budget.EpsilonSpent)
	}
}

// TestWasmTrapOnAPredicateReleasesEitherWay runs the hostile predicate module — it traps when
// some row of its block holds the value 4242 — over HTTP twice on the same persons: once where
// a few rows hold the target (x1 above 9.999 mapped to 4242: about two of 20,000 persons) and
// once where none does. Both jobs are released and charged alike: whether a block trapped
// shows only through the noisy average.
func TestWasmTrapOnAPredicateReleasesEitherWay(t *testing.T) {
	p, grant, c := wasmPlatform(t)
	up, err := c.UploadWasmModule(context.Background(), grant, wasmtest.Build(t, wasmtest.Predicate))
	if err != nil {
		t.Fatal(err)
	}
	var states []string
	for _, threshold := range []string{"9.999", "99"} {
		w := api.WasmRequest{ModuleDigest: up.Digest, Blocks: 10, DeadlineMS: 5000,
			SQL:    "SELECT person_id, CASE WHEN x1 > " + threshold + " THEN 4242 ELSE x1 END AS v FROM model_data",
			Output: api.WasmOutput{Length: 2, Bounds: [][2]float64{{0, 1}, {0, 100}}, Default: []float64{0, 0}}}
		j, err := c.RunWasm(context.Background(), grant, w, api.JobOptions{Epsilon: 0.5, Delta: new(0.0)})
		if err == nil {
			j, err = c.WaitJob(context.Background(), j.ID)
		}
		if err != nil {
			t.Fatal(err)
		}
		states = append(states, j.State)
	}
	if states[0] != api.JobReleased || states[1] != api.JobReleased {
		t.Errorf("with the target rows %s, without %s; want both released", states[0], states[1])
	}
	var g api.Grant
	p.must("insurer-1", "GET", "/v1/grants/"+grant, nil, &g)
	if math.Abs(g.Budget.EpsilonSpent-1) > 1e-9 {
		t.Errorf("two jobs at epsilon 0.5 spent %g", g.Budget.EpsilonSpent)
	}
}
