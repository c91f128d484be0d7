package main

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/c1b99f93/cleanroom/sandbox"
	"github.com/c1b99f93/cleanroom/server/api"
)

func TestMain(m *testing.M) {
	// Workers are this test binary started as "<binary> worker": run the hidden subcommand.
	if sandbox.IsWorkerInvocation(os.Args) {
		os.Exit(runMain(os.Args[1:]))
	}
	maybeRunMain()
	os.Exit(m.Run())
}

// The demo is the README's main job: through a real server on a loopback port it must register
// the datasets, refuse an application naming an L4 dataset, grant the scenario's application,
// release DP tables (one after a two-person review), refuse the attacks with their codes, show
// the budget and have the auditor verify the log — and never print a token.
func TestDemoRunsTheFlagshipScenario(t *testing.T) {
	var out bytes.Buffer
	dataDir := t.TempDir()
	if err := runDemo(context.Background(), &out, filepath.Join("..", "..", "testdata", "datasets"), dataDir, "table"); err != nil {
		t.Fatalf("demo failed: %v\n%s", err, out.String())
	}
	text := out.String()
	for _, want := range []string{
		"server http://127.0.0.1:",
		"network namespace=true",
		"provider-health-commission", "op-1", "insurer-1", "rev-1", "rev-2", "aud-1",
		"refused: dataset_not_operable (HTTP 403)",
		"op-1 approves it: grant grant-",
		"visits", "total_cost", "persons", "95% CI",
		"held in review: 2 approvals needed (double_review",
		"insurer-1 tries to approve its own held job: refused forbidden (HTTP 403)",
		"rev-1 tries to approve the same job a second time: refused separation_of_duties (HTTP 403)",
		"approved by rev-1 and rev-2: released",
		"refused: identifier_in_output",
		"refused: unsupported_sql",
		`refused: forbidden — dataset "criminal_records" is outside grant grant-`,
		"  grant:grant-",
		"  dataset:medical_visits", "  dataset:residents", "  dataset:insurance_claims",
		"audit by aud-1: provenance log of",
		"hash chain verified",
		"signed checkpoint(s) verified",
		// The three queries the gate refuses are answered at once and are not jobs; the
		// verification's and the custom model's jobs are replayed and their receipts verified too.
		"11 job(s) replayed from their records: every stage matches",
		"11 release receipt(s) verified offline",
		// Issue 18 part 2: custom model code by sample-and-aggregate (the small sample module,
		// built from testdata/wasm/mean with the Go toolchain into the user's cache).
		"== Custom model code: insurer-1 runs its own WebAssembly module",
		"over k = 100 blocks",
		"laplace noise (Google DP) on the average over 100 blocks",
		// Issue 17: one statistic over two data domains under a collective key.
		"== Care events by district across two data domains",
		"(federated over 2 domains under a collective key;",
		"  dataset:bureau_claims",
		// Issue 17: a verification (核验) of declared facts, and the limit per fact.
		"== Verification (核验): insurer-1 checks 300 customers' declared income_band",
		"220 matched, 80 did not (the demo's customers: 220 declared truthfully, 20 are not in the register)",
		"asking about one of the same facts again: refused verify_limit",
		// Issue 15's headline: a free dry run, bounds chosen under DP, the bias stated.
		"dry run (free: reads no data, spends nothing): policy allow",
		"will be chosen under DP when the job runs",
		"(chosen under DP from histograms of contributions",
		"server shut down",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("demo output lacks %q", want)
		}
	}
	if got := strings.Count(text, "released job"); got != 9 {
		t.Errorf("released %d jobs, want 9", got)
	}
	if strings.Contains(text, "crt_") {
		t.Error("the demo printed a bearer token")
	}
	if t.Failed() {
		t.Log(text)
	}
}

func TestAuditVerifyDetectsTampering(t *testing.T) {
	var out bytes.Buffer
	dataDir := t.TempDir()
	if err := runDemo(context.Background(), &out, filepath.Join("..", "..", "testdata", "datasets"), dataDir, "table"); err != nil {
		t.Fatal(err)
	}
	verify := func() error {
		cmd := newRootCmd()
		cmd.SetOut(&bytes.Buffer{})
		cmd.SetArgs([]string{"audit", "verify", "--data-dir", dataDir})
		return cmd.Execute()
	}
	if err := verify(); err != nil {
		t.Fatalf("untouched log: %v", err)
	}
	path := filepath.Join(dataDir, "provenance.log")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	tampered := bytes.Replace(data, []byte(`"rows":`), []byte(`"rowz":`), 1)
	if err := os.WriteFile(path, tampered, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := verify(); err == nil {
		t.Fatal("tampered log verified")
	}
}

func TestDemoJSONOutputIsAReport(t *testing.T) {
	var out bytes.Buffer
	if err := runDemo(context.Background(), &out, filepath.Join("..", "..", "testdata", "datasets"), t.TempDir(), "json"); err != nil {
		t.Fatal(err)
	}
	var r demoReport
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatalf("output is not JSON: %v", err)
	}
	released, refused, spent := 0, map[string]int{}, 0.0
	var held *demoJob
	for i, j := range r.Jobs {
		switch {
		case j.State == api.JobReleased && j.Result != nil && len(j.Result.Rows) > 0:
			released++
			spent += j.Result.Spent.Epsilon
		case j.State == api.JobDenied && j.Error != nil && j.Error.Code != "":
			refused[j.Error.Code]++
		default:
			t.Errorf("job %q: state %s, error %+v", j.Title, j.State, j.Error)
		}
		if j.Held != nil {
			held = &r.Jobs[i]
		}
	}
	if released != 9 || len(refused) != 3 || refused["identifier_in_output"] != 1 || refused["unsupported_sql"] != 1 || refused["forbidden"] != 1 {
		t.Errorf("%d jobs released (want 9), refused %v", released, refused)
	}
	if held == nil || held.Held.Required != 2 || strings.Join(held.ReviewedBy, ",") != "rev-1,rev-2" || held.Result == nil {
		t.Errorf("the held job was not released after a two-person review: %+v", held)
	} else {
		var codes []string
		for _, rf := range held.Refusals {
			codes = append(codes, rf.Who+":"+rf.Code)
		}
		if strings.Join(codes, ",") != "insurer-1:forbidden,rev-1:separation_of_duties" {
			t.Errorf("review refusals: %v", codes)
		}
	}
	if rf := r.RefusedApplication; rf == nil || rf.Code != "dataset_not_operable" || rf.Status != 403 {
		t.Errorf("the application naming the L4 dataset: %+v", rf)
	}
	if r.Application == nil || r.Application.State != api.ApplicationApproved || r.Grant == nil || r.Application.Grant != r.Grant.ID {
		t.Errorf("application %+v, grant %+v", r.Application, r.Grant)
	} else if g := r.Grant.Budget; g.EpsilonTotal != 8 || g.DeltaTotal != 5e-7 || r.Wasm == nil || r.Wasm.Result == nil ||
		math.Abs(g.EpsilonSpent-spent-r.Model.Spent.Epsilon-r.Wasm.Result.Spent.Epsilon) > 1e-9 ||
		!g.Allocated || math.Abs(g.DeltaSpent-1e-8-r.Model.Spent.Delta) > 1e-20 {
		t.Errorf("grant budget %+v; the released jobs spent epsilon %g and the model %+v (and delta 1e-8: one partition-selection job and the federated job, each at the default share; the months are a public domain)", g, spent, r.Model.Spent)
	}
	if m := r.Model; m == nil || len(m.Coefficients) != 2 || m.Coefficients[1].Name != "inpatient_stay" || !(m.Coefficients[1].Value > 0) {
		t.Errorf("the demo model: %+v (an inpatient stay costs more than an outpatient visit)", m)
	}
	// The custom model: the visits' mean cost and inpatient share, inside their bounds, with
	// the Laplace noise of k = 100 blocks at epsilon 0.5 (stddev √2·5000·2/(100·0.5) ≈ 283
	// for the cost; the share is positive: the demo data has inpatient stays).
	if w := r.Wasm; w == nil || w.Result == nil || len(w.Result.Values) != 2 || w.Result.Blocks != 100 ||
		math.Abs(w.Result.Values[0].NoiseScale-math.Sqrt2*200) > 1e-6 || w.Result.Spent != (api.Budget{Epsilon: 0.5}) {
		t.Errorf("the demo's custom model: %+v", w)
	}
	// The grant, then the six private datasets (public lookup tables have no budget).
	if len(r.Budget) != 7 || r.Budget[0].Account != "grant:"+r.Grant.ID {
		t.Errorf("budget lines: %+v", r.Budget)
	}
	// The grant is carved out of each dataset it names, and of no other.
	for _, b := range r.Budget[1:] {
		named := slices.Contains(demoApplicationDatasets, strings.TrimPrefix(b.Account, "dataset:"))
		if carved := b.Allocated == (api.Budget{Epsilon: 8, Delta: 5e-7}); carved != named {
			t.Errorf("%s: allocated %+v", b.Account, b.Allocated)
		}
	}
	if !r.Provenance.OK() || r.Provenance.Records == 0 || r.AuditedBy != "aud-1" {
		t.Errorf("provenance %+v verified by %q", r.Provenance, r.AuditedBy)
	}
	if strings.Contains(out.String(), "crt_") {
		t.Error("the report holds a bearer token")
	}
}
