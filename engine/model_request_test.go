package engine

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/c1b99f93/cleanroom/errcode"
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
