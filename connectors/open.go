package connectors

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync/atomic"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// Kind values match catalog.SourceKind strings.
const (
	KindCSV     = "csv"
	KindParquet = "parquet"
	KindArrow   = "arrow"
)

// DefaultBatchRows is the batch size used when Options.BatchRows is not positive.
const DefaultBatchRows = 65536

// Options tunes a reader. The zero value is ready to use.
type Options struct {
	// BatchRows is the most rows per batch (default DefaultBatchRows). CSV and Parquet honour it;
	// Arrow IPC batches are passed through as they were written.
	BatchRows int
	// Alloc allocates the batches' buffers (default memory.DefaultAllocator).
	Alloc memory.Allocator
}

func (o Options) withDefaults() Options {
	if o.BatchRows <= 0 {
		o.BatchRows = DefaultBatchRows
	}
	if o.Alloc == nil {
		o.Alloc = memory.DefaultAllocator
	}
	return o
}

// Open returns a streaming reader over the source at path; kind is one of KindCSV, KindParquet
// and KindArrow. The caller must Release the reader. Open follows the path as the operating
// system does (symbolic links included): it is for trusted local callers (tests, the red-team
// truth). The sandbox worker never opens a path: it reads through OpenFile a file the server
// opened under a provider's import root.
//
// A batch returned by RecordBatch is valid only until the next call to Next (or Release); Retain
// it to keep it longer. When Next returns false, check Err: a source that fails mid-stream
// reports an *Error there, after the batches before the failure were delivered, so a consumer
// must treat everything it has seen as void. Cancelling ctx stops the reader before the next
// batch and Err then returns ctx's error unchanged.
//
// Every error from Open is an *Error, except ctx's own error when ctx is already done.
func Open(ctx context.Context, kind string, path string, opt Options) (array.RecordReader, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f, err := openFile(path)
	if err != nil {
		return nil, err
	}
	return OpenFile(ctx, kind, f, filepath.Base(path), opt)
}

// OpenFile is Open over a file already open for reading; name (a base name) only names the
// file in errors. OpenFile takes ownership of f: the reader closes it on Release, and OpenFile
// closes it when it fails. f must be a regular file: a directory, FIFO or device is refused
// (source_unreadable) before anything is read. Parquet and Arrow IPC files are read at offsets
// (ReadAt), CSV from f's current offset on.
func OpenFile(ctx context.Context, kind string, f *os.File, name string, opt Options) (array.RecordReader, error) {
	if err := ctx.Err(); err != nil {
		f.Close()
		return nil, err
	}
	name = filepath.Base(name)
	if err := checkRegular(f, name); err != nil {
		f.Close()
		return nil, err
	}
	opt = opt.withDefaults()
	var (
		src source
		err error
	)
	switch kind {
	case KindCSV:
		src, err = openCSV(f, name, opt)
	case KindParquet:
		src, err = openParquet(ctx, f, name, opt)
	case KindArrow:
		src, err = openIPC(f, name, opt)
	default:
		f.Close()
		return nil, newError(CodeUnsupportedType, name, reasonUnknownKind, fmt.Errorf("kind %q", kind))
	}
	if err != nil {
		return nil, err
	}
	return newReader(ctx, name, src), nil
}

func newReader(ctx context.Context, path string, src source) *reader {
	r := &reader{ctx: ctx, path: path, src: src}
	r.refs.Add(1)
	return r
}

// source is one format's batch producer. next returns a batch the caller owns, or nil, nil at
// the end; its errors are already *Error. close frees what the source holds.
type source interface {
	schema() *arrow.Schema
	next() (arrow.RecordBatch, error)
	close()
}

// reader adapts a source to array.RecordReader: it owns the current batch, stops at the first
// error, checks ctx between batches, and turns a panic in the arrow libraries (which they raise
// on some corrupt inputs) into an *Error instead of killing the worker.
type reader struct {
	refs atomic.Int64
	ctx  context.Context
	path string
	src  source
	cur  arrow.RecordBatch
	err  error
	done bool
}

var _ array.RecordReader = (*reader)(nil)

func (r *reader) Schema() *arrow.Schema { return r.src.schema() }

func (r *reader) Next() bool {
	if r.cur != nil {
		r.cur.Release()
		r.cur = nil
	}
	if r.done {
		return false
	}
	if err := r.ctx.Err(); err != nil {
		r.err, r.done = err, true
		return false
	}
	var rec arrow.RecordBatch
	r.err = guard(r.path, func() (err error) {
		rec, err = r.src.next()
		return err
	})
	if r.err != nil || rec == nil {
		if rec != nil {
			rec.Release()
		}
		if r.err != nil && r.ctx.Err() != nil {
			// Cancelled while reading: report that, not whatever the interrupted read said.
			r.err = r.ctx.Err()
		}
		r.done = true
		return false
	}
	r.cur = rec
	return true
}

func (r *reader) RecordBatch() arrow.RecordBatch { return r.cur }

// Deprecated: use RecordBatch (kept because array.RecordReader requires it).
func (r *reader) Record() arrow.RecordBatch { return r.cur }

func (r *reader) Err() error { return r.err }

func (r *reader) Retain() { r.refs.Add(1) }

func (r *reader) Release() {
	if r.refs.Add(-1) != 0 {
		return
	}
	if r.cur != nil {
		r.cur.Release()
		r.cur = nil
	}
	r.src.close()
}

// guard runs f and converts a panic into a malformed_input error. The arrow and parquet
// readers index into buffers whose sizes come from the file; on corrupt files some paths panic
// rather than return an error.
func guard(path string, f func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = newError(CodeMalformedInput, path, reasonInternal, fmt.Errorf("panic: %v", p))
		}
	}()
	return f()
}

// openFile opens path for reading and classifies the failure.
func openFile(path string) (*os.File, error) {
	f, err := os.Open(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, newError(CodeSourceNotFound, path, reasonNotFound, err)
	case err != nil:
		return nil, newError(CodeSourceUnreadable, path, reasonCannotOpen, err)
	}
	return f, nil
}

// checkRegular refuses anything but a regular file: a directory cannot be read as data, and a
// FIFO or device could block the reader or never end.
func checkRegular(f *os.File, name string) error {
	st, err := f.Stat()
	if err != nil {
		return newError(CodeSourceUnreadable, name, reasonCannotOpen, err)
	}
	if st.IsDir() {
		return newError(CodeSourceUnreadable, name, reasonIsDir, nil)
	}
	if !st.Mode().IsRegular() {
		return newError(CodeSourceUnreadable, name, reasonNotRegular, nil)
	}
	return nil
}

// validate checks a batch decoded from an untrusted binary file before anyone reads it: a
// corrupt offsets buffer would otherwise make consumers (DuckDB included) read out of bounds.
func validate(path string, rec arrow.RecordBatch) error {
	for i, col := range rec.Columns() {
		if cause := validateColumn(col); cause != nil {
			// ValidateFull's message can quote a string value; it stays in the cause only.
			e := newError(CodeMalformedInput, path, reasonBadColumnData, cause)
			e.Column = rec.Schema().Field(i).Name
			return e
		}
	}
	return nil
}

// validateColumn recovers on its own because array.ValidateFull itself panics on some corrupt
// offsets, and the caller must still release the batch.
func validateColumn(col arrow.Array) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v", p)
		}
	}()
	return array.ValidateFull(col)
}
