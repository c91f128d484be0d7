package connectors

import (
	"github.com/c1b99f93/cleanroom/errcode"

	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

var sampleSchema = arrow.NewSchema([]arrow.Field{
	{Name: "id", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
	{Name: "resident_id", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "amount", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
	{Name: "visit", Type: arrow.FixedWidthTypes.Date32, Nullable: true},
}, nil)

// sampleBatches builds n rows in batches of per rows; every resident_id is the planted ID, so
// corrupting any part of the data section still leaves it in the file.
func sampleBatches(n, per int) []arrow.RecordBatch {
	b := array.NewRecordBuilder(memory.DefaultAllocator, sampleSchema)
	defer b.Release()
	var out []arrow.RecordBatch
	for i := 0; i < n; i++ {
		b.Field(0).(*array.Int64Builder).Append(int64(i))
		b.Field(1).(*array.StringBuilder).Append(secretID)
		if i%10 == 3 {
			b.Field(2).AppendNull()
		} else {
			b.Field(2).(*array.Float64Builder).Append(float64(i) / 4)
		}
		b.Field(3).(*array.Date32Builder).Append(arrow.Date32(19000 + i%365))
		if (i+1)%per == 0 || i == n-1 {
			out = append(out, b.NewRecordBatch())
		}
	}
	return out
}

func releaseAll(recs []arrow.RecordBatch) {
	for _, r := range recs {
		r.Release()
	}
}

func parquetBytes(t testing.TB, n, rowGroup int) []byte {
	t.Helper()
	recs := sampleBatches(n, rowGroup)
	defer releaseAll(recs)
	var buf bytes.Buffer
	w, err := pqarrow.NewFileWriter(sampleSchema, &buf,
		parquet.NewWriterProperties(parquet.WithMaxRowGroupLength(int64(rowGroup))),
		pqarrow.DefaultWriterProps())
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if err := w.Write(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func ipcFileBytes(t testing.TB, n, per int) []byte {
	t.Helper()
	recs := sampleBatches(n, per)
	defer releaseAll(recs)
	var buf bytes.Buffer
	w, err := ipc.NewFileWriter(&buf, ipc.WithSchema(sampleSchema))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if err := w.Write(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func ipcStreamBytes(t testing.TB, n, per int) []byte {
	t.Helper()
	recs := sampleBatches(n, per)
	defer releaseAll(recs)
	var buf bytes.Buffer
	w := ipc.NewWriter(&buf, ipc.WithSchema(sampleSchema))
	for _, r := range recs {
		if err := w.Write(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

const sampleSchemaString = "id:int64, resident_id:utf8, amount:float64, visit:date32"

func TestOpenReadsBinaryFormats(t *testing.T) {
	tests := []struct {
		name      string
		kind      string
		data      func(t testing.TB) []byte
		batchRows int
		batches   []int64
	}{
		{"parquet in BatchRows batches", KindParquet, func(t testing.TB) []byte { return parquetBytes(t, 1000, 1000) }, 300, []int64{300, 300, 300, 100}},
		{"parquet across row groups", KindParquet, func(t testing.TB) []byte { return parquetBytes(t, 1000, 250) }, 0, []int64{1000}},
		{"parquet with no rows", KindParquet, func(t testing.TB) []byte { return parquetBytes(t, 0, 10) }, 0, nil},
		{"arrow IPC file keeps written batches", KindArrow, func(t testing.TB) []byte { return ipcFileBytes(t, 1000, 400) }, 100, []int64{400, 400, 200}},
		{"arrow IPC stream keeps written batches", KindArrow, func(t testing.TB) []byte { return ipcStreamBytes(t, 1000, 400) }, 100, []int64{400, 400, 200}},
		{"arrow IPC stream with no batches", KindArrow, func(t testing.TB) []byte { return ipcStreamBytes(t, 0, 1) }, 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeFile(t, "visits.bin", tt.data(t))
			res := readAll(t, tt.kind, path, Options{BatchRows: tt.batchRows, Alloc: checkedAlloc(t)})
			if res.err != nil {
				t.Fatalf("unexpected error: %v (cause: %v)", res.err, errors.Unwrap(res.err))
			}
			if got := schemaString(res.schema); got != sampleSchemaString {
				t.Errorf("schema = %s, want %s", got, sampleSchemaString)
			}
			var want int64
			for _, n := range tt.batches {
				want += n
			}
			if res.rows != want || len(res.batches) != len(tt.batches) {
				t.Fatalf("batches = %v, want %v", res.batches, tt.batches)
			}
			for i, n := range tt.batches {
				if res.batches[i] != n {
					t.Errorf("batches = %v, want %v", res.batches, tt.batches)
					break
				}
			}
			if want > 3 {
				if got := res.cells[3]; got[0] != "3" || got[1] != secretID || got[2] != "(null)" {
					t.Errorf("row 4 = %q", got)
				}
			}
		})
	}
}

func TestOpenErrors(t *testing.T) {
	pq := parquetBytes(t, 2000, 1000)
	ipcFile := ipcFileBytes(t, 2000, 1000)
	ipcStream := ipcStreamBytes(t, 2000, 1000)
	random := make([]byte, 4096)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range random {
		random[i] = byte(rng.UintN(256))
	}

	tests := []struct {
		name   string
		kind   string
		data   []byte // nil: no file at all
		code   errcode.Code
		column string
	}{
		{"parquet truncated", KindParquet, pq[:len(pq)/2], CodeMalformedInput, ""},
		{"parquet footer cut", KindParquet, pq[:len(pq)-3], CodeMalformedInput, ""},
		{"parquet random bytes", KindParquet, random, CodeMalformedInput, ""},
		{"parquet is a CSV", KindParquet, []byte("id,resident_id\n1," + secretID + "\n"), CodeMalformedInput, ""},
		{"parquet empty file", KindParquet, []byte{}, CodeMalformedInput, ""},
		{"arrow IPC file truncated", KindArrow, ipcFile[:len(ipcFile)/2], CodeMalformedInput, ""},
		{"arrow IPC file footer cut", KindArrow, ipcFile[:len(ipcFile)-4], CodeMalformedInput, ""},
		{"arrow IPC stream truncated mid-message", KindArrow, ipcStream[:len(ipcStream)/2+3], CodeMalformedInput, ""},
		{"arrow IPC random bytes", KindArrow, random, CodeMalformedInput, ""},
		{"arrow IPC empty file", KindArrow, []byte{}, CodeMalformedInput, ""},
		{"missing parquet", KindParquet, nil, CodeSourceNotFound, ""},
		{"missing arrow", KindArrow, nil, CodeSourceNotFound, ""},
		{"missing csv", KindCSV, nil, CodeSourceNotFound, ""},
		{"unknown kind", "postgres", []byte("x"), CodeUnsupportedType, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "claims.bin")
			if tt.data != nil {
				path = writeFile(t, "claims.bin", tt.data)
			}
			res := readAll(t, tt.kind, path, Options{BatchRows: 500, Alloc: checkedAlloc(t)})
			e := wantError(t, res.err, tt.code, 0, tt.column, secretID, secretText)
			if e.File != "claims.bin" {
				t.Errorf("file = %q, want claims.bin", e.File)
			}
		})
	}
}

// TestOpenCorruptedBytesNeverPanicOrLeak flips bytes in valid files: each read must end
// cleanly or with a malformed_input *Error, and release everything it allocated.
//
// Two upstream limits shape it. When arrow-go's IPC readers panic while building a batch (they
// recover some of these themselves), the buffers already built are never released; with the Go
// allocator the garbage collector reclaims them, and the test tolerates exactly that case. And
// arrow-go trusts the vector lengths in an IPC schema's flatbuffer, so a corrupt length there
// is a fatal out-of-memory error that no recover can catch (the worker's process isolation
// contains it); IPC corruption is therefore kept to the record-batch bytes in the middle of
// the file, past the schema and before the footer.
func TestOpenCorruptedBytesNeverPanicOrLeak(t *testing.T) {
	sources := []struct {
		name, kind string
		data       []byte
		leaky      bool
		lo, hi     float64 // the fraction of the file to corrupt
	}{
		{"parquet", KindParquet, parquetBytes(t, 300, 100), false, 0, 1},
		{"arrow IPC file", KindArrow, ipcFileBytes(t, 300, 100), true, 0.25, 0.75},
		{"arrow IPC stream", KindArrow, ipcStreamBytes(t, 300, 100), true, 0.25, 0.9},
	}
	for seed := range uint64(8) {
		rng := rand.New(rand.NewPCG(seed, 4))
		for _, src := range sources {
			lo, hi := int(src.lo*float64(len(src.data))), int(src.hi*float64(len(src.data)))
			for i := range 100 {
				data := bytes.Clone(src.data)
				for range 1 + i%4 {
					data[lo+rng.IntN(hi-lo)] ^= byte(1 + rng.IntN(255))
				}
				checkCorruptRead(t, src.name, src.kind, data, src.leaky)
			}
		}
	}
}

func checkCorruptRead(t *testing.T, name, kind string, data []byte, leaky bool) {
	t.Helper()
	path := writeFile(t, "c.bin", data)
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	res := readAll(t, kind, path, Options{BatchRows: 64, Alloc: mem})
	if res.err == nil {
		if mem.CurrentAlloc() != 0 {
			t.Fatalf("%s: %d bytes leaked after a clean read", name, mem.CurrentAlloc())
		}
		return
	}
	var e *Error
	if !errors.As(res.err, &e) {
		t.Fatalf("%s: error %v is %T, not *Error", name, res.err, res.err)
	}
	if e.Code != CodeMalformedInput && e.Code != CodeUnsupportedType && e.Code != CodeEmptySource {
		t.Fatalf("%s: code %s (%v)", name, e.Code, e)
	}
	if bytes.Contains([]byte(e.Error()), []byte(secretID)) {
		t.Fatalf("%s: error %q contains the planted value", name, e)
	}
	upstreamPanic := leaky && recoveredPanic(e.Err)
	if mem.CurrentAlloc() != 0 && !upstreamPanic {
		t.Fatalf("%s: %d bytes leaked after %v (cause: %v)", name, mem.CurrentAlloc(), e, e.Err)
	}
}

// recoveredPanic reports the causes that arrow-go (or guard) produce from a recovered panic.
func recoveredPanic(err error) bool {
	if err == nil {
		return false
	}
	for _, s := range []string{"runtime error", "unknown error while reading", "error reading record batch", "panic:"} {
		if strings.Contains(err.Error(), s) {
			return true
		}
	}
	return false
}

func TestOpenDirectoryIsUnreadable(t *testing.T) {
	for _, kind := range []string{KindCSV, KindParquet, KindArrow} {
		res := readAll(t, kind, t.TempDir(), Options{})
		wantError(t, res.err, CodeSourceUnreadable, 0, "")
	}
}

func TestReaderStopsWhenContextIsCancelled(t *testing.T) {
	inputs := map[string]func(t testing.TB) []byte{
		KindCSV:     func(testing.TB) []byte { return []byte(genCSV("a,b", 100, func(i int) string { return "1,x" })) },
		KindParquet: func(t testing.TB) []byte { return parquetBytes(t, 100, 100) },
		KindArrow:   func(t testing.TB) []byte { return ipcStreamBytes(t, 100, 10) },
	}
	for kind, data := range inputs {
		t.Run(kind, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			path := writeFile(t, "s", data(t))
			rr, err := Open(ctx, kind, path, Options{BatchRows: 10, Alloc: checkedAlloc(t)})
			if err != nil {
				t.Fatal(err)
			}
			defer rr.Release()
			if !rr.Next() {
				t.Fatalf("no first batch: %v", rr.Err())
			}
			cancel()
			if rr.Next() {
				t.Fatal("Next after cancel returned a batch")
			}
			if !errors.Is(rr.Err(), context.Canceled) {
				t.Fatalf("Err = %v, want context.Canceled", rr.Err())
			}
		})
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Open(ctx, KindCSV, "x.csv", Options{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Open with cancelled ctx: %v", err)
	}
}

func TestReaderRetainKeepsBatchesAlive(t *testing.T) {
	mem := checkedAlloc(t)
	path := writeFile(t, "r.csv", []byte("a\n1\n2\n3\n"))
	rr, err := Open(context.Background(), KindCSV, path, Options{BatchRows: 2, Alloc: mem})
	if err != nil {
		t.Fatal(err)
	}
	rr.Retain()
	rr.Release() // still one reference
	if !rr.Next() {
		t.Fatal(rr.Err())
	}
	kept := rr.RecordBatch()
	kept.Retain()
	rr.Release()
	if kept.NumRows() != 2 || kept.Column(0).ValueStr(1) != "2" {
		t.Errorf("retained batch changed: %v", kept)
	}
	kept.Release()
}

func TestErrorTextIsBuiltFromFieldsOnly(t *testing.T) {
	e := &Error{Code: CodeMalformedInput, File: "v.csv", Row: 7, Line: 8, Column: "amount",
		Reason: reasonTypeMismatch + " int64", Err: errors.New("strconv.ParseInt: parsing \"" + secretText + "\": invalid syntax")}
	const want = `connectors: malformed_input: v.csv row 7 line 8 column "amount": value does not match column type int64`
	if e.Error() != want {
		t.Errorf("Error() = %q, want %q", e.Error(), want)
	}
	if errors.Unwrap(e) != e.Err {
		t.Error("Unwrap does not return the cause")
	}
}
