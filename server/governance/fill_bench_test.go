package governance_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/c1b99f93/cleanroom/server/api"
	"github.com/c1b99f93/cleanroom/server/governance"
)

// BenchmarkJobAsTheStoreFills times one job's way through the control plane — admission
// (queue caps), claim (the queue's state), the grant's hourly and daily rate-limit counts, and
// the outcome — on a store that already holds 100 (one day), 10,000 or 100,000 jobs of the same grant,
// 100 a day (so the rate-limit windows hold as many jobs at every size: what a count reads
// grows with the jobs of its window, which the policy caps at max_jobs_per_grant_per_day, not
// with the history), and reports each size's time
// against the one-day store's in the same run (x-day). Issue 19's target: within 1.2× at 100,000.
//
//	go test ./server/governance -run '^$' -bench JobAsTheStoreFills -benchtime 200x
func BenchmarkJobAsTheStoreFills(b *testing.B) {
	ctx := context.Background()
	var day time.Duration
	for _, stored := range []int{100, 10_000, 100_000} {
		b.Run(fmt.Sprintf("stored=%d", stored), func(b *testing.B) {
			s, _ := open(b)
			withGrant(b, s)
			now := t0.Add(100 * 24 * time.Hour)
			for start := 0; start < stored; start += 5000 {
				var jobs []api.Job
				for i := start; i < min(start+5000, stored); i++ {
					at := now.Add(-time.Duration(stored-i) * 24 * time.Hour / 100)
					jobs = append(jobs, api.Job{ID: fmt.Sprintf("old-%07d", i), State: api.JobReleased, Grant: "grant-1", Org: "acme", CreatedAt: at})
				}
				if err := s.InsertJobs(ctx, jobs); err != nil {
					b.Fatal(err)
				}
			}
			if err := s.Checkpoint(ctx); err != nil {
				b.Fatal(err)
			}
			lim := governance.QueueLimits{Queued: 256, PerOrg: 32}
			b.ResetTimer()
			for i := range b.N {
				at := now.Add(time.Duration(i) * time.Millisecond)
				j := api.Job{ID: fmt.Sprintf("new-%07d", i), State: api.JobQueued, Grant: "grant-1", Org: "acme", CreatedAt: at}
				if err := s.Enqueue(ctx, j, nil, lim); err != nil {
					b.Fatal(err)
				}
				got, ok, err := s.ClaimNextJob(ctx, at)
				if err != nil || !ok || got.ID != j.ID {
					b.Fatalf("claim: %v %v %s", ok, err, got.ID)
				}
				for _, window := range []time.Duration{time.Hour, 24 * time.Hour} {
					if _, err := s.CountJobs(ctx, "grant-1", at.Add(-window), j.ID); err != nil {
						b.Fatal(err)
					}
				}
				if _, err := s.UpdateJob(ctx, j.ID, []string{api.JobRunning}, func(j *governance.Job) error {
					j.State, j.UpdatedAt = api.JobReleased, at
					return nil
				}); err != nil {
					b.Fatal(err)
				}
			}
			per := b.Elapsed() / time.Duration(b.N)
			if stored == 100 {
				day = per
			}
			b.ReportMetric(float64(per.Microseconds())/1000, "ms/job")
			if day > 0 {
				b.ReportMetric(float64(per)/float64(day), "x-day")
			}
		})
	}
}
