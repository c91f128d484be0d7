// Package post evaluates post-processing over released rows: a program reads only what a DP
// release already made public — the noisy values with their intervals and the group keys — and
// never a row-level value, so what it computes costs no budget and leaks nothing more.
//
// A program is typed data, not SQL: the gate builds it from the parts of a query that act on
// released rows (HAVING, arithmetic between aggregates, windows over outputs, the outer query
// of a WITH over a DP query), Validate checks it against the released columns, and Eval runs it.
//
//	released rows (keys, noisy values + 95% intervals)
//	      │  Step 1: Where (HAVING) → Columns (arithmetic, windows)
//	      │  Step 2: Where (the outer WHERE of a WITH) → Columns (its select list)
//	      ▼
//	final rows: each one of the released rows, its cells passed through or derived
//
// Every step keeps or drops rows and computes each kept row's columns; no step aggregates, so
// each final row comes from exactly one released row (Row.Source). A cell that is only a
// released cell passed through keeps its origin (Value.Ref); every other cell is derived.
//
// Intervals propagate by interval arithmetic: a derived cell's interval is the image of the box
// of its operands' intervals (within the released row set), so it covers the value computed
// from the operands' true values whenever every operand's interval covers its own. With k
// operands at 95% each, that holds with probability at least 1 − k·0.05 (a union bound). A
// division by an interval that contains 0 is unbounded (infinite ends, which the API writes as
// null); a division by a value of exactly 0 is NULL, as are results that overflow. No value or
// bound Eval returns is NaN.
package post
