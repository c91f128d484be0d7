// Package connectors reads providers' sources (CSV, Parquet and Arrow IPC files; Postgres later)
// into Arrow record batches, streaming with bounded memory.
//
// It runs inside the sandbox worker, the only process allowed to see raw rows. Its errors leave
// that process, so they must be safe to show: an *Error names the file, the row or line and the
// column, with a fixed reason phrase, and never carries a data value in its text.
//
//	path ──Open(kind)──▶ csv:     header → infer types from the first rows → convert row by row
//	                     parquet: pqarrow record reader (batch size = BatchRows)
//	                     arrow:   IPC file ("ARROW1" magic) or IPC stream
//	                          │
//	                          ▼
//	                 array.RecordReader: one batch at a time; ctx checked between batches;
//	                 every failure (at Open or from Err) is an *Error with a stable code
package connectors
