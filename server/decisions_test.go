package server_test

import (
	"strings"
	"testing"
	"time"

	"github.com/c1b99f93/cleanroom/server/api"
)

// TestRejectionSticksToEveryResubmissionOverHTTP reproduces issue 13's finding 3 on a real
// server: an L3 output is held for two reviewers; a resubmission while it waits (another ORDER
// BY) is not queued again (output_held, naming the held job); one reviewer rejects it; every
// later resubmission — another ORDER BY, alias or LIMIT, before and after a restart — comes
// back rejected with the reviewer's reason, costs nothing and never enters the queue, so no
// other reviewers can approve it.
func TestRejectionSticksToEveryResubmissionOverHTTP(t *testing.T) {
	dataDir := t.TempDir()
	clk := &clock{now: time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)}
	p := start(t, dataDir, clk)
	grant := setupGrant(t, p, 3)

	held := p.waitJob("insurer-1", p.submit("insurer-1", grant, byIncome).ID)
	if held.State != api.JobInReview {
		t.Fatalf("the L3 output is %s (%+v), want in_review", held.State, held.Error)
	}
	spent := func(p *platform) float64 {
		var g api.Grant
		p.must("insurer-1", "GET", "/v1/grants/"+grant, nil, &g)
		return g.Budget.EpsilonSpent
	}
	queue := func(p *platform) []string {
		var q api.Reviews
		p.must("rev-2", "GET", "/v1/reviews", nil, &q)
		var ids []string
		for _, r := range q.Reviews {
			ids = append(ids, r.Job.ID)
		}
		return ids
	}
	before := spent(p)

	// While held: a resubmission is answered by the hold, not queued a second time.
	dup := p.waitJob("insurer-1", p.submit("insurer-1", grant, byIncome+" ORDER BY visits DESC").ID)
	if dup.State != api.JobDenied || dup.Error == nil || dup.Error.Code != "output_held" || !strings.Contains(dup.Error.Message, held.ID) {
		t.Fatalf("a resubmission while held is %s (%+v), want denied output_held naming %s", dup.State, dup.Error, held.ID)
	}
	if q := queue(p); len(q) != 1 || q[0] != held.ID {
		t.Fatalf("review queue %v, want only the held job %s", q, held.ID)
	}
	p.refused("rev-2", "POST", "/v1/reviews/"+dup.ID+"/approve", nil, 409, "conflict")

	const reason = "income bands are not needed for the stated purpose"
	var rejected api.Job
	p.must("rev-1", "POST", "/v1/reviews/"+held.ID+"/reject", api.ReasonRequest{Reason: reason}, &rejected)
	if rejected.State != api.JobDenied || rejected.Error == nil || rejected.Error.Code != "review_rejected" {
		t.Fatalf("the rejected job is %s (%+v)", rejected.State, rejected.Error)
	}

	resubmit := func(p *platform, sql string) {
		t.Helper()
		j := p.waitJob("insurer-1", p.submit("insurer-1", grant, sql).ID)
		if j.State != api.JobDenied || j.Error == nil || j.Error.Code != "review_rejected" ||
			!strings.Contains(j.Error.Message, reason) || !strings.Contains(j.Error.Message, held.ID) || j.Result != nil {
			t.Fatalf("%s: %s (%+v), want denied review_rejected with the reason and the rejected job", sql, j.State, j.Error)
		}
		if q := queue(p); len(q) != 0 {
			t.Fatalf("%s: the review queue holds %v", sql, q)
		}
		p.refused("rev-2", "POST", "/v1/reviews/"+j.ID+"/approve", nil, 409, "conflict")
	}
	for _, sql := range []string{
		byIncome + " ORDER BY visits DESC",
		"SELECT r.income_band AS band, COUNT(*) AS n FROM medical_visits v JOIN residents r ON v.person_id = r.person_id GROUP BY r.income_band ORDER BY n LIMIT 2",
		"select r.income_band, count(*) as visits from medical_visits v join residents r on v.person_id = r.person_id group by 1 limit 1",
	} {
		resubmit(p, sql)
	}
	if after := spent(p); after != before {
		t.Fatalf("resubmissions spent budget: %v → %v", before, after)
	}

	// The decision survives a restart.
	p.stop()
	p2 := start(t, dataDir, clk)
	resubmit(p2, byIncome+" ORDER BY 1")
	if after := spent(p2); after != before {
		t.Fatalf("after a restart a resubmission spent budget: %v → %v", before, after)
	}
	// The auditor finds the decision and its recall in provenance.
	var recs api.AuditJob
	p2.must("aud-1", "GET", "/v1/audit/jobs/"+dup.ID, nil, &recs)
	if !strings.Contains(string(recs.Records[len(recs.Records)-2].Record), `"decision_recalled"`) {
		t.Fatalf("the resubmission's provenance lacks decision_recalled: %s", recs.Records[len(recs.Records)-2].Record)
	}
}
