package server_test

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/c1b99f93/cleanroom/server/api"
)

// matrixPrincipals: every role, and for applicants and providers one of the owning
// organisation and one of another (acme-insurance owns the grant and jobs below;
// health-commission provides medical_visits).
var matrixPrincipals = []string{"hospital-a", "psb-1", "op-1", "insurer-1", "insurer-2", "rev-1", "aud-1"}

// fixture makes resources for the matrix: shared ones for requests that must be refused, and
// fresh ones for each request that is allowed to change state.
type fixture struct {
	t     *testing.T
	p     *platform
	grant string // acme-insurance's
	job   string // acme-insurance's released job
	n     int
}

func (f *fixture) application() string {
	var a api.Application
	f.p.must("insurer-1", "POST", "/v1/applications", api.ApplicationRequest{Purpose: "p", Scenario: "s",
		Datasets: []string{"medical_visits", "residents"}, Start: "2026-01-01", End: "2026-12-31", Epsilon: 0.1, Delta: 1e-8,
		JobKinds: []string{"sql"}}, &a)
	return a.ID
}

func (f *fixture) freshGrant() string {
	var ok api.Approved
	f.p.must("op-1", "POST", "/v1/applications/"+f.application()+"/approve", nil, &ok)
	return ok.GrantID
}

func (f *fixture) heldJob() string {
	f.n++ // a different query each time, so it is computed (and held) afresh
	sql := fmt.Sprintf("SELECT gender, COUNT(*) AS n FROM residents WHERE birth_date > DATE '1900-01-%02d' GROUP BY gender", f.n)
	j := f.p.waitJob("insurer-1", f.p.submit("insurer-1", f.grant, sql).ID)
	if j.State != api.JobInReview {
		f.t.Fatalf("fixture job is %s (%+v), want in_review", j.State, j.Error)
	}
	return j.ID
}

type request struct {
	method, path string
	body         any
}

// TestAuthorizationMatrix sends every route as every role, for resources of the principal's
// own organisation and of another, and checks the default policy's allow/deny.
func TestAuthorizationMatrix(t *testing.T) {
	clk := &clock{now: time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)}
	p := start(t, t.TempDir(), clk)
	f := &fixture{t: t, p: p}
	f.grant = setupGrant(t, p, 8)
	f.job = p.waitJob("insurer-1", p.submit("insurer-1", f.grant, byDistrict).ID).ID
	shared := struct{ app, grant, held string }{f.application(), f.grant, f.heldJob()}

	all := matrixPrincipals
	// readers may read the matrix's objects (acme-insurance's application, grant and jobs); a
	// refusal on an object is 403 to them and 404 not_found to everyone else, as if the object
	// did not exist. Reviewers also see the jobs in the review queue.
	readers := []string{"insurer-1", "op-1", "aud-1"}
	reviewQueue := append(slices.Clone(readers), "rev-1")
	cases := []struct {
		name    string
		allowed []string
		// sees, for a route naming an object, is who may see that object; nil for a route
		// naming none (or a dataset, whose metadata anyone may list): its refusals are all 403.
		sees []string
		// req builds the request; fresh is true when the request is expected to be allowed
		// and may change state, so it must get resources of its own.
		req func(fresh bool) request
	}{
		{"whoami", all, nil, func(bool) request { return request{"GET", "/v1/whoami", nil} }},
		{"dataset.register", []string{"hospital-a"}, nil, func(bool) request {
			f.n++ // data of its own each time: the same data registers only once
			name := fmt.Sprintf("visits_%d", f.n)
			writeCSV(t, filepath.Join(p.roots["health-commission"], name+".csv"), 1000*f.n, 10, false)
			return request{"POST", "/v1/datasets", csvSpec(name, "health-commission", name+".csv")}
		}},
		{"dataset.list", all, nil, func(bool) request { return request{"GET", "/v1/datasets", nil} }},
		{"dataset.usage", []string{"hospital-a", "op-1", "aud-1"}, nil, func(bool) request {
			return request{"GET", "/v1/datasets/medical_visits/budget", nil}
		}},
		{"application.create", []string{"insurer-1", "insurer-2"}, nil, func(bool) request {
			return request{"POST", "/v1/applications", api.ApplicationRequest{Purpose: "p", Scenario: "s",
				Datasets: []string{"medical_visits"}, Start: "2026-01-01", End: "2026-12-31", Epsilon: 1, JobKinds: []string{"sql"}}}
		}},
		{"application.list", []string{"insurer-1", "insurer-2", "op-1", "aud-1"}, nil, func(bool) request {
			return request{"GET", "/v1/applications", nil}
		}},
		{"application.read", []string{"insurer-1", "op-1", "aud-1"}, readers, func(bool) request {
			return request{"GET", "/v1/applications/" + shared.app, nil}
		}},
		{"application.approve", []string{"op-1"}, readers, func(fresh bool) request {
			id := shared.app
			if fresh {
				id = f.application()
			}
			return request{"POST", "/v1/applications/" + id + "/approve", nil}
		}},
		{"application.reject", []string{"op-1"}, readers, func(fresh bool) request {
			id := shared.app
			if fresh {
				id = f.application()
			}
			return request{"POST", "/v1/applications/" + id + "/reject", api.ReasonRequest{Reason: "scope too wide"}}
		}},
		{"grant.list", []string{"insurer-1", "insurer-2", "op-1", "aud-1"}, nil, func(bool) request { return request{"GET", "/v1/grants", nil} }},
		{"grant.read", []string{"insurer-1", "op-1", "aud-1"}, readers, func(bool) request { return request{"GET", "/v1/grants/" + shared.grant, nil} }},
		{"grant.budget", []string{"insurer-1", "op-1", "aud-1"}, readers, func(bool) request {
			return request{"GET", "/v1/grants/" + shared.grant + "/budget", nil}
		}},
		{"grant.suspend", []string{"op-1"}, readers, func(fresh bool) request {
			id := shared.grant
			if fresh {
				id = f.freshGrant()
			}
			return request{"POST", "/v1/grants/" + id + "/suspend", nil}
		}},
		{"grant.resume", []string{"op-1"}, readers, func(fresh bool) request {
			id := shared.grant
			if fresh {
				id = f.freshGrant()
				p.must("op-1", "POST", "/v1/grants/"+id+"/suspend", nil, nil)
			}
			return request{"POST", "/v1/grants/" + id + "/resume", nil}
		}},
		{"grant.revoke", []string{"op-1"}, readers, func(fresh bool) request {
			id := shared.grant
			if fresh {
				id = f.freshGrant()
			}
			return request{"POST", "/v1/grants/" + id + "/revoke", nil}
		}},
		{"grant.redteam", []string{"op-1"}, readers, func(bool) request {
			return request{"POST", "/v1/grants/" + shared.grant + "/redteam", api.RedteamRequest{ReportSHA256: strings.Repeat("ab", 32),
				Attacks: []api.RedteamAttack{{Name: "averaging", Jobs: 3, Blocked: true, Epsilon: 0.2}}}}
		}},
		{"job.submit", []string{"insurer-1"}, readers, func(bool) request {
			return request{"POST", "/v1/jobs", api.JobRequest{Grant: shared.grant, SQL: byDistrict}}
		}},
		{"job.list", []string{"insurer-1", "insurer-2", "op-1", "aud-1"}, nil, func(bool) request { return request{"GET", "/v1/jobs", nil} }},
		{"job.read", []string{"insurer-1", "op-1", "aud-1"}, readers, func(bool) request { return request{"GET", "/v1/jobs/" + f.job, nil} }},
		{"review.list", []string{"rev-1"}, nil, func(bool) request { return request{"GET", "/v1/reviews", nil} }},
		{"review.approve", []string{"rev-1"}, reviewQueue, func(fresh bool) request {
			id := shared.held
			if fresh {
				id = f.heldJob()
			}
			return request{"POST", "/v1/reviews/" + id + "/approve", nil}
		}},
		{"review.reject", []string{"rev-1"}, reviewQueue, func(fresh bool) request {
			id := shared.held
			if fresh {
				id = f.heldJob()
			}
			return request{"POST", "/v1/reviews/" + id + "/reject", api.ReasonRequest{Reason: "too fine"}}
		}},
		{"audit.verify", []string{"aud-1"}, nil, func(bool) request { return request{"GET", "/v1/audit/verify", nil} }},
		{"audit.job", []string{"aud-1"}, nil, func(bool) request { return request{"GET", "/v1/audit/jobs/" + f.job, nil} }},
		{"audit.replay", []string{"aud-1"}, nil, func(bool) request { return request{"POST", "/v1/audit/jobs/" + f.job + "/replay", nil} }},
	}
	for _, c := range cases {
		for _, who := range all {
			allow := slices.Contains(c.allowed, who)
			r := c.req(allow)
			status, code := p.do(who, r.method, r.path, r.body, nil)
			switch {
			case allow && status >= 300:
				t.Errorf("%s as %s: %d %s, want allowed", c.name, who, status, code)
			case !allow && c.sees != nil && !slices.Contains(c.sees, who) && (status != 404 || code != "not_found"):
				t.Errorf("%s as %s, who may not see the object: %d %q, want 404 not_found", c.name, who, status, code)
			case !allow && (c.sees == nil || slices.Contains(c.sees, who)) && (status != 403 || (code != "forbidden" && code != "separation_of_duties")):
				t.Errorf("%s as %s: %d %q, want 403 forbidden", c.name, who, status, code)
			}
		}
	}

	// Reading a released job: only the applicant's org and auditors see its result.
	for _, who := range []string{"insurer-1", "op-1", "aud-1"} {
		var j api.Job
		p.must(who, "GET", "/v1/jobs/"+f.job, nil, &j)
		if want := who != "op-1"; (j.Result != nil) != want {
			t.Errorf("job result shown to %s: %v, want %v", who, j.Result != nil, want)
		}
	}
	// Lists show each principal only what it may read.
	var jobs api.Jobs
	p.must("insurer-2", "GET", "/v1/jobs", nil, &jobs)
	var grants api.Grants
	p.must("insurer-2", "GET", "/v1/grants", nil, &grants)
	var apps api.Applications
	p.must("insurer-2", "GET", "/v1/applications", nil, &apps)
	if len(jobs.Jobs)+len(grants.Grants) != 0 || len(apps.Applications) != 1 { // its own application above
		t.Errorf("another org lists %d jobs, %d grants, %d applications", len(jobs.Jobs), len(grants.Grants), len(apps.Applications))
	}
	p.must("insurer-1", "GET", "/v1/jobs", nil, &jobs)
	for _, j := range jobs.Jobs {
		if j.Org != "acme-insurance" || j.Result != nil {
			t.Errorf("insurer-1's job list holds %s of %s (result in list: %v)", j.ID, j.Org, j.Result != nil)
		}
	}
}
