package engine

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/c1b99f93/cleanroom/catalog"
	"github.com/c1b99f93/cleanroom/dp"
	"github.com/c1b99f93/cleanroom/engine/gate"
	"github.com/c1b99f93/cleanroom/engine/plan"
	"github.com/c1b99f93/cleanroom/engine/provenance"
	"github.com/c1b99f93/cleanroom/errcode"
	"github.com/c1b99f93/cleanroom/he/collective"
	"github.com/c1b99f93/cleanroom/policy"
	"github.com/c1b99f93/cleanroom/sandbox"
	"github.com/c1b99f93/cleanroom/sandbox/wire"
	"github.com/c1b99f93/cleanroom/server/api"
)

// KindFederated is the kind of a federated DP SQL job: one statistic over the union of
// datasets held in different data domains, computed under a collective key (he/collective) so
// that no party — the platform included — sees another domain's aggregate. Each domain is a
// sandbox worker of this engine: it bounds and reads its own aggregates, adds its share of the
// Gaussian noise and encrypts them; the engine (the aggregator) adds ciphertexts it cannot
// read; the domains key-switch the sum to a fresh receiver key the engine holds; the engine
// opens the noisy totals and releases them as a DP result (docs/he-collective.md, "On the
// platform").
const KindFederated = api.KindFederated

// aggregatorName is the platform's name in the collective directory (no domain may take it).
const aggregatorName = "cleanroom-aggregator"

// federatedMechanism names the released cells' mechanism.
const federatedMechanism = "distributed_gaussian"

// federatedRoundTimeout bounds each domain's answer to one round; a domain slower than it is
// unavailable and the job fails. A variable only for tests.
const federatedRoundTimeout = 2 * time.Minute

// tamperFunc, when an engine has one (Engine.fedTamper, set by tests only), may alter a
// message a domain's worker returned before the aggregator reads it: the seam through which
// tests inject malformed and mis-signed messages.
type tamperFunc func(domain string, round collective.Round, msg []byte) []byte

// federatedState is what a federated job's stages read and write.
type federatedState struct {
	req     *api.FederatedRequest
	opts    plan.Options
	members []*fedMember // one per dataset, in request order
	// tamperWith is the engine's test seam (tamperFunc); nil in production.
	tamperWith tamperFunc
	names      []string    // the domains, sorted
	parts      [][]*string // the public partitions in slot order
	aggs       []fedAggregate
	ceremony   string

	dir      collective.Directory
	agg      *collective.Aggregator
	keyID    [32]byte
	receiver *collective.Receiver
	jobs     []collective.Job
	inboxes  []collective.MemoryInbox
	sums     []*collective.Message
	results  []*collective.Message
	totals   [][]int64 // per aggregate, per partition: noisy
}

// fedMember is one dataset of a federated job and its domain's worker.
type fedMember struct {
	d *Dataset
	q *gate.Query
	p *plan.Planned
	w *sandbox.Client
}

// fedAggregate is one released aggregate: its sensitivity over the union and noise shares.
type fedAggregate struct {
	Name   string           `json:"name"`
	Kind   dp.Kind          `json:"kind"`
	L0     int64            `json:"l0"`
	ByDom  map[string]int64 `json:"linf_by_domain"`
	LInf   int64            `json:"linf"`
	Budget plan.Cost        `json:"budget"`
	Noise  collective.ShareNoise
}

// federatedStages is the federated job's pipeline. The package doc and docs/architecture.md
// list it (TestStagesAreDocumented).
func federatedStages() []stage {
	return []stage{
		{name: "submit", dryRun: true, run: federatedSubmitStage, records: events(&provenance.JobSubmitted{}),
			doc: "record the job, its datasets and options"},
		{name: "gate", dryRun: true, run: federatedGateStage, records: events(&provenance.Gate{}),
			doc: "admit the SQL against each dataset in turn (one per domain, all within the grant): public partitions identical across them, COUNT and SUM of integer columns only"},
		{name: "plan", dryRun: true, run: federatedPlanStage, records: events(&provenance.FederatedPlan{}),
			doc: "bound contributions per dataset; per aggregate, the noise for the sum of the domains' bounds, split into one Gaussian share per domain"},
		{name: "policy_access", dryRun: true, run: federatedAccessStage, records: events(&provenance.PolicyAccess{}), replay: replayAccess,
			doc: "ask the access policy (kind federated_sql, every dataset's columns); an L4 dataset is never operated"},
		{name: "fingerprint", run: federatedFingerprintStage,
			doc: "name the output by the grant, the datasets' snapshots and the bounded plans; serialise identical federated queries"},
		{name: "decision_recall", run: decisionRecallStage, records: events(&provenance.DecisionRecalled{}),
			doc: "a held, rejected or denied earlier output of the same federated query answers this one at once, at no cost"},
		{name: "release_recall", run: releaseRecallStage, records: events(&provenance.AnsweredFromRelease{}),
			doc: "an earlier release of the same federated query answers it again, reviewed again, at no cost and with no new noise"},
		{name: "reserve", reaches: phaseReserved, skip: (*jobState).isRepeat, run: federatedReserveStage, records: events(&provenance.BudgetReserved{}),
			doc: "reserve the cost on the grant and on every domain's dataset"},
		{name: "workers", skip: (*jobState).isRepeat, run: federatedWorkersStage, records: events(&provenance.CollectiveKey{}),
			doc: "start each domain's worker, check its signing key against the pinned one; make the collective key for this set of domains on first use"},
		{name: "inputs", enters: phaseReading, skip: (*jobState).isRepeat, run: federatedInputsStage, records: events(&provenance.FederatedInputs{}),
			doc: "each domain's worker bounds its aggregates, adds its noise share and encrypts them under the collective key: signed ciphertexts, never a value"},
		{name: "aggregate", skip: (*jobState).isRepeat, run: federatedAggregateStage, records: events(&provenance.FederatedSum{}),
			doc: "verify every input and add the ciphertexts"},
		{name: "key_switch", skip: (*jobState).isRepeat, run: federatedKeySwitchStage, records: events(&provenance.FederatedKeySwitch{}),
			doc: "each domain verifies the sum against every signed input, its own unchanged, and key-switches it to the job's receiver key"},
		{name: "open", skip: (*jobState).isRepeat, run: federatedOpenStage, records: events(&provenance.FederatedOpened{}),
			doc: "the platform, as receiver, verifies every share and decrypts the noisy totals only"},
		{name: "debit", reaches: phaseDebited, skip: (*jobState).isRepeat, run: federatedDebitStage, records: events(&provenance.BudgetDebited{}),
			doc: "make the debit final on the grant and every dataset"},
		{name: "result", skip: (*jobState).isRepeat, run: federatedResultStage,
			doc: "every public partition with each aggregate's noisy total and the interval that holds the pre-noise total with 95% probability"},
		{name: "screen", run: screenStage, records: events(&provenance.Reviewer{}),
			doc: "the output screen over every row, as for a SQL job: raw values of every domain's dataset, then post-processing (ORDER BY, LIMIT)"},
		{name: "egress_policy", run: egressStage, records: events(&provenance.PolicyEgress{}), replay: replayEgress,
			doc: "ask the egress policy: allow, review or deny"},
		{name: "hold", skip: func(s *jobState) bool { return s.egress.Result != policy.ResultReview }, run: holdStage, records: events(&provenance.Held{}, &provenance.OutputDecision{}),
			doc: "review: hold the output for reviewers (charged; a repeat gets the same hold)"},
		{name: "deny", skip: func(s *jobState) bool {
			return s.egress.Result == policy.ResultAllow || s.egress.Result == policy.ResultReview
		}, run: denyStage, records: events(&provenance.OutputDecision{}),
			doc: "deny: record the denial as the output's decision (charged)"},
		{name: "store_decision", skip: func(s *jobState) bool { return s.egress.Result == policy.ResultAllow || !s.evaluated }, run: storeDecisionStage,
			doc: "store the hold or denial under the output's lock; fail closed"},
		{name: "release", skip: (*jobState).isHeld, run: releaseStage, records: events(&provenance.Release{}), replay: replayRelease,
			doc: "release the noisy totals with their intervals; record the output digest"},
		{name: "receipt", skip: (*jobState).isHeld, run: receiptStage,
			doc: "sign the release receipt"},
		{name: "remember", skip: (*jobState).isRepeat, run: rememberStage, records: events(&provenance.ReleaseNotStored{}),
			doc: "keep the noisy rows (released or held) for repeats of the same federated query"},
	}
}

// runFederated runs a federated job through its stages.
func (e *Engine) runFederated(ctx context.Context, id string, j Job) (*Outcome, error) {
	if j.Federated == nil {
		return nil, errcode.New(errcode.InvalidRequest, "a federated job names its datasets (federated.datasets)")
	}
	s := &jobState{id: id, job: j, fed: &federatedState{req: j.Federated, tamperWith: e.fedTamper}}
	if err := e.runStages(ctx, federatedStages(), s); err != nil {
		return nil, err
	}
	return &Outcome{Result: s.res, Receipt: s.receipt, Held: s.held, Datasets: s.ds.names(), Repeat: s.timingFree()}, nil
}

func federatedSubmitStage(_ context.Context, e *Engine, s *jobState) ([]provenance.Event, error) {
	opts := s.job.Options
	return events(&provenance.JobSubmitted{Kind: KindFederated, Principal: provenance.Principal(s.job.Principal), Grant: s.job.Grant, SQL: s.job.SQL,
		Options: provenance.DocOf(map[string]any{"datasets": s.fed.req.Datasets, "options": opts})}), nil
}

// renamed is the gate's catalog for one dataset of a federated job: the SQL's table (the first
// dataset's name) resolves to this dataset, and nothing else resolves, so the same SQL is
// planned against each dataset in turn and can read nothing more.
type renamed struct {
	table string
	spec  *catalog.Spec
}

func (r renamed) Lookup(name string) (*catalog.Spec, bool) {
	if name == r.table {
		return r.spec, true
	}
	return nil, false
}

var _ gate.Catalog = renamed{}

func unsupported(format string, args ...any) error {
	return errcode.New(errcode.FederatedUnsupported, format, args...)
}

// federatedGateStage resolves the datasets and admits the SQL against each. Everything the
// protocol cannot carry is refused here, before anything is reserved.
func federatedGateStage(ctx context.Context, e *Engine, s *jobState) ([]provenance.Event, error) {
	f := s.fed
	names := f.req.Datasets
	if len(names) < 2 || len(names) > collective.MaxParties {
		return nil, unsupported("a federated job reads 2 to %d datasets, one per data domain", collective.MaxParties)
	}
	domains := map[string]string{}
	for _, n := range names {
		d, ok := e.Dataset(n)
		if !ok {
			return nil, errcode.New(errcode.UnknownDataset, "no dataset named %q is registered", n)
		}
		if d.Spec.Public {
			return nil, unsupported("%s is a public lookup table, with no persons to count", n)
		}
		if prev, dup := domains[d.Spec.Domain]; dup {
			return nil, unsupported("%s and %s are both in data domain %s: a federated job reads one dataset per domain (within a domain, join them in a SQL job)", prev, n, d.Spec.Domain)
		}
		if d.Spec.Domain == aggregatorName {
			return nil, unsupported("data domain %s takes the aggregator's name", d.Spec.Domain)
		}
		domains[d.Spec.Domain] = n
		s.ds = append(s.ds, d)
	}
	if err := s.ds.within(s.job.Grant, s.job.Terms); err != nil {
		return nil, err
	}
	for _, d := range s.ds {
		q, err := gate.Admit(ctx, e.parser, renamed{table: names[0], spec: d.Spec}, s.job.SQL)
		if err != nil {
			if errcode.Of(err) == errcode.UnknownDataset {
				return nil, errcode.Wrap(errcode.FederatedUnsupported, err, "a federated query reads exactly one table, named as the first dataset (%s); it is run unchanged against each dataset", names[0])
			}
			return nil, err
		}
		if err := federatedShape(q, d); err != nil {
			return nil, err
		}
		if err := checkPartitions(q, e.policy.Params()); err != nil {
			return nil, err
		}
		f.members = append(f.members, &fedMember{d: d, q: q})
		f.names = append(f.names, d.Spec.Domain)
	}
	slices.Sort(f.names)
	first := f.members[0].q
	for _, m := range f.members[1:] {
		if err := sameShape(first, m.q); err != nil {
			return nil, errcode.New(errcode.FederatedUnsupported, "the query over %s %s than over %s; the datasets must share the SQL's columns with the same public domains", m.d.Spec.Name, err, names[0])
		}
	}
	return events(&provenance.Gate{Admitted: true, Dataset: names[0], Snapshots: s.ds.snapshots()}), nil
}

// federatedShape refuses what the protocol does not carry: a join or per-unit subquery, a key
// without a public domain, an aggregate other than COUNT and SUM of an integer column with
// integer bounds.
func federatedShape(q *gate.Query, d *Dataset) error {
	if q.Relation != nil || len(q.Sources) != 1 {
		return unsupported("a federated query reads one dataset, without joins or per-unit subqueries")
	}
	for _, k := range q.Keys {
		if len(k.Domain) == 0 {
			return unsupported("group key %s has no public domain: every domain's partitions must be the same public list (a catalog column with a domain, width_bucket, date_trunc of a column with a date_range, or a CASE of literals)", k.Name)
		}
	}
	if len(q.Aggregates) == 0 {
		return unsupported("a federated query releases at least one aggregate")
	}
	for _, a := range q.Aggregates {
		switch a.Kind {
		case dp.Count:
		case dp.Sum:
			if a.Value == nil || a.Value.Kind != wire.KindColumn || !integerColumn(d, a.Value.Name) {
				return unsupported("%s: SUM is federated over an integer column only (the domains encrypt integers)", a.Name)
			}
			if len(a.Bounds) != 2 || a.Bounds[0] != math.Trunc(a.Bounds[0]) || a.Bounds[1] != math.Trunc(a.Bounds[1]) {
				return unsupported("%s: the column's catalog bounds must be integers", a.Name)
			}
		default:
			return unsupported("%s: only COUNT and SUM are federated (a %s is not a sum the domains can add)", a.Name, a.Kind)
		}
	}
	return nil
}

// integerColumn reports whether the snapshot stores the column as an integer type.
func integerColumn(d *Dataset, name string) bool {
	for _, c := range d.Snapshot.Columns {
		if c.Name == name {
			switch strings.ToUpper(c.Type) {
			case "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT", "HUGEINT", "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64":
				return true
			}
			return false
		}
	}
	return false
}

// sameShape says how two datasets' admitted queries differ, or nil when their outputs, keys
// (with their public domains) and aggregates line up slot for slot.
func sameShape(a, b *gate.Query) error {
	if len(a.Outputs) != len(b.Outputs) || len(a.Keys) != len(b.Keys) || len(a.Aggregates) != len(b.Aggregates) {
		return errors.New("has other outputs")
	}
	for i := range a.Keys {
		if !slices.Equal(a.Keys[i].Domain, b.Keys[i].Domain) {
			return fmt.Errorf("has another public domain for key %s", a.Keys[i].Name)
		}
	}
	for i := range a.Aggregates {
		if a.Aggregates[i].Kind != b.Aggregates[i].Kind {
			return fmt.Errorf("has another aggregate for %s", a.Aggregates[i].Name)
		}
	}
	return nil
}

// federatedOptions are the job's options with defaults: fixed contribution bounds (unset ones
// take plan's defaults; no automatic bounds, which would spend budget on each domain's data
// apart), no small-group suppression (every public partition is released), and a delta > 0,
// which the distributed Gaussian needs.
func (e *Engine) federatedOptions(ctx context.Context, j Job) (plan.Options, error) {
	var grantDelta float64
	if b, err := e.ledger.Balance(ctx, GrantAccount(j.Grant)); err == nil {
		grantDelta = b.Total.Delta
	}
	o := j.Options
	if o.DeltaSet && o.Delta == 0 {
		return o, errcode.New(errcode.InvalidOptions, "a federated job adds Gaussian noise shares, which need a delta > 0")
	}
	o = o.DefaultsFor(grantDelta)
	if limit := e.policy.Params().MaxDeltaPerJob; !j.Options.DeltaSet && limit > 0 && o.Delta >= limit {
		o.Delta = limit / 2
	}
	if o.MaxGroupsContributed == 0 {
		o.MaxGroupsContributed = plan.DefaultMaxGroups
	}
	if o.MaxContributionsPerGroup == 0 {
		o.MaxContributionsPerGroup = plan.DefaultMaxRows
	}
	o.Auto = nil
	if o.MinUnitsPerGroup >= 0 { // a negative one stays, for Validate to refuse
		o.MinUnitsPerGroup = max(o.MinUnitsPerGroup, e.policy.Params().MinUnitsPerGroup)
	}
	return o, o.Validate()
}

// federatedPlanStage plans the bounding pass per dataset and the noise per aggregate. A person
// may be in every domain: one unit changes at most L0 partitions of each domain's vector by
// that domain's L∞, so the summed vector moves by at most the sum of the domains' L∞ in each
// of at most N·L0 partitions; its L2 sensitivity is at most Σᵢ √L0·L∞ᵢ, which is what the
// Gaussian is calibrated for (L0 and the summed L∞).
func federatedPlanStage(ctx context.Context, e *Engine, s *jobState) ([]provenance.Event, error) {
	f := s.fed
	opts, err := e.federatedOptions(ctx, s.job)
	if err != nil {
		return nil, err
	}
	f.opts = opts
	var key uint64
	if !s.dryRun {
		key = randomKey()
	}
	params, _ := collective.DefaultParams()
	n := len(f.members)
	var planned []map[string]any
	for _, m := range f.members {
		p, err := plan.Build(m.q, map[string]string{m.d.Spec.Name: m.d.Snapshot.Digest}, opts, key)
		if err != nil {
			return nil, err
		}
		if !p.Public || p.Worker.Selection != nil || p.Auto != nil || p.Clamp != nil {
			return nil, unsupported("the query's partitions are not all public")
		}
		p.Worker.Job, p.Worker.Bias = s.id, nil
		setDeadline(s.job, sources{m.d}, p)
		m.p = p
		planned = append(planned, map[string]any{"dataset": m.d.Spec.Name, "domain": m.d.Spec.Domain, "snapshot": m.d.Snapshot.Digest, "worker_plan": p.Worker})
	}
	first := f.members[0].p
	// The first dataset's query and plan stand for the output's shape (its columns, keys and
	// aggregates are the same over every dataset): the screen, the egress policy, recall and
	// post-processing read them as they read a SQL job's.
	s.q, s.p = f.members[0].q, first
	if first.Worker.Keys == nil {
		f.parts = [][]*string{{}}
	} else {
		f.parts = crossProduct(first.Domains)
	}
	if len(f.parts) > collective.MaxPartitions {
		return nil, unsupported("the query has %d partitions; one federated release carries at most %d", len(f.parts), collective.MaxPartitions)
	}
	// Small-group suppression reads the unit count summed over the domains, which counts a
	// person once per domain holding them; a sum of at least n·min_units_per_group means some
	// domain alone has min_units_per_group units, so the rule withholds every group of fewer
	// persons (and, conservatively, some groups of persons spread over several domains).
	if first.UnitCount >= 0 {
		first.MinUnitsPerGroup = opts.MinUnitsPerGroup * float64(n)
	}
	// The budget is split over the released aggregates in equal shares, and the hidden unit
	// count (when the query has no COUNT(DISTINCT unit) of its own) takes HiddenUnitCountWeight
	// of a share, as in a SQL job.
	weights := make([]float64, len(first.Worker.Aggregates))
	var total float64
	for i := range weights {
		weights[i] = 1
		if i == first.UnitCount && first.HiddenUnitCount() {
			weights[i] = plan.HiddenUnitCountWeight
		}
		total += weights[i]
	}
	cost := plan.Cost{Epsilon: opts.Epsilon, Delta: opts.Delta}
	f.aggs = nil
	for i, spec := range first.Worker.Aggregates {
		name := "units (hidden, for small-group suppression)"
		if i < len(first.Query.Aggregates) {
			name = first.Query.Aggregates[i].Name
		}
		share := weights[i] / total
		fa := fedAggregate{Name: name, Kind: spec.Kind, L0: opts.MaxGroupsContributed, ByDom: map[string]int64{},
			Budget: plan.Cost{Epsilon: opts.Epsilon * share, Delta: opts.Delta * share}}
		for _, m := range f.members {
			spec := m.p.Worker.Aggregates[i]
			lInf := int64(math.Ceil(spec.Components()[0].LInf))
			// The largest per-partition aggregate a domain can hold follows from public
			// quantities (its bound and its snapshot's rows): refuse now what could wrap around.
			if lInf < 1 || float64(lInf)*float64(max(m.d.Snapshot.Rows, 1)) > float64(params.MaxInput(n))/2 {
				return nil, unsupported("%s over %s could exceed what the collective key's plaintexts hold; lower the column's bounds or the contribution bounds", name, m.d.Spec.Name)
			}
			fa.ByDom[m.d.Spec.Domain] = lInf
			fa.LInf += lInf
		}
		noise, err := collective.NoiseShares(collective.Budget{Epsilon: fa.Budget.Epsilon, Delta: fa.Budget.Delta, L0: fa.L0, LInf: fa.LInf}, n)
		if err != nil {
			return nil, errcode.Wrap(errcode.InvalidOptions, err, "the noise shares for %s cannot be computed from these privacy parameters", name)
		}
		fa.Noise = federatedNoiseForTest(noise)
		f.aggs = append(f.aggs, fa)
	}
	first.Cost = cost
	f.ceremony = ceremonyID(f.names)
	var aggDocs []map[string]any
	for _, a := range f.aggs {
		aggDocs = append(aggDocs, map[string]any{"name": a.Name, "kind": a.Kind, "l0": a.L0, "linf_by_domain": a.ByDom, "linf": a.LInf,
			"budget": a.Budget, "noise": a.Noise})
	}
	return events(&provenance.FederatedPlan{Ceremony: f.ceremony, Datasets: provenance.DocOf(planned), Partitions: len(f.parts),
		Aggregates: provenance.DocOf(aggDocs), Cost: provenance.DocOf(cost)}), nil
}

// federatedFingerprintStage names the output of a federated query on its grant: every
// domain's bounded plan (without the job's id, sampling key and deadline) over its snapshot,
// with the output's shape. A repeat — whatever its aliases, ORDER BY or LIMIT — finds the
// first answer, its hold or its denial; jobs with one fingerprint run one at a time.
func federatedFingerprintStage(_ context.Context, e *Engine, s *jobState) ([]provenance.Event, error) {
	f := s.fed
	var plans []map[string]any
	for _, m := range f.members {
		w := m.p.Worker
		w.Job, w.SamplingKey, w.TimeoutMS = "", 0, 0
		plans = append(plans, map[string]any{"dataset": m.d.Spec.Name, "snapshot": m.d.Snapshot.Digest, "plan": w})
	}
	type shape struct{ Key, Aggregate, Rank int }
	var outs []shape
	for _, o := range s.q.Outputs {
		outs = append(outs, shape{o.Key, o.Aggregate, o.Rank})
	}
	fp, err := canonicalDigest(map[string]any{"kind": KindFederated, "grant": s.job.Grant, "domains": plans, "outputs": outs,
		"budget": plan.Cost{Epsilon: f.opts.Epsilon, Delta: f.opts.Delta}})
	if err != nil {
		return nil, errcode.Wrap(errcode.Internal, err, "the query could not be fingerprinted")
	}
	s.fingerprint = fp
	s.cleanups = append(s.cleanups, e.lockFingerprint(s.job.Grant+"/"+fp))
	return nil, nil
}

// federatedNoiseForTest is the identity; engine tests replace it to check exact totals.
var federatedNoiseForTest = func(s collective.ShareNoise) collective.ShareNoise { return s }

// ceremonyID names the collective key of a set of domains.
func ceremonyID(domains []string) string {
	sum := sha256.Sum256([]byte(strings.Join(domains, "\x00")))
	return "fed-" + hex.EncodeToString(sum[:12])
}

func federatedAccessStage(ctx context.Context, e *Engine, s *jobState) ([]provenance.Event, error) {
	f := s.fed
	var uses []policy.ColumnUse
	for _, m := range f.members {
		ds := sources{m.d}
		for _, u := range m.q.Uses {
			uses = append(uses, ds.columnUse(gate.ColumnRef{Dataset: u.Dataset, Column: u.Column}, string(u.Usage)))
		}
	}
	s.access = policy.AccessInput{Principal: s.job.Principal, Action: policy.ActionSubmitJob, Datasets: s.ds.refs(), Columns: uses, Grant: s.job.Terms,
		Job: policy.JobParams{Kind: KindFederated, Epsilon: f.opts.Epsilon, Delta: f.opts.Delta,
			MaxGroupsContributed: int(f.opts.MaxGroupsContributed), MaxContributionsPerGroup: int(f.opts.MaxContributionsPerGroup), PublicPartitions: true}}
	d, err := e.policy.Access(ctx, s.access)
	if err != nil {
		return nil, errcode.Wrap(errcode.PolicyDenied, err, "the access policy could not be evaluated; denied")
	}
	s.decision = &d
	evs := events(&provenance.PolicyAccess{PolicyDecision: decisionRecord(d, s.access)})
	if !d.Allowed() {
		return evs, errcode.New(errcode.PolicyDenied, "the access policy denied this job: %s", strings.Join(d.Reasons, "; "))
	}
	return evs, s.ds.operable()
}

// federatedReserveStage reserves the job's cost on the grant and on every dataset: the
// statistic spends each domain's data once, so each domain's ledger account is debited.
func federatedReserveStage(ctx context.Context, e *Engine, s *jobState) ([]provenance.Event, error) {
	return e.reserveCost(ctx, s, plan.Cost{Epsilon: s.fed.opts.Epsilon, Delta: s.fed.opts.Delta}, s.fed.aggs, "job", nil)
}

func (e *Engine) collectiveDir() string { return filepath.Join(e.dataDir, "collective") }

// aggregatorKey is the platform's long-term signing key as aggregator, created on first use.
func (e *Engine) aggregatorKey() (ed25519.PrivateKey, error) {
	path := filepath.Join(e.collectiveDir(), "aggregator.key")
	if b, err := os.ReadFile(path); err == nil {
		if len(b) != ed25519.SeedSize {
			return nil, errcode.New(errcode.Internal, "the aggregator's signing key file is damaged")
		}
		return ed25519.NewKeyFromSeed(b), nil
	}
	if err := os.MkdirAll(e.collectiveDir(), 0o700); err != nil {
		return nil, err
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	if err := writeFileSync(path, priv.Seed()); err != nil {
		return nil, err
	}
	return priv, nil
}

func writeFileSync(path string, b []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// pins are the domains' signing public keys as first seen (hex), kept in the data dir.
func (e *Engine) loadPins() (map[string]string, error) {
	pins := map[string]string{}
	b, err := os.ReadFile(filepath.Join(e.collectiveDir(), "pins.json"))
	if errors.Is(err, os.ErrNotExist) {
		return pins, nil
	}
	if err == nil {
		err = json.Unmarshal(b, &pins)
	}
	return pins, err
}

// federatedWorkersStage starts each domain's worker and checks its signing key against the
// pinned one, then loads the collective key of this set of domains — or, the first time, runs
// the key ceremony with the workers and pins their keys.
func federatedWorkersStage(ctx context.Context, e *Engine, s *jobState) ([]provenance.Event, error) {
	f := s.fed
	for _, m := range f.members {
		w, err := e.worker(ctx, m.d.Spec.Domain)
		if err != nil {
			return nil, errcode.Wrap(errcode.FederatedDomainUnavailable, err, "the worker of domain %s could not start", m.d.Spec.Domain)
		}
		m.w = w
	}
	e.fedMu.Lock()
	defer e.fedMu.Unlock()
	pins, err := e.loadPins()
	if err != nil {
		return nil, errcode.Wrap(errcode.Internal, err, "the pinned domain keys cannot be read")
	}
	aggKey, err := e.aggregatorKey()
	if err != nil {
		return nil, errcode.Wrap(errcode.Internal, err, "the aggregator's signing key is unavailable")
	}
	dir := collective.Directory{aggregatorName: aggKey.Public().(ed25519.PublicKey)}
	for _, m := range f.members {
		dom := m.d.Spec.Domain
		rctx, cancel := context.WithTimeout(ctx, federatedRoundTimeout)
		pub, err := m.w.CollectiveIdentity(rctx)
		cancel()
		if err != nil {
			return nil, domainError(dom, err)
		}
		if pin, ok := pins[dom]; ok && pin != hex.EncodeToString(pub) {
			return nil, errcode.New(errcode.FederatedKeyMismatch, "the worker of domain %s presents a signing key other than the one pinned for it; nothing was asked of it (an operator must re-pin the domain)", dom)
		}
		dir[dom] = pub
	}
	cfg := collective.Config{Name: aggregatorName, SigningKey: aggKey, Directory: dir, Domains: f.names, Aggregator: aggregatorName}
	agg, err := collective.NewAggregator(cfg)
	if err != nil {
		return nil, errcode.Wrap(errcode.Internal, err, "the aggregator cannot be configured")
	}
	keyPath := filepath.Join(e.collectiveDir(), f.ceremony+".key")
	var evs []provenance.Event
	if b, err := os.ReadFile(keyPath); err == nil {
		m, err := collective.DecodeMessage(b)
		if err == nil {
			err = agg.UsePublicKey(m)
		}
		if err != nil {
			return nil, errcode.Wrap(errcode.FederatedProtocol, err, "the stored collective key of these domains does not verify against their pinned keys")
		}
	} else {
		ev, err := e.keyCeremony(ctx, f, agg, dir, pins, keyPath)
		if err != nil {
			return nil, err
		}
		evs = append(evs, ev)
	}
	f.dir, f.agg, f.keyID = dir, agg, agg.KeyID()
	return evs, nil
}

// keyCeremony runs rounds 1–2 with every domain's worker, stores the collective key message
// and pins the domains' signing keys.
func (e *Engine) keyCeremony(ctx context.Context, f *federatedState, agg *collective.Aggregator, dir collective.Directory, pins map[string]string, keyPath string) (provenance.Event, error) {
	directory := map[string][]byte{}
	for n, k := range dir {
		directory[n] = k
	}
	inbox := make(collective.MemoryInbox, 2*len(f.members))
	shares := map[string]string{}
	for _, m := range f.members {
		dom := m.d.Spec.Domain
		rctx, cancel := context.WithTimeout(ctx, federatedRoundTimeout)
		r, err := m.w.CollectiveKeyGen(rctx, &wire.CollectiveKeyGen{Ceremony: f.ceremony, Domains: f.names, Aggregator: aggregatorName, Directory: directory})
		cancel()
		if err != nil {
			return nil, domainError(dom, err)
		}
		if len(r.Messages) != 1 {
			return nil, errcode.New(errcode.FederatedProtocol, "the worker of domain %s returned no key share", dom)
		}
		msg := f.tamper(dom, collective.RoundKeyGen, r.Messages[0])
		shares[dom] = sha(msg)
		inbox.Send(msg)
	}
	rctx, cancel := context.WithTimeout(ctx, federatedRoundTimeout)
	key, err := agg.CollectKeyGen(rctx, f.ceremony, inbox)
	cancel()
	if err != nil {
		return nil, protocolError(err, "the key ceremony")
	}
	enc := key.Encode()
	for _, m := range f.members {
		rctx, cancel := context.WithTimeout(ctx, federatedRoundTimeout)
		_, err := m.w.CollectiveAccept(rctx, &wire.CollectiveAccept{Ceremony: f.ceremony, Message: enc})
		cancel()
		if err != nil {
			return nil, domainError(m.d.Spec.Domain, err)
		}
	}
	if err := writeFileSync(keyPath, enc); err != nil {
		return nil, errcode.Wrap(errcode.Internal, err, "the collective key cannot be stored")
	}
	keys := map[string]string{}
	for _, n := range f.names {
		pins[n] = hex.EncodeToString(dir[n])
		keys[n] = pins[n]
	}
	b, _ := json.Marshal(pins)
	if err := writeFileSync(filepath.Join(e.collectiveDir(), "pins.json"), b); err != nil {
		return nil, errcode.Wrap(errcode.Internal, err, "the domains' keys cannot be pinned")
	}
	id := agg.KeyID()
	return &provenance.CollectiveKey{Ceremony: f.ceremony, Domains: f.names, KeyID: hex.EncodeToString(id[:]), DomainKeys: keys,
		Aggregator: hex.EncodeToString(dir[aggregatorName]), ParameterSet: collective.ParamSetName, KeyMessage: sha(enc), ShareMessages: shares}, nil
}

func (f *federatedState) tamper(domain string, round collective.Round, msg []byte) []byte {
	if f.tamperWith != nil {
		return f.tamperWith(domain, round, msg)
	}
	return msg
}

// domainError is a domain worker's failure to answer a round: a protocol refusal keeps its
// code, anything else (the worker died, timed out, failed) makes the domain unavailable.
func domainError(domain string, err error) error {
	switch errcode.Of(err) {
	case errcode.FederatedProtocol, errcode.FederatedUnsupported, errcode.FederatedKeyMismatch:
		return err
	}
	return errcode.Wrap(errcode.FederatedDomainUnavailable, err, "the worker of domain %s did not answer (offline, failed or past the round's deadline); nothing was decrypted or released", domain)
}

// protocolError maps an aggregator's or receiver's refusal (he/collective's sentinels).
func protocolError(err error, what string) error {
	if errors.Is(err, collective.ErrMissingParty) {
		return errcode.Wrap(errcode.FederatedDomainUnavailable, err, "%s lacks a domain's message; nothing was decrypted or released", what)
	}
	return errcode.Wrap(errcode.FederatedProtocol, err, "%s refused a message (%s); nothing was decrypted or released", what, err.Error())
}

// federatedInputsStage has every domain's worker bound, noise and encrypt its aggregates.
func federatedInputsStage(ctx context.Context, e *Engine, s *jobState) ([]provenance.Event, error) {
	f := s.fed
	start := time.Now()
	// The platform is the receiver: a fresh key pair per job, which never leaves this process.
	r, err := collective.NewReceiver(collective.Config{Directory: f.dir, Domains: f.names, Aggregator: aggregatorName})
	if err != nil {
		return nil, errcode.Wrap(errcode.Internal, err, "the receiver cannot be configured")
	}
	f.receiver = r
	f.jobs = nil
	for i, a := range f.aggs {
		f.jobs = append(f.jobs, collective.Job{ID: fmt.Sprintf("%s-%d", s.id, i), Key: f.keyID, Partitions: len(f.parts), Receiver: r.KeyDigest(), Noise: a.Noise})
	}
	f.inboxes = make([]collective.MemoryInbox, len(f.jobs))
	for i := range f.inboxes {
		f.inboxes[i] = make(collective.MemoryInbox, 2*len(f.members))
	}
	inputs, err := f.askDomains(ctx, collective.RoundInput, func(ctx context.Context, m *fedMember) ([][]byte, error) {
		return m.w.CollectiveInput(ctx, &wire.CollectiveInput{Ceremony: f.ceremony, Plan: &m.p.Worker, Partitions: f.parts, Jobs: f.jobs})
	})
	if err != nil {
		return nil, err
	}
	return events(&provenance.FederatedInputs{Inputs: inputs, DurationMS: time.Since(start).Milliseconds()}), nil
}

// askDomains runs one round with every domain's worker at once (call), each within the
// round's deadline, and hands each domain's messages, one per job, to the jobs' inboxes. It
// returns the messages' digests by domain, or the first domain's failure.
func (f *federatedState) askDomains(ctx context.Context, round collective.Round, call func(context.Context, *fedMember) ([][]byte, error)) (map[string][]string, error) {
	msgs := make([][][]byte, len(f.members))
	errs := make([]error, len(f.members))
	var wg sync.WaitGroup
	for i, m := range f.members {
		wg.Go(func() {
			rctx, cancel := context.WithTimeout(ctx, federatedRoundTimeout)
			defer cancel()
			msgs[i], errs[i] = call(rctx, m)
		})
	}
	wg.Wait()
	digests := map[string][]string{}
	for i, m := range f.members {
		dom := m.d.Spec.Domain
		if errs[i] != nil {
			return nil, domainError(dom, errs[i])
		}
		for j, msg := range msgs[i] {
			msg = f.tamper(dom, round, msg)
			digests[dom] = append(digests[dom], sha(msg))
			f.inboxes[j].Send(msg)
		}
	}
	return digests, nil
}

func federatedAggregateStage(ctx context.Context, e *Engine, s *jobState) ([]provenance.Event, error) {
	f := s.fed
	f.sums = nil
	var digests []string
	for i, j := range f.jobs {
		rctx, cancel := context.WithTimeout(ctx, federatedRoundTimeout)
		sum, err := f.agg.CollectInputs(rctx, j, f.receiver.PublicKey(), f.inboxes[i])
		cancel()
		if err != nil {
			return nil, protocolError(err, "the aggregation of the domains' inputs")
		}
		f.sums = append(f.sums, sum)
		digests = append(digests, sha(sum.Encode()))
	}
	rk := f.receiver.KeyDigest()
	return events(&provenance.FederatedSum{Sums: digests, Receiver: "sha256:" + hex.EncodeToString(rk[:])}), nil
}

func federatedKeySwitchStage(ctx context.Context, e *Engine, s *jobState) ([]provenance.Event, error) {
	f := s.fed
	start := time.Now()
	var sums [][]byte
	for _, m := range f.sums {
		sums = append(sums, m.Encode())
	}
	shares, err := f.askDomains(ctx, collective.RoundKeySwitch, func(ctx context.Context, m *fedMember) ([][]byte, error) {
		return m.w.CollectiveKeySwitch(ctx, &wire.CollectiveKeySwitch{Ceremony: f.ceremony, Jobs: f.jobs, Sums: sums})
	})
	if err != nil {
		return nil, err
	}
	f.results = nil
	var results []string
	for i, j := range f.jobs {
		rctx, cancel := context.WithTimeout(ctx, federatedRoundTimeout)
		res, err := f.agg.CollectKeySwitch(rctx, j, f.sums[i], f.inboxes[i])
		cancel()
		if err != nil {
			return nil, protocolError(err, "the collection of the key-switch shares")
		}
		f.results = append(f.results, res)
		results = append(results, sha(res.Encode()))
	}
	return events(&provenance.FederatedKeySwitch{Shares: shares, Results: results, DurationMS: time.Since(start).Milliseconds()}), nil
}

func federatedOpenStage(_ context.Context, e *Engine, s *jobState) ([]provenance.Event, error) {
	f := s.fed
	f.totals = nil
	var b []byte
	for i, j := range f.jobs {
		v, err := f.receiver.Open(j, f.results[i])
		if err != nil {
			return nil, protocolError(err, "the opening of the result")
		}
		f.totals = append(f.totals, v)
		for _, x := range v {
			b = binary.BigEndian.AppendUint64(b, uint64(x))
		}
	}
	return events(&provenance.FederatedOpened{Partitions: len(f.parts), Aggregates: len(f.jobs), NoisyDigest: e.auditKey.Digest(b)}), nil
}

func federatedDebitStage(ctx context.Context, e *Engine, s *jobState) ([]provenance.Event, error) {
	return e.debitCost(ctx, s, plan.Cost{Epsilon: s.fed.opts.Epsilon, Delta: s.fed.opts.Delta})
}

// federatedResultStage builds the result: every public partition, each aggregate's noisy total
// with the interval that holds the pre-noise total with 95% probability. Counts and sums of
// non-negative columns are clamped at 0 after noise (post-processing), the interval with them.
// The screen, the egress policy and post-processing (ORDER BY, LIMIT) follow, as for SQL.
func federatedResultStage(_ context.Context, e *Engine, s *jobState) ([]provenance.Event, error) {
	f := s.fed
	first := f.members[0]
	res := &Result{Result: api.Result{Job: s.id, Dataset: s.ds.name(), Rows: [][]api.Cell{}, Columns: resultColumns(first.q, first.p),
		Spent: api.Budget{Epsilon: f.opts.Epsilon, Delta: f.opts.Delta}}}
	for p, key := range f.parts {
		cells := make([]api.Cell, len(first.q.Outputs))
		for i, o := range first.q.Outputs {
			if o.Key >= 0 {
				cells[i] = api.Cell{Key: key[o.Key]}
				continue
			}
			a := f.aggs[o.Aggregate]
			v := f.totals[o.Aggregate][p]
			ci, err := collective.CI(v, a.Noise, 1-dp.Confidence)
			if err != nil {
				return nil, errcode.Wrap(errcode.Internal, err, "the interval of %s cannot be computed; nothing was released", a.Name)
			}
			rel := api.Released{Value: float64(v), CILow: float64(ci.Lower), CIHigh: float64(ci.Upper), Mechanism: federatedMechanism,
				Epsilon: a.Budget.Epsilon, Delta: a.Budget.Delta}
			if nonNegative(first.p.Worker.Aggregates[o.Aggregate]) {
				rel.Value, rel.CILow, rel.CIHigh = math.Max(rel.Value, 0), math.Max(rel.CILow, 0), math.Max(rel.CIHigh, 0)
			}
			cells[i] = api.Cell{DP: &rel}
		}
		res.Rows = append(res.Rows, cells)
		if first.p.UnitCount >= 0 {
			res.units = append(res.units, math.Max(float64(f.totals[first.p.UnitCount][p]), 0))
		}
	}
	var parts []string
	for _, a := range f.aggs {
		parts = append(parts, fmt.Sprintf("%s: L0 %d, L∞ %d summed over %d domains", a.Name, a.L0, a.LInf, len(f.members)))
	}
	res.Bounds = strings.Join(parts, "; ")
	hidden := ""
	if first.p.HiddenUnitCount() {
		hidden = fmt.Sprintf(" and a hidden count of units per group at %g of an aggregate's share (groups whose count over the domains is under %g are withheld)",
			plan.HiddenUnitCountWeight, first.p.MinUnitsPerGroup)
	}
	res.Split = fmt.Sprintf("federated over %d domains under a collective key; public partitions; epsilon %.4g and delta %.3g split equally over %d aggregate(s)%s, each released with Gaussian noise drawn in %d shares (one per domain) that together cover the sum of the domains' contribution bounds; debited on the grant and on each dataset",
		len(f.members), f.opts.Epsilon, f.opts.Delta, len(first.q.Aggregates), hidden, len(f.members))
	// The noisy rows are remembered whether released or held: a repeat gets the same rows
	// (and the same review), never fresh noise.
	s.stored = storedAnswer{Rows: slices.Clone(res.Rows), Units: res.units}
	s.res = res
	return nil, nil
}

// nonNegative reports whether an aggregate's exact value cannot be negative (counts, sums of
// values clamped at or above 0).
func nonNegative(s dp.Spec) bool {
	return s.Kind == dp.Count || (s.Kind == dp.Sum && s.Lower >= 0)
}
