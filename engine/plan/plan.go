// Package plan rewrites an admitted query into the bounded plan a sandbox worker runs: it
// fixes the contribution bounds, decides between public partitions (the catalog's declared
// domain, no selection budget) and DP partition selection, splits the job's budget across the
// aggregates, and states what the job costs before anything runs.
package plan

import (
	"fmt"
	"slices"

	"github.com/c1b99f93/cleanroom/dp"
	"github.com/c1b99f93/cleanroom/engine/gate"
	"github.com/c1b99f93/cleanroom/errcode"
	"github.com/c1b99f93/cleanroom/sandbox/wire"
)

// Options are the applicant's privacy parameters for one job.
type Options struct {
	Epsilon float64 `json:"epsilon"`
	Delta   float64 `json:"delta"`
	// MaxGroupsContributed (L0) and MaxContributionsPerGroup (L∞) are the contribution
	// bounds; 0 is automatic: chosen under DP within Auto's maxima (auto.go), or the fixed
	// defaults when Auto is nil.
	MaxGroupsContributed     int64 `json:"max_groups_contributed"`
	MaxContributionsPerGroup int64 `json:"max_contributions_per_group"`
	// Auto are the operator's maxima for automatic bounds; the engine sets them from the
	// policy, an applicant cannot.
	Auto      *AutoMax `json:"auto_max,omitempty"`
	TimeoutMS int64    `json:"timeout_ms,omitempty"`
	// MinUnitsPerGroup withholds output rows whose noisy count of privacy units is below it.
	// The engine raises it to the policy's minimum; an applicant may ask for more.
	MinUnitsPerGroup float64 `json:"min_units_per_group,omitempty"`
	// DeltaSet says Delta was given, so that a Delta of 0 is pure DP (public partitions only)
	// rather than "unset, take the default". It is not encoded: once the defaults are filled,
	// Delta alone is the value in force, which is what provenance records.
	DeltaSet bool `json:"-"`
}

// DefaultDeltaShare: a job that names no delta spends 1/DefaultDeltaShare of its grant's delta
// on partition selection (when it selects partitions at all), so an applicant at defaults can
// run that many partition-selection jobs before its grant's delta is gone.
const DefaultDeltaShare = 100

// FallbackDelta is the default delta of a job whose grant's budget is unknown (the grant has
// no budget account, and its job is refused at the ledger anyway).
const FallbackDelta = 1e-6

// DefaultsFor fills unset options for a job on a grant whose total delta is grantDelta: delta
// grantDelta/DefaultDeltaShare, then Defaults. A grant without delta leaves delta unset, so
// Defaults' fallback applies and a partition-selection job is refused by the grant's account
// before anything runs. A delta that was set (DeltaSet), even 0, is kept.
func (o Options) DefaultsFor(grantDelta float64) Options {
	if !o.DeltaSet && o.Delta == 0 && grantDelta > 0 {
		o.Delta = grantDelta / DefaultDeltaShare
	}
	return o.Defaults()
}

// Defaults fills unset options: epsilon 1, delta FallbackDelta (spent only when partitions are
// selected; a job on a grant gets DefaultsFor's share of its grant's delta instead) and a 60 s
// deadline. A delta set to 0 (DeltaSet) stays 0: pure DP, public partitions only. Unset
// contribution bounds stay unset: Build chooses them (automatic bounds) or uses
// DefaultMaxGroups and DefaultMaxRows.
func (o Options) Defaults() Options {
	if o.Epsilon == 0 {
		o.Epsilon = 1
	}
	if o.Delta == 0 && !o.DeltaSet {
		o.Delta = FallbackDelta
	}
	if o.TimeoutMS == 0 {
		o.TimeoutMS = 60_000
	}
	return o
}

// Validate checks ranges the mechanisms need; the operator's policy narrows them further.
func (o Options) Validate() error {
	switch {
	case !(o.Epsilon > 0 && o.Epsilon <= dp.MaxEpsilon):
		return errcode.New(errcode.InvalidOptions, "epsilon must be in (0, %d]", dp.MaxEpsilon)
	case !(o.Delta >= 0 && o.Delta < 1):
		return errcode.New(errcode.InvalidOptions, "delta must be in [0, 1)")
	case o.MaxGroupsContributed < 0 || o.MaxGroupsContributed > 1000:
		return errcode.New(errcode.InvalidOptions, "max_groups_contributed must be between 1 and 1000 (or unset: automatic)")
	case o.MaxContributionsPerGroup < 0 || o.MaxContributionsPerGroup > 10000:
		return errcode.New(errcode.InvalidOptions, "max_contributions_per_group must be between 1 and 10000 (or unset: automatic)")
	case !(o.MinUnitsPerGroup >= 0 && o.MinUnitsPerGroup <= MaxMinUnitsPerGroup):
		return errcode.New(errcode.InvalidOptions, "min_units_per_group must be between 0 and %d", MaxMinUnitsPerGroup)
	case o.TimeoutMS < 0:
		return errcode.New(errcode.InvalidOptions, "timeout_ms must not be negative")
	}
	return nil
}

// PureDPHint is the refusal of a job with delta 0 (pure DP) whose groups would have to be
// selected from the data: selection spends delta. It names what runs without delta instead.
const PureDPHint = "with delta 0 (pure DP) only public partitions are released, and this query groups by a key without a public domain, which needs DP partition selection and so delta > 0; " +
	"group by keys with a public domain instead — a catalog column with a domain, width_bucket(col, lo, hi, n), date_trunc of a column with a catalog date_range, or a CASE whose THEN and ELSE branches are all literals — or give a delta > 0"

// MaxMinUnitsPerGroup bounds min_units_per_group: above it every group of a city's data would
// be withheld, which is a mistake rather than a policy.
const MaxMinUnitsPerGroup = 1_000_000

// Cost is an (epsilon, delta) amount of budget.
type Cost struct {
	Epsilon float64 `json:"epsilon"`
	Delta   float64 `json:"delta"`
}

// Planned is a query ready to run.
type Planned struct {
	Query  *gate.Query
	Worker wire.Plan
	// Public is true when every partition comes from the catalog's declared domains (or there
	// are no group keys): all of them are released, empty ones with noise, and no selection
	// budget is spent.
	Public bool
	// Domains lists each key's public values when Public.
	Domains [][]string
	Cost    Cost
	// Split says in words how the budget was divided, for the result.
	Split string
	// UnitCount is the index in Worker.Aggregates of the COUNT(DISTINCT unit) whose noisy
	// value is each row's unit count for small-group suppression, or -1 when nothing is
	// suppressed. It is the query's own COUNT(DISTINCT unit) when it has one; otherwise a
	// hidden aggregate the plan adds, which takes a share of the budget and is not released.
	UnitCount int
	// MinUnitsPerGroup is the least noisy unit count a released row may have.
	MinUnitsPerGroup float64
	// Auto, when not nil, says which contribution bounds are to be chosen under DP (the
	// choose_bounds stage): Worker carries the maxima until ApplyBounds sets the choice.
	Auto *AutoBounds
	// Clamp, when not nil, says which values get clamping bounds chosen under DP (the
	// choose_bounds stage): Worker carries the catalog's bounds until ApplyClamps.
	Clamp *AutoClamp
	// BiasEpsilon is the epsilon of the bounding-cost counts (Worker.Bias).
	BiasEpsilon float64
	// Probes holds the differencing check, when Build was given prior queries: one noisy
	// count, the fewest privacy units on which this query's filter and any prior's disagree.
	// It takes one share of the budget however many priors it compares (a job recorded
	// before the check compared them all at once has one probe per prior).
	Probes []Probe
}

// Prior is an earlier query on the same grant, dataset and group keys, with another filter.
type Prior struct {
	Job    string     `json:"job"`
	Filter *wire.Expr `json:"filter"` // nil = no filter
}

// Probe is a noisy count of the privacy units on which a prior query's filter and this one's
// disagree, for the prior nearest to this one: few such units means two answers differ by
// those few persons. Changing one unit's rows changes each prior's count by at most one, so
// their minimum too: one count of sensitivity 1 checks every prior (wire.Plan.Differences).
type Probe struct {
	// Candidates are the prior jobs compared.
	Candidates []string `json:"candidates,omitempty"`
	// Against is the one prior job of a probe recorded before one check compared every
	// prior: its Worker plan has the disagreement as its Filter.
	Against string    `json:"against,omitempty"`
	Worker  wire.Plan `json:"worker_plan"`
}

// Jobs are the prior jobs the probe compares.
func (p Probe) Jobs() []string {
	if p.Against != "" {
		return []string{p.Against}
	}
	return p.Candidates
}

// disagreement is the condition under which two filters disagree on a row. A filter that is
// NULL on a row drops it, like false, so each side is read as coalesce(filter, false). (The
// worker makes the whole condition total, so an error on one side drops the row.)
func disagreement(a, b *wire.Expr) *wire.Expr {
	side := func(f *wire.Expr) *wire.Expr {
		if f == nil {
			return wire.Bool(true)
		}
		// coalesce renders as CASE (sqlgen): DuckDB's own is wrong inside try().
		return wire.Func("coalesce", f, wire.Bool(false))
	}
	return wire.Compare("<>", side(a), side(b))
}

func probesText(priors []Prior) string {
	if len(priors) == 0 {
		return ""
	}
	return fmt.Sprintf(" and one differencing check against %d earlier quer%s on this grant", len(priors), plural(len(priors), "y", "ies"))
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// PerUnitJoinRows is how many rows of each privacy unit every dataset with a unit keeps under
// a per-unit subquery (before any join), whose aggregates read a unit's rows whole: it bounds
// the work and, with the catalog, the per-unit values (gate.PerUnitMaxRows).
const PerUnitJoinRows = gate.PerUnitMaxRows

// MaxJoinRowsPerUnit bounds the rows one privacy unit can have after a join: the product, over
// the joined datasets with a privacy unit, of the rows each keeps per unit.
const MaxJoinRowsPerUnit = 1_000_000

// joinRowsPerUnit is how many rows per privacy unit each dataset of a join or a per-unit
// subquery keeps before the join (0: neither, nothing to bound). A join multiplies a unit's rows —
// a self-join squares them — so without this a unit with many rows could make the worker's
// work, memory and time as large as it likes. Each dataset keeps L0·L∞ rows per unit (what one
// unit can contribute after bounding anyway), or PerUnitJoinRows under a per-unit subquery; a
// join whose product of these exceeds MaxJoinRowsPerUnit is refused before anything runs.
func joinRowsPerUnit(q *gate.Query, l0, lInf int64) (int64, error) {
	units := unitSources(q)
	if units < 2 && !q.Relation.PerUnit {
		return 0, nil
	}
	per := l0 * lInf
	if q.Relation.PerUnit {
		// Also for one dataset: the gate bounds a per-unit value by these rows.
		per = PerUnitJoinRows
	}
	product := int64(1)
	for range units {
		if product > MaxJoinRowsPerUnit/per {
			return 0, errcode.New(errcode.InvalidOptions, "this join of %d datasets could give one privacy unit more than %d rows (each keeps %d rows per unit before the join); join fewer datasets or lower max_groups_contributed × max_contributions_per_group", units, MaxJoinRowsPerUnit, per)
		}
		product *= per
	}
	return per, nil
}

// unitSources is how many of the query's datasets have a privacy unit.
func unitSources(q *gate.Query) int {
	units := 0
	for _, s := range q.Sources {
		if !s.Dataset.Public {
			units++
		}
	}
	return units
}

// HiddenUnitCountWeight is the hidden unit count's epsilon as a share of one aggregate's
// (plan.Build). It is used only to decide whether a group has at least MinUnitsPerGroup units,
// and it needs far less precision than a released aggregate: its sensitivity is L0 (a unit
// counts once per group), against L0·L∞ for a COUNT(*), so at a quarter of the epsilon its
// noise is still L∞/4 times smaller than the count's. What it costs is sharpness at the
// threshold: at L0 = 1 and an aggregate epsilon of 0.68 (a lone COUNT at epsilon 1 with
// automatic bounds) its Laplace scale is 5.9 units, so a group of one unit is released with
// probability ½·e^(−9/5.9) ≈ 11% (at an equal share, 1%) and a group of 20 units is withheld
// with probability ½·e^(−10/5.9) ≈ 9% (at an equal share, 0.7%); groups of 40 or more units
// are released all but surely either way. The rule stays a DP post-processing of a noisy count.
const HiddenUnitCountWeight = 0.25

// HiddenUnitCount reports whether the unit count is an aggregate the plan added (not one of
// the query's).
func (p *Planned) HiddenUnitCount() bool { return p.UnitCount >= len(p.Query.Aggregates) }

// Build makes the bounded plan. snapshots maps each dataset the query reads to its snapshot
// digest; samplingKey keys the choice of kept rows for over-contributing units.
//
// Each prior (an earlier query with the same source and keys and another filter) adds a
// differencing probe; probes need a single-dataset query and are ignored otherwise.
func Build(q *gate.Query, snapshots map[string]string, o Options, samplingKey uint64, priors ...Prior) (*Planned, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	for _, d := range q.Datasets() {
		if snapshots[d.Name] == "" {
			return nil, errcode.New(errcode.Internal, "dataset %q has no snapshot", d.Name)
		}
	}
	p := &Planned{Query: q, Public: true, UnitCount: -1, MinUnitsPerGroup: o.MinUnitsPerGroup}
	for _, k := range q.Keys {
		if len(k.Domain) == 0 {
			p.Public = false
			break
		}
		p.Domains = append(p.Domains, k.Domain)
	}
	if !p.Public {
		p.Domains = nil
	}
	if q.Relation != nil {
		priors = nil
	}
	n := float64(len(q.Aggregates))
	if len(priors) > 0 {
		n++
	}
	hidden := ""
	if o.MinUnitsPerGroup > 0 {
		p.UnitCount = slices.IndexFunc(q.Aggregates, func(a gate.Aggregate) bool { return a.Kind == dp.CountDistinct })
		if p.UnitCount < 0 {
			// The suppression decision must itself be DP: a hidden noisy unit count pays for it.
			p.UnitCount = len(q.Aggregates)
			n += HiddenUnitCountWeight
			hidden = fmt.Sprintf(" and a hidden count of units per group at %g of an aggregate's share (rows under %g units are withheld)", HiddenUnitCountWeight, o.MinUnitsPerGroup)
		}
	}
	l0, lInf, auto := resolveBounds(q, o, unitSources(q))
	share := 1 - BiasShare
	p.BiasEpsilon = o.Epsilon * BiasShare
	tuning := fmt.Sprintf("; %g%% of epsilon (%.4g) estimates what bounding drops and clamps", BiasShare*100, p.BiasEpsilon)
	if auto != nil {
		auto.Epsilon = o.Epsilon * ContributionShare
		share -= ContributionShare
		p.Auto = auto
		tuning = fmt.Sprintf("; %g%% of epsilon (%.4g) chooses the contribution bounds from DP histograms", ContributionShare*100, auto.Epsilon) + tuning
	}
	// A job that asks for automatic bounds gets its clamping bounds chosen too, when it has
	// values to clamp from the catalog.
	autoMode := o.Auto != nil && (o.MaxGroupsContributed == 0 || o.MaxContributionsPerGroup == 0)
	clampable := autoMode && slices.ContainsFunc(q.Aggregates, func(a gate.Aggregate) bool { return clampTunable(q, a) })
	if clampable {
		share -= ClampShare
		tuning = fmt.Sprintf("; %g%% of epsilon (%.4g) chooses clamping bounds from DP quantiles", ClampShare*100, o.Epsilon*ClampShare) + tuning
	}
	w := wire.Plan{
		Filter:      q.Filter,
		Bounds:      wire.Bounds{MaxGroupsContributed: l0, MaxContributionsPerGroup: lInf},
		SamplingKey: samplingKey,
		TimeoutMS:   o.TimeoutMS,
	}
	if r := q.Relation; r != nil {
		w.Relation = &wire.Relation{PerUnit: r.PerUnit, GroupBy: r.GroupBy, Filter: r.Filter, Keyed: true}
		for _, s := range q.Sources {
			w.Relation.Sources = append(w.Relation.Sources, wire.RelationSource{Snapshot: snapshots[s.Dataset.Name], Alias: s.Alias,
				Unit: s.Dataset.PrivacyUnit, Join: s.Join, On: s.On})
		}
		for _, c := range r.Columns {
			rc := wire.RelationColumn{Name: c.Name, Expr: c.Expr, Aggregate: c.Aggregate}
			for _, cl := range c.Clamps {
				rc.Clamps = append(rc.Clamps, wire.Clamp{Func: cl.Func, Value: cl.Value})
			}
			w.Relation.Columns = append(w.Relation.Columns, rc)
		}
		rows, err := joinRowsPerUnit(q, l0, lInf)
		if err != nil {
			return nil, err
		}
		w.Relation.MaxRowsPerUnit = rows
	} else {
		w.Snapshot = snapshots[q.Dataset.Name]
	}
	aggEps := o.Epsilon * share / n
	if p.Public {
		// Rows whose keys are outside the declared domains never reach a partition, so a unit's
		// L0 choice is made among public partitions only (the worker drops them by key hash).
		w.Domains = p.Domains
		p.Cost = Cost{Epsilon: o.Epsilon}
		p.Split = fmt.Sprintf("public partitions; epsilon %.4g: %.4g split equally over %d aggregate(s)%s%s%s; no delta spent", o.Epsilon, o.Epsilon*share, len(q.Aggregates), hidden, probesText(priors), tuning)
	} else {
		if o.Delta == 0 {
			return nil, errcode.New(errcode.InvalidOptions, "%s", PureDPHint)
		}
		aggEps = o.Epsilon * share / (n + 1)
		w.Selection = &dp.Selection{Epsilon: aggEps, Delta: o.Delta, MaxPartitions: l0}
		p.Cost = Cost{Epsilon: o.Epsilon, Delta: o.Delta}
		p.Split = fmt.Sprintf("DP partition selection; epsilon %.4g: %.4g split equally over selection and %d aggregate(s)%s%s%s; delta %.3g spent on selection", o.Epsilon, o.Epsilon*share, len(q.Aggregates), hidden, probesText(priors), tuning, o.Delta)
	}
	for _, k := range q.Keys {
		w.Keys = append(w.Keys, k.Expr)
	}
	for _, a := range q.Aggregates {
		s := dp.Spec{Kind: a.Kind, Value: -1, Epsilon: aggEps, MaxPartitions: l0, MaxPerPartition: lInf,
			Ranks: a.Ranks}
		if a.Value != nil {
			s.Value = len(w.Values)
			w.Values = append(w.Values, a.Value)
		}
		if a.Kind != dp.Count && a.Kind != dp.CountDistinct && a.Kind != dp.CountDistinctValues {
			if len(a.Bounds) != 2 {
				return nil, errcode.New(errcode.MissingBounds, "%s has no bounds, so %s cannot be bounded", a.Column, a.Name)
			}
			s.Lower, s.Upper = a.Bounds[0], a.Bounds[1]
		}
		if err := s.Validate(); err != nil {
			return nil, errcode.Wrap(errcode.InvalidOptions, err, "the privacy parameters are outside what the mechanism for %s accepts", a.Name)
		}
		w.Aggregates = append(w.Aggregates, s)
	}
	if p.HiddenUnitCount() {
		s := dp.Spec{Kind: dp.CountDistinct, Value: -1, Epsilon: aggEps * HiddenUnitCountWeight, MaxPartitions: l0, MaxPerPartition: lInf}
		if err := s.Validate(); err != nil {
			return nil, errcode.Wrap(errcode.InvalidOptions, err, "the privacy parameters are outside what the mechanism for the hidden unit count accepts")
		}
		w.Aggregates = append(w.Aggregates, s)
	}
	if len(priors) > 0 {
		// One partition (no keys), and a unit counts once in it: sensitivity 1 whatever the
		// job's bounds, and however many priors the minimum is taken over.
		s := dp.Spec{Kind: dp.CountDistinct, Value: -1, Epsilon: aggEps, MaxPartitions: 1, MaxPerPartition: 1}
		if err := s.Validate(); err != nil {
			return nil, errcode.Wrap(errcode.InvalidOptions, err, "the privacy parameters are outside what the differencing check accepts")
		}
		pr := Probe{Worker: wire.Plan{Snapshot: w.Snapshot, Aggregates: []dp.Spec{s},
			Bounds: wire.Bounds{MaxGroupsContributed: 1, MaxContributionsPerGroup: 1}, SamplingKey: samplingKey, TimeoutMS: o.TimeoutMS}}
		for _, prior := range priors {
			pr.Candidates = append(pr.Candidates, prior.Job)
			pr.Worker.Differences = append(pr.Worker.Differences, disagreement(q.Filter, prior.Filter))
		}
		p.Probes = []Probe{pr}
	}
	if w.Selection != nil {
		if err := w.Selection.Validate(); err != nil {
			return nil, errcode.Wrap(errcode.InvalidOptions, err, "the privacy parameters are outside what partition selection accepts")
		}
	}
	if clampable {
		p.Clamp = &AutoClamp{Epsilon: o.Epsilon * ClampShare, Targets: clampTargets(q, w.Aggregates, w.Values)}
	}
	bias, err := biasSpecs(w.Aggregates, p.BiasEpsilon)
	if err != nil {
		return nil, err
	}
	w.Bias = bias
	if auto != nil && auto.TotalRows {
		// Until the choice, the plan stands at the maxima, calibrated as an L1 bound.
		if err := ApplyBounds(&w, auto.bounds(l0, auto.MaxTotal)); err != nil {
			return nil, err
		}
	}
	p.Worker = w
	return p, nil
}

// biasSpecs are the bounding-cost counts (wire.BiasSpecs) of a plan with these aggregates:
// units, units with dropped rows, the sum of the units' dropped fractions and, per aggregate
// that clamps values, units with a clamped value. Each is a sum over units of a number in
// [0, 1] (sensitivity 1), and they share eps equally (sequential composition).
func biasSpecs(aggs []dp.Spec, eps float64) (*wire.BiasSpecs, error) {
	var clamped []int
	for j, a := range aggs {
		if a.ClampsValues() {
			clamped = append(clamped, j)
		}
	}
	each := eps / float64(3+len(clamped))
	b := &wire.BiasSpecs{
		Count:             dp.Spec{Kind: dp.CountDistinct, Value: -1, Epsilon: each, MaxPartitions: 1, MaxPerPartition: 1},
		DroppedFraction:   dp.Spec{Kind: dp.Sum, Value: 0, Lower: 0, Upper: 1, Epsilon: each, MaxPartitions: 1, MaxPerPartition: 1},
		ClampedAggregates: clamped,
	}
	for range clamped {
		b.Clamped = append(b.Clamped, b.Count)
	}
	for _, s := range []dp.Spec{b.Count, b.DroppedFraction} {
		if err := s.Validate(); err != nil {
			return nil, errcode.Wrap(errcode.InvalidOptions, err, "the privacy parameters are outside what the bias estimate accepts")
		}
	}
	return b, nil
}
