package engine

import (
	"context"
	"encoding/json"
	"slices"
	"strings"

	"github.com/c1b99f93/cleanroom/engine/gate"
	"github.com/c1b99f93/cleanroom/engine/plan"
	"github.com/c1b99f93/cleanroom/errcode"
	"github.com/c1b99f93/cleanroom/policy/screen"
	"github.com/c1b99f93/cleanroom/sandbox"
	"github.com/c1b99f93/cleanroom/sandbox/wire"
)

// Differencing: two answers on one grant whose filters disagree on a handful of persons give
// those persons' data away by subtraction (SUM over a district, then over the district without
// one birth date). Before a query on one dataset runs, the engine takes the earlier filters
// computed on the grant with the same dataset snapshot and group keys, keeps the few most
// like this one's, and has the worker count, with noise, the privacy units on which each
// pair disagrees. The output screen flags a pair under the policy's differencing_min_units, and
// the default policy holds the output for a person. The counts are DP (each takes a share of
// the job's epsilon), so a hold says nothing the budget did not pay for.

const (
	// maxProbes is how many earlier filters a query is checked against; each takes a share
	// of its budget.
	maxProbes = 3
	// filterHistory is how many of the newest earlier filters are ranked.
	filterHistory = 500
)

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

// priorsFor returns the earlier filters on the grant with this shape to check filter against:
// those that contain this filter or are contained in it first (the usual form of a
// differencing pair, "F" and "F AND NOT (…)"; a tracker's "C OR T" and "T"), then by the
// length of their common prefix, then the newest.
//
// Filters are compared, and kept in the ledger, as their IR's canonical JSON (filterText): a
// subtree's JSON is a substring of its parent's, so containment of text is containment of
// trees. A stored filter that is not such JSON (SQL text noted before the IR) is skipped.
func (e *Engine) priorsFor(ctx context.Context, grant, shape string, f *wire.Expr) ([]plan.Prior, error) {
	filter := filterText(f)
	if shape == "" || e.policy.Params().DifferencingMinUnits <= 0 {
		return nil, nil
	}
	past, err := e.ledger.Filters(ctx, grant, shape, filterHistory)
	if err != nil {
		return nil, errcode.Wrap(errcode.Internal, err, "the history of queries on this grant is unavailable")
	}
	type ranked struct {
		plan.Prior
		contains, prefix, age int
	}
	var rs []ranked
	for age, f := range past {
		if f.Filter == filter {
			continue
		}
		prior, ok := parseFilter(f.Filter)
		if !ok {
			continue
		}
		r := ranked{Prior: plan.Prior{Job: f.Job, Filter: prior}, age: age, prefix: commonPrefix(f.Filter, filter)}
		if strings.Contains(filter, f.Filter) || strings.Contains(f.Filter, filter) {
			r.contains = 1
		}
		rs = append(rs, r)
	}
	slices.SortStableFunc(rs, func(a, b ranked) int {
		if a.contains != b.contains {
			return b.contains - a.contains
		}
		if a.prefix != b.prefix {
			return b.prefix - a.prefix
		}
		return a.age - b.age
	})
	var out []plan.Prior
	for _, r := range rs[:min(len(rs), maxProbes)] {
		out = append(out, r.Prior)
	}
	return out, nil
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

func commonPrefix(a, b string) int {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return n
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
		out = append(out, screen.DifferenceProbe{Against: pr.Against, Units: rel[0].Value})
	}
	return out, nil
}
