package post

import (
	"fmt"
	"math"
	"strings"
)

// Op is an expression's operator.
type Op string

// Operators. Scalar operators read the current row; window operators read the rows of the
// current row's window (its partition, in its order, within its frame).
const (
	OpInput  Op = "input"  // the step's input column Index
	OpNumber Op = "number" // the constant Num
	OpText   Op = "text"   // the constant Text (in comparisons only)
	OpNull   Op = "null"   // NULL

	OpAdd Op = "+"
	OpSub Op = "-"
	OpMul Op = "*"
	OpDiv Op = "/"
	OpNeg Op = "neg"
	// OpRound rounds Args[0] to Num decimal digits (half away from zero, as DuckDB does).
	OpRound    Op = "round"
	OpAbs      Op = "abs"
	OpCoalesce Op = "coalesce"
	OpNullIf   Op = "nullif"
	// OpCase is CASE WHEN Args[0] THEN Args[1] [WHEN Args[2] THEN Args[3] …] [ELSE last] END.
	OpCase Op = "case"

	OpEq Op = "="
	OpNe Op = "<>"
	OpLt Op = "<"
	OpLe Op = "<="
	OpGt Op = ">"
	OpGe Op = ">="

	OpAnd       Op = "and"
	OpOr        Op = "or"
	OpNot       Op = "not"
	OpIsNull    Op = "is_null"
	OpIsNotNull Op = "is_not_null"
	// OpBetween is Args[0] BETWEEN Args[1] AND Args[2].
	OpBetween Op = "between"
	// OpIn is Args[0] IN (Args[1:]); Negate makes it NOT IN.
	OpIn Op = "in"

	OpSumOver       Op = "sum_over"
	OpAvgOver       Op = "avg_over"
	OpCountOver     Op = "count_over"      // non-NULL values of Args[0]
	OpCountStarOver Op = "count_star_over" // rows
	OpMinOver       Op = "min_over"
	OpMaxOver       Op = "max_over"
	OpRowNumber     Op = "row_number"
	OpRank          Op = "rank"
	OpDenseRank     Op = "dense_rank"
	// OpLag and OpLead read Args[0] Window.Offset rows before or after, or Window.Default.
	OpLag  Op = "lag"
	OpLead Op = "lead"
)

// Type is the static type of an expression.
type Type string

// Types.
const (
	TypeNumber Type = "number"
	TypeText   Type = "text" // a group key's value
	TypeBool   Type = "bool"
)

// Expr is one node of a post-processing expression.
type Expr struct {
	Op     Op      `json:"op"`
	Index  int     `json:"index,omitempty"`
	Num    float64 `json:"num,omitempty"`
	Text   string  `json:"text,omitempty"`
	Negate bool    `json:"negate,omitempty"`
	Args   []*Expr `json:"args,omitempty"`
	Window *Window `json:"window,omitempty"`
}

// Window is the window of a window operator: rows are grouped by Partition, ordered by Order
// (ties keep the released order) and framed by Frame.
type Window struct {
	Partition []*Expr   `json:"partition,omitempty"`
	Order     []SortKey `json:"order,omitempty"`
	Frame     Frame     `json:"frame"`
	Offset    int64     `json:"offset,omitempty"`  // LAG/LEAD: how many rows away (default 1)
	Default   *Expr     `json:"default,omitempty"` // LAG/LEAD: the value past the partition's end
}

// SortKey is one ORDER BY term of a window.
type SortKey struct {
	Expr       *Expr `json:"expr"`
	Descending bool  `json:"descending,omitempty"`
}

// Frame is a window aggregate's frame. The zero Frame is SQL's default: RANGE BETWEEN
// UNBOUNDED PRECEDING AND CURRENT ROW — the rows up to the current one and its peers (the
// whole partition when the window has no ORDER BY).
type Frame struct {
	Rows bool `json:"rows,omitempty"` // ROWS (else RANGE, only in the default form)
	// Start and End are offsets from the current row: nil is unbounded (preceding for Start,
	// following for End); -2 is two rows preceding, 0 the current row, 1 one row following.
	Start *int64 `json:"start,omitempty"`
	End   *int64 `json:"end,omitempty"`
	// ToEnd marks RANGE … UNBOUNDED FOLLOWING (the default frame ends at the current row).
	ToEnd bool `json:"to_end,omitempty"`
}

// Column is one output column of a step.
type Column struct {
	Name string `json:"name"`
	Expr *Expr  `json:"expr"`
}

// Step filters its input rows by Where (nil keeps them all), then computes Columns for each
// kept row. Windows see the kept rows only.
type Step struct {
	Where   *Expr    `json:"where,omitempty"`
	Columns []Column `json:"columns"`
}

// Program is a post-processing program over released rows with len(Inputs) columns.
type Program struct {
	Inputs []Type `json:"inputs"`
	Steps  []Step `json:"steps"`
}

// Limits on a program's size: nothing an analyst writes comes near them.
const (
	MaxSteps   = 4
	MaxNodes   = 4096
	MaxDepth   = 64
	MaxColumns = 256
	MaxOffset  = 1 << 20
	MaxDigits  = 15
)

// Validate checks the program: every input index in range, every operator known with the
// right number and types of arguments, no window inside a window or a WHERE, text values only
// passed through (never computed), and its size within the limits. Eval runs only valid
// programs. Its errors name operators and positions, never values.
func (p *Program) Validate() error {
	if p == nil {
		return fmt.Errorf("post: no program")
	}
	if len(p.Steps) == 0 || len(p.Steps) > MaxSteps {
		return fmt.Errorf("post: a program has 1..%d steps", MaxSteps)
	}
	if len(p.Inputs) == 0 || len(p.Inputs) > MaxColumns {
		return fmt.Errorf("post: a program reads 1..%d columns", MaxColumns)
	}
	for _, t := range p.Inputs {
		if t != TypeNumber && t != TypeText {
			return fmt.Errorf("post: input columns are numbers or text")
		}
	}
	v := &validator{in: p.Inputs}
	for i, s := range p.Steps {
		if len(s.Columns) == 0 || len(s.Columns) > MaxColumns {
			return fmt.Errorf("post: step %d has 1..%d columns", i+1, MaxColumns)
		}
		if s.Where != nil {
			t, err := v.check(s.Where, 0, false)
			if err != nil {
				return fmt.Errorf("post: step %d WHERE: %w", i+1, err)
			}
			if t != TypeBool {
				return fmt.Errorf("post: step %d WHERE is not a condition", i+1)
			}
		}
		out := make([]Type, len(s.Columns))
		for j, c := range s.Columns {
			if c.Expr == nil {
				return fmt.Errorf("post: step %d column %d has no expression", i+1, j+1)
			}
			t, err := v.check(c.Expr, 0, true)
			if err != nil {
				return fmt.Errorf("post: step %d column %d: %w", i+1, j+1, err)
			}
			switch {
			case t == TypeBool:
				return fmt.Errorf("post: step %d column %d: a condition is not an output; use CASE WHEN … THEN 1 ELSE 0 END", i+1, j+1)
			case t == TypeText && c.Expr.Op != OpInput:
				return fmt.Errorf("post: step %d column %d: text is only passed through", i+1, j+1)
			}
			out[j] = t
		}
		v.in = out
	}
	return nil
}

type validator struct {
	in    []Type
	nodes int
}

func (v *validator) check(e *Expr, depth int, windows bool) (Type, error) {
	if e == nil {
		return "", fmt.Errorf("missing operand")
	}
	v.nodes++
	if v.nodes > MaxNodes || depth > MaxDepth {
		return "", fmt.Errorf("the expression is too large")
	}
	args := func(n int, want Type) error {
		if n >= 0 && len(e.Args) != n {
			return fmt.Errorf("%s takes %d operands", e.Op, n)
		}
		for _, a := range e.Args {
			t, err := v.check(a, depth+1, windows)
			if err != nil {
				return err
			}
			if want != "" && t != want {
				return fmt.Errorf("%s takes %s operands", e.Op, want)
			}
		}
		return nil
	}
	if e.Window != nil && !isWindow(e.Op) {
		return "", fmt.Errorf("%s has no window", e.Op)
	}
	switch e.Op {
	case OpInput:
		if e.Index < 0 || e.Index >= len(v.in) || len(e.Args) > 0 {
			return "", fmt.Errorf("input column out of range")
		}
		return v.in[e.Index], nil
	case OpNumber:
		if math.IsNaN(e.Num) || math.IsInf(e.Num, 0) || len(e.Args) > 0 {
			return "", fmt.Errorf("a number constant must be finite")
		}
		return TypeNumber, nil
	case OpText:
		return TypeText, args(0, "")
	case OpNull:
		return TypeNumber, args(0, "")
	case OpAdd, OpSub, OpMul, OpDiv:
		return TypeNumber, args(2, TypeNumber)
	case OpNeg, OpAbs:
		return TypeNumber, args(1, TypeNumber)
	case OpRound:
		if e.Num != math.Trunc(e.Num) || math.Abs(e.Num) > MaxDigits {
			return "", fmt.Errorf("round takes whole digits in -%d..%d", MaxDigits, MaxDigits)
		}
		return TypeNumber, args(1, TypeNumber)
	case OpCoalesce:
		if len(e.Args) < 2 {
			return "", fmt.Errorf("coalesce takes at least two operands")
		}
		return TypeNumber, args(-1, TypeNumber)
	case OpNullIf:
		return TypeNumber, args(2, TypeNumber)
	case OpCase:
		if len(e.Args) < 2 {
			return "", fmt.Errorf("case needs WHEN and THEN")
		}
		for i, a := range e.Args {
			t, err := v.check(a, depth+1, windows)
			if err != nil {
				return "", err
			}
			cond := i%2 == 0 && i != len(e.Args)-1
			if cond && t != TypeBool || !cond && t != TypeNumber {
				return "", fmt.Errorf("case takes conditions and numbers")
			}
		}
		return TypeNumber, nil
	case OpEq, OpNe, OpLt, OpLe, OpGt, OpGe, OpBetween, OpIn:
		n := map[Op]int{OpBetween: 3, OpIn: -1}[e.Op]
		if n == 0 {
			n = 2
		}
		if n > 0 && len(e.Args) != n || len(e.Args) < 2 || len(e.Args) > MaxColumns {
			return "", fmt.Errorf("%s takes a value and 1..%d others", e.Op, MaxColumns)
		}
		ts := make([]Type, len(e.Args))
		for i, a := range e.Args {
			t, err := v.check(a, depth+1, windows)
			if err != nil {
				return "", err
			}
			ts[i] = t
		}
		if err := comparable(e.Args, ts); err != nil {
			return "", err
		}
		return TypeBool, nil
	case OpAnd, OpOr:
		if len(e.Args) < 2 {
			return "", fmt.Errorf("%s takes two or more conditions", e.Op)
		}
		return TypeBool, args(-1, TypeBool)
	case OpNot:
		return TypeBool, args(1, TypeBool)
	case OpIsNull, OpIsNotNull:
		return TypeBool, args(1, "")
	}
	if !isWindow(e.Op) {
		return "", fmt.Errorf("unknown operator %q", e.Op)
	}
	if !windows {
		return "", fmt.Errorf("a window function is admitted in output columns only")
	}
	w := e.Window
	if w == nil {
		return "", fmt.Errorf("%s needs a window", e.Op)
	}
	for _, k := range w.Partition {
		if _, err := v.check(k, depth+1, false); err != nil {
			return "", err
		}
	}
	for _, k := range w.Order {
		t, err := v.check(k.Expr, depth+1, false)
		if err != nil {
			return "", err
		}
		if t == TypeBool {
			return "", fmt.Errorf("a window is ordered by values, not conditions")
		}
	}
	if err := w.Frame.validate(); err != nil {
		return "", err
	}
	sub := func(n int, want Type) error {
		if len(e.Args) != n {
			return fmt.Errorf("%s takes %d operands", e.Op, n)
		}
		for _, a := range e.Args {
			t, err := v.check(a, depth+1, false)
			if err != nil {
				return err
			}
			if want != "" && t != want {
				return fmt.Errorf("%s takes %s operands", e.Op, want)
			}
		}
		return nil
	}
	switch e.Op {
	case OpSumOver, OpAvgOver, OpMinOver, OpMaxOver:
		return TypeNumber, sub(1, TypeNumber)
	case OpCountOver:
		return TypeNumber, sub(1, "")
	case OpCountStarOver, OpRowNumber, OpRank, OpDenseRank:
		return TypeNumber, sub(0, "")
	case OpLag, OpLead:
		if w.Offset < 0 || w.Offset > MaxOffset {
			return "", fmt.Errorf("%s takes an offset in 0..%d", e.Op, MaxOffset)
		}
		if w.Default != nil {
			if t, err := v.check(w.Default, depth+1, false); err != nil || t != TypeNumber {
				return "", fmt.Errorf("%s takes a number as its default", e.Op)
			}
		}
		return TypeNumber, sub(1, TypeNumber)
	}
	return "", fmt.Errorf("unknown operator %q", e.Op)
}

// comparable checks that the first operand is compared with values of its kind: numbers with
// numbers, text with text; a key's text may also be compared with a number constant (as a
// number).
func comparable(args []*Expr, ts []Type) error {
	for i := 1; i < len(args); i++ {
		if ts[0] == TypeBool || ts[i] == TypeBool {
			return fmt.Errorf("conditions are combined with AND, OR and NOT, not compared")
		}
		if ts[0] != ts[i] && !(ts[0] == TypeText && args[i].Op == OpNumber) && !(ts[i] == TypeText && args[0].Op == OpNumber) {
			return fmt.Errorf("a number is compared with a number, a key with a key value")
		}
	}
	return nil
}

func (f Frame) validate() error {
	if !f.Rows {
		if f.Start != nil || f.End != nil {
			return fmt.Errorf("a RANGE frame is BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW or UNBOUNDED FOLLOWING")
		}
		return nil
	}
	if f.ToEnd {
		return fmt.Errorf("a ROWS frame states its end")
	}
	for _, b := range []*int64{f.Start, f.End} {
		if b != nil && (*b < -MaxOffset || *b > MaxOffset) {
			return fmt.Errorf("a frame offset is at most %d rows", MaxOffset)
		}
	}
	if f.Start != nil && f.End != nil && *f.Start > *f.End {
		return fmt.Errorf("a frame starts before it ends")
	}
	return nil
}

func isWindow(op Op) bool {
	switch op {
	case OpSumOver, OpAvgOver, OpCountOver, OpCountStarOver, OpMinOver, OpMaxOver,
		OpRowNumber, OpRank, OpDenseRank, OpLag, OpLead:
		return true
	}
	return false
}

// Passthrough reports which input column the program's output column col passes through
// unchanged (through every step), or -1 when the column is derived.
func (p *Program) Passthrough(col int) int {
	for i := len(p.Steps) - 1; i >= 0; i-- {
		e := p.Steps[i].Columns[col].Expr
		if e.Op != OpInput {
			return -1
		}
		col = e.Index
	}
	return col
}

// Reads returns the input columns (of the released rows) that the program's output column col
// reads, directly or through earlier steps' columns, in ascending order.
func (p *Program) Reads(col int) []int {
	want := map[int]bool{col: true}
	for i := len(p.Steps) - 1; i >= 0; i-- {
		next := map[int]bool{}
		for c := range want {
			walk(p.Steps[i].Columns[c].Expr, func(e *Expr) {
				if e.Op == OpInput {
					next[e.Index] = true
				}
			})
		}
		want = next
	}
	var out []int
	for c := range p.Inputs {
		if want[c] {
			out = append(out, c)
		}
	}
	return out
}

// walk calls f on every node of e, windows' partitions, orders and defaults included.
func walk(e *Expr, f func(*Expr)) {
	if e == nil {
		return
	}
	f(e)
	for _, a := range e.Args {
		walk(a, f)
	}
	if w := e.Window; w != nil {
		for _, k := range w.Partition {
			walk(k, f)
		}
		for _, k := range w.Order {
			walk(k.Expr, f)
		}
		walk(w.Default, f)
	}
}

// Format renders column col of the last step as SQL-like text over the names of the columns it
// reads (names: the previous step's output names, or the released columns' for the first
// step). It is for people: the program itself is what runs.
func (p *Program) Format(step, col int, names []string) string {
	return format(p.Steps[step].Columns[col].Expr, names)
}

func format(e *Expr, names []string) string {
	if e == nil {
		return "?"
	}
	list := func(es []*Expr) string {
		parts := make([]string, len(es))
		for i, a := range es {
			parts[i] = format(a, names)
		}
		return strings.Join(parts, ", ")
	}
	bin := func(op string) string {
		if len(e.Args) != 2 {
			return "?"
		}
		return "(" + format(e.Args[0], names) + " " + op + " " + format(e.Args[1], names) + ")"
	}
	switch e.Op {
	case OpInput:
		if e.Index >= 0 && e.Index < len(names) {
			return names[e.Index]
		}
		return fmt.Sprintf("$%d", e.Index+1)
	case OpNumber:
		return fmt.Sprint(e.Num)
	case OpText:
		return "'" + strings.ReplaceAll(e.Text, "'", "''") + "'"
	case OpNull:
		return "NULL"
	case OpAdd, OpSub, OpMul, OpDiv, OpEq, OpNe, OpLt, OpLe, OpGt, OpGe:
		return bin(string(e.Op))
	case OpAnd, OpOr:
		parts := make([]string, len(e.Args))
		for i, a := range e.Args {
			parts[i] = format(a, names)
		}
		return "(" + strings.Join(parts, " "+strings.ToUpper(string(e.Op))+" ") + ")"
	case OpNeg:
		return "-" + list(e.Args)
	case OpNot:
		return "NOT " + list(e.Args)
	case OpRound:
		return fmt.Sprintf("ROUND(%s, %d)", list(e.Args), int64(e.Num))
	case OpAbs, OpCoalesce, OpNullIf:
		return strings.ToUpper(string(e.Op)) + "(" + list(e.Args) + ")"
	case OpIsNull, OpIsNotNull:
		return "(" + list(e.Args) + map[Op]string{OpIsNull: " IS NULL)", OpIsNotNull: " IS NOT NULL)"}[e.Op]
	case OpBetween:
		if len(e.Args) == 3 {
			return "(" + format(e.Args[0], names) + " BETWEEN " + format(e.Args[1], names) + " AND " + format(e.Args[2], names) + ")"
		}
	case OpIn:
		if len(e.Args) >= 2 {
			not := ""
			if e.Negate {
				not = "NOT "
			}
			return "(" + format(e.Args[0], names) + " " + not + "IN (" + list(e.Args[1:]) + "))"
		}
	case OpCase:
		var b strings.Builder
		b.WriteString("CASE")
		for i := 0; i+1 < len(e.Args); i += 2 {
			b.WriteString(" WHEN " + format(e.Args[i], names) + " THEN " + format(e.Args[i+1], names))
		}
		if len(e.Args)%2 == 1 {
			b.WriteString(" ELSE " + format(e.Args[len(e.Args)-1], names))
		}
		return b.String() + " END"
	}
	if isWindow(e.Op) {
		name := map[Op]string{OpSumOver: "SUM", OpAvgOver: "AVG", OpCountOver: "COUNT", OpCountStarOver: "COUNT", OpMinOver: "MIN",
			OpMaxOver: "MAX", OpRowNumber: "ROW_NUMBER", OpRank: "RANK", OpDenseRank: "DENSE_RANK", OpLag: "LAG", OpLead: "LEAD"}[e.Op]
		arg := list(e.Args)
		if e.Op == OpCountStarOver {
			arg = "*"
		}
		if w := e.Window; w != nil && (e.Op == OpLag || e.Op == OpLead) {
			arg += fmt.Sprintf(", %d", w.Offset)
			if w.Default != nil {
				arg += ", " + format(w.Default, names)
			}
		}
		return name + "(" + arg + ") OVER (" + formatWindow(e.Window, names) + ")"
	}
	return "?"
}

func formatWindow(w *Window, names []string) string {
	if w == nil {
		return ""
	}
	var parts []string
	if len(w.Partition) > 0 {
		ps := make([]string, len(w.Partition))
		for i, k := range w.Partition {
			ps[i] = format(k, names)
		}
		parts = append(parts, "PARTITION BY "+strings.Join(ps, ", "))
	}
	if len(w.Order) > 0 {
		os := make([]string, len(w.Order))
		for i, k := range w.Order {
			os[i] = format(k.Expr, names)
			if k.Descending {
				os[i] += " DESC"
			}
		}
		parts = append(parts, "ORDER BY "+strings.Join(os, ", "))
	}
	if f := w.Frame; f.Rows {
		bound := func(b *int64, unbounded string) string {
			switch {
			case b == nil:
				return unbounded
			case *b < 0:
				return fmt.Sprintf("%d PRECEDING", -*b)
			case *b > 0:
				return fmt.Sprintf("%d FOLLOWING", *b)
			}
			return "CURRENT ROW"
		}
		parts = append(parts, "ROWS BETWEEN "+bound(f.Start, "UNBOUNDED PRECEDING")+" AND "+bound(f.End, "UNBOUNDED FOLLOWING"))
	} else if f.ToEnd {
		parts = append(parts, "RANGE BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING")
	}
	return strings.Join(parts, " ")
}
