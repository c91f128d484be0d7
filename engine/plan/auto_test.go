package plan_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/c1b99f93/cleanroom/dp"
	"github.com/c1b99f93/cleanroom/engine/gate"
	"github.com/c1b99f93/cleanroom/engine/plan"
	"github.com/c1b99f93/cleanroom/sandbox/wire"
)

var autoOpts = plan.Options{Epsilon: 1, Delta: 1e-6, Auto: &plan.AutoMax{MaxGroups: 32, MaxRows: 64}, TimeoutMS: 5000}

// bins builds noisy bins where count units have v groups and r rows in the sampled group.
func bins(a *plan.AutoBounds, pr *wire.Profile, groups, rows map[int64]float64) map[string]float64 {
	out := map[string]float64{}
	for v, n := range groups {
		out[wire.ProfileBin("groups", v, pr.MaxGroups)] += n
	}
	for v, n := range rows {
		out[wire.ProfileBin("rows", v, pr.MaxRows)] += n
	}
	return out
}

func choose(t *testing.T, q *gate.Query, groups, rows map[int64]float64) plan.Choice {
	t.Helper()
	p := build(t, q, autoOpts)
	if p.Auto == nil || (!p.Auto.Groups && len(q.Keys) > 0) || !p.Auto.Rows {
		t.Fatalf("unset bounds are not automatic: %+v", p.Auto)
	}
	pw, err := p.ProfilePlan()
	if err != nil {
		t.Fatal(err)
	}
	g, r := p.Auto.HistogramsFrom(bins(p.Auto, pw.Profile, groups, rows))
	prof := plan.Profiled{Groups: g, Rows: r}
	prof.Partitions = p.PartitionsFor(g)
	return p.Choose(prof)
}

func TestChooseKeepsOneGroupWhenEveryUnitHasOne(t *testing.T) {
	c := choose(t, query(nil, []gate.Key{keyDistrict}, aggCount), map[int64]float64{1: 10000}, map[int64]float64{3: 6000, 4: 4000})
	if c.MaxGroups != 1 || c.MaxRows != 4 {
		t.Errorf("chose %s, want 1 group and 4 rows (every unit has 1 group of at most 4 rows)", c)
	}
	if c.DroppedRowsShare > 1e-9 {
		t.Errorf("expects %.3f of rows dropped, want none", c.DroppedRowsShare)
	}
}

func TestChooseRaisesGroupsWhenUnitsSpreadOverMany(t *testing.T) {
	c := choose(t, query(nil, []gate.Key{keyDiagnosis}, aggCount), map[int64]float64{6: 10000}, map[int64]float64{1: 10000})
	if c.MaxGroups != 8 || c.MaxRows != 1 {
		t.Errorf("chose %s, want 8 groups (every unit has 6) and 1 row", c)
	}
}

// TestPublicCellsCapTheGroups: over public cells no unit has more groups than there are cells,
// so the cap is a candidate bound (it drops nothing at the least noise) and the groups
// histogram's bins above it — only noise — cannot push the choice: a phantom tail of units
// "with 64 groups" over 24 months once ran a query at 8 × 64.
func TestPublicCellsCapTheGroups(t *testing.T) {
	months := make([]string, 24)
	for i := range months {
		months[i] = fmt.Sprintf("2024-%02d-01", i+1)
	}
	keyMonth := gate.Key{Name: "m", Columns: []gate.ColumnRef{{Dataset: "visits", Column: "visit_date"}},
		Expr: wire.Func("date_trunc", wire.Str("month"), wire.Col("", "visit_date")), Domain: months}
	q := query(nil, []gate.Key{keyMonth}, aggCount)
	p := build(t, q, autoOpts)
	if p.Auto.MaxGroups != 24 || p.Auto.GroupsCap != 24 || p.Worker.Bounds.MaxGroupsContributed != 24 {
		t.Fatalf("auto %+v, pre-choice bounds %+v: want the 24 cells as the groups' maximum", p.Auto, p.Worker.Bounds)
	}
	// Every unit is in all 24 months with one row each; a phantom 300 units sit above 64.
	c := choose(t, q, map[int64]float64{24: 10000, 65: 300}, map[int64]float64{1: 10000})
	if c.MaxGroups != 24 || c.MaxRows != 1 {
		t.Errorf("chose %s, want 24 groups (every month) and 1 row", c)
	}
	if c.DroppedRowsShare > 1e-9 {
		t.Errorf("expects %.3f of rows dropped, want none: the bins above the cap are noise", c.DroppedRowsShare)
	}
}

func TestChooseTradesAThinTailForLessNoise(t *testing.T) {
	// 30 units with 500 rows: keeping them whole would multiply the noise of every cell by 64.
	c := choose(t, query(nil, nil, aggCount), map[int64]float64{1: 10000}, map[int64]float64{2: 9970, 500: 30})
	if c.MaxRows > 8 {
		t.Errorf("chose %s: a thin tail should not set the bound", c)
	}
}

func TestApplyBoundsSetsEveryMechanism(t *testing.T) {
	p := build(t, query(nil, []gate.Key{keyDiagnosis}, aggCount, aggSumCost), autoOpts)
	if err := plan.ApplyBounds(&p.Worker, wire.Bounds{MaxGroupsContributed: 4, MaxContributionsPerGroup: 16}); err != nil {
		t.Fatal(err)
	}
	w := p.Worker
	if w.Bounds != (wire.Bounds{MaxGroupsContributed: 4, MaxContributionsPerGroup: 16}) {
		t.Errorf("worker bounds %+v", w.Bounds)
	}
	for i, s := range w.Aggregates {
		if s.MaxPartitions != 4 || s.MaxPerPartition != 16 {
			t.Errorf("aggregate %d: L0 %d L∞ %d", i, s.MaxPartitions, s.MaxPerPartition)
		}
	}
	if w.Selection.MaxPartitions != 4 {
		t.Errorf("selection L0 %d", w.Selection.MaxPartitions)
	}
}

func TestJoinShrinksAutomaticMaximaToItsRowCap(t *testing.T) {
	q := query(nil, nil, aggCount)
	other := *visits
	other.Name = "claims"
	q.Sources = append(q.Sources, gate.Source{Alias: "claims", Dataset: &other, Join: "inner"})
	q.Relation = &gate.Relation{}
	p, err := plan.Build(q, map[string]string{"visits": "s1", "claims": "s2"}, autoOpts, 1)
	if err != nil {
		t.Fatal(err)
	}
	b := p.Worker.Bounds
	if per := b.MaxGroupsContributed * b.MaxContributionsPerGroup; per*per > plan.MaxJoinRowsPerUnit {
		t.Errorf("maxima %+v let a joined unit exceed %d rows", b, plan.MaxJoinRowsPerUnit)
	}
}

// TestAutomaticStepsSpendExactlyTheirShare is the accounting property over random queries:
// the contribution histograms spend ContributionShare of the job's epsilon (only when a bound
// is automatic), the clamping-bounds quantiles ClampShare (only then, and only with values to
// clamp), the bias estimate BiasShare, and with the aggregates, the selection and the
// differencing checks the components add up to exactly the job's epsilon.
func TestAutomaticStepsSpendExactlyTheirShare(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	aggs := []gate.Aggregate{aggCount, aggUnits, aggSumCost, aggSumDays,
		{Name: "avg", Kind: dp.Mean, Column: "cost", Value: wire.Col("", "cost"), Bounds: []float64{0, 50000}},
		{Name: "med", Kind: dp.Quantiles, Column: "cost", Value: wire.Col("", "cost"), Bounds: []float64{0, 50000}, Ranks: []float64{0.5, 1}}}
	keySets := [][]gate.Key{nil, {keyDistrict}, {keyDiagnosis}, {keyDistrict, keyHospital}}
	for i := range 500 {
		var picked []gate.Aggregate
		for range 1 + r.IntN(4) {
			picked = append(picked, aggs[r.IntN(len(aggs))])
		}
		o := plan.Options{Epsilon: 0.05 + 3*r.Float64(), Delta: 1e-6, Auto: &plan.AutoMax{MaxGroups: 1 + r.Int64N(40), MaxRows: 1 + r.Int64N(100)}}
		switch r.IntN(4) {
		case 1:
			o.MaxGroupsContributed = 1 + r.Int64N(5)
		case 2:
			o.MaxContributionsPerGroup = 1 + r.Int64N(5)
		case 3:
			o.MaxGroupsContributed, o.MaxContributionsPerGroup = 2, 3
		}
		if r.IntN(2) == 0 {
			o.MinUnitsPerGroup = 10
		}
		var priors []plan.Prior
		for range r.IntN(3) {
			priors = append(priors, plan.Prior{Job: "j", Filter: costBelow100})
		}
		keys := keySets[r.IntN(len(keySets))]
		p, err := plan.Build(query(nil, keys, picked...), snaps("s"), o, 1, priors...)
		if err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		// A bound that cannot matter is fixed for free: L0 without keys, L∞ when every
		// aggregate counts distinct units.
		rowsMatter := slices.ContainsFunc(picked, func(a gate.Aggregate) bool { return a.Kind != dp.CountDistinct })
		auto := o.MaxGroupsContributed == 0 && len(keys) > 0 || o.MaxContributionsPerGroup == 0 && rowsMatter
		total := p.BiasEpsilon
		if !near(p.BiasEpsilon, plan.BiasShare*o.Epsilon) {
			t.Errorf("case %d: bias estimate spends %v, want %v", i, p.BiasEpsilon, plan.BiasShare*o.Epsilon)
		}
		bs := p.Worker.Bias
		biasSpent := 3 * bs.Count.Epsilon
		if bs.DroppedFraction.Epsilon != bs.Count.Epsilon {
			t.Errorf("case %d: the bias counts do not share equally", i)
		}
		for _, s := range bs.Clamped {
			biasSpent += s.Epsilon
		}
		if !near(biasSpent, p.BiasEpsilon) {
			t.Errorf("case %d: the bias counts spend %v of their %v", i, biasSpent, p.BiasEpsilon)
		}
		if (p.Auto != nil) != auto {
			t.Fatalf("case %d: automatic %v, want %v", i, p.Auto != nil, auto)
		}
		if p.Auto != nil {
			if !near(p.Auto.Epsilon, plan.ContributionShare*o.Epsilon) {
				t.Errorf("case %d: histograms spend %v, want %v", i, p.Auto.Epsilon, plan.ContributionShare*o.Epsilon)
			}
			pw, err := p.ProfilePlan()
			if err != nil {
				t.Fatal(err)
			}
			if pw.Profile.Spec.Epsilon != p.Auto.Epsilon || pw.Profile.Spec.MaxPartitions != 2 || pw.Profile.Spec.MaxPerPartition != 1 {
				t.Errorf("case %d: profile spec %+v", i, pw.Profile.Spec)
			}
			total += p.Auto.Epsilon
			// Any choice keeps the accounting: bounds change sensitivities, never epsilons.
			if err := plan.ApplyBounds(&p.Worker, wire.Bounds{MaxGroupsContributed: 1 + r.Int64N(p.Auto.MaxGroups), MaxContributionsPerGroup: 1 + r.Int64N(p.Auto.MaxRows)}); err != nil {
				t.Fatal(err)
			}
		}
		if c := p.Clamp; c != nil {
			asked := o.MaxGroupsContributed == 0 || o.MaxContributionsPerGroup == 0 // the job asked for automatic bounds
			if !near(c.Epsilon, plan.ClampShare*o.Epsilon) || !asked {
				t.Errorf("case %d: clamping bounds spend %v (asked %v), want %v", i, c.Epsilon, asked, plan.ClampShare*o.Epsilon)
			}
			cw, err := p.ClampPlan()
			if err != nil {
				t.Fatal(err)
			}
			var spent float64
			for _, s := range cw.Aggregates {
				spent += s.Epsilon
				if s.MaxPartitions != 1 || s.MaxPerPartition != 1 || s.Kind != dp.Quantiles {
					t.Errorf("case %d: clamp quantile %+v", i, s)
				}
			}
			hws, err := p.ClampHistogramPlans()
			if err != nil {
				t.Fatal(err)
			}
			for _, hw := range hws {
				// Each unit adds one value to one bin: the bins compose in parallel.
				s := hw.Aggregates[0]
				spent += s.Epsilon
				if s.MaxPartitions != 1 || s.MaxPerPartition != 1 || s.Kind != dp.Count || hw.Bounds.MaxGroupsContributed != 1 {
					t.Errorf("case %d: clamp histogram %+v", i, s)
				}
			}
			if !near(spent, c.Epsilon) {
				t.Errorf("case %d: the clamp quantiles spend %v of their %v", i, spent, c.Epsilon)
			}
			total += c.Epsilon
		}
		for _, s := range p.Worker.Aggregates {
			total += s.Epsilon
		}
		if sel := p.Worker.Selection; sel != nil {
			total += sel.Epsilon
		}
		for _, pr := range p.Probes {
			total += pr.Worker.Aggregates[0].Epsilon
		}
		if !near(total, o.Epsilon) || p.Cost.Epsilon != o.Epsilon {
			t.Errorf("case %d: components spend %v, job charged %v, epsilon %v", i, total, p.Cost.Epsilon, o.Epsilon)
		}
	}
}

// A per-unit subquery's values get clamping bounds chosen under DP within the worst case the
// catalog and the row cap allow (gate.Aggregate.Outer), read on a log scale when that range is
// wider than the quantile tree has leaves; a clamp the query wrote is kept as written, and
// every dataset keeps at most PerUnitJoinRows rows per unit, as the gate assumed.
func TestPerUnitValuesGetClampsChosenWithinTheirOuterBounds(t *testing.T) {
	total := wire.Col("", "total")
	capped := wire.Col("", "capped")
	q := query(nil, nil,
		gate.Aggregate{Name: "avg_total", Kind: dp.Mean, Column: "total", Value: total, Bounds: []float64{0, 5e7}, Outer: [2]bool{false, true}},
		gate.Aggregate{Name: "avg_capped", Kind: dp.Mean, Column: "capped", Value: capped, Bounds: []float64{0, 200000}},
		gate.Aggregate{Name: "sum_top", Kind: dp.Sum, Column: "top", Value: wire.Col("", "top"), Bounds: []float64{0, 50000}, Outer: [2]bool{true, true}})
	q.Relation = &gate.Relation{PerUnit: true, Columns: []gate.RelationColumn{
		{Name: "total", Expr: wire.Col("visits", "cost"), Aggregate: "sum"},
		{Name: "capped", Expr: wire.Col("visits", "cost"), Aggregate: "sum", Clamps: []gate.Clamp{{Func: "least", Value: "200000"}}},
		{Name: "top", Expr: wire.Col("visits", "cost"), Aggregate: "max"},
	}}
	p := build(t, q, autoOpts)
	if r := p.Worker.Relation; r == nil || r.MaxRowsPerUnit != plan.PerUnitJoinRows {
		t.Fatalf("per-unit relation keeps %+v rows per unit, want %d", r, plan.PerUnitJoinRows)
	}
	c := p.Clamp
	if c == nil || len(c.Targets) != 2 {
		t.Fatalf("clamp targets %+v, want avg_total and sum_top (avg_capped is clamped by the query)", c)
	}
	if tg := c.Targets[0]; !tg.LogScale || tg.Upper != 5e7 || tg.KeepUpper || !tg.KeepLower || !slices.Equal(tg.Aggregates, []int{0}) {
		t.Fatalf("per-unit sum target %+v", tg)
	}
	if tg := c.Targets[1]; tg.LogScale || tg.KeepLower || tg.KeepUpper {
		t.Fatalf("per-unit max target %+v", tg)
	}
	cw, err := p.ClampPlan()
	if err != nil {
		t.Fatal(err)
	}
	// The linear target (top) reads a quantile tree; the log-scale one (total) a histogram.
	if len(cw.Aggregates) != 1 || cw.Aggregates[0].Upper != 50000 || cw.Values[0].Kind != wire.KindColumn {
		t.Fatalf("quantile tree %+v of %+v, want one over top's [0, 50000]", cw.Aggregates, cw.Values)
	}
	hws, err := p.ClampHistogramPlans()
	if err != nil {
		t.Fatal(err)
	}
	if len(hws) != 1 {
		t.Fatalf("%d histogram plans, want one (total)", len(hws))
	}
	hw := hws[0]
	// Half-octave bins of logScale over [0, 5e7]: logScale reaches 27 (2^26 < 5e7 ≤ 2^27), so 0..54.
	if len(hw.Keys) != 1 || hw.Keys[0].Name != "floor" || hw.Keys[0].Args[0].Args[1].Kind != wire.KindCase ||
		len(hw.Domains) != 1 || len(hw.Domains[0]) != 55 || hw.Domains[0][54] != "54" {
		t.Fatalf("histogram key %+v over %d bins", hw.Keys, len(hw.Domains[0]))
	}
	if a := hw.Aggregates; len(a) != 1 || a[0].Kind != dp.Count || a[0].MaxPartitions != 1 || a[0].MaxPerPartition != 1 || hw.Bounds.MaxGroupsContributed != 1 {
		t.Fatalf("histogram counts %+v at bounds %+v, want one COUNT with one row per unit", a, hw.Bounds)
	}
	// The noisy quantiles come back on the log scale: 2^17 + 2^16 reads as 18.5.
	chosen := c.ChooseClamps([][]float64{{0.5, 14, 16, 17, 18.5, 19}, {10, 200, 1000, 1500, 2000, 3000}})
	if ch := chosen[0]; ch.Lower != 0 || ch.Upper != 196608 || ch.SumUpper != 262144 {
		t.Fatalf("chosen %+v, want upper 196608 and sum upper 262144", ch)
	}
	if err := plan.ApplyClamps(&p.Worker, c, chosen); err != nil {
		t.Fatal(err)
	}
	if a := p.Worker.Aggregates[1]; a.Lower != 0 || a.Upper != 200000 {
		t.Fatalf("the query's clamp became [%g, %g]", a.Lower, a.Upper)
	}
	if a := p.Worker.Aggregates[0]; a.Upper != 196608 {
		t.Fatalf("avg_total clamps at %g", a.Upper)
	}
}

// TestChooserWeighsExpectedAbsoluteErrorOfBiasAndNoise pins the chooser's per-cell error
// model: the expected absolute error of a biased answer with Laplace or Gaussian noise,
// which is the bias when the noise is negligible, E|noise| when the bias is 0, and less than
// their sum in between (noise partly hides the bias).
func TestChooserWeighsExpectedAbsoluteErrorOfBiasAndNoise(t *testing.T) {
	lap := dp.Spec{Kind: dp.Count, Epsilon: 1, MaxPartitions: 1, MaxPerPartition: 1}
	gauss := lap
	gauss.Delta = 1e-6
	for _, tc := range []struct {
		name     string
		s        dp.Spec
		beta, sd float64
		want     float64
	}{
		{"laplace, no noise", lap, 0.1, 0, 0.1},
		{"laplace, no bias: E|X| = b = sd/√2", lap, 0, 0.1, 0.1 / math.Sqrt2},
		{"laplace, both", lap, 0.1, math.Sqrt2 * 0.1, 0.1 + 0.1*math.Exp(-1)},
		{"gaussian, no bias: E|X| = sd·√(2/π)", gauss, 0, 0.1, 0.1 * math.Sqrt(2/math.Pi)},
		{"gaussian, bias far above the noise", gauss, 1, 0.01, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := plan.AbsError(tc.s, tc.beta, tc.sd)
			if math.Abs(got-tc.want) > 1e-9 {
				t.Fatalf("AbsError = %v, want %v", got, tc.want)
			}
			if tc.beta > 0 && tc.sd > 0 && !(got < tc.beta+tc.sd && got >= tc.beta) {
				t.Fatalf("AbsError = %v, not in [β, β + sd)", got)
			}
		})
	}
}

// TestHiddenUnitCountTakesItsStatedWeight pins the budget split with small-group suppression:
// the hidden unit count takes HiddenUnitCountWeight of one aggregate's share, and the shares
// still add up to the job's epsilon.
func TestHiddenUnitCountTakesItsStatedWeight(t *testing.T) {
	for _, q := range []*gate.Query{
		query(nil, []gate.Key{keyDistrict}, aggCount),
		query(nil, []gate.Key{keyDistrict}, aggCount, aggSumCost),
		query(nil, []gate.Key{keyDiagnosis}, aggCount),
	} {
		sql := q.Aggregates[len(q.Aggregates)-1].Name
		p := build(t, q, plan.Options{Epsilon: 1, Delta: 1e-6, MaxGroupsContributed: 1, MaxContributionsPerGroup: 5, MinUnitsPerGroup: 10})
		if !p.HiddenUnitCount() {
			t.Fatalf("%s: no hidden unit count", sql)
		}
		aggs := p.Worker.Aggregates
		hidden, first := aggs[p.UnitCount].Epsilon, aggs[0].Epsilon
		if math.Abs(hidden-first*plan.HiddenUnitCountWeight) > 1e-12 {
			t.Fatalf("%s: hidden count ε %v, aggregate ε %v", sql, hidden, first)
		}
		total := p.BiasEpsilon
		for _, a := range aggs {
			total += a.Epsilon
		}
		if p.Worker.Selection != nil {
			total += p.Worker.Selection.Epsilon
		}
		if math.Abs(total-1) > 1e-12 {
			t.Fatalf("%s: shares add up to %v, want 1", sql, total)
		}
	}
}

// TestHistogramQuantilesIgnoreATailOfNoise: the clamping histogram's quantiles come from the
// bins that stand above their noise. A noise-only bin far above the data — what sent a quantile
// tree's 0.99 rank to 100–300 times the data — is read as nothing.
func TestHistogramQuantilesIgnoreATailOfNoise(t *testing.T) {
	const sd = 14
	counts := make([]float64, 55)
	// 8,000 units: half-octave bins 20..37 (logScale 10..19), most around 22; 81 in the top bins.
	for b := 20; b < 36; b++ {
		counts[b] = 500
	}
	counts[36], counts[37] = 60, 21
	counts[50] = 40 // noise: 2.9 sd in one bin far above the data
	q := plan.HistogramQuantiles(counts, sd)
	if len(q) != 6 {
		t.Fatalf("quantiles %v, want six ranks", q)
	}
	if q[4] > 19 || q[5] > 19 {
		t.Errorf("upper quantiles %v on the log scale, want within the data (≤ 19): the bin at 25 is noise", q[4:])
	}
	if q[1] < 13 || q[1] > 15 {
		t.Errorf("median %v on the log scale, want about 14", q[1])
	}
	counts[50] = 400 // now a real group of units up there
	if q := plan.HistogramQuantiles(counts, sd); q[5] < 25 {
		t.Errorf("the 0.999 quantile %v ignores 400 units at 25 on the log scale", q[5])
	}
	if q := plan.HistogramQuantiles(make([]float64, 55), sd); q != nil {
		t.Errorf("quantiles %v of an empty histogram, want none", q)
	}
}

// TestHistogramQuantilesNeverReadNoiseAtTheTopAsTheUpperRanks: the same data with Laplace noise
// of the stated deviation drawn on every bin (a seeded simulation of the release, 20,000
// histograms): the upper ranks (0.99 and 0.999) never land two octaves or more above the data.
// With a threshold of 3σ·√k alone, 348 of these 20,000 did, and a job clamped its values at
// the catalog's bound.
func TestHistogramQuantilesNeverReadNoiseAtTheTopAsTheUpperRanks(t *testing.T) {
	const sd, trials = 14.0, 20000
	b := sd / math.Sqrt2 // Laplace scale
	rng := rand.New(rand.NewPCG(20261205, 7))
	laplace := func() float64 {
		u := rng.Float64() - 0.5
		return -b * math.Copysign(math.Log(1-2*math.Abs(u)), u)
	}
	data := make([]float64, 55)
	for i := 20; i < 36; i++ {
		data[i] = 500
	}
	data[36], data[37] = 60, 21
	phantoms := 0
	for range trials {
		counts := make([]float64, len(data))
		for i := range counts {
			counts[i] = data[i] + laplace()
		}
		q := plan.HistogramQuantiles(counts, sd)
		if len(q) != 6 {
			t.Fatalf("quantiles %v, want six ranks", q)
		}
		if q[4] > 21 || q[5] > 21 { // the data end at bin 37 (19 on the log scale); 21 is two octaves above
			phantoms++
		}
	}
	if phantoms > 0 {
		t.Fatalf("%d of %d histograms read noise above the data as the upper ranks", phantoms, trials)
	}
}

// TestUpperClampIsWeighedWithTheRows: a mean's upper clamp is chosen with the contribution
// bounds, by what it cuts from the mean against its noise. Over many rows the noise even at
// the outer bound is small, so the clamp stays there rather than cutting the heavy tail (a
// clamp at the 0.99 quantile cut AVG(cost) by age group by 20–50%); over few rows the noise
// at the outer bound would swamp the mean, so a quantile clamp wins.
func TestUpperClampIsWeighedWithTheRows(t *testing.T) {
	aggMeanCost := gate.Aggregate{Name: "avg_cost", Kind: dp.Mean, Column: "cost", Value: wire.Col("", "cost"), Bounds: visits.Columns["cost"].Bounds}
	// Costs: median 256, 0.9 quantile 5,000, 0.95 10,000, 0.99 30,000, 0.999 the bound.
	upper := visits.Columns["cost"].Bounds[1]
	quantiles := []float64{5, 256, 5000, 10000, 30000, upper}
	for _, tc := range []struct {
		name  string
		units float64
		want  float64
	}{
		{"many rows", 100000, upper},
		{"few rows", 200, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := build(t, query(nil, []gate.Key{keyDistrict}, aggMeanCost), autoOpts)
			if p.Clamp == nil || len(p.Clamp.Targets) != 1 {
				t.Fatalf("clamp %+v", p.Clamp)
			}
			chosen := p.Clamp.ChooseClamps([][]float64{quantiles})
			if chosen[0].Upper != 30000 {
				t.Fatalf("first reading %+v, want the 0.99 quantile", chosen[0])
			}
			if err := plan.ApplyClamps(&p.Worker, p.Clamp, chosen); err != nil {
				t.Fatal(err)
			}
			pw, err := p.ProfilePlan()
			if err != nil {
				t.Fatal(err)
			}
			g, r := p.Auto.HistogramsFrom(bins(p.Auto, pw.Profile, map[int64]float64{1: tc.units}, map[int64]float64{1: tc.units}))
			prof := plan.Profiled{Groups: g, Rows: r}
			prof.Partitions = p.PartitionsFor(g)
			c := p.Choose(prof)
			if len(c.ClampUppers) != 1 {
				t.Fatalf("choice %+v has no clamp for the target", c)
			}
			got := c.ClampUppers[0]
			if tc.want != 0 && got != tc.want || tc.want == 0 && got >= upper {
				t.Errorf("%g units: upper clamp %g (want %v; 0 means below the outer bound)", tc.units, got, tc.want)
			}
			final := plan.WithUppers(chosen, c.ClampUppers)
			if err := plan.ApplyClamps(&p.Worker, p.Clamp, final); err != nil || p.Worker.Aggregates[0].Upper != got {
				t.Errorf("applied upper %g (err %v), want %g", p.Worker.Aggregates[0].Upper, err, got)
			}
		})
	}
}
