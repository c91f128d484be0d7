package engine_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/c1b99f93/cleanroom/catalog"
	"github.com/c1b99f93/cleanroom/engine"
	"github.com/c1b99f93/cleanroom/engine/ledger"
	"github.com/c1b99f93/cleanroom/engine/plan"
	"github.com/c1b99f93/cleanroom/errcode"
	"github.com/c1b99f93/cleanroom/policy"
	"github.com/c1b99f93/cleanroom/policy/bundletest"
	"github.com/c1b99f93/cleanroom/sandbox"
)

func TestMain(m *testing.M) {
	// Workers are this test binary started as "<binary> worker" (sandbox.Start's default).
	if sandbox.IsWorkerInvocation(os.Args) {
		os.Exit(sandbox.RunWorker())
	}
	os.Exit(m.Run())
}

var applicant = policy.Principal{Name: "insurer-1", Role: "applicant", Org: "acme-insurance"}

// testPolicy copies the default bundle with a per-job epsilon cap of 1000, so statistical
// tests can make noise small; every other rule is the default's.
func testPolicy(t testing.TB) string {
	t.Helper()
	return bundletest.Copy(t, bundletest.Replace(`"max_epsilon_per_job": 2.0`, `"max_epsilon_per_job": 1000`,
		`"review_epsilon_per_job": 2.0`, `"review_epsilon_per_job": 1000`))
}

func openEngine(t testing.TB) *engine.Engine {
	t.Helper()
	e, err := engine.Open(context.Background(), engine.Config{DataDir: t.TempDir(), PolicyDir: testPolicy(t), WorkerDB: sandbox.DBLimits{MemoryLimit: "2GB"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// visits writes a CSV: persons 1..n with one visit each in district A or B (alternating), and
// when heavy is set, person 0 with 1000 visits in district A. Returns the spec.
func visits(t testing.TB, name string, n int, heavy bool) *catalog.Spec {
	t.Helper()
	var b strings.Builder
	b.WriteString("person_id,district,cost,diagnosis,visit_date\n")
	id := func(i int) string { return fmt.Sprintf("53010219800101%04d", i) }
	if heavy {
		for v := 0; v < 1000; v++ {
			fmt.Fprintf(&b, "%s,A,%d,J18.9,2024-01-01\n", id(0), 100+v)
		}
	}
	for i := 1; i <= n; i++ {
		d := "A"
		if i%2 == 0 {
			d = "B"
		}
		fmt.Fprintf(&b, "%s,%s,%d,I10,2024-01-02\n", id(i), d, 100+i%50)
	}
	path := filepath.Join(t.TempDir(), name+".csv")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return &catalog.Spec{Name: name, Provider: "health-commission", Grade: catalog.GradeL2, PrivacyUnit: "person_id",
		Source: catalog.Source{Kind: catalog.SourceCSV, Path: path}, Budget: catalog.Budget{Epsilon: 1000, Delta: 1e-3},
		Columns: map[string]catalog.Column{
			"person_id":  {Tags: []catalog.Tag{catalog.TagIdentifier}},
			"district":   {Tags: []catalog.Tag{catalog.TagQuasiIdentifier}, Domain: []string{"A", "B", "C"}},
			"cost":       {Tags: []catalog.Tag{catalog.TagSensitive}, Bounds: []float64{0, 1000}},
			"diagnosis":  {Tags: []catalog.Tag{catalog.TagSensitive}},
			"visit_date": {Tags: []catalog.Tag{catalog.TagAttribute}},
		}}
}

func register(t testing.TB, e *engine.Engine, s *catalog.Spec) {
	t.Helper()
	if _, err := e.RegisterDataset(context.Background(), s, openSource(t, s.Source.Path)); err != nil {
		t.Fatal(err)
	}
}

// openSource opens a test source as the server hands it to RegisterDataset; it is closed when
// the test ends.
func openSource(t testing.TB, path string) *os.File {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func grant(t testing.TB, e *engine.Engine, id string, eps float64) {
	t.Helper()
	if err := e.OpenGrant(context.Background(), id, ledger.Budget{Epsilon: eps, Delta: 1e-4}); err != nil {
		t.Fatal(err)
	}
}

func submit(e *engine.Engine, g, sql string, o plan.Options) (*engine.Result, error) {
	return e.Submit(context.Background(), engine.Job{Principal: applicant, Grant: g, SQL: sql, Options: o})
}

// submitReviewed runs a job and, when the egress policy holds its output, has the number of
// reviewers the hold asks for approve it, then releases it: the path a held job takes on the
// server.
func submitReviewed(e *engine.Engine, g, sql string, o plan.Options) (*engine.Result, error) {
	ctx := context.Background()
	out, err := e.Run(ctx, engine.Job{Principal: applicant, Grant: g, SQL: sql, Options: o})
	if err != nil || out.Held == nil {
		if err != nil {
			return nil, err
		}
		return out.Result, nil
	}
	var reviewers []string
	for i := range out.Held.Reviewers {
		r := policy.Principal{Name: fmt.Sprintf("rev-%d", i+1), Role: "reviewer", Org: "platform"}
		if err := e.RecordReview(ctx, out.Result.Job, engine.Review{Reviewer: r, Approve: true}); err != nil {
			return nil, err
		}
		reviewers = append(reviewers, r.Name)
	}
	if _, err := e.ReleaseHeld(ctx, out.Result.Job, out.Held, out.Result, reviewers); err != nil {
		return nil, err
	}
	if err := e.EndHold(ctx, out.Result.Job); err != nil {
		return nil, err
	}
	return out.Result, nil
}

func byKey(t *testing.T, r *engine.Result, col int) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for _, row := range r.Rows {
		out[*row[0].Key] = row[col].DP.Value
	}
	return out
}

func records(t *testing.T, e *engine.Engine) []map[string]any {
	t.Helper()
	ents, err := e.Audit().Records(func(string, string) bool { return true })
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	for _, ent := range ents {
		var rec map[string]any
		if err := json.Unmarshal(ent.Record, &rec); err != nil {
			t.Fatal(err)
		}
		out = append(out, rec)
	}
	return out
}

func TestReleaseCarriesMechanismBudgetAndInterval(t *testing.T) {
	e := openEngine(t)
	register(t, e, visits(t, "visits", 200, false))
	grant(t, e, "g", 10)
	r, err := submit(e, "g", "SELECT district, COUNT(*) AS n, SUM(cost) AS total FROM visits GROUP BY district", plan.Options{Epsilon: 1})
	if err != nil {
		t.Fatal(err)
	}
	// Every public partition is computed, even the empty C, which the minimum of units per
	// group then withholds (a noisy count of 0 reaches 10 with probability about 2%, so the
	// test counts released and withheld rows together).
	if r.Suppressed == nil || len(r.Rows)+*r.Suppressed != 3 {
		t.Fatalf("rows = %d, suppressed %v; want 3 in all (A, B and the empty C)", len(r.Rows), r.Suppressed)
	}
	for _, row := range r.Rows {
		for _, c := range row[1:] {
			// Equal shares, for COUNT(*) and SUM, of what the automatic bounds (contribution and
			// clamping) and the bias estimate leave, the hidden unit count taking
			// plan.HiddenUnitCountWeight of one share.
			if c.DP == nil || c.DP.Mechanism != "laplace" || math.Abs(c.DP.Epsilon-(1-plan.BiasShare-plan.ContributionShare-plan.ClampShare)/(2+plan.HiddenUnitCountWeight)) > 1e-12 || !(c.DP.CILow <= c.DP.CIHigh) || c.DP.Value < 0 {
				t.Fatalf("cell %+v lacks mechanism, budget share or interval", c.DP)
			}
		}
	}
	if r.Spent.Epsilon != 1 || r.Spent.Delta != 0 {
		t.Fatalf("spent = %+v, want epsilon 1 and no delta (public partitions)", r.Spent)
	}
	if got := spent(t, e, "g"); got != 1 {
		t.Fatalf("grant spent %v, want 1", got)
	}
	if rep, err := e.VerifyLog(); err != nil || !rep.OK() {
		t.Fatalf("log does not verify: %v %+v", err, rep)
	}
}

// A person with 1,000 visits moves the released count by at most the contribution bound.
// Epsilon 100 makes the Laplace scale 3/50 per count; the ±4 tolerance is over 60 scales wide,
// so the test never flakes.
func TestHeavyContributorMovesCountByAtMostTheBound(t *testing.T) {
	e := openEngine(t)
	register(t, e, visits(t, "with_heavy", 200, true))
	register(t, e, visits(t, "without_heavy", 200, false))
	grant(t, e, "g", 1000)
	o := plan.Options{Epsilon: 100, MaxGroupsContributed: 1, MaxContributionsPerGroup: 3}
	with, err := submit(e, "g", "SELECT district, COUNT(*) FROM with_heavy GROUP BY district", o)
	if err != nil {
		t.Fatal(err)
	}
	without, err := submit(e, "g", "SELECT district, COUNT(*) FROM without_heavy GROUP BY district", o)
	if err != nil {
		t.Fatal(err)
	}
	d := byKey(t, with, 1)["A"] - byKey(t, without, 1)["A"]
	if d < 3-4 || d > 3+4 {
		t.Fatalf("heavy person moved the count by %.1f, want about 3 (the bound), never ~1000", d)
	}
}

// Statistical tier: at epsilon 1 the library's 95% intervals must cover the true bounded
// count in the large majority of 40 repetitions. We require 32 of 40; with true coverage 0.95
// the chance of fewer is about 1e-5.
func TestIntervalsCoverTheTruthAtFixedEpsilon(t *testing.T) {
	e := openEngineWithoutDifferencing(t)
	register(t, e, visits(t, "visits", 200, false))
	grant(t, e, "g", 100)
	covered := 0
	const reps = 40
	for i := 0; i < reps; i++ {
		r, err := submit(e, "g", fmt.Sprintf("SELECT district, COUNT(*) FROM visits WHERE cost >= %d GROUP BY district", -i), plan.Options{Epsilon: 1})
		if err != nil {
			t.Fatal(err)
		}
		for _, row := range r.Rows {
			if *row[0].Key == "A" && row[1].DP.CILow <= 100 && 100 <= row[1].DP.CIHigh {
				covered++
			}
		}
	}
	if covered < 32 {
		t.Fatalf("95%% intervals covered the true count in %d of %d runs", covered, reps)
	}
}

func TestRefusalsHaveCodesAndRecordsAndCostNothing(t *testing.T) {
	e := openEngine(t)
	register(t, e, visits(t, "visits", 50, false))
	l4 := visits(t, "sealed", 10, false)
	l4.Grade = catalog.GradeL4
	register(t, e, l4)
	grant(t, e, "g", 5)
	cases := []struct {
		sql  string
		code errcode.Code
	}{
		{"SELECT person_id FROM visits", errcode.IdentifierInOutput},
		{"SELECT * FROM visits", errcode.IdentifierInOutput},
		{"COPY visits TO '/tmp/x.csv'", errcode.UnsupportedSQL},
		{"ATTACH '/tmp/x.db'", errcode.UnsupportedSQL},
		{"INSTALL httpfs", errcode.UnsupportedSQL},
		{"LOAD httpfs", errcode.UnsupportedSQL},
		{"PRAGMA version", errcode.UnsupportedSQL},
		{"SET threads = 8", errcode.UnsupportedSQL},
		{"SELECT COUNT(*) FROM read_csv('/etc/passwd')", errcode.UnsupportedSQL},
		{"SELECT COUNT(*) FROM visits WHERE getenv('HOME') = ''", errcode.UnsupportedSQL},
		{"SELECT COUNT(*) FROM visits; SELECT 1", errcode.UnsupportedSQL},
		{"SELEC 1", errcode.SyntaxError},
		{"SELECT COUNT(*) FROM sealed", errcode.PolicyDenied},
		{"SELECT COUNT(*) FROM visits WHERE person_id = '530102198001010001'", errcode.PolicyDenied},
	}
	for _, c := range cases {
		_, err := submit(e, "g", c.sql, plan.Options{Epsilon: 1})
		if got := errcode.Of(err); got != c.code {
			t.Errorf("%s: code %q (%v), want %q", c.sql, got, err, c.code)
		}
	}
	var refused []string
	for _, r := range records(t, e) {
		if r["type"] == "job_refused" {
			refused = append(refused, r["data"].(map[string]any)["code"].(string))
		}
		if r["type"] == "execution" {
			t.Fatalf("a refused job reached the worker")
		}
	}
	if len(refused) != len(cases) {
		t.Fatalf("job_refused records = %v, want one per case", refused)
	}
	if got := spent(t, e, "g"); got != 0 {
		t.Fatalf("refused jobs cost %v", got)
	}
}

func TestBudgetExhaustionIsRefusedBeforeExecution(t *testing.T) {
	e := openEngine(t)
	register(t, e, visits(t, "visits", 50, false))
	grant(t, e, "g", 1)
	q := "SELECT district, COUNT(*) FROM visits GROUP BY district"
	if _, err := submit(e, "g", q, plan.Options{Epsilon: 0.6}); err != nil {
		t.Fatal(err)
	}
	// A different query (an identical one would be answered from the first release for free).
	_, err := submit(e, "g", "SELECT district, COUNT(*) FROM visits WHERE cost >= 0 GROUP BY district", plan.Options{Epsilon: 0.6})
	if errcode.Of(err) != errcode.BudgetExhausted {
		t.Fatalf("err = %v, want budget_exhausted", err)
	}
	if executions := countRecords(t, e, "execution"); executions != 1 {
		t.Fatalf("executions = %d, want 1: the refused job must not run", executions)
	}
	if got := spent(t, e, "g"); math.Abs(got-0.6) > 1e-12 {
		t.Fatalf("spent = %v, want 0.6", got)
	}
}

// A query that does not type-check fails before any row is read: it costs nothing.
func TestJobThatFailsBeforeReadingDataIsNotCharged(t *testing.T) {
	e := openEngine(t)
	register(t, e, visits(t, "visits", 50, false))
	grant(t, e, "g", 5)
	_, err := submit(e, "g", "SELECT COUNT(*) FROM visits WHERE visit_date * 2 > 1", plan.Options{Epsilon: 1})
	if code := errcode.Of(err); code != errcode.QueryInvalid {
		t.Fatalf("err = %v, want query_invalid", err)
	}
	if got := spent(t, e, "g"); got != 0 {
		t.Fatalf("failed job cost %v", got)
	}
	var types []string
	for _, r := range records(t, e) {
		types = append(types, r["type"].(string))
	}
	if !strings.Contains(strings.Join(types, ","), "budget_reserved,budget_refunded,job_failed") {
		t.Fatalf("log types %v lack reserve → refund → failed", types)
	}
	for _, r := range records(t, e) {
		if r["type"] == "release" {
			t.Fatal("a failed job released")
		}
	}
}

// An expression that errors only on some rows must not answer a question about the data: the
// worker evaluates filters under try(), so both probes below succeed alike — whether or not a
// row has cost above the threshold — and both are charged.
func TestDataDependentEvaluationErrorsRevealNothing(t *testing.T) {
	e := openEngineWithoutDifferencing(t)
	register(t, e, visits(t, "visits", 50, false))
	grant(t, e, "g", 5)
	for _, threshold := range []int{0, 1000} { // every cost is above 0; none is above 1000
		q := fmt.Sprintf("SELECT COUNT(*) FROM visits WHERE CAST(CAST(cost > %d AS INTEGER) * 1e12 AS INTEGER) > 0", threshold)
		if _, err := submit(e, "g", q, plan.Options{Epsilon: 1}); err != nil {
			t.Fatalf("threshold %d: %v — an error here is a noise-free answer about the data", threshold, err)
		}
	}
	if got := spent(t, e, "g"); got != 2 {
		t.Fatalf("spent %v, want 2", got)
	}
}

// A job that fails while reading rows (here its deadline) stays charged: such failures can
// depend on the data.
func TestJobThatFailsWhileReadingDataStaysCharged(t *testing.T) {
	e := openEngine(t)
	register(t, e, visits(t, "visits", 100000, true))
	grant(t, e, "g", 5)
	// 1 ms cannot cover a scan of 100,000 rows with a LIKE on each.
	_, err := submit(e, "g", "SELECT district, COUNT(*) FROM visits WHERE diagnosis LIKE '%1%' GROUP BY district", plan.Options{Epsilon: 1, TimeoutMS: 1})
	if errcode.Of(err) != errcode.SandboxTimeout {
		t.Fatalf("err = %v, want sandbox_timeout", err)
	}
	if got := spent(t, e, "g"); got != 1 {
		t.Fatalf("spent %v, want 1", got)
	}
}

func TestPartitionSelectionHidesSingleUnitGroups(t *testing.T) {
	e := openEngineWithoutDifferencing(t)
	s := visits(t, "visits", 400, true) // diagnosis "J18.9" belongs to the heavy person alone
	register(t, e, s)
	grant(t, e, "g", 1000)
	for i := 0; i < 20; i++ {
		r, err := submit(e, "g", fmt.Sprintf("SELECT diagnosis, COUNT(*) FROM visits WHERE cost > %d GROUP BY diagnosis", -1-i),
			plan.Options{Epsilon: 1, Delta: 1e-6, MaxContributionsPerGroup: 1})
		if err != nil {
			t.Fatal(err)
		}
		for _, row := range r.Rows {
			if *row[0].Key == "J18.9" {
				t.Fatalf("a group supported by one person was released")
			}
		}
		if len(r.Rows) != 1 {
			t.Fatalf("rows = %d, want only I10 (400 persons)", len(r.Rows))
		}
	}
}

func TestProvenanceHoldsNoRawValues(t *testing.T) {
	e := openEngine(t)
	register(t, e, visits(t, "visits", 30, true))
	grant(t, e, "g", 10)
	if _, err := submit(e, "g", "SELECT district, SUM(cost), COUNT(DISTINCT person_id) FROM visits GROUP BY district", plan.Options{Epsilon: 1}); err != nil {
		t.Fatal(err)
	}
	ents, err := e.Audit().Records(func(string, string) bool { return true })
	if err != nil {
		t.Fatal(err)
	}
	var data []byte
	for _, ent := range ents {
		data = append(data, ent.Record...)
	}
	for i := 0; i <= 30; i++ {
		if id := fmt.Sprintf("53010219800101%04d", i); strings.Contains(string(data), id) {
			t.Fatalf("person_id %s appears in the provenance log", id)
		}
	}
	if rep, err := e.Audit().Verify(); err != nil || !rep.OK() {
		t.Fatalf("verify: %v %+v", err, rep)
	}
}

// spent is the epsilon spent on a grant.
func spent(t *testing.T, e *engine.Engine, grant string) float64 {
	t.Helper()
	b, err := e.Balance(context.Background(), engine.GrantAccount(grant))
	if err != nil {
		t.Fatal(err)
	}
	return b.Spent.Epsilon
}

func ledgerBudget(eps float64) ledger.Budget { return ledger.Budget{Epsilon: eps, Delta: 1e-3} }

// Workers run in their own directory, so a relative data directory must still work.
func TestRelativeDataDirectory(t *testing.T) {
	pol, spec := testPolicy(t), visits(t, "visits", 50, false)
	t.Chdir(t.TempDir())
	e, err := engine.Open(context.Background(), engine.Config{DataDir: "data", PolicyDir: pol, WorkerDB: sandbox.DBLimits{MemoryLimit: "2GB"}})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	register(t, e, spec)
	grant(t, e, "g", 10)
	if _, err := submit(e, "g", "SELECT district, COUNT(*) AS n FROM visits GROUP BY district", plan.Options{Epsilon: 1}); err != nil {
		t.Fatal(err)
	}
}

// A job that names no delta gets a share of its grant's delta, but never one the access policy
// refuses: on a grant with a large delta the default stays below max_delta_per_job.
func TestDefaultDeltaStaysWithinThePolicysLimit(t *testing.T) {
	e := openEngine(t)
	register(t, e, visits(t, "visits", 200, false))
	if err := e.OpenGrant(context.Background(), "g", ledger.Budget{Epsilon: 10, Delta: 1e-2}); err != nil {
		t.Fatal(err)
	}
	r, err := submit(e, "g", "SELECT diagnosis, COUNT(*) FROM visits GROUP BY diagnosis", plan.Options{Epsilon: 1})
	if err != nil {
		t.Fatalf("a partition-selection job at the default delta: %v", err)
	}
	if limit := e.Params().MaxDeltaPerJob; !(r.Spent.Delta > 0 && r.Spent.Delta < limit) {
		t.Fatalf("spent delta %g, want in (0, %g)", r.Spent.Delta, limit)
	}
}

// A MAX (or MIN) says what it is: a DP quantile at rank 1 (0) within the clamping bounds, not
// the single extreme value; other columns carry no note.
func TestMaxSaysItIsAQuantileNotTheLargestValue(t *testing.T) {
	e := openEngine(t)
	register(t, e, visits(t, "visits", 200, false))
	grant(t, e, "g", 10)
	r, err := submit(e, "g", "SELECT MAX(cost) AS largest, MIN(cost) AS smallest, COUNT(*) AS n FROM visits", plan.Options{Epsilon: 1, MaxGroupsContributed: 1, MaxContributionsPerGroup: 5})
	if err != nil {
		t.Fatal(err)
	}
	if c := r.Columns[0]; !strings.Contains(c.Note, "MAX under DP is a quantile at rank 1") || !strings.Contains(c.Note, "[0, 1000]") {
		t.Fatalf("MAX column %+v", c)
	}
	if c := r.Columns[1]; !strings.Contains(c.Note, "MIN under DP is a quantile at rank 0") {
		t.Fatalf("MIN column %+v", c)
	}
	if c := r.Columns[2]; c.Note != "" {
		t.Fatalf("COUNT column %+v has a note", c)
	}
}
