package server

import (
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/c1b99f93/cleanroom/errcode"
	"github.com/c1b99f93/cleanroom/server/governance"
)

// Scheduling: queued jobs wait in the governance store (the queue survives a restart with
// the jobs); the runners take them in a fair order, not first come first served.
//
//   - Across organisations, round robin: the next job is the oldest queued job of the
//     organisation that has the fewest jobs running now and, among those, was served least
//     recently. An organisation that floods the queue gets one turn per round like any other.
//   - Within an organisation, the same over its grants; within a grant, oldest first.
//   - An organisation runs at most MaxRunningPerOrg jobs at once (default: half the runners,
//     never fewer than 1), so the other runners stay free for everyone else.
//   - Admission: a job is refused with queue_full (HTTP 429 with Retry-After) when the
//     platform has MaxQueued jobs queued, or its organisation has MaxQueuedPerOrg.
//
// So a job of an organisation with nothing running starts at the next runner that comes free,
// ahead of every queued job of an organisation with a job running, and never waits behind more
// than one finishing job for its slot while another organisation floods the queue.

// Scheduling configures the job queue. Zero fields take the defaults (Defaults).
type Scheduling struct {
	// MaxRunningPerOrg caps the jobs one organisation runs at once (default Runners/2, at
	// least 1).
	MaxRunningPerOrg int
	// MaxQueued caps the jobs queued on the platform (default 256); MaxQueuedPerOrg those of
	// one organisation (default 32). A job beyond a cap is refused with queue_full.
	MaxQueued, MaxQueuedPerOrg int
	// RetryAfter is the hint a queue_full refusal carries (default 30s).
	RetryAfter time.Duration
}

// Scheduling defaults.
const (
	DefaultMaxQueued       = 256
	DefaultMaxQueuedPerOrg = 32
	DefaultRetryAfter      = 30 * time.Second
)

// withDefaults fills unset fields for a server with runners runners. A negative cap is no cap
// (for tests and benchmarks that need one).
func (c Scheduling) withDefaults(runners int) Scheduling {
	if c.MaxRunningPerOrg == 0 {
		c.MaxRunningPerOrg = max(1, runners/2)
	}
	if c.MaxQueued == 0 {
		c.MaxQueued = DefaultMaxQueued
	}
	if c.MaxQueuedPerOrg == 0 {
		c.MaxQueuedPerOrg = DefaultMaxQueuedPerOrg
	}
	if c.RetryAfter <= 0 {
		c.RetryAfter = DefaultRetryAfter
	}
	return c
}

func (c Scheduling) limits() governance.QueueLimits {
	return governance.QueueLimits{Queued: max(0, c.MaxQueued), PerOrg: max(0, c.MaxQueuedPerOrg)}
}

// scheduler chooses the next job to claim. It keeps when each organisation and grant was last
// served (a counter, not a clock); it starts empty after a restart, when the queue's order
// falls back to age.
type scheduler struct {
	cfg    Scheduling
	mu     sync.Mutex
	turn   uint64
	served map[string]uint64 // by "org:" + org and "grant:" + grant
}

func newScheduler(cfg Scheduling) *scheduler {
	return &scheduler{cfg: cfg, served: map[string]uint64{}}
}

// pick chooses from q the job to run next, or "" when nothing may start (the queue is empty,
// or every organisation with queued jobs is at its running cap). The choice is recorded as
// served: pick is called inside the claim's transaction, which commits it.
func (sc *scheduler) pick(q governance.QueueState) string {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	capOrg := sc.cfg.MaxRunningPerOrg
	var best *governance.QueuedJob
	better := func(j *governance.QueuedJob) bool {
		if best == nil {
			return true
		}
		if j.Org != best.Org {
			return less(q.RunningOrg[j.Org], q.RunningOrg[best.Org], sc.served["org:"+j.Org], sc.served["org:"+best.Org])
		}
		if j.Grant != best.Grant {
			return less(q.RunningGrant[j.Grant], q.RunningGrant[best.Grant], sc.served["grant:"+j.Grant], sc.served["grant:"+best.Grant])
		}
		return false // the queue is oldest first: the first of a grant is its oldest
	}
	for i := range q.Queued {
		j := &q.Queued[i]
		if capOrg > 0 && q.RunningOrg[j.Org] >= capOrg {
			continue
		}
		if better(j) {
			best = j
		}
	}
	if best == nil {
		return ""
	}
	sc.turn++
	sc.served["org:"+best.Org], sc.served["grant:"+best.Grant] = sc.turn, sc.turn
	return best.ID
}

// less orders two candidates by jobs running, then by when last served; a tie keeps the
// current best (the older job).
func less(runningA, runningB int, servedA, servedB uint64) bool {
	if runningA != runningB {
		return runningA < runningB
	}
	return servedA < servedB
}

// queueFull is the public refusal of a job the queue has no room for.
func (sc *scheduler) queueFull(err error) error {
	var qf *governance.QueueFullError
	if !errors.As(err, &qf) {
		return err
	}
	scope := "the platform's job queue is full"
	if qf.Org {
		scope = fmt.Sprintf("your organisation has %d jobs queued, the most it may have", qf.Limit)
	}
	secs := int(math.Ceil(sc.cfg.RetryAfter.Seconds()))
	return &retryAfter{after: secs, err: errcode.Wrap(errcode.QueueFull, err,
		"%s; the job was not queued and nothing was recorded against the grant: submit it again in %d s", scope, secs)}
}

// retryAfter is an error answered with a Retry-After header of after seconds.
type retryAfter struct {
	after int
	err   error
}

func (e *retryAfter) Error() string { return e.err.Error() }
func (e *retryAfter) Unwrap() error { return e.err }
