package connectors

import (
	"bytes"
	"errors"
	"io"
	"os"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/ipc"
)

// ipcSource streams an Arrow IPC file (random-access format, "ARROW1" magic and a footer) or an
// Arrow IPC stream. Exactly one of file and stream is set.
type ipcSource struct {
	path   string
	f      *os.File
	file   *ipc.FileReader
	i      int // next batch index in file
	stream *ipc.Reader
}

func openIPC(f *os.File, path string, opt Options) (source, error) {
	s := &ipcSource{path: path, f: f}
	err := guard(path, func() error { return s.init(opt) })
	if err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

func (s *ipcSource) init(opt Options) error {
	magic := make([]byte, len(ipc.Magic))
	if _, err := io.ReadFull(s.f, magic); err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return newError(CodeSourceUnreadable, s.path, reasonCannotRead, err)
	}
	if _, err := s.f.Seek(0, io.SeekStart); err != nil {
		return newError(CodeSourceUnreadable, s.path, reasonCannotRead, err)
	}
	st, err := s.f.Stat()
	if err != nil {
		return newError(CodeSourceUnreadable, s.path, reasonCannotRead, err)
	}
	if bytes.Equal(magic, ipc.Magic) {
		s.file, err = ipc.NewFileReader(s.f, ipc.WithAllocator(opt.Alloc))
	} else {
		// No message can be larger than the file. ipc.NewReader applies no size limit at all, so
		// a corrupt length field would make it allocate that many bytes and crash the worker
		// with an out-of-memory error that no recover can catch; hence the explicit reader.
		limit := max(st.Size(), 8)
		mr := ipc.NewMessageReader(s.f, ipc.WithAllocator(opt.Alloc),
			ipc.WithMetadataSizeLimit(limit), ipc.WithBodySizeLimit(limit))
		s.stream, err = ipc.NewReaderFromMessageReader(mr, ipc.WithAllocator(opt.Alloc))
	}
	if err != nil {
		if errors.Is(err, arrow.ErrNotImplemented) {
			return newError(CodeUnsupportedType, s.path, reasonUnsupported, err)
		}
		return newError(CodeMalformedInput, s.path, reasonNotIPC, err)
	}
	if s.schema().NumFields() == 0 {
		return newError(CodeEmptySource, s.path, reasonNoColumns, nil)
	}
	return nil
}

func (s *ipcSource) schema() *arrow.Schema {
	if s.file != nil {
		return s.file.Schema()
	}
	return s.stream.Schema()
}

func (s *ipcSource) next() (arrow.RecordBatch, error) {
	var rec arrow.RecordBatch
	if s.file != nil {
		if s.i >= s.file.NumRecords() {
			return nil, nil
		}
		var err error
		// RecordBatchAt hands ownership to us, unlike RecordBatch.
		if rec, err = s.file.RecordBatchAt(s.i); err != nil {
			return nil, newError(CodeMalformedInput, s.path, reasonCorruptIPC, err)
		}
		s.i++
	} else {
		// A stream cut exactly between two messages ends like a complete one: the format makes
		// the end-of-stream marker optional. Only the file format can detect that truncation.
		if !s.stream.Next() {
			if err := s.stream.Err(); err != nil {
				return nil, newError(CodeMalformedInput, s.path, reasonCorruptIPC, err)
			}
			return nil, nil
		}
		rec = s.stream.RecordBatch()
		rec.Retain()
	}
	if err := validate(s.path, rec); err != nil {
		rec.Release()
		return nil, err
	}
	return rec, nil
}

func (s *ipcSource) close() {
	if s.file != nil {
		s.file.Close() // does not close s.f
	}
	if s.stream != nil {
		s.stream.Release()
	}
	s.f.Close()
}
