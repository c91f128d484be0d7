package gate

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/c1b99f93/cleanroom/catalog"
	"github.com/c1b99f93/cleanroom/engine/post"
	"github.com/c1b99f93/cleanroom/errcode"
	"github.com/c1b99f93/cleanroom/sandbox/wire"
)

// Post-processing: what a query computes from its released rows only. Arithmetic between
// aggregates, HAVING, windows over outputs and the outer query of a WITH over a DP query are
// built here into a post.Program over the query's base outputs (its keys and DP aggregates,
// Query.Outputs); the engine runs it after release and withholding. Nothing here reads a
// row-level value: a name resolves to a group key, an aggregate (computed with DP, as an
// output of its own), a select alias, or a column of the WITH query's released rows.

// postMode says what names mean in an expression over released values.
type postMode int

const (
	// modeSelect: a select item of a DP query; an aggregate is computed (or reused when an
	// identical one is).
	modeSelect postMode = iota
	// modeHaving: HAVING; an aggregate must be one the select list computes, and a select
	// alias names that output.
	modeHaving
	// modeOuter: the outer query of a WITH over a DP query; names are the WITH query's output
	// columns, and nothing is aggregated again.
	modeOuter
)

// outerScope is the released rows of a WITH query (or a subquery) that is itself a DP query.
type outerScope struct {
	alias string
	names []string    // its output columns
	types []post.Type // their types
}

const postHint = "over released values, + - * /, ROUND, ABS, COALESCE, NULLIF, CAST, CASE, comparisons, AND/OR/NOT and the window functions SUM, AVG, COUNT, MIN, MAX, ROW_NUMBER, RANK, DENSE_RANK, LAG and LEAD are admitted"

// hasPostProcessing reports whether a select item computes something from released values: an
// aggregate inside an expression, or a window function.
func hasPostProcessing(e *node) bool {
	if e.Class == "WINDOW" {
		return true
	}
	if isAggregate(e) {
		return false
	}
	found := false
	eachChild(e, func(c *node) {
		if c.Class == "WINDOW" || isAggregate(c) || hasPostProcessing(c) {
			found = true
		}
	})
	return found
}

// eachChild calls f on the expression children of e.
func eachChild(e *node, f func(*node)) {
	for _, c := range e.Children {
		f(c)
	}
	for _, c := range []*node{e.Left, e.Right, e.Input, e.Lower, e.Upper, e.Child, e.ElseExpr} {
		if c.present() {
			f(c)
		}
	}
	for _, cc := range e.CaseChecks {
		f(cc.WhenExpr)
		f(cc.ThenExpr)
	}
}

// postExpr builds the post-processing expression of n over the base outputs (or, in
// modeOuter, over the WITH query's columns). items are the select list, aliases the final
// names of its columns and finals their expressions (for HAVING).
func (g *gater) postExpr(n *node, mode postMode, inWindow bool) (*post.Expr, error) {
	if !n.present() {
		return nil, errcode.New(errcode.UnsupportedSQL, "malformed expression")
	}
	sub := func(c *node) (*post.Expr, error) { return g.postExpr(c, mode, inWindow) }
	many := func(l []*node) ([]*post.Expr, error) {
		out := make([]*post.Expr, len(l))
		for i, c := range l {
			e, err := sub(c)
			if err != nil {
				return nil, err
			}
			out[i] = e
		}
		return out, nil
	}
	opOf := func(op post.Op, l ...*node) (*post.Expr, error) {
		args, err := many(l)
		if err != nil {
			return nil, err
		}
		return &post.Expr{Op: op, Args: args}, nil
	}
	switch n.Class {
	case "CONSTANT":
		if err := only(n, with("value")...); err != nil {
			return nil, err
		}
		c, err := constant(n)
		if err != nil {
			return nil, err
		}
		switch c.Type {
		case wire.TypeNull:
			return &post.Expr{Op: post.OpNull}, nil
		case wire.TypeNumber:
			v, err := numberOf(n)
			if err != nil {
				return nil, err
			}
			return &post.Expr{Op: post.OpNumber, Num: v}, nil
		case wire.TypeVarchar:
			return &post.Expr{Op: post.OpText, Text: c.Value}, nil
		}
		return nil, errcode.At(errcode.UnsupportedSQL, pos(n), "this literal is not admitted over released values; use numbers, or strings compared with group keys")
	case "COLUMN_REF":
		return g.postName(n, mode, inWindow)
	case "FUNCTION":
		if isAggregate(n) {
			if mode == modeOuter {
				return nil, errcode.At(errcode.UnsupportedSQL, pos(n), "the outer query of a WITH over a DP query post-processes its released rows and cannot aggregate them again: select its columns, expressions or windows over them (SUM(n) OVER ()); to aggregate per-person values, the WITH query must group by the privacy unit (GROUP BY %s, …)", g.unitName())
			}
			i, err := g.operand(n, mode == modeSelect)
			if err != nil {
				return nil, err
			}
			return &post.Expr{Op: post.OpInput, Index: i}, nil
		}
		if err := only(n, with("function_name", "children", "order_bys", "is_operator", "schema")...); err != nil {
			return nil, err
		}
		fn := strings.ToLower(n.FunctionName)
		if n.IsOperator {
			switch {
			case fn == "-" && len(n.Children) == 1:
				return opOf(post.OpNeg, n.Children...)
			case len(n.Children) == 2 && (fn == "+" || fn == "-" || fn == "*" || fn == "/"):
				return opOf(post.Op(fn), n.Children...)
			}
			return nil, errcode.At(errcode.UnsupportedSQL, pos(n), "operator %q is not admitted here; %s", fn, postHint)
		}
		switch {
		case fn == "abs" && len(n.Children) == 1:
			return opOf(post.OpAbs, n.Children...)
		case fn == "nullif" && len(n.Children) == 2:
			return opOf(post.OpNullIf, n.Children...)
		case fn == "round" && (len(n.Children) == 1 || len(n.Children) == 2):
			e, err := opOf(post.OpRound, n.Children[0])
			if err != nil {
				return nil, err
			}
			if len(n.Children) == 2 {
				d, err := numberConstant(n.Children[1])
				if err != nil || d != math.Trunc(d) || math.Abs(d) > post.MaxDigits {
					return nil, errcode.At(errcode.UnsupportedSQL, pos(n), "ROUND takes a whole number of digits in -%d..%d", post.MaxDigits, post.MaxDigits)
				}
				e.Num = d
			}
			return e, nil
		}
		if s := Suggest(fn, []string{"abs", "nullif", "round", "coalesce"}); s != "" {
			return nil, errcode.At(errcode.UnsupportedSQL, pos(n), "function %q is not admitted over released values; did you mean %s?", fn, s)
		}
		return nil, errcode.At(errcode.UnsupportedSQL, pos(n), "function %q is not admitted over released values; %s", fn, postHint)
	case "OPERATOR":
		if err := only(n, with("children")...); err != nil {
			return nil, err
		}
		switch n.Type {
		case "OPERATOR_NOT":
			if len(n.Children) == 1 {
				return opOf(post.OpNot, n.Children...)
			}
		case "OPERATOR_COALESCE":
			if len(n.Children) >= 2 {
				return opOf(post.OpCoalesce, n.Children...)
			}
		case "OPERATOR_IS_NULL", "OPERATOR_IS_NOT_NULL":
			if len(n.Children) == 1 {
				return opOf(map[string]post.Op{"OPERATOR_IS_NULL": post.OpIsNull, "OPERATOR_IS_NOT_NULL": post.OpIsNotNull}[n.Type], n.Children...)
			}
		case "COMPARE_IN", "COMPARE_NOT_IN":
			if len(n.Children) >= 2 {
				e, err := opOf(post.OpIn, n.Children...)
				if err != nil {
					return nil, err
				}
				e.Negate = n.Type == "COMPARE_NOT_IN"
				return e, nil
			}
		}
	case "COMPARISON":
		if err := only(n, with("left", "right")...); err != nil {
			return nil, err
		}
		if op, ok := comparisons[n.Type]; ok {
			return opOf(post.Op(op), n.Left, n.Right)
		}
	case "CONJUNCTION":
		if err := only(n, with("children")...); err != nil {
			return nil, err
		}
		op := map[string]post.Op{"CONJUNCTION_AND": post.OpAnd, "CONJUNCTION_OR": post.OpOr}[n.Type]
		if op != "" && len(n.Children) >= 2 {
			return opOf(op, n.Children...)
		}
	case "BETWEEN":
		if err := only(n, with("input", "lower", "upper")...); err != nil {
			return nil, err
		}
		return opOf(post.OpBetween, n.Input, n.Lower, n.Upper)
	case "CASE":
		if err := only(n, with("case_checks", "else_expr")...); err != nil {
			return nil, err
		}
		var l []*node
		for _, cc := range n.CaseChecks {
			l = append(l, cc.WhenExpr, cc.ThenExpr)
		}
		if n.ElseExpr.present() {
			l = append(l, n.ElseExpr)
		}
		return opOf(post.OpCase, l...)
	case "CAST":
		if err := only(n, with("child", "cast_type", "try_cast")...); err != nil {
			return nil, err
		}
		switch n.CastType.ID {
		case "DOUBLE", "FLOAT":
			return sub(n.Child)
		case "INTEGER", "BIGINT":
			return opOf(post.OpRound, n.Child)
		}
		return nil, errcode.At(errcode.UnsupportedSQL, pos(n), "over released values, casts are admitted to DOUBLE, FLOAT, INTEGER and BIGINT")
	case "WINDOW":
		if inWindow {
			return nil, errcode.At(errcode.UnsupportedSQL, pos(n), "a window function cannot be nested in another")
		}
		if mode == modeHaving {
			return nil, errcode.At(errcode.UnsupportedSQL, pos(n), "a window function is not admitted in HAVING; compute it in the select list of a WITH query and filter in the outer WHERE")
		}
		return g.postWindow(n, mode)
	case "STAR":
		return nil, errcode.At(errcode.UnsupportedSQL, pos(n), "name the columns of the released rows; * is not admitted here")
	}
	return nil, errcode.At(errcode.UnsupportedSQL, pos(n), "this expression is not admitted here; %s", postHint)
}

// postName resolves a name over released values: a group key (or in HAVING a select alias) of
// a DP query, or a column of the WITH query's released rows.
func (g *gater) postName(n *node, mode postMode, inWindow bool) (*post.Expr, error) {
	name := lastName(n)
	if mode == modeOuter {
		o := g.outer
		if len(n.ColumnNames) > 2 || len(n.ColumnNames) == 2 && !strings.EqualFold(n.ColumnNames[0], o.alias) {
			return nil, errcode.At(errcode.UnknownColumn, pos(n), "%q names no source of this query; the outer query reads %q", n.ColumnNames[0], o.alias)
		}
		for i, c := range o.names {
			if strings.EqualFold(c, name) {
				return &post.Expr{Op: post.OpInput, Index: i}, nil
			}
		}
		return nil, errcode.At(errcode.UnknownColumn, pos(n), "%q has no column %q%s", o.alias, name, didYouMean(name, o.names))
	}
	if mode == modeHaving && len(n.ColumnNames) == 1 {
		for i, a := range g.finalNames {
			if a == name && g.finals[i] != nil {
				return g.finals[i], nil
			}
		}
	}
	c, err := g.resolve(n)
	if err != nil {
		// A select alias of a key or an aggregate (ORDER BY month in a window).
		for i, a := range g.finalNames {
			if a == name && len(n.ColumnNames) == 1 && g.itemOut[i] >= 0 {
				return &post.Expr{Op: post.OpInput, Index: g.itemOut[i]}, nil
			}
		}
		return nil, err
	}
	for i, k := range g.q.Keys {
		if c.col != nil && k.Expr.Equal(c.col) {
			for j, o := range g.q.Outputs {
				if o.Key == i {
					return &post.Expr{Op: post.OpInput, Index: j}, nil
				}
			}
		}
	}
	if inWindow {
		return nil, windowHint(g.windowFn, nil, g.stmt, g.cat, g.windowAt)
	}
	if c.meta.Has(catalog.TagIdentifier) {
		return nil, errcode.At(errcode.IdentifierInOutput, pos(n), "%s is an identifier and can never be released; use COUNT(DISTINCT %s) to count units", c.name, g.unitName())
	}
	return nil, errcode.At(errcode.RawColumnInOutput, pos(n), "column %q would be read row by row; an expression over released values reads aggregates and GROUP BY keys only", c.name)
}

// operand admits an aggregate inside an expression over released values and returns the base
// output that releases it: an identical aggregate the query already computes, or (create) a
// new one, which takes its share of the budget like any other. HAVING creates none: it names
// the select list's aggregates, so what the budget pays for is what the select list shows.
func (g *gater) operand(n *node, create bool) (int, error) {
	saved := slices.Clone(g.q.Aggregates)
	for i := range saved {
		saved[i].Ranks = slices.Clone(saved[i].Ranks)
	}
	uses := len(g.q.Uses)
	undo := func() { g.q.Aggregates, g.q.Uses = saved, g.q.Uses[:uses] }
	out, err := g.aggregate(n, "")
	if err != nil {
		return 0, err
	}
	if out.Aggregate >= len(saved) {
		a := g.q.Aggregates[out.Aggregate]
		for j, b := range saved {
			if sameAggregate(a, b) {
				undo()
				out.Aggregate, out.Rank = j, 0
				break
			}
		}
	} else if a := g.q.Aggregates[out.Aggregate]; out.Rank >= len(saved[out.Aggregate].Ranks) {
		if r := slices.Index(saved[out.Aggregate].Ranks, a.Ranks[out.Rank]); r >= 0 {
			undo()
			out.Rank = r
		}
	}
	for i, o := range g.q.Outputs {
		if o.Key < 0 && o.Aggregate == out.Aggregate && o.Rank == out.Rank {
			return i, nil
		}
	}
	if !create {
		undo()
		return 0, errcode.At(errcode.UnsupportedSQL, pos(n), "HAVING filters the released rows by the noisy values the select list computes; add this %s to the select list (it is then released and paid for), or name a select item's alias", strings.ToUpper(n.FunctionName))
	}
	name := out.Name
	for k := 2; slices.ContainsFunc(g.q.Outputs, func(o Output) bool { return o.Name == name }); k++ {
		name = fmt.Sprintf("%s_%d", out.Name, k)
	}
	out.Name = name
	if out.Rank == 0 {
		g.q.Aggregates[out.Aggregate].Name = name
	}
	g.q.Outputs = append(g.q.Outputs, out)
	return len(g.q.Outputs) - 1, nil
}

func sameAggregate(a, b Aggregate) bool {
	if a.Kind != b.Kind || a.Column != b.Column || !slices.Equal(a.Bounds, b.Bounds) || !slices.Equal(a.Ranks, b.Ranks) {
		return false
	}
	if a.Value == nil || b.Value == nil {
		return a.Value == nil && b.Value == nil
	}
	return a.Value.Equal(b.Value)
}

// windowOps maps the admitted window functions to their operators.
var windowOps = map[string]post.Op{"sum": post.OpSumOver, "avg": post.OpAvgOver, "mean": post.OpAvgOver, "count": post.OpCountOver,
	"count_star": post.OpCountStarOver, "min": post.OpMinOver, "max": post.OpMaxOver, "row_number": post.OpRowNumber,
	"rank": post.OpRank, "dense_rank": post.OpDenseRank, "lag": post.OpLag, "lead": post.OpLead}

// postWindow admits a window function over released rows: its argument, PARTITION BY and
// ORDER BY are expressions over released values, its frame ROWS or the default RANGE.
func (g *gater) postWindow(n *node, mode postMode) (*post.Expr, error) {
	fn := strings.ToLower(n.FunctionName)
	g.windowFn, g.windowAt = fn, pos(n)
	if err := only(n, with("function_name", "schema", "catalog", "children", "partitions", "orders", "start", "end",
		"start_expr", "end_expr", "offset_expr", "default_expr", "exclude_clause")...); err != nil {
		return nil, err
	}
	op, ok := windowOps[fn]
	if !ok || n.ExcludeClause != "NO_OTHER" && n.ExcludeClause != "" {
		return nil, errcode.At(errcode.UnsupportedSQL, pos(n), "window function %q is not admitted over released rows; SUM, AVG, COUNT, MIN, MAX, ROW_NUMBER, RANK, DENSE_RANK, LAG and LEAD are", fn)
	}
	e := &post.Expr{Op: op, Window: &post.Window{}}
	for _, c := range n.Children {
		a, err := g.postExpr(c, mode, true)
		if err != nil {
			return nil, err
		}
		e.Args = append(e.Args, a)
	}
	for _, p := range n.Partitions {
		a, err := g.postExpr(p, mode, true)
		if err != nil {
			return nil, err
		}
		e.Window.Partition = append(e.Window.Partition, a)
	}
	for _, o := range n.Orders {
		if o.Type != "ORDER_DEFAULT" && o.Type != "ASCENDING" && o.Type != "DESCENDING" || o.NullOrder != "ORDER_DEFAULT" && o.NullOrder != "" {
			return nil, errcode.At(errcode.UnsupportedSQL, pos(n), "a window's ORDER BY admits ASC and DESC")
		}
		a, err := g.postExpr(o.Expression, mode, true)
		if err != nil {
			return nil, err
		}
		e.Window.Order = append(e.Window.Order, post.SortKey{Expr: a, Descending: o.Type == "DESCENDING"})
	}
	if op == post.OpLag || op == post.OpLead {
		e.Window.Offset = 1
		if o := n.OffsetExpr; o.present() {
			v, err := nonNegativeInt(o, "the offset of "+strings.ToUpper(fn))
			if err != nil {
				return nil, err
			}
			e.Window.Offset = min(v, post.MaxOffset)
		}
		if d := n.DefaultExpr; d.present() {
			v, err := numberConstant(d)
			if err != nil {
				return nil, errcode.At(errcode.UnsupportedSQL, pos(d), "the default of %s is a number constant", strings.ToUpper(fn))
			}
			e.Window.Default = &post.Expr{Op: post.OpNumber, Num: v}
		}
		return e, nil
	}
	f, err := frame(n)
	if err != nil {
		return nil, err
	}
	e.Window.Frame = f
	return e, nil
}

// frame reads a window's frame: the default RANGE up to the current row, RANGE over the
// whole partition, or ROWS between offsets.
func frame(n *node) (post.Frame, error) {
	refuse := errcode.At(errcode.UnsupportedSQL, pos(n), "a window frame is ROWS BETWEEN n PRECEDING, UNBOUNDED PRECEDING or CURRENT ROW AND CURRENT ROW, n FOLLOWING or UNBOUNDED FOLLOWING (RANGE only in its default form)")
	switch {
	case n.Start == "UNBOUNDED_PRECEDING" && n.End == "CURRENT_ROW_RANGE":
		return post.Frame{}, nil
	case n.Start == "UNBOUNDED_PRECEDING" && n.End == "UNBOUNDED_FOLLOWING":
		return post.Frame{ToEnd: true}, nil
	}
	offset := func(kind string, e *node, sign int64) (*int64, bool) {
		switch kind {
		case "UNBOUNDED_PRECEDING", "UNBOUNDED_FOLLOWING":
			return nil, true
		case "CURRENT_ROW_ROWS":
			return new(int64), true
		case "EXPR_PRECEDING_ROWS", "EXPR_FOLLOWING_ROWS":
			v, err := nonNegativeInt(e, "a frame offset")
			if err != nil || v > post.MaxOffset {
				return nil, false
			}
			if kind == "EXPR_PRECEDING_ROWS" {
				v = -v
			}
			return &v, true
		}
		return nil, false
	}
	f := post.Frame{Rows: true}
	var ok1, ok2 bool
	f.Start, ok1 = offset(n.Start, n.StartExpr, -1)
	f.End, ok2 = offset(n.End, n.EndExpr, 1)
	if !ok1 || !ok2 || n.Start == "UNBOUNDED_FOLLOWING" || n.End == "UNBOUNDED_PRECEDING" {
		return post.Frame{}, refuse
	}
	if f.Start != nil && f.End != nil && *f.Start > *f.End {
		return post.Frame{}, refuse
	}
	return f, nil
}

// baseTypes are the types of the base outputs as a program reads them.
func (q *Query) baseTypes() []post.Type {
	out := make([]post.Type, len(q.Outputs))
	for i, o := range q.Outputs {
		out[i] = post.TypeNumber
		if o.Key >= 0 {
			out[i] = post.TypeText
		}
	}
	return out
}

// FinalColumns names the columns the query releases, in select order: the outputs, or the last
// post-processing step's columns.
func (q *Query) FinalColumns() []string {
	if q.Post == nil {
		names := make([]string, len(q.Outputs))
		for i, o := range q.Outputs {
			names[i] = o.Name
		}
		return names
	}
	cols := q.Post.Steps[len(q.Post.Steps)-1].Columns
	names := make([]string, len(cols))
	for i, c := range cols {
		names[i] = c.Name
	}
	return names
}

// finalTypes are the types of the released columns.
func (q *Query) finalTypes() []post.Type {
	if q.Post == nil {
		return q.baseTypes()
	}
	names := q.FinalColumns()
	out := make([]post.Type, len(names))
	in := q.baseTypes()
	for i := range names {
		out[i] = post.TypeNumber
		if b := q.Post.Passthrough(i); b >= 0 {
			out[i] = in[b]
		}
	}
	return out
}

// postProgramError turns a program the builder made but Validate refuses (a type mismatch:
// arithmetic on a key, a condition as an output) into the applicant's refusal.
func postProgramError(err error, at int) error {
	return errcode.At(errcode.UnsupportedSQL, at, "%v; %s", strings.TrimPrefix(err.Error(), "post: "), postHint)
}

// releasesRows reports whether a subquery (in FROM or WITH) is a DP query of its own — it
// aggregates and does not group by a privacy unit — so that the outer query post-processes its
// released rows rather than aggregating per-unit values.
func (g *gater) releasesRows(n *node) bool {
	if n.Type != "SELECT_NODE" {
		return false
	}
	aggregates := false
	for _, e := range n.SelectList {
		if mentionsAggregate(e) {
			aggregates = true
		}
	}
	if !aggregates {
		return false
	}
	units := map[string]bool{}
	var tables func(t *node)
	tables = func(t *node) {
		switch t.Type {
		case "BASE_TABLE":
			if spec, ok := g.cat.Lookup(t.TableName); ok && spec.PrivacyUnit != "" {
				units[strings.ToLower(spec.PrivacyUnit)] = true
			}
		case "JOIN":
			tables(t.Left)
			tables(t.Right)
		case "SUBQUERY":
			tables(t.Subquery.Node.FromTable)
		}
	}
	tables(n.FromTable)
	items := make([]item, len(n.SelectList))
	for i, e := range n.SelectList {
		items[i] = item{node: e, alias: e.Alias, agg: containsAggregate(e)}
	}
	for _, e := range n.GroupExpressions {
		if t := groupTarget(e, items, func(string) bool { return true }); t != nil && t.Class == "COLUMN_REF" && units[strings.ToLower(lastName(t))] {
			return false
		}
	}
	return true
}

func mentionsAggregate(e *node) bool {
	if isAggregate(e) {
		return true
	}
	found := false
	eachChild(e, func(c *node) {
		if mentionsAggregate(c) {
			found = true
		}
	})
	return found
}

// releasedSubquery admits a WITH query (or a subquery in FROM) that is a DP query of its own;
// the outer query then post-processes its released rows (outerSelect).
func (g *gater) releasedSubquery(n *node, alias string, at int) error {
	for _, m := range n.Modifiers {
		if m.Type == "ORDER_MODIFIER" || m.Type == "LIMIT_MODIFIER" {
			return errcode.At(errcode.UnsupportedSQL, at, "ORDER BY and LIMIT belong to the outer query, which orders and limits the released rows")
		}
	}
	inner := &gater{cat: g.cat, stmt: g.stmt}
	q, err := inner.selectNode(n)
	if err != nil {
		return err
	}
	if err := inner.checkWritten(n); err != nil {
		return err
	}
	g.q = *q
	g.outer = &outerScope{alias: alias, names: q.FinalColumns(), types: q.finalTypes()}
	g.cols = nil
	return nil
}

// outerSelect admits the outer query over a DP query's released rows: its select list and WHERE
// are expressions over those rows' columns (with windows), its ORDER BY and LIMIT act on them.
func (g *gater) outerSelect(n *node, items []item) (*Query, error) {
	if len(n.GroupExpressions) > 0 || n.Having.present() {
		at := pos(n.Having)
		if len(n.GroupExpressions) > 0 {
			at = pos(n.GroupExpressions[0])
		}
		return nil, errcode.At(errcode.UnsupportedSQL, at, "the outer query of a WITH over a DP query post-processes its released rows and cannot group them again; put GROUP BY and HAVING in the WITH query")
	}
	step := post.Step{}
	if w := n.WhereClause; w.present() {
		e, err := g.postExpr(w, modeOuter, false)
		if err != nil {
			return nil, err
		}
		step.Where = e
	}
	used := map[string]bool{}
	add := func(name string, e *post.Expr) {
		base := name
		for i := 2; used[name]; i++ {
			name = fmt.Sprintf("%s_%d", base, i)
		}
		used[name] = true
		step.Columns = append(step.Columns, post.Column{Name: name, Expr: e})
	}
	for i, it := range items {
		if it.node.Class == "STAR" {
			if err := only(it.node, with("relation_name")...); err != nil {
				return nil, err
			}
			if r := it.node.RelationName; r != "" && !strings.EqualFold(r, g.outer.alias) {
				return nil, errcode.At(errcode.UnknownColumn, pos(it.node), "%q names no source of this query; the outer query reads %q", r, g.outer.alias)
			}
			for j, name := range g.outer.names {
				add(name, &post.Expr{Op: post.OpInput, Index: j})
			}
			continue
		}
		e, err := g.postExpr(it.node, modeOuter, false)
		if err != nil {
			return nil, err
		}
		name := it.alias
		if name == "" && it.node.Class == "COLUMN_REF" {
			name = g.outer.names[e.Index]
		}
		add(or(name, fmt.Sprintf("derived_%d", i+1)), e)
	}
	var steps []post.Step
	if g.q.Post != nil {
		steps = g.q.Post.Steps
	}
	g.q.Post = &post.Program{Inputs: g.q.baseTypes(), Steps: append(steps, step)}
	if err := g.q.Post.Validate(); err != nil {
		return nil, postProgramError(err, pos(n))
	}
	g.q.Order, g.q.Limit, g.q.Offset = nil, -1, 0
	for _, m := range n.Modifiers {
		if err := g.modifier(m, items); err != nil {
			return nil, err
		}
	}
	return &g.q, nil
}
