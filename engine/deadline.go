package engine

import (
	"math"
	"math/bits"
	"time"

	"github.com/c1b99f93/cleanroom/engine/plan"
)

// A job's deadline follows from the work its plan may do, not from a flat minute: a one-line
// count over a small table is cut off in seconds, and only a plan that may read many rows
// gets the full limit. Each worker call of the job (the execution, each differencing check,
// each pass that chooses bounds) gets
//
//	deadline = clamp(DeadlineBase + rows × DeadlinePerRow, DeadlineMin, DeadlineMax)
//	rows     = Σ_i R_i + [k > 1] · R_1 · m^(k−1)
//
// where R_i is the row count of the i-th of the k datasets the plan reads, rounded up to a
// power of two (the exact count is provider metadata and is not shown to applicants; the
// rounding keeps one person's rows from moving a deadline except at a power of two), and m is
// the rows each privacy unit keeps of each dataset before a join (Relation.MaxRowsPerUnit, or
// the largest the automatic bounds may choose): a join on the unit key yields at most R_1 ·
// m^(k−1) rows. The constants are set from DESIGN's measurements (a bounded pass over 1e7
// rows took 1.0–1.8 s as SQL, so 1 µs a row leaves room for a loaded machine) with a floor
// that covers a worker's start-up. The differencing check evaluates each of its k conditions
// on every row, so its rows count ⌈k/8⌉ times. A job's options may set the deadline explicitly
// (engine callers and tests; the API does not expose it).
const (
	DeadlineBase   = time.Second
	DeadlinePerRow = time.Microsecond
	DeadlineMin    = 10 * time.Second
	DeadlineMax    = 60 * time.Second
)

// planDeadline is the deadline of each worker call of p over ds (the formula above).
func planDeadline(ds sources, p *plan.Planned) time.Duration { return deadlineFor(planRows(ds, p)) }

// checkDeadline is the deadline of a differencing check of k conditions over the rows of ds.
func checkDeadline(ds sources, p *plan.Planned, k int) time.Duration {
	return deadlineFor(planRows(ds, p) * math.Ceil(float64(max(k, 1))/8))
}

func deadlineFor(rows float64) time.Duration {
	d := float64(DeadlineBase) + rows*float64(DeadlinePerRow)
	return time.Duration(min(max(d, float64(DeadlineMin)), float64(DeadlineMax)))
}

// planRows is the rows term of the formula above.
func planRows(ds sources, p *plan.Planned) float64 {
	rows := 0.0
	for _, d := range ds {
		rows += float64(roundPow2(d.Snapshot.Rows))
	}
	if r := p.Worker.Relation; r != nil && len(ds) > 1 {
		m := r.MaxRowsPerUnit
		if a := p.Auto; a != nil {
			m = max(m, a.MaxGroups*a.MaxRows)
		}
		if m <= 0 {
			return math.Inf(1) // nothing bounds the join: the longest deadline
		}
		rows += float64(roundPow2(ds[0].Snapshot.Rows)) * math.Pow(float64(m), float64(len(ds)-1))
	}
	return rows
}

// roundPow2 rounds n up to a power of two (0 and 1 stay).
func roundPow2(n int64) int64 {
	if n <= 1 {
		return max(n, 0)
	}
	if n > 1<<62 {
		return 1 << 62
	}
	return 1 << bits.Len64(uint64(n-1))
}

// setDeadline gives every worker call of p the plan's deadline, unless the job's options set
// one.
func setDeadline(j Job, ds sources, p *plan.Planned) {
	if j.Options.TimeoutMS != 0 {
		return
	}
	p.Worker.TimeoutMS = planDeadline(ds, p).Milliseconds()
	for i := range p.Probes {
		p.Probes[i].Worker.TimeoutMS = checkDeadline(ds, p, len(p.Probes[i].Worker.Differences)).Milliseconds()
	}
}
