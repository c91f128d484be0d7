package connectors

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/c1b99f93/cleanroom/errcode"
)

// Stable error codes (declared in errcode, the one registry). Callers and tests branch on
// these, never on the text.
const (
	// CodeSourceNotFound: the path does not exist.
	CodeSourceNotFound = errcode.SourceNotFound
	// CodeSourceUnreadable: the path exists but cannot be opened or read (permissions, a
	// directory, an I/O error).
	CodeSourceUnreadable = errcode.SourceUnreadable
	// CodeMalformedInput: bad CSV structure, a value not convertible to its column's type,
	// truncated or corrupt Parquet or Arrow IPC data.
	CodeMalformedInput = errcode.MalformedInput
	// CodeUnsupportedType: the source kind, or a column type in the source, is not supported.
	CodeUnsupportedType = errcode.UnsupportedType
	// CodeEmptySource: the source has no columns (an empty CSV file, no header).
	CodeEmptySource = errcode.EmptySource
)

// Reason phrases. Error text is built only from these, the code, positions, the file's base
// name and column names, so it can never echo a value from the file.
const (
	reasonNotFound       = "file does not exist"
	reasonCannotOpen     = "cannot open file"
	reasonCannotRead     = "cannot read file"
	reasonIsDir          = "source is a directory"
	reasonNotRegular     = "source is not a regular file"
	reasonUnknownKind    = "unknown source kind"
	reasonNoHeader       = "missing header row"
	reasonNoColumns      = "source has no columns"
	reasonEmptyName      = "empty column name"
	reasonDuplicateName  = "duplicate column name"
	reasonNameNotUTF8    = "column name is not valid UTF-8"
	reasonFieldCount     = "wrong number of fields"
	reasonBareQuote      = "bare quote in unquoted field"
	reasonQuote          = "unterminated or misplaced quote"
	reasonCSVSyntax      = "invalid CSV syntax"
	reasonNotUTF8        = "value is not valid UTF-8"
	reasonTypeMismatch   = "value does not match column type" // + " " + type name
	reasonNotParquet     = "not a valid parquet file"
	reasonCorruptParquet = "corrupt or truncated parquet data"
	reasonNotIPC         = "not a valid Arrow IPC file or stream"
	reasonCorruptIPC     = "corrupt or truncated Arrow IPC data"
	reasonBadColumnData  = "column data is inconsistent"
	reasonUnsupported    = "unsupported column type"
	reasonInternal       = "corrupt data made the reader fail"
)

// Error is a malformed-input or unreadable-source error.
//
// Error() is safe to show outside the worker: it holds the code, the file's base name, the
// 1-based data row (header excluded) and/or the line where the problem starts, the column name
// and a fixed reason phrase; never the offending value. Err is the underlying cause, for logs
// inside the worker only: causes from the arrow libraries may quote data (strconv and arrow
// validation errors do).
type Error struct {
	Code   errcode.Code
	File   string // base name only: the directory layout of the worker is not the user's business
	Row    int64  // 1-based data row, header excluded; 0 when unknown
	Line   int64  // 1-based line in the file where the row starts; 0 when unknown
	Column string
	Reason string
	Err    error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("connectors: ")
	b.WriteString(string(e.Code))
	if e.File != "" {
		b.WriteString(": ")
		b.WriteString(e.File)
	}
	if e.Row > 0 {
		fmt.Fprintf(&b, " row %d", e.Row)
	}
	if e.Line > 0 {
		fmt.Fprintf(&b, " line %d", e.Line)
	}
	if e.Column != "" {
		fmt.Fprintf(&b, " column %q", e.Column)
	}
	b.WriteString(": ")
	b.WriteString(e.Reason)
	return b.String()
}

// Unwrap returns the cause, for logs inside the worker.
func (e *Error) Unwrap() error { return e.Err }

func newError(code errcode.Code, path, reason string, cause error) *Error {
	e := &Error{Code: code, Reason: reason, Err: cause}
	if path != "" {
		e.File = filepath.Base(path)
	}
	return e
}
