package engine

import (
	"context"
	"encoding/json"
	"slices"

	"github.com/c1b99f93/cleanroom/engine/gate"
	"github.com/c1b99f93/cleanroom/engine/plan"
	"github.com/c1b99f93/cleanroom/errcode"
	"github.com/c1b99f93/cleanroom/policy/screen"
	"github.com/c1b99f93/cleanroom/sandbox"
	"github.com/c1b99f93/cleanroom/sandbox/wire"
)

// Differencing: two answers on one grant whose filters disagree on a handful of persons give
// those persons' data away by subtraction (SUM over a district, then over the district without
// one birth date). When a query on one dataset is planned, the engine takes every earlier
// filter noted on the grant with the same dataset snapshot and group keys (the query's shape)
// that could pair with this one, and has the worker count, with noise, the privacy units on
// which this filter and the nearest of those disagree: per earlier filter the units on which
// the pair disagrees, and the smallest of these counts. Adding or removing one unit moves each
// count by at most one, hence the minimum too, so the one count has sensitivity 1 and takes one
// share of the job's epsilon however many filters it compares. The output screen flags it
// under the policy's differencing_min_units, and the default policy holds the output for a
// person; a hold says nothing the budget did not pay for.
//
// The filter is noted at admission — in the plan stage, before the job runs — under a lock per
// grant and shape, in the same critical section that reads the earlier filters: of two jobs
// submitted together, the second to be planned is compared with the first, whichever runs
// first. A filter stays noted even if its job is refused later (the note is kept once per
// filter, under the first job that planned it, and another job with the same filter may be
// the one that releases it).
//
// Which earlier filters are compared: the ledger indexes filters by grant and shape
// (computed_filters_by_shape), and every one of them is a candidate except an identical filter
// (answered from the release cache instead) and a filter that provably selects no row this one
// selects (disjoint: both pin one string column to sets of values that do not meet, as
// district = 'A' and district = 'B'; such a pair's difference is their union, which each
// answer's own minimum of units already covers). Nothing is ranked or dropped: decoys do not
// push a partner out. Each candidate is one more condition the worker evaluates on every row,
// so one check compares at most the policy's max_differencing_checks
// (policy.Params.MaxDifferencingChecks; 64 in the shipped bundle) earlier filters; a query with
// more candidates is refused (differencing_limit) before anything is reserved, with the advice
// to group instead of filtering one slice after another.

// filterHistory bounds how many filters of one grant and shape are read; more than the
// policy's max_differencing_checks (at most policy.MaxDifferencingChecksCeiling, well below
// this) candidates refuse the job anyway.
const filterHistory = 10_000

// queryShape names what two queries must share for their filters to be compared: the dataset
// snapshot and the group keys with their public domains. "" for a query over several datasets,
// which is not checked.
func queryShape(q *gate.Query, ds sources) (string, error) {
	if q.Relation != nil {
		return "", nil
	}
	type key struct {
		Expr   *wire.Expr `json:"expr"`
		Domain []string   `json:"domain"`
	}
	keys := []key{}
	for _, k := range q.Keys {
		keys = append(keys, key{k.Expr, k.Domain})
	}
	return canonicalDigest(map[string]any{"snapshot": ds.snapshots()[q.Dataset.Name], "keys": keys})
}

// differencing finds the earlier filters on the grant with this shape that filter must be
// checked against and, unless dryRun, notes filter for the jobs after it — both under the
// lock of (grant, shape), so that two jobs planned at once see each other.
func (e *Engine) differencing(ctx context.Context, grant, shape, job string, f *wire.Expr, ds sources, dryRun bool) ([]plan.Prior, error) {
	if shape == "" || e.policy.Params().DifferencingMinUnits <= 0 {
		return nil, nil
	}
	defer e.lockFingerprint("differencing/" + grant + "/" + shape)()
	priors, err := e.priorsFor(ctx, grant, shape, f, stringColumns(ds))
	if err != nil || dryRun {
		return priors, err
	}
	if err := e.ledger.NoteFilter(ctx, grant, shape, filterText(f), job); err != nil {
		return nil, errcode.Wrap(errcode.Internal, err, "the history of queries on this grant could not be kept; nothing was run")
	}
	return priors, nil
}

// priorsFor returns every earlier filter on the grant with this shape that filter must be
// checked against (see above), oldest first, or differencing_limit when there are more than
// the policy's max_differencing_checks.
//
// Filters are compared, and kept in the ledger, as their IR's canonical JSON (filterText). A
// stored filter that is not such JSON (SQL text noted before the IR) is skipped.
func (e *Engine) priorsFor(ctx context.Context, grant, shape string, f *wire.Expr, strs map[string]bool) ([]plan.Prior, error) {
	filter := filterText(f)
	past, err := e.ledger.Filters(ctx, grant, shape, filterHistory)
	if err != nil {
		return nil, errcode.Wrap(errcode.Internal, err, "the history of queries on this grant is unavailable")
	}
	pins := pinsOf(f, strs)
	var out []plan.Prior
	for _, p := range slices.Backward(past) {
		if p.Filter == filter {
			continue
		}
		prior, ok := parseFilter(p.Filter)
		if !ok || disjoint(pins, pinsOf(prior, strs)) {
			continue
		}
		out = append(out, plan.Prior{Job: p.Job, Filter: prior})
	}
	if limit := e.policy.Params().MaxDifferencingChecks; len(out) > limit {
		return nil, errcode.New(errcode.DifferencingLimit,
			"this query's filter could pair with %d earlier queries on this grant over the same dataset and group keys, and a job's differencing check compares at most %d (each is read against every row); "+
				"ask for the slices in one query instead — GROUP BY the column you filter on, or width_bucket(col, lo, hi, n) for a range — or repeat a filter already used", len(out), limit)
	}
	return out, nil
}

// pins are the values a filter's top-level conjuncts allow for string columns: col = 'v' and
// col IN ('v', …), by column. A row the filter keeps has its column's value in the set.
type pins map[string][]string

func pinsOf(f *wire.Expr, strs map[string]bool) pins {
	out := pins{}
	var walk func(*wire.Expr)
	walk = func(x *wire.Expr) {
		switch {
		case x == nil:
		case x.Kind == wire.KindLogic && x.Op == "and":
			for _, a := range x.Args {
				walk(a)
			}
		case x.Kind == wire.KindCompare && x.Op == "=" && len(x.Args) == 2:
			if col, v, ok := columnString(x.Args[0], x.Args[1], strs); ok {
				out.restrict(col, []string{v})
			} else if col, v, ok := columnString(x.Args[1], x.Args[0], strs); ok {
				out.restrict(col, []string{v})
			}
		case x.Kind == wire.KindIn && !x.Negate && len(x.Args) > 1:
			col := x.Args[0]
			if col.Kind != wire.KindColumn || col.Source != "" || !strs[col.Name] {
				return
			}
			var vs []string
			for _, it := range x.Args[1:] {
				if it.Kind != wire.KindConst || it.Type != wire.TypeVarchar {
					return
				}
				vs = append(vs, it.Value)
			}
			out.restrict(col.Name, vs)
		}
	}
	walk(f)
	return out
}

// restrict intersects the column's allowed values with vs.
func (p pins) restrict(col string, vs []string) {
	old, ok := p[col]
	if !ok {
		p[col] = vs
		return
	}
	p[col] = slices.DeleteFunc(slices.Clone(old), func(v string) bool { return !slices.Contains(vs, v) })
}

func columnString(c, v *wire.Expr, strs map[string]bool) (string, string, bool) {
	if c.Kind != wire.KindColumn || c.Source != "" || !strs[c.Name] || v.Kind != wire.KindConst || v.Type != wire.TypeVarchar {
		return "", "", false
	}
	return c.Name, v.Value, true
}

// disjoint: some string column is pinned by both filters to sets that do not meet, so no row
// is kept by both.
func disjoint(a, b pins) bool {
	for col, va := range a {
		vb, ok := b[col]
		if ok && !slices.ContainsFunc(va, func(v string) bool { return slices.Contains(vb, v) }) {
			return true
		}
	}
	return false
}

// stringColumns are the columns of the query's dataset whose values are strings (compared
// with a string constant exactly, without a cast).
func stringColumns(ds sources) map[string]bool {
	out := map[string]bool{}
	for _, c := range ds.primary().Snapshot.Columns {
		switch c.Type {
		case "utf8", "large_utf8", "string_view":
			out[c.Name] = true
		}
	}
	return out
}

// filterText is how the ledger keeps a filter: its IR's canonical JSON, "" for none.
func filterText(f *wire.Expr) string { return f.Canonical() }

// parseFilter reads a filter the ledger kept (filterText); ok is false for text that is not a
// valid filter's.
func parseFilter(text string) (*wire.Expr, bool) {
	if text == "" {
		return nil, true
	}
	var f *wire.Expr
	if err := json.Unmarshal([]byte(text), &f); err != nil || f.Validate() != nil || f.Canonical() != text {
		return nil, false
	}
	return f, true
}

// executeProbes has the worker count each probe's disagreeing units. It returns each probe's
// single partition state (nil when no row matched) and the bytes the execution record's keyed
// digest covers, so replay can check the checks too. A failure is handled like the main
// execution's (the caller charges it).
func executeProbes(ctx context.Context, w *sandbox.Client, id string, probes []plan.Probe) (states [][]byte, pre []byte, err error) {
	for i := range probes {
		pr := &probes[i]
		pr.Worker.Job = id
		parts, err := w.Execute(ctx, &pr.Worker)
		if err != nil {
			return nil, nil, err
		}
		if len(parts) > 1 {
			return nil, nil, errcode.New(errcode.SandboxFailed, "the worker returned %d partitions for a differencing check", len(parts))
		}
		b, err := preNoiseBytes(&plan.Planned{Worker: pr.Worker}, parts)
		if err != nil {
			return nil, nil, errcode.Wrap(errcode.SandboxFailed, err, "the worker returned states that do not match the differencing check")
		}
		pre = append(append(pre, b...), 0xfc)
		var state []byte
		if len(parts) == 1 {
			state = parts[0].States[0]
		}
		states = append(states, state)
	}
	return states, pre, nil
}

// releaseProbes draws the noise on each probe's count.
func releaseProbes(probes []plan.Probe, states [][]byte) ([]screen.DifferenceProbe, error) {
	var out []screen.DifferenceProbe
	for i, pr := range probes {
		rel, err := pr.Worker.Aggregates[0].Release(states[i])
		if err != nil {
			return nil, errcode.Wrap(errcode.Internal, err, "the DP mechanism failed; nothing was released")
		}
		out = append(out, screen.DifferenceProbe{Against: pr.Against, Candidates: pr.Candidates, Units: rel[0].Value})
	}
	return out, nil
}
