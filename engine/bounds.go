package engine

import (
	"context"
	"fmt"
	"math"
	"strings"

	"github.com/google/differential-privacy/go/v3/noise"

	"github.com/c1b99f93/cleanroom/dp"
	"github.com/c1b99f93/cleanroom/engine/gate"
	"github.com/c1b99f93/cleanroom/engine/plan"
	"github.com/c1b99f93/cleanroom/engine/provenance"
	"github.com/c1b99f93/cleanroom/errcode"
	"github.com/c1b99f93/cleanroom/sandbox/wire"
	"github.com/c1b99f93/cleanroom/server/api"
)

// Fallback operator maxima for automatic contribution bounds, when the policy bundle sets
// none (auto_max_groups_contributed, auto_max_contributions_per_group).
const (
	fallbackAutoMaxGroups = 8
	fallbackAutoMaxRows   = 64
	fallbackAutoMaxTotal  = 128
)

// autoMax are the operator's maxima for automatic bounds, never above the explicit maxima the
// access policy allows (max_groups_contributed, max_contributions_per_group).
func (e *Engine) autoMax() *plan.AutoMax {
	p := e.policy.Params()
	a := &plan.AutoMax{MaxGroups: int64(p.AutoMaxGroups), MaxRows: int64(p.AutoMaxRows), MaxTotal: int64(p.AutoMaxTotal)}
	if a.MaxGroups < 1 {
		a.MaxGroups = fallbackAutoMaxGroups
	}
	if a.MaxRows < 1 {
		a.MaxRows = fallbackAutoMaxRows
	}
	if a.MaxTotal < 1 {
		a.MaxTotal = fallbackAutoMaxTotal
	}
	if p.MaxGroups >= 1 {
		a.MaxGroups = min(a.MaxGroups, int64(p.MaxGroups))
	}
	if p.MaxRows >= 1 {
		a.MaxRows = min(a.MaxRows, int64(p.MaxRows))
		a.MaxRowsInGroup = int64(p.MaxRows)
	}
	return a
}

func noAutoBounds(s *jobState) bool { return s.isRepeat() || (s.p.Auto == nil && s.p.Clamp == nil) }

// chooseBoundsStage chooses the bounds a job that asked for automatic bounds left unset, first
// the clamping bounds (chooseClamps), then the contribution bounds (chooseContributions), which
// weigh the noise at the clamping bounds chosen. Its failure is charged like execution's: the
// worker has read rows.
func chooseBoundsStage(ctx context.Context, e *Engine, s *jobState) ([]provenance.Event, error) {
	ev := &provenance.BoundsChosen{}
	if s.p.Clamp != nil {
		if err := chooseClamps(ctx, e, s, ev); err != nil {
			return nil, err
		}
	}
	if s.p.Auto != nil {
		if err := chooseContributions(ctx, e, s, ev); err != nil {
			return nil, err
		}
	}
	return events(ev), nil
}

// chooseClamps chooses clamping bounds for the values of SUM, AVG, VAR and STDDEV, with
// plan.ClampShare of the job's epsilon split over the values, one row per unit (L0 = L∞ = 1),
// computed by the worker like any aggregate and noised by the library: a DP quantile tree
// within the catalog's bounds per value (plan.ClampPlan), or for a value read on a log scale a
// DP histogram of half-octave bins (plan.ClampHistogramPlans, plan.HistogramQuantiles). The
// bounds are the noisy quantiles at plan.ClampLowRank and plan.ClampHighRank.
func chooseClamps(ctx context.Context, e *Engine, s *jobState, ev *provenance.BoundsChosen) error {
	p := s.p
	cw, err := p.ClampPlan()
	if err != nil {
		return err
	}
	hws, err := p.ClampHistogramPlans()
	if err != nil {
		return err
	}
	noisy := make([][]float64, len(p.Clamp.Targets))
	var linear, logs []int // target indices in the order of the tree's aggregates and of the histograms
	for i, t := range p.Clamp.Targets {
		if t.LogScale {
			logs = append(logs, i)
		} else {
			linear = append(linear, i)
		}
	}
	var pre []byte
	if len(cw.Aggregates) > 0 {
		cw.Job = s.id
		parts, err := s.w.Execute(ctx, &cw)
		if err != nil {
			return err
		}
		q, treePre, err := releaseClampQuantiles(&cw, parts)
		if err != nil {
			return errcode.Wrap(errcode.SandboxFailed, err, "the worker returned quantile states that do not match the plan; nothing was released")
		}
		for k, i := range linear {
			noisy[i] = q[k]
		}
		pre = treePre
		ev.ClampPlan = provenance.DocOf(cw)
	}
	for k := range hws {
		hw := &hws[k]
		hw.Job = s.id
		parts, err := s.w.Execute(ctx, hw)
		if err != nil {
			return err
		}
		bins, histPre, err := releaseProfile(oneSpec(hw.Aggregates[0]), hw.Domains[0], parts)
		if err != nil {
			return errcode.Wrap(errcode.SandboxFailed, err, "the worker returned histogram states that do not match the plan; nothing was released")
		}
		counts := make([]float64, len(hw.Domains[0]))
		for b, name := range hw.Domains[0] {
			counts[b] = bins[name]
		}
		noisy[logs[k]] = plan.HistogramQuantiles(counts, hw.Aggregates[0].NoiseScale())
		pre = append(pre, histPre...)
	}
	if len(hws) > 0 {
		ev.ClampHistograms = provenance.DocOf(hws)
	}
	chosen := p.Clamp.ChooseClamps(noisy)
	if err := plan.ApplyClamps(&p.Worker, p.Clamp, chosen); err != nil {
		return err
	}
	s.clamps = chosen
	ev.ClampQuantiles = provenance.DocOf(noisy)
	ev.ClampBounds = provenance.DocOf(clampRecord{Targets: p.Clamp.Targets, Chosen: chosen})
	ev.ClampEpsilon, ev.ClampShare, ev.ClampPreNoiseDigest = p.Clamp.Epsilon, plan.ClampShare, e.auditKey.Digest(pre)
	return nil
}

// clampRecord is the recorded choice of clamping bounds: the targets (which aggregates read
// which value) and the bounds chosen for each, so a replay applies them as the job did.
type clampRecord struct {
	Targets []plan.ClampTarget `json:"targets"`
	Chosen  []plan.ClampChoice `json:"chosen"`
}

// releaseClampQuantiles noises the clamp plan's one partition (or, when no unit had a row, an
// empty one) and returns each value's low and high quantile with the canonical pre-noise bytes.
func releaseClampQuantiles(cw *wire.Plan, parts []wire.Partition) ([][]float64, []byte, error) {
	if len(parts) > 1 {
		return nil, nil, fmt.Errorf("engine: the clamp plan has one partition, the worker returned %d", len(parts))
	}
	pre, err := preNoiseBytes(&plan.Planned{Worker: *cw}, parts)
	if err != nil {
		return nil, nil, err
	}
	out := make([][]float64, len(cw.Aggregates))
	for j, spec := range cw.Aggregates {
		var st []byte
		if len(parts) == 1 {
			st = parts[0].States[j]
		}
		rel, err := spec.Release(st)
		if err != nil {
			return nil, nil, err
		}
		for _, r := range rel {
			out[j] = append(out[j], r.Value)
		}
	}
	return out, pre, nil
}

// chooseContributions chooses the contribution bounds the job left unset. The worker computes,
// over exactly the rows the query reads, two histograms of contributions per unit (groups per
// unit; rows in one keyed-hash-chosen group per unit), each unit in exactly one bin of each
// (sensitivity 1 per histogram); every bin is noised through the DP library with
// plan.ContributionShare of the job's epsilon, and the bounds are chosen from the noisy bins
// alone (plan.Choose: post-processing). The plan then runs at the chosen bounds.
func chooseContributions(ctx context.Context, e *Engine, s *jobState, ev *provenance.BoundsChosen) error {
	p := s.p
	pw, err := p.ProfilePlan()
	if err != nil {
		return err
	}
	parts, err := s.w.Profile(ctx, &pw)
	if err != nil {
		return err
	}
	noisy, pre, err := releaseProfile(pw.Profile.SpecFor, plan.ProfileBinNames(pw.Profile), parts)
	if err != nil {
		return errcode.Wrap(errcode.SandboxFailed, err, "the worker returned contribution histograms that do not match the plan; nothing was released")
	}
	groups, rows := p.Auto.HistogramsFrom(noisy)
	prof := plan.Profiled{Groups: groups, Rows: rows}
	prof.Partitions = p.PartitionsFor(groups)
	choice := p.Choose(prof)
	if err := plan.ApplyBounds(&p.Worker, choice.Bounds()); err != nil {
		return err
	}
	if p.Clamp != nil && s.clamps != nil && len(choice.ClampUppers) > 0 {
		// The upper clamps the choice weighed with the bounds replace the first reading.
		s.clamps = plan.WithUppers(s.clamps, choice.ClampUppers)
		if err := plan.ApplyClamps(&p.Worker, p.Clamp, s.clamps); err != nil {
			return err
		}
		ev.ClampBounds = provenance.DocOf(clampRecord{Targets: p.Clamp.Targets, Chosen: s.clamps})
	}
	s.choice = &choice
	ev.ProfilePlan, ev.Histograms, ev.Chosen = provenance.DocOf(pw), provenance.DocOf(prof), provenance.DocOf(choice)
	ev.Epsilon, ev.Share, ev.PreNoiseDigest = p.Auto.Epsilon, plan.ContributionShare, e.auditKey.Digest(pre)
	return nil
}

// releaseProfile noises every bin of a profile — those no unit reached too — and returns the
// noisy counts by bin name with the canonical pre-noise bytes (for the keyed digest).
func releaseProfile(specFor func(bin string) dp.Spec, bins []string, parts []wire.Partition) (map[string]float64, []byte, error) {
	states := map[string][]byte{}
	for _, pt := range parts {
		if len(pt.Key) != 1 || pt.Key[0] == nil || len(pt.States) != 1 {
			return nil, nil, fmt.Errorf("engine: a malformed histogram bin")
		}
		states[*pt.Key[0]] = pt.States[0]
	}
	noisy := map[string]float64{}
	var pre []byte
	for _, name := range bins {
		st, ok := states[name]
		if ok {
			c, err := specFor(name).Canonical(st)
			if err != nil {
				return nil, nil, err
			}
			pre = append(append(append(pre, name...), 0xff), c...)
			delete(states, name)
		} else {
			st = nil
		}
		rel, err := specFor(name).ReleaseSigned(st) // unbiased: the histogram is made consistent later
		if err != nil {
			return nil, nil, err
		}
		noisy[name] = rel[0].Value
	}
	if len(states) > 0 {
		return nil, nil, fmt.Errorf("engine: the worker returned a histogram bin the plan does not have")
	}
	return noisy, pre, nil
}

// oneSpec counts every bin of a histogram with spec.
func oneSpec(spec dp.Spec) func(string) dp.Spec { return func(string) dp.Spec { return spec } }

// profilePreNoise is releaseProfile's canonical pre-noise bytes without drawing noise (replay).
func profilePreNoise(specFor func(bin string) dp.Spec, bins []string, parts []wire.Partition) ([]byte, error) {
	states := map[string][]byte{}
	for _, pt := range parts {
		if len(pt.Key) != 1 || pt.Key[0] == nil || len(pt.States) != 1 {
			return nil, fmt.Errorf("engine: a malformed histogram bin")
		}
		states[*pt.Key[0]] = pt.States[0]
	}
	var pre []byte
	for _, name := range bins {
		if st, ok := states[name]; ok {
			c, err := specFor(name).Canonical(st)
			if err != nil {
				return nil, err
			}
			pre = append(append(append(pre, name...), 0xff), c...)
		}
	}
	return pre, nil
}

// biasPreNoise is the canonical form of the bounding-cost counts' states, appended to the
// execution's pre-noise bytes (nil for a plan without them, as in logs written before them).
func biasPreNoise(w *wire.Plan, st *wire.BiasStates) ([]byte, error) {
	if w.Bias == nil {
		return nil, nil
	}
	if st == nil || len(st.Clamped) != len(w.Bias.Clamped) {
		return nil, fmt.Errorf("engine: the worker returned no bounding-cost counts")
	}
	var b []byte
	add := func(s dp.Spec, enc []byte) error {
		c, err := s.Canonical(enc)
		if err == nil {
			b = append(append(b, c...), 0xfc)
		}
		return err
	}
	bs := w.Bias
	if err := add(bs.Count, st.Units); err != nil {
		return nil, err
	}
	if err := add(bs.Count, st.Dropping); err != nil {
		return nil, err
	}
	if err := add(bs.DroppedFraction, st.DroppedFraction); err != nil {
		return nil, err
	}
	for i, s := range bs.Clamped {
		if err := add(s, st.Clamped[i]); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// releaseBias noises the bounding-cost counts (each through the DP library, sensitivity 1)
// and states them as shares of the noisy number of units, each with its 95% tolerance
// (biasShare).
func releaseBias(p *plan.Planned, choice *plan.Choice, st *wire.BiasStates) (*api.Bias, error) {
	bs := p.Worker.Bias
	if bs == nil {
		return nil, nil
	}
	if st == nil || len(st.Clamped) != len(bs.Clamped) || len(bs.ClampedAggregates) != len(bs.Clamped) {
		return nil, fmt.Errorf("engine: no bounding-cost counts to release")
	}
	units, err := releaseBiasTotal(bs.Count, st.Units, biasUnitsConfidence)
	if err != nil {
		return nil, err
	}
	dropping, err := releaseBiasTotal(bs.Count, st.Dropping, biasPartConfidence)
	if err != nil {
		return nil, err
	}
	frac, err := releaseBiasTotal(bs.DroppedFraction, st.DroppedFraction, biasPartConfidence)
	if err != nil {
		return nil, err
	}
	b := &api.Bias{Epsilon: p.BiasEpsilon, Units: math.Max(units.value, 0),
		Chosen: api.ChosenBounds{MaxGroupsContributed: p.Worker.Bounds.MaxGroupsContributed, MaxContributionsPerGroup: p.Worker.Bounds.MaxContributionsPerGroup,
			MaxRowsPerUnit: p.Worker.Bounds.MaxRowsPerUnit}}
	b.UnitsWithDroppedRows, b.UnitsWithDroppedRowsTolerance = biasShare(dropping, units)
	b.RowsDropped, b.RowsDroppedTolerance = biasShare(frac, units)
	if a := p.Auto; a != nil && choice != nil {
		b.Chosen.GroupsAutomatic, b.Chosen.RowsAutomatic = a.Groups, a.Rows
		b.Chosen.MaxGroups, b.Chosen.MaxRows = a.MaxGroups, a.RowsMax() // under an L1 bound, the total
		m := math.Min(math.Max(choice.DroppedRowsShare, 0), 1)
		b.ModelRowsDropped = &m
	}
	for i, j := range bs.ClampedAggregates {
		if j < 0 || j >= len(p.Worker.Aggregates) {
			return nil, fmt.Errorf("engine: a bounding-cost count names no aggregate")
		}
		c, err := releaseBiasTotal(bs.Clamped[i], st.Clamped[i], biasPartConfidence)
		if err != nil {
			return nil, err
		}
		spec := p.Worker.Aggregates[j]
		cs := api.ClampedShare{Aggregate: aggregateName(p, j), Lower: spec.Lower, Upper: spec.Upper}
		cs.Units, cs.UnitsTolerance = biasShare(c, units)
		b.Clamped = append(b.Clamped, cs)
	}
	return b, nil
}

// The confidence levels of the bias estimate's noisy totals. A share is a ratio D/N of two
// noisy totals over units (D: the units with dropped rows, the sum of the units' dropped
// fractions, or the units with a clamped value; N: the units). The number of units is read at
// biasUnitsConfidence and the part at biasPartConfidence, so both intervals hold at once with
// probability at least 1 − 0.01 − 0.04 = 95% (union bound; no independence assumed). The part
// gets the larger share of the 5% because it dominates the ratio's error whenever the share
// is below one half: the ratio moves by h_D/N for the part's half-width h_D and by only
// share·h_N/N for the units'.
const (
	biasUnitsConfidence = 0.99
	biasPartConfidence  = 0.96
)

// biasTotal is one noisy total of the bias estimate with the library's confidence interval
// around it.
type biasTotal struct{ value, lo, hi float64 }

// releaseBiasTotal noises one bounding-cost count through the library (ReleaseSigned: the
// noisy value not clamped at 0, so the interval is centred where the library's is) and asks
// the library's noise for its confidence interval at level conf, with the spec's own
// parameters (its single noise addition: mechanism, epsilon, delta, sensitivities). The
// interval is post-processing of the noisy value and public parameters; the noise is drawn
// once, by Release.
func releaseBiasTotal(s dp.Spec, enc []byte, conf float64) (biasTotal, error) {
	r, err := s.ReleaseSigned(enc)
	if err != nil {
		return biasTotal{}, err
	}
	c := s.Components()
	if len(r) != 1 || len(c) != 1 {
		return biasTotal{}, fmt.Errorf("engine: a bounding-cost count is not a single noisy total")
	}
	nz := noise.Laplace()
	if c[0].Mechanism == "gaussian" {
		nz = noise.Gaussian()
	}
	v := r[0].Value
	var ci noise.ConfidenceInterval
	if s.Kind == dp.Count || s.Kind == dp.CountDistinct {
		// A count's noise is the library's integer noise, and so is its interval (rounded
		// outwards to whole numbers), as the library computes it for Count.
		ci, err = nz.ComputeConfidenceIntervalInt64(int64(math.Round(v)), c[0].L0, int64(math.Round(c[0].LInf)), c[0].Epsilon, c[0].Delta, 1-conf)
	} else {
		ci, err = nz.ComputeConfidenceIntervalFloat64(v, c[0].L0, c[0].LInf, c[0].Epsilon, c[0].Delta, 1-conf)
	}
	if err != nil {
		return biasTotal{}, fmt.Errorf("engine: the bias estimate's interval: %w", err)
	}
	return biasTotal{value: v, lo: math.Min(ci.LowerBound, v), hi: math.Max(ci.UpperBound, v)}, nil
}

// biasShare states part/units as a share in [0, 1] with its 95% tolerance: with probability at
// least 95% (both totals within their intervals, see biasUnitsConfidence) the true share lies
// in [max(D_lo, 0)/N_hi, D_hi/N_lo] ∩ [0, 1] (the true part never exceeds the true units, so
// the true share is at most 1), and the tolerance is the larger distance from the stated share
// to either end, so share ± tolerance contains that interval. When N_lo ≤ 0 the upper end is
// 1: the noise could hide that there are almost no units.
func biasShare(part, units biasTotal) (share, tolerance float64) {
	unit := func(x float64) float64 {
		if math.IsNaN(x) {
			return 1
		}
		return math.Min(math.Max(x, 0), 1)
	}
	share = unit(part.value / math.Max(units.value, 1))
	lo, hi := 0.0, 1.0
	if units.hi > 0 {
		lo = unit(math.Max(part.lo, 0) / units.hi)
	}
	if units.lo > 0 {
		hi = unit(part.hi / units.lo)
	}
	return share, math.Max(share-math.Min(lo, share), math.Max(hi, share)-share)
}

// atBoundTolerance is how close, as a share of the clamping range, a released mean or quantile
// must be to a bound to be flagged as sitting at it (the quantile tree's resolution is about
// 1/65536 of the range); extremeTolerance is the same for MIN and MAX (ranks within 1% of 0 or
// 1), which the library reads at ranks 0.005 and 0.995 of a noisy tree: when the values pile
// up at a bound, MAX lands a little below it.
const (
	atBoundTolerance = 1e-3
	extremeTolerance = 0.05
)

// flagClampBounds marks the released cells of means and quantiles (MIN, MAX, medians) that sit
// at a clamping bound: the true value may lie beyond it. It reads only released values and
// public bounds: post-processing, at no cost.
func flagClampBounds(q *gate.Query, p *plan.Planned, res *Result) {
	for _, row := range res.Rows {
		for i, o := range q.Outputs {
			if o.Aggregate < 0 || i >= len(row) || row[i].DP == nil {
				continue
			}
			s := p.Worker.Aggregates[o.Aggregate]
			if s.Kind != dp.Quantiles && s.Kind != dp.Mean {
				continue
			}
			tol := (s.Upper - s.Lower) * atBoundTolerance
			if s.Kind == dp.Quantiles && o.Rank < len(s.Ranks) && (s.Ranks[o.Rank] >= 0.99 || s.Ranks[o.Rank] <= 0.01) {
				tol = (s.Upper - s.Lower) * extremeTolerance
			}
			switch v := row[i].DP.Value; {
			case v >= s.Upper-tol:
				row[i].AtClampBound = "upper"
			case v <= s.Lower+tol:
				row[i].AtClampBound = "lower"
			}
		}
	}
}

// tuningMechanisms are the automatic steps' noise additions, for the mechanism records (and
// so the accountant): the contribution histograms and the bounding-cost counts.
func tuningMechanisms(p *plan.Planned) []mechanismRecord {
	var out []mechanismRecord
	if a := p.Auto; a != nil {
		s := dp.Spec{Kind: dp.CountDistinct, Epsilon: a.Epsilon, MaxPartitions: 2, MaxPerPartition: 1}
		out = append(out, mechanismRecord{Aggregate: "contribution_histograms (choose_bounds)", Kind: s.Kind, Mechanism: s.Mechanism(),
			Epsilon: s.Epsilon, Components: s.Components()})
	}
	if p.Clamp != nil {
		if cw, err := p.ClampPlan(); err == nil {
			r := mechanismRecord{Aggregate: "clamping_bounds_quantiles (choose_bounds)", Kind: dp.Quantiles, Mechanism: "laplace"}
			for _, s := range cw.Aggregates {
				r.Epsilon += s.Epsilon
				r.Components = append(r.Components, s.Components()...)
			}
			if hws, err := p.ClampHistogramPlans(); err == nil {
				for _, hw := range hws {
					r.Epsilon += hw.Aggregates[0].Epsilon
					r.Components = append(r.Components, hw.Aggregates[0].Components()...)
				}
			}
			out = append(out, r)
		}
	}
	if bs := p.Worker.Bias; bs != nil {
		r := mechanismRecord{Aggregate: "bias_estimate", Kind: dp.CountDistinct, Mechanism: bs.Count.Mechanism()}
		for _, s := range append([]dp.Spec{bs.Count, bs.Count, bs.DroppedFraction}, bs.Clamped...) {
			r.Epsilon += s.Epsilon
			r.Components = append(r.Components, s.Components()...)
		}
		out = append(out, r)
	}
	return out
}

// replayChooseBounds re-runs the recorded contribution histograms and compares the keyed
// digest of their pre-noise bins; the execution then re-runs at the recorded chosen bounds
// (readJobRecords applies them to the recorded plan).
func replayChooseBounds(ctx context.Context, e *Engine, rs *replayState) {
	r := rs.r
	switch {
	case r.profile == nil && r.clampPlan == nil && len(r.clampHistograms) == 0:
		return // the job chose no bounds (or older logs): nothing to say
	case !rs.dataOK:
		rs.add("choose_bounds", api.ReplayNotRun, "not re-run: the data it read is not the data recorded")
		return
	}
	w, err := e.worker(ctx, r.domain(e))
	if err != nil {
		rs.add("choose_bounds", api.ReplayMismatch, "the worker could not start: %s", errcode.Public(err).Message)
		return
	}
	var done []string
	if r.clampPlan != nil || len(r.clampHistograms) > 0 {
		var pre []byte
		if r.clampPlan != nil {
			cw := *r.clampPlan
			cw.Job = "replay-" + rs.job
			parts, err := w.Execute(ctx, &cw)
			if err != nil {
				rs.add("choose_bounds", api.ReplayMismatch, "re-running the clamping-bounds quantiles failed: %s", errcode.Public(err).Message)
				return
			}
			if pre, err = preNoiseBytes(&plan.Planned{Worker: cw}, parts); err != nil {
				rs.add("choose_bounds", api.ReplayMismatch, "the re-run returned quantile states that do not match the plan")
				return
			}
		}
		for _, hw := range r.clampHistograms {
			hw.Job = "replay-" + rs.job
			parts, err := w.Execute(ctx, &hw)
			if err != nil {
				rs.add("choose_bounds", api.ReplayMismatch, "re-running the clamping-bounds histograms failed: %s", errcode.Public(err).Message)
				return
			}
			if len(hw.Aggregates) != 1 || len(hw.Domains) != 1 {
				rs.add("choose_bounds", api.ReplayMismatch, "the recorded clamping-bounds histogram is malformed")
				return
			}
			histPre, err := profilePreNoise(oneSpec(hw.Aggregates[0]), hw.Domains[0], parts)
			if err != nil {
				rs.add("choose_bounds", api.ReplayMismatch, "the re-run returned histogram states that do not match the plan")
				return
			}
			pre = append(pre, histPre...)
		}
		if got := e.auditKey.Digest(pre); got != r.clampDigest {
			rs.add("choose_bounds", api.ReplayMismatch, "the pre-noise quantile trees and histograms differ from the recorded ones (keyed digest %s, recorded %s)", got, r.clampDigest)
			return
		}
		done = append(done, fmt.Sprintf("the clamping-bounds quantiles (bounds %v)", r.clamps.Chosen))
	}
	if r.profile != nil {
		pw := *r.profile
		pw.Job = "replay-" + rs.job
		parts, err := w.Profile(ctx, &pw)
		if err != nil {
			rs.add("choose_bounds", api.ReplayMismatch, "re-running the contribution histograms failed: %s", errcode.Public(err).Message)
			return
		}
		pre, err := profilePreNoise(pw.Profile.SpecFor, plan.ProfileBinNames(pw.Profile), parts)
		if err != nil {
			rs.add("choose_bounds", api.ReplayMismatch, "the re-run returned histograms that do not match the plan")
			return
		}
		if got := e.auditKey.Digest(pre); got != r.profileDigest {
			rs.add("choose_bounds", api.ReplayMismatch, "the pre-noise histograms differ from the recorded ones (keyed digest %s, recorded %s)", got, r.profileDigest)
			return
		}
		done = append(done, fmt.Sprintf("the contribution histograms (bounds %s)", r.chosen))
	}
	rs.add("choose_bounds", api.ReplayMatch, "the keyed digests of %s are the recorded ones; execution re-runs at the recorded bounds", strings.Join(done, " and "))
}

// domain is the data domain of the job's datasets.
func (r *jobRecords) domain(e *Engine) string {
	for name := range r.snapshots {
		if d, ok := e.Dataset(name); ok {
			return d.Spec.Domain
		}
	}
	return ""
}
