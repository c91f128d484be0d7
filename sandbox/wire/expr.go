package wire

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
)

// Expr is a row-level expression of a plan — a filter, a group key, an aggregated value, a
// column or condition of a relation — as a small typed tree, never as SQL text. The gate builds
// it from the admitted AST; the worker checks it (Validate, then the columns against what it
// holds) and renders it to SQL in one place (package sandbox/sqlgen), which quotes every name,
// escapes every literal and makes every expression total.
//
// One struct serves every kind (a tagged union): Kind says which fields mean what.
//
//	column        Source (a relation source's alias, or "") and Name
//	const         Type (VARCHAR, NUMBER, BOOLEAN or NULL) and Value (the text, unquoted)
//	compare       Op (= <> < > <= >=), Args [left, right]
//	logic         Op (and, or), Args (two or more)
//	not           Args [x]
//	is_null       Args [x]; Negate: IS NOT NULL
//	in            Args [x, item...]; Negate: NOT IN
//	between       Args [x, low, high]
//	like          Op (like, ilike), Args [x, pattern]; Negate: NOT LIKE / NOT ILIKE
//	cast          Type (a closed list of scalar types), Args [x]; rendered TRY_CAST
//	case          Args [when, then, when, then, ...], Else (or nil)
//	func          Name (a closed list of scalar functions, with arities), Args
//	arith         Op (+ - * /), Args [left, right]
//	neg           Args [x]
//	width_bucket  Args [x, low, high] (numeric constants, low < high), Buckets (1..MaxBuckets)
//
// Its JSON, with fields in declaration order and empty fields left out, is canonical: equal
// trees have equal JSON (Canonical), which the engine compares and fingerprints.
type Expr struct {
	Kind    string  `json:"kind"`
	Op      string  `json:"op,omitempty"`
	Negate  bool    `json:"negate,omitempty"`
	Source  string  `json:"source,omitempty"`
	Name    string  `json:"name,omitempty"`
	Type    string  `json:"type,omitempty"`
	Value   string  `json:"value,omitempty"`
	Args    []*Expr `json:"args,omitempty"`
	Else    *Expr   `json:"else,omitempty"`
	Buckets int64   `json:"buckets,omitempty"`
}

// Expression kinds.
const (
	KindColumn      = "column"
	KindConst       = "const"
	KindCompare     = "compare"
	KindLogic       = "logic"
	KindNot         = "not"
	KindIsNull      = "is_null"
	KindIn          = "in"
	KindBetween     = "between"
	KindLike        = "like"
	KindCast        = "cast"
	KindCase        = "case"
	KindFunc        = "func"
	KindArith       = "arith"
	KindNeg         = "neg"
	KindWidthBucket = "width_bucket"
)

// Constant types.
const (
	TypeVarchar = "VARCHAR"
	TypeNumber  = "NUMBER"
	TypeBoolean = "BOOLEAN"
	TypeNull    = "NULL"
)

// MaxBuckets bounds width_bucket's bucket count (its public domain is enumerated).
const MaxBuckets = 1000

// MaxInItems bounds the items of an IN list.
const MaxInItems = 1000

// MaxExprDepth bounds how deeply an expression nests, and MaxExprNodes how many nodes it has.
const (
	MaxExprDepth = 200
	MaxExprNodes = 20000
)

// CompareOps, ArithOps and CastTypes are the closed sets of comparison operators, arithmetic
// operators and cast target types.
var (
	CompareOps = map[string]bool{"=": true, "<>": true, "<": true, ">": true, "<=": true, ">=": true}
	ArithOps   = map[string]bool{"+": true, "-": true, "*": true, "/": true}
	CastTypes  = map[string]bool{"DATE": true, "TIMESTAMP": true, "INTEGER": true, "BIGINT": true,
		"DOUBLE": true, "VARCHAR": true, "BOOLEAN": true, "INTERVAL": true}
)

// Functions are the deterministic scalar functions an expression may call, with their argument
// counts (max −1: any). None reads files, the environment or the clock.
var Functions = map[string][2]int{
	"floor": {1, 1}, "ceil": {1, 1}, "ceiling": {1, 1}, "round": {1, 2}, "trunc": {1, 1}, "abs": {1, 1},
	"date_trunc": {2, 2}, "date_part": {2, 2}, "year": {1, 1}, "month": {1, 1}, "day": {1, 1},
	"quarter": {1, 1}, "dayofweek": {1, 1}, "isodow": {1, 1}, "hour": {1, 1},
	"to_days": {1, 1}, "to_months": {1, 1}, "to_years": {1, 1}, "to_hours": {1, 1},
	"substr": {2, 3}, "substring": {2, 3}, "left": {2, 2}, "right": {2, 2}, "lower": {1, 1}, "upper": {1, 1},
	"length": {1, 1}, "trim": {1, 1}, "coalesce": {2, MaxInItems}, "least": {2, MaxInItems}, "greatest": {2, MaxInItems},
}

// numberText is the form of a numeric constant: digits, an optional fraction and exponent.
var numberText = regexp.MustCompile(`^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$`)

// ValidNumber reports whether s is a numeric constant's text.
func ValidNumber(s string) bool { return len(s) <= 400 && numberText.MatchString(s) }

// ErrInvalidExpr is returned by Validate for an expression outside the IR.
var ErrInvalidExpr = errors.New("invalid expression")

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidExpr, fmt.Sprintf(format, args...))
}

// Validate checks that e is a well-formed expression of the IR: known kinds, operators from
// the closed sets, functions with their arities, constants of their declared types, bounded
// size. It does not know which columns exist; the renderer checks them against its scope.
func (e *Expr) Validate() error {
	nodes := 0
	return e.validate(0, &nodes)
}

func (e *Expr) validate(depth int, nodes *int) error {
	if e == nil {
		return invalid("missing expression")
	}
	*nodes++
	if depth > MaxExprDepth || *nodes > MaxExprNodes {
		return invalid("expression too large")
	}
	n := len(e.Args)
	arity := func(lo, hi int) error {
		if n < lo || n > hi {
			return invalid("%s takes %d to %d arguments, has %d", e.Kind, lo, hi, n)
		}
		return nil
	}
	// Fields that a kind does not use must be empty: one meaning per tree.
	unused := func(op, negate, name, typ, else_ bool) error {
		if (!op && e.Op != "") || (!negate && e.Negate) || (!name && (e.Name != "" || e.Source != "")) ||
			(!typ && (e.Type != "" || e.Value != "")) || (!else_ && e.Else != nil) || (e.Kind != KindWidthBucket && e.Buckets != 0) {
			return invalid("%s has a field it does not use", e.Kind)
		}
		return nil
	}
	var err error
	switch e.Kind {
	case KindColumn:
		if e.Name == "" || n != 0 {
			return invalid("a column needs a name and no arguments")
		}
		return unused(false, false, true, false, false)
	case KindConst:
		if n != 0 {
			return invalid("a constant has no arguments")
		}
		switch e.Type {
		case TypeVarchar:
		case TypeNumber:
			if !ValidNumber(e.Value) {
				return invalid("malformed number")
			}
		case TypeBoolean:
			if e.Value != "true" && e.Value != "false" {
				return invalid("malformed boolean")
			}
		case TypeNull:
			if e.Value != "" {
				return invalid("a NULL constant has no value")
			}
		default:
			return invalid("unknown constant type")
		}
		return unused(false, false, false, true, false)
	case KindCompare:
		if !CompareOps[e.Op] {
			return invalid("unknown comparison")
		}
		err = firstErr(arity(2, 2), unused(true, false, false, false, false))
	case KindLogic:
		if e.Op != "and" && e.Op != "or" {
			return invalid("unknown logical operator")
		}
		err = firstErr(arity(2, MaxExprNodes), unused(true, false, false, false, false))
	case KindNot, KindNeg:
		err = firstErr(arity(1, 1), unused(false, false, false, false, false))
	case KindIsNull:
		err = firstErr(arity(1, 1), unused(false, true, false, false, false))
	case KindIn:
		err = firstErr(arity(2, MaxInItems+1), unused(false, true, false, false, false))
	case KindBetween:
		err = firstErr(arity(3, 3), unused(false, false, false, false, false))
	case KindLike:
		if e.Op != "like" && e.Op != "ilike" {
			return invalid("unknown LIKE operator")
		}
		err = firstErr(arity(2, 2), unused(true, true, false, false, false))
	case KindCast:
		if !CastTypes[e.Type] || e.Value != "" {
			return invalid("cast to an unadmitted type")
		}
		err = firstErr(arity(1, 1), unused(false, false, false, true, false))
	case KindCase:
		if n < 2 || n%2 != 0 {
			return invalid("CASE needs WHEN/THEN pairs")
		}
		err = unused(false, false, false, false, true)
		if err == nil && e.Else != nil {
			err = e.Else.validate(depth+1, nodes)
		}
	case KindFunc:
		a, ok := Functions[e.Name]
		if !ok || e.Source != "" {
			return invalid("unadmitted function")
		}
		hi := a[1]
		if hi < 0 {
			hi = MaxInItems
		}
		err = firstErr(arity(a[0], hi), unused(false, false, true, false, false))
	case KindArith:
		if !ArithOps[e.Op] {
			return invalid("unknown arithmetic operator")
		}
		err = firstErr(arity(2, 2), unused(true, false, false, false, false))
	case KindWidthBucket:
		if err := firstErr(arity(3, 3), unused(false, false, false, false, false)); err != nil {
			return err
		}
		if e.Buckets < 1 || e.Buckets > MaxBuckets {
			return invalid("width_bucket needs 1..%d buckets", MaxBuckets)
		}
		lo, hi := e.Args[1], e.Args[2]
		if lo == nil || hi == nil || lo.Kind != KindConst || lo.Type != TypeNumber || hi.Kind != KindConst || hi.Type != TypeNumber {
			return invalid("width_bucket's bounds must be numeric constants")
		}
	default:
		return invalid("unknown expression kind")
	}
	if err != nil {
		return err
	}
	for _, a := range e.Args {
		if err := a.validate(depth+1, nodes); err != nil {
			return err
		}
	}
	return nil
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// Canonical is e's canonical JSON text ("" for nil): equal expressions, equal text.
func (e *Expr) Canonical() string {
	if e == nil {
		return ""
	}
	b, err := json.Marshal(e)
	if err != nil {
		return "" // cannot happen: Expr has only strings, bools, ints and Exprs
	}
	return string(b)
}

// Equal reports whether two expressions are the same tree.
func (e *Expr) Equal(o *Expr) bool { return e.Canonical() == o.Canonical() }

// Constructors, for the gate, the planner and tests.

// Col is a column: "source"."name", or "name" when source is "".
func Col(source, name string) *Expr { return &Expr{Kind: KindColumn, Source: source, Name: name} }

// Str is a text constant.
func Str(v string) *Expr { return &Expr{Kind: KindConst, Type: TypeVarchar, Value: v} }

// Num is a numeric constant (its text, as ValidNumber accepts it).
func Num(text string) *Expr { return &Expr{Kind: KindConst, Type: TypeNumber, Value: text} }

// Bool is a boolean constant.
func Bool(v bool) *Expr { return &Expr{Kind: KindConst, Type: TypeBoolean, Value: fmt.Sprint(v)} }

// Null is the NULL constant.
func Null() *Expr { return &Expr{Kind: KindConst, Type: TypeNull} }

// Compare is l op r.
func Compare(op string, l, r *Expr) *Expr {
	return &Expr{Kind: KindCompare, Op: op, Args: []*Expr{l, r}}
}

// And is the conjunction of args (two or more).
func And(args ...*Expr) *Expr { return &Expr{Kind: KindLogic, Op: "and", Args: args} }

// Or is the disjunction of args (two or more).
func Or(args ...*Expr) *Expr { return &Expr{Kind: KindLogic, Op: "or", Args: args} }

// Not is NOT x.
func Not(x *Expr) *Expr { return &Expr{Kind: KindNot, Args: []*Expr{x}} }

// IsNull is x IS NULL, or x IS NOT NULL when negate.
func IsNull(x *Expr, negate bool) *Expr {
	return &Expr{Kind: KindIsNull, Negate: negate, Args: []*Expr{x}}
}

// In is x IN (items), or NOT IN when negate.
func In(x *Expr, negate bool, items ...*Expr) *Expr {
	return &Expr{Kind: KindIn, Negate: negate, Args: append([]*Expr{x}, items...)}
}

// Between is x BETWEEN lo AND hi.
func Between(x, lo, hi *Expr) *Expr { return &Expr{Kind: KindBetween, Args: []*Expr{x, lo, hi}} }

// Like is x [NOT] LIKE/ILIKE pattern.
func Like(x, pattern *Expr, caseInsensitive, negate bool) *Expr {
	op := "like"
	if caseInsensitive {
		op = "ilike"
	}
	return &Expr{Kind: KindLike, Op: op, Negate: negate, Args: []*Expr{x, pattern}}
}

// Cast is TRY_CAST(x AS typ).
func Cast(x *Expr, typ string) *Expr { return &Expr{Kind: KindCast, Type: typ, Args: []*Expr{x}} }

// Case is CASE WHEN whenThen[0] THEN whenThen[1] ... ELSE els END (els may be nil).
func Case(els *Expr, whenThen ...*Expr) *Expr {
	return &Expr{Kind: KindCase, Args: whenThen, Else: els}
}

// Func is name(args).
func Func(name string, args ...*Expr) *Expr { return &Expr{Kind: KindFunc, Name: name, Args: args} }

// Arith is l op r.
func Arith(op string, l, r *Expr) *Expr { return &Expr{Kind: KindArith, Op: op, Args: []*Expr{l, r}} }

// Neg is -x.
func Neg(x *Expr) *Expr { return &Expr{Kind: KindNeg, Args: []*Expr{x}} }

// WidthBucket is width_bucket(x, lo, hi, buckets).
func WidthBucket(x, lo, hi *Expr, buckets int64) *Expr {
	return &Expr{Kind: KindWidthBucket, Args: []*Expr{x, lo, hi}, Buckets: buckets}
}
