package main

import (
	"encoding/binary"
	"errors"
	"math"
)

// A minimal reader of the Arrow IPC stream format (https://arrow.apache.org/docs/format/Columnar.html#ipc-streaming-format)
// for what the platform sends a module: a Schema message, then RecordBatch messages whose
// columns are float64 or utf8, uncompressed, without dictionaries. It sums the float64
// columns' non-NULL values; utf8 columns are skipped.

var errFormat = errors.New("not an Arrow IPC stream this reader understands")

// Arrow's flatbuffer enums this reader needs (Message.fbs, Schema.fbs).
const (
	headerSchema      = 1
	headerRecordBatch = 3
	typeFloatingPoint = 3
	typeUtf8          = 5
	precisionDouble   = 2
)

// stats are the per-float64-column sums and counts of non-NULL values.
type stats struct {
	sums   []float64
	counts []int
}

type column struct {
	float bool // float64 (2 buffers), else utf8 (3 buffers)
	index int  // position among the float64 columns
}

func readStream(b []byte) (*stats, error) {
	var cols []column
	var st stats
	for len(b) > 0 {
		if len(b) < 4 {
			return nil, errFormat
		}
		if binary.LittleEndian.Uint32(b) == 0xFFFFFFFF { // continuation marker
			b = b[4:]
			if len(b) < 4 {
				return nil, errFormat
			}
		}
		size := int(int32(binary.LittleEndian.Uint32(b)))
		b = b[4:]
		if size == 0 { // end of stream
			break
		}
		if size < 0 || size > len(b) {
			return nil, errFormat
		}
		meta := fb(b[:size])
		b = b[size:]
		msg, err := meta.root()
		if err != nil {
			return nil, err
		}
		bodyLen := int(msg.i64(3))
		if bodyLen < 0 || bodyLen > len(b) {
			return nil, errFormat
		}
		body := b[:bodyLen]
		b = b[bodyLen:]
		header, ok := msg.table(2)
		if !ok {
			return nil, errFormat
		}
		switch msg.u8(1) {
		case headerSchema:
			if cols, err = schemaColumns(header); err != nil {
				return nil, err
			}
			st.sums, st.counts = make([]float64, countFloats(cols)), make([]int, countFloats(cols))
		case headerRecordBatch:
			if cols == nil {
				return nil, errFormat
			}
			if err := addBatch(&st, cols, header, body); err != nil {
				return nil, err
			}
		default:
			return nil, errFormat
		}
	}
	if cols == nil {
		return nil, errFormat
	}
	return &st, nil
}

func countFloats(cols []column) int {
	n := 0
	for _, c := range cols {
		if c.float {
			n++
		}
	}
	return n
}

// schemaColumns reads Schema.fields: each a Field table with type_type (field 2) and type
// (field 3, a FloatingPoint table whose precision is field 0).
func schemaColumns(schema table) ([]column, error) {
	fields, ok := schema.vector(1)
	if !ok {
		return nil, errFormat
	}
	cols := []column{}
	floats := 0
	for i := range fields.n {
		f, ok := fields.tableAt(i)
		if !ok {
			return nil, errFormat
		}
		if _, nested := f.vector(5); nested && f.vectorLen(5) > 0 {
			return nil, errFormat // children: not a flat column
		}
		switch f.u8(2) {
		case typeFloatingPoint:
			t, ok := f.table(3)
			if !ok || t.i16(0) != precisionDouble {
				return nil, errFormat
			}
			cols = append(cols, column{float: true, index: floats})
			floats++
		case typeUtf8:
			cols = append(cols, column{})
		default:
			return nil, errFormat
		}
	}
	return cols, nil
}

// addBatch reads RecordBatch: length (field 0), nodes (field 1: structs {length, null_count}
// of 16 bytes), buffers (field 2: structs {offset, length} of 16 bytes), and no compression
// (field 3).
func addBatch(st *stats, cols []column, rb table, body []byte) error {
	if _, compressed := rb.table(3); compressed {
		return errFormat
	}
	nodes, ok1 := rb.vector(1)
	bufs, ok2 := rb.vector(2)
	if !ok1 || !ok2 || nodes.n != len(cols) {
		return errFormat
	}
	buf := func(i int) ([]byte, bool) {
		if i >= bufs.n {
			return nil, false
		}
		p := bufs.pos + 16*i
		off, n := int(bufs.t.buf.i64at(p)), int(bufs.t.buf.i64at(p+8))
		if off < 0 || n < 0 || off > len(body) || n > len(body)-off {
			return nil, false
		}
		return body[off : off+n], true
	}
	bi := 0
	for ci, c := range cols {
		rows := int(nodes.t.buf.i64at(nodes.pos + 16*ci))
		if !c.float {
			bi += 3
			continue
		}
		valid, ok1 := buf(bi)
		data, ok2 := buf(bi + 1)
		bi += 2
		if !ok1 || !ok2 || rows < 0 || len(data) < 8*rows || (len(valid) > 0 && len(valid) < (rows+7)/8) {
			return errFormat
		}
		for r := range rows {
			if len(valid) > 0 && valid[r/8]&(1<<(r%8)) == 0 {
				continue
			}
			v := math.Float64frombits(binary.LittleEndian.Uint64(data[8*r:]))
			if math.IsNaN(v) || math.IsInf(v, 0) {
				continue
			}
			st.sums[c.index] += v
			st.counts[c.index]++
		}
	}
	return nil
}

// fb is a flatbuffer; table and vector read it with bounds checks (a bad offset reads as
// absent or zero, never out of range).
type fb []byte

func (b fb) u32at(p int) (uint32, bool) {
	if p < 0 || p+4 > len(b) {
		return 0, false
	}
	return binary.LittleEndian.Uint32(b[p:]), true
}

func (b fb) i64at(p int) int64 {
	if p < 0 || p+8 > len(b) {
		return 0
	}
	return int64(binary.LittleEndian.Uint64(b[p:]))
}

func (b fb) root() (table, error) {
	off, ok := b.u32at(0)
	if !ok {
		return table{}, errFormat
	}
	return b.tableAtPos(int(off))
}

func (b fb) tableAtPos(p int) (table, error) {
	so, ok := b.u32at(p)
	if !ok {
		return table{}, errFormat
	}
	vt := p - int(int32(so))
	if vt < 0 || vt+4 > len(b) {
		return table{}, errFormat
	}
	return table{buf: b, pos: p, vt: vt, vtSize: int(binary.LittleEndian.Uint16(b[vt:]))}, nil
}

type table struct {
	buf    fb
	pos    int
	vt     int
	vtSize int
}

// field returns the absolute position of field i, or false when absent.
func (t table) field(i int) (int, bool) {
	e := 4 + 2*i
	if e+2 > t.vtSize || t.vt+e+2 > len(t.buf) {
		return 0, false
	}
	off := int(binary.LittleEndian.Uint16(t.buf[t.vt+e:]))
	if off == 0 {
		return 0, false
	}
	return t.pos + off, true
}

func (t table) u8(i int) byte {
	p, ok := t.field(i)
	if !ok || p >= len(t.buf) {
		return 0
	}
	return t.buf[p]
}

func (t table) i16(i int) int16 {
	p, ok := t.field(i)
	if !ok || p+2 > len(t.buf) {
		return 0
	}
	return int16(binary.LittleEndian.Uint16(t.buf[p:]))
}

func (t table) i64(i int) int64 {
	p, ok := t.field(i)
	if !ok {
		return 0
	}
	return t.buf.i64at(p)
}

// indirect follows the offset stored in field i.
func (t table) indirect(i int) (int, bool) {
	p, ok := t.field(i)
	if !ok {
		return 0, false
	}
	off, ok := t.buf.u32at(p)
	if !ok {
		return 0, false
	}
	return p + int(off), true
}

func (t table) table(i int) (table, bool) {
	p, ok := t.indirect(i)
	if !ok {
		return table{}, false
	}
	sub, err := t.buf.tableAtPos(p)
	return sub, err == nil
}

type vector struct {
	t   table
	pos int // the first element
	n   int
}

func (t table) vector(i int) (vector, bool) {
	p, ok := t.indirect(i)
	if !ok {
		return vector{}, false
	}
	n, ok := t.buf.u32at(p)
	if !ok || int(n) > len(t.buf) {
		return vector{}, false
	}
	return vector{t: t, pos: p + 4, n: int(n)}, true
}

func (t table) vectorLen(i int) int {
	v, _ := t.vector(i)
	return v.n
}

// tableAt returns element i of a vector of tables.
func (v vector) tableAt(i int) (table, bool) {
	p := v.pos + 4*i
	off, ok := v.t.buf.u32at(p)
	if !ok {
		return table{}, false
	}
	sub, err := v.t.buf.tableAtPos(p + int(off))
	return sub, err == nil
}
