package engine

import (
	"testing"
	"time"

	"github.com/c1b99f93/cleanroom/engine/plan"
	"github.com/c1b99f93/cleanroom/sandbox/wire"
)

// TestDeadlineFollowsThePlansRows: the formula of deadline.go, at its floor, in between, at its
// cap, for a join bounded per unit, and for an explicit deadline (kept).
func TestDeadlineFollowsThePlansRows(t *testing.T) {
	ds := func(rows ...int64) sources {
		var out sources
		for _, r := range rows {
			out = append(out, &Dataset{Snapshot: wire.Snapshot{Rows: r}})
		}
		return out
	}
	single := &plan.Planned{}
	join := func(m int64) *plan.Planned {
		return &plan.Planned{Worker: wire.Plan{Relation: &wire.Relation{MaxRowsPerUnit: m}}}
	}
	for _, c := range []struct {
		name string
		ds   sources
		p    *plan.Planned
		want time.Duration
	}{
		{"small table: the floor", ds(1000), single, DeadlineMin},
		{"2^24 rows", ds(10_000_000), single, DeadlineBase + (1<<24)*DeadlinePerRow},
		{"rows past the cap", ds(1 << 40), single, DeadlineMax},
		// 3 · 2^20 read + 2^20 · 4² joined
		{"a join bounded to 4 rows a unit", ds(1<<20, 1<<20, 1<<20), join(4), DeadlineBase + (3+16)*(1<<20)*DeadlinePerRow},
		{"an unbounded join", ds(10, 10), join(0), DeadlineMax},
	} {
		if got := planDeadline(c.ds, c.p); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
	// A check of 9 conditions reads each row for two lots of 8.
	p := &plan.Planned{Probes: []plan.Probe{{Worker: wire.Plan{Differences: make([]*wire.Expr, 9)}}}}
	setDeadline(Job{}, ds(1<<24), p)
	if want := (DeadlineBase + (1<<24)*DeadlinePerRow).Milliseconds(); p.Worker.TimeoutMS != want {
		t.Fatalf("plan deadline %d ms; want %d", p.Worker.TimeoutMS, want)
	}
	if want := (DeadlineBase + 2*(1<<24)*DeadlinePerRow).Milliseconds(); p.Probes[0].Worker.TimeoutMS != want {
		t.Fatalf("check deadline %d ms; want %d", p.Probes[0].Worker.TimeoutMS, want)
	}
	p = &plan.Planned{Worker: wire.Plan{TimeoutMS: 5}}
	setDeadline(Job{Options: plan.Options{TimeoutMS: 5}}, ds(1<<30), p)
	if p.Worker.TimeoutMS != 5 {
		t.Fatalf("an explicit deadline became %d ms", p.Worker.TimeoutMS)
	}
}

// TestDisjointFiltersPinOneStringColumnApart: only string columns pinned to sets that do not
// meet make two filters disjoint.
func TestDisjointFiltersPinOneStringColumnApart(t *testing.T) {
	strs := map[string]bool{"district": true}
	col := func(n string) *wire.Expr { return &wire.Expr{Kind: wire.KindColumn, Name: n} }
	eq := func(c, v string) *wire.Expr { return wire.Compare("=", col(c), wire.Str(v)) }
	in := func(c string, vs ...string) *wire.Expr {
		var items []*wire.Expr
		for _, v := range vs {
			items = append(items, wire.Str(v))
		}
		return &wire.Expr{Kind: wire.KindIn, Args: append([]*wire.Expr{col(c)}, items...)}
	}
	for _, c := range []struct {
		name string
		a, b *wire.Expr
		want bool
	}{
		{"A and B", eq("district", "A"), eq("district", "B"), true},
		{"A and A", eq("district", "A"), eq("district", "A"), false},
		{"A and IN (A, B)", eq("district", "A"), in("district", "A", "B"), false},
		{"IN (C) and A AND x", in("district", "C"), wire.And(eq("district", "A"), eq("cost", "1")), true},
		{"A and A OR B", eq("district", "A"), wire.Or(eq("district", "B"), eq("district", "A")), false},
		{"not a string column", eq("cost", "1"), eq("cost", "01"), false},
		{"no filter", nil, eq("district", "A"), false},
	} {
		if got := disjoint(pinsOf(c.a, strs), pinsOf(c.b, strs)); got != c.want {
			t.Errorf("%s: disjoint %v, want %v", c.name, got, c.want)
		}
	}
}
