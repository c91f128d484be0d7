package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/c1b99f93/cleanroom/engine"
	"github.com/c1b99f93/cleanroom/sandbox"
	"github.com/c1b99f93/cleanroom/server"
	"github.com/c1b99f93/cleanroom/server/api"
	"github.com/c1b99f93/cleanroom/server/client"
)

// linearModel is the linear model of writeModelData's x1, x2 and y.
func linearModel(sql string) api.ModelRequest {
	return api.ModelRequest{Type: api.ModelLinearRegression, SQL: sql, Features: []string{"x1", "x2"}, Label: "y",
		Bounds: map[string][]float64{"y": {0, 50}}}
}

// submitModel submits m at epsilon eps as insurer-1 and waits for the job to end.
func submitModel(t *testing.T, p *platform, grant string, m api.ModelRequest, eps float64) api.Job {
	t.Helper()
	var j api.Job
	p.must("insurer-1", "POST", "/v1/jobs", api.JobRequest{Grant: grant, Kind: api.KindModel, Model: &m, Options: api.JobOptions{Epsilon: eps}}, &j)
	return p.waitJob("insurer-1", j.ID)
}

// modelOf decodes a model job's result.
func modelOf(t *testing.T, raw json.RawMessage) *api.ModelResult {
	t.Helper()
	var m api.ModelResult
	if err := json.Unmarshal(raw, &m); err != nil || len(m.Coefficients) == 0 {
		t.Fatalf("not a model: %s (%v)", raw, err)
	}
	return &m
}

// sameModel reports whether two releases carry the same numbers: coefficients, intercept,
// intervals and metrics.
func sameModel(a, b *api.ModelResult) bool {
	return reflect.DeepEqual(a.Coefficients, b.Coefficients) && a.Intercept == b.Intercept && reflect.DeepEqual(a.Metrics, b.Metrics)
}

func grantEpsilonSpent(p *platform, grant string) float64 {
	var g api.Grant
	p.must("insurer-1", "GET", "/v1/grants/"+grant, nil, &g)
	return g.Budget.EpsilonSpent
}

// reviewQueue is rev-2's review queue (rev-1's is the same: both are of the platform).
func reviewQueue(p *platform) []api.ReviewItem {
	var q api.Reviews
	p.must("rev-2", "GET", "/v1/reviews", nil, &q)
	return q.Reviews
}

// verifyReceipt checks a released job's receipt offline against its result and the
// platform's public key.
func verifyReceipt(t *testing.T, p *platform, j api.Job) *engine.ReceiptBody {
	t.Helper()
	pub := strings.TrimSpace(p.text("insurer-1", "/v1/audit/pubkey"))
	body, err := engine.VerifyReceipt([]byte(j.Receipt), j.Result, pub)
	if err != nil || body.Job != j.ID {
		t.Fatalf("the receipt of %s does not verify against its model: %+v, %v", j.ID, body, err)
	}
	return body
}

// TestModelHeldForReviewReleasedOrRejectedOverHTTP: under a policy whose
// review_epsilon_per_job (0.5) is below the job's epsilon (1), a model over an L3 dataset is
// held for two reviewers, charged, and shown to them with its coefficients in the review
// queue — never to the applicant. A repeat while it waits (other whitespace, case and table
// alias) is refused with output_held, at no cost and without a second queue entry. Two
// approvals release it with a receipt that verifies offline; a repeat after that is answered
// from the release (the same coefficients, nothing spent) and, over the threshold again, held
// again. A model a reviewer rejects is withheld; its repeats are refused with review_rejected
// and the reason, at no cost, and never queued. The noise is fresh in every run: the
// coefficients are checked against the truth with tolerances ten times the noise's standard
// deviation (TestModelJobsOverHTTP), and repeats for equality.
func TestModelHeldForReviewReleasedOrRejectedOverHTTP(t *testing.T) {
	bundle := bundleWith(t, func(b []byte) []byte {
		return bytes.Replace(b, []byte(`"review_epsilon_per_job": 2.0`), []byte(`"review_epsilon_per_job": 0.5`), 1)
	})
	// The shipped egress tests pin the shipped threshold (2.0); an operator who lowers it
	// brings tests of its own, and the server refuses a bundle whose tests fail.
	if err := os.Remove(filepath.Join(bundle, "egress_test.rego")); err != nil {
		t.Fatal(err)
	}
	ps, err := server.ParsePrincipals([]byte(principalsYAML))
	if err != nil {
		t.Fatal(err)
	}
	clk := &clock{now: time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)}
	dataDir, roots := t.TempDir(), importRoots(t)
	srv, err := server.New(context.Background(), server.Config{DataDir: dataDir, Principals: ps, PolicyDir: bundle, ImportRoots: roots,
		Now: clk.Now, Logger: slog.New(slog.NewTextHandler(os.Stderr, nil)), WorkerDB: sandbox.DBLimits{MemoryLimit: "2GB"}})
	if err != nil {
		t.Fatal(err)
	}
	p := serveOn(t, srv, dataDir)
	p.roots = roots
	writeModelDataGraded(t, p, "model_data", "L3", false)
	grant := modelGrant(t, p, "model_data")

	// Held: charged, in the queue with its coefficients, not shown to the applicant.
	lin := linearModel("SELECT person_id, x1, x2, y FROM model_data")
	held := submitModel(t, p, grant, lin, 1)
	if held.State != api.JobInReview || held.Result != nil || held.Receipt != "" || held.Review == nil || held.Review.Required != 2 ||
		!strings.Contains(strings.Join(held.Review.Reasons, ";"), "epsilon_review") {
		t.Fatalf("the model is %s (%+v, review %+v), want in_review for two reviewers, held for epsilon_review, without a result", held.State, held.Error, held.Review)
	}
	if s := grantEpsilonSpent(p, grant); math.Abs(s-1) > 1e-9 {
		t.Fatalf("a held model left the grant at epsilon spent %g, want 1 (it was computed)", s)
	}
	q := reviewQueue(p)
	if len(q) != 1 || q[0].Job.ID != held.ID {
		t.Fatalf("review queue %+v, want the held model", q)
	}
	queued := modelOf(t, q[0].Result)
	if queued.Job != held.ID || queued.Coefficients[0].Name != "x1" || math.Abs(queued.Coefficients[0].Value-modelTrueX1) > 0.3 ||
		math.Abs(queued.Coefficients[1].Value-modelTrueX2) > 0.5 || queued.Spent.Epsilon != 1 || queued.LogIndex != 0 {
		t.Fatalf("the queue shows the model as %+v", queued)
	}

	// A repeat while held: output_held, free, not queued.
	alias := linearModel("select m.person_id,  m.x1 AS x1, m.x2 as x2, m.y AS y\nfrom model_data m")
	dup := submitModel(t, p, grant, alias, 1)
	if dup.State != api.JobDenied || dup.Error == nil || dup.Error.Code != "output_held" || !strings.Contains(dup.Error.Message, held.ID) {
		t.Fatalf("a repeat of a held model is %s (%+v), want denied output_held naming %s", dup.State, dup.Error, held.ID)
	}
	if q := reviewQueue(p); len(q) != 1 || grantEpsilonSpent(p, grant) != 1 {
		t.Fatalf("after a repeat while held: queue %d entries, epsilon spent %g; want 1 and 1", len(q), grantEpsilonSpent(p, grant))
	}
	p.refused("rev-2", "POST", "/v1/reviews/"+dup.ID+"/approve", nil, 409, "conflict")

	// Two approvals release it, with a receipt over exactly what was reviewed.
	var after api.Job
	p.must("rev-1", "POST", "/v1/reviews/"+held.ID+"/approve", api.ReasonRequest{Reason: "coefficients only"}, &after)
	if after.State != api.JobInReview {
		t.Fatalf("after one approval the model is %s, want still in_review", after.State)
	}
	p.must("rev-2", "POST", "/v1/reviews/"+held.ID+"/approve", nil, &after)
	if after.State != api.JobReleased {
		t.Fatalf("after two approvals the model is %s (%+v), want released", after.State, after.Error)
	}
	released := p.waitJob("insurer-1", held.ID)
	rel := modelOf(t, released.Result)
	if !sameModel(rel, queued) || rel.LogIndex == 0 || released.Receipt == "" {
		t.Fatalf("released %+v (receipt %t), want the reviewed model %+v with its log index", rel, released.Receipt != "", queued)
	}
	if body := verifyReceipt(t, p, released); len(body.Reviewers) != 2 || body.Spent.Epsilon != 1 || len(body.Mechanisms) != 2 {
		t.Fatalf("receipt %+v, want two reviewers, epsilon 1 and a mechanism per coefficient", body)
	}

	// A repeat after the release: the same model, nothing spent, and held again (its epsilon is
	// over the threshold; the decision on a released output does not stick).
	again := submitModel(t, p, grant, alias, 1)
	if again.State != api.JobInReview {
		t.Fatalf("a repeat of a model released after review is %s (%+v), want in_review", again.State, again.Error)
	}
	q = reviewQueue(p)
	if len(q) != 1 || q[0].Job.ID != again.ID {
		t.Fatalf("review queue %+v, want the repeat", q)
	}
	rq := modelOf(t, q[0].Result)
	if !sameModel(rq, rel) || rq.Repeat == nil || rq.Repeat.Job != held.ID || rq.Repeat.Spent.Epsilon != 1 || rq.Spent != (api.Budget{}) {
		t.Fatalf("the held repeat is %+v (repeat %+v), want the first release's numbers, answered from %s at no cost", rq, rq.Repeat, held.ID)
	}
	p.must("rev-2", "POST", "/v1/reviews/"+again.ID+"/approve", nil, nil)
	p.must("rev-1", "POST", "/v1/reviews/"+again.ID+"/approve", nil, nil)
	again = p.waitJob("insurer-1", again.ID)
	if again.State != api.JobReleased || !sameModel(modelOf(t, again.Result), rel) {
		t.Fatalf("the approved repeat is %s", again.State)
	}
	if body := verifyReceipt(t, p, again); (body.Spent.Epsilon != 0 || body.Spent.Delta != 0) || body.Mechanisms[0].Epsilon != 1 {
		t.Fatalf("the repeat's receipt %+v, want nothing spent and the first release's mechanism", body)
	}
	if s := grantEpsilonSpent(p, grant); math.Abs(s-1) > 1e-9 {
		t.Fatalf("after the repeats the grant spent epsilon %g, want 1", s)
	}

	// Rejected: withheld for good; every repeat is refused with the reason, free, never queued.
	one := api.ModelRequest{Type: api.ModelLinearRegression, SQL: "SELECT person_id, x1, y FROM model_data", Features: []string{"x1"}, Label: "y",
		Bounds: map[string][]float64{"y": {0, 50}}}
	second := submitModel(t, p, grant, one, 1)
	if second.State != api.JobInReview {
		t.Fatalf("the second model is %s (%+v), want in_review", second.State, second.Error)
	}
	const reason = "a single-feature model is not needed for the stated purpose"
	var rejected api.Job
	p.must("rev-1", "POST", "/v1/reviews/"+second.ID+"/reject", api.ReasonRequest{Reason: reason}, &rejected)
	if rejected.State != api.JobDenied || rejected.Error == nil || rejected.Error.Code != "review_rejected" {
		t.Fatalf("the rejected model is %s (%+v)", rejected.State, rejected.Error)
	}
	p.refused("rev-2", "POST", "/v1/reviews/"+second.ID+"/approve", nil, 409, "conflict")
	if j := p.waitJob("insurer-1", second.ID); j.Result != nil || j.Receipt != "" {
		t.Fatal("a rejected model shows a result")
	}
	spent := grantEpsilonSpent(p, grant)
	if math.Abs(spent-2) > 1e-9 {
		t.Fatalf("after a rejected model the grant spent epsilon %g, want 2 (both computed models stay charged)", spent)
	}
	for _, sql := range []string{"SELECT person_id, x1, y FROM model_data", "SELECT v.person_id, v.x1 AS x1, v.y AS y FROM model_data AS v"} {
		m := one
		m.SQL = sql
		rep := submitModel(t, p, grant, m, 1)
		if rep.State != api.JobDenied || rep.Error == nil || rep.Error.Code != "review_rejected" || !strings.Contains(rep.Error.Message, reason) ||
			!strings.Contains(rep.Error.Message, second.ID) || rep.Result != nil {
			t.Fatalf("%s: a repeat of a rejected model is %s (%+v), want denied review_rejected with the reason", sql, rep.State, rep.Error)
		}
		p.refused("rev-2", "POST", "/v1/reviews/"+rep.ID+"/approve", nil, 409, "conflict")
	}
	if q := reviewQueue(p); len(q) != 0 || grantEpsilonSpent(p, grant) != spent {
		t.Fatalf("after the repeats of a rejected model: queue %+v, epsilon spent %g (was %g)", q, grantEpsilonSpent(p, grant), spent)
	}
}

// TestModelRepeatAnsweredFromReleaseOverHTTP: a model identical to a released one on the same
// grant — the same type, SQL up to whitespace, case and aliases over the same snapshot,
// features, label, bounds, rows per unit, iterations, epsilon and delta — is answered from
// the first release: the same numbers, no new noise, nothing spent, a receipt of its own; the
// replay says no pass ran. Another epsilon is another model (trained and charged).
func TestModelRepeatAnsweredFromReleaseOverHTTP(t *testing.T) {
	clk := &clock{now: time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)}
	p := start(t, t.TempDir(), clk)
	writeModelData(t, p, "model_data", false)
	grant := modelGrant(t, p, "model_data")

	first := submitModel(t, p, grant, linearModel("SELECT person_id, x1, x2, y FROM model_data"), 1)
	if first.State != api.JobReleased {
		t.Fatalf("the first model is %s (%+v)", first.State, first.Error)
	}
	m1 := modelOf(t, first.Result)
	rep := submitModel(t, p, grant, linearModel("select d.person_id, d.x1 as x1,\n\td.x2 AS x2, d.y as y FROM model_data d"), 1)
	if rep.State != api.JobReleased {
		t.Fatalf("the repeat is %s (%+v)", rep.State, rep.Error)
	}
	m2 := modelOf(t, rep.Result)
	if !sameModel(m1, m2) || m2.Repeat == nil || m2.Repeat.Job != first.ID || m2.Repeat.Spent != m1.Spent || m2.Spent != (api.Budget{}) || m2.Job != rep.ID {
		t.Fatalf("the repeat released %+v (repeat %+v), want %+v answered from %s at no cost", m2, m2.Repeat, m1, first.ID)
	}
	if body := verifyReceipt(t, p, rep); body.Spent.Epsilon != 0 || body.Spent.Delta != 0 {
		t.Fatalf("the repeat's receipt says it spent %+v", body.Spent)
	}
	if s := grantEpsilonSpent(p, grant); math.Abs(s-1) > 1e-9 {
		t.Fatalf("after a repeat the grant spent epsilon %g, want 1", s)
	}
	var replay api.ReplayReport
	p.must("aud-1", "POST", "/v1/audit/jobs/"+rep.ID+"/replay", nil, &replay)
	if !replay.Match || replayed(replay, "train") || !strings.Contains(fmt.Sprint(replay.Stages), first.ID) {
		t.Errorf("replay of the repeat: %+v", replay)
	}

	// Another epsilon: trained again, charged, fresh noise.
	fresh := submitModel(t, p, grant, linearModel("SELECT person_id, x1, x2, y FROM model_data"), 0.9)
	m3 := modelOf(t, fresh.Result)
	if fresh.State != api.JobReleased || m3.Repeat != nil || sameModel(m3, m1) || math.Abs(grantEpsilonSpent(p, grant)-1.9) > 1e-9 {
		t.Fatalf("a model at another epsilon: %s, repeat %+v, same numbers %t, epsilon spent %g; want a fresh model at 1.9",
			fresh.State, m3.Repeat, sameModel(m3, m1), grantEpsilonSpent(p, grant))
	}

	// A logistic fit repeats alike (its steps are not drawn again).
	logit := api.ModelRequest{Type: api.ModelLogisticRegression, SQL: "SELECT person_id, x1, x2, z = 1 AS positive FROM model_data",
		Features: []string{"x1", "x2"}, Label: "positive", Iterations: 5}
	l1 := submitModel(t, p, grant, logit, 0.5)
	logit.SQL = "SELECT person_id, x1, x2, (z = 1) AS positive FROM model_data"
	l2 := submitModel(t, p, grant, logit, 0.5)
	r1, r2 := modelOf(t, l1.Result), modelOf(t, l2.Result)
	if l2.State != api.JobReleased || !sameModel(r1, r2) || r2.Repeat == nil || r2.Repeat.Job != l1.ID || math.Abs(grantEpsilonSpent(p, grant)-2.4) > 1e-9 {
		t.Fatalf("the logistic repeat: %s, repeat %+v, same %t, epsilon spent %g (want 2.4)", l2.State, r2.Repeat, sameModel(r1, r2), grantEpsilonSpent(p, grant))
	}
}

// TestModelOverJoinOnThePrivacyUnitOverHTTP trains a linear model whose features come from
// two datasets joined on the privacy unit: x1, x2 and y from model_data, x3 (no relation to
// y) from model_extra, which holds every other person. The join keeps those 10,000 persons,
// and the coefficients are near the truth (3, −5 and 0); tolerances are ten times the noise's
// standard deviation or more (fixed data, seed 19).
func TestModelOverJoinOnThePrivacyUnitOverHTTP(t *testing.T) {
	clk := &clock{now: time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)}
	p := start(t, t.TempDir(), clk)
	writeModelData(t, p, "model_data", false)
	rng := rand.New(rand.NewPCG(19, 19))
	schema := arrow.NewSchema([]arrow.Field{{Name: "person_id", Type: arrow.BinaryTypes.String}, {Name: "x3", Type: arrow.PrimitiveTypes.Float64}}, nil)
	rb := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer rb.Release()
	for i := 0; i < modelPersons; i += 2 {
		rb.Field(0).(*array.StringBuilder).Append(fmt.Sprintf("P%06d", i))
		rb.Field(1).(*array.Float64Builder).Append(rng.Float64())
	}
	rec := rb.NewRecordBatch()
	defer rec.Release()
	registerArrow(t, p, "model_extra", "L2", rec, map[string]any{
		"person_id": map[string]any{"tags": []string{"identifier"}},
		"x3":        map[string]any{"tags": []string{"sensitive"}, "bounds": []float64{0, 1}},
	})
	grant := modelGrant(t, p, "model_data", "model_extra")
	c, err := client.New(p.base, token("insurer-1"))
	if err != nil {
		t.Fatal(err)
	}
	m := api.ModelRequest{Type: api.ModelLinearRegression,
		SQL:      "SELECT d.person_id, d.x1 AS x1, d.x2 AS x2, e.x3 AS x3, d.y AS y FROM model_data d JOIN model_extra e ON d.person_id = e.person_id",
		Features: []string{"x1", "x2", "x3"}, Label: "y", Bounds: map[string][]float64{"y": {0, 50}}}
	j, res := trainOverHTTP(t, c, grant, m, 1)
	x1, x2, x3 := res.Coefficients[0], res.Coefficients[1], res.Coefficients[2]
	if math.Abs(x1.Value-modelTrueX1) > 0.3 || math.Abs(x2.Value-modelTrueX2) > 0.5 || math.Abs(x3.Value) > 2 || math.Abs(res.Metrics.N-modelPersons/2) > 1000 {
		t.Errorf("joined model %+v %+v %+v, n %g; want about 3, -5, 0 over 10000 rows", x1, x2, x3, res.Metrics.N)
	}
	if len(j.Datasets) != 2 {
		t.Errorf("the job read %v, want both datasets", j.Datasets)
	}
	var d api.BudgetReport
	for _, name := range []string{"model_data", "model_extra"} {
		p.must("op-1", "GET", "/v1/datasets/"+name+"/budget", nil, &d)
		if math.Abs(d.Balance.Spent.Epsilon-1) > 1e-9 {
			t.Errorf("%s spent epsilon %g, want 1", name, d.Balance.Spent.Epsilon)
		}
	}
	var rep api.ReplayReport
	p.must("aud-1", "POST", "/v1/audit/jobs/"+j.ID+"/replay", nil, &rep)
	if !rep.Match || !replayed(rep, "train") {
		t.Errorf("replay of the joined model: %+v", rep)
	}
}
