package engine

import (
	"context"
	"math"
	"slices"

	"github.com/c1b99f93/cleanroom/engine/gate"
	"github.com/c1b99f93/cleanroom/engine/post"
	"github.com/c1b99f93/cleanroom/errcode"
	"github.com/c1b99f93/cleanroom/policy"
	"github.com/c1b99f93/cleanroom/policy/screen"
	"github.com/c1b99f93/cleanroom/server/api"
)

// Post-processing runs on the released rows that survived withholding: it reads noisy values,
// their intervals and public keys only, so it costs no budget and leaks nothing more. A query
// with a post-processing program (gate.Query.Post: HAVING, arithmetic between aggregates,
// windows over outputs, the outer query of a WITH over a DP query) has its columns derived
// first; the output screen then looks at the derived output too — what is actually released —
// and its findings join the first screen's. ORDER BY, OFFSET and LIMIT come last.

// postProcessRelease runs the screen stage's post-processing on the job's result.
func (e *Engine) postProcessRelease(ctx context.Context, s *jobState) error {
	if s.q.Post != nil {
		base := s.summary
		if err := derive(s.q, s.res); err != nil {
			return errcode.Wrap(errcode.Internal, err, "the released rows could not be post-processed; nothing was released")
		}
		s.summary = derivedSummary(base, s.q, s.res)
		sc, err := e.jobScreener(ctx, s.ds, s.p, s.res.probes)
		if err != nil {
			return err
		}
		again := sc.Screen(ctx, newDerivedOutput(s.summary, s.q, s.res))
		for _, f := range again.Findings {
			if !slices.Contains(s.screening.Findings, f) {
				s.screening.Findings = append(s.screening.Findings, f)
			}
		}
	}
	postProcess(s.q, s.res)
	return nil
}

// derive replaces the result's columns and rows by the program's: each released row the
// program keeps, with its cells passed through (the released cell itself) or derived. Each
// row keeps its unit count.
func derive(q *gate.Query, res *Result) error {
	p := q.Post
	in := make([][]post.Value, len(res.Rows))
	for i, row := range res.Rows {
		vals := make([]post.Value, len(row))
		for j, c := range row {
			switch {
			case c.Key != nil:
				vals[j] = post.Text(*c.Key)
			case c.DP != nil:
				vals[j] = post.Number(c.DP.Value, c.DP.CILow, c.DP.CIHigh)
			default:
				vals[j] = post.Null()
			}
		}
		in[i] = vals
	}
	out, err := post.Eval(p, in)
	if err != nil {
		return err
	}
	// Each step's expressions read the names of the columns before it.
	names := make([]string, len(q.Outputs))
	for i, o := range q.Outputs {
		names[i] = o.Name
	}
	for k := 0; k < len(p.Steps)-1; k++ {
		next := make([]string, len(p.Steps[k].Columns))
		for j, c := range p.Steps[k].Columns {
			next[j] = c.Name
		}
		names = next
	}
	last := len(p.Steps) - 1
	final := q.FinalColumns()
	cols := make([]api.ResultCol, len(final))
	for j, name := range final {
		if b := p.Passthrough(j); b >= 0 {
			cols[j] = api.ResultCol{Name: name, Kind: res.Columns[b].Kind}
			continue
		}
		cols[j] = api.ResultCol{Name: name, Kind: "derived", Expression: p.Format(last, j, names)}
	}
	rows := make([][]api.Cell, len(out))
	var units []float64
	if res.units != nil {
		units = make([]float64, len(out))
	}
	for i, r := range out {
		cells := make([]api.Cell, len(r.Values))
		for j, v := range r.Values {
			switch {
			case v.Ref >= 0:
				cells[j] = res.Rows[r.Source][v.Ref]
			case v.Kind == post.KindNumber || v.Kind == post.KindNull:
				cells[j] = api.Cell{Derived: derivedCell(v)}
			default:
				return errcode.New(errcode.Internal, "a post-processed column is neither released nor a number")
			}
		}
		rows[i] = cells
		if units != nil {
			units[i] = res.units[r.Source]
		}
	}
	res.Columns, res.Rows, res.units = cols, rows, units
	return nil
}

// derivedCell is a derived number with its interval; NULL has no value and no interval, and an
// unbounded end is null. Nothing here is NaN or infinite.
func derivedCell(v post.Value) *api.Derived {
	d := &api.Derived{Mechanism: api.MechanismPostProcessing}
	if v.Kind != post.KindNumber || math.IsNaN(v.Num) || math.IsInf(v.Num, 0) {
		return d
	}
	d.Value = ptr(v.Num)
	if !math.IsInf(v.Lo, 0) && !math.IsNaN(v.Lo) {
		d.CILow = ptr(v.Lo)
	}
	if !math.IsInf(v.Hi, 0) && !math.IsNaN(v.Hi) {
		d.CIHigh = ptr(v.Hi)
	}
	return d
}

// derivedSummary is the egress summary of the derived output: a passed-through column keeps its
// lineage; a derived one is an aggregate ("post_processing") over the lineage of the released
// columns it reads, with their lineage carried over whole, so the egress policy sees every
// column and usage a derived value depends on (it allows a post-processed count of units or
// of rows where an identifier is present, as it allows the count itself).
func derivedSummary(base policy.Output, q *gate.Query, res *Result) policy.Output {
	out := base
	out.Columns = nil
	for j, c := range res.Columns {
		if b := q.Post.Passthrough(j); b >= 0 {
			oc := base.Columns[b]
			oc.Name = c.Name
			out.Columns = append(out.Columns, oc)
			continue
		}
		oc := policy.OutputColumn{Name: c.Name, Kind: policy.KindAggregate, Aggregate: api.MechanismPostProcessing, DerivedFrom: []policy.ColumnUse{}}
		for _, b := range q.Post.Reads(j) {
			for _, u := range base.Columns[b].DerivedFrom {
				if !slices.ContainsFunc(oc.DerivedFrom, func(x policy.ColumnUse) bool {
					return x.Dataset == u.Dataset && x.Column == u.Column && x.Usage == u.Usage
				}) {
					oc.DerivedFrom = append(oc.DerivedFrom, u)
				}
			}
		}
		out.Columns = append(out.Columns, oc)
	}
	return out
}

// newDerivedOutput shows the derived output to the output screen, as newResultOutput shows the
// released one: every value that would leave, the intervals' ends as columns of their own.
func newDerivedOutput(summary policy.Output, q *gate.Query, res *Result) *resultOutput {
	o := &resultOutput{res: res, bytes: summary.Bytes}
	for i, c := range summary.Columns {
		col := screen.Column{Name: c.Name, Kind: c.Kind, DerivedFrom: c.DerivedFrom}
		if b := q.Post.Passthrough(i); b >= 0 && q.Outputs[b].Key >= 0 {
			col.Origin = keyOrigin(q.Keys[q.Outputs[b].Key])
		}
		o.cols = append(o.cols, col)
		o.src, o.part = append(o.src, i), append(o.part, 0)
		if c.Kind == screen.KindAggregate {
			o.cols = append(o.cols, screen.Column{Name: c.Name + "_ci_low", Kind: c.Kind, DerivedFrom: c.DerivedFrom},
				screen.Column{Name: c.Name + "_ci_high", Kind: c.Kind, DerivedFrom: c.DerivedFrom})
			o.src, o.part = append(o.src, i, i), append(o.part, 1, 2)
		}
	}
	return o
}
