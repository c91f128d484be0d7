package engine

import (
	"github.com/c1b99f93/cleanroom/engine/gate"
	"github.com/c1b99f93/cleanroom/policy"
	"github.com/c1b99f93/cleanroom/policy/screen"
)

// resultOutput shows a SQL result to the output screen: every value that would leave — group
// keys, released values and both ends of their intervals (as columns of their own, with the
// aggregate's lineage) — and its size as released.
type resultOutput struct {
	res   *Result
	cols  []screen.Column
	src   []int // result column behind each screen column
	part  []int // 0 value or key, 1 interval low, 2 interval high
	bytes int
}

var _ screen.Output = (*resultOutput)(nil)

// newResultOutput takes the lineage and size from the egress summary of res, and each group
// key's origin from the admitted query q (keyOrigin).
func newResultOutput(summary policy.Output, q *gate.Query, res *Result) *resultOutput {
	o := &resultOutput{res: res, bytes: summary.Bytes}
	for i, c := range summary.Columns {
		col := screen.Column{Name: c.Name, Kind: c.Kind, DerivedFrom: c.DerivedFrom}
		if i < len(q.Outputs) && q.Outputs[i].Key >= 0 {
			col.Origin = keyOrigin(q.Keys[q.Outputs[i].Key])
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

// keyOrigin says where a group key's values come from: a public domain (the catalog's, or
// one the SQL enumerates), the query itself (a literal reaches them), or the data through DP
// partition selection. Only the last are looked up in the raw-value set: a lookup of a string
// the applicant wrote would tell whether some raw record holds it.
func keyOrigin(k gate.Key) screen.Origin {
	switch {
	case k.Domain != nil:
		return screen.OriginPublic
	case k.Written:
		return screen.OriginQuery
	}
	return screen.OriginData
}

func (o *resultOutput) Columns() []screen.Column { return o.cols }
func (o *resultOutput) Rows() int                { return len(o.res.Rows) }
func (o *resultOutput) Bytes() int               { return o.bytes }
func (o *resultOutput) UnitCounts() []float64    { return o.res.units }
func (o *resultOutput) Errors() []string         { return nil }

func (o *resultOutput) Cell(row, col int) screen.Value {
	c := o.res.Rows[row][o.src[col]]
	if d := c.Derived; d != nil {
		v := map[int]*float64{0: d.Value, 1: d.CILow, 2: d.CIHigh}[o.part[col]]
		if v == nil {
			return screen.Value{}
		}
		return screen.Noisy(*v) // post-processed from released numbers only
	}
	switch {
	case c.Key != nil:
		return screen.Str(*c.Key)
	case c.DP == nil:
		return screen.Value{}
	case o.part[col] == 1:
		return screen.Noisy(c.DP.CILow)
	case o.part[col] == 2:
		return screen.Noisy(c.DP.CIHigh)
	}
	return screen.Noisy(c.DP.Value)
}
