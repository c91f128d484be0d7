package connectors

import (
	"context"
	"errors"
	"os"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

// parquetSource streams a Parquet file through pqarrow's record reader.
type parquetSource struct {
	path string
	f    *os.File
	pf   *file.Reader
	rr   pqarrow.RecordReader
}

func openParquet(ctx context.Context, f *os.File, path string, opt Options) (source, error) {
	s := &parquetSource{path: path, f: f}
	err := guard(path, func() error { return s.init(ctx, opt) })
	if err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

func (s *parquetSource) init(ctx context.Context, opt Options) error {
	// Page and decompression scratch buffers come from Go's garbage-collected allocator, not
	// opt.Alloc: arrow-go drops some of them on corrupt-file error paths without releasing them
	// (and pools others behind finalizers), which would leak from a manual allocator. Output
	// batches are built with opt.Alloc.
	props := parquet.NewReaderProperties(memory.NewGoAllocator())
	// Without a buffered stream the reader loads a whole column chunk (up to a row group's worth
	// of one column) at once; streaming keeps memory near one page per column.
	props.BufferedStreamEnabled = true
	pf, err := file.NewParquetReader(s.f, file.WithReadProps(props))
	if err != nil {
		return newError(CodeMalformedInput, s.path, reasonNotParquet, err)
	}
	s.pf = pf
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{BatchSize: int64(opt.BatchRows)}, opt.Alloc)
	if err != nil {
		return s.schemaError(err)
	}
	sch, err := fr.Schema()
	if err != nil {
		return s.schemaError(err)
	}
	if sch.NumFields() == 0 {
		return newError(CodeEmptySource, s.path, reasonNoColumns, nil)
	}
	rr, err := fr.GetRecordReader(ctx, nil, nil)
	if err != nil {
		return s.schemaError(err)
	}
	s.rr = rr
	return nil
}

// schemaError tells a type the Arrow mapping does not know from a corrupt footer.
func (s *parquetSource) schemaError(err error) error {
	if errors.Is(err, arrow.ErrNotImplemented) {
		return newError(CodeUnsupportedType, s.path, reasonUnsupported, err)
	}
	return newError(CodeMalformedInput, s.path, reasonCorruptParquet, err)
}

func (s *parquetSource) schema() *arrow.Schema { return s.rr.Schema() }

func (s *parquetSource) next() (arrow.RecordBatch, error) {
	if !s.rr.Next() {
		if err := s.rr.Err(); err != nil {
			return nil, newError(CodeMalformedInput, s.path, reasonCorruptParquet, err)
		}
		return nil, nil
	}
	rec := s.rr.RecordBatch()
	if err := validate(s.path, rec); err != nil {
		return nil, err
	}
	rec.Retain()
	return rec, nil
}

func (s *parquetSource) close() {
	if s.rr != nil {
		s.rr.Release()
	}
	if s.pf != nil {
		s.pf.Close() // closes s.f too
	} else {
		s.f.Close()
	}
}
