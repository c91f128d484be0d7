package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/c1b99f93/cleanroom/dp"
	"github.com/c1b99f93/cleanroom/dp/model"
	"github.com/c1b99f93/cleanroom/engine/gate"
	"github.com/c1b99f93/cleanroom/engine/plan"
	"github.com/c1b99f93/cleanroom/engine/provenance"
	"github.com/c1b99f93/cleanroom/errcode"
	"github.com/c1b99f93/cleanroom/policy"
	"github.com/c1b99f93/cleanroom/sandbox/wire"
	"github.com/c1b99f93/cleanroom/server/api"
)

// KindModel is the kind of a model job: a DP linear or logistic regression (dp/model)
// trained on the rows of a row-level SQL. The worker returns only pre-noise states (exact
// integer sums, bounded per privacy unit); the engine adds the noise, solves and releases the
// coefficients, the intercept and noisy metrics, never a row or a prediction.
const KindModel = "model"

// Model request limits and defaults the engine keeps whatever the policy says.
const (
	// DefaultModelRowsPerUnit is a model's rows per privacy unit when the request sets none.
	DefaultModelRowsPerUnit = 1
	// modelClip is a logistic fit's per-unit gradient clipping norm C (scaled units).
	modelClip = 1.0
)

// modelState is what a model job's stages read and write.
type modelState struct {
	req      *api.ModelRequest
	rq       *gate.RowQuery
	logistic bool
	bounds   map[string][]float64 // per feature and the label, as used
	linear   model.LinearSpec
	logit    model.LogisticSpec
	iters    int
	pass     wire.ModelPass // the worker's pass, without a step
	comps    []dp.Component
	fit      *model.LogisticFit
	stats    *model.Stats
	conf     *model.Confusion
	result   *api.ModelResult
}

// modelStages is the model job's pipeline. The package doc and docs/architecture.md list it
// (TestStagesAreDocumented).
func modelStages() []stage {
	return []stage{
		{name: "submit", dryRun: true, run: modelSubmitStage, records: events(&provenance.JobSubmitted{}),
			doc: "record the job: the model's type, SQL, features, label, bounds and budget"},
		{name: "gate", dryRun: true, run: modelGateStage, records: events(&provenance.Gate{}), replay: replaySnapshots,
			doc: "admit the row-level SQL (the privacy unit, then numeric features and label with public bounds; no identifier); its datasets must be within the grant"},
		{name: "plan", dryRun: true, run: modelPlanStage, records: events(&provenance.ModelPlan{}),
			doc: "fix the model's spec, its rows per unit and the worker's pass; split the budget among the noise additions and check it with the accountant"},
		{name: "policy_access", dryRun: true, run: modelAccessStage, records: events(&provenance.PolicyAccess{}), replay: replayAccess,
			doc: "ask the access policy (kind model, its epsilon, delta, features and rows per unit); an L4 dataset is never operated"},
		{name: "fingerprint", run: modelFingerprintStage,
			doc: "name the model's output (type, pass over the snapshots, features, label, bounds, rows per unit, iterations, budget); one job at a time per output"},
		{name: "decision_recall", run: decisionRecallStage, records: events(&provenance.DecisionRecalled{}),
			doc: "a model held, rejected or denied answers its repeats"},
		{name: "release_recall", run: modelRecallStage, records: events(&provenance.AnsweredFromRelease{}),
			doc: "a model released before is answered again from that release: the same coefficients, no new noise, no cost"},
		{name: "reserve", reaches: phaseReserved, skip: (*jobState).isRepeat, run: modelReserveStage, records: events(&provenance.BudgetReserved{}),
			doc: "reserve the cost on the grant and the datasets"},
		{name: "worker", skip: (*jobState).isRepeat, run: workerStage,
			doc: "start the domain's sandbox worker"},
		{name: "train", enters: phaseReading, skip: (*jobState).isRepeat, run: trainStage, records: events(&provenance.ModelTrained{}), replay: replayTrain,
			doc: "the worker's passes return pre-noise states only (a logistic fit's steps are computed from noisy gradients between passes)"},
		{name: "debit", reaches: phaseDebited, skip: (*jobState).isRepeat, run: modelDebitStage, records: events(&provenance.BudgetDebited{}),
			doc: "make the debit final, before the released noise is drawn"},
		{name: "mechanism", skip: (*jobState).isRepeat, run: modelMechanismStage, records: events(&provenance.Mechanism{}),
			doc: "draw the noise and solve: coefficients, intercept, intervals and metrics from noisy values only"},
		{name: "egress_policy", run: modelEgressStage, records: events(&provenance.PolicyEgress{}), replay: replayEgress,
			doc: "ask the egress policy: allow, review or deny"},
		{name: "hold", skip: func(s *jobState) bool { return s.egress.Result != policy.ResultReview }, run: holdStage, records: events(&provenance.Held{}, &provenance.OutputDecision{}),
			doc: "a model for review is held (its coefficients go to the reviewers), and the hold sticks to it"},
		{name: "deny", skip: func(s *jobState) bool {
			return s.egress.Result == policy.ResultReview || s.egress.Result == policy.ResultAllow
		}, run: denyStage, records: events(&provenance.OutputDecision{}),
			doc: "a denial sticks to the model; the job ends charged"},
		{name: "store_decision", skip: func(s *jobState) bool { return s.egress.Result == policy.ResultAllow || !s.evaluated }, run: storeDecisionStage,
			doc: "store the decision on the model"},
		{name: "release", skip: (*jobState).isHeld, run: modelReleaseStage, records: events(&provenance.Release{}), replay: replayRelease,
			doc: "record the release with its output digest"},
		{name: "receipt", skip: (*jobState).isHeld, run: modelReceiptStage,
			doc: "sign the release receipt"},
		{name: "remember", skip: (*jobState).isRepeat, run: modelRememberStage, records: events(&provenance.ReleaseNotStored{}),
			doc: "keep the released (or held) model, so a repeat gets the same answer"},
	}
}

// runModel runs a model job through its stages.
func (e *Engine) runModel(ctx context.Context, id string, j Job) (*Outcome, error) {
	if j.Model == nil {
		return nil, errcode.New(errcode.InvalidModel, "a model job carries its model")
	}
	s := &jobState{id: id, job: j, opts: e.options(ctx, j), m: &modelState{req: j.Model}}
	if err := e.runStages(ctx, modelStages(), s); err != nil {
		return nil, err
	}
	return &Outcome{Model: s.m.result, Receipt: s.receipt, Held: s.held, Datasets: s.ds.names(), Repeat: s.timingFree()}, nil
}

// modelSummary is what job_submitted keeps of a model request besides its SQL.
type modelSummary struct {
	Type           string               `json:"type"`
	Features       []string             `json:"features"`
	Label          string               `json:"label"`
	Bounds         map[string][]float64 `json:"bounds,omitempty"`
	MaxRowsPerUnit int                  `json:"max_rows_per_unit,omitempty"`
	Iterations     int                  `json:"iterations,omitempty"`
	Epsilon        float64              `json:"epsilon"`
	Delta          float64              `json:"delta"`
}

func modelSubmitStage(_ context.Context, _ *Engine, s *jobState) ([]provenance.Event, error) {
	r := s.m.req
	sum := modelSummary{Type: r.Type, Features: r.Features, Label: r.Label, Bounds: r.Bounds, MaxRowsPerUnit: r.MaxRowsPerUnit,
		Iterations: r.Iterations, Epsilon: s.opts.Epsilon, Delta: s.opts.Delta}
	return events(&provenance.JobSubmitted{Kind: KindModel, Principal: provenance.Principal(s.job.Principal), Grant: s.job.Grant, SQL: r.SQL,
		Options: provenance.DocOf(sum)}), nil
}

// CheckModelRequest checks what a model request says without the catalog: a known type, one
// to model.MaxFeatures distinct features, a label that is not one of them, bounds [lo, hi] of
// finite numbers with lo < hi for named columns only, and rows per unit and iterations in
// range. Every refusal has a stable code and names only what the request names.
func CheckModelRequest(r *api.ModelRequest) error {
	if r == nil {
		return errcode.New(errcode.InvalidModel, "a model job carries its model (model.type, model.sql, model.features, model.label)")
	}
	switch r.Type {
	case api.ModelLinearRegression, api.ModelLogisticRegression:
	default:
		return errcode.New(errcode.InvalidModel, "model.type must be %s or %s", api.ModelLinearRegression, api.ModelLogisticRegression)
	}
	if strings.TrimSpace(r.SQL) == "" {
		return errcode.New(errcode.InvalidModel, "a model job carries its row-level SQL in model.sql")
	}
	if len(r.SQL) > gate.MaxSQLBytes {
		return errcode.New(errcode.InvalidRequest, "the SQL is longer than 64 KiB")
	}
	switch {
	case len(r.Features) == 0:
		return errcode.New(errcode.InvalidModel, "a model needs at least one feature (model.features)")
	case len(r.Features) > model.MaxFeatures:
		return errcode.New(errcode.TooManyFeatures, "a model has at most %d features, not %d", model.MaxFeatures, len(r.Features))
	case r.Label == "":
		return errcode.New(errcode.InvalidModel, "a model names its label (model.label)")
	}
	seen := map[string]bool{}
	for i, f := range r.Features {
		l := strings.ToLower(f)
		switch {
		case f == "" || len(f) > 128 || f == model.InterceptName:
			return errcode.New(errcode.InvalidModel, "feature %d: a feature is named by a select item's name (1 to 128 characters)", i+1)
		case seen[l]:
			return errcode.New(errcode.InvalidModel, "feature %d: %q is named twice", i+1, f)
		case strings.EqualFold(f, r.Label):
			return errcode.New(errcode.InvalidModel, "the label %q is also a feature: a model cannot predict its label from itself", r.Label)
		}
		seen[l] = true
	}
	for name, b := range r.Bounds {
		if !seen[strings.ToLower(name)] && !strings.EqualFold(name, r.Label) {
			return errcode.New(errcode.InvalidModel, "model.bounds names %q, which is neither a feature nor the label", name)
		}
		if len(b) != 2 || !finite(b[0]) || !finite(b[1]) || !(b[0] < b[1]) || !finite(b[1]-b[0]) {
			return errcode.New(errcode.InvalidOptions, "model.bounds[%q] must be [lo, hi], finite numbers with lo < hi", name)
		}
	}
	if r.MaxRowsPerUnit < 0 || r.MaxRowsPerUnit > model.MaxRowsPerUnitLimit {
		return errcode.New(errcode.InvalidOptions, "model.max_rows_per_unit must be in [1, %d] (0 for the default, %d)", model.MaxRowsPerUnitLimit, DefaultModelRowsPerUnit)
	}
	if r.Iterations < 0 || r.Iterations > model.MaxIterations || (r.Iterations > 0 && r.Type != api.ModelLogisticRegression) {
		return errcode.New(errcode.InvalidOptions, "model.iterations is a logistic regression's, in [1, %d] (0 for the default, %d)", model.MaxIterations, model.DefaultIterations)
	}
	return nil
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// modelGateStage checks the request, admits its SQL and resolves each feature's and the
// label's bounds, before anything is asked or reserved.
func modelGateStage(ctx context.Context, e *Engine, s *jobState) ([]provenance.Event, error) {
	r := s.m.req
	if err := CheckModelRequest(r); err != nil {
		return nil, err
	}
	if s.opts.DeltaSet && s.opts.Delta == 0 || !(s.opts.Delta > 0 && s.opts.Delta < 1) {
		return nil, errcode.New(errcode.InvalidOptions, "a model's noise is Gaussian: its delta must be in (0, 1) (leave it unset for the grant's default)")
	}
	if !(s.opts.Epsilon > 0) || s.opts.Epsilon > dp.MaxEpsilon {
		return nil, errcode.New(errcode.InvalidOptions, "epsilon must be in (0, %d]", dp.MaxEpsilon)
	}
	usage := func(name string) gate.Usage {
		if strings.EqualFold(name, r.Label) {
			return gate.UseModelLabel
		}
		return gate.UseModelFeature
	}
	rq, err := gate.AdmitRows(ctx, e.parser, e, r.SQL, usage)
	if err != nil {
		return nil, err
	}
	ds, err := e.sourcesOf(&gate.Query{Sources: rq.Sources})
	if err != nil {
		return nil, err
	}
	if err := ds.within(s.job.Grant, s.job.Terms); err != nil {
		return nil, err
	}
	s.m.rq, s.ds = rq, ds
	s.m.bounds = map[string][]float64{}
	var names []string
	for _, c := range rq.Columns {
		names = append(names, c.Name)
	}
	for _, name := range append(slices.Clone(r.Features), r.Label) {
		c, ok := rq.Column(name)
		if !ok {
			return nil, errcode.New(errcode.InvalidModel, "%q is not a name the SQL selects (it selects %s after the unit)", name, strings.Join(names, ", "))
		}
		b, err := modelBounds(ds, c, r.Bounds[name])
		if err != nil {
			return nil, err
		}
		s.m.bounds[name] = b
	}
	return events(&provenance.Gate{Admitted: true, Dataset: ds.primary().Spec.Name, Snapshots: ds.snapshots()}), nil
}

// modelBounds are a selected value's public bounds: the request's, else what the catalog and
// the SQL give. A plain column must be numeric in its snapshot; an expression without bounds
// from the SQL needs the request's.
func modelBounds(ds sources, c gate.RowColumn, asked []float64) ([]float64, error) {
	if c.Column != nil && !c.Numeric {
		if !numericColumn(ds, *c.Column) {
			return nil, errcode.At(errcode.NotNumeric, c.Position, "%s is not a numeric column; select a number, or map it to numbers with CASE (e.g. CASE age_band WHEN '0-17' THEN 0 … END AS age_group)", c.Name)
		}
	}
	switch {
	case asked != nil:
		return asked, nil
	case c.Bounds != nil:
		return c.Bounds, nil
	case c.Column != nil:
		return nil, errcode.At(errcode.MissingBounds, c.Position, "%s has no declared bounds; give them in model.bounds (values are clipped to them)", c.Name)
	}
	return nil, errcode.At(errcode.MissingBounds, c.Position, "the bounds of %s do not follow from the SQL and the catalog; give them in model.bounds (values are clipped to them)", c.Name)
}

// numericColumn reports whether a dataset column is a number (or a boolean) in its snapshot.
func numericColumn(ds sources, ref gate.ColumnRef) bool {
	for _, d := range ds {
		if d.Spec.Name != ref.Dataset {
			continue
		}
		for _, col := range d.Snapshot.Columns {
			if col.Name == ref.Column {
				t := strings.ToLower(col.Type)
				for _, n := range []string{"int", "float", "double", "decimal", "bool"} {
					if strings.HasPrefix(t, n) || strings.HasPrefix(t, "u"+n) {
						return true
					}
				}
				return false
			}
		}
	}
	return false
}

// modelPlanStage fixes the spec both sides build, the worker's pass and the noise additions,
// and checks the budget split with the accountant (dp/model) before anything is asked.
func modelPlanStage(_ context.Context, e *Engine, s *jobState) ([]provenance.Event, error) {
	m, r := s.m, s.m.req
	rows := r.MaxRowsPerUnit
	if rows == 0 {
		rows = DefaultModelRowsPerUnit
	}
	var feats []model.Feature
	var values []*wire.Expr
	for _, name := range r.Features {
		c, _ := m.rq.Column(name)
		b := m.bounds[name]
		feats = append(feats, model.Feature{Name: name, Bounds: model.Bounds{Lo: b[0], Hi: b[1]}})
		values = append(values, c.Expr)
	}
	lc, _ := m.rq.Column(r.Label)
	values = append(values, lc.Expr)
	var key uint64
	if !s.dryRun {
		key = randomKey()
	}
	m.pass = wire.ModelPass{Job: s.id, Relation: *m.rq.Relation(s.ds.snapshots(), int64(rows)), Filter: m.rq.Filter, Values: values,
		SamplingKey: key, TimeoutMS: DeadlineMax.Milliseconds()}
	params := modelParams(s)
	switch r.Type {
	case api.ModelLinearRegression:
		lb := m.bounds[r.Label]
		m.linear = model.LinearSpec{Features: feats, Label: model.Bounds{Lo: lb[0], Hi: lb[1]}, MaxRowsPerUnit: rows}
		m.pass.Pass, m.pass.Linear = wire.ModelLinear, &m.linear
		comps, err := model.LinearComponents(m.linear, params)
		if err != nil {
			return nil, err
		}
		m.comps = comps
	case api.ModelLogisticRegression:
		m.logistic = true
		m.logit = model.LogisticSpec{Features: feats, MaxRowsPerUnit: rows, Clip: modelClip}
		m.pass.Logistic = &m.logit
		m.iters = r.Iterations
		if m.iters == 0 {
			m.iters = model.DefaultIterations
		}
		fit, err := model.NewLogisticFit(m.logit, model.LogisticParams{Epsilon: params.Epsilon, Delta: params.Delta, Iterations: m.iters})
		if err != nil {
			return nil, err
		}
		m.fit, m.comps = fit, fit.Components()
	}
	return events(&provenance.ModelPlan{Type: r.Type, Pass: provenance.DocOf(m.pass), Cost: provenance.DocOf(modelCost(s)),
		Components: provenance.DocOf(m.comps), Iterations: m.iters}), nil
}

func modelParams(s *jobState) model.Params {
	return model.Params{Epsilon: s.opts.Epsilon, Delta: s.opts.Delta}
}

func modelCost(s *jobState) plan.Cost { return plan.Cost{Epsilon: s.opts.Epsilon, Delta: s.opts.Delta} }

func modelAccessStage(ctx context.Context, e *Engine, s *jobState) ([]provenance.Event, error) {
	var uses []policy.ColumnUse
	for _, u := range s.m.rq.Uses {
		uses = append(uses, s.ds.columnUse(gate.ColumnRef{Dataset: u.Dataset, Column: u.Column}, string(u.Usage)))
	}
	mp := &policy.ModelParams{Type: s.m.req.Type, Features: len(s.m.req.Features), MaxRowsPerUnit: s.m.pass.MaxRowsPerUnit(), Iterations: s.m.iters}
	s.access = policy.AccessInput{Principal: s.job.Principal, Action: policy.ActionSubmitJob, Datasets: s.ds.refs(), Columns: uses, Grant: s.job.Terms,
		Job: policy.JobParams{Kind: KindModel, Epsilon: s.opts.Epsilon, Delta: s.opts.Delta, Model: mp}}
	return e.askAccess(ctx, s, "model job")
}

func modelReserveStage(ctx context.Context, e *Engine, s *jobState) ([]provenance.Event, error) {
	cost := modelCost(s)
	return e.reserveCost(ctx, s, cost, []mechanismRecord{{Aggregate: s.m.req.Type, Mechanism: accountantGaussian, Epsilon: cost.Epsilon, Delta: cost.Delta, Components: s.m.comps}}, "model", nil)
}

// accountantGaussian names the mechanism of every model noise addition.
const accountantGaussian = "gaussian"

// trainStage runs the worker's passes. A linear model takes one; a logistic fit one per
// gradient step — the engine noises each gradient sum and takes the step (model.LogisticFit)
// before it asks for the next — and one for the confusion counts of the final model, whose
// noise is drawn in the mechanism stage, after the debit.
func trainStage(ctx context.Context, e *Engine, s *jobState) ([]provenance.Event, error) {
	start := time.Now()
	m := s.m
	var pre []byte
	var steps []model.Step
	run := func(kind string, step *model.Step) ([]byte, error) {
		p := m.pass
		p.Pass, p.Step = kind, step
		st, err := s.w.ModelPass(ctx, &p)
		if err != nil {
			return nil, err
		}
		pre = append(pre, st...)
		return st, nil
	}
	passes := 0
	if !m.logistic {
		st, err := run(wire.ModelLinear, nil)
		if err != nil {
			return nil, err
		}
		if m.stats, err = model.DecodeStats(st, m.linear); err != nil {
			return nil, errcode.Wrap(errcode.SandboxFailed, err, "the worker returned a state that does not match the model; nothing was released")
		}
		passes = 1
	} else {
		for {
			step, gradient := m.fit.Next()
			steps = append(steps, step)
			passes++
			if !gradient {
				st, err := run(wire.ModelConfusion, &step)
				if err != nil {
					return nil, err
				}
				if m.conf, err = model.DecodeConfusion(st, m.logit, step); err != nil {
					return nil, errcode.Wrap(errcode.SandboxFailed, err, "the worker returned a state that does not match the model; nothing was released")
				}
				break
			}
			st, err := run(wire.ModelGradient, &step)
			if err != nil {
				return nil, err
			}
			g, err := model.DecodeGradient(st, m.logit, step)
			if err == nil {
				err = m.fit.Apply(g)
			}
			if err != nil {
				return nil, errcode.Wrap(errcode.SandboxFailed, err, "the worker returned a state that does not match the model; nothing was released")
			}
		}
	}
	ev := &provenance.ModelTrained{Domain: s.ds.domain(), Snapshots: s.ds.snapshots(), Passes: passes, PreNoiseDigest: e.auditKey.Digest(pre),
		DurationMS: time.Since(start).Milliseconds()}
	if steps != nil {
		ev.Steps = provenance.DocOf(steps)
	}
	return events(ev), nil
}

func modelDebitStage(ctx context.Context, e *Engine, s *jobState) ([]provenance.Event, error) {
	return e.debitCost(ctx, s, modelCost(s))
}

// intervalsNote says what a linear model's intervals cover (model.LinearModel).
const intervalsNote = "parametric bootstrap over the DP noise: they cover the least-squares fit on the same clipped rows without noise, not the sampling variability of the data"

func modelMechanismStage(_ context.Context, _ *Engine, s *jobState) ([]provenance.Event, error) {
	m, r := s.m, s.m.req
	res := &api.ModelResult{Job: s.id, Type: r.Type, Dataset: s.ds.name(), Label: r.Label, Bounds: m.bounds,
		MaxRowsPerUnit: m.pass.MaxRowsPerUnit(), Spent: api.Budget(modelCost(s))}
	coef := func(c model.Coefficient) api.ModelCoefficient { return api.ModelCoefficient(c) }
	var comps []dp.Component
	if !m.logistic {
		lm, err := model.ReleaseLinear(m.stats, modelParams(s))
		if err != nil {
			return nil, err
		}
		for _, c := range lm.Coefficients {
			res.Coefficients = append(res.Coefficients, coef(c))
		}
		res.Intercept = coef(lm.Intercept)
		res.Metrics = api.ModelMetrics{N: lm.N, RMSE: ptr(lm.RMSE), R2: ptr(lm.R2)}
		res.Confidence, res.Intervals, res.Ridge = lm.Confidence, intervalsNote, lm.Ridge
		res.Mechanism = "gaussian noise on the sufficient statistics XᵀX, Xᵀy, yᵀy (Google DP), then a ridge-stabilised solve"
		comps = lm.Components
	} else {
		lm, err := m.fit.Finish(m.conf)
		if err != nil {
			return nil, err
		}
		for _, c := range lm.Coefficients {
			res.Coefficients = append(res.Coefficients, coef(c))
		}
		res.Intercept = coef(lm.Intercept)
		cm := api.ModelConfusion(lm.Confusion)
		res.Metrics = api.ModelMetrics{N: lm.N, Accuracy: ptr(lm.Accuracy), Confusion: &cm}
		res.Iterations = lm.Iterations
		res.Mechanism = fmt.Sprintf("full-batch gradient descent over %d steps, each unit's gradient clipped to %g, gaussian noise on every gradient sum, the row count and the confusion counts (Google DP), composed as one GDP mechanism", lm.Iterations, modelClip)
		comps = lm.Components
	}
	res.Components = noiseComponents(comps)
	m.result = res
	return events(&provenance.Mechanism{Aggregates: provenance.DocOf([]mechanismRecord{{Aggregate: r.Type, Mechanism: accountantGaussian,
		Epsilon: s.opts.Epsilon, Delta: s.opts.Delta, Components: comps}}), RowsReleased: 1}), nil
}

// modelOutput is the model's lineage and size for the egress policy: one aggregate column per
// coefficient, the intercept and each metric, derived from the features' and the label's
// catalog columns.
func modelOutput(s *jobState, size int) policy.Output {
	m := s.m
	derived := func(names ...string) []policy.ColumnUse {
		out := []policy.ColumnUse{}
		for _, n := range names {
			c, _ := m.rq.Column(n)
			usage := policy.UsageModelFeature
			if n == m.req.Label {
				usage = policy.UsageModelLabel
			}
			for _, ref := range c.From {
				out = append(out, s.ds.columnUse(ref, usage))
			}
		}
		return out
	}
	out := policy.Output{Rows: 1, Bytes: size, Mechanisms: []string{accountantGaussian}}
	col := func(name string, from []policy.ColumnUse) {
		out.Columns = append(out.Columns, policy.OutputColumn{Name: name, Kind: policy.KindAggregate, Aggregate: "model_coefficient", DerivedFrom: from})
	}
	for _, f := range m.req.Features {
		col(f, derived(f, m.req.Label))
	}
	col(model.InterceptName, derived(append(slices.Clone(m.req.Features), m.req.Label)...))
	col("metrics", derived(append(slices.Clone(m.req.Features), m.req.Label)...))
	out.Cells = len(out.Columns)
	return out
}

// modelEgressStage asks the egress policy about the model, as egress_policy does for a SQL
// output: allow releases it, review holds it (hold), deny withholds it (deny). The digest
// covers the model exactly as it would be released (before its release index).
func modelEgressStage(ctx context.Context, e *Engine, s *jobState) ([]provenance.Event, error) {
	out, err := provenance.Canonical(s.m.result)
	if err != nil {
		return nil, errcode.Wrap(errcode.Internal, err, "the model could not be encoded; nothing is released")
	}
	s.digest = sha(out)
	in := policy.EgressInput{Principal: s.job.Principal, Datasets: s.access.Datasets, Job: s.access.Job, Output: modelOutput(s, len(out)), Grant: s.job.Terms}
	d, err := e.policy.Egress(ctx, in)
	s.evaluated = err == nil
	if !s.evaluated {
		d = policy.Decision{Result: "deny", Reasons: []string{"policy_error: the egress policy could not be evaluated"}, BundleDigest: e.policy.Digest()}
	}
	s.egress = d
	return events(&provenance.PolicyEgress{PolicyDecision: decisionRecord(d, in)}), nil
}

func modelReleaseStage(_ context.Context, _ *Engine, s *jobState) ([]provenance.Event, error) {
	data := &provenance.Release{}
	if s.repeat != nil {
		data = s.repeat
	}
	data.OutputDigest, data.Rows = s.digest, 1
	return events(data), nil
}

func modelReceiptStage(ctx context.Context, e *Engine, s *jobState) ([]provenance.Event, error) {
	s.m.result.LogIndex = s.last.Index
	r, err := e.modelReceipt(ctx, s.job.Grant, s.m.result, s.digest, nil)
	s.receipt = r
	return nil, err
}

// modelReceipt signs the receipt of a model's release (at res.LogIndex), from the released
// document alone, so that a model released after review gets the same receipt as one
// released at once. Each coefficient names the mechanism and the budget its noise was drawn
// with (for a repeat, the first release's); Spent is what this job spent.
func (e *Engine) modelReceipt(ctx context.Context, grant string, res *api.ModelResult, digest string, reviewers []string) ([]byte, error) {
	noise := res.Spent
	if res.Repeat != nil {
		noise = res.Repeat.Spent
	}
	var mechs []ReceiptMechanism
	for _, c := range res.Coefficients {
		mechs = append(mechs, ReceiptMechanism{Column: c.Name, Mechanism: accountantGaussian, Epsilon: noise.Epsilon, Delta: noise.Delta})
	}
	return e.signReceipt(ctx, ReceiptBody{Job: res.Job, Grant: grant, OutputDigest: digest, Spent: plan.Cost(res.Spent), Mechanisms: mechs,
		LogIndex: res.LogIndex, Reviewers: reviewers})
}

// modelFingerprintStage names the model's output and takes its lock: an identical model on
// this grant is answered from its first release (release_recall) or its decision
// (decision_recall), one job at a time, so two identical jobs in flight cannot both draw
// fresh noise.
func modelFingerprintStage(_ context.Context, e *Engine, s *jobState) ([]provenance.Event, error) {
	fp, err := modelFingerprint(s)
	if err != nil {
		return nil, errcode.Wrap(errcode.Internal, err, "the model could not be fingerprinted")
	}
	s.fingerprint = fp
	s.cleanups = append(s.cleanups, e.lockFingerprint(s.job.Grant+"/"+fp))
	return nil, nil
}

// modelFingerprint names what a model's release depends on: the grant, the type, the
// worker's pass — the snapshots and how they join, the filter and the selected values as
// expression trees (so whitespace, case, column aliases and table aliases do not matter), the
// features by name with their bounds, the label's bounds, the rows per unit and the clipping
// norm — the label's name, the iterations and the budget. It leaves out the job id, the
// per-job sampling key and the deadline. The SQL kind's fingerprints carry no "kind", so the
// two never meet.
func modelFingerprint(s *jobState) (string, error) {
	pass, err := canonicalPass(s.m.pass)
	if err != nil {
		return "", err
	}
	return canonicalDigest(map[string]any{"kind": KindModel, "grant": s.job.Grant, "type": s.m.req.Type, "pass": pass,
		"label": s.m.req.Label, "iterations": s.m.iters, "budget": modelCost(s)})
}

// canonicalPass is a copy of p without what differs between identical jobs (job id, sampling
// key, deadline), its sources' aliases replaced by their positions.
func canonicalPass(p wire.ModelPass) (wire.ModelPass, error) {
	var c wire.ModelPass
	b, err := json.Marshal(p) // a deep copy: the job's own pass is left as it is
	if err == nil {
		err = json.Unmarshal(b, &c)
	}
	if err != nil {
		return c, err
	}
	c.Job, c.SamplingKey, c.TimeoutMS = "", 0, 0
	names := map[string]string{}
	for i := range c.Relation.Sources {
		src := &c.Relation.Sources[i]
		names[src.Alias] = fmt.Sprintf("s%d", i)
		src.Alias = names[src.Alias]
	}
	var rename func(x *wire.Expr)
	rename = func(x *wire.Expr) {
		if x == nil {
			return
		}
		if n, ok := names[x.Source]; ok && x.Kind == wire.KindColumn {
			x.Source = n
		}
		for _, a := range x.Args {
			rename(a)
		}
		rename(x.Else)
	}
	for _, src := range c.Relation.Sources {
		rename(src.On)
	}
	rename(c.Filter)
	rename(c.Relation.Filter)
	for _, v := range c.Values {
		rename(v)
	}
	return c, nil
}

// modelRecallStage answers a model identical to one computed before on this grant whose
// output has no decision that sticks (it was released, perhaps after review): the same
// coefficients, intercept, intervals and metrics, no new noise, nothing charged. It goes to
// the egress policy again, like a fresh one. A model held, rejected or denied never gets here
// (decision_recall).
func modelRecallStage(ctx context.Context, e *Engine, s *jobState) ([]provenance.Event, error) {
	prior, ok, err := e.recall(ctx, s)
	if !ok {
		return nil, err
	}
	var res api.ModelResult
	if err := json.Unmarshal(prior.Result, &res); err != nil {
		return nil, errcode.Wrap(errcode.Internal, err, "the stored model could not be read")
	}
	if res.Type != s.m.req.Type || len(res.Coefficients) != len(s.m.req.Features) || res.Repeat != nil {
		return nil, errcode.New(errcode.Internal, "the stored model does not match the request")
	}
	res.Repeat = &api.ModelRepeat{Job: prior.Job, Spent: res.Spent}
	res.Job, res.Dataset, res.Spent, res.LogIndex = s.id, s.ds.name(), api.Budget{}, 0
	s.m.result = &res
	s.repeat = &provenance.Release{ReleasedJob: prior.Job, Charged: new(bool)}
	return events(&provenance.AnsweredFromRelease{ReleasedJob: prior.Job}), nil
}

// modelRememberStage stores a fresh model (released or held) for identical requests.
func modelRememberStage(ctx context.Context, e *Engine, s *jobState) ([]provenance.Event, error) {
	st := *s.m.result
	st.LogIndex = 0
	return e.remember(ctx, s, &st, "the model could not be stored for repeated requests"), nil
}

// replayTrain re-runs the recorded passes — at the recorded logistic steps — over the data,
// when it is unchanged, and compares the keyed digest of their pre-noise states with the
// recorded one. The states are exact integer sums, so the digest matches bit for bit; the
// noise is never drawn again.
func replayTrain(ctx context.Context, e *Engine, rs *replayState) {
	r := rs.r
	switch {
	case r.release != nil && r.release.ReleasedJob != "":
		rs.add("train", api.ReplayNotRun, "answered from job %s's release: no pass ran (replay that job)", r.release.ReleasedJob)
		return
	case r.modelPass == nil || r.preNoise == "":
		rs.add("train", api.ReplayNotRun, "the job did not reach training%s", refusalText(r.refusal))
		return
	case !rs.dataOK:
		rs.add("train", api.ReplayNotRun, "not re-run: the data it read is not the data recorded")
		return
	}
	var domain string
	for name := range r.snapshots {
		if d, ok := e.Dataset(name); ok {
			domain = d.Spec.Domain
		}
	}
	w, err := e.worker(ctx, domain)
	if err != nil {
		rs.add("train", api.ReplayMismatch, "the worker could not start: %s", errcode.Public(err).Message)
		return
	}
	var pre []byte
	pass := func(kind string, step *model.Step) error {
		p := *r.modelPass
		p.Job, p.Pass, p.Step = "replay-"+rs.job, kind, step
		st, err := w.ModelPass(ctx, &p)
		pre = append(pre, st...)
		return err
	}
	if r.modelPass.Linear != nil {
		err = pass(wire.ModelLinear, nil)
	}
	for i := range r.modelSteps {
		kind := wire.ModelGradient
		if i == len(r.modelSteps)-1 {
			kind = wire.ModelConfusion
		}
		if err = pass(kind, &r.modelSteps[i]); err != nil {
			break
		}
	}
	switch {
	case err != nil:
		rs.add("train", api.ReplayMismatch, "re-running the passes failed: %s", errcode.Public(err).Message)
	case e.auditKey.Digest(pre) != r.preNoise:
		rs.add("train", api.ReplayMismatch, "the pre-noise states differ from the recorded ones (keyed digest %s, recorded %s)", e.auditKey.Digest(pre), r.preNoise)
	default:
		rs.add("train", api.ReplayMatch, "%d pass(es); the keyed digest of the pre-noise states is the recorded one", max(1, len(r.modelSteps)))
	}
}
