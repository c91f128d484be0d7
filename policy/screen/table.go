package screen

// Table is an Output held in memory: what tests use, and a simple adapter for job kinds
// whose results are small (an HE verification's answers, a model's parameters).
type Table struct {
	Cols  []Column
	Data  [][]Value // Data[row][col]; a missing cell is null
	Units []float64 // per-row noisy unit counts, or nil
	Errs  []string
	// Size is the released size in bytes; 0 means estimate it from the contents.
	Size int
}

var _ Output = (*Table)(nil)

// Columns implements Output.
func (t *Table) Columns() []Column { return t.Cols }

// Rows implements Output.
func (t *Table) Rows() int { return len(t.Data) }

// Cell implements Output.
func (t *Table) Cell(row, col int) Value {
	if r := t.Data[row]; col < len(r) {
		return r[col]
	}
	return Value{}
}

// Bytes implements Output: Size, or an estimate (names, string bytes, 8 bytes a number,
// error messages).
func (t *Table) Bytes() int {
	if t.Size > 0 {
		return t.Size
	}
	n := 0
	for _, c := range t.Cols {
		n += len(c.Name)
	}
	for _, r := range t.Data {
		for _, v := range r {
			switch v.Type {
			case TypeString:
				n += len(v.Str)
			case TypeFloat, TypeInt:
				n += 8
			}
		}
	}
	for _, e := range t.Errs {
		n += len(e)
	}
	return n
}

// UnitCounts implements Output.
func (t *Table) UnitCounts() []float64 { return t.Units }

// Errors implements Output.
func (t *Table) Errors() []string { return t.Errs }
