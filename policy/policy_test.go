package policy

import (
	"context"
	"errors"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/c1b99f93/cleanroom/errcode"
)

func nan() float64 { return math.NaN() }
func inf() float64 { return math.Inf(1) }

// defaultEngine is the engine over the embedded bundle, built once for the package's tests.
var defaultEngine = sync.OnceValues(func() (*Engine, error) {
	return New(context.Background())
})

func engine(tb testing.TB) *Engine {
	tb.Helper()
	e, err := defaultEngine()
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	return e
}

func TestDefaultBundleRegoTestsPass(t *testing.T) {
	results, err := engine(t).RunTests(context.Background())
	if err != nil {
		t.Fatalf("RunTests: %v", err)
	}
	if len(results) < 40 {
		t.Errorf("got %d Rego tests, want the default bundle's (at least 40)", len(results))
	}
	for _, r := range results {
		if !r.Pass {
			t.Errorf("%s: %s", r.Name, r.Fail)
		}
	}
}

func TestRunTestsReportsFailingRegoTest(t *testing.T) {
	dir := copyDefaultBundle(t)
	writeFile(t, dir, "broken_test.rego", `package cleanroom.broken_test

import data.cleanroom.access

test_l4_allowed if {
	access.decision.result == "allow" with input as {"datasets": [{"name": "x", "grade": "L4"}]}
}
`)
	e, err := New(context.Background(), WithBundleDir(dir))
	if err != nil {
		t.Fatal(err)
	}
	results, err := e.RunTests(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(results, func(r TestResult) bool {
		return r.Name == "data.cleanroom.broken_test.test_l4_allowed"
	})
	if i < 0 {
		t.Fatalf("broken test not among %d results", len(results))
	}
	if r := results[i]; r.Pass || !strings.HasPrefix(r.Fail, "fail") {
		t.Errorf("got %+v, want a failure", r)
	}
}

func TestAccessDecisions(t *testing.T) {
	e := engine(t)
	for _, c := range accessCases {
		t.Run(c.name, func(t *testing.T) {
			d, err := e.Access(context.Background(), c.input())
			if err != nil {
				t.Fatalf("Access: %v", err)
			}
			checkDecision(t, e, d, c.result, c.codes)
		})
	}
}

func TestEgressDecisions(t *testing.T) {
	e := engine(t)
	for _, c := range egressCases {
		t.Run(c.name, func(t *testing.T) {
			d, err := e.Egress(context.Background(), c.input())
			if err != nil {
				t.Fatalf("Egress: %v", err)
			}
			checkDecision(t, e, d, c.result, c.codes)
			if d.Reviewers != c.reviewers {
				t.Errorf("reviewers %d, want %d", d.Reviewers, c.reviewers)
			}
		})
	}
}

func checkDecision(t *testing.T, e *Engine, d Decision, result string, codes []string) {
	t.Helper()
	if d.Result != result {
		t.Errorf("result %q, want %q (reasons %q)", d.Result, result, d.Reasons)
	}
	if got := d.Codes(); !slices.Equal(got, codes) && !(len(got) == 0 && len(codes) == 0) {
		t.Errorf("codes %q, want %q (reasons %q)", got, codes, d.Reasons)
	}
	if d.Reasons == nil {
		t.Error("Reasons is nil; want [] so that JSON shows an empty list")
	}
	if d.BundleDigest != e.Digest() {
		t.Errorf("BundleDigest %q, want %q", d.BundleDigest, e.Digest())
	}
	if d.Allowed() != (result == ResultAllow) {
		t.Errorf("Allowed() = %v for %q", d.Allowed(), d.Result)
	}
	if d.Result == ResultReview && (d.Reviewers < 1 || d.Reviewers > MaxReviewers) ||
		d.Result != ResultReview && d.Reviewers != 0 {
		t.Errorf("%s needs %d reviewers", d.Result, d.Reviewers)
	}
	for _, r := range d.Reasons {
		if code := ReasonCode(r); code == r || code != strings.ToLower(code) || strings.ContainsAny(code, " -") {
			t.Errorf("reason %q does not start with a snake_case code and a colon", r)
		}
	}
}

func TestUndefinedDecisionDenies(t *testing.T) {
	tests := map[string]map[string]string{
		"no_policy_at_all": {"README": "no Rego here\n"},
		"decision_never_defined": {"access.rego": `package cleanroom.access

decision := {"result": "allow", "reasons": []} if input.action == "never"
`, "egress.rego": `package cleanroom.egress

deny contains "x" if false
`},
	}
	for name, files := range tests {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			for p, s := range files {
				writeFile(t, dir, p, s)
			}
			e, err := New(context.Background(), WithBundleDir(dir))
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			d, err := e.Access(context.Background(), goodAccess())
			if err != nil {
				t.Fatal(err)
			}
			checkDecision(t, e, d, ResultDeny, []string{ReasonDecisionUndefined})
			d, err = e.Egress(context.Background(), goodEgress())
			if err != nil {
				t.Fatal(err)
			}
			checkDecision(t, e, d, ResultDeny, []string{ReasonDecisionUndefined})
		})
	}
}

func TestMalformedDecisionDenies(t *testing.T) {
	for name, decision := range map[string]string{
		"unknown_result":      `{"result": "maybe", "reasons": []}`,
		"result_not_string":   `{"result": true}`,
		"reasons_not_list":    `{"result": "allow", "reasons": "fine"}`,
		"reason_not_string":   `{"result": "allow", "reasons": [1]}`,
		"decision_not_object": `"allow"`,
		"reviewers_zero":      `{"result": "review", "reasons": [], "reviewers": 0}`,
		"reviewers_four":      `{"result": "review", "reasons": [], "reviewers": 4}`,
		"reviewers_negative":  `{"result": "review", "reasons": [], "reviewers": -1}`,
		"reviewers_fraction":  `{"result": "review", "reasons": [], "reviewers": 1.5}`,
		"reviewers_string":    `{"result": "review", "reasons": [], "reviewers": "2"}`,
		"reviewers_null":      `{"result": "review", "reasons": [], "reviewers": null}`,
		"reviewers_huge":      `{"result": "review", "reasons": [], "reviewers": 1e300}`,
		// A reviewer count is checked wherever it appears, so a typo cannot hide in an allow.
		"reviewers_on_allow_invalid": `{"result": "allow", "reasons": [], "reviewers": 9}`,
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			writeFile(t, dir, "access.rego", "package cleanroom.access\n\ndecision := "+decision+"\n")
			e, err := New(context.Background(), WithBundleDir(dir))
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			d, err := e.Access(context.Background(), goodAccess())
			if err != nil {
				t.Fatal(err)
			}
			checkDecision(t, e, d, ResultDeny, []string{ReasonDecisionMalformed})
		})
	}
}

func TestOperatorDecisionWithoutReasonsAccepted(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "access.rego", "package cleanroom.access\n\ndecision := {\"result\": \"review\"}\n")
	e, err := New(context.Background(), WithBundleDir(dir))
	if err != nil {
		t.Fatal(err)
	}
	d, err := e.Access(context.Background(), goodAccess())
	if err != nil {
		t.Fatal(err)
	}
	checkDecision(t, e, d, ResultReview, nil)
	if d.Reviewers != 1 {
		t.Errorf("reviewers %d, want 1 when the decision names none", d.Reviewers)
	}
}

func TestDecisionReviewersDecoded(t *testing.T) {
	for _, tc := range []struct {
		decision  string
		result    string
		reviewers int
	}{
		{`{"result": "review", "reasons": ["x: y"], "reviewers": 1}`, ResultReview, 1},
		{`{"result": "review", "reasons": ["x: y"], "reviewers": 2}`, ResultReview, 2},
		{`{"result": "review", "reasons": ["x: y"], "reviewers": 3}`, ResultReview, 3},
		{`{"result": "review", "reasons": ["x: y"], "reviewers": 2.0}`, ResultReview, 2},
		{`{"result": "allow", "reasons": [], "reviewers": 2}`, ResultAllow, 0},
		{`{"result": "deny", "reasons": ["x: y"], "reviewers": 3}`, ResultDeny, 0},
	} {
		t.Run(tc.decision, func(t *testing.T) {
			dir := t.TempDir()
			writeFile(t, dir, "egress.rego", "package cleanroom.egress\n\ndecision := "+tc.decision+"\n")
			e := mustNew(t, WithBundleDir(dir))
			d, err := e.Egress(context.Background(), goodEgress())
			if err != nil {
				t.Fatal(err)
			}
			if d.Result != tc.result || d.Reviewers != tc.reviewers {
				t.Errorf("got %s with %d reviewers, want %s with %d", d.Result, d.Reviewers, tc.result, tc.reviewers)
			}
		})
	}
}

func TestEvalErrorDenies(t *testing.T) {
	// A built-in error inside a deny rule must not silently drop the rule.
	dir := t.TempDir()
	writeFile(t, dir, "access.rego", `package cleanroom.access

deny contains "bad_number: not a number" if to_number(input.principal.name) > 0

decision := {"result": "deny", "reasons": sort(deny)} if count(deny) > 0
else := {"result": "allow", "reasons": []}
`)
	e, err := New(context.Background(), WithBundleDir(dir))
	if err != nil {
		t.Fatal(err)
	}
	d, err := e.Access(context.Background(), goodAccess()) // name "alice" is not a number
	var pe *Error
	if !errors.As(err, &pe) || pe.Code != errcode.PolicyEvalFailed {
		t.Fatalf("err = %v, want an *Error with code %s", err, errcode.PolicyEvalFailed)
	}
	checkDecision(t, e, d, ResultDeny, []string{ReasonEvalFailed})
}

func TestNondeterministicBuiltinsRefused(t *testing.T) {
	for name, body := range map[string]string{
		"http_send": `decision := {"result": "allow", "reasons": []} if http.send({"method": "get", "url": "http://127.0.0.1/"}).status_code == 200`,
		"time_now":  `decision := {"result": "allow", "reasons": []} if time.now_ns() > 0`,
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			writeFile(t, dir, "access.rego", "package cleanroom.access\n\n"+body+"\n")
			_, err := New(context.Background(), WithBundleDir(dir))
			var pe *Error
			if !errors.As(err, &pe) || pe.Code != errcode.PolicyBundleInvalid {
				t.Fatalf("New = %v, want an *Error with code %s", err, errcode.PolicyBundleInvalid)
			}
		})
	}
}

func TestNewRefusesBadBundles(t *testing.T) {
	tests := map[string]func(t *testing.T) string{
		"missing_dir": func(t *testing.T) string { return filepath.Join(t.TempDir(), "nope") },
		"empty_dir":   func(t *testing.T) string { return t.TempDir() },
		"syntax_error": func(t *testing.T) string {
			dir := t.TempDir()
			writeFile(t, dir, "access.rego", "package cleanroom.access\n\ndecision := {\n")
			return dir
		},
		"strict_unused_variable": func(t *testing.T) string {
			dir := t.TempDir()
			writeFile(t, dir, "access.rego", "package cleanroom.access\n\ndecision := {\"result\": \"allow\"} if {\n\tx := 1\n}\n")
			return dir
		},
		"wasm_module": func(t *testing.T) string {
			dir := copyDefaultBundle(t)
			writeFile(t, dir, "policy.wasm", "\x00asm")
			return dir
		},
		"symlink": func(t *testing.T) string {
			dir := copyDefaultBundle(t)
			if err := os.Symlink("/etc/hostname", filepath.Join(dir, "link.json")); err != nil {
				t.Fatal(err)
			}
			return dir
		},
		"file_not_dir": func(t *testing.T) string {
			dir := t.TempDir()
			writeFile(t, dir, "f", "x")
			return filepath.Join(dir, "f")
		},
	}
	for name, mk := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := New(context.Background(), WithBundleDir(mk(t)))
			var pe *Error
			if !errors.As(err, &pe) || pe.Code != errcode.PolicyBundleInvalid {
				t.Fatalf("New = %v, want an *Error with code %s", err, errcode.PolicyBundleInvalid)
			}
		})
	}
}

func TestMissingParamsFailClosed(t *testing.T) {
	dir := copyDefaultBundle(t)
	if err := os.Remove(filepath.Join(dir, "data.json")); err != nil {
		t.Fatal(err)
	}
	e, err := New(context.Background(), WithBundleDir(dir))
	if err != nil {
		t.Fatal(err)
	}
	d, err := e.Access(context.Background(), goodAccess())
	if err != nil {
		t.Fatal(err)
	}
	if d.Result != ResultDeny || !slices.Contains(d.Codes(), "params_invalid") {
		t.Errorf("got %+v, want a deny with params_invalid", d)
	}
}

// TestIdentifierEqualityFilterTunable pins the operator's switch end to end through
// data.json: refused by default, allowed when true, params_invalid when not a boolean.
func TestIdentifierEqualityFilterTunable(t *testing.T) {
	const shipped = `"allow_identifier_equality_filters": false`
	in := goodAccess()
	in.Columns = append(in.Columns, withUsage(colPhone, UsageFilterEquality))
	for _, tc := range []struct {
		value  string
		result string
		codes  []string
	}{
		{"false", ResultDeny, []string{"identifier_in_filter"}},
		{"true", ResultAllow, nil},
		{`"true"`, ResultDeny, []string{"identifier_in_filter", "params_invalid"}},
	} {
		t.Run(tc.value, func(t *testing.T) {
			dir := copyDefaultBundle(t)
			data := readFile(t, dir, "data.json")
			if !strings.Contains(data, shipped) {
				t.Fatalf("data.json does not ship %s", shipped)
			}
			writeFile(t, dir, "data.json", strings.Replace(data, shipped, `"allow_identifier_equality_filters": `+tc.value, 1))
			e := mustNew(t, WithBundleDir(dir))
			d, err := e.Access(context.Background(), in)
			if err != nil {
				t.Fatal(err)
			}
			checkDecision(t, e, d, tc.result, tc.codes)
		})
	}
}

// TestDoubleReviewGradesTunable pins double review end to end through data.json: L3 outputs
// are held for two reviewers by default, the operator chooses the grades, and a list that is
// not one of known grades is params_invalid.
func TestDoubleReviewGradesTunable(t *testing.T) {
	const shipped = `"double_review_grades": ["L3"]`
	l2, l3 := goodEgress(), goodEgress()
	l3.Datasets[0].Grade = "L3"
	for _, tc := range []struct {
		name      string
		value     string
		in        EgressInput
		result    string
		codes     []string
		reviewers int
	}{
		{"shipped_l3_held_for_two", `["L3"]`, l3, ResultReview, []string{"double_review"}, 2},
		{"shipped_l2_allowed", `["L3"]`, l2, ResultAllow, nil, 0},
		{"none_l3_allowed", `[]`, l3, ResultAllow, nil, 0},
		{"l2_held_for_two", `["L2", "L3"]`, l2, ResultReview, []string{"double_review"}, 2},
		{"not_a_list", `"L3"`, l3, ResultDeny, []string{"params_invalid"}, 0},
		{"unknown_grade", `["l3"]`, l2, ResultDeny, []string{"params_invalid"}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := copyDefaultBundle(t)
			data := readFile(t, dir, "data.json")
			if !strings.Contains(data, shipped) {
				t.Fatalf("data.json does not ship %s", shipped)
			}
			writeFile(t, dir, "data.json", strings.Replace(data, shipped, `"double_review_grades": `+tc.value, 1))
			e := mustNew(t, WithBundleDir(dir))
			d, err := e.Egress(context.Background(), tc.in)
			if err != nil {
				t.Fatal(err)
			}
			checkDecision(t, e, d, tc.result, tc.codes)
			if d.Reviewers != tc.reviewers {
				t.Errorf("reviewers %d, want %d", d.Reviewers, tc.reviewers)
			}
		})
	}
}

// TestEngineParams pins what the engine reads of data.json for itself: the shipped values,
// the operator's own, off when absent, and a bundle refused when a value is mistyped or
// negative (so a typo cannot silently turn a check off).
func TestEngineParams(t *testing.T) {
	shipped := mustNew(t).Params()
	if shipped.MinUnitsPerGroup <= 0 || !shipped.DiscloseSuppressed || shipped.DifferencingMinUnits <= 0 {
		t.Fatalf("shipped params %+v, want a positive minimum, disclosed, and differencing checked", shipped)
	}
	if shipped.VerifyKeyCandidates != 16 || shipped.VerifyClaimShares != 2 || shipped.VerifyOpeningDeadlineSeconds != 600 {
		t.Errorf("shipped cut-and-choose %d candidates, %d shares, %d s", shipped.VerifyKeyCandidates, shipped.VerifyClaimShares, shipped.VerifyOpeningDeadlineSeconds)
	}
	if shipped.VerifyChecksPerFact != 1 || shipped.VerifyFactPeriodDays != 30 || shipped.VerifyChecksPerGrantDay != 300000 {
		t.Fatalf("shipped verification limits %d per %d days, %d a grant a day; data.json ships 1 per 30 days and 300000",
			shipped.VerifyChecksPerFact, shipped.VerifyFactPeriodDays, shipped.VerifyChecksPerGrantDay)
	}
	if shipped.MaxDifferencingChecks != 64 {
		t.Fatalf("shipped max_differencing_checks %d; data.json ships 64", shipped.MaxDifferencingChecks)
	}
	if shipped.OutputMaxRows != 10000 || shipped.OutputMaxCells != 100000 {
		t.Fatalf("shipped output limits %v rows, %v cells; data.json ships max_rows 10000 and max_cells 100000", shipped.OutputMaxRows, shipped.OutputMaxCells)
	}
	const (
		minKey  = `"min_units_per_group": `
		discKey = `"disclose_suppressed_groups": true`
	)
	for _, tc := range []struct {
		name, min, disclose string
		want                Params
		refused             bool
	}{
		{"operator_values", "25", `"disclose_suppressed_groups": false`, Params{MinUnitsPerGroup: 25}, false},
		{"off", "0", discKey, Params{DiscloseSuppressed: true}, false},
		{"absent", "", "", Params{}, false},
		{"negative", "-1", discKey, Params{}, true},
		{"string", `"10"`, discKey, Params{}, true},
		{"disclosure_string", "10", `"disclose_suppressed_groups": "yes"`, Params{}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := copyDefaultBundle(t)
			data := readFile(t, dir, "data.json")
			minLine := minKey + strconv.FormatFloat(shipped.MinUnitsPerGroup, 'f', -1, 64) + ","
			if !strings.Contains(data, minLine) || !strings.Contains(data, discKey) {
				t.Fatalf("data.json does not ship %s and %s", minLine, discKey)
			}
			if tc.min == "" {
				for _, line := range []string{minLine, discKey + ",", `"differencing_min_units": 10,`} {
					if !strings.Contains(data, line) {
						t.Fatalf("data.json does not ship %s", line)
					}
					data = strings.Replace(data, line, "", 1)
				}
			} else {
				data = strings.Replace(strings.Replace(data, minLine, minKey+tc.min+",", 1), discKey, tc.disclose, 1)
			}
			writeFile(t, dir, "data.json", data)
			e, err := New(context.Background(), WithBundleDir(dir))
			if tc.refused {
				var pe *Error
				if !errors.As(err, &pe) || pe.Code != errcode.PolicyBundleInvalid {
					t.Fatalf("New: %v, want %s", err, errcode.PolicyBundleInvalid)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.want.DifferencingMinUnits = shipped.DifferencingMinUnits
			tc.want.ReturnUnspentOnRevoke, tc.want.ReturnUnspentOnExpiry = true, true
			tc.want.MaxDeltaPerJob = shipped.MaxDeltaPerJob // the access rules read it too
			tc.want.DiscloseDatasetSize, tc.want.DiscloseDatasetBudget = shipped.DiscloseDatasetSize, shipped.DiscloseDatasetBudget
			tc.want.MaxGroups, tc.want.MaxRows = shipped.MaxGroups, shipped.MaxRows
			tc.want.AutoMaxGroups, tc.want.AutoMaxRows, tc.want.AutoMaxTotal = shipped.AutoMaxGroups, shipped.AutoMaxRows, shipped.AutoMaxTotal
			tc.want.OutputMaxRows, tc.want.OutputMaxCells = shipped.OutputMaxRows, shipped.OutputMaxCells
			tc.want.MaxDifferencingChecks = shipped.MaxDifferencingChecks
			tc.want.VerifyChecksPerFact, tc.want.VerifyFactPeriodDays = shipped.VerifyChecksPerFact, shipped.VerifyFactPeriodDays
			tc.want.VerifyChecksPerGrantDay = shipped.VerifyChecksPerGrantDay
			tc.want.VerifyKeyCandidates, tc.want.VerifyClaimShares = shipped.VerifyKeyCandidates, shipped.VerifyClaimShares
			tc.want.VerifyOpeningDeadlineSeconds = shipped.VerifyOpeningDeadlineSeconds
			if tc.min == "" {
				tc.want.DifferencingMinUnits = 0
			}
			if got := e.Params(); got != tc.want {
				t.Errorf("Params() = %+v, want %+v", got, tc.want)
			}
		})
	}
}

// TestDatasetDisclosureParams pins what a dataset's metadata may say: the shipped bundle shows
// sizes and the dataset's remaining budget; a bundle that says nothing shows sizes (as before
// the knob existed) but not the dataset's budget; "none" hides sizes; a noisy size, which is
// not offered, is refused rather than silently read as something else.
func TestDatasetDisclosureParams(t *testing.T) {
	if p := mustNew(t).Params(); p.DiscloseDatasetSize != DatasetSizePublic || !p.DiscloseDatasetBudget {
		t.Fatalf("shipped params %+v", p)
	}
	const sizeKey, budgetKey = `"disclose_dataset_size": "public",`, `"disclose_dataset_budget": true`
	for _, tc := range []struct {
		name, size, budget string
		wantSize           string
		wantBudget         bool
		refused            bool
	}{
		{"absent", "", `"disclose_dataset_budget_unused": true`, DatasetSizePublic, false, false},
		{"none", `"disclose_dataset_size": "none",`, budgetKey, DatasetSizeNone, true, false},
		{"noisy", `"disclose_dataset_size": "noisy",`, budgetKey, "", false, true},
		{"budget_string", sizeKey, `"disclose_dataset_budget": "yes"`, "", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := copyDefaultBundle(t)
			data := readFile(t, dir, "data.json")
			if !strings.Contains(data, sizeKey) || !strings.Contains(data, budgetKey) {
				t.Fatalf("data.json does not ship %s and %s", sizeKey, budgetKey)
			}
			data = strings.Replace(strings.Replace(data, sizeKey, tc.size, 1), budgetKey, tc.budget, 1)
			writeFile(t, dir, "data.json", data)
			e, err := New(context.Background(), WithBundleDir(dir))
			if tc.refused {
				var pe *Error
				if !errors.As(err, &pe) || pe.Code != errcode.PolicyBundleInvalid {
					t.Fatalf("New: %v, want %s", err, errcode.PolicyBundleInvalid)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p := e.Params(); p.DiscloseDatasetSize != tc.wantSize || p.DiscloseDatasetBudget != tc.wantBudget {
				t.Errorf("Params() = %+v, want size %q, budget %v", p, tc.wantSize, tc.wantBudget)
			}
		})
	}
}

// TestReturnUnspentKnobs pins how the operator says whether revoked and expired grants give
// their unspent budget back to their datasets: shipped true, the operator's false, true when
// absent, and a bundle refused when a value is not a boolean.
func TestReturnUnspentKnobs(t *testing.T) {
	shipped := mustNew(t).Params()
	if !shipped.ReturnUnspentOnRevoke || !shipped.ReturnUnspentOnExpiry {
		t.Fatalf("shipped params %+v, want unspent budget returned on revoke and on expiry", shipped)
	}
	const (
		revokeKey = `"return_unspent_on_revoke": true`
		expiryKey = `"return_unspent_on_expiry": true`
	)
	for _, tc := range []struct {
		name, revoke, expiry string
		wantRevoke           bool
		wantExpiry           bool
		refused              bool
	}{
		{"kept_on_revoke", `"return_unspent_on_revoke": false`, expiryKey, false, true, false},
		{"kept_on_expiry", revokeKey, `"return_unspent_on_expiry": false`, true, false, false},
		{"absent", `"absent_revoke": 0`, `"absent_expiry": 0`, true, true, false},
		{"string", `"return_unspent_on_revoke": "no"`, expiryKey, false, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := copyDefaultBundle(t)
			data := readFile(t, dir, "data.json")
			if !strings.Contains(data, revokeKey) || !strings.Contains(data, expiryKey) {
				t.Fatalf("data.json does not ship %s and %s", revokeKey, expiryKey)
			}
			data = strings.Replace(strings.Replace(data, revokeKey, tc.revoke, 1), expiryKey, tc.expiry, 1)
			writeFile(t, dir, "data.json", data)
			e, err := New(context.Background(), WithBundleDir(dir))
			if tc.refused {
				var pe *Error
				if !errors.As(err, &pe) || pe.Code != errcode.PolicyBundleInvalid {
					t.Fatalf("New: %v, want %s", err, errcode.PolicyBundleInvalid)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := e.Params(); got.ReturnUnspentOnRevoke != tc.wantRevoke || got.ReturnUnspentOnExpiry != tc.wantExpiry {
				t.Errorf("Params() = %+v, want revoke %v expiry %v", got, tc.wantRevoke, tc.wantExpiry)
			}
		})
	}
}

func TestNegativeDifferencingMinimumRefused(t *testing.T) {
	const shipped = `"differencing_min_units": 10,`
	dir := copyDefaultBundle(t)
	data := readFile(t, dir, "data.json")
	if !strings.Contains(data, shipped) {
		t.Fatalf("data.json does not ship %s", shipped)
	}
	writeFile(t, dir, "data.json", strings.Replace(data, shipped, `"differencing_min_units": -1,`, 1))
	var pe *Error
	if _, err := New(context.Background(), WithBundleDir(dir)); !errors.As(err, &pe) || pe.Code != errcode.PolicyBundleInvalid {
		t.Fatalf("New: %v, want %s", err, errcode.PolicyBundleInvalid)
	}
}

// TestReviewEpsilonThresholdHoldsAtEgress pins where review_epsilon_per_job acts: a job over
// the threshold runs (access allows it) and its result is held for one reviewer.
func TestReviewEpsilonThresholdHoldsAtEgress(t *testing.T) {
	const shipped = `"review_epsilon_per_job": 2.0`
	dir := copyDefaultBundle(t)
	data := readFile(t, dir, "data.json")
	if !strings.Contains(data, shipped) {
		t.Fatalf("data.json does not ship %s", shipped)
	}
	writeFile(t, dir, "data.json", strings.Replace(data, shipped, `"review_epsilon_per_job": 0.5`, 1))
	e := mustNew(t, WithBundleDir(dir))
	d, err := e.Access(context.Background(), goodAccess()) // epsilon 1
	if err != nil {
		t.Fatal(err)
	}
	checkDecision(t, e, d, ResultAllow, nil)
	d, err = e.Egress(context.Background(), goodEgress())
	if err != nil {
		t.Fatal(err)
	}
	checkDecision(t, e, d, ResultReview, []string{"epsilon_review"})
	if d.Reviewers != 1 {
		t.Errorf("reviewers %d, want 1", d.Reviewers)
	}
}

func TestDigestStableAcrossEngines(t *testing.T) {
	a, b := engine(t), mustNew(t)
	if a.Digest() != b.Digest() {
		t.Errorf("digests differ: %s vs %s", a.Digest(), b.Digest())
	}
	if !strings.HasPrefix(a.Digest(), "sha256:") || len(a.Digest()) != len("sha256:")+64 {
		t.Errorf("digest %q is not sha256:<64 hex>", a.Digest())
	}
}

func TestDigestOfDirectoryCopyEqualsEmbedded(t *testing.T) {
	e := mustNew(t, WithBundleDir(copyDefaultBundle(t)))
	if e.Digest() != engine(t).Digest() {
		t.Errorf("copy %s, embedded %s", e.Digest(), engine(t).Digest())
	}
}

func TestDigestChangesWithBundle(t *testing.T) {
	dir := copyDefaultBundle(t)
	data := readFile(t, dir, "data.json")
	writeFile(t, dir, "data.json", strings.Replace(data, `"max_rows": 10000`, `"max_rows": 500`, 1))
	e := mustNew(t, WithBundleDir(dir))
	if e.Digest() == engine(t).Digest() {
		t.Fatal("changed bundle has the default bundle's digest")
	}
	in := goodEgress()
	in.Output.Rows = 501
	d, err := e.Egress(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	checkDecision(t, e, d, ResultDeny, []string{"rows_over_limit"})

	// Renaming a file changes the digest too: paths are hashed, not only contents.
	dir2 := copyDefaultBundle(t)
	if err := os.Rename(filepath.Join(dir2, "lib.rego"), filepath.Join(dir2, "common.rego")); err != nil {
		t.Fatal(err)
	}
	if mustNew(t, WithBundleDir(dir2)).Digest() == engine(t).Digest() {
		t.Error("renamed file left the digest unchanged")
	}
}

func TestDigestFormat(t *testing.T) {
	// sha256 of "a\x00x\x00b\x00\x00" (printf 'a\0x\0b\0\0' | sha256sum) pins the
	// documented layout: for each file in path order, path, NUL, content, NUL.
	const want = "sha256:8ec54942a19c1649603c347e2673ca591bdc9afdf0b36e9e70c4f2c932145aba"
	if got := digestFiles([]file{{"a", []byte("x")}, {"b", nil}}); got != want {
		t.Errorf("digest %s, want %s", got, want)
	}
}

func TestConcurrentEvaluation(t *testing.T) {
	e := engine(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 20 {
				ac := accessCases[(g+i)%len(accessCases)]
				d, err := e.Access(ctx, ac.input())
				if err != nil || d.Result != ac.result {
					t.Errorf("access %s: %+v, %v", ac.name, d, err)
				}
				ec := egressCases[(g+i)%len(egressCases)]
				d, err = e.Egress(ctx, ec.input())
				if err != nil || d.Result != ec.result {
					t.Errorf("egress %s: %+v, %v", ec.name, d, err)
				}
			}
		})
	}
	wg.Wait()
}

func TestCanceledContextDenies(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	d, err := engine(t).Access(ctx, goodAccess())
	if err == nil {
		t.Fatal("no error for a canceled context")
	}
	if d.Result != ResultDeny {
		t.Errorf("result %q, want deny", d.Result)
	}
}

func TestEmbeddedBundleHasManifest(t *testing.T) {
	if _, err := fs.Stat(defaultBundle, "bundle/.manifest"); err != nil {
		t.Fatalf(".manifest not embedded: %v", err)
	}
}

func BenchmarkAccess(b *testing.B) {
	e := engine(b)
	ctx := context.Background()
	inputs := make([]AccessInput, len(accessCases))
	for i, c := range accessCases {
		inputs[i] = c.input()
	}
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, err := e.Access(ctx, inputs[i%len(inputs)]); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEgress(b *testing.B) {
	e := engine(b)
	ctx := context.Background()
	inputs := make([]EgressInput, len(egressCases))
	for i, c := range egressCases {
		inputs[i] = c.input()
	}
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, err := e.Egress(ctx, inputs[i%len(inputs)]); err != nil {
			b.Fatal(err)
		}
	}
}

func mustNew(t *testing.T, opts ...Option) *Engine {
	t.Helper()
	e, err := New(context.Background(), opts...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return e
}

// copyDefaultBundle writes the embedded bundle to a temporary directory.
func copyDefaultBundle(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	sub, err := fs.Sub(defaultBundle, "bundle")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.CopyFS(dir, sub); err != nil {
		t.Fatal(err)
	}
	return dir
}

func writeFile(t *testing.T, dir, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, dir, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestMaxDifferencingChecksParam: max_differencing_checks is read as the operator sets it; a
// value that is not a whole number from 0 to the ceiling refuses the bundle; a bundle without
// it reads 0 (every query that could pair with an earlier filter is refused) and its access
// policy denies every job with params_invalid.
func TestMaxDifferencingChecksParam(t *testing.T) {
	const line = `"max_differencing_checks": 64`
	for _, tc := range []struct {
		name, value string
		want        int
		refused     bool
	}{
		{"two", "2", 2, false},
		{"sixteen", "16", 16, false},
		{"zero", "0", 0, false},
		{"ceiling", "1000", MaxDifferencingChecksCeiling, false},
		{"above_ceiling", "1001", 0, true},
		{"fraction", "2.5", 0, true},
		{"negative", "-1", 0, true},
		{"string", `"8"`, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := copyDefaultBundle(t)
			data := readFile(t, dir, "data.json")
			if !strings.Contains(data, line) {
				t.Fatalf("data.json does not ship %s", line)
			}
			writeFile(t, dir, "data.json", strings.Replace(data, line, `"max_differencing_checks": `+tc.value, 1))
			e, err := New(context.Background(), WithBundleDir(dir))
			if tc.refused {
				var pe *Error
				if !errors.As(err, &pe) || pe.Code != errcode.PolicyBundleInvalid {
					t.Fatalf("New: %v, want %s", err, errcode.PolicyBundleInvalid)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := e.Params().MaxDifferencingChecks; got != tc.want {
				t.Fatalf("MaxDifferencingChecks = %d, want %d", got, tc.want)
			}
		})
	}
	t.Run("absent", func(t *testing.T) {
		dir := copyDefaultBundle(t)
		data := readFile(t, dir, "data.json")
		if !strings.Contains(data, line+",") {
			t.Fatalf("data.json does not ship %s,", line)
		}
		writeFile(t, dir, "data.json", strings.Replace(data, line+",", "", 1))
		e, err := New(context.Background(), WithBundleDir(dir))
		if err != nil {
			t.Fatal(err)
		}
		if got := e.Params().MaxDifferencingChecks; got != 0 {
			t.Fatalf("MaxDifferencingChecks = %d without the param, want 0", got)
		}
	})
}
