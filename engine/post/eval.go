package post

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// Kind says what a Value holds.
type Kind uint8

// Value kinds.
const (
	KindNull Kind = iota
	KindNumber
	KindText
	KindBool
)

// Value is one cell during evaluation: a number with its interval [Lo, Hi] (an end may be
// infinite: unbounded), a key's text, a condition's truth, or NULL. Ref is the released column
// the value is passed through from unchanged (of the row's own released row), or -1.
type Value struct {
	Kind   Kind
	Num    float64
	Lo, Hi float64
	Text   string
	Bool   bool
	Ref    int
}

// Number returns a released number with its interval.
func Number(v, lo, hi float64) Value { return Value{Kind: KindNumber, Num: v, Lo: lo, Hi: hi, Ref: -1} }

// Text returns a group key's value.
func Text(s string) Value { return Value{Kind: KindText, Text: s, Ref: -1} }

// Null returns NULL.
func Null() Value { return Value{Ref: -1} }

func boolean(b bool) Value { return Value{Kind: KindBool, Bool: b, Ref: -1} }

// exact is a number without uncertainty.
func exact(v float64) Value { return Number(v, v, v) }

// Row is one output row: the index of the released row it comes from and its cells.
type Row struct {
	Source int
	Values []Value
}

// Eval runs a valid program (Validate) over the released rows, each with len(p.Inputs) values
// of the declared types (numbers with their intervals, keys as text, NULLs). It returns the
// rows that every step keeps, in released order, with the last step's columns.
func Eval(p *Program, rows [][]Value) ([]Row, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	cur := make([]Row, len(rows))
	for i, r := range rows {
		if len(r) != len(p.Inputs) {
			return nil, fmt.Errorf("post: row %d has %d values for %d columns", i, len(r), len(p.Inputs))
		}
		vals := make([]Value, len(r))
		for j, v := range r {
			if v.Kind != KindNull && (v.Kind == KindText) != (p.Inputs[j] == TypeText) {
				return nil, fmt.Errorf("post: row %d column %d does not have its declared type", i, j)
			}
			if v.Kind == KindNumber && !finite(v.Num) {
				v = Null()
			}
			if v.Kind == KindNumber {
				v.Lo, v.Hi = sane(v.Lo, v.Hi, v.Num)
			}
			v.Ref = j
			vals[j] = v
		}
		cur[i] = Row{Source: i, Values: vals}
	}
	for _, s := range p.Steps {
		if s.Where != nil {
			kept := cur[:0:0]
			for _, r := range cur {
				if v := evalScalar(s.Where, r.Values, nil, 0); v.Kind == KindBool && v.Bool {
					kept = append(kept, r)
				}
			}
			cur = kept
		}
		wins := map[*Expr][]Value{}
		for _, c := range s.Columns {
			walk(c.Expr, func(e *Expr) {
				if isWindow(e.Op) {
					if _, done := wins[e]; !done {
						wins[e] = evalWindow(e, cur)
					}
				}
			})
		}
		next := make([]Row, len(cur))
		for i, r := range cur {
			vals := make([]Value, len(s.Columns))
			for j, c := range s.Columns {
				v := evalScalar(c.Expr, r.Values, wins, i)
				if v.Kind == KindNumber {
					if !finite(v.Num) {
						v = Null()
					} else {
						v.Lo, v.Hi = sane(v.Lo, v.Hi, v.Num)
					}
				}
				vals[j] = v
			}
			next[i] = Row{Source: r.Source, Values: vals}
		}
		cur = next
	}
	return cur, nil
}

func finite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }

// sane makes [lo, hi] an interval around v with no NaN: a NaN end is unbounded.
func sane(lo, hi, v float64) (float64, float64) {
	if math.IsNaN(lo) {
		lo = math.Inf(-1)
	}
	if math.IsNaN(hi) {
		hi = math.Inf(1)
	}
	return math.Min(lo, v), math.Max(hi, v)
}

// evalScalar evaluates e for row i with values vals; wins holds the window operators' values.
func evalScalar(e *Expr, vals []Value, wins map[*Expr][]Value, i int) Value {
	if isWindow(e.Op) {
		if w, ok := wins[e]; ok && i < len(w) {
			return w[i]
		}
		return Null()
	}
	arg := func(k int) Value { return evalScalar(e.Args[k], vals, wins, i) }
	switch e.Op {
	case OpInput:
		return vals[e.Index]
	case OpNumber:
		return exact(e.Num)
	case OpText:
		return Text(e.Text)
	case OpNull:
		return Null()
	case OpAdd, OpSub, OpMul, OpDiv:
		a, b := arg(0), arg(1)
		if a.Kind != KindNumber || b.Kind != KindNumber {
			return Null()
		}
		return arith(e.Op, a, b)
	case OpNeg:
		a := arg(0)
		if a.Kind != KindNumber {
			return Null()
		}
		return Number(-a.Num, -a.Hi, -a.Lo)
	case OpAbs:
		a := arg(0)
		if a.Kind != KindNumber {
			return Null()
		}
		switch {
		case a.Lo >= 0:
			return Number(math.Abs(a.Num), a.Lo, a.Hi)
		case a.Hi <= 0:
			return Number(math.Abs(a.Num), -a.Hi, -a.Lo)
		}
		return Number(math.Abs(a.Num), 0, math.Max(-a.Lo, a.Hi))
	case OpRound:
		a := arg(0)
		if a.Kind != KindNumber {
			return Null()
		}
		// Rounding is monotone: the rounded ends bound the rounded truth.
		return Number(round(a.Num, int(e.Num)), round(a.Lo, int(e.Num)), round(a.Hi, int(e.Num)))
	case OpCoalesce:
		for k := range e.Args {
			if v := arg(k); v.Kind != KindNull {
				v.Ref = -1
				return v
			}
		}
		return Null()
	case OpNullIf:
		a, b := arg(0), arg(1)
		if a.Kind == KindNumber && b.Kind == KindNumber && a.Num == b.Num {
			return Null()
		}
		a.Ref = -1
		return a
	case OpCase:
		// The value is the branch the released values choose; the interval spans every branch
		// (the true values might choose another), so it stays conservative.
		var out *Value
		lo, hi := math.Inf(1), math.Inf(-1)
		some := false
		n := len(e.Args)
		for k := 0; k < n; k += 2 {
			var then Value
			if k == n-1 { // ELSE
				then = arg(k)
				if out == nil {
					out = &then
				}
			} else {
				then = arg(k + 1)
				if c := arg(k); out == nil && c.Kind == KindBool && c.Bool {
					out = &then
				}
			}
			if then.Kind == KindNumber {
				lo, hi, some = math.Min(lo, then.Lo), math.Max(hi, then.Hi), true
			}
		}
		if out == nil || out.Kind != KindNumber || !some {
			return Null()
		}
		return Number(out.Num, lo, hi)
	case OpEq, OpNe, OpLt, OpLe, OpGt, OpGe:
		c, ok := compareValues(arg(0), arg(1))
		if !ok {
			return Null()
		}
		return boolean(map[Op]bool{OpEq: c == 0, OpNe: c != 0, OpLt: c < 0, OpLe: c <= 0, OpGt: c > 0, OpGe: c >= 0}[e.Op])
	case OpBetween:
		x := arg(0)
		lo, ok1 := compareValues(x, arg(1))
		hi, ok2 := compareValues(x, arg(2))
		if !ok1 || !ok2 {
			return Null()
		}
		return boolean(lo >= 0 && hi <= 0)
	case OpIn:
		x := arg(0)
		if x.Kind == KindNull {
			return Null()
		}
		null := false
		for k := 1; k < len(e.Args); k++ {
			c, ok := compareValues(x, arg(k))
			if !ok {
				null = true
				continue
			}
			if c == 0 {
				return boolean(!e.Negate)
			}
		}
		if null {
			return Null()
		}
		return boolean(e.Negate)
	case OpAnd, OpOr:
		// SQL's three-valued logic.
		null := false
		for k := range e.Args {
			v := arg(k)
			if v.Kind != KindBool {
				null = true
				continue
			}
			if v.Bool == (e.Op == OpOr) {
				return boolean(v.Bool)
			}
		}
		if null {
			return Null()
		}
		return boolean(e.Op == OpAnd)
	case OpNot:
		v := arg(0)
		if v.Kind != KindBool {
			return Null()
		}
		return boolean(!v.Bool)
	case OpIsNull, OpIsNotNull:
		return boolean((arg(0).Kind == KindNull) == (e.Op == OpIsNull))
	}
	return Null()
}

// arith applies + − × ÷ to two numbers and their intervals.
func arith(op Op, a, b Value) Value {
	switch op {
	case OpAdd:
		return Number(a.Num+b.Num, a.Lo+b.Lo, a.Hi+b.Hi)
	case OpSub:
		return Number(a.Num-b.Num, a.Lo-b.Hi, a.Hi-b.Lo)
	case OpMul:
		lo, hi := mulBounds(a.Lo, a.Hi, b.Lo, b.Hi)
		return Number(a.Num*b.Num, lo, hi)
	}
	if b.Num == 0 {
		return Null()
	}
	if b.Lo <= 0 && b.Hi >= 0 {
		return Number(a.Num/b.Num, math.Inf(-1), math.Inf(1))
	}
	// b's interval lies on one side of 0: the quotient is monotone in each operand, so its
	// extremes are among the quotients of the ends (∞/∞ is NaN there: unbounded, see sane).
	qs := []float64{a.Lo / b.Lo, a.Lo / b.Hi, a.Hi / b.Lo, a.Hi / b.Hi}
	return Number(a.Num/b.Num, slices.Min(qs), slices.Max(qs))
}

// mulBounds is the product of [a, b] and [c, d], where 0 × ∞ counts as 0.
func mulBounds(a, b, c, d float64) (float64, float64) {
	mul := func(x, y float64) float64 {
		if x == 0 || y == 0 {
			return 0
		}
		return x * y
	}
	ps := []float64{mul(a, c), mul(a, d), mul(b, c), mul(b, d)}
	return slices.Min(ps), slices.Max(ps)
}

// round rounds half away from zero to digits decimal places.
func round(x float64, digits int) float64 {
	if math.IsInf(x, 0) || math.IsNaN(x) {
		return x
	}
	p := math.Pow(10, float64(digits))
	r := math.Round(x*p) / p
	if !finite(r) {
		return x
	}
	return r
}

// compareValues compares two values: numbers as numbers, text as text, a key's text with a
// number as numbers when the text is one. ok is false when either is NULL or they cannot be
// compared.
func compareValues(a, b Value) (int, bool) {
	if a.Kind == KindNull || b.Kind == KindNull {
		return 0, false
	}
	num := func(v Value) (float64, bool) {
		switch v.Kind {
		case KindNumber:
			return v.Num, true
		case KindText:
			f, err := strconv.ParseFloat(strings.TrimSpace(v.Text), 64)
			return f, err == nil && finite(f)
		}
		return 0, false
	}
	if a.Kind == KindText && b.Kind == KindText {
		return strings.Compare(a.Text, b.Text), true
	}
	x, ok1 := num(a)
	y, ok2 := num(b)
	if !ok1 || !ok2 {
		return 0, false
	}
	return cmp.Compare(x, y), true
}

// orderCompare orders values for windows: NULLs first (as the released rows' ORDER BY does),
// then keys as numbers when both are, else as text; numbers by value.
func orderCompare(a, b Value) int {
	switch {
	case a.Kind == KindNull && b.Kind == KindNull:
		return 0
	case a.Kind == KindNull:
		return -1
	case b.Kind == KindNull:
		return 1
	}
	if a.Kind == KindText && b.Kind == KindText {
		x, err1 := strconv.ParseFloat(a.Text, 64)
		y, err2 := strconv.ParseFloat(b.Text, 64)
		if err1 == nil && err2 == nil {
			return cmp.Compare(x, y)
		}
	}
	if c, ok := compareValues(a, b); ok {
		return c
	}
	return cmp.Compare(a.Kind, b.Kind)
}

// evalWindow computes a window operator for every row of rows.
func evalWindow(e *Expr, rows []Row) []Value {
	w := e.Window
	out := make([]Value, len(rows))
	// Partition by the partition values' identity, keeping the released order.
	var parts [][]int
	index := map[string]int{}
	for i, r := range rows {
		var key strings.Builder
		for _, k := range w.Partition {
			v := evalScalar(k, r.Values, nil, i)
			fmt.Fprintf(&key, "%d:%v:%s|", v.Kind, v.Num, v.Text)
		}
		p, ok := index[key.String()]
		if !ok {
			p = len(parts)
			index[key.String()] = p
			parts = append(parts, nil)
		}
		parts[p] = append(parts[p], i)
	}
	keys := make([][]Value, len(rows))
	args := make([]Value, len(rows))
	for _, part := range parts {
		for _, i := range part {
			for _, k := range w.Order {
				keys[i] = append(keys[i], evalScalar(k.Expr, rows[i].Values, nil, i))
			}
		}
		order := func(i, j int) int {
			for n, k := range w.Order {
				c := orderCompare(keys[i][n], keys[j][n])
				if k.Descending {
					c = -c
				}
				if c != 0 {
					return c
				}
			}
			return 0
		}
		slices.SortStableFunc(part, order)
		if len(e.Args) == 1 {
			for _, i := range part {
				args[i] = evalScalar(e.Args[0], rows[i].Values, nil, i)
			}
		}
		for pos, i := range part {
			out[i] = windowValue(e, part, pos, args, keys, order, rows)
		}
	}
	return out
}

// windowValue is a window operator's value at position pos of a sorted partition.
func windowValue(e *Expr, part []int, pos int, args []Value, keys [][]Value, order func(i, j int) int, rows []Row) Value {
	w := e.Window
	switch e.Op {
	case OpLag, OpLead:
		off := w.Offset
		if e.Op == OpLag {
			off = -off
		}
		at := int64(pos) + off
		if at < 0 || at >= int64(len(part)) {
			if w.Default == nil {
				return Null()
			}
			return evalScalar(w.Default, rows[part[pos]].Values, nil, part[pos])
		}
		v := args[part[at]]
		v.Ref = -1
		return v
	case OpRowNumber, OpRank, OpDenseRank:
		return rankValue(e.Op, part, pos, keys, order, w.Order)
	}
	// A window aggregate over the frame.
	start, end := 0, len(part)-1
	f := w.Frame
	if f.Rows {
		if f.Start != nil {
			start = max(0, pos+int(*f.Start))
		}
		if f.End != nil {
			end = min(len(part)-1, pos+int(*f.End))
		}
	} else if !f.ToEnd {
		end = pos
		for end+1 < len(part) && order(part[end+1], part[pos]) == 0 {
			end++
		}
	}
	if e.Op == OpCountStarOver {
		return exact(float64(max(0, end-start+1)))
	}
	var n int
	sum, lo, hi := 0.0, 0.0, 0.0
	var best *Value
	for k := start; k <= end; k++ {
		v := args[part[k]]
		if v.Kind == KindNull {
			continue
		}
		n++
		if v.Kind != KindNumber {
			continue
		}
		sum, lo, hi = sum+v.Num, lo+v.Lo, hi+v.Hi
		switch {
		case best == nil:
			b := v
			best = &b
		case e.Op == OpMinOver:
			best.Num, best.Lo, best.Hi = math.Min(best.Num, v.Num), math.Min(best.Lo, v.Lo), math.Min(best.Hi, v.Hi)
		case e.Op == OpMaxOver:
			best.Num, best.Lo, best.Hi = math.Max(best.Num, v.Num), math.Max(best.Lo, v.Lo), math.Max(best.Hi, v.Hi)
		}
	}
	switch e.Op {
	case OpCountOver:
		return exact(float64(n))
	case OpMinOver, OpMaxOver:
		if best == nil {
			return Null()
		}
		return Number(best.Num, best.Lo, best.Hi)
	}
	if n == 0 {
		return Null()
	}
	if e.Op == OpAvgOver {
		c := float64(n)
		return Number(sum/c, lo/c, hi/c)
	}
	return Number(sum, lo, hi)
}

// rankValue numbers a row in its sorted partition. The value follows the released values; the
// interval bounds the number the true values would give: exact when the window is ordered by
// exact values (keys, counts of rows), for one noisy ordering term the rows that certainly and
// possibly come before, otherwise 1 to the partition's size.
func rankValue(op Op, part []int, pos int, keys [][]Value, order func(i, j int) int, terms []SortKey) Value {
	i := part[pos]
	var v float64
	switch op {
	case OpRowNumber:
		v = float64(pos + 1)
	case OpRank:
		first := pos
		for first > 0 && order(part[first-1], i) == 0 {
			first--
		}
		v = float64(first + 1)
	case OpDenseRank:
		v = 1
		for k := 1; k <= pos; k++ {
			if order(part[k-1], part[k]) != 0 {
				v++
			}
		}
	}
	exactKeys := true
	for _, j := range part {
		for _, k := range keys[j] {
			if k.Kind == KindNumber && (k.Lo != k.Num || k.Hi != k.Num) {
				exactKeys = false
			}
		}
	}
	if exactKeys {
		return exact(v)
	}
	n := float64(len(part))
	if len(terms) != 1 {
		return Number(v, 1, n)
	}
	desc := terms[0].Descending
	me := keys[i][0]
	if me.Kind != KindNumber {
		return Number(v, 1, n)
	}
	surely, possibly := 0.0, 0.0
	for _, j := range part {
		if j == i {
			continue
		}
		o := keys[j][0]
		if o.Kind != KindNumber {
			surely, possibly = surely+1, possibly+1 // NULLs sort first
			continue
		}
		if desc {
			if o.Lo > me.Hi {
				surely++
			}
			if o.Hi >= me.Lo {
				possibly++
			}
		} else {
			if o.Hi < me.Lo {
				surely++
			}
			if o.Lo <= me.Hi {
				possibly++
			}
		}
	}
	lo, hi := 1+surely, 1+possibly
	if op == OpDenseRank {
		lo = 1
	}
	return Number(v, math.Min(lo, v), math.Max(hi, v))
}
