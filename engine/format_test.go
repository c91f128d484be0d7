package engine

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/c1b99f93/cleanroom/errcode"
	"github.com/c1b99f93/cleanroom/server/api"
)

func strp(s string) *string { return &s }

// formatFixture has two group keys (one NULL, one empty string, one needing CSV quoting) and two
// aggregates whose floats need exponents, so the layouts' edge cases are all in one place.
func formatFixture(rows bool) *Result {
	r := &Result{Result: api.Result{
		Job: "job-1", Dataset: "claims",
		Columns: []api.ResultCol{
			{Name: "region", Kind: "group_key"}, {Name: "segment", Kind: "group_key"},
			{Name: "n", Kind: "aggregate"}, {Name: "avg_claim", Kind: "aggregate"},
		},
		Spent: api.Budget{Epsilon: 0.75, Delta: 1e-6}, Split: "equal", Bounds: "claim in [0, 10000]", LogIndex: 42,
	}}
	if !rows {
		return r
	}
	n := func(v float64) *api.Released {
		return &api.Released{Value: v, CILow: v - 20.25, CIHigh: v + 20.25, Mechanism: "laplace", Epsilon: 0.5}
	}
	avg := func(v float64) *api.Released {
		return &api.Released{Value: v, CILow: 1e3, CIHigh: 1.5e21, Mechanism: "gaussian", Epsilon: 0.25, Delta: 1e-6}
	}
	r.Rows = [][]api.Cell{
		{{Key: strp("north")}, {Key: strp("retail")}, {DP: n(120.5)}, {DP: avg(1234.5678)}},
		{{Key: strp(`south, "coast"`)}, {Key: nil}, {DP: n(-3)}, {DP: avg(0.1)}},
		{{Key: strp("")}, {Key: strp("business")}, {DP: n(7)}, {DP: avg(5e-324)}},
	}
	return r
}

const csvHeader = "region,segment,n,n_ci_low,n_ci_high,n_mechanism,n_epsilon,n_delta," +
	"avg_claim,avg_claim_ci_low,avg_claim_ci_high,avg_claim_mechanism,avg_claim_epsilon,avg_claim_delta\n"

func TestFormatCSVLayout(t *testing.T) {
	for _, tc := range []struct {
		name string
		res  *Result
		want string
	}{
		{"rows", formatFixture(true), csvHeader +
			"north,retail,120.5,100.25,140.75,laplace,0.5,0,1234.5678,1000,1.5e+21,gaussian,0.25,1e-06\n" +
			// NULL segment and empty region are both empty fields: CSV cannot tell them apart.
			`"south, ""coast""",,-3,-23.25,17.25,laplace,0.5,0,0.1,1000,1.5e+21,gaussian,0.25,1e-06` + "\n" +
			",business,7,-13.25,27.25,laplace,0.5,0,5e-324,1000,1.5e+21,gaussian,0.25,1e-06\n"},
		{"empty", formatFixture(false), csvHeader},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := tc.res.WriteCSV(&buf); err != nil {
				t.Fatal(err)
			}
			if got := buf.String(); got != tc.want {
				t.Errorf("csv:\n%s\nwant:\n%s", got, tc.want)
			}
		})
	}
}

func TestFormatArrowRoundTripsEveryValue(t *testing.T) {
	wantMeta := map[string]string{
		"cleanroom.job": "job-1", "cleanroom.dataset": "claims", "cleanroom.spent_epsilon": "0.75",
		"cleanroom.spent_delta": "1e-06", "cleanroom.budget_split": "equal",
		"cleanroom.bounds": "claim in [0, 10000]", "cleanroom.log_index": "42",
	}
	for _, tc := range []struct {
		name string
		res  *Result
	}{
		{"rows", formatFixture(true)},
		{"empty", formatFixture(false)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)

			var buf bytes.Buffer
			if err := tc.res.writeArrow(&buf, mem); err != nil {
				t.Fatal(err)
			}
			rd, err := ipc.NewReader(&buf, ipc.WithAllocator(mem))
			if err != nil {
				t.Fatal(err)
			}
			defer rd.Release()

			sch := rd.Schema()
			if got := sch.Metadata().ToMap(); !reflect.DeepEqual(got, wantMeta) {
				t.Errorf("metadata = %v, want %v", got, wantMeta)
			}
			wantFields := []arrow.Field{
				{Name: "region", Type: arrow.BinaryTypes.String, Nullable: true},
				{Name: "segment", Type: arrow.BinaryTypes.String, Nullable: true},
			}
			for _, agg := range []string{"n", "avg_claim"} {
				for _, p := range []string{"", "_ci_low", "_ci_high"} {
					wantFields = append(wantFields, arrow.Field{Name: agg + p, Type: arrow.PrimitiveTypes.Float64})
				}
				wantFields = append(wantFields,
					arrow.Field{Name: agg + "_mechanism", Type: arrow.BinaryTypes.String},
					arrow.Field{Name: agg + "_epsilon", Type: arrow.PrimitiveTypes.Float64},
					arrow.Field{Name: agg + "_delta", Type: arrow.PrimitiveTypes.Float64})
			}
			if got := sch.Fields(); !reflect.DeepEqual(got, wantFields) {
				t.Fatalf("fields = %v\nwant %v", got, wantFields)
			}

			// Exactly one batch, even for no rows, so readers see one shape.
			if !rd.Next() {
				t.Fatalf("no record batch: %v", rd.Err())
			}
			rec := rd.RecordBatch()
			if int(rec.NumRows()) != len(tc.res.Rows) {
				t.Fatalf("rows = %d, want %d", rec.NumRows(), len(tc.res.Rows))
			}
			for i, row := range tc.res.Rows {
				for k := range 2 {
					col := rec.Column(k).(*array.String)
					if want := row[k].Key; want == nil {
						if !col.IsNull(i) {
							t.Errorf("row %d %s = %q, want NULL", i, sch.Field(k).Name, col.Value(i))
						}
					} else if col.IsNull(i) || col.Value(i) != *want {
						t.Errorf("row %d %s = %q (null %v), want %q", i, sch.Field(k).Name, col.Value(i), col.IsNull(i), *want)
					}
				}
				for a := range 2 {
					d, base := row[2+a].DP, 2+6*a
					if got := rec.Column(base + 3).(*array.String).Value(i); got != d.Mechanism {
						t.Errorf("row %d %s = %q, want %q", i, sch.Field(base+3).Name, got, d.Mechanism)
					}
					for j, want := range map[int]float64{0: d.Value, 1: d.CILow, 2: d.CIHigh, 4: d.Epsilon, 5: d.Delta} {
						if got := rec.Column(base + j).(*array.Float64).Value(i); got != want {
							t.Errorf("row %d %s = %v, want %v", i, sch.Field(base+j).Name, got, want)
						}
					}
				}
			}
			if rd.Next() {
				t.Error("more than one record batch")
			}
			if err := rd.Err(); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestFormatWriteDispatchesEveryFormat(t *testing.T) {
	for _, res := range []*Result{formatFixture(true), formatFixture(false)} {
		for _, format := range Formats() {
			var got, want bytes.Buffer
			if err := res.Write(&got, format); err != nil {
				t.Fatalf("%s with %d rows: %v", format, len(res.Rows), err)
			}
			var err error
			switch format {
			case FormatJSON:
				var back Result
				if err := json.Unmarshal(got.Bytes(), &back); err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(&back, res) {
					t.Errorf("json with %d rows does not round-trip:\n%s", len(res.Rows), got.String())
				}
				continue
			case FormatCSV:
				err = res.WriteCSV(&want)
			case FormatArrow:
				err = res.WriteArrow(&want)
			}
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got.Bytes(), want.Bytes()) {
				t.Errorf("Write(%q) differs from its direct writer", format)
			}
		}
	}
}

func TestFormatRefusesUnwritableResults(t *testing.T) {
	collide := formatFixture(true)
	collide.Columns[0].Name = "n_ci_low" // a key named like the expansion of aggregate n
	short := formatFixture(true)
	short.Rows[1] = short.Rows[1][:3]
	noValue := formatFixture(true)
	noValue.Rows[2][3].DP = nil

	for _, tc := range []struct {
		name, format string
		res          *Result
		code         errcode.Code
	}{
		{"unknown format", "xml", formatFixture(true), errcode.InvalidOptions},
		{"empty format", "", formatFixture(false), errcode.InvalidOptions},
		{"format names are exact", "CSV", formatFixture(true), errcode.InvalidOptions},
		{"colliding names in csv", FormatCSV, collide, errcode.InvalidOptions},
		{"colliding names in arrow", FormatArrow, collide, errcode.InvalidOptions},
		{"short row", FormatCSV, short, errcode.Internal},
		{"aggregate without value", FormatArrow, noValue, errcode.Internal},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			err := tc.res.Write(&buf, tc.format)
			if got := errcode.Of(err); got != tc.code {
				t.Errorf("code = %q (%v), want %q", got, err, tc.code)
			}
			// A refused result writes nothing, so no caller streams half a file.
			if buf.Len() != 0 {
				t.Errorf("wrote %d bytes before refusing", buf.Len())
			}
		})
	}
}
