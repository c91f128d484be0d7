package server_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/c1b99f93/cleanroom/errcode"
	"github.com/c1b99f93/cleanroom/server/api"
	"github.com/c1b99f93/cleanroom/server/client"
)

// Model data with known relations, one row per person (fixed seed 18), as an Arrow IPC file: x1
// in [0, 10], x2 in {0, 1}; y = 10 + 3·x1 − 5·x2 + N(0, 1); z = 1 with probability
// σ(−4 + 0.8·x1 + 1.5·x2). With hostile set, five persons' rows hold data values a model must
// survive: a NULL and a NaN x1, an x1 of 1e308 (far beyond its bounds), a −∞ and a NULL y.
const (
	modelPersons = 20000
	modelTrueX1  = 3.0
	modelTrueX2  = -5.0
)

func writeModelData(t *testing.T, p *platform, name string, hostile bool) {
	t.Helper()
	writeModelDataGraded(t, p, name, "L2", hostile)
}

// writeModelDataGraded is writeModelData for a dataset of the given grade.
func writeModelDataGraded(t *testing.T, p *platform, name, grade string, hostile bool) {
	t.Helper()
	rng := rand.New(rand.NewPCG(18, 18))
	schema := arrow.NewSchema([]arrow.Field{{Name: "person_id", Type: arrow.BinaryTypes.String}, {Name: "x1", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
		{Name: "x2", Type: arrow.PrimitiveTypes.Float64}, {Name: "y", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
		{Name: "z", Type: arrow.PrimitiveTypes.Int64}, {Name: "band", Type: arrow.BinaryTypes.String}}, nil)
	rb := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer rb.Release()
	for i := range modelPersons {
		x1 := 10 * rng.Float64()
		x2 := float64(rng.IntN(2))
		y := 10 + modelTrueX1*x1 + modelTrueX2*x2 + rng.NormFloat64()
		z := int64(0)
		if rng.Float64() < 1/(1+math.Exp(-(-4+0.8*x1+1.5*x2))) {
			z = 1
		}
		rb.Field(0).(*array.StringBuilder).Append(fmt.Sprintf("P%06d", i))
		switch {
		case hostile && i == 0:
			rb.Field(1).(*array.Float64Builder).AppendNull()
		case hostile && i == 1:
			rb.Field(1).(*array.Float64Builder).Append(math.NaN())
		case hostile && i == 2:
			rb.Field(1).(*array.Float64Builder).Append(1e308)
		default:
			rb.Field(1).(*array.Float64Builder).Append(x1)
		}
		rb.Field(2).(*array.Float64Builder).Append(x2)
		switch {
		case hostile && i == 3:
			rb.Field(3).(*array.Float64Builder).Append(math.Inf(-1))
		case hostile && i == 4:
			rb.Field(3).(*array.Float64Builder).AppendNull()
		default:
			rb.Field(3).(*array.Float64Builder).Append(y)
		}
		rb.Field(4).(*array.Int64Builder).Append(z)
		rb.Field(5).(*array.StringBuilder).Append([]string{"low", "high"}[int(x2)])
	}
	rec := rb.NewRecordBatch()
	defer rec.Release()
	registerArrow(t, p, name, grade, rec, map[string]any{
		"person_id": map[string]any{"tags": []string{"identifier"}},
		"x1":        map[string]any{"tags": []string{"sensitive"}, "bounds": []float64{0, 10}},
		"x2":        map[string]any{"tags": []string{"sensitive"}, "bounds": []float64{0, 1}},
		"y":         map[string]any{"tags": []string{"sensitive"}},
		"z":         map[string]any{"tags": []string{"sensitive"}, "bounds": []float64{0, 1}},
		"band":      map[string]any{"tags": []string{"attribute"}, "domain": []string{"low", "high"}},
	})
}

// registerArrow writes rec as an Arrow IPC file in the health commission's import root and
// registers it as dataset name (privacy unit person_id) with the given grade and columns.
func registerArrow(t *testing.T, p *platform, name, grade string, rec arrow.RecordBatch, columns map[string]any) {
	t.Helper()
	f, err := os.Create(filepath.Join(p.roots["health-commission"], name+".arrow"))
	if err != nil {
		t.Fatal(err)
	}
	w, err := ipc.NewFileWriter(f, ipc.WithSchema(rec.Schema()))
	if err == nil {
		err = w.Write(rec)
	}
	if err == nil {
		err = w.Close()
	}
	if err := errors.Join(err, f.Close()); err != nil {
		t.Fatal(err)
	}
	p.must("hospital-a", "POST", "/v1/datasets", map[string]any{
		"name": name, "provider": "health-commission", "grade": grade, "privacy_unit": "person_id",
		"source": map[string]any{"kind": "arrow", "path": name + ".arrow"}, "budget": map[string]any{"epsilon": 20, "delta": 1e-5},
		"columns": columns,
	}, nil)
}

func modelGrant(t *testing.T, p *platform, datasets ...string) string {
	t.Helper()
	var app api.Application
	p.must("insurer-1", "POST", "/v1/applications", api.ApplicationRequest{Purpose: "pricing", Scenario: "claim cost model",
		Datasets: datasets, Start: "2026-01-01", End: "2026-12-31", Epsilon: 10, Delta: 1e-6, JobKinds: []string{api.KindModel}}, &app)
	var ok api.Approved
	p.must("op-1", "POST", "/v1/applications/"+app.ID+"/approve", api.ApproveRequest{}, &ok)
	return ok.GrantID
}

func trainOverHTTP(t *testing.T, c *client.Client, grant string, m api.ModelRequest, eps float64) (*api.Job, *api.ModelResult) {
	t.Helper()
	ctx := context.Background()
	j, err := c.TrainModel(ctx, grant, m, api.JobOptions{Epsilon: eps})
	if err != nil {
		t.Fatal(err)
	}
	if j, err = c.WaitJob(ctx, j.ID); err != nil || j.State != api.JobReleased {
		t.Fatalf("model job %s: %v, %+v", j.State, err, j.Error)
	}
	res, err := client.ModelResult(j)
	if err != nil {
		t.Fatal(err)
	}
	return j, res
}

// TestModelJobsOverHTTP trains a DP linear and a DP logistic regression through the API and
// the Go client on data with a known relation, and checks the released coefficients, the
// budget (debited exactly once per job) and the replay. Tolerances are wide enough never to
// flake (the noise is fresh in every run): at epsilon 1 over 20,000 persons the linear
// coefficients' noise has a standard deviation near 0.02, against tolerances of 0.3 and 0.5;
// the logistic fit is checked for signs, rough size and accuracy well above chance.
func TestModelJobsOverHTTP(t *testing.T) {
	clk := &clock{now: time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)}
	p := start(t, t.TempDir(), clk)
	writeModelData(t, p, "model_data", true)
	grant := modelGrant(t, p, "model_data")
	c, err := client.New(p.base, token("insurer-1"))
	if err != nil {
		t.Fatal(err)
	}

	lin := api.ModelRequest{Type: api.ModelLinearRegression, SQL: "SELECT person_id, x1, x2, y FROM model_data",
		Features: []string{"x1", "x2"}, Label: "y", Bounds: map[string][]float64{"y": {0, 50}}}
	j, res := trainOverHTTP(t, c, grant, lin, 1)
	if len(res.Coefficients) != 2 || res.Coefficients[0].Name != "x1" || res.Coefficients[1].Name != "x2" {
		t.Fatalf("coefficients %+v", res.Coefficients)
	}
	x1, x2 := res.Coefficients[0], res.Coefficients[1]
	if math.Abs(x1.Value-modelTrueX1) > 0.3 || math.Abs(x2.Value-modelTrueX2) > 0.5 || math.Abs(res.Intercept.Value-10) > 1.5 {
		t.Errorf("linear model %+v %+v intercept %+v, want about %g, %g, 10", x1, x2, res.Intercept, modelTrueX1, modelTrueX2)
	}
	if !(x1.Lower <= x1.Value && x1.Value <= x1.Upper) || res.Confidence != 0.95 || res.Metrics.RMSE == nil || *res.Metrics.RMSE > 3 {
		t.Errorf("intervals or metrics: %+v, confidence %g, metrics %+v", x1, res.Confidence, res.Metrics)
	}
	if res.Spent.Epsilon != 1 || !(res.Spent.Delta > 0) || len(res.Components) != 3 {
		t.Errorf("spent %+v, %d components", res.Spent, len(res.Components))
	}
	spent := func() (grantEps, datasetEps float64) {
		var g api.Grant
		p.must("insurer-1", "GET", "/v1/grants/"+grant, nil, &g)
		var d api.BudgetReport
		p.must("op-1", "GET", "/v1/datasets/model_data/budget", nil, &d)
		return g.Budget.EpsilonSpent, d.Balance.Spent.Epsilon
	}
	if g, d := spent(); math.Abs(g-1) > 1e-9 || math.Abs(d-1) > 1e-9 {
		t.Errorf("after one model job the grant spent epsilon %g and the dataset %g, want 1 and 1", g, d)
	}
	var rep api.ReplayReport
	p.must("aud-1", "POST", "/v1/audit/jobs/"+j.ID+"/replay", nil, &rep)
	if !rep.Match || !replayed(rep, "train") {
		t.Errorf("replay of the linear model: %+v", rep)
	}

	logit := api.ModelRequest{Type: api.ModelLogisticRegression, SQL: "SELECT person_id, x1, x2, z = 1 AS positive FROM model_data",
		Features: []string{"x1", "x2"}, Label: "positive", Iterations: 50}
	j, res = trainOverHTTP(t, c, grant, logit, 1)
	x1, x2 = res.Coefficients[0], res.Coefficients[1]
	if !(x1.Value > 0.3 && x1.Value < 1.6) || !(x2.Value > 0.3) || res.Intercept.Value > -1 {
		t.Errorf("logistic model %+v %+v intercept %+v, want about 0.8, 1.5, -4", x1, x2, res.Intercept)
	}
	if res.Metrics.Accuracy == nil || *res.Metrics.Accuracy < 0.7 || res.Iterations != 50 || len(res.Components) != 52 {
		t.Errorf("logistic metrics %+v, iterations %d, %d components", res.Metrics, res.Iterations, len(res.Components))
	}
	if g, d := spent(); math.Abs(g-2) > 1e-9 || math.Abs(d-2) > 1e-9 {
		t.Errorf("after two model jobs the grant spent epsilon %g and the dataset %g, want 2 and 2", g, d)
	}
	p.must("aud-1", "POST", "/v1/audit/jobs/"+j.ID+"/replay", nil, &rep)
	if !rep.Match || !replayed(rep, "train") {
		t.Errorf("replay of the logistic model: %+v", rep)
	}
}

func replayed(rep api.ReplayReport, stage string) bool {
	for _, s := range rep.Stages {
		if s.Stage == stage {
			return s.Result == api.ReplayMatch
		}
	}
	return false
}

// TestModelRequestsRefusedWithStableCodes: a model request that is wrong is answered at once,
// 400 with its code, never becomes a job and costs nothing.
func TestModelRequestsRefusedWithStableCodes(t *testing.T) {
	clk := &clock{now: time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)}
	p := start(t, t.TempDir(), clk)
	writeModelData(t, p, "model_data", false)
	grant := modelGrant(t, p, "model_data")
	base := api.ModelRequest{Type: api.ModelLinearRegression, SQL: "SELECT person_id, x1, x2, y FROM model_data",
		Features: []string{"x1", "x2"}, Label: "y", Bounds: map[string][]float64{"y": {0, 50}}}
	many := make([]string, 65)
	for i := range many {
		many[i] = fmt.Sprintf("f%d", i)
	}
	cases := []struct {
		name string
		edit func(m *api.ModelRequest)
		code errcode.Code
	}{
		{"unknown type", func(m *api.ModelRequest) { m.Type = "random_forest" }, errcode.InvalidModel},
		{"no features", func(m *api.ModelRequest) { m.Features = nil }, errcode.InvalidModel},
		{"label among features", func(m *api.ModelRequest) { m.Features = []string{"x1", "y"} }, errcode.InvalidModel},
		{"feature repeated", func(m *api.ModelRequest) { m.Features = []string{"x1", "x1"} }, errcode.InvalidModel},
		{"feature not selected", func(m *api.ModelRequest) { m.Features = []string{"x1", "x3"} }, errcode.InvalidModel},
		{"too many features", func(m *api.ModelRequest) { m.Features = many }, errcode.TooManyFeatures},
		{"feature not numeric", func(m *api.ModelRequest) {
			m.SQL = "SELECT person_id, x1, band, y FROM model_data"
			m.Features = []string{"x1", "band"}
		}, errcode.NotNumeric},
		{"label without bounds", func(m *api.ModelRequest) { m.Bounds = nil }, errcode.MissingBounds},
		{"bad bounds", func(m *api.ModelRequest) { m.Bounds = map[string][]float64{"y": {5, 1}} }, errcode.InvalidOptions},
		{"bounds of an unknown name", func(m *api.ModelRequest) { m.Bounds = map[string][]float64{"q": {0, 1}} }, errcode.InvalidModel},
		{"identifier selected", func(m *api.ModelRequest) {
			m.SQL = "SELECT person_id, x1, length(person_id) AS n, y FROM model_data"
			m.Features = []string{"x1", "n"}
		}, errcode.IdentifierInOutput},
		{"unit not first", func(m *api.ModelRequest) { m.SQL = "SELECT x1, x2, y FROM model_data" }, errcode.UnsupportedSQL},
		{"aggregate", func(m *api.ModelRequest) {
			m.SQL = "SELECT person_id, x1, x2, sum(y) AS y FROM model_data GROUP BY 1, 2, 3"
		}, errcode.UnsupportedSQL},
		{"unknown dataset", func(m *api.ModelRequest) { m.SQL = "SELECT person_id, x1, x2, y FROM nowhere" }, errcode.UnknownDataset},
		{"rows per unit out of range", func(m *api.ModelRequest) { m.MaxRowsPerUnit = 1 << 20 }, errcode.InvalidOptions},
		{"iterations on a linear model", func(m *api.ModelRequest) { m.Iterations = 10 }, errcode.InvalidOptions},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := base
			m.Bounds = map[string][]float64{"y": {0, 50}}
			tc.edit(&m)
			p.refused("insurer-1", "POST", "/v1/jobs", api.JobRequest{Grant: grant, Kind: api.KindModel, Model: &m}, 400, tc.code)
		})
	}
	p.refused("insurer-1", "POST", "/v1/jobs", api.JobRequest{Grant: grant, Kind: api.KindModel, Model: &base, Options: api.JobOptions{Delta: new(0.0)}}, 400, errcode.InvalidOptions)
	p.refused("insurer-1", "POST", "/v1/jobs", api.JobRequest{Grant: grant, Kind: api.KindModel}, 400, errcode.InvalidRequest)
	var jobs api.Jobs
	p.must("insurer-1", "GET", "/v1/jobs", nil, &jobs)
	var g api.Grant
	p.must("insurer-1", "GET", "/v1/grants/"+grant, nil, &g)
	if len(jobs.Jobs) != 0 || g.Budget.EpsilonSpent != 0 {
		t.Errorf("refused requests became %d jobs and spent epsilon %g", len(jobs.Jobs), g.Budget.EpsilonSpent)
	}
}

// TestModelJobOutcomeDoesNotDependOnADataValue: the same model over the same persons, once with
// hostile values in four persons' rows (NULL, NaN, infinity, 1e308) and once without, releases
// both times, with the same job outcome: a data value never fails a job.
func TestModelJobOutcomeDoesNotDependOnADataValue(t *testing.T) {
	clk := &clock{now: time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)}
	p := start(t, t.TempDir(), clk)
	writeModelData(t, p, "clean_data", false)
	writeModelData(t, p, "hostile_data", true)
	grant := modelGrant(t, p, "clean_data", "hostile_data")
	c, err := client.New(p.base, token("insurer-1"))
	if err != nil {
		t.Fatal(err)
	}
	for _, typ := range []string{api.ModelLinearRegression, api.ModelLogisticRegression} {
		var states []string
		for _, ds := range []string{"clean_data", "hostile_data"} {
			m := api.ModelRequest{Type: typ, SQL: "SELECT person_id, x1, y * 2 AS y2, y FROM " + ds,
				Features: []string{"x1", "y2"}, Label: "y", Bounds: map[string][]float64{"y": {0, 50}, "y2": {0, 100}}}
			if typ == api.ModelLogisticRegression {
				m.Iterations = 5
			}
			j, err := c.TrainModel(context.Background(), grant, m, api.JobOptions{Epsilon: 0.1})
			if err != nil {
				t.Fatal(err)
			}
			j, err = c.WaitJob(context.Background(), j.ID)
			if err != nil {
				t.Fatal(err)
			}
			states = append(states, j.State)
		}
		if states[0] != api.JobReleased || states[1] != states[0] {
			t.Errorf("%s: clean data %s, hostile data %s; want both released", typ, states[0], states[1])
		}
	}
}
