package engine

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/c1b99f93/cleanroom/errcode"
	"github.com/c1b99f93/cleanroom/server/api"
)

// Output formats of a released result. JSON is the Result itself; CSV and Arrow use the flat
// layout described on WriteCSV, so a spreadsheet, pandas or DuckDB can read them without
// knowing our types.
const (
	FormatJSON  = "json"
	FormatCSV   = "csv"
	FormatArrow = "arrow"
)

// Formats returns the supported output formats, for flag help and validation. The slice is
// fresh on every call so no caller can change what another sees.
func Formats() []string { return []string{FormatJSON, FormatCSV, FormatArrow} }

// Write writes r in format, one of Formats. An unknown format is refused with code
// invalid_options before anything is written.
func (r *Result) Write(w io.Writer, format string) error {
	switch format {
	case FormatJSON:
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	case FormatCSV:
		return r.WriteCSV(w)
	case FormatArrow:
		return r.WriteArrow(w)
	}
	// The requested name is not echoed: public messages are built from fixed text only.
	return errcode.New(errcode.InvalidOptions, "unknown output format; want one of %s", strings.Join(Formats(), ", "))
}

// aggregateParts are the flat columns of one aggregate, as suffixes of its name, in the order
// flatRow emits them. The value keeps the bare name so the number the SQL asked for sits under
// the name the SQL gave it.
var aggregateParts = []struct {
	suffix string
	typ    arrow.DataType
}{
	{"", arrow.PrimitiveTypes.Float64},
	{"_ci_low", arrow.PrimitiveTypes.Float64},
	{"_ci_high", arrow.PrimitiveTypes.Float64},
	{"_mechanism", arrow.BinaryTypes.String},
	{"_epsilon", arrow.PrimitiveTypes.Float64},
	{"_delta", arrow.PrimitiveTypes.Float64},
}

// flatFields returns the flat layout shared by CSV and Arrow, after checking that every row
// matches the columns so the writers can index cells without further checks. It refuses names
// that collide once aggregates are expanded (a key "n_ci_low" beside an aggregate "n"): a
// reader addressing columns by name would silently get the wrong one.
func (r *Result) flatFields() ([]arrow.Field, error) {
	var fields []arrow.Field
	seen := map[string]bool{}
	for _, c := range r.Columns {
		var add []arrow.Field
		switch c.Kind {
		case "group_key":
			add = []arrow.Field{{Name: c.Name, Type: arrow.BinaryTypes.String, Nullable: true}}
		case "aggregate":
			for _, p := range aggregateParts {
				add = append(add, arrow.Field{Name: c.Name + p.suffix, Type: p.typ})
			}
		case "derived":
			// A value computed after release: nullable (undefined, or an unbounded end).
			for _, p := range aggregateParts[:4] {
				add = append(add, arrow.Field{Name: c.Name + p.suffix, Type: p.typ, Nullable: p.typ != arrow.BinaryTypes.String})
			}
		default:
			return nil, errcode.New(errcode.Internal, "result column %q has an unknown kind", c.Name)
		}
		for _, f := range add {
			if seen[f.Name] {
				return nil, errcode.New(errcode.InvalidOptions,
					"output column %q appears twice in the csv and arrow layout; rename a column with AS or use json", f.Name)
			}
			seen[f.Name] = true
		}
		fields = append(fields, add...)
	}
	for _, row := range r.Rows {
		if len(row) != len(r.Columns) {
			return nil, errcode.New(errcode.Internal, "a result row does not match the result's columns")
		}
		for i, c := range r.Columns {
			if c.Kind == "aggregate" && row[i].DP == nil || c.Kind == "derived" && row[i].Derived == nil {
				return nil, errcode.New(errcode.Internal, "result column %q has a cell without a released value", c.Name)
			}
		}
	}
	return fields, nil
}

// flatRow appends row in the flat layout to out: a *string per group key (nil is NULL), then
// per aggregate float64s and the mechanism string in aggregateParts order.
func flatRow(cols []api.ResultCol, row []api.Cell, out []any) []any {
	for i, c := range cols {
		if c.Kind == "group_key" {
			out = append(out, row[i].Key)
			continue
		}
		if c.Kind == "derived" {
			d := row[i].Derived
			out = append(out, d.Value, d.CILow, d.CIHigh, d.Mechanism)
			continue
		}
		d := row[i].DP
		out = append(out, d.Value, d.CILow, d.CIHigh, d.Mechanism, d.Epsilon, d.Delta)
	}
	return out
}

// formatFloat is the shortest text that parses back to the same float64.
func formatFloat(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

// WriteCSV writes r as CSV: a header row, then one record per row. A group key is one column
// under its name; an aggregate x is six: x, x_ci_low, x_ci_high, x_mechanism, x_epsilon,
// x_delta. Floats are written in the shortest form that parses back exactly.
//
// CSV has no NULL: a NULL key and an empty-string key are both an empty field. Use JSON or
// Arrow when the difference matters. Values are written verbatim (no spreadsheet-formula
// escaping) so the file round-trips. The job, budget and log index are not in the CSV; they
// are in the JSON and in the Arrow schema metadata.
func (r *Result) WriteCSV(w io.Writer) error {
	fields, err := r.flatFields()
	if err != nil {
		return err
	}
	cw := csv.NewWriter(w)
	rec := make([]string, len(fields))
	for i, f := range fields {
		rec[i] = f.Name
	}
	if err := cw.Write(rec); err != nil {
		return err
	}
	vals := make([]any, 0, len(fields))
	for _, row := range r.Rows {
		vals = flatRow(r.Columns, row, vals[:0])
		for i, v := range vals {
			switch v := v.(type) {
			case *string:
				rec[i] = ""
				if v != nil {
					rec[i] = *v
				}
			case string:
				rec[i] = v
			case float64:
				rec[i] = formatFloat(v)
			case *float64:
				rec[i] = ""
				if v != nil {
					rec[i] = formatFloat(*v)
				}
			}
		}
		if err := cw.Write(rec); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// WriteArrow writes r as one Arrow IPC stream holding one record batch (empty when r has no
// rows), in the column layout of WriteCSV: group keys are nullable utf8, so NULL survives;
// aggregate parts are non-null float64, the mechanism non-null utf8. The schema metadata
// carries cleanroom.job, cleanroom.dataset, cleanroom.spent_epsilon, cleanroom.spent_delta,
// cleanroom.budget_split, cleanroom.bounds and cleanroom.log_index, so a file that leaves the
// platform still names the job and the log entry that released it.
func (r *Result) WriteArrow(w io.Writer) error {
	return r.writeArrow(w, memory.DefaultAllocator)
}

// writeArrow takes the allocator so tests can prove every buffer is released.
func (r *Result) writeArrow(w io.Writer, mem memory.Allocator) error {
	fields, err := r.flatFields()
	if err != nil {
		return err
	}
	meta := arrow.NewMetadata(
		[]string{"cleanroom.job", "cleanroom.dataset", "cleanroom.spent_epsilon", "cleanroom.spent_delta",
			"cleanroom.budget_split", "cleanroom.bounds", "cleanroom.log_index"},
		[]string{r.Job, r.Dataset, formatFloat(r.Spent.Epsilon), formatFloat(r.Spent.Delta),
			r.Split, r.Bounds, strconv.FormatUint(r.LogIndex, 10)})
	schema := arrow.NewSchema(fields, &meta)

	b := array.NewRecordBuilder(mem, schema)
	defer b.Release()
	vals := make([]any, 0, len(fields))
	for _, row := range r.Rows {
		vals = flatRow(r.Columns, row, vals[:0])
		for i, v := range vals {
			switch v := v.(type) {
			case *string:
				sb := b.Field(i).(*array.StringBuilder)
				if v == nil {
					sb.AppendNull()
				} else {
					sb.Append(*v)
				}
			case string:
				b.Field(i).(*array.StringBuilder).Append(v)
			case float64:
				b.Field(i).(*array.Float64Builder).Append(v)
			case *float64:
				fb := b.Field(i).(*array.Float64Builder)
				if v == nil {
					fb.AppendNull()
				} else {
					fb.Append(*v)
				}
			}
		}
	}
	rec := b.NewRecordBatch()
	defer rec.Release()

	iw := ipc.NewWriter(w, ipc.WithSchema(schema), ipc.WithAllocator(mem))
	if err := iw.Write(rec); err != nil {
		iw.Close() // releases the writer's state; the write error is the one to report
		return fmt.Errorf("writing the arrow stream: %w", err)
	}
	if err := iw.Close(); err != nil {
		return fmt.Errorf("closing the arrow stream: %w", err)
	}
	return nil
}
