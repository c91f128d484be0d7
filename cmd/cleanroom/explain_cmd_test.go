package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/c1b99f93/cleanroom/server/api"
)

func testExplanation() api.Explanation {
	e := 53.25
	lo, hi := 0.0, 50000.0
	return api.Explanation{Dataset: "visits", Plan: json.RawMessage(`{"snapshot":"sha256:ab"}`), PublicPartitions: true,
		Partitions: "public: all 14 combination(s) of the keys' public domains are released, empty ones with noise; no delta spent",
		Aggregates: []api.ExplainedAggregate{
			{Name: "visits", Kind: "count", Mechanism: "laplace", Epsilon: 0.5, ExpectedError: &e,
				Components: []api.NoiseComponent{{Name: "count", Mechanism: "laplace", Epsilon: 0.5, L0: 1, LInf: 5, NoiseScale: 14.14}}},
			{Name: "mean_cost", Kind: "mean", Mechanism: "laplace", Epsilon: 0.5, Lower: &lo, Upper: &hi, Note: "about ±x/n",
				Components: []api.NoiseComponent{{NoiseScale: 14.14}, {NoiseScale: 141421}}},
		},
		Cost: api.Budget{Epsilon: 1}, Split: "public partitions; epsilon 1 split equally over 2 aggregate(s)",
		Bounds: "each person_id contributes to at most 1 group(s)", BoundsChoice: "contribution bounds are the platform's defaults",
		Policy: api.PolicyDecision{Result: "allow", Reasons: []string{}},
		Budget: []api.LedgerBalance{{Account: "grant:g-1", Remaining: api.Budget{Epsilon: 4, Delta: 1e-7}}}}
}

// --explain asks POST /v1/explain (never /v1/jobs), with --delta 0 sent as an explicit 0, and
// prints the cost, each aggregate's mechanism, σ and expected error, the partitions and the
// policy's decision; --json prints the document.
func TestCmdQueryExplainPrintsTheDryRun(t *testing.T) {
	fs := newFakeServer(t, map[string]handler{"POST /v1/explain": ok(testExplanation())})
	sql := "SELECT district, COUNT(*) AS visits, AVG(cost) AS mean_cost FROM visits GROUP BY district"
	out, _, err := runClientCmd(t, fs.url, "query", "--grant", "g-1", "--explain", "--delta", "0", sql)
	if err != nil {
		t.Fatal(err)
	}
	jsonEqual(t, fs.only().body, `{"grant":"g-1","kind":"sql","sql":"`+sql+`","options":{"delta":0}}`)
	wantContains(t, out, "policy:     allow", "cost:       epsilon 1, delta 0", "grant:g-1 has epsilon 4, delta 1e-07 left",
		"EXPECTED 95% ERROR PER CELL", "±53.25", "14.14, 141421", "mean_cost: about ±x/n", "partitions: public: all 14",
		"bounds:     each person_id", "contribution bounds are the platform's defaults")
	if line := lineWith(out, "visits "); !strings.Contains(line, "laplace") || !strings.Contains(line, "0.5") {
		t.Errorf("aggregate line %q", line)
	}

	fs = newFakeServer(t, map[string]handler{"POST /v1/explain": ok(testExplanation())})
	out, _, err = runClientCmd(t, fs.url, "query", "--grant", "g-1", "--explain", "--json", sql)
	if err != nil {
		t.Fatal(err)
	}
	jsonEqual(t, fs.only().body, `{"grant":"g-1","kind":"sql","sql":"`+sql+`","options":{}}`)
	var x api.Explanation
	if err := json.Unmarshal([]byte(out), &x); err != nil || x.Dataset != "visits" || len(x.Aggregates) != 2 {
		t.Fatalf("--explain --json printed %s (%v)", out, err)
	}
	if _, _, err := runClientCmd(t, fs.url, "query", "--grant", "g-1", "--explain", "--csv", sql); err == nil {
		t.Fatal("--explain --csv was accepted")
	}
}

// --delta 0 is sent as 0 (pure DP); no --delta sends none (the platform's default).
func TestCmdQueryDeltaZeroIsSentLeftOutIsNot(t *testing.T) {
	for _, tc := range []struct {
		args []string
		opts string
	}{
		{[]string{"--delta", "0"}, `{"delta":0}`},
		{[]string{"--delta", "1e-8"}, `{"delta":1e-8}`},
		{nil, `{}`},
	} {
		fs := newFakeServer(t, map[string]handler{
			"POST /v1/jobs": func(*http.Request, []byte) (int, any) { return http.StatusAccepted, releasedJob(t) },
		})
		args := append([]string{"query", "--grant", "g-1", "--json"}, tc.args...)
		if _, _, err := runClientCmd(t, fs.url, append(args, "SELECT 1")...); err != nil {
			t.Fatal(err)
		}
		jsonEqual(t, fs.only().body, `{"grant":"g-1","kind":"sql","sql":"SELECT 1","options":`+tc.opts+`}`)
	}
}

// dataset show prints the facts, a column table with types, tags, bounds and domains, and the
// caller's grants with their budget left; --json prints the document.
func TestCmdDatasetShowTableAndJSON(t *testing.T) {
	rows, units := int64(1000), int64(120)
	doc := api.DatasetDetail{Name: "visits", Provider: "health-bureau", Grade: "L2", Domain: "health", PrivacyUnit: "person_id",
		Digest: "sha256:ab", Size: api.SizePublic, Rows: &rows, Units: &units, Budget: &api.Budget{Epsilon: 10, Delta: 1e-6},
		Remaining: &api.Budget{Epsilon: 7, Delta: 5e-7},
		Columns: []api.DatasetColumn{
			{Name: "person_id", Type: "utf8", Tags: []string{"identifier"}, PrivacyUnit: true},
			{Name: "cost", Type: "double", Tags: []string{"sensitive"}, Bounds: []float64{0, 50000}},
			{Name: "district", Type: "utf8", Tags: []string{"quasi_identifier"}, Domain: []string{"530102", "530103"}},
		},
		Grants: []api.DatasetGrant{{ID: "g-1", State: "active", Remaining: api.Budget{Epsilon: 2.5, Delta: 1e-7}}}}
	fs := newFakeServer(t, map[string]handler{"GET /v1/datasets/visits": ok(doc)})
	out, _, err := runClientCmd(t, fs.url, "dataset", "show", "visits")
	if err != nil {
		t.Fatal(err)
	}
	wantContains(t, out, "dataset visits (grade L2", "privacy unit: person_id", "1000 rows, 120 privacy units",
		"left to allocate: epsilon 7", "COLUMN", "TYPE")
	for _, want := range [][]string{
		{"person_id", "utf8", "identifier,privacy", "unit", "-", "-"},
		{"cost", "double", "sensitive", "[0,", "50000]", "-"},
		{"district", "utf8", "quasi_identifier", "-", "2", "values:", "530102,530103"},
		{"g-1", "active", "2.5", "1e-07"},
	} {
		if got := strings.Fields(lineWith(out, want[0]+" ")); strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("line %q, want fields %q", got, want)
		}
	}
	doc.Rows, doc.Units, doc.Size, doc.Grants = nil, nil, api.SizeNone, nil
	fs = newFakeServer(t, map[string]handler{"GET /v1/datasets/visits": ok(doc)})
	out, _, err = runClientCmd(t, fs.url, "dataset", "show", "visits")
	if err != nil {
		t.Fatal(err)
	}
	wantContains(t, out, "size:         not disclosed by the policy", "none of your grants names this dataset")
	out, _, err = runClientCmd(t, fs.url, "dataset", "show", "visits", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var back api.DatasetDetail
	if err := json.Unmarshal([]byte(out), &back); err != nil || back.Name != "visits" || len(back.Columns) != 3 {
		t.Fatalf("--json printed %s (%v)", out, err)
	}
}

// lineWith is the first line of text starting with prefix, or "".
func lineWith(text, prefix string) string {
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	return ""
}
