package engine

import (
	"context"
	"math"
	"path/filepath"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/c1b99f93/cleanroom/catalog"
	"github.com/c1b99f93/cleanroom/connectors"
)

// TestVisit is one row of the committed medical_visits source as the accuracy tests read it
// for their truth, outside the engine.
type TestVisit struct {
	Person, District, Diagnosis string
	Month                       string  // yyyy-mm of visit_date
	Cost                        float64 // NaN for NULL
}

// ReadTestVisits reads every row of the committed medical_visits source (spec's path)
// directly with the connector, never through the engine: the truth of a test.
func ReadTestVisits(t testing.TB, spec *catalog.Spec) []TestVisit {
	t.Helper()
	rdr, err := connectors.Open(context.Background(), connectors.KindParquet, spec.Source.Path, connectors.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer rdr.Release()
	idx := func(name string) int {
		i := rdr.Schema().FieldIndices(name)
		if len(i) != 1 {
			t.Fatalf("medical_visits has no column %s", name)
		}
		return i[0]
	}
	str := func(a arrow.Array, i int) string {
		if !a.IsValid(i) {
			return ""
		}
		switch c := a.(type) {
		case *array.String:
			return c.Value(i)
		case *array.LargeString:
			return c.Value(i)
		}
		return a.ValueStr(i)
	}
	num := func(a arrow.Array, i int) float64 {
		if !a.IsValid(i) {
			return math.NaN()
		}
		switch c := a.(type) {
		case *array.Float64:
			return c.Value(i)
		case *array.Int64:
			return float64(c.Value(i))
		case *array.Int32:
			return float64(c.Value(i))
		}
		t.Fatalf("cost has type %s", a.DataType())
		return 0
	}
	month := func(a arrow.Array, i int) string {
		switch c := a.(type) {
		case *array.Date32:
			return c.Value(i).ToTime().Format("2006-01")
		case *array.Timestamp:
			return time.UnixMicro(int64(c.Value(i))).UTC().Format("2006-01")
		}
		return a.ValueStr(i)[:7]
	}
	pi, di, gi, vi, ci := idx("person_id"), idx("district"), idx("diagnosis"), idx("visit_date"), idx("cost")
	var out []TestVisit
	for rdr.Next() {
		rec := rdr.RecordBatch()
		for i := range int(rec.NumRows()) {
			out = append(out, TestVisit{Person: str(rec.Column(pi), i), District: str(rec.Column(di), i),
				Diagnosis: str(rec.Column(gi), i), Month: month(rec.Column(vi), i), Cost: num(rec.Column(ci), i)})
		}
	}
	if err := rdr.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// openTestdataEngine opens an engine (closed when the test ends) with the committed dataset
// name registered.
func openTestdataEngine(t *testing.T, name string) (*Engine, *catalog.Spec, *Dataset) {
	t.Helper()
	ctx := context.Background()
	e, err := Open(ctx, Config{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	spec, err := catalog.LoadFile(filepath.Join("..", "testdata", "datasets", name+".yaml"))
	if err != nil {
		t.Fatal(err)
	}
	ds, err := e.RegisterDataset(ctx, spec, openTestSource(t, spec.Source.Path))
	if err != nil {
		t.Fatal(err)
	}
	return e, spec, ds
}
