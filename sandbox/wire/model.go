package wire

import "github.com/c1b99f93/cleanroom/dp/model"

// Model pass kinds: what a ModelPass asks the worker to accumulate.
const (
	// ModelLinear: the sufficient statistics of a linear regression (model.Stats).
	ModelLinear = "linear"
	// ModelGradient: one step's clipped gradient sum of a logistic regression (model.Gradient).
	ModelGradient = "gradient"
	// ModelConfusion: the final logistic model's confusion counts (model.Confusion).
	ModelConfusion = "confusion"
)

// ModelPass asks a worker for one pass of a model job over its rows: it reads the relation's
// rows, evaluates Filter and Values (the features, then the label) per row, drops every row
// with a NULL, NaN or infinite value, keeps at most MaxRowsPerUnit rows of each privacy unit
// — the lowest by a hash keyed with SamplingKey of the row's values, so the choice depends on
// the unit's own rows alone — and returns only the pre-noise state of dp/model that Pass
// names (Stats.Encode, Gradient.Encode, Confusion.Encode). Nothing row-level returns: a state
// is exact integer sums, which the engine noises before anything is released.
type ModelPass struct {
	Job string `json:"job"`
	// Relation names the snapshots and how they join; its Columns are unused (Values are read
	// over the sources' columns, qualified by alias) and its MaxRowsPerUnit bounds each unit's
	// rows read from each source before the join.
	Relation Relation `json:"relation"`
	Filter   *Expr    `json:"filter,omitempty"`
	// Values are the features, in the spec's order, then the label.
	Values []*Expr `json:"values"`
	Pass   string  `json:"pass"`
	// Linear is the spec of a linear pass; Logistic and Step those of a gradient or confusion
	// pass (Step is the engine's, computed from released values only).
	Linear      *model.LinearSpec   `json:"linear,omitempty"`
	Logistic    *model.LogisticSpec `json:"logistic,omitempty"`
	Step        *model.Step         `json:"step,omitempty"`
	SamplingKey uint64              `json:"sampling_key"`
	TimeoutMS   int64               `json:"timeout_ms,omitempty"`
}

// MaxRowsPerUnit is the spec's bound on one unit's rows (0 when the pass has no spec).
func (p *ModelPass) MaxRowsPerUnit() int {
	switch {
	case p.Linear != nil:
		return p.Linear.MaxRowsPerUnit
	case p.Logistic != nil:
		return p.Logistic.MaxRowsPerUnit
	}
	return 0
}

// Features is the number of features the spec has (0 when the pass has no spec).
func (p *ModelPass) Features() int {
	switch {
	case p.Linear != nil:
		return len(p.Linear.Features)
	case p.Logistic != nil:
		return len(p.Logistic.Features)
	}
	return 0
}
