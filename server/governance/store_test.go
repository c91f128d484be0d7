package governance_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/c1b99f93/cleanroom/server/api"
	"github.com/c1b99f93/cleanroom/server/governance"
)

var t0 = time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)

func open(t testing.TB) (*governance.Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "control.db")
	s, err := governance.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, path
}

func withGrant(t testing.TB, s *governance.Store) api.Grant {
	t.Helper()
	ctx := context.Background()
	a := api.Application{ID: "app-1", State: api.ApplicationPending, Org: "acme", CreatedAt: t0}
	if err := s.CreateApplication(ctx, a); err != nil {
		t.Fatal(err)
	}
	g := api.Grant{ID: "grant-1", State: api.GrantActive, Org: "acme", Application: "app-1", CreatedAt: t0}
	if err := s.DecideApplication(ctx, "app-1", func(a *api.Application) { a.State, a.Grant = api.ApplicationApproved, g.ID }, &g); err != nil {
		t.Fatal(err)
	}
	return g
}

// TestApplicationsAreDecidedOnce: a pending application is approved or rejected once.
func TestApplicationsAreDecidedOnce(t *testing.T) {
	s, _ := open(t)
	withGrant(t, s)
	err := s.DecideApplication(context.Background(), "app-1", func(a *api.Application) { a.State = api.ApplicationRejected }, nil)
	if !errors.Is(err, governance.ErrConflict) {
		t.Fatalf("deciding twice: %v, want ErrConflict", err)
	}
	if _, err := s.Application(context.Background(), "app-9"); !errors.Is(err, governance.ErrNotFound) {
		t.Fatalf("missing application: %v", err)
	}
}

// TestGrantTransitions: suspend/resume move between their states only; revoked is final even
// to a write that bypasses SetGrantState's check.
func TestGrantTransitions(t *testing.T) {
	ctx := context.Background()
	s, _ := open(t)
	withGrant(t, s)
	if _, err := s.SetGrantState(ctx, "grant-1", []string{api.GrantSuspended}, api.GrantActive, t0); !errors.Is(err, governance.ErrConflict) {
		t.Fatalf("resuming an active grant: %v", err)
	}
	if _, err := s.SetGrantState(ctx, "grant-1", []string{api.GrantActive}, api.GrantRevoked, t0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetGrantState(ctx, "grant-1", []string{api.GrantRevoked}, api.GrantActive, t0); err == nil {
		t.Fatal("a revoked grant became active again")
	}
	g, err := s.Grant(ctx, "grant-1")
	if err != nil || g.State != api.GrantRevoked {
		t.Fatalf("grant is %+v, %v", g, err)
	}
}

// TestJobsMoveForwardAndSurviveReopening: claim order, final states are final, reviews are
// unique per reviewer, and a reopened store fails jobs a dead process left running.
func TestJobsMoveForwardAndSurviveReopening(t *testing.T) {
	ctx := context.Background()
	s, path := open(t)
	withGrant(t, s)
	for i, id := range []string{"job-a", "job-b", "job-c"} {
		if err := s.CreateJob(ctx, api.Job{ID: id, State: api.JobQueued, Grant: "grant-1", Org: "acme", CreatedAt: t0.Add(time.Duration(i) * time.Second)}); err != nil {
			t.Fatal(err)
		}
	}
	j, ok, err := s.ClaimNextJob(ctx, t0)
	if err != nil || !ok || j.ID != "job-a" || j.State != api.JobRunning {
		t.Fatalf("first claim: %+v %v %v", j.Job, ok, err)
	}
	if _, err := s.UpdateJob(ctx, "job-a", []string{api.JobRunning}, func(j *governance.Job) error {
		j.State, j.Review = api.JobInReview, &api.JobReview{Required: 2}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	review := api.Review{Reviewer: "rev-1", Decision: "approve", At: t0}
	if _, err := s.AddReview(ctx, "job-a", review, func(*governance.Job) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddReview(ctx, "job-a", review, func(*governance.Job) error { return nil }); !errors.Is(err, governance.ErrDuplicateReview) {
		t.Fatalf("a second review by the same reviewer: %v", err)
	}
	got, err := s.AddReview(ctx, "job-a", api.Review{Reviewer: "rev-2", Decision: "approve", At: t0}, func(j *governance.Job) error {
		j.State = api.JobReleased
		return nil
	})
	if err != nil || got.State != api.JobReleased || len(got.Review.Reviews) != 2 {
		t.Fatalf("after two reviews: %+v, %v", got.Job, err)
	}
	if _, err := s.UpdateJob(ctx, "job-a", []string{api.JobReleased}, func(j *governance.Job) error {
		j.State = api.JobFailed
		return nil
	}); err == nil {
		t.Fatal("a released job changed state")
	}
	if _, _, err := s.ClaimNextJob(ctx, t0); err != nil { // job-b: running when the process "dies"
		t.Fatal(err)
	}
	s.Close()

	s2, err := governance.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	failed, err := s2.FailInterrupted(ctx, &api.Error{Code: "internal", Message: "interrupted"}, t0)
	if err != nil || len(failed) != 1 || failed[0] != "job-b" {
		t.Fatalf("interrupted jobs: %v, %v", failed, err)
	}
	next, ok, err := s2.ClaimNextJob(ctx, t0)
	if err != nil || !ok || next.ID != "job-c" {
		t.Fatalf("after reopening the queued job is claimed: %+v %v %v", next.Job, ok, err)
	}
	if a, err := s2.Job(ctx, "job-a"); err != nil || a.State != api.JobReleased || len(a.Review.Reviews) != 2 {
		t.Fatalf("after reopening job-a is %+v, %v", a.Job, err)
	}
}
