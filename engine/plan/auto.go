package plan

import (
	"fmt"
	"math"
	"slices"
	"strconv"

	"github.com/c1b99f93/cleanroom/dp"
	"github.com/c1b99f93/cleanroom/engine/gate"
	"github.com/c1b99f93/cleanroom/errcode"
	"github.com/c1b99f93/cleanroom/sandbox/wire"
)

// ContributionShare is the share of a job's epsilon spent on choosing its contribution bounds
// (the DP histograms of contributions per unit) when the job leaves at least one of them
// unset. It is carved out of the job's epsilon, never added to it.
const ContributionShare = 0.10

// BiasShare is the share of a job's epsilon spent on estimating what contribution bounding
// and clamping cost the answer (the result's bias fields). Carved out like ContributionShare.
const BiasShare = 0.05

// DefaultMaxGroups and DefaultMaxRows are the contribution bounds of a job that leaves them
// unset when no automatic choice is available (Options.Auto is nil: a plan built outside the
// engine). The engine always sets Auto.
const (
	DefaultMaxGroups = 1
	DefaultMaxRows   = 5
)

// AutoMax are the operator's maxima for automatically chosen contribution bounds (policy
// params auto_max_groups_contributed, auto_max_contributions_per_group). They bound the work
// and the noise: a bound is chosen on the power-of-two grid up to them.
type AutoMax struct {
	MaxGroups int64 `json:"max_groups_contributed"`
	MaxRows   int64 `json:"max_contributions_per_group"`
	// MaxTotal is the most rows an L1 bound may keep per unit (policy param
	// auto_max_rows_per_unit); 0: no L1 bound is chosen. MaxRowsInGroup caps a group's rows
	// under it (the access policy's max_contributions_per_group; 0: none beyond the total).
	MaxTotal       int64 `json:"max_rows_per_unit,omitempty"`
	MaxRowsInGroup int64 `json:"max_rows_in_group,omitempty"`
}

// AutoBounds says which of a plan's contribution bounds are chosen under DP, within which
// maxima, and with how much epsilon.
type AutoBounds struct {
	Groups    bool    `json:"groups"` // max_groups_contributed is chosen
	Rows      bool    `json:"rows"`   // max_contributions_per_group is chosen
	MaxGroups int64   `json:"max_groups"`
	MaxRows   int64   `json:"max_rows"`
	Epsilon   float64 `json:"epsilon"`
	// GroupsCap is the number of cells when every key has a public domain (0 otherwise): no
	// unit can contribute to more groups than there are, so MaxGroups is at most GroupsCap and
	// the groups histogram's bins above it hold only noise (HistogramsFrom reads them as 0).
	GroupsCap int64 `json:"groups_cap,omitempty"`
	// TotalRows chooses an L1 bound (wire.Bounds.MaxRowsPerUnit) with L0: each unit keeps at
	// most C rows in all (so at most C in any group), up to MaxTotal. The rows histogram then
	// bins each unit's rows in all its groups. Used where every key has a
	// public domain and the query reads one table (totalRowsApplies).
	TotalRows bool  `json:"total_rows,omitempty"`
	MaxTotal  int64 `json:"max_total,omitempty"`
}

// totalRowsApplies reports whether a query whose two contribution bounds are both chosen gets
// an L1 bound instead of L0 × L∞: every key has a public domain (no partition selection, whose
// threshold grows with the partitions a unit reaches) and the query reads one table (a join's
// rows per unit, and a per-unit subquery's one row per unit, are bounded before the
// aggregation). There a row aggregate's noise is C whatever L0 is, where L0 × L∞ pays for
// every group a unit might fill: a unit with many rows in one group and a unit with a few rows
// in many groups both keep up to C, and the noise is that of a single group of C rows.
func totalRowsApplies(q *gate.Query, a *AutoBounds) bool {
	return a.Groups && a.Rows && a.GroupsCap > 0 && q.Relation == nil
}

// publicCells is the number of cells of a query whose every key has a public domain (the
// product of the domains' sizes), or 0 when a key's values come from the data or there are
// more cells than any bound would reach.
func publicCells(q *gate.Query) int64 {
	if len(q.Keys) == 0 {
		return 0
	}
	n := int64(1)
	for _, k := range q.Keys {
		if len(k.Domain) == 0 {
			return 0
		}
		n *= int64(len(k.Domain))
		if n > maxProfileEdge {
			return 0
		}
	}
	return n
}

// powerOfTwoAtMost is the largest power of two ≤ v (v ≥ 1).
func powerOfTwoAtMost(v int64) int64 {
	p := int64(1)
	for p*2 <= v {
		p *= 2
	}
	return p
}

// resolveBounds fills the job's unset contribution bounds: the automatic maxima (to be
// lowered by the choice) when the engine gave them, else the fixed defaults. For a join the
// maxima shrink until a unit's joined rows stay within MaxJoinRowsPerUnit.
//
// Where a bound cannot matter it is fixed without spending anything on it: without group keys
// a unit has at most one group (L0 1 drops nothing and adds the least noise); when every
// aggregate is a COUNT(DISTINCT unit) (and the selection), a unit counts once per group
// whatever its rows (L∞ 1).
func resolveBounds(q *gate.Query, o Options, joinedUnits int) (l0, lInf int64, auto *AutoBounds) {
	l0, lInf = o.MaxGroupsContributed, o.MaxContributionsPerGroup
	if o.Auto != nil {
		if l0 == 0 && len(q.Keys) == 0 {
			l0 = 1
		}
		if lInf == 0 && !slices.ContainsFunc(q.Aggregates, func(a gate.Aggregate) bool { return a.Kind != dp.CountDistinct }) {
			lInf = 1
		}
	}
	if (l0 != 0 && lInf != 0) || o.Auto == nil || o.Auto.MaxGroups < 1 || o.Auto.MaxRows < 1 {
		if l0 == 0 {
			l0 = DefaultMaxGroups
		}
		if lInf == 0 {
			lInf = DefaultMaxRows
		}
		return l0, lInf, nil
	}
	auto = &AutoBounds{Groups: l0 == 0, Rows: lInf == 0, MaxGroups: powerOfTwoAtMost(o.Auto.MaxGroups), MaxRows: powerOfTwoAtMost(o.Auto.MaxRows)}
	if cells := publicCells(q); cells > 0 && auto.Groups {
		auto.GroupsCap = cells
		auto.MaxGroups = min(auto.MaxGroups, cells)
	}
	if auto.Groups {
		l0 = auto.MaxGroups
	}
	if auto.Rows {
		lInf = auto.MaxRows
	}
	for joinedUnits >= 2 && math.Pow(float64(l0*lInf), float64(joinedUnits)) > MaxJoinRowsPerUnit {
		switch {
		case auto.Rows && lInf > 1 && (lInf >= l0 || !auto.Groups || l0 == 1):
			lInf /= 2
		case auto.Groups && l0 > 1:
			l0 /= 2
		default:
			return l0, lInf, auto // the join refuses it, as with explicit bounds
		}
	}
	if auto.Groups {
		auto.MaxGroups = l0
	}
	if auto.Rows {
		auto.MaxRows = lInf
	}
	if o.Auto.MaxTotal > 0 && totalRowsApplies(q, auto) {
		auto.TotalRows = true
		// C is at most the rows a group may keep (the access policy's explicit maximum), so a
		// group's cap is C itself: a unit keeps at most C rows, in one group or many.
		auto.MaxTotal = min(o.Auto.MaxTotal, auto.MaxGroups*auto.MaxRows, maxProfileEdge/profileReach)
		if g := o.Auto.MaxRowsInGroup; g > 0 {
			auto.MaxTotal = min(auto.MaxTotal, g)
		}
	}
	return l0, lInf, auto
}

// ProfilePlan is the worker plan that computes the contribution histograms for the automatic
// bounds: the plan's own relation, filter, keys and public domains — exactly the rows the query
// would read — with no aggregates, no selection and the pre-choice bounds (which the profile
// does not apply: it reads each unit's rows whole).
func (p *Planned) ProfilePlan() (wire.Plan, error) {
	a := p.Auto
	if a == nil {
		return wire.Plan{}, errcode.New(errcode.Internal, "the plan chooses no bounds")
	}
	w := p.Worker
	w.Values, w.Aggregates, w.Selection, w.Bias = nil, nil, nil, nil
	spec, rows := a.profileSpecs()
	for _, s := range []*dp.Spec{&spec, rows} {
		if s == nil {
			continue
		}
		if err := s.Validate(); err != nil {
			return wire.Plan{}, errcode.Wrap(errcode.InvalidOptions, err, "the privacy parameters are outside what the contribution histograms accept")
		}
	}
	w.Profile = &wire.Profile{MaxGroups: ProfileMax(a.MaxGroups), MaxRows: ProfileMax(a.RowsMax()), TotalRows: a.TotalRows, Spec: spec, RowsSpec: rows}
	return w, nil
}

// TotalRowsHistogramShare is the share of the contribution histograms' epsilon that an L1
// bound's rows histogram gets (the groups histogram gets the rest). The total rows decide C,
// and through C the noise of every row aggregate, and their tail is thin (on the testdata 30 of
// 8,104 persons have more than 128 visits and hold 13.5% of them): at an even split a tail
// that size sank under the noise about one job in five, C fell to 32 and the answer came
// back 16% off. The groups histogram stands in thousands of units per bin.
const TotalRowsHistogramShare = 0.75

// profileSpecs are the contribution histograms' counts: one spec for both (each unit falls
// into exactly one bin of each of the two histograms: L0 2, L∞ 1), or for an L1 bound one per
// histogram, at L0 1 each, splitting the epsilon TotalRowsHistogramShare to the rows.
func (a *AutoBounds) profileSpecs() (groups dp.Spec, rows *dp.Spec) {
	if !a.TotalRows {
		return dp.Spec{Kind: dp.CountDistinct, Value: -1, Epsilon: a.Epsilon, MaxPartitions: 2, MaxPerPartition: 1}, nil
	}
	r := dp.Spec{Kind: dp.CountDistinct, Value: -1, Epsilon: a.Epsilon * TotalRowsHistogramShare, MaxPartitions: 1, MaxPerPartition: 1}
	return dp.Spec{Kind: dp.CountDistinct, Value: -1, Epsilon: a.Epsilon - r.Epsilon, MaxPartitions: 1, MaxPerPartition: 1}, &r
}

// RowsMax is the largest rows bound the choice may pick: the total rows C for an L1
// bound, else L∞.
func (a *AutoBounds) RowsMax() int64 {
	if a.TotalRows {
		return a.MaxTotal
	}
	return a.MaxRows
}

// ApplyBounds sets contribution bounds on a worker plan: the bounds the worker enforces, every
// aggregate's L0 and L∞ as the bounds let a unit move it (wire.Bounds.Sensitivity), the
// partition selection's L0 and, for a join not under a per-unit subquery, the rows each unit
// keeps before the join (L0·L∞, at most the total). Every mechanism's noise follows from the
// bounds it is given, so the plan stays consistent; the worker checks it again.
func ApplyBounds(w *wire.Plan, b wire.Bounds) error {
	if b.MaxGroupsContributed < 1 || b.MaxContributionsPerGroup < 1 || b.MaxRowsPerUnit < 0 {
		return errcode.New(errcode.Internal, "contribution bounds must be at least 1")
	}
	w.Bounds = b
	for i := range w.Aggregates {
		a := &w.Aggregates[i]
		a.MaxPartitions, a.MaxPerPartition = b.Calibration(a.Kind == dp.CountDistinct, a.Mechanism() == "gaussian")
		if err := a.Validate(); err != nil {
			return errcode.Wrap(errcode.InvalidOptions, err, "the privacy parameters are outside what the mechanism accepts at the chosen bounds")
		}
	}
	if w.Selection != nil {
		sel := *w.Selection
		sel.MaxPartitions, _ = b.Calibration(true, true)
		w.Selection = &sel
	}
	if r := w.Relation; r != nil && r.MaxRowsPerUnit > 0 && !r.PerUnit {
		rel := *r
		rel.MaxRowsPerUnit = b.MaxGroupsContributed * b.MaxContributionsPerGroup
		if b.MaxRowsPerUnit > 0 {
			rel.MaxRowsPerUnit = min(rel.MaxRowsPerUnit, b.MaxRowsPerUnit)
		}
		w.Relation = &rel
	}
	return nil
}

// Histogram is a noisy histogram of a per-unit quantity binned as wire.ProfileBin bins it:
// Counts[i] units in (Edges[i-1], Edges[i]] (with Edges[-1] = 0), and Counts[len(Edges)]
// above the last edge. Counts are noisy and may be negative.
type Histogram struct {
	Edges  []int64   `json:"edges"`
	Counts []float64 `json:"counts"`
	// Cap, when positive, is the largest value the quantity can take (the groups of a query
	// over public cells): a bin's representative value never exceeds it.
	Cap int64 `json:"cap,omitempty"`
	// BinSD is the standard deviation of one bin's noise (meanMinCautious).
	BinSD float64 `json:"bin_sd,omitempty"`
}

// rep is the value that stands for bin i: its midpoint, and twice the last edge for the bin
// above it (an approximation: the profile does not see beyond its maximum).
func (h Histogram) rep(i int) float64 {
	if h.Cap > 0 {
		return math.Min(h.repUncapped(i), float64(h.Cap))
	}
	return h.repUncapped(i)
}

func (h Histogram) repUncapped(i int) float64 {
	if i >= len(h.Edges) {
		if len(h.Edges) == 0 {
			return 1
		}
		return 2 * float64(h.Edges[len(h.Edges)-1])
	}
	lo := int64(1)
	if i > 0 {
		lo = h.Edges[i-1] + 1
	}
	return float64(lo+h.Edges[i]) / 2
}

// total is the number of units (negative noisy counts read as 0).
func (h Histogram) total() float64 {
	var n float64
	for _, c := range h.Counts {
		n += max(c, 0)
	}
	return n
}

// meanMin is the mean over units of min(X, c) (c = +Inf: the mean of X).
func (h Histogram) meanMin(c float64) float64 {
	n := h.total()
	if n == 0 {
		return 1
	}
	var s float64
	for i, cnt := range h.Counts {
		s += max(cnt, 0) * math.Min(h.rep(i), c)
	}
	return s / n
}

// meanMinCautious is meanMin(c) less gainSignificance standard deviations of the noise in what
// bounds above 1 keep beyond 1 (each bin's count carries BinSD of noise, and a unit of a bin
// with rep r adds min(r, c) − 1), never below 1. The choice weighs bounds by it: a few units
// of noise in a bin of many rows — a phantom the tail test let through — would otherwise read
// as a large share of the rows that only large bounds keep, and once ran visits by month at
// 16 × 32, 31% off, about one job in fifty.
func (h Histogram) meanMinCautious(c float64) float64 {
	n := h.total()
	if n == 0 {
		return 1
	}
	var s, v float64
	for i, cnt := range h.Counts {
		if cnt <= 0 {
			continue
		}
		k := math.Min(h.rep(i), c)
		s += cnt * k
		v += (k - 1) * (k - 1)
	}
	return math.Max(1, (s-gainSignificance*h.BinSD*math.Sqrt(v))/n)
}

// gainSignificance is how many standard deviations of its noise the choice discounts from what
// larger bounds keep (meanMinCautious).
const gainSignificance = 3

// Profiled is what the contribution histograms say, with the partition count the model uses.
type Profiled struct {
	Groups Histogram `json:"groups_per_unit"`
	Rows   Histogram `json:"rows_per_unit_and_group"`
	// Partitions is the number of cells the answer's noise is spread over: the public domain's
	// size, 1 without keys, or under partition selection a lower bound read from the groups
	// histogram (the highest bin standing clearly above its noise).
	Partitions float64 `json:"partitions"`
}

// Choice is the chosen pair of contribution bounds and the model's expected relative error
// there (summed over the aggregates).
type Choice struct {
	MaxGroups int64 `json:"max_groups_contributed"`
	MaxRows   int64 `json:"max_contributions_per_group"`
	// MaxRowsPerUnit is the chosen L1 bound (AutoBounds.TotalRows), 0 without one.
	MaxRowsPerUnit int64   `json:"max_rows_per_unit,omitempty"`
	ExpectedError  float64 `json:"expected_relative_error"`
	// DroppedRowsShare is the model's estimate of the share of rows bounding drops there.
	DroppedRowsShare float64 `json:"expected_dropped_rows_share"`
	// ClampUppers are, per clamping target (AutoClamp.Targets), the upper clamp chosen with
	// the bounds from the target's candidates (ClampTarget.upperOptions), 0 where the target
	// has none; absent without clamping targets.
	ClampUppers []float64 `json:"clamp_uppers,omitempty"`
}

// Choose picks the contribution bounds on the power-of-two grid within the automatic maxima
// (a bound the job set stays fixed) that minimise the model's expected relative error of the
// answer, summed over its aggregates: per cell, the expected absolute error E|β + X| (absError)
// of an answer whose bias β is the share of the aggregate's contributions that bounding drops
// and whose noise X has, over the average cell, the mechanism's standard deviation at those
// bounds. Model (docs/accuracy.md): a unit's number of groups G and its rows R in a
// group are independent, each bin stands at its midpoint, so rows ≈ N·E[G]·E[R] and rows kept
// ≈ N·E[min(G, L0)]·E[min(R, L∞)]; a mean or variance counts the share of rows dropped as its
// bias (dropping reweights units), quantiles are taken as unbiased by dropping (their noise
// still grows with the bounds and shrinks with the rows kept); values of a sum stand at the
// mean the noisy quantiles estimate when the clamping bounds were chosen under DP, else at
// half their bound's magnitude. Post-processing of noisy histograms: free.
func (p *Planned) Choose(pr Profiled) Choice {
	a, w := p.Auto, p.Worker
	groups, rows := []int64{w.Bounds.MaxGroupsContributed}, []int64{w.Bounds.MaxContributionsPerGroup}
	if a.Groups {
		groups = wire.ProfileEdges(a.MaxGroups)
		if groups[len(groups)-1] != a.MaxGroups { // a cap below the next power of two
			groups = append(groups, a.MaxGroups)
		}
	}
	if a.Rows {
		rows = wire.ProfileEdges(a.RowsMax())
		if m := a.RowsMax(); rows[len(rows)-1] != m { // a maximum between powers of two
			rows = append(rows, m)
		}
	}
	best := Choice{ExpectedError: math.Inf(1)}
	for _, l0 := range groups {
		for _, r := range rows {
			b := a.bounds(l0, r)
			e, dropped, uppers := p.expectedError(pr, b)
			if e < best.ExpectedError { // ascending grid: ties keep the smaller bounds
				best = Choice{MaxGroups: l0, MaxRows: b.MaxContributionsPerGroup, MaxRowsPerUnit: b.MaxRowsPerUnit,
					ExpectedError: e, DroppedRowsShare: dropped, ClampUppers: uppers}
			}
		}
	}
	return best
}

// bounds are the worker bounds for a candidate of the choice: L0 and L∞, or for an L1 bound
// L0, the total C and a group's cap min(C, MaxRows).
func (a *AutoBounds) bounds(l0, rows int64) wire.Bounds {
	if a.TotalRows {
		return wire.Bounds{MaxGroupsContributed: l0, MaxContributionsPerGroup: rows, MaxRowsPerUnit: rows}
	}
	return wire.Bounds{MaxGroupsContributed: l0, MaxContributionsPerGroup: rows}
}

// Bounds are the worker bounds of the choice.
func (c Choice) Bounds() wire.Bounds {
	return wire.Bounds{MaxGroupsContributed: c.MaxGroups, MaxContributionsPerGroup: c.MaxRows, MaxRowsPerUnit: c.MaxRowsPerUnit}
}

// clampOption is a candidate upper clamp of a target and the share of the values' mean that
// clamping there cuts, as the target's noisy quantiles estimate it.
type clampOption struct{ upper, cut float64 }

// upperOptions are the target's candidate upper clamps — its noisy 0.95, 0.99 and 0.999
// quantiles and its outer bound — when its clamping bounds were chosen under DP and the query did not
// write its upper side; nil otherwise. A clamp at a quantile cuts what lies above it: the
// mean of the quantiles clipped there (meanFromQuantiles) short of their mean clipped at the
// outer bound. With many rows per cell the noise even at the outer bound is small and the
// cut is the error (AVG(cost) by age group came back 36–57% low clamped at the 0.99 quantile,
// when the catalog's 50,000 costs a noise of about 1%); with few, the noise is.
func (t ClampTarget) upperOptions(lower float64) []clampOption {
	if t.KeepUpper || len(t.Quantiles) != len(clampRanks) {
		return nil
	}
	clipped := func(u float64) float64 {
		q := slices.Clone(t.Quantiles)
		for i := range q {
			q[i] = math.Min(q[i], u)
		}
		return meanFromQuantiles(q)
	}
	full := clipped(t.Upper)
	var out []clampOption
	for _, u := range []float64{t.Quantiles[q95At], t.Quantiles[highAt], t.Quantiles[sumAt], t.Upper} {
		if !(u > lower) || slices.ContainsFunc(out, func(o clampOption) bool { return o.upper == u }) {
			continue
		}
		cut := 0.0
		if full > 0 {
			cut = math.Max(0, 1-clipped(u)/full)
		}
		out = append(out, clampOption{upper: u, cut: cut})
	}
	return out
}

func (p *Planned) expectedError(pr Profiled, b wire.Bounds) (float64, float64, []float64) {
	l0, lInf := b.MaxGroupsContributed, b.MaxContributionsPerGroup
	n := math.Max(pr.Groups.total(), 1)
	eg, er := pr.Groups.meanMin(math.Inf(1)), pr.Rows.meanMin(math.Inf(1))
	kg, kr := pr.Groups.meanMin(float64(l0)), pr.Rows.meanMin(float64(lInf))
	// The choice weighs the bounds by what they keep read cautiously (meanMinCautious).
	kgC, krC := pr.Groups.meanMinCautious(float64(l0)), pr.Rows.meanMinCautious(float64(lInf))
	rowsAll, rowsKept, rowsKeptC := n*eg*er, n*kg*kr, n*math.Min(kg, kgC)*math.Min(kr, krC)
	if c := b.MaxRowsPerUnit; c > 0 {
		// The rows histogram holds each unit's rows in all groups (T): rows ≈ N·E[T], and C
		// keeps N·E[min(T, C)] times the share of groups L0 keeps (taken as independent, and
		// as holding rows like the others). The per-group cap is left out of the model.
		kr, krC = pr.Rows.meanMin(float64(c)), pr.Rows.meanMinCautious(float64(c))
		rowsAll = n * er
		rowsKept = rowsAll * (kr / er) * (kg / eg)
		rowsKeptC = rowsAll * (math.Min(kr, krC) / er) * (math.Min(kg, kgC) / eg)
	}
	droppedRows := 1 - rowsKept/rowsAll // the model's estimate, reported
	pairsAll, pairsKept := n*eg, n*math.Min(kg, kgC)
	dropped := 1 - rowsKeptC/rowsAll
	cells := math.Max(pr.Partitions, 1)
	// aggError is aggregate j's expected error, clamped at the option u when not nil.
	aggError := func(j int, s dp.Spec, u *clampOption) float64 {
		s.MaxPartitions, s.MaxPerPartition = b.Calibration(s.Kind == dp.CountDistinct, s.Mechanism() == "gaussian")
		bias := dropped
		if u != nil {
			s.Upper = u.upper
			bias = 1 - (1-dropped)*(1-u.cut)
		}
		noise := func(scale float64) float64 { return s.NoiseScale() * cells / scale }
		switch s.Kind {
		case dp.Count:
			return absError(s, dropped, noise(rowsAll))
		case dp.CountDistinctValues:
			// A distinct count of values has a count's noise (L0·L∞), but the histograms say
			// nothing of how many values a cell holds, only that it is at most its rows. Weighed
			// against the rows, as a count, the noise looks negligible and the choice runs to the
			// operator's maxima — on the testdata 1×32 or 1×64, where a count of 36 diagnoses
			// has a noise of ±130 and came back 100% off. It is weighed against the units instead,
			// and its bias is the units' groups that L0 drops (a group dropped whole loses its
			// values), not the rows L∞ drops: a value vanishes only when every kept row holding it
			// is dropped, which a value held by many rows almost never is.
			return absError(s, 1-pairsKept/pairsAll, noise(pairsAll))
		case dp.CountDistinct:
			return absError(s, 1-pairsKept/pairsAll, noise(pairsAll))
		case dp.Sum:
			return absError(s, bias, noise(rowsAll*math.Max(p.typical(j, s), 1e-300)))
		case dp.Mean, dp.Variance, dp.StdDev:
			// Dropped rows reweight the units: their share counts as the bias (heavy units'
			// values may differ). The main noise is of the sum of values less the bounds'
			// midpoint: relative to the values' mean where the quantiles estimate it, else to
			// the bounds' half-width.
			scale := (s.Upper - s.Lower) / 2
			if u != nil {
				scale = math.Abs(p.typical(j, s))
			}
			return absError(s, bias, noise(rowsKept*math.Max(scale, 1e-300)))
		case dp.Quantiles:
			return absError(s, 0, noise(rowsKept))
		}
		return 0
	}
	var total float64
	var uppers []float64
	tuned := map[int]bool{}
	if c := p.Clamp; c != nil {
		uppers = make([]float64, len(c.Targets))
		for i, t := range c.Targets {
			opts := t.upperOptions(p.clampLower(t))
			if len(opts) == 0 {
				continue
			}
			best := math.Inf(1)
			for k := range opts {
				var e float64
				for _, j := range t.Aggregates {
					if j < len(p.Worker.Aggregates) {
						e += aggError(j, p.Worker.Aggregates[j], &opts[k])
					}
				}
				if e < best {
					best, uppers[i] = e, opts[k].upper
				}
			}
			total += best
			for _, j := range t.Aggregates {
				tuned[j] = true
			}
		}
	}
	for j, s := range p.Worker.Aggregates {
		if tuned[j] {
			continue
		}
		e := aggError(j, s, nil)
		if p.HiddenUnitCount() && j == p.UnitCount {
			// The hidden unit count is never released: it only decides whether a group
			// reaches MinUnitsPerGroup, which needs far less precision than an answer (it gets
			// HiddenUnitCountWeight of an aggregate's epsilon), and weighs as much here.
			e *= HiddenUnitCountWeight
		}
		total += e
	}
	if sel := p.Worker.Selection; sel != nil {
		// Selection's threshold grows with L0 and drops cells of few units: count it like a
		// COUNT(DISTINCT unit) at the selection's epsilon.
		selL0, _ := b.Calibration(true, true)
		s := dp.Spec{Kind: dp.CountDistinct, Epsilon: sel.Epsilon, MaxPartitions: selL0, MaxPerPartition: 1}
		total += absError(s, 0, s.NoiseScale()*cells/pairsAll)
	}
	return total, droppedRows, uppers
}

// clampLower is the lower clamp a target's aggregates run with (the chosen one, else the
// target's outer bound).
func (p *Planned) clampLower(t ClampTarget) float64 {
	for _, j := range t.Aggregates {
		if j < len(p.Worker.Aggregates) {
			return p.Worker.Aggregates[j].Lower
		}
	}
	return t.Lower
}

// absError is the expected absolute error E|β + X| of an answer whose bias is β ≥ 0 and whose
// noise X, of standard deviation sd (both relative to the cell), comes from the spec's
// mechanism: for Laplace (scale b = sd/√2) β + b·e^(−β/b); for Gaussian
// β·(1 − 2Φ(−β/sd)) + sd·√(2/π)·e^(−β²/2sd²). Bias and noise do not simply add: noise much
// larger than the bias hides it, and a bias much larger than the noise is the error.
func absError(s dp.Spec, beta, sd float64) float64 {
	beta = math.Max(beta, 0)
	if sd <= 0 {
		return beta
	}
	if s.Mechanism() == "laplace" {
		b := sd / math.Sqrt2
		return beta + b*math.Exp(-beta/b)
	}
	z := beta / sd
	return beta*math.Erf(z/math.Sqrt2) + sd*math.Sqrt(2/math.Pi)*math.Exp(-z*z/2)
}

// binFloor is how many standard deviations of a bin's noise the groups histogram's highest
// bin must exceed to count as evidence of partitions (PartitionsFor).
const binFloor = 3

// noiseFloor is binFloor standard deviations of a bin's noise.
func (a *AutoBounds) noiseFloor() float64 {
	s, _ := a.profileSpecs()
	return binFloor * s.NoiseScale()
}

// profileReach is how far beyond the operator's maxima the histograms bin (up to
// maxProfileEdge): the bounds are chosen within the maxima, but how many rows they drop
// depends on the tail above them. More bins cost nothing — each unit is in one bin of each
// histogram whatever their number — but add noise to sums over the tail.
const (
	profileReach   = 2
	maxProfileEdge = 4096
)

// ProfileMax is the last bounded bin edge of a histogram whose choice goes up to choiceMax.
func ProfileMax(choiceMax int64) int64 {
	return powerOfTwoAtMost(max(choiceMax, min(choiceMax*profileReach, maxProfileEdge)))
}

// typical is the magnitude the model takes for the values of sum aggregate j: their mean as
// the noisy quantiles estimate it (meanFromQuantiles) when the clamping bounds were chosen
// under DP, else half its bound's magnitude.
func (p *Planned) typical(j int, s dp.Spec) float64 {
	if c := p.Clamp; c != nil {
		for _, t := range c.Targets {
			if slices.Contains(t.Aggregates, j) && t.Typical != 0 {
				return math.Abs(t.Typical)
			}
		}
	}
	return math.Max(math.Abs(s.Lower), math.Abs(s.Upper)) / 2
}

// HistogramsFrom reads the noisy bins (by wire.ProfileBin name) into the two histograms, by
// post-processing alone. The noisy counts are unbiased (not clamped at 0 one by one). From them
// the number of units above each edge is summed from the top; a sum under twice its noise's
// standard deviation reads as 0 (a tail of only noise would otherwise look like heavy
// contributors — each unit there stands for many rows — and push the bounds up); the sums are
// made non-increasing downward, and the bins are read back from them.
func (a *AutoBounds) HistogramsFrom(noisy map[string]float64) (groups, rows Histogram) {
	groupsSpec, _ := a.profileSpecs()
	binSD := groupsSpec.NoiseScale()
	build := func(name string, maxV, choiceMax, cap int64, tailZ, reachZ float64) Histogram {
		h := Histogram{Edges: wire.ProfileEdges(maxV), Cap: cap, BinSD: binSD}
		lower := int64(1) // the smallest value bin i holds
		var beyond []bool // bin i lies wholly above the largest bound the choice may pick
		for _, e := range h.Edges {
			beyond = append(beyond, lower > choiceMax)
			c := noisy[wire.ProfileBin(name, e, maxV)]
			if cap > 0 && lower > cap {
				c = 0 // no unit can be here: only noise
			}
			h.Counts = append(h.Counts, c)
			lower = e + 1
		}
		over := noisy[name+"/over"]
		if cap > 0 && lower > cap {
			over = 0
		}
		h.Counts = append(h.Counts, over)
		beyond = append(beyond, true)
		n := len(h.Counts)
		tail := make([]float64, n+1)
		raw := 0.0
		for i := n - 1; i >= 0; i-- {
			raw += h.Counts[i]
			t := raw
			z := tailZ
			if beyond[i] {
				z = reachZ
			}
			if t < z*binSD*math.Sqrt(float64(n-i)) {
				t = 0
			}
			tail[i] = max(t, tail[i+1])
		}
		for i := range h.Counts {
			h.Counts[i] = tail[i] - tail[i+1]
		}
		return h
	}
	if !a.TotalRows {
		return build("groups", ProfileMax(a.MaxGroups), a.MaxGroups, a.GroupsCap, tailSignificance, reachSignificance),
			build("rows", ProfileMax(a.MaxRows), a.MaxRows, 0, tailSignificance, reachSignificance)
	}
	// An L1 bound reads both histograms as they are (tails only made consistent, negative
	// sums at 0) and without the cautious discount: a phantom tail of noise can only raise C,
	// whose noise the objective weighs and MaxTotal caps, or L0, which no row aggregate's noise
	// depends on any more — where under L0 × L∞ a phantom traded groups for rows and lost half
	// the answer. A real tail read as nothing lowers the bounds and drops the heaviest units'
	// rows, the error the tail tests made likelier (docs/accuracy.md §5).
	groups = build("groups", ProfileMax(a.MaxGroups), a.MaxGroups, a.GroupsCap, 0, 0)
	// The rows bins reach twice the maximum, as the groups': the bins above it tell C's
	// candidates apart (with the last edge at the maximum, the one bin above stood at twice 64
	// for units of about 190 visits and the choice took C = 64; TestL1ChoiceOnTheTestdata…).
	rows = build("rows", ProfileMax(a.RowsMax()), a.MaxTotal, 0, 0, 0)
	groups.BinSD, rows.BinSD = 0, 0
	return groups, rows
}

// tailSignificance is how many standard deviations of its noise a histogram's tail sum must
// reach to be read as units (HistogramsFrom). reachSignificance applies to a tail that starts
// above the largest bound the choice may pick (the bins profileReach adds): a unit there
// stands for the most rows (up to twice the last edge), so a phantom of noise there did the
// most harm — at 3σ, about one job in thirty ran at 16 × 64 with 60% of its answer missing —
// while a real tail there cannot be chosen, only weighed. At 5σ a bin's Laplace noise passes
// with probability about 5e-4.
const (
	tailSignificance  = 3
	reachSignificance = 5
)

// A clamping histogram tests a tail starting at each of its bins (up to 64), most of them
// noise only above the data, so its threshold is set for the whole family, not one test
// (HistogramQuantiles): a tail of k bins must reach clampTailSignificance·√k standard
// deviations of one bin's noise, and at least phantomSignificance however short it is, since a
// bin or two of Laplace noise has a heavy tail. At tailSignificance·√k alone, about one
// histogram in fifty read noise two or more octaves above the data as the 0.99 or 0.999 rank,
// and the job clamped its values at the catalog's bound (a per-person AVG came back 85% or
// 100% low); a seeded simulation of 100,000 histograms with these thresholds found none
// (TestHistogramQuantilesNeverReadNoiseAtTheTopAsTheUpperRanks). A thin real tail now needs a
// little more to stand, so the clamp can read a bin lower (docs/accuracy.md §6).
const (
	clampTailSignificance = 5.5
	phantomSignificance   = 12.5
)

// ProfileBinNames are every bin of a profile, in order: all are released, empty ones with noise.
func ProfileBinNames(pr *wire.Profile) []string {
	var out []string
	for _, h := range []struct {
		name string
		max  int64
	}{{"groups", pr.MaxGroups}, {"rows", pr.MaxRows}} {
		for _, e := range wire.ProfileEdges(h.max) {
			out = append(out, wire.ProfileBin(h.name, e, h.max))
		}
		out = append(out, h.name+"/over")
	}
	return out
}

// PartitionsFor is the number of cells the model spreads the noise over (Profiled.Partitions):
// the public domain's size, 1 without keys, else the highest bin of the groups histogram whose
// count stands binFloor standard deviations above its noise: a lower bound on the number of
// partitions.
func (p *Planned) PartitionsFor(groups Histogram) float64 {
	switch {
	case len(p.Worker.Keys) == 0:
		return 1
	case p.Public:
		n := 1.0
		for _, d := range p.Domains {
			n *= float64(len(d))
		}
		return n
	}
	parts, floor := 1.0, p.Auto.noiseFloor()
	for i, c := range groups.Counts {
		if c > floor {
			if i < len(groups.Edges) {
				parts = float64(groups.Edges[i])
			} else {
				parts = groups.rep(i)
			}
		}
	}
	return parts
}

// ChoiceText says what was chosen, for the result's bounds text.
func (c Choice) String() string {
	if c.MaxRowsPerUnit > 0 {
		return fmt.Sprintf("max_groups_contributed %d, max_rows_per_unit %d", c.MaxGroups, c.MaxRowsPerUnit)
	}
	return fmt.Sprintf("max_groups_contributed %d, max_contributions_per_group %d", c.MaxGroups, c.MaxRows)
}

// ClampShare is the share of a job's epsilon spent on choosing tighter clamping bounds for the
// values its SUM, AVG, variance and standard deviation read, when the job asks for automatic
// bounds (it leaves a contribution bound unset). Carved out like ContributionShare.
const ClampShare = 0.10

// Clamping bounds are DP quantiles of the values at these ranks, within the catalog's bounds:
// ClampLowRank only for a column whose catalog lower bound is negative (a lower bound of 0 or
// more stays); ClampHighRank for means, variances and standard deviations; ClampSumRank for
// sums, where the few largest values carry much of the total. With ClampMidRank they estimate
// the values' mean, which the contribution bounds' model uses for a sum (meanFromQuantiles).
// All read one quantile tree (or histogram, for a value read on a log scale).
const (
	ClampLowRank  = 0.01
	ClampMidRank  = 0.5
	ClampHighRank = 0.99
	ClampSumRank  = 0.999
)

// clampRanks are the ranks the clamping-bounds tree is read at, in this order: the four above
// and 0.9 and 0.95, which cost nothing more (one tree) and let the values' mean, and what a
// clamp cuts from it, be estimated over finer stretches (meanFromQuantiles).
var clampRanks = []float64{ClampLowRank, ClampMidRank, 0.9, 0.95, ClampHighRank, ClampSumRank}

// Positions in clampRanks.
const (
	lowAt  = 0
	midAt  = 1
	q95At  = 3
	highAt = 4
	sumAt  = 5
)

// ClampChoice is the clamping bounds chosen for one value: Lower, Upper for means and
// variances, SumUpper for sums, and Typical, the values' mean as the noisy quantiles estimate it.
type ClampChoice struct {
	Lower    float64 `json:"lower"`
	Upper    float64 `json:"upper"`
	SumUpper float64 `json:"sum_upper"`
	Typical  float64 `json:"typical"`
}

// AutoClamp says which values get clamping bounds chosen under DP and with how much epsilon.
type AutoClamp struct {
	Epsilon float64       `json:"epsilon"`
	Targets []ClampTarget `json:"targets"`
}

// ClampTarget is one value expression whose clamping bounds are chosen: the aggregates (indices
// into the worker plan's aggregates) that read it and its outer bounds — the catalog's, or for
// a per-unit subquery's value the worst case the catalog and the row cap allow.
type ClampTarget struct {
	Value      *wire.Expr `json:"value"`
	Aggregates []int      `json:"aggregates"`
	Lower      float64    `json:"catalog_lower"`
	Upper      float64    `json:"catalog_upper"`
	// KeepLower and KeepUpper mark a side the query wrote itself (a per-unit value's
	// LEAST/GREATEST clamp): it is used as written, never replaced by a quantile.
	KeepLower bool `json:"keep_lower,omitempty"`
	KeepUpper bool `json:"keep_upper,omitempty"`
	// LogScale says the quantile tree reads the value on a log scale (logScale): the range is
	// wider than the tree has leaves (ClampLinearSpan).
	LogScale bool `json:"log_scale,omitempty"`
	// Quantiles are the noisy quantiles at clampRanks once chosen, within the outer bounds:
	// the contribution bounds' model weighs clamping at each (upperOptions).
	Quantiles []float64 `json:"quantiles,omitempty"`
	// Typical is the values' estimated mean once chosen (0 before): the contribution bounds' model reads
	// it as a sum's typical value.
	Typical float64 `json:"typical,omitempty"`
}

// ClampLinearSpan is the widest range a clamping-bounds quantile tree reads on a linear scale:
// the library's tree (height 4, branching 16) has 65,536 leaves, so over a wider range a leaf
// is wider than 1 and a per-unit total of a few thousand falls in the first leaves of a range of
// tens of millions. A wider range is read on a log scale instead (logScale).
const ClampLinearSpan = 1 << 16

// clampTargets are the values of a plan's SUM, AVG, VAR and STDDEV that read a column's
// catalog bounds, by distinct value. Under a per-unit subquery only values with a side no
// clamp in the query wrote (gate.Aggregate.Outer) are targets, and the sides it wrote are kept.
func clampTargets(q *gate.Query, aggs []dp.Spec, values []*wire.Expr) []ClampTarget {
	perUnit := q.Relation != nil && q.Relation.PerUnit
	var out []ClampTarget
	for j, s := range aggs {
		switch s.Kind {
		case dp.Sum, dp.Mean, dp.Variance, dp.StdDev:
		default:
			continue
		}
		if s.Value < 0 {
			continue
		}
		var keep [2]bool
		if perUnit {
			if j >= len(q.Aggregates) || !q.Aggregates[j].Outer[0] && !q.Aggregates[j].Outer[1] {
				continue
			}
			keep = [2]bool{!q.Aggregates[j].Outer[0], !q.Aggregates[j].Outer[1]}
		}
		v := values[s.Value]
		i := slices.IndexFunc(out, func(t ClampTarget) bool {
			return t.Value.Equal(v) && t.Lower == s.Lower && t.Upper == s.Upper && t.KeepLower == keep[0] && t.KeepUpper == keep[1]
		})
		if i < 0 {
			out = append(out, ClampTarget{Value: v, Lower: s.Lower, Upper: s.Upper, KeepLower: keep[0], KeepUpper: keep[1],
				LogScale: s.Upper-s.Lower > ClampLinearSpan})
			i = len(out) - 1
		}
		out[i].Aggregates = append(out[i].Aggregates, j)
	}
	return out
}

// clampTunable reports whether an aggregate of q gets its clamping bounds chosen under DP: a
// SUM, AVG, VAR or STDDEV of a bounded value — under a per-unit subquery, one with a side no
// clamp in the query wrote.
func clampTunable(q *gate.Query, a gate.Aggregate) bool {
	switch a.Kind {
	case dp.Sum, dp.Mean, dp.Variance, dp.StdDev:
	default:
		return false
	}
	if a.Value == nil || len(a.Bounds) != 2 {
		return false
	}
	return q.Relation == nil || !q.Relation.PerUnit || a.Outer[0] || a.Outer[1]
}

// logScale maps a value x ≥ 0 (the value less the target's lower bound) monotonically onto a
// log2 scale, piecewise linear so that the worker computes it with the expression IR alone:
// x below 1 stays, and [2^k, 2^(k+1)) maps onto [k+1, k+2). A quantile commutes with a
// monotone map, so the tree's quantile of the mapped values, mapped back (logScaleInverse), is
// the quantile of the values, with a resolution relative to the value (about 0.03% of it over
// the tree's 65,536 leaves for a range of 2^27) instead of a fixed step of range/65,536.
func logScale(x float64) float64 {
	if x < 1 {
		return x
	}
	k := math.Floor(math.Log2(x))
	p := math.Exp2(k)
	if x >= 2*p { // rounding at a power of two
		k, p = k+1, 2*p
	}
	return k + 1 + (x-p)/p
}

// logScaleInverse is logScale's inverse on [0, ∞).
func logScaleInverse(y float64) float64 {
	if y < 1 {
		return y
	}
	k := math.Floor(y) - 1
	return math.Exp2(k) * (y - k)
}

// logScaleExpr is logScale(v − lower) in the expression IR, for v up to lower + span (a value
// above maps above logScale(span), where the tree clamps it; one below lower maps below 0).
func logScaleExpr(v *wire.Expr, lower, span float64) *wire.Expr {
	num := func(f float64) *wire.Expr { return wire.Num(strconv.FormatFloat(f, 'f', -1, 64)) }
	x := v
	if lower != 0 {
		x = wire.Arith("-", v, num(lower))
	}
	top := math.Ceil(math.Log2(math.Max(span, 1)))
	whenThen := []*wire.Expr{wire.Compare("<", x, num(1)), x}
	for k := 0.0; k < top; k++ {
		p := math.Exp2(k)
		whenThen = append(whenThen, wire.Compare("<", x, num(2*p)),
			wire.Arith("+", num(k+1), wire.Arith("/", wire.Arith("-", x, num(p)), num(p))))
	}
	return wire.Case(num(top+1), whenThen...)
}

// ClampPlan is the worker plan whose DP quantiles choose the clamping bounds of the linear
// targets (those not read on a log scale): the plan's rows (relation and filter; no keys, so
// rows whose key lies outside a public domain count too), one partition, and per linear
// target one quantile tree at clampRanks within its catalog bounds, with one row per unit (L0
// 1, L∞ 1: each unit adds one value, chosen by the keyed hash). Without linear targets it has
// no aggregates and is not run. A log-scale target reads a histogram instead
// (ClampHistogramPlans).
func (p *Planned) ClampPlan() (wire.Plan, error) {
	c := p.Clamp
	if c == nil {
		return wire.Plan{}, errcode.New(errcode.Internal, "the plan chooses no clamping bounds")
	}
	w := p.clampBase()
	for _, t := range c.Targets {
		if t.LogScale {
			continue
		}
		w.Values = append(w.Values, t.Value)
		s := dp.Spec{Kind: dp.Quantiles, Value: len(w.Values) - 1, Lower: t.Lower, Upper: t.Upper, Ranks: slices.Clone(clampRanks),
			Epsilon: c.targetEpsilon(), MaxPartitions: 1, MaxPerPartition: 1}
		if err := s.Validate(); err != nil {
			return wire.Plan{}, errcode.Wrap(errcode.InvalidOptions, err, "the privacy parameters are outside what the clamping-bounds quantile accepts")
		}
		w.Aggregates = append(w.Aggregates, s)
	}
	return w, nil
}

// clampBase is the plan's rows with one row per unit and nothing computed on them yet.
func (p *Planned) clampBase() wire.Plan {
	w := p.Worker
	w.Keys, w.Domains, w.Selection, w.Bias, w.Profile, w.Values, w.Aggregates = nil, nil, nil, nil, nil, nil, nil
	w.Bounds = wire.Bounds{MaxGroupsContributed: 1, MaxContributionsPerGroup: 1}
	return w
}

// targetEpsilon is each target's share of the clamping bounds' epsilon.
func (c *AutoClamp) targetEpsilon() float64 { return c.Epsilon / float64(len(c.Targets)) }

// ClampHistogramPlans are, per log-scale target in order, the worker plan of a DP histogram of
// its values on the log scale (logScale), in half-octave bins (bin b holds the values whose
// logScale lies in [b/2, (b+1)/2)): the bin is the one group key, with every bin as its public
// domain, and each unit adds its one value to one bin (a COUNT with L0 1, L∞ 1). A quantile
// tree over a range as wide as a per-unit value's worst case (tens of millions for a per-person
// total of costs) reads its top ranks badly at a tenth of epsilon: the tree's many empty upper
// branches each carry noise, and about one job in five had its 0.99 quantile land in them, 100
// to 300 times too high, and released a mean whose noise covered [0, 60,000]. In the
// histogram a tail counts only when it stands above its noise (HistogramQuantiles).
func (p *Planned) ClampHistogramPlans() ([]wire.Plan, error) {
	c := p.Clamp
	if c == nil {
		return nil, errcode.New(errcode.Internal, "the plan chooses no clamping bounds")
	}
	var out []wire.Plan
	for _, t := range c.Targets {
		if !t.LogScale {
			continue
		}
		w := p.clampBase()
		span := t.Upper - t.Lower
		bins := 2 * (int(math.Ceil(math.Log2(math.Max(span, 1)))) + 1)
		num := func(f float64) *wire.Expr { return wire.Num(strconv.FormatFloat(f, 'f', -1, 64)) }
		w.Keys = []*wire.Expr{wire.Func("floor", wire.Arith("*", num(2), logScaleExpr(t.Value, t.Lower, span)))}
		domain := make([]string, bins+1)
		for b := range domain {
			domain[b] = strconv.Itoa(b)
		}
		w.Domains = [][]string{domain}
		s := dp.Spec{Kind: dp.Count, Value: -1, Epsilon: c.targetEpsilon(), MaxPartitions: 1, MaxPerPartition: 1}
		if err := s.Validate(); err != nil {
			return nil, errcode.Wrap(errcode.InvalidOptions, err, "the privacy parameters are outside what the clamping-bounds histogram accepts")
		}
		w.Aggregates = []dp.Spec{s}
		out = append(out, w)
	}
	return out, nil
}

// HistogramQuantiles reads a log-scale target's noisy half-octave histogram (counts by bin,
// each bin's noise of standard deviation sd) as its quantiles at clampRanks, on the log scale,
// by post-processing alone: the number of units above each bin is summed from the top, a sum
// under the family's threshold (clampTailSignificance, phantomSignificance) reads as 0 and the sums are made
// non-increasing downward (a tail of noise only would otherwise read as values far above the
// data); a rank above the median is read at the upper edge of the bin where it falls (the
// larger clamp: less bias, a little more noise), the median at the bin's middle and the low
// rank at its lower edge. Nil when no unit stands above the noise.
func HistogramQuantiles(counts []float64, sd float64) []float64 {
	n := len(counts)
	tail := make([]float64, n+1)
	var raw float64
	for b := n - 1; b >= 0; b-- {
		raw += counts[b]
		t := raw
		if t < sd*max(clampTailSignificance*math.Sqrt(float64(n-b)), phantomSignificance) {
			t = 0
		}
		tail[b] = max(t, tail[b+1])
	}
	total := tail[0]
	if total <= 0 {
		return nil
	}
	out := make([]float64, len(clampRanks))
	for k, r := range clampRanks {
		// The bin b where the units at or above it first reach the share above rank r.
		b := n - 1
		for b > 0 && tail[b] < (1-r)*total {
			b--
		}
		switch {
		case r > ClampMidRank:
			out[k] = float64(b+1) / 2
		case r == ClampMidRank:
			out[k] = (float64(b) + 0.5) / 2
		default:
			out[k] = float64(b) / 2
		}
	}
	return out
}

// ChooseClamps turns the noisy quantiles (per target, at clampRanks) into clamping bounds
// within the catalog's: the low quantile only where the catalog's lower bound is negative; an
// upper bound that does not exceed the lower one falls back to the catalog's. It records each
// target's typical value for the contribution bounds' model. Post-processing of noisy values.
func (c *AutoClamp) ChooseClamps(noisy [][]float64) []ClampChoice {
	out := make([]ClampChoice, len(c.Targets))
	in := func(v float64, t ClampTarget) float64 { return min(max(v, t.Lower), t.Upper) }
	for i, t := range c.Targets {
		ch := ClampChoice{Lower: t.Lower, Upper: t.Upper, SumUpper: t.Upper, Typical: (t.Lower + t.Upper) / 2}
		if i < len(noisy) && len(noisy[i]) == len(clampRanks) {
			q := slices.Clone(noisy[i])
			if t.LogScale {
				for r := range q {
					q[r] = t.Lower + logScaleInverse(max(q[r], 0))
				}
			}
			if t.Lower < 0 && !t.KeepLower {
				ch.Lower = in(q[lowAt], t)
			}
			if !t.KeepUpper {
				ch.Upper, ch.SumUpper = in(q[highAt], t), in(q[sumAt], t)
			}
			clipped := make([]float64, len(q))
			for r := range q {
				clipped[r] = in(q[r], t)
			}
			ch.Typical = meanFromQuantiles(clipped)
			c.Targets[i].Quantiles = clipped
		}
		if !(ch.Lower < ch.Upper) {
			ch.Upper = t.Upper
		}
		if !(ch.Lower < ch.SumUpper) {
			ch.SumUpper = t.Upper
		}
		c.Targets[i].Typical = ch.Typical
		out[i] = ch
	}
	return out
}

// meanFromQuantiles estimates the mean of values from their quantiles at clampRanks: each
// stretch of ranks between two quantiles stands at the middle of its ends — their geometric
// mean when both are positive, since such values spread over orders of magnitude — the ranks
// below the first at the first quantile and those above the last at the last. The median
// alone, which the contribution bounds' model once took for a sum's typical value, is 8 times
// too small on costs (median 256, mean 2,019): the model saw a sum's noise 8 times too large
// and ran SUM(cost) by month at 1 × 1, 64% low. Post-processing of noisy quantiles.
func meanFromQuantiles(q []float64) float64 {
	mid := func(a, b float64) float64 {
		if a > 0 && b > 0 {
			return math.Sqrt(a * b)
		}
		return (a + b) / 2
	}
	m := clampRanks[0] * q[0]
	for k := 1; k < len(clampRanks); k++ {
		m += (clampRanks[k] - clampRanks[k-1]) * mid(q[k-1], q[k])
	}
	return m + (1-clampRanks[len(clampRanks)-1])*q[len(q)-1]
}

// WithUppers returns the clamping bounds with each target's upper clamp replaced by the one the
// contribution bounds' choice weighed best (Choice.ClampUppers; 0 keeps it).
func WithUppers(chosen []ClampChoice, uppers []float64) []ClampChoice {
	out := slices.Clone(chosen)
	for i, u := range uppers {
		if i < len(out) && u > out[i].Lower {
			out[i].Upper, out[i].SumUpper = u, u
		}
	}
	return out
}

// ApplyClamps sets the chosen clamping bounds on the aggregates that read each target (a sum's
// upper bound is SumUpper, every other's Upper).
func ApplyClamps(w *wire.Plan, c *AutoClamp, chosen []ClampChoice) error {
	if len(chosen) != len(c.Targets) {
		return errcode.New(errcode.Internal, "clamping bounds do not match the plan")
	}
	for i, t := range c.Targets {
		for _, j := range t.Aggregates {
			if j >= len(w.Aggregates) {
				return errcode.New(errcode.Internal, "clamping bounds do not match the plan")
			}
			a := &w.Aggregates[j]
			a.Lower, a.Upper = chosen[i].Lower, chosen[i].Upper
			if a.Kind == dp.Sum {
				a.Upper = chosen[i].SumUpper
			}
			if err := a.Validate(); err != nil {
				return errcode.Wrap(errcode.InvalidOptions, err, "the privacy parameters are outside what the mechanism accepts at the chosen clamping bounds")
			}
		}
	}
	return nil
}
