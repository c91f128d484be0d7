package server

import (
	"fmt"
	"testing"
	"time"

	"github.com/c1b99f93/cleanroom/server/governance"
)

var tq = time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)

// queue builds a queue state: jobs in order (oldest first) as "org/grant".
func queue(jobs ...string) governance.QueueState {
	q := governance.QueueState{RunningOrg: map[string]int{}, RunningGrant: map[string]int{}}
	for i, j := range jobs {
		var org, grant string
		fmt.Sscanf(j, "%1s/%s", &org, &grant)
		q.Queued = append(q.Queued, governance.QueuedJob{ID: fmt.Sprintf("%d:%s", i, j), Org: org, Grant: grant, Created: tq.Add(time.Duration(i) * time.Second)})
	}
	return q
}

// simulate runs runners over q: each step fills the free runners with pick's choices, and
// every job runs two steps. It returns the claims in order.
func simulate(sc *scheduler, q governance.QueueState, runners, steps int) []governance.QueuedJob {
	type slot struct {
		job  governance.QueuedJob
		left int
	}
	var running []slot
	var order []governance.QueuedJob
	for range steps {
		for len(running) < runners {
			id := sc.pick(q)
			if id == "" {
				break
			}
			for i, j := range q.Queued {
				if j.ID == id {
					q.Queued = append(q.Queued[:i:i], q.Queued[i+1:]...)
					q.RunningOrg[j.Org]++
					q.RunningGrant[j.Grant]++
					running = append(running, slot{j, 2})
					order = append(order, j)
					break
				}
			}
		}
		var still []slot
		for _, s := range running {
			if s.left--; s.left > 0 {
				still = append(still, s)
				continue
			}
			q.RunningOrg[s.job.Org]--
			q.RunningGrant[s.job.Grant]--
		}
		running = still
	}
	return order
}

// TestSchedulerStartsAnotherOrganisationsJobBeforeTheFlood: organisation a queues eight jobs,
// then b one; with two runners b's job is the second claimed — before any more of a's.
func TestSchedulerStartsAnotherOrganisationsJobBeforeTheFlood(t *testing.T) {
	sc := newScheduler(Scheduling{}.withDefaults(2))
	q := queue("a/g1", "a/g1", "a/g1", "a/g1", "a/g1", "a/g1", "a/g1", "a/g1", "b/g9")
	order := simulate(sc, q, 2, 20)
	if len(order) != 9 {
		t.Fatalf("%d jobs ran, want 9", len(order))
	}
	if order[0].Org != "a" || order[1].Org != "b" {
		t.Fatalf("start order %v: b's job must start second, before a's queued jobs", order)
	}
}

// TestSchedulerCapsRunningJobsPerOrganisation: with two runners the default cap is one: an
// organisation alone in the queue never has two jobs running, and a runner stays idle for
// others rather than take a second one.
func TestSchedulerCapsRunningJobsPerOrganisation(t *testing.T) {
	sc := newScheduler(Scheduling{}.withDefaults(2))
	if sc.cfg.MaxRunningPerOrg != 1 {
		t.Fatalf("default cap with 2 runners: %d, want 1", sc.cfg.MaxRunningPerOrg)
	}
	q := queue("a/g1", "a/g1")
	q.RunningOrg["a"] = 1
	if id := sc.pick(q); id != "" {
		t.Fatalf("an organisation at its cap got %s", id)
	}
	q.RunningOrg["a"] = 0
	if id := sc.pick(q); id != q.Queued[0].ID {
		t.Fatalf("below the cap: %q, want the oldest %s", id, q.Queued[0].ID)
	}
	for _, c := range []struct{ runners, want int }{{1, 1}, {2, 1}, {3, 1}, {4, 2}, {8, 4}} {
		if got := (Scheduling{}).withDefaults(c.runners).MaxRunningPerOrg; got != c.want {
			t.Errorf("%d runners: default cap %d, want %d", c.runners, got, c.want)
		}
	}
}

// TestSchedulerTakesOrganisationsAndGrantsInTurn: with one runner and every job equally long,
// organisations alternate, and within one organisation its grants alternate, each oldest first.
func TestSchedulerTakesOrganisationsAndGrantsInTurn(t *testing.T) {
	sc := newScheduler(Scheduling{MaxRunningPerOrg: 1})
	q := queue("a/g1", "a/g1", "a/g1", "a/g2", "b/g3", "b/g3", "c/g4")
	var got []string
	for _, j := range simulate(sc, q, 1, 40) {
		got = append(got, j.Org+"/"+j.Grant)
	}
	want := []string{"a/g1", "b/g3", "c/g4", "a/g2", "b/g3", "a/g1", "a/g1"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("order %v, want %v", got, want)
	}
}
