package connectors

import (
	"encoding/csv"
	"errors"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
)

// inferRows is how many data rows decide the CSV column types. It is fixed rather than tied to
// BatchRows so that the same file always gets the same schema, whatever the batch size.
const inferRows = 10000

// We parse CSV with encoding/csv and fill Arrow builders ourselves instead of using arrow-go's
// arrow/csv reader, because that reader cannot meet our error contract: a conversion failure
// carries the raw value (strconv's message quotes it) but neither the row nor the column, the
// failing batch is still returned from Next with nulls in place of the bad values, and its
// inference looks at the first row only, so "007" would become int64.

// csvSource streams a CSV file with a header row.
type csvSource struct {
	path   string
	closer io.Closer
	cr     *csv.Reader
	sch    *arrow.Schema
	bld    *array.RecordBuilder
	batch  int
	row    int64 // data rows handed out so far

	// The rows read for inference are replayed before reading on; an error met while reading
	// them is reported when the stream reaches it, as it would have been without inference.
	buffered [][]string
	lines    []int
	bufErr   error
}

func openCSV(f *os.File, path string, opt Options) (source, error) {
	s, err := newCSVSource(f, path, opt)
	if err != nil {
		f.Close()
		return nil, err
	}
	return s, nil
}

// newCSVSource reads the header and the inference rows from r; path only names the file in
// errors. r is closed by close if it is an io.Closer.
func newCSVSource(r io.Reader, path string, opt Options) (*csvSource, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = 0 // the header fixes the field count; ragged rows are ErrFieldCount
	s := &csvSource{path: path, cr: cr, batch: opt.BatchRows}
	s.closer, _ = r.(io.Closer)

	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return nil, newError(CodeEmptySource, path, reasonNoHeader, nil)
	}
	if err != nil {
		return nil, s.readError(err, 0)
	}
	names, err := s.columnNames(header)
	if err != nil {
		return nil, err
	}

	for len(s.buffered) < inferRows {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			s.bufErr = s.readError(err, int64(len(s.buffered))+1)
			break
		}
		line, _ := cr.FieldPos(0)
		s.buffered = append(s.buffered, rec)
		s.lines = append(s.lines, line)
	}
	// From here on rows are consumed one at a time, so the record slice can be reused.
	cr.ReuseRecord = true

	fields := make([]arrow.Field, len(names))
	for i, name := range names {
		fields[i] = arrow.Field{Name: name, Type: inferColumn(s.buffered, i), Nullable: true}
	}
	s.sch = arrow.NewSchema(fields, nil)
	s.bld = array.NewRecordBuilder(opt.Alloc, s.sch)
	return s, nil
}

func (s *csvSource) columnNames(header []string) ([]string, error) {
	// Excel and many Chinese tools write a UTF-8 byte order mark before the header.
	header[0] = strings.TrimPrefix(header[0], "\uFEFF")
	if len(header) == 1 && header[0] == "" {
		return nil, newError(CodeEmptySource, s.path, reasonNoColumns, nil)
	}
	seen := make(map[string]bool, len(header))
	names := make([]string, len(header))
	for i, name := range header {
		e := newError(CodeMalformedInput, s.path, "", nil)
		e.Line = 1
		switch {
		case !utf8.ValidString(name):
			e.Reason = reasonNameNotUTF8 // and no Column: the name itself is unprintable
			return nil, e
		case name == "":
			e.Reason = reasonEmptyName
			return nil, e
		case seen[name]:
			e.Reason, e.Column = reasonDuplicateName, name
			return nil, e
		}
		seen[name] = true
		names[i] = name
	}
	return names, nil
}

func (s *csvSource) schema() *arrow.Schema { return s.sch }

func (s *csvSource) close() {
	s.bld.Release()
	if s.closer != nil {
		s.closer.Close()
	}
}

func (s *csvSource) next() (arrow.RecordBatch, error) {
	n := 0
	for n < s.batch {
		rec, line, err := s.read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		if err := s.append(rec, line); err != nil {
			return nil, err
		}
		n++
	}
	if n == 0 {
		return nil, nil
	}
	return s.bld.NewRecordBatch(), nil
}

// read returns the next data row and the line it starts on: first the buffered inference rows,
// then the buffered error if any, then rows from the file.
func (s *csvSource) read() ([]string, int, error) {
	if len(s.buffered) > 0 {
		rec, line := s.buffered[0], s.lines[0]
		s.buffered, s.lines = s.buffered[1:], s.lines[1:]
		s.row++
		return rec, line, nil
	}
	if s.bufErr != nil {
		return nil, 0, s.bufErr
	}
	rec, err := s.cr.Read()
	if errors.Is(err, io.EOF) {
		return nil, 0, io.EOF
	}
	if err != nil {
		return nil, 0, s.readError(err, s.row+1)
	}
	s.row++
	line, _ := s.cr.FieldPos(0)
	return rec, line, nil
}

// readError classifies an encoding/csv error at data row row (0 for the header). Its
// ParseError text has positions only, but we still build our own.
func (s *csvSource) readError(err error, row int64) error {
	var pe *csv.ParseError
	if !errors.As(err, &pe) {
		return newError(CodeSourceUnreadable, s.path, reasonCannotRead, err)
	}
	e := newError(CodeMalformedInput, s.path, reasonCSVSyntax, err)
	e.Row, e.Line = row, int64(pe.StartLine)
	switch {
	case errors.Is(pe.Err, csv.ErrFieldCount):
		e.Reason = reasonFieldCount
	case errors.Is(pe.Err, csv.ErrBareQuote):
		e.Reason = reasonBareQuote
	case errors.Is(pe.Err, csv.ErrQuote):
		e.Reason = reasonQuote
	}
	return e
}

// append converts one row into the builders. Empty fields are null in every column type.
func (s *csvSource) append(rec []string, line int) error {
	for i, v := range rec {
		b := s.bld.Field(i)
		if v == "" {
			b.AppendNull()
			continue
		}
		ok := true
		switch b := b.(type) {
		case *array.Int64Builder:
			var x int64
			if x, ok = parseInt64(v); ok {
				b.Append(x)
			}
		case *array.Float64Builder:
			var x float64
			if x, ok = parseFloat64(v); ok {
				b.Append(x)
			}
		case *array.BooleanBuilder:
			var x bool
			if x, ok = parseBool(v); ok {
				b.Append(x)
			}
		case *array.Date32Builder:
			var x arrow.Date32
			if x, ok = parseDate32(v); ok {
				b.Append(x)
			}
		case *array.StringBuilder:
			if ok = utf8.ValidString(v); ok {
				b.Append(v)
			}
		}
		if !ok {
			// The cause is deliberately value-free too: strconv's errors quote the input.
			f := s.sch.Field(i)
			e := newError(CodeMalformedInput, s.path, reasonTypeMismatch+" "+f.Type.String(), nil)
			if f.Type.ID() == arrow.STRING {
				e.Reason = reasonNotUTF8
			}
			e.Row, e.Line, e.Column = s.row, int64(line), f.Name
			return e
		}
	}
	return nil
}

// Column type inference. A column gets the first of int64, float64, bool, date32 that every
// non-empty inference value parses as, else utf8 (also when it has no non-empty value). The
// same parse functions convert the rest of the file, so inference and conversion agree.
const (
	fitsInt64 = 1 << iota
	fitsFloat64
	fitsBool
	fitsDate32
	fitsAll = fitsInt64 | fitsFloat64 | fitsBool | fitsDate32
)

func inferColumn(rows [][]string, col int) arrow.DataType {
	fits, seen := fitsAll, false
	for _, rec := range rows {
		v := rec[col]
		if v == "" {
			continue
		}
		seen = true
		if fits&fitsInt64 != 0 {
			if _, ok := parseInt64(v); !ok {
				fits &^= fitsInt64
			}
		}
		if fits&fitsFloat64 != 0 {
			if _, ok := parseFloat64(v); !ok {
				fits &^= fitsFloat64
			}
		}
		if fits&fitsBool != 0 {
			if _, ok := parseBool(v); !ok {
				fits &^= fitsBool
			}
		}
		if fits&fitsDate32 != 0 {
			if _, ok := parseDate32(v); !ok {
				fits &^= fitsDate32
			}
		}
		if fits == 0 {
			break
		}
	}
	switch {
	case !seen:
		return arrow.BinaryTypes.String
	case fits&fitsInt64 != 0:
		return arrow.PrimitiveTypes.Int64
	case fits&fitsFloat64 != 0:
		return arrow.PrimitiveTypes.Float64
	case fits&fitsBool != 0:
		return arrow.FixedWidthTypes.Boolean
	case fits&fitsDate32 != 0:
		return arrow.FixedWidthTypes.Date32
	}
	return arrow.BinaryTypes.String
}

// looksLikeIdentifier reports digit strings that are codes rather than quantities, which must
// stay text: a leading zero ("007", "0101") would be lost as a number, and 16 or more digits
// (bank cards, 18-digit resident IDs whose check digit may also be X) exceed float64's exact
// range and are never summed. Judging by form rather than by the inference rows matters: an ID
// column whose first 10k values happen to lack the X must not turn int64.
func looksLikeIdentifier(v string) bool {
	d := v
	if len(d) > 0 && (d[0] == '+' || d[0] == '-') {
		d = d[1:]
	}
	if len(d) > 1 && d[0] == '0' && d[1] >= '0' && d[1] <= '9' {
		return true
	}
	digits := 0
	for i := 0; i < len(d) && d[i] >= '0' && d[i] <= '9'; i++ {
		digits++
	}
	return digits >= 16
}

func parseInt64(v string) (int64, bool) {
	if looksLikeIdentifier(v) {
		return 0, false
	}
	x, err := strconv.ParseInt(v, 10, 64)
	return x, err == nil
}

// parseFloat64 accepts plain decimal notation only: strconv also takes "NaN", "Inf", hex floats
// and underscores, which in a CSV are words or codes, not numbers.
func parseFloat64(v string) (float64, bool) {
	for i := 0; i < len(v); i++ {
		if c := v[i]; (c < '0' || c > '9') && c != '+' && c != '-' && c != '.' && c != 'e' && c != 'E' {
			return 0, false
		}
	}
	if looksLikeIdentifier(v) {
		return 0, false
	}
	x, err := strconv.ParseFloat(v, 64)
	return x, err == nil
}

// parseBool accepts true/false in any case; strconv's "t", "F", "0" and "1" are too often codes.
func parseBool(v string) (bool, bool) {
	switch {
	case strings.EqualFold(v, "true"):
		return true, true
	case strings.EqualFold(v, "false"):
		return false, true
	}
	return false, false
}

func parseDate32(v string) (arrow.Date32, bool) {
	if len(v) != len("2006-01-02") {
		return 0, false
	}
	t, err := time.Parse("2006-01-02", v)
	if err != nil {
		return 0, false
	}
	return arrow.Date32FromTime(t), true
}
