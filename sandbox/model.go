package sandbox

import (
	"context"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/duckdb/duckdb-go/v2"

	"github.com/c1b99f93/cleanroom/dp/model"
	"github.com/c1b99f93/cleanroom/errcode"
	"github.com/c1b99f93/cleanroom/sandbox/sqlgen"
	"github.com/c1b99f93/cleanroom/sandbox/wire"
)

// modelPass runs one pass of a model job (wire.ModelPass) and returns the pre-noise state it
// names. The rows never leave this function: DuckDB evaluates the filter and the values next to
// the data, every value total (an evaluation error is NULL), and a row with a NULL, NaN or
// infinite value is dropped here, before the model sees it — so no data value can make the
// pass fail, and whether a unit has such a row changes nothing but that row's absence. Each
// unit's remaining rows arrive together, ordered by a hash keyed with the job's sampling key
// of the row's values (ties by the values), which depends on the unit's own rows alone; the
// model keeps the first MaxRowsPerUnit of them.
func (w *worker) modelPass(ctx context.Context, p *wire.ModelPass) ([]byte, error) {
	if p.TimeoutMS > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(p.TimeoutMS)*time.Millisecond)
		defer cancel()
	}
	acc, err := newModelAccumulator(p)
	if err != nil {
		return nil, err
	}
	q, err := w.modelSQL(ctx, p)
	if err != nil {
		return nil, err
	}
	d := p.Features()
	err = withArrow(ctx, w.db, func(ar *duckdb.Arrow) error {
		rdr, err := ar.QueryContext(ctx, q)
		if err != nil {
			return err
		}
		defer rdr.Release()
		u := &unitRows{max: p.MaxRowsPerUnit()}
		for rdr.Next() {
			if err := u.addBatch(rdr.RecordBatch(), d, acc); err != nil {
				return err
			}
		}
		if err := rdr.Err(); err != nil {
			return err
		}
		return u.flush(acc)
	})
	if err != nil {
		return nil, classifyExecError(ctx, err)
	}
	return acc.encode(), nil
}

// modelAccumulator is the dp/model state a pass fills: one unit at a time, then encoded.
type modelAccumulator struct {
	addUnit func(rows [][]float64, labels []float64) error
	encode  func() []byte
}

func newModelAccumulator(p *wire.ModelPass) (*modelAccumulator, error) {
	bad := func(what string) (*modelAccumulator, error) {
		return nil, errcode.New(errcode.Internal, "a model pass of kind %q without %s", p.Pass, what)
	}
	if len(p.Values) != p.Features()+1 || p.Features() == 0 {
		return bad("one value per feature and one for the label")
	}
	// Logistic labels are positive from 0.5 up: a condition's 1 and 0, a 0/1 column.
	positive := func(labels []float64) []bool {
		out := make([]bool, len(labels))
		for i, v := range labels {
			out[i] = v >= 0.5
		}
		return out
	}
	switch p.Pass {
	case wire.ModelLinear:
		if p.Linear == nil {
			return bad("a linear spec")
		}
		s, err := model.NewStats(*p.Linear)
		if err != nil {
			return nil, err
		}
		return &modelAccumulator{addUnit: s.AddUnit, encode: s.Encode}, nil
	case wire.ModelGradient, wire.ModelConfusion:
		if p.Logistic == nil || p.Step == nil {
			return bad("a logistic spec and step")
		}
		if p.Pass == wire.ModelGradient {
			g, err := model.NewGradient(*p.Logistic, *p.Step)
			if err != nil {
				return nil, err
			}
			return &modelAccumulator{addUnit: func(r [][]float64, l []float64) error { return g.AddUnit(r, positive(l)) }, encode: g.Encode}, nil
		}
		c, err := model.NewConfusion(*p.Logistic, *p.Step)
		if err != nil {
			return nil, err
		}
		return &modelAccumulator{addUnit: func(r [][]float64, l []float64) error { return c.AddUnit(r, positive(l)) }, encode: c.Encode}, nil
	}
	return bad("a known kind")
}

// modelSQL renders the pass's query: per kept row the normalised unit and the values as DOUBLE,
// rows with a missing or non-finite value left out, in unit order and, within a unit, by the
// keyed hash of the row's values.
func (w *worker) modelSQL(ctx context.Context, p *wire.ModelPass) (string, error) {
	r := &p.Relation
	tables := make([]string, len(r.Sources))
	cols := make([][]wire.Column, len(r.Sources))
	for i, s := range r.Sources {
		src, err := w.loaded(ctx, s.Snapshot)
		if err != nil {
			return "", err
		}
		tables[i], cols[i] = src.table, src.Columns
	}
	sc := relationScope(r, cols)
	from, unit, err := relationFrom(r, tables, p.SamplingKey, sc)
	if err != nil {
		return "", err
	}
	sel := []string{unit + " AS __cr_u"}
	var names, finite []string
	for i, v := range p.Values {
		e, err := sqlgen.Value(v, sc)
		if err != nil {
			return "", errcode.Wrap(errcode.Internal, err, "the model's value %d is not a valid expression over its sources", i+1)
		}
		n := fmt.Sprintf("__cr_v%d", i)
		sel = append(sel, fmt.Sprintf("try(CAST((%s) AS DOUBLE)) AS %s", e, n))
		names = append(names, n)
		finite = append(finite, fmt.Sprintf("isfinite(%s)", n)) // NULL for NULL: not kept
	}
	inner := "SELECT " + strings.Join(sel, ", ") + " FROM " + from
	if p.Filter != nil {
		f, err := sqlgen.Condition(p.Filter, sc)
		if err != nil {
			return "", errcode.Wrap(errcode.Internal, err, "the model's filter is not a valid condition over its sources")
		}
		inner += " WHERE " + f
	}
	vals := strings.Join(names, ", ")
	return fmt.Sprintf("SELECT __cr_u, %[1]s FROM (%[2]s) WHERE %[3]s ORDER BY __cr_u, hash(%[1]s, %[4]d::UBIGINT), %[1]s",
		vals, inner, strings.Join(finite, " AND "), p.SamplingKey), nil
}

// unitRows gathers one unit's rows as the ordered scan delivers them, across batches, and hands
// each complete unit to the accumulator.
type unitRows struct {
	max    int // rows beyond the first max of a unit are never kept: not held either
	unit   string
	open   bool
	rows   [][]float64
	labels []float64
}

// stringValues is what DuckDB's text columns in Arrow (utf8, large utf8, utf8 view) share.
type stringValues interface {
	arrow.Array
	Value(i int) string
}

func (u *unitRows) addBatch(rec arrow.RecordBatch, d int, acc *modelAccumulator) error {
	if int(rec.NumCols()) != d+2 {
		return errcode.New(errcode.Internal, "the model scan returned %d columns, want %d", rec.NumCols(), d+2)
	}
	units, ok := rec.Column(0).(stringValues)
	if !ok {
		return errcode.New(errcode.Internal, "the model scan's unit column is not text")
	}
	vals := make([]*array.Float64, d+1)
	for j := range vals {
		if vals[j], ok = rec.Column(j + 1).(*array.Float64); !ok {
			return errcode.New(errcode.Internal, "the model scan's values are not DOUBLE")
		}
	}
	for i := 0; i < int(rec.NumRows()); i++ {
		if units.IsNull(i) {
			continue // a row without a unit belongs to no one
		}
		if k := units.Value(i); !u.open || k != u.unit {
			if err := u.flush(acc); err != nil {
				return err
			}
			u.unit, u.open = strings.Clone(k), true
		}
		if len(u.rows) >= u.max {
			continue
		}
		row := make([]float64, d)
		ok := true
		for j := range row {
			row[j] = vals[j].Value(i)
			ok = ok && !vals[j].IsNull(i) && !math.IsNaN(row[j]) && !math.IsInf(row[j], 0)
		}
		y := vals[d].Value(i)
		if !ok || vals[d].IsNull(i) || math.IsNaN(y) || math.IsInf(y, 0) || len(u.rows) >= u.max {
			continue // the query left bad rows out already; never hand one to the model
		}
		u.rows = append(u.rows, row)
		u.labels = append(u.labels, y)
	}
	return nil
}

// flush adds the open unit (the model keeps its first MaxRowsPerUnit rows) and starts afresh.
func (u *unitRows) flush(acc *modelAccumulator) error {
	if !u.open {
		return nil
	}
	err := acc.addUnit(u.rows, u.labels)
	u.rows, u.labels, u.open = u.rows[:0], u.labels[:0], false
	return err
}
