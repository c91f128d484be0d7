package plan_test

import (
	"fmt"
	"testing"

	"github.com/c1b99f93/cleanroom/engine/gate"
	"github.com/c1b99f93/cleanroom/engine/plan"
	"github.com/c1b99f93/cleanroom/sandbox/wire"
)

// TestL1ChoiceOnTheTestdataMonthHistograms runs the L1 chooser on the exact (noise-free)
// contribution histograms of the committed testdata's visits by month — 8,104 persons'
// months and total visits — with the shipped maxima (C up to 100, the explicit per-group
// maximum). The true optimum is L0 24 (no month dropped) and C = 100: C = 64 drops 10.8% of
// the visits, 100 drops 8.1% for about 2.5 points more noise (Laplace scale 100/0.68 over
// cells of 2,172). With the rows histogram ending at the maximum, its one bin above held the
// 50 persons with more than 64 visits at twice 64, far below their mean of about 190, and the
// choice took C = 64.
func TestL1ChoiceOnTheTestdataMonthHistograms(t *testing.T) {
	var months []string
	for i := range 24 {
		months = append(months, fmt.Sprintf("2024-%02d", i))
	}
	key := gate.Key{Name: "m", Columns: []gate.ColumnRef{{Dataset: "visits", Column: "visit_date"}}, Expr: wire.Col("", "visit_date"), Domain: months}
	o := plan.Options{Epsilon: 1, MinUnitsPerGroup: 10, Auto: &plan.AutoMax{MaxGroups: 32, MaxRows: 64, MaxTotal: 128, MaxRowsInGroup: 100}, TimeoutMS: 5000}
	p := build(t, query(nil, []gate.Key{key}, aggCount), o)
	if !p.Auto.TotalRows || p.Auto.MaxTotal != 100 || p.Auto.MaxGroups != 24 {
		t.Fatalf("a public key should get an L1 bound up to 100 rows and 24 groups: %+v", *p.Auto)
	}
	pw, err := p.ProfilePlan()
	if err != nil {
		t.Fatal(err)
	}
	// Persons by the power-of-two bin of their months and of their visits (the bin's edge).
	groups := map[int64]float64{1: 1837, 2: 1559, 4: 1918, 8: 1703, 16: 891, 24: 196}
	rows := map[int64]float64{1: 1773, 2: 1487, 4: 1787, 8: 1606, 16: 974, 32: 334, 64: 93, 128: 20, 256: 18, 512: 12}
	g, r := p.Auto.HistogramsFrom(bins(p.Auto, pw.Profile, groups, rows))
	c := p.Choose(plan.Profiled{Groups: g, Rows: r, Partitions: p.PartitionsFor(g)})
	if c.MaxGroups != 24 || c.MaxRowsPerUnit != 100 || c.MaxRows != 100 {
		t.Errorf("chose %s (%+v), want 24 groups and 100 rows per unit", c, c)
	}
}
