package connectors

import (
	"github.com/c1b99f93/cleanroom/errcode"

	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"unicode/utf8"
)

// csvCase is one entry of the CSV case corpus, which drives TestCSV, seeds FuzzCSV and feeds
// BenchmarkCSV.
type csvCase struct {
	name      string
	data      string
	batchRows int

	// Success expectations.
	schema  string  // schemaString of the result
	rows    int64   // total rows
	batches []int64 // rows per batch; nil = don't check
	first   []string

	// Failure expectations (code != "").
	code   errcode.Code
	row    int64
	line   int64
	column string
	secret string
}

// genCSV writes header and n rows, row i (1-based) from line(i).
func genCSV(header string, n int, line func(i int) string) string {
	var b strings.Builder
	b.WriteString(header)
	b.WriteByte('\n')
	for i := 1; i <= n; i++ {
		b.WriteString(line(i))
		b.WriteByte('\n')
	}
	return b.String()
}

func csvCases() []csvCase {
	plain := func(i int) string { return fmt.Sprintf("%d,name%d,%d.25", i, i, i) }
	return []csvCase{
		{
			name:   "infers int float bool date utf8",
			data:   "id,amount,paid,visit,district\n1,12.5,true,2024-01-31,浦东\n2,3,FALSE,2024-02-29,黄浦\n",
			schema: "id:int64, amount:float64, paid:bool, visit:date32, district:utf8",
			rows:   2,
			first:  []string{"1", "12.5", "true", "2024-01-31", "浦东"},
		},
		{
			name:   "empty strings are null in every type",
			data:   "id,amount,paid,visit,district\n1,,,,\n,2.5,true,2024-01-01,x\n",
			schema: "id:int64, amount:float64, paid:bool, visit:date32, district:utf8",
			rows:   2,
			first:  []string{"1", "(null)", "(null)", "(null)", "(null)"},
		},
		{
			name: "identifiers stay utf8",
			data: "zip,account,resident_id,resident_id2,card,code\n" +
				"001234,0042,11010519491231002X,310105199001011234,6222021234567890123,-007\n" +
				"200000,1234,310105199001011234,110105194912310021,6222021234567890124,12\n",
			schema: "zip:utf8, account:utf8, resident_id:utf8, resident_id2:utf8, card:utf8, code:utf8",
			rows:   2,
			first:  []string{"001234", "0042", "11010519491231002X", "310105199001011234", "6222021234567890123", "-007"},
		},
		{
			name:   "words strconv would take stay utf8",
			data:   "a,b,c,d\nNaN,t,0x10,1_000\nInf,F,0x20,2_000\n",
			schema: "a:utf8, b:utf8, c:utf8, d:utf8",
			rows:   2,
		},
		{
			name:   "zero and decimals are numbers",
			data:   "a,b,c\n0,0.5,-0\n10,-0.25,5\n",
			schema: "a:int64, b:float64, c:int64",
			rows:   2,
			first:  []string{"0", "0.5", "0"},
		},
		{
			name:   "mixed int and float is float",
			data:   "a\n1\n2.5\n",
			schema: "a:float64",
			rows:   2,
		},
		{
			name:   "all empty column is utf8",
			data:   "a,b\n1,\n2,\n",
			schema: "a:int64, b:utf8",
			rows:   2,
		},
		{
			name:   "header only",
			data:   "a,b\n",
			schema: "a:utf8, b:utf8",
			rows:   0,
		},
		{
			name:   "BOM, CRLF and quoted newline",
			data:   "\uFEFFid,note\r\n1,\"two\nlines\"\r\n2,\"with \"\"quote\"\"\"\r\n",
			schema: "id:int64, note:utf8",
			rows:   2,
			first:  []string{"1", "two\nlines"},
		},
		{
			name:      "streams in batches",
			data:      genCSV("id,name,amount", 10, plain),
			batchRows: 4,
			schema:    "id:int64, name:utf8, amount:float64",
			rows:      10,
			batches:   []int64{4, 4, 2},
		},
		{
			name:      "batches past the inference rows",
			data:      genCSV("id,name,amount", inferRows+1500, plain),
			batchRows: 4096,
			schema:    "id:int64, name:utf8, amount:float64",
			rows:      inferRows + 1500,
			batches:   []int64{4096, 4096, 3308},
		},

		// Failures.
		{
			name:   "empty file",
			data:   "",
			code:   CodeEmptySource,
			schema: "",
		},
		{
			name: "blank header",
			data: "\"\"\n1\n",
			code: CodeEmptySource,
		},
		{
			name: "empty column name",
			data: "a,,c\n1,2,3\n",
			code: CodeMalformedInput, line: 1,
		},
		{
			name: "duplicate column name",
			data: "a,b,a\n1,2,3\n",
			code: CodeMalformedInput, line: 1, column: "a",
		},
		{
			name: "ragged row at row 7",
			data: genCSV("id,name,amount", 10, func(i int) string {
				if i == 7 {
					return "7," + secretText
				}
				return plain(i)
			}),
			code: CodeMalformedInput, row: 7, line: 8, secret: secretText,
		},
		{
			name: "ragged row after a streamed batch",
			data: genCSV("id,name,amount", 10, func(i int) string {
				if i == 9 {
					return "9,a," + secretText + ",extra"
				}
				return plain(i)
			}),
			batchRows: 4,
			code:      CodeMalformedInput, row: 9, line: 10, secret: secretText,
		},
		{
			name: "non-numeric value at row 70000 after inference",
			data: genCSV("id,amount", 80000, func(i int) string {
				if i == 70000 {
					return "70000," + secretText
				}
				return fmt.Sprintf("%d,%d", i, i*3)
			}),
			code: CodeMalformedInput, row: 70000, line: 70001, column: "amount", secret: secretText,
		},
		{
			name: "leading-zero value in an int column after inference",
			data: genCSV("id,code", inferRows+10, func(i int) string {
				if i == inferRows+5 {
					return fmt.Sprintf("%d,0123456", i)
				}
				return fmt.Sprintf("%d,%d", i, i)
			}),
			code: CodeMalformedInput, row: inferRows + 5, line: inferRows + 6, column: "code", secret: "0123456",
		},
		{
			name: "date column gets a resident ID",
			data: genCSV("id,visit", inferRows+3, func(i int) string {
				if i == inferRows+3 {
					return fmt.Sprintf("%d,%s", i, secretID)
				}
				return fmt.Sprintf("%d,2024-01-02", i)
			}),
			code: CodeMalformedInput, row: inferRows + 3, line: inferRows + 4, column: "visit", secret: secretID,
		},
		{
			name: "invalid UTF-8 in a text column",
			data: "id,name\n1,ok\n2,\xb3\xc2" + secretText + "\n",
			code: CodeMalformedInput, row: 2, line: 3, column: "name", secret: secretText,
		},
		{
			name: "truncated inside a quoted field",
			data: "id,note\n1,\"fine\"\n2,\"" + secretText + " and the rest was cut",
			code: CodeMalformedInput, row: 2, line: 3, secret: secretText,
		},
		{
			name: "truncated mid-row",
			data: "id,name,amount\n1,a,1.5\n2," + secretText,
			code: CodeMalformedInput, row: 2, line: 3, secret: secretText,
		},
		{
			name: "bare quote in unquoted field",
			data: "id,name\n1,a\n2,ab\"" + secretText + "\"\n",
			code: CodeMalformedInput, row: 2, line: 3, secret: secretText,
		},
		{
			name: "text after closing quote",
			data: "id,name\n1,a\n2,\"" + secretText + "\"x\n3,c\n",
			code: CodeMalformedInput, row: 2, line: 3, secret: secretText,
		},
	}
}

func TestCSV(t *testing.T) {
	for _, c := range csvCases() {
		t.Run(c.name, func(t *testing.T) {
			path := writeFile(t, "visits.csv", []byte(c.data))
			res := readAll(t, KindCSV, path, Options{BatchRows: c.batchRows, Alloc: checkedAlloc(t)})
			if c.code != "" {
				e := wantError(t, res.err, c.code, c.row, c.column, c.secret)
				if e.Line != c.line {
					t.Errorf("line = %d, want %d", e.Line, c.line)
				}
				if e.File != "visits.csv" {
					t.Errorf("file = %q, want the base name", e.File)
				}
				return
			}
			if res.err != nil {
				t.Fatalf("unexpected error: %v (cause: %v)", res.err, errors.Unwrap(res.err))
			}
			if got := schemaString(res.schema); got != c.schema {
				t.Errorf("schema = %s, want %s", got, c.schema)
			}
			if res.rows != c.rows {
				t.Errorf("rows = %d, want %d", res.rows, c.rows)
			}
			if c.batches != nil && fmt.Sprint(res.batches[:min(len(res.batches), len(c.batches))]) != fmt.Sprint(c.batches) {
				t.Errorf("batches = %v, want %v", res.batches, c.batches)
			}
			if c.first != nil && fmt.Sprint(res.cells[0]) != fmt.Sprint(c.first) {
				t.Errorf("first row = %q, want %q", res.cells[0], c.first)
			}
		})
	}
}

// TestCSVReportsErrorAfterDeliveredBatches pins the streaming contract: batches before a bad
// row are delivered, then Next returns false and Err names the row.
func TestCSVReportsErrorAfterDeliveredBatches(t *testing.T) {
	data := genCSV("id,amount", 100, func(i int) string {
		if i == 95 {
			return "95," + secretText
		}
		return fmt.Sprintf("%d,%d", i, i)
	})
	// The bad row is inside the inference rows, so "amount" is utf8 and the file reads fine...
	path := writeFile(t, "a.csv", []byte(data))
	if res := readAll(t, KindCSV, path, Options{Alloc: checkedAlloc(t)}); res.err != nil || res.rows != 100 {
		t.Fatalf("rows = %d, err = %v; want 100 rows, no error", res.rows, res.err)
	}
	// ...whereas past the inference rows it fails after full batches went out.
	data = genCSV("id,amount", inferRows+100, func(i int) string {
		if i == inferRows+95 {
			return fmt.Sprintf("%d,%s", i, secretText)
		}
		return fmt.Sprintf("%d,%d", i, i)
	})
	path = writeFile(t, "b.csv", []byte(data))
	res := readAll(t, KindCSV, path, Options{BatchRows: 1000, Alloc: checkedAlloc(t)})
	wantError(t, res.err, CodeMalformedInput, inferRows+95, "amount", secretText)
	if res.rows != inferRows {
		t.Errorf("delivered %d rows before the error, want %d", res.rows, inferRows)
	}
}

// TestCSVStreamingReleasesAllMemory streams ~200k rows in small batches through a checked
// allocator: nothing may leak, and no more than about one batch may be live at a time.
func TestCSVStreamingReleasesAllMemory(t *testing.T) {
	const n = 200_000
	data := genCSV("id,district,amount,visit", n, func(i int) string {
		return fmt.Sprintf("%d,district-%d,%d.5,2024-%02d-%02d", i, i%17, i%1000, i%12+1, i%28+1)
	})
	path := writeFile(t, "big.csv", []byte(data))
	mem := checkedAlloc(t)
	rr, err := Open(context.Background(), KindCSV, path, Options{BatchRows: 4096, Alloc: mem})
	if err != nil {
		t.Fatal(err)
	}
	defer rr.Release()
	var rows, batches int64
	peak := 0
	for rr.Next() {
		rows += rr.RecordBatch().NumRows()
		batches++
		peak = max(peak, mem.CurrentAlloc())
	}
	if err := rr.Err(); err != nil {
		t.Fatal(err)
	}
	if rows != n || batches != (n+4095)/4096 {
		t.Errorf("rows = %d in %d batches, want %d in %d", rows, batches, n, (n+4095)/4096)
	}
	// One 4096-row batch of these columns is well under 1 MiB; the whole file is ~8 MiB.
	if peak > 1<<20 {
		t.Errorf("peak allocation %d bytes: batches are not being released", peak)
	}
}

func BenchmarkCSV(b *testing.B) {
	for _, c := range csvCases() {
		if c.code != "" || len(c.data) < 1<<16 {
			continue
		}
		b.Run(c.name, func(b *testing.B) {
			path := writeFile(b, "bench.csv", []byte(c.data))
			b.SetBytes(int64(len(c.data)))
			for b.Loop() {
				if res := readAll(b, KindCSV, path, Options{BatchRows: 4096}); res.err != nil {
					b.Fatal(res.err)
				}
			}
		})
	}
}

// FuzzCSV asserts that no input makes the CSV reader panic or leak, that every error is an
// *Error with a known code and reason, and that its text carries no field of the input.
func FuzzCSV(f *testing.F) {
	for _, c := range csvCases() {
		if len(c.data) <= 1<<12 {
			f.Add([]byte(c.data), 3)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte, batchRows int) {
		batchRows = 1 + abs(batchRows)%8
		mem := checkedAlloc(t)
		src, err := newCSVSource(bytes.NewReader(data), "fuzz.csv", Options{BatchRows: batchRows, Alloc: mem})
		if err == nil {
			rr := newReader(context.Background(), "fuzz.csv", src)
			err = drain(rr).err
			rr.Release()
		}
		if err == nil {
			return
		}
		var e *Error
		if !errors.As(err, &e) {
			t.Fatalf("error %v is %T, not *Error", err, err)
		}
		if !knownCodes[e.Code] || !knownReason(e.Reason) || e.File != "fuzz.csv" {
			t.Fatalf("error %+v has an unknown code, reason or file", e)
		}
		header := csvHeader(data)
		if e.Column != "" && !contains(header, e.Column) {
			t.Fatalf("error column %q is not a header name %q", e.Column, header)
		}
		// Everything in the text other than the column name is fixed vocabulary and numbers,
		// so an input token may appear only if the skeleton already has it by coincidence.
		msg := e.Error()
		skeleton := (&Error{Code: e.Code, File: e.File, Row: e.Row, Line: e.Line, Reason: e.Reason}).Error()
		for _, tok := range inputTokens(data) {
			if len(tok) >= 6 && strings.Contains(msg, tok) && !strings.Contains(skeleton, tok) && !strings.Contains(e.Column, tok) {
				t.Fatalf("error %q contains input value %q", msg, tok)
			}
		}
	})
}

var knownCodes = map[errcode.Code]bool{
	CodeSourceNotFound: true, CodeSourceUnreadable: true, CodeMalformedInput: true,
	CodeUnsupportedType: true, CodeEmptySource: true,
}

func knownReason(r string) bool {
	switch r {
	case reasonNotFound, reasonCannotOpen, reasonCannotRead, reasonIsDir, reasonUnknownKind,
		reasonNoHeader, reasonNoColumns, reasonEmptyName, reasonDuplicateName, reasonNameNotUTF8,
		reasonFieldCount, reasonBareQuote, reasonQuote, reasonCSVSyntax, reasonNotUTF8,
		reasonNotParquet, reasonCorruptParquet, reasonNotIPC, reasonCorruptIPC,
		reasonBadColumnData, reasonUnsupported, reasonInternal:
		return true
	}
	for _, typ := range []string{"int64", "float64", "bool", "date32"} {
		if r == reasonTypeMismatch+" "+typ {
			return true
		}
	}
	return false
}

// csvHeader is the header as the reader sees it (BOM stripped), or nil.
func csvHeader(data []byte) []string {
	h, err := newCSVHeaderReader(data).Read()
	if err != nil || len(h) == 0 {
		return nil
	}
	h[0] = strings.TrimPrefix(h[0], "\uFEFF")
	return h
}

// inputTokens is every field the input could be read as: strictly and leniently parsed fields,
// and raw runs between separators and quotes (for rows a strict parse rejects).
func inputTokens(data []byte) []string {
	var toks []string
	lenient := newCSVHeaderReader(data)
	lenient.LazyQuotes, lenient.FieldsPerRecord = true, -1
	for {
		rec, err := lenient.Read()
		if err == io.EOF || (err != nil && rec == nil) {
			break
		}
		toks = append(toks, rec...)
	}
	toks = append(toks, strings.FieldsFunc(string(data), func(r rune) bool {
		return r == ',' || r == '\n' || r == '\r' || r == '"' || r == utf8.RuneError
	})...)
	return toks
}

func newCSVHeaderReader(data []byte) *csv.Reader { return csv.NewReader(bytes.NewReader(data)) }

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}
