package engine

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/c1b99f93/cleanroom/dp"
	"github.com/c1b99f93/cleanroom/engine/gate"
	"github.com/c1b99f93/cleanroom/engine/plan"
	"github.com/c1b99f93/cleanroom/engine/provenance"
	"github.com/c1b99f93/cleanroom/errcode"
	"github.com/c1b99f93/cleanroom/policy"
	"github.com/c1b99f93/cleanroom/policy/screen"
	"github.com/c1b99f93/cleanroom/sandbox/wire"
	"github.com/c1b99f93/cleanroom/server/api"
)

// Job is an applicant's SQL job within a grant.
type Job struct {
	// ID names the job in provenance and the ledger; empty means a fresh random one.
	ID        string
	Principal policy.Principal
	Grant     string
	// Terms, when not nil, are the grant's: a job reading a dataset it does not list (public
	// lookup tables aside) is refused with forbidden before it runs, and the policies see them.
	Terms *policy.Grant
	// Kind is the job kind: "" or KindSQL runs SQL, KindVerify runs Verify, KindFederated runs
	// SQL over each of Federated's datasets under a collective key.
	Kind    string
	SQL     string
	Options plan.Options
	// Verify is a verification job's claims.
	Verify *api.VerifyRequest
	// Federated names a federated job's datasets (kind KindFederated), one per data domain.
	Federated *api.FederatedRequest
	// Model is a model job's model (kind KindModel); its SQL is Model.SQL.
	Model *api.ModelRequest
	// Wasm is a custom model job's request (kind KindWasm), its module by digest; its SQL is
	// Wasm.SQL.
	Wasm *api.WasmRequest
}

// Outcome is what a job that ran came to: a released result, or a computed result held for
// reviewers (Held not nil), which must not be shown to the applicant until ReleaseHeld.
type Outcome struct {
	Result *Result
	// Verify is a released verification's answer (kind verify; Result is then nil).
	Verify *api.VerifyResult
	// Model is a released model (kind model; Result is then nil).
	Model *api.ModelResult
	// Wasm is a released custom model's output (kind wasm; Result is then nil).
	Wasm *api.WasmResult
	// Receipt is the signed release receipt (see ReceiptBody); nil when held.
	Receipt []byte
	Held    *Hold
	// Datasets are the datasets the job read.
	Datasets []string
	// Repeat is set when an identical earlier release answered the job and nothing it did took
	// a time that depends on the data (it read no rows, and the raw-value sets it screened with
	// were already in memory): how long it took says nothing about the data.
	Repeat bool
}

// Hold says why a computed result waits for reviewers and how many must approve it.
type Hold struct {
	// Kind is KindModel when the held output is an api.ModelResult; otherwise ("") a Result.
	Kind         string   `json:"kind,omitempty"`
	Grant        string   `json:"grant"`
	Reviewers    int      `json:"reviewers"`
	Reasons      []string `json:"reasons"`
	OutputDigest string   `json:"output_digest"`
}

// Result is a released result: noisy cells with their mechanism, budget and 95% interval.
type Result struct {
	// Result is the released document; it is all that Result encodes to JSON.
	api.Result

	// units is each row's noisy count of privacy units (nil when nothing is suppressed). It
	// stays with its row through suppression and ORDER BY, and is never released.
	units []float64
	// probes are the noisy counts of the differencing checks, for the output screen.
	probes []screen.DifferenceProbe
}

// Submit runs a job through the pipeline and returns its released result, or an *errcode.Error
// whose message is safe to show to the applicant. A result the egress policy holds for review
// is not returned: the error is held_for_review (Run returns it for the governance layer).
func (e *Engine) Submit(ctx context.Context, j Job) (*Result, error) {
	out, err := e.Run(ctx, j)
	if err != nil {
		return nil, err
	}
	if out.Held != nil {
		return nil, errcode.New(errcode.HeldForReview, "the output was withheld by egress review: %s", strings.Join(out.Held.Reasons, "; "))
	}
	return out.Result, nil
}

// Run runs a SQL job through its stages (sqlStages). It returns the released result, or the
// computed result held for review, or an *errcode.Error whose message is safe to show to the
// applicant.
func (e *Engine) Run(ctx context.Context, j Job) (*Outcome, error) {
	id := j.ID
	if id == "" {
		id = newJobID()
	}
	switch j.Kind {
	case KindVerify:
		return e.runVerify(ctx, id, j)
	case KindFederated:
		return e.runFederated(ctx, id, j)
	case KindModel:
		return e.runModel(ctx, id, j)
	case KindWasm:
		return e.runWasm(ctx, id, j)
	}
	s := &jobState{id: id, job: j, opts: e.options(ctx, j)}
	if err := e.runStages(ctx, sqlStages(), s); err != nil {
		return nil, err
	}
	return &Outcome{Result: s.res, Receipt: s.receipt, Held: s.held, Datasets: s.ds.names(), Repeat: s.timingFree()}, nil
}

// options are the job's privacy parameters with defaults filled — an unset delta is a share of
// its grant's total delta (plan.DefaultsFor), below the policy's per-job limit, stable for the
// grant's life so that a repeated query keeps its fingerprint — and the policy's minimum of units per group applied (an
// applicant may ask for a higher one, never a lower one).
func (e *Engine) options(ctx context.Context, j Job) plan.Options {
	var grantDelta float64
	if total, err := e.ledger.Total(ctx, GrantAccount(j.Grant)); err == nil {
		grantDelta = total.Delta
	}
	opts := j.Options.DefaultsFor(grantDelta)
	if limit := e.policy.Params().MaxDeltaPerJob; !j.Options.DeltaSet && j.Options.Delta == 0 && limit > 0 && opts.Delta >= limit {
		// A default the policy would refuse is no default: half the policy's limit instead.
		opts.Delta = limit / 2
	}
	if opts.MaxGroupsContributed == 0 || opts.MaxContributionsPerGroup == 0 {
		opts.Auto = e.autoMax() // unset bounds are chosen under DP within the operator's maxima
	}
	if opts.MinUnitsPerGroup >= 0 { // a negative one stays, for Validate to refuse
		opts.MinUnitsPerGroup = max(opts.MinUnitsPerGroup, e.policy.Params().MinUnitsPerGroup)
	}
	return opts
}

// decisionRecord is a policy decision with the input it was made on, so that a candidate
// bundle can be evaluated against past jobs (policy what-if). Inputs hold names and
// parameters, never data values.
func decisionRecord(d policy.Decision, input any) provenance.PolicyDecision {
	return provenance.PolicyDecision{Result: d.Result, Reasons: d.Reasons, Reviewers: d.Reviewers,
		BundleDigest: d.BundleDigest, Input: provenance.DocOf(input)}
}

func ptr[T any](v T) *T { return &v }

// outputDigest names a result's exact content — the digest in the hold, the release record
// and the receipt — and gives its size in bytes as released.
func outputDigest(res *Result) (size int, digest string, err error) {
	out, err := provenance.Canonical(res)
	if err != nil {
		return 0, "", errcode.Wrap(errcode.Internal, err, "the result could not be encoded; nothing is released")
	}
	sum := sha256.Sum256(out)
	return len(out), "sha256:" + hex.EncodeToString(sum[:]), nil
}

// recordRelease writes the release record, stamps the result with its log index, and returns
// the signed receipt of the release.
func (e *Engine) recordRelease(ctx context.Context, id, grant string, res *Result, digest string, data *provenance.Release, reviewers []string) ([]byte, error) {
	ent, err := e.record(ctx, id, data)
	if err != nil {
		return nil, err
	}
	res.LogIndex = ent.Index
	return e.receipt(ctx, grant, res, digest, reviewers)
}

// preNoiseBytes is what the execution record's keyed digest covers: every partition's key and
// the canonical form of its pre-noise states (dp.Spec.Canonical), so the digest names the
// computed aggregates, not one process's gob encoding of them.
func preNoiseBytes(p *plan.Planned, parts []wire.Partition) ([]byte, error) {
	var b []byte
	for _, pt := range parts {
		for _, k := range pt.Key {
			if k == nil {
				b = append(b, 0)
			} else {
				b = append(b, 1)
				b = append(b, *k...)
			}
			b = append(b, 0xff)
		}
		if len(pt.States) != len(p.Worker.Aggregates) {
			return nil, fmt.Errorf("engine: the worker returned %d states for %d aggregates", len(pt.States), len(p.Worker.Aggregates))
		}
		for j, st := range pt.States {
			c, err := p.Worker.Aggregates[j].Canonical(st)
			if err != nil {
				return nil, err
			}
			b = append(b, c...)
			b = append(b, 0xfe)
		}
		if sel := p.Worker.Selection; sel != nil {
			c, err := sel.Canonical(pt.Selection)
			if err != nil {
				return nil, err
			}
			b = append(b, c...)
		}
		b = append(b, 0xfd)
	}
	return b, nil
}

// withhold removes the rows at the ascending indices rows (and their unit counts).
func withhold(res *Result, rows []int) {
	if len(rows) == 0 {
		return
	}
	keep := res.Rows[:0:0]
	var units []float64
	for i, r := range res.Rows {
		if len(rows) > 0 && rows[0] == i {
			rows = rows[1:]
			continue
		}
		keep = append(keep, r)
		if res.units != nil {
			units = append(units, res.units[i])
		}
	}
	res.Rows, res.units = keep, units
}

// postProcess applies ORDER BY, OFFSET and LIMIT to released rows: it reads only noisy values
// and public keys, so it costs no budget. Each row keeps its unit count.
func postProcess(q *gate.Query, res *Result) {
	order := make([]int, len(res.Rows))
	for i := range order {
		order[i] = i
	}
	if len(q.Order) > 0 {
		sort.SliceStable(order, func(i, j int) bool {
			for _, o := range q.Order {
				c := compareCells(res.Rows[order[i]][o.Output], res.Rows[order[j]][o.Output])
				if c == 0 {
					continue
				}
				if o.Descending {
					return c > 0
				}
				return c < 0
			}
			return false
		})
	}
	lo, hi := min(int64(len(order)), max(q.Offset, 0)), int64(len(order))
	if q.Limit >= 0 {
		hi = min(hi, lo+q.Limit)
	}
	order = order[lo:hi]
	rows := make([][]api.Cell, len(order))
	var units []float64
	if res.units != nil {
		units = make([]float64, len(order))
	}
	for i, o := range order {
		rows[i] = res.Rows[o]
		if units != nil {
			units[i] = res.units[o]
		}
	}
	res.Rows, res.units = rows, units
}

// compareCells orders NULL keys and NULL derived values first, released and derived values by
// value, keys as numbers when both parse as numbers, else as text.
func compareCells(a, b api.Cell) int {
	value := func(c api.Cell) (float64, bool) {
		switch {
		case c.DP != nil:
			return c.DP.Value, true
		case c.Derived != nil && c.Derived.Value != nil:
			return *c.Derived.Value, true
		}
		return 0, false
	}
	x, okX := value(a)
	y, okY := value(b)
	switch {
	case okX && okY:
		return cmp.Compare(x, y)
	case a.Derived != nil || b.Derived != nil:
		return cmp.Compare(btoi(okX), btoi(okY)) // NULL first
	}
	switch {
	case a.Key == nil && b.Key == nil:
		return 0
	case a.Key == nil:
		return -1
	case b.Key == nil:
		return 1
	}
	kx, errX := strconv.ParseFloat(*a.Key, 64)
	ky, errY := strconv.ParseFloat(*b.Key, 64)
	if errX == nil && errY == nil {
		return cmp.Compare(kx, ky)
	}
	return strings.Compare(*a.Key, *b.Key)
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// mechanismRecord is one aggregate's mechanism as recorded in provenance and with the budget
// debit: its elementary noise additions are what a tighter accountant composes.
type mechanismRecord struct {
	Aggregate  string         `json:"aggregate"`
	Kind       dp.Kind        `json:"kind,omitempty"`
	Mechanism  string         `json:"mechanism"`
	Epsilon    float64        `json:"epsilon"`
	Delta      float64        `json:"delta"`
	Components []dp.Component `json:"components"`
}

func mechanisms(p *plan.Planned) []mechanismRecord {
	var out []mechanismRecord
	for i, s := range p.Worker.Aggregates {
		out = append(out, mechanismRecord{Aggregate: aggregateName(p, i), Kind: s.Kind, Mechanism: s.Mechanism(),
			Epsilon: s.Epsilon, Delta: s.Delta, Components: s.Components()})
	}
	for _, pr := range p.Probes {
		s := pr.Worker.Aggregates[0]
		out = append(out, mechanismRecord{Aggregate: "differencing_check against " + strings.Join(pr.Jobs(), ", "), Kind: s.Kind, Mechanism: s.Mechanism(),
			Epsilon: s.Epsilon, Delta: s.Delta, Components: s.Components()})
	}
	out = append(out, tuningMechanisms(p)...)
	if sel := p.Worker.Selection; sel != nil {
		out = append(out, mechanismRecord{Aggregate: "partition_selection", Mechanism: "preagg_select_partition",
			Epsilon: sel.Epsilon, Delta: sel.Delta, Components: []dp.Component{{Name: "selection", Mechanism: "preagg_select_partition",
				Epsilon: sel.Epsilon, Delta: sel.Delta, L0: sel.MaxPartitions, LInf: 1}}})
	}
	return out
}

// aggregateName names the plan's i-th aggregate: the query's name, or the hidden unit count's.
func aggregateName(p *plan.Planned, i int) string {
	if i < len(p.Query.Aggregates) {
		return p.Query.Aggregates[i].Name
	}
	return hiddenUnitCount
}

// hiddenUnitCount names the unit count a plan adds for small-group suppression.
const hiddenUnitCount = "units_per_group (hidden)"

// resultColumns are the released columns of a query's outputs. A MIN or MAX says what it is:
// DP cannot release the single extreme value, only a quantile at rank 0 or 1 of a noisy tree
// within the clamping bounds, which lands among the extreme values that many units share.
func resultColumns(q *gate.Query, p *plan.Planned) []api.ResultCol {
	cols := make([]api.ResultCol, 0, len(q.Outputs))
	for _, o := range q.Outputs {
		c := api.ResultCol{Name: o.Name, Kind: "aggregate"}
		if o.Key >= 0 {
			c.Kind = "group_key"
		} else if a := q.Aggregates[o.Aggregate]; a.Kind == dp.Quantiles && o.Rank < len(a.Ranks) && (a.Ranks[o.Rank] == 0 || a.Ranks[o.Rank] == 1) {
			ext, side := "MAX", "largest"
			if a.Ranks[o.Rank] == 0 {
				ext, side = "MIN", "smallest"
			}
			lo, hi := p.Worker.Aggregates[o.Aggregate].Lower, p.Worker.Aggregates[o.Aggregate].Upper
			c.Note = fmt.Sprintf("%s under DP is a quantile at rank %g of a noisy tree over [%g, %g]: it estimates a value among the %s that many units share, never the single %s value, which may lie far beyond it or beyond the bound",
				ext, a.Ranks[o.Rank], lo, hi, side, side)
		}
		cols = append(cols, c)
	}
	return cols
}

// release applies the mechanisms: partition selection (or the public domain), then noise.
// With small-group suppression, each row's noisy unit count goes with it (Result.units).
func release(q *gate.Query, p *plan.Planned, parts []wire.Partition) (*Result, error) {
	res := &Result{Result: api.Result{Rows: [][]api.Cell{}, Columns: resultColumns(q, p)}}
	type row struct {
		key    []*string
		states [][]byte
	}
	var rows []row
	if p.Public {
		byKey := map[string]wire.Partition{}
		for _, pt := range parts {
			byKey[wire.KeyString(pt.Key)] = pt
		}
		for _, key := range crossProduct(p.Domains) {
			pt := byKey[wire.KeyString(key)]
			rows = append(rows, row{key: key, states: pt.States})
		}
	} else {
		for _, pt := range parts {
			keep, err := p.Worker.Selection.Keep(pt.Selection)
			if err != nil {
				return nil, err
			}
			if keep {
				rows = append(rows, row{key: pt.Key, states: pt.States})
			}
		}
		// The worker's partition order follows the data; release in key order instead.
		sort.Slice(rows, func(i, j int) bool { return wire.KeyString(rows[i].key) < wire.KeyString(rows[j].key) })
	}
	// One maker per aggregate for every row: the spec is checked once, not once per row.
	makers := make([]*dp.Maker, len(p.Worker.Aggregates))
	for j, spec := range p.Worker.Aggregates {
		var err error
		if makers[j], err = spec.NewMaker(0); err != nil {
			return nil, err
		}
	}
	for _, r := range rows {
		// Each aggregate is released once per row; its outputs (several quantiles) share it.
		released := make([][]dp.Released, len(p.Worker.Aggregates))
		for j, m := range makers {
			var st []byte
			if r.states != nil {
				st = r.states[j]
			}
			rel, err := m.Release(st)
			if err != nil {
				return nil, err
			}
			released[j] = rel
		}
		cells := make([]api.Cell, len(q.Outputs))
		for i, o := range q.Outputs {
			if o.Key >= 0 {
				cells[i] = api.Cell{Key: r.key[o.Key]}
				continue
			}
			rel := api.Released(released[o.Aggregate][o.Rank])
			cells[i] = api.Cell{DP: &rel}
		}
		res.Rows = append(res.Rows, cells)
		if p.UnitCount >= 0 {
			res.units = append(res.units, released[p.UnitCount][0].Value)
		}
	}
	if p.UnitCount >= 0 && res.units == nil {
		res.units = []float64{}
	}
	return res, nil
}

func crossProduct(domains [][]string) [][]*string {
	out := [][]*string{{}}
	for _, d := range domains {
		var next [][]*string
		for _, prefix := range out {
			for _, v := range d {
				v := v
				k := append(append([]*string{}, prefix...), &v)
				next = append(next, k)
			}
		}
		out = next
	}
	return out
}

// usageOf returns want when the query records that use of the column, else other.
func usageOf(q *gate.Query, c gate.ColumnRef, want, other gate.Usage) gate.Usage {
	for _, u := range q.Uses {
		if u.Dataset == c.Dataset && u.Column == c.Column && u.Usage == want {
			return want
		}
	}
	return other
}

// columnUse is a catalog column's use as the policies see it.
func (s sources) columnUse(c gate.ColumnRef, usage string) policy.ColumnUse {
	spec := s.spec(c.Dataset)
	return policy.ColumnUse{Dataset: c.Dataset, Column: c.Column, Tags: tags(spec.Columns[c.Column]), Usage: usage,
		PrivacyUnit: !spec.Public && c.Column == spec.PrivacyUnit}
}

// outputSummary describes the result's lineage for the egress policy, from the plan (not from
// column names). The caller fills in Bytes.
func outputSummary(ds sources, q *gate.Query, p *plan.Planned, res *Result) policy.Output {
	out := policy.Output{Rows: len(res.Rows), Cells: len(res.Rows) * len(q.Outputs)}
	for _, o := range q.Outputs {
		if o.Key >= 0 {
			oc := policy.OutputColumn{Name: o.Name, Kind: policy.KindGroupKey, DerivedFrom: []policy.ColumnUse{}}
			for _, c := range q.Keys[o.Key].Columns {
				oc.DerivedFrom = append(oc.DerivedFrom, ds.columnUse(c, policy.UsageGroupKey))
			}
			out.Columns = append(out.Columns, oc)
			continue
		}
		a := q.Aggregates[o.Aggregate]
		oc := policy.OutputColumn{Name: o.Name, Kind: policy.KindAggregate, Aggregate: string(a.Kind), DerivedFrom: []policy.ColumnUse{}}
		for _, c := range a.From {
			usage := policy.UsageAggregate
			switch {
			case a.Kind == dp.CountDistinct:
				usage = policy.UsageCountDistinctUnit
			case a.Kind == dp.Count:
				usage = string(usageOf(q, c, gate.UseCountRows, gate.UseAggregate))
			}
			oc.DerivedFrom = append(oc.DerivedFrom, ds.columnUse(c, usage))
		}
		out.Columns = append(out.Columns, oc)
	}
	seen := map[string]bool{}
	for _, s := range p.Worker.Aggregates {
		if !seen[s.Mechanism()] {
			seen[s.Mechanism()] = true
			out.Mechanisms = append(out.Mechanisms, s.Mechanism())
		}
	}
	if p.Worker.Selection != nil {
		out.Mechanisms = append(out.Mechanisms, "preagg_select_partition")
	}
	return out
}

// accessInput is the access policy's input for a job.
func accessInput(j Job, ds sources, q *gate.Query, p *plan.Planned, opts plan.Options) policy.AccessInput {
	var uses []policy.ColumnUse
	for _, u := range q.Uses {
		uses = append(uses, ds.columnUse(gate.ColumnRef{Dataset: u.Dataset, Column: u.Column}, string(u.Usage)))
	}
	return policy.AccessInput{Principal: j.Principal, Action: policy.ActionSubmitJob, Datasets: ds.refs(), Columns: uses, Grant: j.Terms, Job: policy.JobParams{Kind: "sql", Epsilon: opts.Epsilon, Delta: opts.Delta,
		// The plan's bounds: the job's, or for automatic bounds the most the choice may pick.
		MaxGroupsContributed: int(p.Worker.Bounds.MaxGroupsContributed), MaxContributionsPerGroup: int(p.Worker.Bounds.MaxContributionsPerGroup), PublicPartitions: p.Public}}
}
