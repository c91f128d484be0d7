package server_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/c1b99f93/cleanroom/errcode"
	"github.com/c1b99f93/cleanroom/server"
	"github.com/c1b99f93/cleanroom/server/api"
)

// resident is the name whose presence an applicant would test for.
const resident = "欧阳修远"

// neighbourRegisters writes two registers of 400 residents that differ in one row: in
// "people_with" resident 7 is named resident, in "people_without" it has another name.
// Names are identifiers, so they are in each dataset's raw-value set.
func neighbourRegisters(t *testing.T, root string) {
	t.Helper()
	for _, ds := range []struct {
		name string
		with bool
	}{{"people_with", true}, {"people_without", false}} {
		var b strings.Builder
		b.WriteString("person_id,name,district\n")
		for i := range 400 {
			name := fmt.Sprintf("resident-%04d", i)
			if i == 7 && ds.with {
				name = resident
			}
			fmt.Fprintf(&b, "P%05d,%s,%s\n", i, name, []string{"530102", "530103"}[i%2])
		}
		if err := os.WriteFile(filepath.Join(root, ds.name+".csv"), []byte(b.String()), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// TestMembershipTestsThroughAliasesAndLiteralsGetOneVerdictOverHTTP reproduces issue 13's
// finding 2 on a real server: an applicant writes a resident's name as an alias, as a name a
// subquery alias lends to an output, as a CASE literal of a public-domain key and as a CASE
// literal of a partition-selected key. Against two registers that differ only in whether a
// resident of that name exists, every query gets the same verdict (released), so denied
// versus released says nothing about the resident. A name or literal that looks like an
// identifier is refused by the gate, before anything runs, at no cost.
func TestMembershipTestsThroughAliasesAndLiteralsGetOneVerdictOverHTTP(t *testing.T) {
	root := t.TempDir()
	neighbourRegisters(t, root)
	ps, err := server.ParsePrincipals([]byte(principalsYAML))
	if err != nil {
		t.Fatal(err)
	}
	clk := &clock{now: time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)}
	dataDir := t.TempDir()
	srv, err := server.New(context.Background(), server.Config{DataDir: dataDir, Principals: ps, ImportRoots: map[string]string{"public-security-bureau": root}, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	p := serveOn(t, srv, dataDir)
	for _, name := range []string{"people_with", "people_without"} {
		p.must("psb-1", "POST", "/v1/datasets", map[string]any{
			"name": name, "provider": "public-security-bureau", "grade": "L2", "privacy_unit": "person_id",
			"source": map[string]any{"kind": "csv", "path": name + ".csv"}, "budget": map[string]any{"epsilon": 50, "delta": 1e-4},
			"columns": map[string]any{
				"person_id": map[string]any{"tags": []string{"identifier"}},
				"name":      map[string]any{"tags": []string{"identifier"}},
				"district":  map[string]any{"tags": []string{"quasi_identifier"}, "domain": []string{"530102", "530103"}},
			},
		}, nil)
	}
	var app api.Application
	p.must("insurer-1", "POST", "/v1/applications", api.ApplicationRequest{
		Purpose: "population counts", Scenario: "residents by district", Datasets: []string{"people_with", "people_without"},
		Start: "2026-01-01", End: "2026-12-31", Epsilon: 20, Delta: 1e-5, JobKinds: []string{"sql"},
	}, &app)
	eps := 20.0
	var ok api.Approved
	p.must("op-1", "POST", "/v1/applications/"+app.ID+"/approve", api.ApproveRequest{Epsilon: &eps}, &ok)

	probes := []struct{ name, sql string }{
		{"alias", `SELECT district AS "` + resident + `", COUNT(*) AS n FROM %s GROUP BY district`},
		{"name lent by a subquery alias", `SELECT COUNT(*) AS n, SUM("` + resident + `") FROM (SELECT person_id, LEAST(COUNT(*), 3) AS "` + resident + `" FROM %s GROUP BY person_id) t`},
		{"CASE literal of a public-domain key", `SELECT CASE WHEN district = '530102' THEN '` + resident + `' ELSE 'other' END AS g, COUNT(*) AS n FROM %s GROUP BY g`},
		{"CASE literal of a partition-selected key", `SELECT CASE WHEN district = '530102' THEN '` + resident + `' END AS g, COUNT(*) AS n FROM %s GROUP BY g`},
	}
	for _, pr := range probes {
		t.Run(pr.name, func(t *testing.T) {
			verdict := map[string]string{}
			for _, ds := range []string{"people_with", "people_without"} {
				j := p.waitJob("insurer-1", p.submit("insurer-1", ok.GrantID, fmt.Sprintf(pr.sql, ds)).ID)
				v := j.State
				if j.Error != nil {
					v += " " + j.Error.Code
				}
				verdict[ds] = v
				if j.Error != nil {
					t.Logf("%s: %s", ds, j.Error.Message)
				}
			}
			if verdict["people_with"] != verdict["people_without"] || verdict["people_with"] != api.JobReleased {
				t.Fatalf("verdicts differ with the resident's presence: with %q, without %q (want released on both)", verdict["people_with"], verdict["people_without"])
			}
		})
	}

	// An identifier-looking alias or literal is the gate's business, from the SQL alone.
	var before api.Grant
	p.must("insurer-1", "GET", "/v1/grants/"+ok.GrantID, nil, &before)
	for _, sql := range []string{
		`SELECT district AS "13812345678", COUNT(*) AS n FROM people_with GROUP BY district`,
		`SELECT CASE WHEN district = '530102' THEN 'zhang.san@example.com' END AS g, COUNT(*) AS n FROM people_with GROUP BY g`,
	} {
		// The gate refuses it at submission: answered at once, never a job.
		p.refused("insurer-1", "POST", "/v1/jobs", api.JobRequest{Grant: ok.GrantID, SQL: sql}, http.StatusBadRequest, errcode.IdentifierInQuery)
	}
	var after api.Grant
	p.must("insurer-1", "GET", "/v1/grants/"+ok.GrantID, nil, &after)
	if after.Budget != before.Budget {
		t.Fatalf("refused queries spent budget: %+v → %+v", before.Budget, after.Budget)
	}
}
