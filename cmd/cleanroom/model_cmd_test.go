package main

import (
	"encoding/json"
	"math"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/c1b99f93/cleanroom/server/api"
)

// testModel is a released linear model with two coefficients.
func testModel(repeat *api.ModelRepeat) *api.ModelResult {
	rmse, r2 := 1.02, 0.97
	m := &api.ModelResult{Job: "j-7", Type: api.ModelLinearRegression, Dataset: "model_data", Label: "y",
		Coefficients: []api.ModelCoefficient{{Name: "x1", Value: 3.01, Lower: 2.97, Upper: 3.05}, {Name: "x2", Value: -4.98, Lower: -5.2, Upper: -4.7}},
		Intercept:    api.ModelCoefficient{Name: "intercept", Value: 10.1, Lower: 9.8, Upper: 10.4},
		Metrics:      api.ModelMetrics{N: 20004, RMSE: &rmse, R2: &r2}, Confidence: 0.95, Bounds: map[string][]float64{"y": {0, 50}},
		MaxRowsPerUnit: 1, Mechanism: "gaussian noise on the sufficient statistics", Spent: api.Budget{Epsilon: 1, Delta: 5e-7}, LogIndex: 12}
	if repeat != nil {
		m.Repeat, m.Spent = repeat, api.Budget{}
	}
	return m
}

func modelJob(t *testing.T, state string, m *api.ModelResult) api.Job {
	t.Helper()
	j := api.Job{ID: "j-7", State: state, Grant: "g-1", Kind: api.KindModel, Model: &api.ModelRequest{Type: api.ModelLinearRegression, SQL: "SELECT person_id, x1, x2, y FROM model_data"}}
	if m != nil {
		raw, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		j.Result = raw
	}
	return j
}

// model train sends the model with its bounds parsed (repeated flags and comma lists alike),
// the options given, waits for the job and prints the coefficients with their intervals.
func TestCmdModelTrainSendsTheModelAndPrintsTheCoefficients(t *testing.T) {
	fs := newFakeServer(t, map[string]handler{
		"POST /v1/jobs": func(*http.Request, []byte) (int, any) {
			return http.StatusAccepted, api.Job{ID: "j-7", State: api.JobQueued}
		},
		"GET /v1/jobs/j-7": ok(modelJob(t, api.JobReleased, testModel(nil))),
	})
	out, errOut, err := runClientCmd(t, fs.url, "model", "train", "--grant", "g-1", "--type", "linear_regression",
		"--sql", "SELECT person_id, x1, x2, y FROM model_data", "--features", "x1,x2", "--label", "y",
		"--bounds", "y=0:50,x1=-1.5:10", "--bounds", "x2=0:1e0", "--max-rows", "2", "--epsilon", "1", "--delta", "1e-7")
	if err != nil {
		t.Fatal(err)
	}
	reqs := fs.requests()
	if len(reqs) != 2 || reqs[0].method != "POST" || reqs[1].path != "/v1/jobs/j-7" {
		t.Fatalf("requests %+v; want the submission then a poll", reqs)
	}
	jsonEqual(t, reqs[0].body, `{"grant":"g-1","kind":"model","sql":"","options":{"epsilon":1,"delta":1e-7},
		"model":{"type":"linear_regression","sql":"SELECT person_id, x1, x2, y FROM model_data","features":["x1","x2"],"label":"y",
		"bounds":{"y":[0,50],"x1":[-1.5,10],"x2":[0,1]},"max_rows_per_unit":2}}`)
	wantContains(t, out, "linear_regression of y on model_data (job j-7)", "95% interval", "x1", "3.01", "[2.97, 3.05]", "-4.98",
		"intercept", "10.1", "n ≈ 20004", "RMSE 1.02", "R² 0.970", "spent: epsilon 1")
	if strings.Contains(out, "identical to job") {
		t.Errorf("a fresh model is printed as a repeat:\n%s", out)
	}
	wantContains(t, errOut, "submitted model job j-7")
}

// A repeat prints the job it was answered from; a held model says so and exits non-zero; a
// denied one reports its code.
func TestCmdModelTrainRepeatHeldAndDenied(t *testing.T) {
	args := []string{"model", "train", "--grant", "g-1", "--type", "linear_regression", "--sql", "SELECT person_id, x1, y FROM d",
		"--features", "x1", "--label", "y"}
	repeat := testModel(&api.ModelRepeat{Job: "j-3", Spent: api.Budget{Epsilon: 1, Delta: 5e-7}})
	held := modelJob(t, api.JobInReview, nil)
	held.Review = &api.JobReview{Required: 2, Reasons: []string{"epsilon_review: epsilon 1 exceeds the review threshold 0.5"}}
	denied := modelJob(t, api.JobDenied, nil)
	denied.Error = &api.Error{Code: "review_rejected", Message: "a reviewer rejected this query's output as job j-3 (not needed)"}
	for _, tc := range []struct {
		name    string
		job     api.Job
		wantErr []string
		wantOut []string
	}{
		{"repeat", modelJob(t, api.JobReleased, repeat), nil, []string{"identical to job j-3", "nothing spent (it spent epsilon 1", "spent: epsilon 0"}},
		{"held", held, []string{"j-7", "review"}, []string{"job j-7 is held for review: 2 approval(s) needed, 0 given", "epsilon_review"}},
		{"denied", denied, []string{"j-7", "denied", "review_rejected", "not needed"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := newFakeServer(t, map[string]handler{"POST /v1/jobs": ok(tc.job), "GET /v1/jobs/j-7": ok(tc.job)})
			out, _, err := runClientCmd(t, fs.url, args...)
			if (err != nil) != (tc.wantErr != nil) {
				t.Fatalf("error %v, want one: %t", err, tc.wantErr != nil)
			}
			if err != nil {
				wantContains(t, err.Error(), tc.wantErr...)
			}
			wantContains(t, out, tc.wantOut...)
		})
	}
}

// A bad flag is refused before anything is sent, naming the flag.
func TestCmdModelTrainRefusesBadFlagsWithoutCallingTheServer(t *testing.T) {
	base := []string{"model", "train", "--grant", "g-1", "--type", "linear_regression", "--sql", "SELECT person_id, x1, y FROM d",
		"--features", "x1", "--label", "y"}
	for _, tc := range []struct {
		name  string
		extra []string
		want  string
	}{
		{"bounds without a range", []string{"--bounds", "y"}, `--bounds "y"`},
		{"bounds without a name", []string{"--bounds", "=0:1"}, `--bounds "=0:1"`},
		{"bounds not numbers", []string{"--bounds", "y=low:high"}, `--bounds "y=low:high"`},
		{"bounds reversed", []string{"--bounds", "y=5:1"}, `--bounds "y=5:1"`},
		{"bounds empty", []string{"--bounds", "y=1:1"}, `--bounds "y=1:1"`},
		{"bounds not a number", []string{"--bounds", "y=NaN:1"}, `--bounds "y=NaN:1"`},
		{"bounds infinite", []string{"--bounds", "y=0:Inf"}, `--bounds "y=0:Inf"`},
		{"one bad entry among good", []string{"--bounds", "x1=0:10,y=0"}, `--bounds "y=0"`},
		{"negative epsilon", []string{"--epsilon", "-1"}, "--epsilon"},
		{"delta of one", []string{"--delta", "1"}, "--delta"},
		{"delta not a number", []string{"--delta", "tiny"}, "--delta"},
		{"max rows not a number", []string{"--max-rows", "many"}, "--max-rows"},
		{"unknown flag", []string{"--seed", "7"}, "--seed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := newFakeServer(t, map[string]handler{}) // any request fails the test
			_, _, err := runClientCmd(t, fs.url, append(append([]string{}, base...), tc.extra...)...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one naming %s", err, tc.want)
			}
			if n := len(fs.requests()); n != 0 {
				t.Fatalf("%d request(s) sent for a bad flag", n)
			}
		})
	}
	for _, missing := range []string{"grant", "type", "sql", "features", "label"} {
		t.Run("without --"+missing, func(t *testing.T) {
			var args []string
			for i := 2; i < len(base); i += 2 {
				if base[i] != "--"+missing {
					args = append(args, base[i], base[i+1])
				}
			}
			fs := newFakeServer(t, map[string]handler{})
			_, _, err := runClientCmd(t, fs.url, append([]string{"model", "train"}, args...)...)
			if err == nil || !strings.Contains(err.Error(), `"`+missing+`"`) {
				t.Fatalf("error %v, want one naming the required flag %s", err, missing)
			}
		})
	}
}

func TestParseModelBounds(t *testing.T) {
	got, err := parseModelBounds([]string{"y=0:50", "x1=-1.5:1e3"})
	if want := map[string][]float64{"y": {0, 50}, "x1": {-1.5, 1000}}; err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("parseModelBounds = %v, %v; want %v", got, err, want)
	}
	if got, err := parseModelBounds(nil); got != nil || err != nil {
		t.Errorf("no bounds = %v, %v; want nil", got, err)
	}
}

// review list shows a held model's coefficients, which are what the reviewer decides on.
func TestCmdReviewListShowsAHeldModelsCoefficients(t *testing.T) {
	m := testModel(nil)
	m.LogIndex = 0
	j := modelJob(t, api.JobInReview, nil)
	j.Review = &api.JobReview{Required: 2, Reasons: []string{"epsilon_review"}}
	raw, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	fs := newFakeServer(t, map[string]handler{"GET /v1/reviews": ok(api.Reviews{Reviews: []api.ReviewItem{{Job: j, Result: raw}}})})
	out, _, err := runClientCmd(t, fs.url, "review", "list")
	if err != nil {
		t.Fatal(err)
	}
	wantContains(t, out, "j-7", "0/2", "== job j-7: SELECT person_id, x1, x2, y FROM model_data", "x1", "[2.97, 3.05]", "intercept", "n ≈ 20004")
}

// FuzzParseModelBounds: any --bounds entry is either refused naming the flag, or read as
// finite bounds lo < hi under a non-empty name. Seeds: the accepted and refused entries above.
func FuzzParseModelBounds(f *testing.F) {
	for _, s := range []string{"y=0:50", "x1=-1.5:1e3", "y", "=0:1", "y=low:high", "y=5:1", "y=1:1", "y=NaN:1", "y=0:Inf", "y=0", "a=b=0:1", "y=0:1:2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, entry string) {
		got, err := parseModelBounds([]string{entry})
		if err != nil {
			if !strings.Contains(err.Error(), "--bounds") {
				t.Fatalf("refusal %v does not name the flag", err)
			}
			return
		}
		for name, b := range got {
			if name == "" || len(b) != 2 || !(b[0] < b[1]) || math.IsInf(b[0], 0) || math.IsInf(b[1], 0) {
				t.Fatalf("%q read as %q: %v", entry, name, b)
			}
		}
	})
}
