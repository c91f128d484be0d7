package governance_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/c1b99f93/cleanroom/server/api"
	"github.com/c1b99f93/cleanroom/server/governance"
)

// TestEnqueueRefusesBeyondTheQueueCaps: an organisation at its cap is refused while another is
// still admitted; the platform's cap refuses everyone; running jobs do not count as queued.
func TestEnqueueRefusesBeyondTheQueueCaps(t *testing.T) {
	ctx := context.Background()
	s, _ := open(t)
	withGrant(t, s)
	lim := governance.QueueLimits{Queued: 3, PerOrg: 2}
	n := 0
	job := func(org string) api.Job {
		n++
		return api.Job{ID: fmt.Sprintf("job-%d", n), State: api.JobQueued, Grant: "grant-1", Org: org, CreatedAt: t0.Add(time.Duration(n) * time.Second)}
	}
	for range 2 {
		if err := s.Enqueue(ctx, job("acme"), nil, lim); err != nil {
			t.Fatal(err)
		}
	}
	var qf *governance.QueueFullError
	if err := s.Enqueue(ctx, job("acme"), nil, lim); !errors.As(err, &qf) || !qf.Org || qf.Limit != 2 {
		t.Fatalf("a third job of one organisation: %v, want its own cap", err)
	}
	if err := s.Enqueue(ctx, job("beta"), nil, lim); err != nil {
		t.Fatalf("another organisation's job was refused: %v", err)
	}
	if err := s.Enqueue(ctx, job("gamma"), nil, lim); !errors.As(err, &qf) || qf.Org || qf.Limit != 3 {
		t.Fatalf("a fourth job on the platform: %v, want the platform's cap", err)
	}
	// A claimed job no longer counts as queued: its organisation may queue one more.
	if _, ok, err := s.ClaimNextJob(ctx, t0); err != nil || !ok {
		t.Fatalf("claim: %v %v", ok, err)
	}
	if err := s.Enqueue(ctx, job("acme"), nil, lim); err != nil {
		t.Fatalf("after a claim: %v", err)
	}
	jobs, err := s.Jobs(ctx, governance.JobFilter{})
	if err != nil || len(jobs) != 4 {
		t.Fatalf("stored jobs: %d, %v; want the 4 admitted", len(jobs), err)
	}
}

// TestClaimJobShowsTheQueueAndClaimsTheChosenJob: the chooser sees queued jobs oldest first and
// running counts by organisation and grant; the job it names is claimed, once.
func TestClaimJobShowsTheQueueAndClaimsTheChosenJob(t *testing.T) {
	ctx := context.Background()
	s, _ := open(t)
	withGrant(t, s)
	for i, org := range []string{"acme", "acme", "beta"} {
		j := api.Job{ID: fmt.Sprintf("job-%d", i), State: api.JobQueued, Grant: "grant-1", Org: org, CreatedAt: t0.Add(time.Duration(i) * time.Second)}
		if err := s.Enqueue(ctx, j, nil, governance.QueueLimits{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := s.ClaimNextJob(ctx, t0); err != nil {
		t.Fatal(err)
	}
	var seen governance.QueueState
	j, ok, err := s.ClaimJob(ctx, t0, func(q governance.QueueState) string { seen = q; return "job-2" })
	if err != nil || !ok || j.ID != "job-2" || j.State != api.JobRunning {
		t.Fatalf("claim: %+v %v %v", j.Job, ok, err)
	}
	if len(seen.Queued) != 2 || seen.Queued[0].ID != "job-1" || seen.RunningOrg["acme"] != 1 || seen.RunningGrant["grant-1"] != 1 {
		t.Fatalf("the chooser saw %+v", seen)
	}
	if _, ok, err := s.ClaimJob(ctx, t0, func(governance.QueueState) string { return "job-2" }); ok || err == nil {
		t.Fatalf("a running job was claimed again: %v %v", ok, err)
	}
	if _, ok, err := s.ClaimJob(ctx, t0, func(governance.QueueState) string { return "" }); ok || err != nil {
		t.Fatalf("choosing nothing: %v %v", ok, err)
	}
}

// TestPendingOutcomeIsUnseenUntilApplied: a running job's outcome stored as pending leaves the
// job running to every reader — no result, no new state, no new time — until it is applied,
// which shows it in one step, at the time of applying; it survives reopening the store (a
// crash between the two), and applying again, or to a job without one, does nothing.
func TestPendingOutcomeIsUnseenUntilApplied(t *testing.T) {
	ctx := context.Background()
	s, path := open(t)
	withGrant(t, s)
	if err := s.Enqueue(ctx, api.Job{ID: "job-1", State: api.JobQueued, Grant: "grant-1", Org: "acme", CreatedAt: t0}, nil, governance.QueueLimits{}); err != nil {
		t.Fatal(err)
	}
	running, ok, err := s.ClaimNextJob(ctx, t0)
	if err != nil || !ok {
		t.Fatalf("claim: %v %v", ok, err)
	}
	final := running
	final.State, final.Receipt, final.Output = api.JobReleased, "receipt", []byte(`{"rows":[]}`)
	final.UpdatedAt = t0.Add(time.Hour) // the engine's time: must never be shown
	if err := s.SavePendingOutcome(ctx, final); err != nil {
		t.Fatal(err)
	}
	seen, err := s.Job(ctx, "job-1")
	if err != nil || seen.State != api.JobRunning || seen.Output != nil || seen.Receipt != "" || !seen.UpdatedAt.Equal(running.UpdatedAt) {
		t.Fatalf("before it is applied the job reads %+v (output %s): want it running as claimed", seen.Job, seen.Output)
	}
	s.Close()
	s, err = governance.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	shownAt := t0.Add(2 * time.Hour)
	if shown, err := s.ApplyPendingOutcome(ctx, "job-1", shownAt); err != nil || !shown {
		t.Fatalf("apply after reopening: %v %v", shown, err)
	}
	seen, err = s.Job(ctx, "job-1")
	if err != nil || seen.State != api.JobReleased || string(seen.Output) != `{"rows":[]}` || seen.Receipt != "receipt" || !seen.UpdatedAt.Equal(shownAt) {
		t.Fatalf("after it is applied the job reads %+v (output %s)", seen.Job, seen.Output)
	}
	if shown, err := s.ApplyPendingOutcome(ctx, "job-1", shownAt); err != nil || shown {
		t.Fatalf("applying again: %v %v, want nothing done", shown, err)
	}
	if err := s.SavePendingOutcome(ctx, final); !errors.Is(err, governance.ErrConflict) {
		t.Fatalf("a pending outcome for a finished job: %v, want ErrConflict", err)
	}
}
