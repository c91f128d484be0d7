// Package sqlgen renders the expressions of a plan (wire.Expr) to DuckDB SQL. It is the one
// place where a worker turns what it received into SQL text: every name is quoted and every
// literal escaped here, every tree is validated here before it is rendered, and every column it
// reads is checked against the scope the worker holds. Nothing it is given is pasted in as SQL.
//
//	wire.Expr ──Validate──▶ columns in Scope? ──render──▶ Value:     try(…)   (NULL on error)
//	                                                   ╰─▶ Condition: coalesce(try(…), false)
//
// Value and Condition are how the worker evaluates an expression on rows: both are total — an
// evaluation error becomes NULL, or drops the row from a condition — so no row can make a job
// fail (sandbox/total.go says why). Text renders the same SQL without the totality wrapper, for
// display and tests only; a worker never evaluates it.
//
// The package is pure Go (no cgo), so the gate's tests and the engine can show what the worker
// will run.
package sqlgen

import (
	"errors"
	"fmt"
	"strings"

	"github.com/c1b99f93/cleanroom/sandbox/wire"
)

// Scope reports whether an expression may read the column source.name (source "" for an
// unqualified column).
type Scope func(source, name string) bool

// ErrUnknownColumn is returned for an expression that reads a column outside its scope.
var ErrUnknownColumn = errors.New("sqlgen: the expression reads a column outside its scope")

// Value renders e as a total row value: NULL wherever its evaluation would fail. A bare column
// is read as is (reading a column cannot fail).
func Value(e *wire.Expr, sc Scope) (string, error) {
	s, err := check(e, sc)
	if err != nil || e.Kind == wire.KindColumn {
		return s, err
	}
	return "try(" + s + ")", nil
}

// Condition renders e as a total row condition: a row is kept only where e is true; false,
// NULL and an evaluation error all drop it.
func Condition(e *wire.Expr, sc Scope) (string, error) {
	s, err := check(e, sc)
	if err != nil {
		return "", err
	}
	return "coalesce(try(" + s + "), false)", nil
}

// Text renders e as SQL without making it total, for display and tests: the gate's goldens,
// an explanation. A worker evaluates only Value and Condition. It returns an error for an
// expression Validate refuses.
func Text(e *wire.Expr) (string, error) {
	return check(e, func(string, string) bool { return true })
}

func check(e *wire.Expr, sc Scope) (string, error) {
	if err := e.Validate(); err != nil {
		return "", fmt.Errorf("sqlgen: %w", err)
	}
	var b strings.Builder
	if err := render(&b, e, sc); err != nil {
		return "", err
	}
	return b.String(), nil
}

// Ident quotes a name.
func Ident(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// Column renders a column reference: "source"."name", or "name" when source is "".
func Column(source, name string) string {
	if source == "" {
		return Ident(name)
	}
	return Ident(source) + "." + Ident(name)
}

// String renders a text literal.
func String(v string) string { return "'" + strings.ReplaceAll(v, "'", "''") + "'" }

// Number renders a numeric literal, refusing anything that is not one.
func Number(text string) (string, error) {
	if !wire.ValidNumber(text) {
		return "", fmt.Errorf("sqlgen: %w: malformed number", wire.ErrInvalidExpr)
	}
	return text, nil
}

var logicOps = map[string]string{"and": " AND ", "or": " OR "}

// render writes a validated expression. Every compound is parenthesised, so the text's
// structure is the tree's whatever DuckDB's precedence.
func render(b *strings.Builder, e *wire.Expr, sc Scope) error {
	args := func(sep string, xs []*wire.Expr) error {
		for i, a := range xs {
			if i > 0 {
				b.WriteString(sep)
			}
			if err := render(b, a, sc); err != nil {
				return err
			}
		}
		return nil
	}
	// seq writes the pieces in order: a string is written, an *Expr rendered.
	seq := func(parts ...any) error {
		for _, p := range parts {
			switch p := p.(type) {
			case string:
				b.WriteString(p)
			case *wire.Expr:
				if err := render(b, p, sc); err != nil {
					return err
				}
			}
		}
		return nil
	}
	not := func(negate bool) string {
		if negate {
			return "NOT "
		}
		return ""
	}
	a := e.Args
	switch e.Kind {
	case wire.KindColumn:
		if !sc(e.Source, e.Name) {
			return ErrUnknownColumn
		}
		b.WriteString(Column(e.Source, e.Name))
		return nil
	case wire.KindConst:
		switch e.Type {
		case wire.TypeVarchar:
			b.WriteString(String(e.Value))
		case wire.TypeNumber:
			b.WriteString(e.Value) // validated: digits, a fraction, an exponent
		case wire.TypeBoolean:
			b.WriteString(strings.ToUpper(e.Value))
		default:
			b.WriteString("NULL")
		}
		return nil
	case wire.KindCompare:
		return seq("(", a[0], " "+e.Op+" ", a[1], ")")
	case wire.KindLogic:
		b.WriteString("(")
		if err := args(logicOps[e.Op], a); err != nil {
			return err
		}
		b.WriteString(")")
		return nil
	case wire.KindNot:
		return seq("(NOT ", a[0], ")")
	case wire.KindIsNull:
		return seq("(", a[0], " IS "+not(e.Negate)+"NULL)")
	case wire.KindIn:
		if err := seq("(", a[0], " "+not(e.Negate)+"IN ("); err != nil {
			return err
		}
		if err := args(", ", a[1:]); err != nil {
			return err
		}
		b.WriteString("))")
		return nil
	case wire.KindBetween:
		return seq("(", a[0], " BETWEEN ", a[1], " AND ", a[2], ")")
	case wire.KindLike:
		return seq("(", a[0], " "+not(e.Negate)+strings.ToUpper(e.Op)+" ", a[1], ")")
	case wire.KindCast:
		// TRY_CAST: a cast that fails on some row is NULL there, not an error.
		return seq("TRY_CAST(", a[0], " AS "+e.Type+")")
	case wire.KindCase:
		b.WriteString("(CASE")
		for i := 0; i < len(a); i += 2 {
			if err := seq(" WHEN ", a[i], " THEN ", a[i+1]); err != nil {
				return err
			}
		}
		if e.Else != nil {
			if err := seq(" ELSE ", e.Else); err != nil {
				return err
			}
		}
		b.WriteString(" END)")
		return nil
	case wire.KindFunc:
		if e.Name == "coalesce" {
			// As CASE: DuckDB's coalesce inside try() returns wrong values for the other rows of
			// a vector in which one row fails (try re-evaluates that vector row by row), so one
			// row's failure would move another row between groups.
			b.WriteString("(CASE")
			for _, x := range a[:len(a)-1] {
				if err := seq(" WHEN (", x, " IS NOT NULL) THEN ", x); err != nil {
					return err
				}
			}
			if err := seq(" ELSE ", a[len(a)-1], " END)"); err != nil {
				return err
			}
			return nil
		}
		b.WriteString(e.Name + "(")
		if err := args(", ", a); err != nil {
			return err
		}
		b.WriteString(")")
		return nil
	case wire.KindArith:
		return seq("(", a[0], " "+e.Op+" ", a[1], ")")
	case wire.KindNeg:
		return seq("(- ", a[0], ")") // the space: "--" would open a comment
	case wire.KindWidthBucket:
		// width_bucket(x, lo, hi, n) — buckets 1..n of equal width over [lo, hi), 0 below and
		// n+1 at or above hi, as in PostgreSQL — in plain SQL (DuckDB has no such function).
		var x strings.Builder
		if err := render(&x, a[0], sc); err != nil {
			return err
		}
		xs, lo, hi := x.String(), a[1].Value, a[2].Value
		fmt.Fprintf(b, "(CASE WHEN %[1]s IS NULL THEN NULL WHEN %[1]s < %[2]s THEN 0 WHEN %[1]s >= %[3]s THEN %[4]d ELSE CAST(floor((%[1]s - %[2]s) * %[5]d / (%[3]s - %[2]s)) AS BIGINT) + 1 END)",
			xs, lo, hi, e.Buckets+1, e.Buckets)
		return nil
	}
	return fmt.Errorf("sqlgen: %w: unknown expression kind", wire.ErrInvalidExpr)
}
