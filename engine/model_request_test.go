package engine

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/c1b99f93/cleanroom/dp/model"
	"github.com/c1b99f93/cleanroom/engine/plan"
	"github.com/c1b99f93/cleanroom/errcode"
	"github.com/c1b99f93/cleanroom/sandbox/wire"
	"github.com/c1b99f93/cleanroom/server/api"
)

// modelRequestCases are model requests and the code CheckModelRequest answers ("" admits):
// the table test and the fuzz target's seeds.
var modelRequestCases = []struct {
	name string
	json string
	code errcode.Code
}{
	{"linear", `{"type":"linear_regression","sql":"SELECT p, a, y FROM d","features":["a"],"label":"y","bounds":{"y":[0,1]}}`, ""},
	{"logistic with iterations", `{"type":"logistic_regression","sql":"SELECT p, a, y FROM d","features":["a"],"label":"y","iterations":10}`, ""},
	{"unknown type", `{"type":"forest","sql":"SELECT 1","features":["a"],"label":"y"}`, errcode.InvalidModel},
	{"no sql", `{"type":"linear_regression","sql":" ","features":["a"],"label":"y"}`, errcode.InvalidModel},
	{"no features", `{"type":"linear_regression","sql":"SELECT 1","label":"y"}`, errcode.InvalidModel},
	{"no label", `{"type":"linear_regression","sql":"SELECT 1","features":["a"]}`, errcode.InvalidModel},
	{"label is a feature", `{"type":"linear_regression","sql":"SELECT 1","features":["a","Y"],"label":"y"}`, errcode.InvalidModel},
	{"feature twice", `{"type":"linear_regression","sql":"SELECT 1","features":["a","A"],"label":"y"}`, errcode.InvalidModel},
	{"intercept name", `{"type":"linear_regression","sql":"SELECT 1","features":["(intercept)"],"label":"y"}`, errcode.InvalidModel},
	{"bounds reversed", `{"type":"linear_regression","sql":"SELECT 1","features":["a"],"label":"y","bounds":{"a":[2,1]}}`, errcode.InvalidOptions},
	{"bounds of three", `{"type":"linear_regression","sql":"SELECT 1","features":["a"],"label":"y","bounds":{"a":[0,1,2]}}`, errcode.InvalidOptions},
	{"bounds of another name", `{"type":"linear_regression","sql":"SELECT 1","features":["a"],"label":"y","bounds":{"b":[0,1]}}`, errcode.InvalidModel},
	{"rows per unit negative", `{"type":"linear_regression","sql":"SELECT 1","features":["a"],"label":"y","max_rows_per_unit":-1}`, errcode.InvalidOptions},
	{"iterations on linear", `{"type":"linear_regression","sql":"SELECT 1","features":["a"],"label":"y","iterations":3}`, errcode.InvalidOptions},
}

// TestCheckModelRequestCodes: each malformed request has its stable code.
func TestCheckModelRequestCodes(t *testing.T) {
	for _, tc := range modelRequestCases {
		t.Run(tc.name, func(t *testing.T) {
			var r api.ModelRequest
			if err := json.Unmarshal([]byte(tc.json), &r); err != nil {
				t.Fatal(err)
			}
			err := CheckModelRequest(&r)
			if got := errcode.Of(err); err != nil && got != tc.code || err == nil && tc.code != "" {
				t.Fatalf("CheckModelRequest = %v (code %q), want code %q", err, got, tc.code)
			}
		})
	}
	many := api.ModelRequest{Type: api.ModelLinearRegression, SQL: "SELECT 1", Label: "y"}
	for i := range 65 {
		many.Features = append(many.Features, strings.Repeat("f", i+1))
	}
	if err := CheckModelRequest(&many); errcode.Of(err) != errcode.TooManyFeatures {
		t.Fatalf("65 features: %v", err)
	}
}

// FuzzCheckModelRequest: any request body decodes and checks without a panic, and a refusal
// has one of the model request's codes and never quotes the SQL.
func FuzzCheckModelRequest(f *testing.F) {
	for _, tc := range modelRequestCases {
		f.Add([]byte(tc.json))
	}
	codes := map[errcode.Code]bool{errcode.InvalidModel: true, errcode.InvalidOptions: true, errcode.TooManyFeatures: true, errcode.InvalidRequest: true}
	f.Fuzz(func(t *testing.T, body []byte) {
		var r api.ModelRequest
		if json.Unmarshal(body, &r) != nil {
			return
		}
		err := CheckModelRequest(&r)
		if err == nil {
			return
		}
		if !codes[errcode.Of(err)] {
			t.Fatalf("code %q for %s", errcode.Of(err), body)
		}
		if len(r.SQL) > 8 && strings.Contains(errcode.Public(err).Message, r.SQL) {
			t.Fatalf("the refusal quotes the SQL: %v", err)
		}
	})
}

// TestModelFingerprintIgnoresWhatDoesNotChangeTheNoise: the job id, the sampling key, the
// deadline and the sources' aliases do not change a model's fingerprint; a snapshot, a value,
// a bound, the label's name, the iterations or the budget do. The job's own pass is left as
// it was.
func TestModelFingerprintIgnoresWhatDoesNotChangeTheNoise(t *testing.T) {
	state := func(alias string) *jobState {
		pass := wire.ModelPass{Job: "job-1", SamplingKey: 7, TimeoutMS: 1000,
			Relation: wire.Relation{Sources: []wire.RelationSource{{Snapshot: "sha256:a", Alias: alias, Unit: "person_id"}}},
			Filter:   wire.Compare(">", wire.Col(alias, "x1"), &wire.Expr{Kind: wire.KindConst, Type: "DOUBLE", Value: "0"}),
			Values:   []*wire.Expr{wire.Col(alias, "x1"), wire.Cast(wire.Col(alias, "y"), "DOUBLE")},
			Linear: &model.LinearSpec{Features: []model.Feature{{Name: "x1", Bounds: model.Bounds{Lo: 0, Hi: 10}}},
				Label: model.Bounds{Lo: 0, Hi: 50}, MaxRowsPerUnit: 1}}
		return &jobState{job: Job{Grant: "g-1"}, opts: plan.Options{Epsilon: 1, Delta: 1e-6},
			m: &modelState{req: &api.ModelRequest{Type: api.ModelLinearRegression, Label: "y"}, pass: pass}}
	}
	fp := func(s *jobState) string {
		t.Helper()
		f, err := modelFingerprint(s)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	base := fp(state("model_data"))
	same := []struct {
		name string
		edit func(s *jobState)
	}{
		{"another table alias", func(s *jobState) { *s = *state("d") }},
		{"another job, sampling key and deadline", func(s *jobState) {
			s.m.pass.Job, s.m.pass.SamplingKey, s.m.pass.TimeoutMS = "job-2", 99, 5
		}},
	}
	for _, tc := range same {
		s := state("model_data")
		tc.edit(s)
		if got := fp(s); got != base {
			t.Errorf("%s changed the fingerprint", tc.name)
		}
	}
	other := []struct {
		name string
		edit func(s *jobState)
	}{
		{"another snapshot", func(s *jobState) { s.m.pass.Relation.Sources[0].Snapshot = "sha256:b" }},
		{"another value", func(s *jobState) { s.m.pass.Values[0] = wire.Col("model_data", "x2") }},
		{"another filter", func(s *jobState) { s.m.pass.Filter = nil }},
		{"another bound", func(s *jobState) { s.m.pass.Linear.Label.Hi = 60 }},
		{"another feature name", func(s *jobState) { s.m.pass.Linear.Features[0].Name = "age" }},
		{"more rows per unit", func(s *jobState) { s.m.pass.Linear.MaxRowsPerUnit = 2 }},
		{"another label name", func(s *jobState) { s.m.req.Label = "cost" }},
		{"another type", func(s *jobState) { s.m.req.Type = api.ModelLogisticRegression }},
		{"more iterations", func(s *jobState) { s.m.iters = 10 }},
		{"another epsilon", func(s *jobState) { s.opts.Epsilon = 0.9 }},
		{"another delta", func(s *jobState) { s.opts.Delta = 1e-7 }},
		{"another grant", func(s *jobState) { s.job.Grant = "g-2" }},
	}
	for _, tc := range other {
		s := state("model_data")
		tc.edit(s)
		if got := fp(s); got == base {
			t.Errorf("%s kept the fingerprint", tc.name)
		}
	}
	s := state("d")
	_ = fp(s)
	if s.m.pass.Job != "job-1" || s.m.pass.SamplingKey != 7 || s.m.pass.Relation.Sources[0].Alias != "d" || s.m.pass.Values[0].Source != "d" {
		t.Errorf("fingerprinting changed the job's pass: %+v", s.m.pass)
	}
}
