package engine_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/c1b99f93/cleanroom/catalog"
	"github.com/c1b99f93/cleanroom/engine/plan"
	"github.com/c1b99f93/cleanroom/errcode"
	"github.com/c1b99f93/cleanroom/policy/pii"
)

// TestScreenStopsAnIdentifierAMisTaggedColumnWouldRelease: a provider tagged a column of
// referring doctors' resident ID numbers as a mere attribute, so the gate and the access policy
// let a query group by it. The output screen sees ID numbers in the output's group keys and
// the default policy denies the release; the finding is recorded by code, without the value.
func TestScreenStopsAnIdentifierAMisTaggedColumnWouldRelease(t *testing.T) {
	var ids []string
	for _, body := range []string{"11010519491231002", "31011519800215003"} {
		c, err := pii.ResidentIDCheckDigit(body)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, body+string(c))
	}
	var b strings.Builder
	b.WriteString("person_id,referrer,cost\n")
	for i := range 2000 {
		fmt.Fprintf(&b, "P%05d,%s,%d\n", i, ids[i%2], 100+i%7)
	}
	path := filepath.Join(t.TempDir(), "referrals.csv")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	e := openEngine(t)
	register(t, e, &catalog.Spec{Name: "referrals", Provider: "health-commission", Grade: catalog.GradeL2, PrivacyUnit: "person_id",
		Source: catalog.Source{Kind: catalog.SourceCSV, Path: path}, Budget: catalog.Budget{Epsilon: 100, Delta: 1e-3},
		Columns: map[string]catalog.Column{
			"person_id": {Tags: []catalog.Tag{catalog.TagIdentifier}},
			"referrer":  {Tags: []catalog.Tag{catalog.TagAttribute}}, // wrong: it holds ID numbers
			"cost":      {Tags: []catalog.Tag{catalog.TagSensitive}, Bounds: []float64{0, 1000}},
		}})
	grant(t, e, "g", 10)

	ok, err := submit(e, "g", "SELECT COUNT(*) AS n FROM referrals", plan.Options{Epsilon: 1})
	if err != nil {
		t.Fatalf("an innocent query: %v", err)
	}
	_, err = submit(e, "g", "SELECT referrer, COUNT(*) AS n FROM referrals GROUP BY referrer", plan.Options{Epsilon: 1})
	if errcode.Of(err) != errcode.EgressDenied || !strings.Contains(err.Error(), "finding_high") {
		t.Fatalf("ID numbers in group keys: %v, want egress_denied on a high finding", err)
	}
	for _, id := range ids {
		if strings.Contains(err.Error(), id) {
			t.Fatal("the refusal quotes the ID number")
		}
	}

	ents, err := e.Audit().Records(func(typ, _ string) bool { return typ == "reviewer" })
	if err != nil || len(ents) != 2 {
		t.Fatalf("%d reviewer records, %v", len(ents), err)
	}
	var codes []string
	for _, ent := range ents {
		var r struct {
			Job  string `json:"job"`
			Data struct {
				Findings []struct{ Code string } `json:"findings"`
			} `json:"data"`
		}
		if err := json.Unmarshal(ent.Record, &r); err != nil {
			t.Fatal(err)
		}
		if r.Job == ok.Job && len(r.Data.Findings) != 0 {
			t.Fatalf("the innocent query has findings %+v", r.Data.Findings)
		}
		for _, f := range r.Data.Findings {
			codes = append(codes, f.Code)
		}
		for _, id := range ids {
			if strings.Contains(string(ent.Record), id) {
				t.Fatal("a reviewer record holds the ID number")
			}
		}
	}
	if !strings.Contains(strings.Join(codes, ","), "resident_id_in_output") {
		t.Fatalf("reviewer findings %v lack resident_id_in_output", codes)
	}

	// The egress policy sees the output's size as released, for its byte limit.
	egress, err := e.Audit().Records(func(typ, job string) bool { return typ == "policy_egress" && job == ok.Job })
	if err != nil || len(egress) != 1 {
		t.Fatalf("%d egress records, %v", len(egress), err)
	}
	var rec struct {
		Data struct {
			Input struct {
				Output struct{ Bytes int } `json:"output"`
			} `json:"input"`
		} `json:"data"`
	}
	if err := json.Unmarshal(egress[0].Record, &rec); err != nil {
		t.Fatal(err)
	}
	if got := rec.Data.Input.Output.Bytes; got < 100 || got > 10000 {
		t.Fatalf("the egress input says the one-row output is %d bytes", got)
	}
}

// TestLowFindingsAreRecordedAndReleased: grouping by a sensitive column without a public
// domain is ordinary DP SQL (partition selection decides the keys); the output screen notes it as a
// low finding, which the default policy lets through, and the finding is in provenance.
func TestLowFindingsAreRecordedAndReleased(t *testing.T) {
	e := openEngine(t)
	register(t, e, loadDataset(t, "medical_visits"))
	grant(t, e, "g", 10)
	res, err := submit(e, "g", "SELECT diagnosis, COUNT(*) AS n FROM medical_visits GROUP BY diagnosis", plan.Options{Epsilon: 1})
	if err != nil {
		t.Fatalf("a low finding stopped the release: %v", err)
	}
	ents, err := e.Audit().Records(func(typ, job string) bool { return typ == "reviewer" && job == res.Job })
	if err != nil || len(ents) != 1 || !strings.Contains(string(ents[0].Record), `"code":"sensitive_group_key"`) ||
		!strings.Contains(string(ents[0].Record), `"severity":"low"`) {
		t.Fatalf("reviewer record %v, %v", ents, err)
	}
}
