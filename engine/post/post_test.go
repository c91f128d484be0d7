package post_test

import (
	"encoding/json"
	"math"
	"testing"

	"github.com/c1b99f93/cleanroom/engine/post"
)

func in(i int) *post.Expr                         { return &post.Expr{Op: post.OpInput, Index: i} }
func num(v float64) *post.Expr                    { return &post.Expr{Op: post.OpNumber, Num: v} }
func op(o post.Op, args ...*post.Expr) *post.Expr { return &post.Expr{Op: o, Args: args} }
func win(o post.Op, w post.Window, args ...*post.Expr) *post.Expr {
	return &post.Expr{Op: o, Args: args, Window: &w}
}

var inf = math.Inf(1)

// released is three districts with a noisy count and a noisy sum of cost.
func released() [][]post.Value {
	return [][]post.Value{
		{post.Text("530102"), post.Number(100, 90, 110), post.Number(5000, 4000, 6000)},
		{post.Text("530103"), post.Number(50, 40, 60), post.Number(1000, -500, 2500)},
		{post.Text("530111"), post.Number(0, 0, 10), post.Number(300, 200, 400)},
	}
}

func program(steps ...post.Step) *post.Program {
	return &post.Program{Inputs: []post.Type{post.TypeText, post.TypeNumber, post.TypeNumber}, Steps: steps}
}

func cols(es ...*post.Expr) []post.Column {
	var out []post.Column
	for _, e := range es {
		out = append(out, post.Column{Name: "c", Expr: e})
	}
	return out
}

type iv struct{ v, lo, hi float64 }

func check(t *testing.T, got post.Value, want iv) {
	t.Helper()
	near := func(a, b float64) bool { return a == b || math.Abs(a-b) <= 1e-9*math.Max(math.Abs(a), math.Abs(b)) }
	if got.Kind != post.KindNumber || !near(got.Num, want.v) || !near(got.Lo, want.lo) || !near(got.Hi, want.hi) {
		t.Fatalf("got %v [%v, %v] (kind %d), want %v [%v, %v]", got.Num, got.Lo, got.Hi, got.Kind, want.v, want.lo, want.hi)
	}
}

func TestIntervalsPropagateThroughArithmetic(t *testing.T) {
	cases := []struct {
		name string
		expr *post.Expr
		want []iv // per row; a NaN v means NULL
	}{
		{"sum minus count", op(post.OpSub, in(2), in(1)), []iv{{4900, 3890, 5910}, {950, -560, 2460}, {300, 190, 400}}},
		{"scaled", op(post.OpMul, num(100), in(1)), []iv{{10000, 9000, 11000}, {5000, 4000, 6000}, {0, 0, 1000}}},
		{"ratio, denominator away from 0", op(post.OpDiv, in(2), in(1)), []iv{{50, 4000.0 / 110, 6000.0 / 90}, {20, -500.0 / 40, 2500.0 / 40}, {math.NaN(), 0, 0}}},
		{"ratio, denominator interval spans 0", op(post.OpDiv, in(1), in(2)), []iv{{0.02, 90.0 / 6000, 110.0 / 4000}, {0.05, -inf, inf}, {0, 0, 10.0 / 200}}},
		{"negation", op(post.OpNeg, in(2)), []iv{{-5000, -6000, -4000}, {-1000, -2500, 500}, {-300, -400, -200}}},
		{"abs", op(post.OpAbs, in(2)), []iv{{5000, 4000, 6000}, {1000, 0, 2500}, {300, 200, 400}}},
		{"round to one digit", &post.Expr{Op: post.OpRound, Num: 1, Args: []*post.Expr{op(post.OpDiv, in(1), num(3))}}, []iv{{33.3, 30, 36.7}, {16.7, 13.3, 20}, {0, 0, 3.3}}},
		{"nullif", op(post.OpDiv, in(2), op(post.OpNullIf, in(1), num(0))), []iv{{50, 4000.0 / 110, 6000.0 / 90}, {20, -500.0 / 40, 2500.0 / 40}, {math.NaN(), 0, 0}}},
		{"case spans its branches", op(post.OpCase, op(post.OpGt, in(1), num(60)), num(1), in(1)), []iv{{1, 1, 110}, {50, 1, 60}, {0, 0, 10}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rows, err := post.Eval(program(post.Step{Columns: cols(c.expr)}), released())
			if err != nil {
				t.Fatal(err)
			}
			for i, r := range rows {
				if math.IsNaN(c.want[i].v) {
					if r.Values[0].Kind != post.KindNull {
						t.Fatalf("row %d: want NULL, got %+v", i, r.Values[0])
					}
					continue
				}
				check(t, r.Values[0], c.want[i])
			}
		})
	}
}

func TestHavingFiltersReleasedRowsAndPassesCellsThrough(t *testing.T) {
	p := program(post.Step{Where: op(post.OpGe, in(1), num(50)), Columns: cols(in(0), in(1), op(post.OpAdd, in(1), num(1)))})
	rows, err := post.Eval(p, released())
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 || rows[0].Source != 0 || rows[1].Source != 1 {
		t.Fatalf("kept %+v, want rows 0 and 1", rows)
	}
	if rows[0].Values[0].Ref != 0 || rows[0].Values[1].Ref != 1 || rows[0].Values[2].Ref != -1 {
		t.Fatalf("pass-through refs %d %d %d, want 0 1 -1", rows[0].Values[0].Ref, rows[0].Values[1].Ref, rows[0].Values[2].Ref)
	}
	if p.Passthrough(0) != 0 || p.Passthrough(2) != -1 {
		t.Fatal("Passthrough does not follow the program")
	}
	if got := p.Reads(2); len(got) != 1 || got[0] != 1 {
		t.Fatalf("Reads = %v, want [1]", got)
	}
}

func TestWindowsOverReleasedRows(t *testing.T) {
	byKey := []post.SortKey{{Expr: in(0)}}
	byCountDesc := []post.SortKey{{Expr: in(1), Descending: true}}
	two := int64(-1)
	cur := int64(0)
	cases := []struct {
		name string
		expr *post.Expr
		want []iv
	}{
		{"share of the total", op(post.OpDiv, op(post.OpMul, in(1), num(100)), win(post.OpSumOver, post.Window{}, in(1))),
			[]iv{{100 * 100.0 / 150, 9000.0 / 180, 11000.0 / 130}, {50 * 100.0 / 150, 4000.0 / 180, 6000.0 / 130}, {0, 0, 1000.0 / 130}}},
		{"lag by key", op(post.OpSub, in(1), win(post.OpLag, post.Window{Order: byKey, Offset: 1}, in(1))),
			[]iv{{math.NaN(), 0, 0}, {-50, -70, -30}, {-50, -60, -30}}},
		{"lag with a default", win(post.OpLag, post.Window{Order: byKey, Offset: 1, Default: num(0)}, in(1)),
			[]iv{{0, 0, 0}, {100, 90, 110}, {50, 40, 60}}},
		{"running sum", win(post.OpSumOver, post.Window{Order: byKey}, in(1)), []iv{{100, 90, 110}, {150, 130, 170}, {150, 130, 180}}},
		{"moving average of two rows", win(post.OpAvgOver, post.Window{Order: byKey, Frame: post.Frame{Rows: true, Start: &two, End: &cur}}, in(1)),
			[]iv{{100, 90, 110}, {75, 65, 85}, {25, 20, 35}}},
		{"row number by noisy count", win(post.OpRowNumber, post.Window{Order: byCountDesc}), []iv{{1, 1, 1}, {2, 2, 2}, {3, 3, 3}}},
		{"row number by key is exact", win(post.OpRowNumber, post.Window{Order: byKey}), []iv{{1, 1, 1}, {2, 2, 2}, {3, 3, 3}}},
		{"count of rows", win(post.OpCountStarOver, post.Window{}), []iv{{3, 3, 3}, {3, 3, 3}, {3, 3, 3}}},
		{"max", win(post.OpMaxOver, post.Window{}, in(2)), []iv{{5000, 4000, 6000}, {5000, 4000, 6000}, {5000, 4000, 6000}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rows, err := post.Eval(program(post.Step{Columns: cols(c.expr)}), released())
			if err != nil {
				t.Fatal(err)
			}
			for i, r := range rows {
				if math.IsNaN(c.want[i].v) {
					if r.Values[0].Kind != post.KindNull {
						t.Fatalf("row %d: want NULL, got %+v", i, r.Values[0])
					}
					continue
				}
				check(t, r.Values[0], c.want[i])
			}
		})
	}
}

// Ranks by a noisy value carry the ranks the true values could have: rows whose intervals
// overlap could swap.
func TestRankIntervalsCoverOverlappingRows(t *testing.T) {
	rows := [][]post.Value{
		{post.Text("a"), post.Number(100, 90, 110), post.Number(0, 0, 0)},
		{post.Text("b"), post.Number(95, 85, 105), post.Number(0, 0, 0)},
		{post.Text("c"), post.Number(10, 5, 15), post.Number(0, 0, 0)},
	}
	p := program(post.Step{Columns: cols(win(post.OpRank, post.Window{Order: []post.SortKey{{Expr: in(1), Descending: true}}}))})
	got, err := post.Eval(p, rows)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []iv{{1, 1, 2}, {2, 1, 2}, {3, 3, 3}} {
		check(t, got[i].Values[0], want)
	}
}

func TestStepsCompose(t *testing.T) {
	// WITH t AS (SELECT district, COUNT(*) AS n, … HAVING n > 0) SELECT district, n - LAG(n) … FROM t WHERE n < 100
	p := program(
		post.Step{Where: op(post.OpGt, in(1), num(0)), Columns: cols(in(0), in(1))},
		post.Step{Where: op(post.OpLt, in(1), num(100)), Columns: cols(in(0), op(post.OpSub, in(1), win(post.OpLag, post.Window{Order: []post.SortKey{{Expr: in(0)}}, Offset: 1}, in(1))))},
	)
	rows, err := post.Eval(p, released())
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || rows[0].Source != 1 || rows[0].Values[1].Kind != post.KindNull {
		t.Fatalf("got %+v, want row 1 only with a NULL difference (its LAG sees only the rows kept)", rows)
	}
	if rows[0].Values[0].Ref != 0 {
		t.Fatal("a key passed through two steps lost its origin")
	}
}

func TestKeysCompareAsNumbersWithNumbers(t *testing.T) {
	p := program(post.Step{Where: op(post.OpOr, op(post.OpEq, in(0), &post.Expr{Op: post.OpText, Text: "530111"}), op(post.OpLt, in(0), num(530103))), Columns: cols(in(0))})
	rows, err := post.Eval(p, released())
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 || rows[0].Source != 0 || rows[1].Source != 2 {
		t.Fatalf("got %+v", rows)
	}
}

var invalid = []struct {
	name string
	p    *post.Program
}{
	{"no steps", &post.Program{Inputs: []post.Type{post.TypeNumber}}},
	{"input out of range", &post.Program{Inputs: []post.Type{post.TypeNumber}, Steps: []post.Step{{Columns: cols(in(3))}}}},
	{"arithmetic on a key", program(post.Step{Columns: cols(op(post.OpAdd, in(0), num(1)))})},
	{"condition as output", program(post.Step{Columns: cols(op(post.OpGt, in(1), num(1)))})},
	{"window in WHERE", program(post.Step{Where: op(post.OpGt, win(post.OpRowNumber, post.Window{}), num(1)), Columns: cols(in(1))})},
	{"window in a window", program(post.Step{Columns: cols(win(post.OpSumOver, post.Window{}, win(post.OpRowNumber, post.Window{})))})},
	{"number WHERE", program(post.Step{Where: in(1), Columns: cols(in(1))})},
	{"unknown operator", program(post.Step{Columns: cols(op("exec", in(1)))})},
	{"infinite constant", program(post.Step{Columns: cols(num(inf))})},
	{"frame backwards", program(post.Step{Columns: cols(win(post.OpSumOver, post.Window{Frame: post.Frame{Rows: true, Start: ptr(1), End: ptr(-1)}}, in(1)))})},
	{"lag of a key", program(post.Step{Columns: cols(win(post.OpLag, post.Window{Offset: 1}, in(0)))})},
	{"text computed", program(post.Step{Columns: cols(op(post.OpCoalesce, in(0), in(0)))})},
}

func ptr(v int64) *int64 { return &v }

func TestValidateRefusesMalformedPrograms(t *testing.T) {
	for _, c := range invalid {
		t.Run(c.name, func(t *testing.T) {
			if err := c.p.Validate(); err == nil {
				t.Fatal("validated")
			}
		})
	}
}

func TestFormatNamesTheExpression(t *testing.T) {
	p := program(post.Step{Columns: cols(op(post.OpDiv, op(post.OpMul, in(1), num(100)), win(post.OpSumOver, post.Window{}, in(1))))})
	if got, want := p.Format(0, 0, []string{"district", "n", "total"}), "((n * 100) / SUM(n) OVER ())"; got != want {
		t.Fatalf("Format = %q, want %q", got, want)
	}
}

// FuzzValidate: any program Validate accepts evaluates without panicking, and every number it
// returns is finite with an interval around it that has no NaN.
func FuzzValidate(f *testing.F) {
	seeds := []*post.Program{
		program(post.Step{Where: op(post.OpGe, in(1), num(50)), Columns: cols(in(0), op(post.OpDiv, in(2), in(1)))}),
		program(post.Step{Columns: cols(win(post.OpLag, post.Window{Order: []post.SortKey{{Expr: in(0)}}, Offset: 1}, in(1)))}),
		program(post.Step{Columns: cols(in(0), in(1))}, post.Step{Columns: cols(win(post.OpRank, post.Window{Order: []post.SortKey{{Expr: in(1), Descending: true}}}))}),
	}
	for _, c := range invalid {
		seeds = append(seeds, c.p)
	}
	for _, s := range seeds {
		if b, err := json.Marshal(s); err == nil { // an infinite constant has no JSON
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var p post.Program
		if json.Unmarshal(data, &p) != nil || p.Validate() != nil {
			return
		}
		rows := make([][]post.Value, 3)
		for i, r := range released() {
			rows[i] = make([]post.Value, len(p.Inputs))
			for j, typ := range p.Inputs {
				switch {
				case typ == post.TypeText:
					rows[i][j] = r[0]
				case i == 2:
					rows[i][j] = post.Number(0, -1, 1)
				default:
					rows[i][j] = r[1+j%2]
				}
			}
		}
		out, err := post.Eval(&p, rows)
		if err != nil {
			t.Fatalf("a valid program failed: %v", err)
		}
		for _, r := range out {
			for _, v := range r.Values {
				if v.Kind == post.KindNumber && (math.IsNaN(v.Num) || math.IsInf(v.Num, 0) || math.IsNaN(v.Lo) || math.IsNaN(v.Hi) || v.Lo > v.Num || v.Hi < v.Num) {
					t.Fatalf("bad number %v [%v, %v]", v.Num, v.Lo, v.Hi)
				}
			}
		}
	})
}
