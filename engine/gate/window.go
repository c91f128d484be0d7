package gate

import (
	"encoding/json"
	"math"
	"strings"

	"github.com/c1b99f93/cleanroom/errcode"
)

// Window functions are refused before anything else is checked, wherever they are: each one
// reads other raw rows than its own (a neighbour's value, a row's rank), which no bound on one
// unit's contribution covers. Checking them first gives the diagnosis the applicant needs
// instead of whatever rule the surrounding query breaks next (a subquery that does not group
// by the unit, an identifier in PARTITION BY).

// rankingWindows are window functions that number or rank rows.
var rankingWindows = map[string]bool{"row_number": true, "rank": true, "dense_rank": true, "ntile": true,
	"percent_rank": true, "cume_dist": true}

// windowRefusal refuses the first window function of the statement (in SQL order) that reads
// raw rows, with the one rewrite that fits it. Windows in the select list of the outer query
// are left to the post-processing builder when that query releases aggregates (or reads the
// released rows of a WITH query): there they read released rows only (postproc.go), and the
// builder refuses one whose argument is a row-level column with the same hint.
func windowRefusal(stmt any, cat Catalog) error {
	skip := releasedWindows(stmt)
	w, at := firstWithClass(stmt, "WINDOW", skip)
	if w == nil {
		return nil
	}
	fn, _ := w["function_name"].(string)
	return windowHint(fn, w["partitions"], stmt, cat, at)
}

// windowHint is the refusal of a window function fn over raw rows, at, in the statement stmt,
// partitioned by partitions (DuckDB's list of expressions, or nil).
func windowHint(fn string, partitions any, stmt any, cat Catalog, at int) error {
	fn = strings.ToLower(fn)
	unit := "the privacy unit"
	if t, _ := firstTable(stmt); t != "" {
		if spec, ok := cat.Lookup(t); ok && spec.PrivacyUnit != "" {
			unit = spec.PrivacyUnit
		}
	}
	partitioned := !empty(partitions)
	const refused = "window functions (… OVER (…)) are not admitted: they read raw rows other than their own"
	switch {
	case aggregateFunctions[fn] && partitionsBy(partitions, unit):
		// A value per person (PARTITION BY the unit): the per-unit subquery computes it.
		return errcode.At(errcode.UnsupportedSQL, at, "%s; for a value per person, compute it in a per-unit subquery and aggregate or group it in the outer query: SELECT … FROM (SELECT %s, %s(col) AS v FROM … GROUP BY %s) AS t",
			refused, unit, strings.ToUpper(fn), unit)
	case aggregateFunctions[fn] && !partitioned:
		return errcode.At(errcode.UnsupportedSQL, at, "%s; drop OVER (…) — the aggregate alone is computed, with noise, over each group of GROUP BY (or the whole dataset)", refused)
	case aggregateFunctions[fn]:
		return errcode.At(errcode.UnsupportedSQL, at, "%s; drop OVER (…) and GROUP BY the PARTITION BY columns instead", refused)
	case rankingWindows[fn] && !partitioned:
		return errcode.At(errcode.UnsupportedSQL, at, "%s; to rank the released groups, number them by an output (ROW_NUMBER() OVER (ORDER BY COUNT(*) DESC)) or ORDER BY an output column and LIMIT n (after release, at no cost)", refused)
	}
	// LAG, LEAD, FIRST_VALUE, a numbering within a partition ...: per-person sequences.
	return errcode.At(errcode.UnsupportedSQL, at, "%s; for values per person, use a per-unit subquery: FROM (SELECT %s, MIN(col) AS low, COUNT(*) AS n … GROUP BY %s) AS t", refused, unit, unit)
}

// releasedWindows returns the locations of the windows the outer select list may hold over
// released rows: those outside any aggregate's arguments, when the outer query aggregates (a
// GROUP BY, an aggregate or a HAVING) or reads a WITH query or a subquery.
func releasedWindows(stmt any) map[int]bool {
	m, _ := stmt.(map[string]any)
	sel, _ := m["node"].(map[string]any)
	if sel == nil {
		return nil
	}
	items, _ := sel["select_list"].([]any)
	from, _ := sel["from_table"].(map[string]any)
	reads := false
	if t, _ := from["type"].(string); t == "SUBQUERY" {
		reads = true
	} else if name, _ := from["table_name"].(string); name != "" {
		cm, _ := sel["cte_map"].(map[string]any)
		for _, e := range asList(cm["map"]) {
			if em, _ := e.(map[string]any); em != nil && em["key"] == name {
				reads = true
			}
		}
	}
	aggregating := !empty(sel["group_expressions"]) || !empty(sel["having"])
	out := map[int]bool{}
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			class, _ := x["class"].(string)
			fn, _ := x["function_name"].(string)
			if class == "WINDOW" {
				out[location(x)] = true
				return
			}
			if class == "FUNCTION" && aggregateFunctions[strings.ToLower(fn)] {
				aggregating = true
				return
			}
			for _, e := range x {
				walk(e)
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		}
	}
	for _, it := range items {
		walk(it)
	}
	if !aggregating && !reads {
		return nil
	}
	return out
}

// firstWithClass returns the object of the JSON AST with this class whose query_location is
// smallest, and that location (-1 when it has none), leaving out objects at the locations skip.
func firstWithClass(v any, class string, skip map[int]bool) (map[string]any, int) {
	var best map[string]any
	bestAt := math.MaxInt
	var walk func(any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			if c, _ := x["class"].(string); c == class && !skip[location(x)] {
				if at := location(x); best == nil || at < bestAt {
					best, bestAt = x, at
				}
			}
			for _, e := range x {
				walk(e)
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		}
	}
	walk(v)
	if best == nil {
		return nil, -1
	}
	if bestAt == math.MaxInt32 {
		bestAt = -1
	}
	return best, bestAt
}

// firstTable returns the name of the table the SQL names first, for the privacy unit in a hint.
func firstTable(v any) (string, int) {
	name, at := "", math.MaxInt32
	var walk func(any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			if t, _ := x["type"].(string); t == "BASE_TABLE" {
				if n, _ := x["table_name"].(string); n != "" && location(x) < at {
					name, at = n, location(x)
				}
			}
			for _, e := range x {
				walk(e)
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		}
	}
	walk(v)
	return name, at
}

// location is an object's query_location, or MaxInt32 when it has none (it sorts last).
func location(m map[string]any) int {
	if num, ok := m["query_location"].(json.Number); ok {
		if i, err := num.Int64(); err == nil && i >= 0 && i < math.MaxInt32 {
			return int(i)
		}
	}
	return math.MaxInt32
}

// partitionsBy reports whether a window's PARTITION BY list names the column unit.
func partitionsBy(partitions any, unit string) bool {
	list, _ := partitions.([]any)
	for _, p := range list {
		m, _ := p.(map[string]any)
		if m == nil || m["class"] != "COLUMN_REF" {
			continue
		}
		names, _ := m["column_names"].([]any)
		if len(names) > 0 {
			if last, _ := names[len(names)-1].(string); strings.EqualFold(last, unit) {
				return true
			}
		}
	}
	return false
}
