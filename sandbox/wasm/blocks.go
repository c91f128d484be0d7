package wasm

import (
	"bytes"
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/c1b99f93/cleanroom/rawset"
)

// blockBatchRows is the largest record batch of a block's stream.
const blockBatchRows = 65536

// Splitter divides rows into k disjoint blocks by a keyed hash of their privacy unit and
// writes each block as an Arrow IPC stream. A unit's block depends only on the unit's own
// identity and the key (HMAC-SHA256, rawset.Keyer) — never on other units or on row order — so
// adding or removing one unit changes exactly one block: the premise of sample-and-aggregate.
// The key is a per-job secret, so no one outside the worker knows which units share a block.
//
// Input batches have the unit (utf8, normalised) in column 0 and the module's columns after
// it, each float64 or utf8; the blocks carry only the module's columns.
type Splitter struct {
	k      int
	keyer  *rawset.Keyer
	schema *arrow.Schema // the blocks' schema: the input's without column 0
	blocks []*blockWriter
	// The last unit seen and its block: rows arrive clustered by unit, so one HMAC per unit.
	lastUnit  string
	lastBlock int
	seen      bool
}

type blockWriter struct {
	buf  bytes.Buffer
	w    *ipc.Writer
	rb   *array.RecordBuilder
	rows int
}

// NewSplitter returns a splitter into k blocks for batches of schema in, keyed by key (at
// least rawset.MinKeyLen bytes).
func NewSplitter(in *arrow.Schema, key []byte, k int) (*Splitter, error) {
	if k < 1 {
		return nil, fmt.Errorf("wasm: k must be at least 1")
	}
	keyer, err := rawset.NewKeyer(key)
	if err != nil {
		return nil, fmt.Errorf("wasm: block key: %w", err)
	}
	if in.NumFields() < 1 || in.Field(0).Type.ID() != arrow.STRING {
		return nil, fmt.Errorf("wasm: the rows' first column must be the unit as utf8")
	}
	fields := in.Fields()[1:]
	for _, f := range fields {
		if id := f.Type.ID(); id != arrow.FLOAT64 && id != arrow.STRING {
			return nil, fmt.Errorf("wasm: column %q must be float64 or utf8, not %s", f.Name, f.Type)
		}
	}
	s := &Splitter{k: k, keyer: keyer, schema: arrow.NewSchema(fields, nil)}
	for range k {
		bw := &blockWriter{rb: array.NewRecordBuilder(memory.DefaultAllocator, s.schema)}
		bw.w = ipc.NewWriter(&bw.buf, ipc.WithSchema(s.schema))
		s.blocks = append(s.blocks, bw)
	}
	return s, nil
}

// BlockOf is the block of unit among k under keyer.
func BlockOf(keyer *rawset.Keyer, unit string, k int) int {
	return int(keyer.Hash(unit) % uint64(k))
}

// Add appends the rows of rec to their blocks.
func (s *Splitter) Add(rec arrow.RecordBatch) error {
	if !rec.Schema().Equal(arrow.NewSchema(append([]arrow.Field{rec.Schema().Field(0)}, s.schema.Fields()...), nil)) {
		return fmt.Errorf("wasm: a batch's schema differs from the splitter's")
	}
	units := rec.Column(0).(*array.String)
	for row := 0; row < int(rec.NumRows()); row++ {
		// A NULL unit normalises to "" like any other value: it is one unit.
		u := units.Value(row)
		if !s.seen || u != s.lastUnit {
			s.lastUnit, s.lastBlock, s.seen = u, BlockOf(s.keyer, u, s.k), true
		}
		bw := s.blocks[s.lastBlock]
		for c := 1; c < int(rec.NumCols()); c++ {
			appendValue(bw.rb.Field(c-1), rec.Column(c), row)
		}
		if bw.rows++; bw.rows%blockBatchRows == 0 {
			if err := bw.flush(); err != nil {
				return err
			}
		}
	}
	return nil
}

func appendValue(b array.Builder, col arrow.Array, row int) {
	if col.IsNull(row) {
		b.AppendNull()
		return
	}
	switch c := col.(type) {
	case *array.Float64:
		b.(*array.Float64Builder).Append(c.Value(row))
	case *array.String:
		b.(*array.StringBuilder).Append(c.Value(row))
	}
}

func (bw *blockWriter) flush() error {
	rec := bw.rb.NewRecordBatch()
	defer rec.Release()
	if rec.NumRows() == 0 {
		return nil
	}
	return bw.w.Write(rec)
}

// Blocks finishes every block's stream and returns them in block order. A block no unit fell
// into is a stream with the schema and no rows: the module runs on it like on any other.
func (s *Splitter) Blocks() ([][]byte, error) {
	out := make([][]byte, s.k)
	for i, bw := range s.blocks {
		if err := bw.flush(); err != nil {
			return nil, err
		}
		if err := bw.w.Close(); err != nil {
			return nil, err
		}
		bw.rb.Release()
		out[i] = bw.buf.Bytes()
	}
	return out, nil
}
