package api

import (
	"encoding/json"
	"fmt"
	"time"
)

// The documents below are what the engine releases and reports: a job's result, an account's
// budget report, an auditor's replay of a job and the log's verification. They are plain data
// here so that a client reads them without linking the engine (its DuckDB worker, its OPA
// policies, its SQLite ledger); the engine builds them.

// Result is a released job's result (Job.Result and ReviewItem.Result hold one): the output
// columns, one row of cells per released group, and what the release cost.
type Result struct {
	Job      string      `json:"job"`
	Dataset  string      `json:"dataset"`
	Columns  []ResultCol `json:"columns"`
	Rows     [][]Cell    `json:"rows"`
	Spent    Budget      `json:"spent"`
	Split    string      `json:"budget_split"`
	Bounds   string      `json:"bounds"`
	LogIndex uint64      `json:"log_index"`
	// Suppressed is how many rows were withheld for standing for fewer privacy units than the
	// policy's minimum; present only when the policy lets the result say so.
	Suppressed *int `json:"suppressed_rows,omitempty"`
	// Bias says what contribution bounding and clamping cost the answer (noisy estimates);
	// the intervals cover the noise only.
	Bias *Bias `json:"bias,omitempty"`
}

// Bias is what contribution bounding and clamping cost an answer, estimated under DP with a
// stated share of the job's epsilon. Each share is a noisy total over privacy units (each unit
// adds at most 1: sensitivity 1) divided by the noisy count of units, clamped to [0, 1], and
// comes with a 95% tolerance: with probability at least 95% the true share lies within share ±
// tolerance. The tolerance is post-processing of the library's confidence intervals of the two
// noisy totals (the part's at 96%, the units' at 99%, so both hold at once with probability at
// least 95% by the union bound; no approximation), from noisy values and public parameters
// only. The confidence intervals of the cells cover the noise only, never this bias.
type Bias struct {
	// Epsilon is what the estimate cost (part of the job's epsilon, not added to it).
	Epsilon float64 `json:"epsilon"`
	// Units is the noisy number of privacy units with rows in the query.
	Units float64 `json:"units"`
	// UnitsWithDroppedRows is the share of those units of which bounding dropped some rows.
	UnitsWithDroppedRows float64 `json:"units_with_dropped_rows_share"`
	// UnitsWithDroppedRowsTolerance is UnitsWithDroppedRows' 95% half-width (absent in results
	// released before tolerances were stated).
	UnitsWithDroppedRowsTolerance float64 `json:"units_with_dropped_rows_share_tolerance,omitempty"`
	// RowsDropped is the mean over the units of each unit's dropped fraction (the share of its
	// rows that bounding dropped). It is not the share of all rows dropped: every unit weighs
	// the same, so a few units with very many rows, which lose the most, count as little as
	// any other, and on heavy-tailed data it reads far below the share of rows a COUNT(*)
	// misses. ModelRowsDropped weighs units by their rows.
	RowsDropped float64 `json:"rows_dropped_share"`
	// RowsDroppedTolerance is RowsDropped's 95% half-width (absent in results released before
	// tolerances were stated).
	RowsDroppedTolerance float64 `json:"rows_dropped_share_tolerance,omitempty"`
	// ModelRowsDropped, when the bounds were chosen automatically, is the share of all rows
	// the choice's model expects bounding to drop, read from the noisy histograms of
	// contributions (free post-processing). Unlike RowsDropped it weighs a unit by its rows,
	// so a few units with very many rows show when the histograms saw them; it is a model's
	// reading, with no stated tolerance or guarantee (a tail under the histograms' noise is
	// missing from it).
	ModelRowsDropped *float64 `json:"model_rows_dropped_share,omitempty"`
	// Clamped lists, per aggregate that clamps values, the share of units with a value
	// clamped to the aggregate's bounds.
	Clamped []ClampedShare `json:"clamped,omitempty"`
	// Chosen are the contribution bounds the job ran with and how they were chosen.
	Chosen ChosenBounds `json:"contribution_bounds"`
}

// ClampedShare is the share of units with a value clamped to an aggregate's bounds: units of
// which at least one value that bounding kept lay outside [Lower, Upper].
type ClampedShare struct {
	Aggregate string  `json:"aggregate"`
	Lower     float64 `json:"lower"`
	Upper     float64 `json:"upper"`
	Units     float64 `json:"units_share"`
	// UnitsTolerance is Units' 95% half-width (absent in results released before tolerances
	// were stated).
	UnitsTolerance float64 `json:"units_share_tolerance,omitempty"`
}

// ChosenBounds are a job's contribution bounds: set by the job, or chosen automatically under
// DP within the operator's maxima.
type ChosenBounds struct {
	MaxGroupsContributed     int64 `json:"max_groups_contributed"`
	MaxContributionsPerGroup int64 `json:"max_contributions_per_group"`
	// MaxRowsPerUnit, when set, caps a unit's rows in all groups together (an L1 bound, chosen
	// where every key has a public domain): the noise of a count is that of one group of
	// MaxRowsPerUnit rows, however many groups a unit reaches.
	MaxRowsPerUnit int64 `json:"max_rows_per_unit,omitempty"`
	// GroupsAutomatic and RowsAutomatic say which bound was chosen under DP; the maxima are
	// the operator's limits for that choice.
	GroupsAutomatic bool  `json:"groups_automatic,omitempty"`
	RowsAutomatic   bool  `json:"rows_automatic,omitempty"`
	MaxGroups       int64 `json:"auto_max_groups_contributed,omitempty"`
	// MaxRows is the rows maximum of the choice: per group, or under an L1 bound per unit.
	MaxRows int64 `json:"auto_max_contributions_per_group,omitempty"`
}

// BiasWarnShare is the share of dropped rows, of units with dropped rows or of clamped units
// above which a client warns.
const BiasWarnShare = 0.05

// ShareText writes a share in percent with its 95% tolerance, "8.1% ± 1.2%" (the share alone
// when no tolerance is stated).
func ShareText(share, tolerance float64) string {
	if tolerance > 0 {
		return fmt.Sprintf("%.1f%% ± %.1f%%", 100*share, 100*tolerance)
	}
	return fmt.Sprintf("%.1f%%", 100*share)
}

// Warnings are one line per bias above BiasWarnShare, each naming what to do about it. The
// dropped-rows warning fires when any estimate passes the threshold: the bounds' model of the
// share of all rows (ModelRowsDropped), the mean over units of their dropped fractions
// (RowsDropped), or the share of units that lost rows (UnitsWithDroppedRows). The last catches
// a heavy tail the mean misses when there is no model (bounds set by the job): the units that
// lose rows are the ones with many, so the share of all rows dropped is larger than the mean
// (on the committed testdata at 1 × 32, 15.6% of all rows against a mean of 0.7%). The line
// leads with the estimate that passed and states the others.
func (b *Bias) Warnings() []string {
	if b == nil {
		return nil
	}
	var out []string
	c := b.Chosen
	perUnit := ShareText(b.RowsDropped, b.RowsDroppedTolerance) + " of a unit's rows on average"
	units := ShareText(b.UnitsWithDroppedRows, b.UnitsWithDroppedRowsTolerance) + " of units"
	model, modelText := -1.0, ""
	if b.ModelRowsDropped != nil {
		model = *b.ModelRowsDropped
		modelText = fmt.Sprintf("; about %.0f%% of all rows by the bounds' model", 100*model)
	}
	var what string
	switch {
	case model > BiasWarnShare && model > b.RowsDropped:
		what = fmt.Sprintf("about %.0f%% of all rows by the bounds' model (%s; rows of %s)", 100*model, perUnit, units)
	case b.RowsDropped > BiasWarnShare:
		what = fmt.Sprintf("%s (rows of %s%s)", perUnit, units, modelText)
	case b.UnitsWithDroppedRows > BiasWarnShare:
		what = fmt.Sprintf("rows of %s (%s%s; units with many rows lose the most and count as one in that mean, so the share of all rows dropped is larger)", units, perUnit, modelText)
	}
	if what != "" {
		how := fmt.Sprintf("raise max_groups_contributed (now %d) or max_contributions_per_group (now %d)", c.MaxGroupsContributed, c.MaxContributionsPerGroup)
		if c.GroupsAutomatic || c.RowsAutomatic {
			how = fmt.Sprintf("they were chosen automatically within the operator's maxima (%d groups, %d rows); set them higher explicitly, or spend more epsilon so larger bounds pay off", c.MaxGroups, c.MaxRows)
		}
		out = append(out, fmt.Sprintf("warning: contribution bounding dropped %s: counts and sums are biased low beyond their intervals; %s", what, how))
	}
	for _, cl := range b.Clamped {
		if cl.Units > BiasWarnShare {
			out = append(out, fmt.Sprintf("warning: %s clamped values of %s of units to [%g, %g]: the answer is biased toward the bounds beyond its interval", cl.Aggregate, ShareText(cl.Units, cl.UnitsTolerance), cl.Lower, cl.Upper))
		}
	}
	return out
}

// ResultCol describes an output column.
type ResultCol struct {
	Name string `json:"name"`
	Kind string `json:"kind"` // group_key, aggregate or derived
	// Expression is a derived column's expression over the other released columns (for
	// people: HAVING, arithmetic between aggregates, windows over released rows).
	Expression string `json:"expression,omitempty"`
	// Note says how to read the column when its name could mislead: a MIN or MAX is a DP
	// quantile at rank 0 or 1 within the clamping bounds, not the single extreme value.
	Note string `json:"note,omitempty"`
}

// Cell is a group key value, a released aggregate, or a value derived from released values.
type Cell struct {
	Key     *string   `json:"key,omitempty"`
	DP      *Released `json:"dp,omitempty"`
	Derived *Derived  `json:"derived,omitempty"`
	// AtClampBound is "lower" or "upper" when the released value sits at a clamping bound (a
	// MAX at its upper bound): the true value may lie beyond it.
	AtClampBound string `json:"at_clamp_bound,omitempty"`
}

// MechanismPostProcessing is a derived cell's mechanism: computed from released values only.
const MechanismPostProcessing = "post_processing"

// Derived is a value computed after release from released values only (post-processing): it
// costs no budget. Value is null where the expression is undefined (a division by zero, LAG
// before the first row). The interval is the image of the operands' 95% intervals under the
// expression, so it covers the value of the operands' true values with probability at least
// 1 − 0.05·k for k operands; an end is null when the interval is unbounded on that side (a
// division by an interval that contains 0).
type Derived struct {
	Value     *float64 `json:"value"`
	CILow     *float64 `json:"ci_low"`
	CIHigh    *float64 `json:"ci_high"`
	Mechanism string   `json:"mechanism"`
}

// Released is one released aggregate value: the noisy value, its 95% confidence interval, the
// mechanism that added the noise and the whole aggregate's (epsilon, delta).
type Released struct {
	Value     float64 `json:"value"`
	CILow     float64 `json:"ci_low"`
	CIHigh    float64 `json:"ci_high"`
	Mechanism string  `json:"mechanism"`
	Epsilon   float64 `json:"epsilon"`
	Delta     float64 `json:"delta"`
}

// BudgetReport is GET /v1/grants/{id}/budget and /v1/datasets/{name}/budget: an account's
// balance, its allocations (a dataset's to its grants, or a grant's from its datasets), its
// per-job history and, beside the basic composition the ledger enforces, a tighter bound over
// the same debits (for information).
type BudgetReport struct {
	Balance     LedgerBalance      `json:"balance"`
	Allocations []LedgerAllocation `json:"allocations"`
	History     []LedgerEntry      `json:"history"`
	Tighter     AccountingReport   `json:"accounting"`
}

// LedgerBalance is an account's total budget and what is allocated, spent (reservations
// included), remaining and reserved by running jobs.
type LedgerBalance struct {
	Account   string `json:"account"`
	Total     Budget `json:"total"`
	Allocated Budget `json:"allocated"`
	Spent     Budget `json:"spent"`
	Remaining Budget `json:"remaining"`
	Reserved  Budget `json:"reserved"`
}

// LedgerAllocation is a grant's budget carved out of one dataset's lifetime budget.
type LedgerAllocation struct {
	Holder string `json:"holder"`
	Source string `json:"source"`
	// Amount is what was carved out; Returned the part given back when the allocation closed;
	// Outstanding = Amount − Returned is what the source still counts as allocated.
	Amount      Budget `json:"amount"`
	Returned    Budget `json:"returned"`
	Outstanding Budget `json:"outstanding"`
	// Closed says why the allocation closed ("" while open): revoked, expired or cancelled.
	Closed    string    `json:"closed,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// LedgerEntry is one job's charge to one account.
type LedgerEntry struct {
	Job       string          `json:"job"`
	Account   string          `json:"account"`
	Cost      Budget          `json:"cost"`
	State     string          `json:"state"` // reserved, debited or refunded
	Mechanism json.RawMessage `json:"mechanism,omitempty"`
	Reason    string          `json:"reason,omitempty"` // the refund reason
	CreatedAt time.Time       `json:"created_at"`
	UpdatedAt time.Time       `json:"updated_at"`
}

// AccountingReport gives the cost of an account's history twice, at the same delta: Basic is
// what the ledger enforces; Tighter is a valid bound that is never looser, reported for
// information. Method says which composition produced Tighter.
type AccountingReport struct {
	Basic   Budget `json:"basic"`
	Tighter Budget `json:"tighter"`
	Method  string `json:"method"`
	Events  int    `json:"events"`
}

// Replay stage results.
const (
	ReplayMatch       = "match"
	ReplayMismatch    = "mismatch"
	ReplayNotRun      = "not_run"      // the job never reached this stage
	ReplayNotReplayed = "not_replayed" // by design (DP noise is never drawn again)
)

// ReplayReport is POST /v1/audit/jobs/{id}/replay: an auditor's replay of one job from its
// provenance records.
type ReplayReport struct {
	Job    string        `json:"job"`
	Stages []ReplayStage `json:"stages"`
	// Match is true when no stage mismatched.
	Match bool `json:"match"`
}

// ReplayStage is one stage of a job as replayed: whether recomputing it gave what was
// recorded, and if not, what differed.
type ReplayStage struct {
	Stage  string `json:"stage"`
	Result string `json:"result"`
	Detail string `json:"detail,omitempty"`
}

// VerifyReport is GET /v1/audit/verify: the outcome of checking the provenance log (the
// engine's provenance.VerifyReport, field for field).
//
// Problem and FirstBad name the first problem in log order; FirstBad is -1 and Problem empty
// when the whole log verified. The Merkle tree and checkpoint fields are filled when the
// server checked them.
type VerifyReport struct {
	Records  uint64 `json:"records"`           // entries whose chain verified before the first line problem (all, if none)
	Head     string `json:"head"`              // hash of the last verified entry
	FirstBad int64  `json:"first_bad"`         // index of the first bad entry; -1 if ok
	Problem  string `json:"problem,omitempty"` // what is wrong; empty if ok

	TreeSize       uint64 `json:"tree_size,omitempty"`       // entries the Merkle tree was computed over (= Records)
	Root           string `json:"root,omitempty"`            // RFC 6962 root of those entries, base64 as in a checkpoint
	Checkpoints    int    `json:"checkpoints,omitempty"`     // checkpoints verified before the first checkpoint problem
	CheckpointLine int    `json:"checkpoint_line,omitempty"` // 1-based line of the bad checkpoint in <log>.checkpoints
	TreeFile       string `json:"tree_file,omitempty"`       // state of <log>.tree; anything but "ok" is a warning
}

// OK reports whether the whole log verified.
func (r VerifyReport) OK() bool { return r.Problem == "" }
