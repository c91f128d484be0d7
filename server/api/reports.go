package api

import (
	"encoding/json"
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
}

// ResultCol describes an output column.
type ResultCol struct {
	Name string `json:"name"`
	Kind string `json:"kind"` // group_key, aggregate or derived
	// Expression is a derived column's expression over the other released columns (for
	// people: HAVING, arithmetic between aggregates, windows over released rows).
	Expression string `json:"expression,omitempty"`
}

// Cell is a group key value, a released aggregate, or a value derived from released values.
type Cell struct {
	Key     *string   `json:"key,omitempty"`
	DP      *Released `json:"dp,omitempty"`
	Derived *Derived  `json:"derived,omitempty"`
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
