package main

import (
	"bufio"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"os"
	"reflect"
	"strconv"
	"strings"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"
	"github.com/xitongsys/parquet-go-source/local"
	"github.com/xitongsys/parquet-go/parquet"
	"github.com/xitongsys/parquet-go/reader"
)

// partValue is one row of a sum or mean: the partition and the row's value, keyed by its unit.
type partValue struct {
	Partition string
	Value     float64
}

// rowsRead counts the rows the pipeline read (header excluded), for the "rows" figure.
var rowsRead = beam.NewCounter("beam-bench", "rows")

func init() {
	beam.RegisterType(reflect.TypeFor[partValue]())
	register.DoFn3x1[context.Context, string, func(string, string), error](&csvCountFn{})
	register.DoFn3x1[context.Context, string, func(string, partValue), error](&csvValueFn{})
	register.DoFn3x1[context.Context, beam.X, func(string, string), error](&parquetCountFn{})
	register.DoFn3x1[context.Context, beam.X, func(string, partValue), error](&parquetValueFn{})
	register.Emitter2[string, string]()
	register.Emitter2[string, partValue]()
}

// errInput marks input the program cannot read: a missing column, a malformed row, a value that
// is not a number. Its messages name columns, never a data value.
var errInput = errors.New("input")

// input is what every run needs to know about the file, found once before the timed runs.
type input struct {
	// CSV: the header line (skipped when read again) and the column indices.
	header                 string
	unitCol, partCol, vCol int // vCol is -1 when the workload reads no value
	// Parquet: a struct of the needed columns, for parquetio and its schema projection.
	rowType reflect.Type
}

// inspect reads the CSV header or the Parquet footer and checks the columns exist.
func inspect(c config) (input, error) {
	if c.reader == readerCSV {
		return inspectCSV(c)
	}
	return inspectParquet(c)
}

func inspectCSV(c config) (input, error) {
	f, err := os.Open(c.csvPath)
	if err != nil {
		return input{}, err
	}
	defer f.Close()
	line, err := bufio.NewReaderSize(f, 1<<16).ReadString('\n')
	if err != nil && line == "" {
		return input{}, fmt.Errorf("%w: %s has no header row", errInput, c.csvPath)
	}
	line = strings.TrimRight(line, "\r\n")
	cols, err := splitCSVLine(line, nil)
	if err != nil {
		return input{}, fmt.Errorf("%w: %s: the header row is not valid CSV", errInput, c.csvPath)
	}
	in := input{header: line, vCol: -1}
	find := func(name string) (int, error) {
		for i, col := range cols {
			if col == name {
				return i, nil
			}
		}
		return 0, fmt.Errorf("%w: %s has no column %q", errInput, c.csvPath, name)
	}
	if in.unitCol, err = find(c.unitColumn); err != nil {
		return input{}, err
	}
	if in.partCol, err = find(c.partitionColumn); err != nil {
		return input{}, err
	}
	if c.workload != workloadCount {
		if in.vCol, err = find(c.valueColumn); err != nil {
			return input{}, err
		}
	}
	return in, nil
}

// inspectParquet builds the struct parquetio decodes into, with only the needed columns (the
// reader then decodes only those), typed and nullable as the file declares them.
func inspectParquet(c config) (input, error) {
	f, err := local.NewLocalFileReader(c.parquetPath)
	if err != nil {
		return input{}, err
	}
	defer f.Close()
	pr, err := reader.NewParquetReader(f, nil, 1)
	if err != nil {
		return input{}, fmt.Errorf("%w: %s is not a readable Parquet file: %w", errInput, c.parquetPath, err)
	}
	defer pr.ReadStop()
	// The reader renames the footer's elements to Go names; the file's names are the ExNames.
	elems := map[string]*parquet.SchemaElement{}
	for i, e := range pr.SchemaHandler.SchemaElements {
		if i > 0 && e.GetNumChildren() == 0 && pr.SchemaHandler.Infos[i].ExName != "" {
			elems[pr.SchemaHandler.Infos[i].ExName] = e
		}
	}
	field := func(goName, col string, numeric bool) (reflect.StructField, error) {
		e, ok := elems[col]
		if !ok {
			return reflect.StructField{}, fmt.Errorf("%w: %s has no top-level column %q", errInput, c.parquetPath, col)
		}
		var t reflect.Type
		tag := "name=" + col
		switch pt := e.GetType(); {
		case pt == parquet.Type_BYTE_ARRAY && !numeric:
			t, tag = reflect.TypeFor[string](), tag+", type=BYTE_ARRAY, convertedtype=UTF8"
		case pt == parquet.Type_INT64:
			t, tag = reflect.TypeFor[int64](), tag+", type=INT64"
		case pt == parquet.Type_INT32:
			t, tag = reflect.TypeFor[int32](), tag+", type=INT32"
		case pt == parquet.Type_DOUBLE && numeric:
			t, tag = reflect.TypeFor[float64](), tag+", type=DOUBLE"
		case pt == parquet.Type_FLOAT && numeric:
			t, tag = reflect.TypeFor[float32](), tag+", type=FLOAT"
		default:
			return reflect.StructField{}, fmt.Errorf("%w: column %q has Parquet type %s, not supported here", errInput, col, pt)
		}
		switch e.GetRepetitionType() {
		case parquet.FieldRepetitionType_OPTIONAL:
			t, tag = reflect.PointerTo(t), tag+", repetitiontype=OPTIONAL"
		case parquet.FieldRepetitionType_REQUIRED:
			tag += ", repetitiontype=REQUIRED"
		default:
			return reflect.StructField{}, fmt.Errorf("%w: column %q is repeated", errInput, col)
		}
		return reflect.StructField{Name: goName, Type: t, Tag: reflect.StructTag(`parquet:"` + tag + `"`)}, nil
	}
	// Field order is fixed: 0 unit, 1 partition, 2 value (sum and mean only).
	type column struct {
		goName, col string
		numeric     bool
	}
	cols := []column{{"Unit", c.unitColumn, false}, {"Partition", c.partitionColumn, false}}
	if c.workload != workloadCount {
		cols = append(cols, column{"Value", c.valueColumn, true})
	}
	var fields []reflect.StructField
	for _, col := range cols {
		sf, err := field(col.goName, col.col, col.numeric)
		if err != nil {
			return input{}, err
		}
		fields = append(fields, sf)
	}
	return input{rowType: reflect.StructOf(fields), vCol: -1}, nil
}

// splitCSVLine splits one CSV record that textio read as one line. Lines without a quote are split
// on commas directly (the common case, and the fast one); others go through encoding/csv. A quoted
// field holding a line break cannot be read line by line: it is reported as malformed.
func splitCSVLine(line string, dst []string) ([]string, error) {
	line = strings.TrimSuffix(line, "\r")
	if !strings.Contains(line, `"`) {
		dst = dst[:0]
		for {
			i := strings.IndexByte(line, ',')
			if i < 0 {
				return append(dst, line), nil
			}
			dst = append(dst, line[:i])
			line = line[i+1:]
		}
	}
	r := csv.NewReader(strings.NewReader(line))
	r.FieldsPerRecord = -1
	rec, err := r.Read()
	if err != nil {
		return nil, fmt.Errorf("%w: a CSV row is malformed", errInput)
	}
	return rec, nil
}

// csvFields extracts the unit, partition and (when vCol ≥ 0) value of one CSV line. ok is false
// for the header and for rows whose unit, partition or value is empty (NULL), which no aggregate
// counts, as in SQL.
type csvFields struct {
	Header                 string
	UnitCol, PartCol, VCol int
}

func (f *csvFields) extract(ctx context.Context, line string) (unit, part string, v float64, ok bool, err error) {
	line = strings.TrimSuffix(line, "\r")
	if line == f.Header {
		return "", "", 0, false, nil
	}
	rowsRead.Inc(ctx, 1)
	var buf [16]string
	rec, err := splitCSVLine(line, buf[:0])
	if err != nil {
		return "", "", 0, false, err
	}
	if len(rec) <= max(f.UnitCol, f.PartCol, f.VCol) {
		return "", "", 0, false, fmt.Errorf("%w: a CSV row has fewer fields than the header", errInput)
	}
	unit, part = rec[f.UnitCol], rec[f.PartCol]
	if unit == "" || part == "" {
		return "", "", 0, false, nil
	}
	if f.VCol >= 0 {
		s := rec[f.VCol]
		if s == "" {
			return "", "", 0, false, nil
		}
		if v, err = strconv.ParseFloat(s, 64); err != nil {
			return "", "", 0, false, fmt.Errorf("%w: a value of the value column is not a number", errInput)
		}
	}
	return unit, part, v, true, nil
}

// csvCountFn turns a CSV line into (unit, partition).
type csvCountFn struct{ csvFields }

func (f *csvCountFn) ProcessElement(ctx context.Context, line string, emit func(string, string)) error {
	unit, part, _, ok, err := f.extract(ctx, line)
	if ok {
		emit(unit, part)
	}
	return err
}

// csvValueFn turns a CSV line into (unit, {partition, value}).
type csvValueFn struct{ csvFields }

func (f *csvValueFn) ProcessElement(ctx context.Context, line string, emit func(string, partValue)) error {
	unit, part, v, ok, err := f.extract(ctx, line)
	if ok {
		emit(unit, partValue{part, v})
	}
	return err
}

// parquetFields extracts the fields of a row struct built by inspectParquet.
func parquetFields(ctx context.Context, row beam.X, withValue bool) (unit, part string, v float64, ok bool) {
	rowsRead.Inc(ctx, 1)
	rv := reflect.ValueOf(row)
	if rv.Kind() == reflect.Pointer {
		rv = rv.Elem()
	}
	unit, ok1 := keyString(rv.Field(0))
	part, ok2 := keyString(rv.Field(1))
	if !ok1 || !ok2 {
		return "", "", 0, false
	}
	if withValue {
		f := rv.Field(2)
		if f.Kind() == reflect.Pointer {
			if f.IsNil() {
				return "", "", 0, false
			}
			f = f.Elem()
		}
		if f.CanFloat() {
			v = f.Float()
		} else {
			v = float64(f.Int())
		}
	}
	return unit, part, v, true
}

// keyString renders a unit or partition field; a NULL one is not ok.
func keyString(f reflect.Value) (string, bool) {
	if f.Kind() == reflect.Pointer {
		if f.IsNil() {
			return "", false
		}
		f = f.Elem()
	}
	if f.Kind() == reflect.String {
		return f.String(), true
	}
	return strconv.FormatInt(f.Int(), 10), true
}

// parquetCountFn turns a Parquet row into (unit, partition).
type parquetCountFn struct{}

func (*parquetCountFn) ProcessElement(ctx context.Context, row beam.X, emit func(string, string)) error {
	if unit, part, _, ok := parquetFields(ctx, row, false); ok {
		emit(unit, part)
	}
	return nil
}

// parquetValueFn turns a Parquet row into (unit, {partition, value}).
type parquetValueFn struct{}

func (*parquetValueFn) ProcessElement(ctx context.Context, row beam.X, emit func(string, partValue)) error {
	if unit, part, v, ok := parquetFields(ctx, row, true); ok {
		emit(unit, partValue{part, v})
	}
	return nil
}
