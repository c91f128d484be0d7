package sandbox

import (
	"github.com/c1b99f93/cleanroom/engine/dp"
)

// Plan is the bounded query the engine asks a worker to run. Every SQL fragment in it was
// rendered by the engine from a gated AST; applicant text never reaches the worker verbatim.
type Plan struct {
	Job      string `json:"job"`
	Snapshot string `json:"snapshot,omitempty"` // digest of the dataset snapshot to scan
	// Relation, when set instead of Snapshot, is materialized from several snapshots (a join,
	// a per-unit subquery) and scanned in its place.
	Relation *Relation `json:"relation,omitempty"`
	// Filter is a SQL boolean expression over the snapshot's columns, or "".
	Filter string `json:"filter,omitempty"`
	// Keys are SQL expressions of the group keys, in output order.
	Keys []string `json:"keys,omitempty"`
	// Values are SQL expressions read by Sum aggregates (Spec.Value indexes them).
	Values     []string      `json:"values,omitempty"`
	Aggregates []dp.Spec     `json:"aggregates"`
	Selection  *dp.Selection `json:"selection,omitempty"` // nil: public partitions
	// Domains holds each key's public values when the partitions are public: rows whose key
	// tuple is not in their product are dropped before bounding.
	Domains [][]string `json:"domains,omitempty"`
	Bounds  Bounds     `json:"bounds"`
	// SamplingKey keys the hash that chooses which groups and rows of an over-contributing
	// unit are kept; it depends only on the unit's own rows, so sensitivity holds.
	SamplingKey uint64 `json:"sampling_key"`
	TimeoutMS   int64  `json:"timeout_ms,omitempty"`
}

// Bounds are the per-unit contribution bounds the worker enforces.
type Bounds struct {
	MaxGroupsContributed     int64 `json:"max_groups_contributed"`
	MaxContributionsPerGroup int64 `json:"max_contributions_per_group"`
}

// Partition is one group's output from the worker: its key and the pre-noise states.
type Partition struct {
	Key       []*string // nil entry = SQL NULL
	States    [][]byte  // one per Plan.Aggregates entry
	Selection []byte    // nil when the plan uses public partitions
}

// Snapshot describes a registered dataset snapshot. Rows and Units are exact counts of the
// provider's data; they are platform metadata for the provider and operator, never released
// to applicants.
type Snapshot struct {
	Digest  string   `json:"digest"`
	Rows    int64    `json:"rows"`
	Units   int64    `json:"units"`
	Columns []Column `json:"columns"`
	// RawSet describes the raw-value set built at registration (nil for a snapshot registered
	// before sets existed, or by a client without a raw-value key).
	RawSet *RawSetInfo `json:"rawset,omitempty"`

	table  string          // worker-side: the DuckDB table holding the rows
	twins  map[string]bool // worker-side: text columns with a hidden ENUM twin
	starts []int64         // worker-side: first rowid of each unit, then the row count
}

// Column is a snapshot column's name and Arrow type.
type Column struct {
	Name string `json:"name"`
	Type string `json:"type"`
}

// Isolation reports what isolation is in force for a worker.
type Isolation struct {
	NetworkNamespace bool     `json:"network_namespace"`
	Interfaces       []string `json:"interfaces"`
	NoNewPrivs       bool     `json:"no_new_privs"`
	AddressSpace     uint64   `json:"rlimit_as_bytes"`
	CPUSeconds       uint64   `json:"rlimit_cpu_seconds"`
	CoreDumps        bool     `json:"core_dumps"`
	Warnings         []string `json:"warnings,omitempty"`
}
