package policy

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/c1b99f93/cleanroom/errcode"
)

// recordAll decides every case of the corpus with the default bundle and records the
// decisions as the platform would, named by case. Inputs JSON cannot carry (NaN epsilon) are
// skipped: the platform could not have recorded them either.
func recordAll(t *testing.T) []Recorded {
	t.Helper()
	e := engine(t)
	ctx := context.Background()
	var out []Recorded
	add := func(name, query string, in any, d Decision, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		raw, err := json.Marshal(in)
		if err != nil {
			return
		}
		out = append(out, Recorded{Job: name, Query: query, Input: raw, Result: d.Result, Reasons: d.Reasons})
	}
	for _, c := range accessCases {
		in := c.input()
		d, err := e.Access(ctx, in)
		add(c.name, AccessQuery, in, d, err)
	}
	for _, c := range egressCases {
		in := c.input()
		d, err := e.Egress(ctx, in)
		add(c.name, EgressQuery, in, d, err)
	}
	for _, c := range requestCases {
		in := c.input()
		d, err := e.Authorize(ctx, in)
		add(c.name, APIQuery, in, d, err)
	}
	return out
}

// candidate is the default bundle with one literal replaced in one file.
func candidate(t *testing.T, file, old, new string) *Engine {
	t.Helper()
	dir := copyDefaultBundle(t)
	s := readFile(t, dir, file)
	if !strings.Contains(s, old) {
		t.Fatalf("%s does not contain %s", file, old)
	}
	writeFile(t, dir, file, strings.Replace(s, old, new, 1))
	return mustNew(t, WithBundleDir(dir))
}

// flips is "job query from→to" for each change, in order.
func flips(changes []Change) []string {
	out := make([]string, len(changes))
	for i, c := range changes {
		out[i] = c.Job + " " + c.Query + " " + c.From + "→" + c.To
	}
	return out
}

func TestWhatIfSameBundleChangesNothing(t *testing.T) {
	rec := recordAll(t)
	if len(rec) < len(accessCases)+len(egressCases)+len(requestCases)-2 {
		t.Fatalf("recorded only %d decisions", len(rec))
	}
	changes, err := WhatIf(context.Background(), mustNew(t, WithBundleDir(copyDefaultBundle(t))), rec)
	if err != nil {
		t.Fatal(err)
	}
	if changes == nil || len(changes) != 0 {
		t.Errorf("changes %q, want an empty list", flips(changes))
	}
}

func TestWhatIfLowerEpsilonCapDeniesAllowedJobs(t *testing.T) {
	cand := candidate(t, "data.json", `"max_epsilon_per_job": 2.0`, `"max_epsilon_per_job": 0.8`)
	changes, err := WhatIf(context.Background(), cand, recordAll(t))
	if err != nil {
		t.Fatal(err)
	}
	// Every allowed job spends at least epsilon 1. Denied jobs gain a reason but stay denied,
	// and egress does not read the cap: neither is listed.
	want := []string{
		"allow_count_by_district " + AccessQuery + " allow→deny",
		"allow_same_domain_join " + AccessQuery + " allow→deny",
		"allow_join_on_privacy_units " + AccessQuery + " allow→deny",
		"allow_lookup_join " + AccessQuery + " allow→deny",
		"allow_epsilon_at_limit " + AccessQuery + " allow→deny",
		"allow_l3_dataset_not_held_at_access " + AccessQuery + " allow→deny",
	}
	if got := flips(changes); !slices.Equal(got, want) {
		t.Fatalf("changes\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, c := range changes {
		if len(c.FromReasons) != 0 {
			t.Errorf("%s: from reasons %q, want none (it was allowed)", c.Job, c.FromReasons)
		}
		if !slices.Contains((Decision{Reasons: c.ToReasons}).Codes(), "epsilon_out_of_range") {
			t.Errorf("%s: to reasons %q, want epsilon_out_of_range", c.Job, c.ToReasons)
		}
	}
}

func TestWhatIfNoDoubleReviewReleasesL3Outputs(t *testing.T) {
	cand := candidate(t, "data.json", `"double_review_grades": ["L3"]`, `"double_review_grades": []`)
	changes, err := WhatIf(context.Background(), cand, recordAll(t))
	if err != nil {
		t.Fatal(err)
	}
	// The L3 output with a medium finding stays held (by one reviewer now instead of two): a
	// change of reviewers alone is not listed.
	want := []string{
		"review_l3_dataset_by_two " + EgressQuery + " review→allow",
		"review_l3_join_by_two " + EgressQuery + " review→allow",
	}
	if got := flips(changes); !slices.Equal(got, want) {
		t.Fatalf("changes\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if c := changes[0]; !slices.Equal((Decision{Reasons: c.FromReasons}).Codes(), []string{"double_review"}) || c.ToReasons == nil || len(c.ToReasons) != 0 {
		t.Errorf("reasons %q → %q", c.FromReasons, c.ToReasons)
	}
}

func TestWhatIfRequestPolicy(t *testing.T) {
	cand := candidate(t, "api.rego",
		`"job.result": {"applicant": "own", "auditor": "any"}`,
		`"job.result": {"applicant": "own", "operator": "any"}`)
	changes, err := WhatIf(context.Background(), cand, recordAll(t))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"deny_operator_reads_result " + APIQuery + " deny→allow",
		"allow_auditor_reads_result " + APIQuery + " allow→deny",
	}
	if got := flips(changes); !slices.Equal(got, want) {
		t.Fatalf("changes\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestWhatIfKeepsInputOrder(t *testing.T) {
	cand := candidate(t, "data.json", `"max_rows": 10000`, `"max_rows": 10`)
	rec := recordAll(t)
	slices.Reverse(rec)
	changes, err := WhatIf(context.Background(), cand, rec)
	if err != nil {
		t.Fatal(err)
	}
	// Egress outputs have 16 rows; all those not denied already flip to deny.
	var want []string
	for _, r := range rec {
		if r.Query == EgressQuery && r.Result != ResultDeny {
			want = append(want, r.Job+" "+EgressQuery+" "+r.Result+"→deny")
		}
	}
	if got := flips(changes); len(want) == 0 || !slices.Equal(got, want) {
		t.Fatalf("changes\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestChangeJSON(t *testing.T) {
	b, err := json.Marshal(Change{Job: "j1", Query: EgressQuery, From: ResultAllow, To: ResultDeny, FromReasons: []string{}, ToReasons: []string{"x: y"}})
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"job":"j1","query":"data.cleanroom.egress.decision","from":"allow","to":"deny","from_reasons":[],"to_reasons":["x: y"]}`
	if string(b) != want {
		t.Errorf("got %s, want %s", b, want)
	}
}

func TestWhatIfRefusesBadRecords(t *testing.T) {
	good := recordAll(t)[0]
	if good.Query != AccessQuery {
		t.Fatalf("first record is %s", good.Query)
	}
	for name, edit := range map[string]func(*Recorded){
		"unknown_query":       func(r *Recorded) { r.Query = "data.cleanroom.export.decision" },
		"empty_query":         func(r *Recorded) { r.Query = "" },
		"unknown_result":      func(r *Recorded) { r.Result = "maybe" },
		"no_input":            func(r *Recorded) { r.Input = nil },
		"input_null":          func(r *Recorded) { r.Input = json.RawMessage("null") },
		"input_not_object":    func(r *Recorded) { r.Input = json.RawMessage(`["visits"]`) },
		"input_unknown_field": func(r *Recorded) { r.Input = json.RawMessage(`{"action": "submit_job", "tenant": "x"}`) },
		"input_wrong_type":    func(r *Recorded) { r.Input = json.RawMessage(`{"job": {"epsilon": "1"}}`) },
		"input_trailing_data": func(r *Recorded) { r.Input = append(slices.Clone(good.Input), []byte(` {}`)...) },
		"egress_as_access": func(r *Recorded) {
			b, _ := json.Marshal(goodEgress())
			r.Input = b
		},
	} {
		t.Run(name, func(t *testing.T) {
			r := good
			edit(&r)
			changes, err := WhatIf(context.Background(), engine(t), []Recorded{good, r})
			var pe *Error
			if !errors.As(err, &pe) || pe.Code != errcode.PolicyRecordInvalid {
				t.Fatalf("err = %v, want an *Error with code %s", err, errcode.PolicyRecordInvalid)
			}
			if changes != nil {
				t.Errorf("changes %v with an error", changes)
			}
			if !strings.Contains(err.Error(), "record 1") {
				t.Errorf("error %q does not name the record", err)
			}
		})
	}
}

func TestWhatIfFailingCandidateIsAnError(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "access.rego", `package cleanroom.access

decision := {"result": "allow", "reasons": []} if to_number(input.principal.name) > 0
`)
	_, err := WhatIf(context.Background(), mustNew(t, WithBundleDir(dir)), recordAll(t)[:1])
	var pe *Error
	if !errors.As(err, &pe) || pe.Code != errcode.PolicyEvalFailed {
		t.Fatalf("err = %v, want an *Error with code %s", err, errcode.PolicyEvalFailed)
	}
}

func TestWhatIfCanceledContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := WhatIf(ctx, engine(t), recordAll(t))
	var pe *Error
	if !errors.As(err, &pe) || pe.Code != errcode.PolicyEvalFailed || !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want an *Error with code %s wrapping context.Canceled", err, errcode.PolicyEvalFailed)
	}
}

func TestWhatIfEmpty(t *testing.T) {
	changes, err := WhatIf(context.Background(), engine(t), nil)
	if err != nil || changes == nil || len(changes) != 0 {
		t.Errorf("WhatIf(nil) = %v, %v; want an empty list", changes, err)
	}
}

// The recorder cannot carry NaN, so neither can a replay; pin that recordAll skipped them.
func TestRecordAllSkipsNonFiniteInputs(t *testing.T) {
	for _, r := range recordAll(t) {
		if r.Job == "deny_nan_epsilon" || r.Job == "deny_inf_delta" {
			t.Errorf("%s recorded", r.Job)
		}
	}
	if _, err := json.Marshal(math.NaN()); err == nil {
		t.Error("encoding/json now encodes NaN; replay those cases too")
	}
}
