package plan_test

import (
	"errors"
	"math"
	"reflect"
	"testing"

	"github.com/c1b99f93/cleanroom/catalog"
	"github.com/c1b99f93/cleanroom/dp"
	"github.com/c1b99f93/cleanroom/engine/gate"
	"github.com/c1b99f93/cleanroom/engine/plan"
	"github.com/c1b99f93/cleanroom/errcode"
	"github.com/c1b99f93/cleanroom/sandbox/wire"
)

func tags(t ...catalog.Tag) []catalog.Tag { return t }

// visits has key columns with a public domain (district; hospital, whose values contain single
// quotes) and one without (diagnosis), and two bounded columns.
var visits = &catalog.Spec{
	Name: "visits", Provider: "health-commission", Grade: catalog.GradeL2, Domain: catalog.DefaultDomain,
	PrivacyUnit: "person_id",
	Source:      catalog.Source{Kind: catalog.SourceParquet, Path: "/data/visits.parquet"},
	Budget:      catalog.Budget{Epsilon: 20, Delta: 1e-5},
	Columns: map[string]catalog.Column{
		"person_id": {Tags: tags(catalog.TagIdentifier)},
		"district":  {Tags: tags(catalog.TagQuasiIdentifier), Domain: []string{"530102", "530103"}},
		"hospital":  {Tags: tags(catalog.TagAttribute), Domain: []string{"St Mary's", "Ren'ai ''Hospital''"}},
		"diagnosis": {Tags: tags(catalog.TagSensitive)},
		"cost":      {Tags: tags(catalog.TagSensitive), Bounds: []float64{0, 50000}},
		"days":      {Tags: tags(catalog.TagAttribute), Bounds: []float64{-3, 30}},
	},
}

// The expressions follow what gate.Admit produces (engine/gate/testdata/admitted.golden).
var (
	keyDistrict  = gate.Key{Name: "district", Columns: []gate.ColumnRef{{Dataset: "visits", Column: "district"}}, Expr: wire.Col("", "district"), Domain: visits.Columns["district"].Domain}
	keyHospital  = gate.Key{Name: "hospital", Columns: []gate.ColumnRef{{Dataset: "visits", Column: "hospital"}}, Expr: wire.Col("", "hospital"), Domain: visits.Columns["hospital"].Domain}
	keyDiagnosis = gate.Key{Name: "diagnosis", Columns: []gate.ColumnRef{{Dataset: "visits", Column: "diagnosis"}}, Expr: wire.Col("", "diagnosis")}
	aggCount     = gate.Aggregate{Name: "count", Kind: dp.Count}
	aggUnits     = gate.Aggregate{Name: "units", Kind: dp.CountDistinct, Column: "person_id"}
	aggSumCost   = gate.Aggregate{Name: "sum_cost", Kind: dp.Sum, Column: "cost", Value: wire.Col("", "cost"), Bounds: visits.Columns["cost"].Bounds}
	aggSumCost2  = gate.Aggregate{Name: "sum_cost_2", Kind: dp.Sum, Column: "cost", Value: wire.Col("", "cost"), Bounds: visits.Columns["cost"].Bounds}
	aggSumDays   = gate.Aggregate{Name: "sum_days", Kind: dp.Sum, Column: "days", Value: wire.Col("", "days"), Bounds: visits.Columns["days"].Bounds}
)

// costBelow100 is the filter cost < 100.
var costBelow100 = wire.Compare("<", wire.Col("", "cost"), wire.Num("100"))

func query(filter *wire.Expr, keys []gate.Key, aggs ...gate.Aggregate) *gate.Query {
	return &gate.Query{Dataset: visits, Sources: []gate.Source{{Alias: "visits", Dataset: visits}}, Keys: keys, Aggregates: aggs, Filter: filter}
}

var opts = plan.Options{Epsilon: 3, Delta: 1e-6, MaxGroupsContributed: 2, MaxContributionsPerGroup: 4, TimeoutMS: 5000}

func build(t *testing.T, q *gate.Query, o plan.Options) *plan.Planned {
	t.Helper()
	p, err := plan.Build(q, snaps("sha256:snap"), o, 42)
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	return p
}

func snaps(digest string) map[string]string { return map[string]string{"visits": digest} }

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-12*math.Max(1, math.Abs(b)) }

// The worker drops rows outside the public domains by key hash, so the applicant's filter
// reaches it unchanged and the domains travel in the plan, values exactly as declared.
func TestBuildWithPublicKeysRestrictsToDomainsAndSpendsNoDelta(t *testing.T) {
	for _, tc := range []struct {
		name       string
		q          *gate.Query
		domains    [][]string
		wantFilter *wire.Expr
	}{
		{
			name:       "one public key, no filter",
			q:          query(nil, []gate.Key{keyDistrict}, aggCount, aggUnits, aggSumCost),
			domains:    [][]string{{"530102", "530103"}},
			wantFilter: nil,
		},
		{
			name:       "two public keys after the applicant's filter, quotes escaped",
			q:          query(costBelow100, []gate.Key{keyDistrict, keyHospital}, aggCount, aggUnits, aggSumCost),
			domains:    [][]string{{"530102", "530103"}, {"St Mary's", "Ren'ai ''Hospital''"}},
			wantFilter: costBelow100,
		},
		{
			name:       "no keys: one public partition, filter untouched",
			q:          query(costBelow100, nil, aggCount, aggUnits, aggSumCost),
			domains:    nil,
			wantFilter: costBelow100,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := build(t, tc.q, opts)
			if !p.Public {
				t.Fatal("Public = false")
			}
			if p.Worker.Selection != nil {
				t.Errorf("public plan has a partition selection %+v", *p.Worker.Selection)
			}
			if !reflect.DeepEqual(p.Domains, tc.domains) {
				t.Errorf("Domains = %q, want %q", p.Domains, tc.domains)
			}
			if !reflect.DeepEqual(p.Worker.Domains, tc.domains) {
				t.Errorf("worker plan Domains = %q, want %q", p.Worker.Domains, tc.domains)
			}
			if !p.Worker.Filter.Equal(tc.wantFilter) {
				t.Errorf("filter\n got %s\nwant %s", p.Worker.Filter.Canonical(), tc.wantFilter.Canonical())
			}
			if p.Cost != (plan.Cost{Epsilon: opts.Epsilon, Delta: 0}) {
				t.Errorf("cost %+v, want epsilon %v and no delta", p.Cost, opts.Epsilon)
			}
			n := float64(len(tc.q.Aggregates))
			aggEps := opts.Epsilon * (1 - plan.BiasShare) / n // the bias estimate takes its share first
			for i, s := range p.Worker.Aggregates {
				if !near(s.Epsilon, aggEps) || s.Delta != 0 {
					t.Errorf("aggregate %d: ε=%v δ=%v, want ε=%v δ=0", i, s.Epsilon, s.Delta, aggEps)
				}
			}
		})
	}
}

func TestBuildWithNonPublicKeyUsesSelectionAndSplitsEpsilonOverNPlusOne(t *testing.T) {
	for _, tc := range []struct {
		name string
		q    *gate.Query
	}{
		{"key without domain", query(costBelow100, []gate.Key{keyDiagnosis}, aggCount, aggSumCost)},
		{"public key beside one without domain", query(nil, []gate.Key{keyDistrict, keyDiagnosis}, aggCount, aggUnits, aggSumCost)},
		{"key without domain first", query(nil, []gate.Key{keyDiagnosis, keyDistrict}, aggUnits)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := build(t, tc.q, opts)
			if p.Public {
				t.Fatal("Public = true")
			}
			if p.Domains != nil {
				t.Errorf("Domains = %q, want none", p.Domains)
			}
			if !p.Worker.Filter.Equal(tc.q.Filter) {
				t.Errorf("filter %s changed from the applicant's %s", p.Worker.Filter.Canonical(), tc.q.Filter.Canonical())
			}
			share := opts.Epsilon * (1 - plan.BiasShare) / float64(len(tc.q.Aggregates)+1)
			sel := p.Worker.Selection
			if sel == nil {
				t.Fatal("no partition selection")
			}
			if !near(sel.Epsilon, share) || sel.Delta != opts.Delta || sel.MaxPartitions != opts.MaxGroupsContributed {
				t.Errorf("selection %+v, want ε=%v δ=%v L0=%d", *sel, share, opts.Delta, opts.MaxGroupsContributed)
			}
			for i, s := range p.Worker.Aggregates {
				if !near(s.Epsilon, share) || s.Delta != 0 {
					t.Errorf("aggregate %d: ε=%v δ=%v, want ε=%v δ=0", i, s.Epsilon, s.Delta, share)
				}
			}
			if p.Cost != (plan.Cost{Epsilon: opts.Epsilon, Delta: opts.Delta}) {
				t.Errorf("cost %+v, want all of epsilon and delta %+v", p.Cost, opts)
			}
			// The components (with the bias estimate's) add up to what the job is charged.
			total := sel.Epsilon + p.BiasEpsilon
			for _, s := range p.Worker.Aggregates {
				total += s.Epsilon
			}
			if !near(total, p.Cost.Epsilon) {
				t.Errorf("components spend ε=%v, job is charged %v", total, p.Cost.Epsilon)
			}
		})
	}
}

func TestBuildRefusesNonPublicKeyWithoutDelta(t *testing.T) {
	o := opts
	o.Delta = 0
	_, err := plan.Build(query(nil, []gate.Key{keyDiagnosis}, aggCount), snaps("s"), o, 1)
	if got := errcode.Of(err); got != errcode.InvalidOptions {
		t.Fatalf("code %q (%v), want %s", got, err, errcode.InvalidOptions)
	}
	// The same options are fine when every key is public: no delta is needed.
	p := build(t, query(nil, []gate.Key{keyDistrict}, aggCount), o)
	if p.Cost.Delta != 0 {
		t.Errorf("public plan costs delta %v", p.Cost.Delta)
	}
}

func TestBuildGivesSumTheCatalogBoundsAndAValueIndex(t *testing.T) {
	p := build(t, query(nil, []gate.Key{keyDistrict}, aggCount, aggSumCost, aggUnits, aggSumCost2, aggSumDays), opts)
	want := []struct {
		kind         dp.Kind
		value        int
		lower, upper float64
	}{
		{dp.Count, -1, 0, 0},
		{dp.Sum, 0, 0, 50000},
		{dp.CountDistinct, -1, 0, 0},
		{dp.Sum, 1, 0, 50000}, // same column again: a value expression of its own
		{dp.Sum, 2, -3, 30},
	}
	if len(p.Worker.Aggregates) != len(want) {
		t.Fatalf("%d aggregates, want %d", len(p.Worker.Aggregates), len(want))
	}
	for i, w := range want {
		s := p.Worker.Aggregates[i]
		if s.Kind != w.kind || s.Value != w.value || s.Lower != w.lower || s.Upper != w.upper {
			t.Errorf("aggregate %d: kind %s value %d bounds [%v, %v], want %s %d [%v, %v]",
				i, s.Kind, s.Value, s.Lower, s.Upper, w.kind, w.value, w.lower, w.upper)
		}
		if s.MaxPartitions != opts.MaxGroupsContributed || s.MaxPerPartition != opts.MaxContributionsPerGroup {
			t.Errorf("aggregate %d: bounds L0=%d L∞=%d, want %d %d", i, s.MaxPartitions, s.MaxPerPartition,
				opts.MaxGroupsContributed, opts.MaxContributionsPerGroup)
		}
	}
	if wantValues := []*wire.Expr{wire.Col("", "cost"), wire.Col("", "cost"), wire.Col("", "days")}; !reflect.DeepEqual(p.Worker.Values, wantValues) {
		t.Errorf("Values = %v, want %v", p.Worker.Values, wantValues)
	}
}

func TestBuildCopiesJobParametersIntoWorkerPlan(t *testing.T) {
	p := build(t, query(nil, []gate.Key{keyDistrict, keyHospital}, aggCount), opts)
	w := p.Worker
	if w.Snapshot != "sha256:snap" || w.SamplingKey != 42 || w.TimeoutMS != opts.TimeoutMS {
		t.Errorf("snapshot %q sampling key %d timeout %d", w.Snapshot, w.SamplingKey, w.TimeoutMS)
	}
	if w.Bounds.MaxGroupsContributed != 2 || w.Bounds.MaxContributionsPerGroup != 4 {
		t.Errorf("bounds %+v", w.Bounds)
	}
	if !reflect.DeepEqual(w.Keys, []*wire.Expr{wire.Col("", "district"), wire.Col("", "hospital")}) {
		t.Errorf("keys %v", w.Keys)
	}
	if p.Query == nil || p.Split == "" {
		t.Errorf("plan without query or split explanation")
	}
}

func TestBuildRefusesInvalidOptions(t *testing.T) {
	o := opts
	o.Epsilon = -1
	_, err := plan.Build(query(nil, nil, aggCount), snaps("s"), o, 1)
	if got := errcode.Of(err); got != errcode.InvalidOptions {
		t.Fatalf("code %q (%v), want %s", got, err, errcode.InvalidOptions)
	}
}

func TestOptionsValidateRefusesEachBadRange(t *testing.T) {
	with := func(f func(*plan.Options)) plan.Options { o := opts; f(&o); return o }
	for _, tc := range []struct {
		name string
		o    plan.Options
		ok   bool
	}{
		{"valid", opts, true},
		{"delta zero", with(func(o *plan.Options) { o.Delta = 0 }), true},
		{"timeout zero", with(func(o *plan.Options) { o.TimeoutMS = 0 }), true},
		{"groups 1000", with(func(o *plan.Options) { o.MaxGroupsContributed = 1000 }), true},
		{"contributions 10000", with(func(o *plan.Options) { o.MaxContributionsPerGroup = 10000 }), true},
		{"epsilon zero", with(func(o *plan.Options) { o.Epsilon = 0 }), false},
		{"epsilon negative", with(func(o *plan.Options) { o.Epsilon = -0.5 }), false},
		{"epsilon NaN", with(func(o *plan.Options) { o.Epsilon = math.NaN() }), false},
		{"epsilon +Inf", with(func(o *plan.Options) { o.Epsilon = math.Inf(1) }), false},
		{"epsilon at the cap", with(func(o *plan.Options) { o.Epsilon = 100 }), true},
		// Above ~709 the library's Gaussian calibration underflows and its sampler never returns.
		{"epsilon above the cap", with(func(o *plan.Options) { o.Epsilon = 1600 }), false},
		{"delta negative", with(func(o *plan.Options) { o.Delta = -1e-9 }), false},
		{"delta one", with(func(o *plan.Options) { o.Delta = 1 }), false},
		{"delta NaN", with(func(o *plan.Options) { o.Delta = math.NaN() }), false},
		{"groups zero (automatic)", with(func(o *plan.Options) { o.MaxGroupsContributed = 0 }), true},
		{"groups negative", with(func(o *plan.Options) { o.MaxGroupsContributed = -1 }), false},
		{"groups 1001", with(func(o *plan.Options) { o.MaxGroupsContributed = 1001 }), false},
		{"contributions zero (automatic)", with(func(o *plan.Options) { o.MaxContributionsPerGroup = 0 }), true},
		{"contributions 10001", with(func(o *plan.Options) { o.MaxContributionsPerGroup = 10001 }), false},
		{"timeout negative", with(func(o *plan.Options) { o.TimeoutMS = -1 }), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.o.Validate()
			if tc.ok {
				if err != nil {
					t.Errorf("refused valid options: %v", err)
				}
				return
			}
			var e *errcode.Error
			if !errors.As(err, &e) || e.Code != errcode.InvalidOptions {
				t.Errorf("Validate() = %v, want an *errcode.Error with code %s", err, errcode.InvalidOptions)
			}
		})
	}
}

func TestOptionsDefaultsFillsZerosOnly(t *testing.T) {
	// Unset contribution bounds stay unset: automatic (Build chooses or defaults them).
	want := plan.Options{Epsilon: 1, Delta: 1e-6, TimeoutMS: 60_000}
	if got := (plan.Options{}).Defaults(); got != want {
		t.Errorf("zero options defaulted to %+v, want %+v", got, want)
	}
	set := plan.Options{Epsilon: 0.25, Delta: 1e-9, MaxGroupsContributed: 7, MaxContributionsPerGroup: 9, TimeoutMS: 10}
	if got := set.Defaults(); got != set {
		t.Errorf("set options changed to %+v, want %+v", got, set)
	}
	// Invalid values are not zeros: Defaults leaves them for Validate to refuse.
	bad := plan.Options{Epsilon: -1, Delta: -1, MaxGroupsContributed: -1, MaxContributionsPerGroup: -1, TimeoutMS: -1}
	if got := bad.Defaults(); got != bad {
		t.Errorf("negative options changed to %+v", got)
	}
	// Each field independently.
	for _, tc := range []struct {
		name string
		in   plan.Options
	}{
		{"only epsilon", plan.Options{Epsilon: 2}},
		{"only delta", plan.Options{Delta: 1e-3}},
		{"only groups", plan.Options{MaxGroupsContributed: 3}},
		{"only contributions", plan.Options{MaxContributionsPerGroup: 3}},
		{"only timeout", plan.Options{TimeoutMS: 3}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.in.Defaults()
			exp := want
			switch {
			case tc.in.Epsilon != 0:
				exp.Epsilon = tc.in.Epsilon
			case tc.in.Delta != 0:
				exp.Delta = tc.in.Delta
			case tc.in.MaxGroupsContributed != 0:
				exp.MaxGroupsContributed = tc.in.MaxGroupsContributed
			case tc.in.MaxContributionsPerGroup != 0:
				exp.MaxContributionsPerGroup = tc.in.MaxContributionsPerGroup
			case tc.in.TimeoutMS != 0:
				exp.TimeoutMS = tc.in.TimeoutMS
			}
			if got != exp {
				t.Errorf("Defaults() = %+v, want %+v", got, exp)
			}
		})
	}
}

func TestDefaultDeltaIsAShareOfTheGrantsDelta(t *testing.T) {
	for _, tc := range []struct {
		name       string
		asked      float64
		grantDelta float64
		want       float64
	}{
		{"a share of the grant's", 0, 1e-6, 1e-8},
		{"a share of another grant's", 0, 4e-7, -1}, // -1: grantDelta / DefaultDeltaShare, in float arithmetic
		{"an explicit delta stays", 3e-7, 1e-6, 3e-7},
		{"no grant delta: the fallback", 0, 0, plan.FallbackDelta},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := plan.Options{Delta: tc.asked}.DefaultsFor(tc.grantDelta)
			if tc.want == -1 {
				tc.want = tc.grantDelta / plan.DefaultDeltaShare
			}
			if got.Delta != tc.want {
				t.Errorf("delta = %g, want %g", got.Delta, tc.want)
			}
			if got.Epsilon != 1 || got.TimeoutMS != 60_000 {
				t.Errorf("other defaults not filled: %+v", got)
			}
		})
	}
}
