package sandbox

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/c1b99f93/cleanroom/dp"
	"github.com/c1b99f93/cleanroom/errcode"
	"github.com/c1b99f93/cleanroom/sandbox/sqlgen"
	"github.com/c1b99f93/cleanroom/sandbox/wire"
)

// MaxDifferences bounds the conditions one differencing check compares (wire.Plan.Differences):
// each is one more aggregate over every unit of the snapshot.
const MaxDifferences = 1000

// differences runs a differencing check (wire.Plan.Differences): per condition, the privacy
// units with a row on which it holds; the smallest of these counts becomes the pre-noise state
// of the plan's one count. The counts themselves never leave the worker.
func (w *worker) differences(ctx context.Context, p *wire.Plan) ([]byte, error) {
	if err := differenceShape(p); err != nil {
		return nil, err
	}
	if p.TimeoutMS > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(p.TimeoutMS)*time.Millisecond)
		defer cancel()
	}
	snap, err := w.loaded(ctx, p.Snapshot)
	if err != nil {
		return nil, err
	}
	sc := columnScope(snap.Columns)
	flags := make([]string, len(p.Differences))
	counts := make([]string, len(p.Differences))
	for i, d := range p.Differences {
		c, err := sqlgen.Condition(d, sc)
		if err != nil {
			return nil, errcode.Wrap(errcode.Internal, err, "the differencing check's condition %d is not a valid condition over the scanned columns", i+1)
		}
		flags[i] = fmt.Sprintf("bool_or(%s) AS d%d", c, i)
		counts[i] = fmt.Sprintf("count(*) FILTER (WHERE d%d)", i)
	}
	q := fmt.Sprintf("SELECT %s FROM (SELECT %s FROM %s GROUP BY %s)",
		strings.Join(counts, ", "), strings.Join(flags, ", "), snap.table, unitColumn)
	got := make([]int64, len(p.Differences))
	dest := make([]any, len(got))
	for i := range got {
		dest[i] = &got[i]
	}
	if err := w.db.QueryRowContext(ctx, q).Scan(dest...); err != nil {
		return nil, classifyExecError(ctx, err)
	}
	nearest := got[0]
	for _, n := range got[1:] {
		nearest = min(nearest, n)
	}
	acc, err := p.Aggregates[0].NewAccumulator(snap.Units)
	if err != nil {
		return nil, err
	}
	for range nearest {
		if err := acc.AddUnit(1, nil); err != nil {
			return nil, err
		}
	}
	b := newBoundPass(p, 0, 0, snap.Units, nil)
	b.parts = []*partState{{accs: []dp.Accumulator{acc}}}
	return encodePartitions(b)
}

// differenceShape refuses a differencing check whose plan is not the one shape whose
// sensitivity the check's noise assumes.
func differenceShape(p *wire.Plan) error {
	one := len(p.Aggregates) == 1 && p.Aggregates[0].Kind == dp.CountDistinct &&
		p.Aggregates[0].MaxPartitions == 1 && p.Aggregates[0].MaxPerPartition == 1 && p.Aggregates[0].Value == -1
	plain := p.Relation == nil && p.Filter == nil && len(p.Keys) == 0 && len(p.Values) == 0 &&
		p.Selection == nil && len(p.Domains) == 0 && p.Profile == nil && p.Bias == nil &&
		p.Bounds.MaxGroupsContributed == 1 && p.Bounds.MaxContributionsPerGroup == 1
	switch {
	case !one || !plain:
		return errcode.New(errcode.Internal, "a differencing check must be one count of units over one partition, with nothing else in its plan")
	case len(p.Differences) > MaxDifferences:
		return errcode.New(errcode.InvalidOptions, "a differencing check compares at most %d conditions", MaxDifferences)
	}
	for i, d := range p.Differences {
		if d == nil {
			return errcode.New(errcode.Internal, "the differencing check's condition %d is missing", i+1)
		}
	}
	return nil
}
