// Package wire holds what crosses the pipe between the engine and a sandbox worker: the
// bounded plan a worker runs, the per-partition states it returns, and the metadata of the
// snapshots it holds. It is pure Go with no cgo: the planner, the server's API documents and
// any client can use these types without linking DuckDB.
//
//	engine ──Plan──▶ worker ──[]Partition──▶ engine
//	        Snapshot, RawSetInfo, Isolation ◀── worker
//
// Nothing here is row-level: a Partition carries a group key and the DP library's serialized
// pre-noise state, a Snapshot only counts and column types.
package wire

import (
	"math"
	"strings"

	"github.com/c1b99f93/cleanroom/dp"
)

// Plan is the bounded query the engine asks a worker to run. It carries no SQL text: its
// expressions are typed trees (Expr) built by the gate from the admitted AST, which the worker
// validates and renders itself (package sandbox/sqlgen).
type Plan struct {
	Job      string `json:"job"`
	Snapshot string `json:"snapshot,omitempty"` // digest of the dataset snapshot to scan
	// Relation, when set instead of Snapshot, is materialized from several snapshots (a join,
	// a per-unit subquery) and scanned in its place.
	Relation *Relation `json:"relation,omitempty"`
	// Filter is a condition over the scanned columns, or nil.
	Filter *Expr `json:"filter,omitempty"`
	// Keys are the group keys, in output order.
	Keys []*Expr `json:"keys,omitempty"`
	// Values are the values aggregates read (Spec.Value indexes them).
	Values     []*Expr       `json:"values,omitempty"`
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
	// Profile, when set, asks for contribution histograms instead of the aggregates.
	Profile *Profile `json:"profile,omitempty"`
	// Bias, when set, has the bounding pass count what bounding drops and clamps.
	Bias *BiasSpecs `json:"bias,omitempty"`
	// Differences, when set, makes the plan a differencing check: for each condition the
	// worker counts the privacy units with a row on which it holds (an evaluation error is
	// "does not hold"), and returns the smallest count as the state of the plan's one
	// aggregate, a count_distinct over one partition with bounds 1 × 1. Adding or removing a
	// unit changes each count by at most one, hence their minimum by at most one: one
	// sensitivity-1 count compares any number of conditions. Such a plan has no filter, keys,
	// values, relation, profile or bias.
	Differences []*Expr `json:"differences,omitempty"`
}

// KeyString is a partition key tuple as one string, NULL distinct from every text: for maps
// and ordering of partitions on either side of the pipe.
func KeyString(k []*string) string {
	var b strings.Builder
	for _, v := range k {
		if v == nil {
			b.WriteString("\x00N")
		} else {
			b.WriteString("\x00V" + *v)
		}
	}
	return b.String()
}

// Bounds are the per-unit contribution bounds the worker enforces: at most L0 groups, at most
// L∞ rows in each and, when MaxRowsPerUnit is set, at most that many rows in all (an L1 bound:
// the unit's lowest-ranked rows among those the first two bounds keep).
type Bounds struct {
	MaxGroupsContributed     int64 `json:"max_groups_contributed"`
	MaxContributionsPerGroup int64 `json:"max_contributions_per_group"`
	MaxRowsPerUnit           int64 `json:"max_rows_per_unit,omitempty"`
}

// Calibration is the L0 and L∞ a mechanism of the kind is calibrated to under these bounds.
// A mechanism counting units (COUNT(DISTINCT unit), partition selection, a hidden unit count)
// moves each partition a unit reaches by 1, and a unit reaches at most min(L0, MaxRowsPerUnit)
// partitions. Every other mechanism moves each partition by at most L∞ and, with
// MaxRowsPerUnit C, all partitions together by at most C. The library's noise reads a
// calibration (a, m) as a partitions of up to m each: Laplace through the L1 norm a·m,
// Gaussian through the L2 norm √a·m. Of the pairs that cover every contribution the bounds
// allow (Covers), this returns the one with less noise for the mechanism: (⌈C/L∞⌉, L∞), or
// (1, C) — for Laplace exactly C — and (L0, L∞) without C.
func (b Bounds) Calibration(countsUnits, gaussian bool) (l0, lInf int64) {
	l0, lInf = b.MaxGroupsContributed, b.MaxContributionsPerGroup
	c := b.MaxRowsPerUnit
	switch {
	case c <= 0:
		return l0, lInf
	case countsUnits:
		return min(l0, c), lInf
	}
	lInf = min(lInf, c) // no group keeps more than the unit does
	if lInf <= 0 || c >= l0*lInf {
		return l0, lInf
	}
	a := min(l0, (c+lInf-1)/lInf)
	if gaussian {
		if math.Sqrt(float64(a))*float64(lInf) <= float64(c) {
			return a, lInf
		}
	} else if a*lInf <= c {
		return a, lInf
	}
	return 1, c
}

// Covers reports whether a mechanism calibrated to l0 partitions of up to lInf each covers
// every contribution vector the bounds allow (Calibration): for a unit count, l0 ≥ the
// partitions a unit reaches; otherwise lInf ≥ L∞, l0·lInf ≥ the largest L1 norm (L0·L∞, at
// most C) and l0·lInf² ≥ the largest squared L2 norm (entries ≤ L∞ summing to ≤ C have
// Σx² ≤ L∞·C; at most L0·L∞² without C).
func (b Bounds) Covers(l0, lInf int64, countsUnits bool) bool {
	bl0, bInf, c := b.MaxGroupsContributed, b.MaxContributionsPerGroup, b.MaxRowsPerUnit
	if countsUnits {
		if c > 0 {
			bl0 = min(bl0, c)
		}
		return l0 >= bl0
	}
	if c > 0 {
		bInf = min(bInf, c)
	}
	l1, l2 := float64(bl0)*float64(bInf), float64(bl0)*float64(bInf)*float64(bInf)
	if c > 0 {
		l1, l2 = min(l1, float64(c)), min(l2, float64(bInf)*float64(c))
	}
	return lInf >= bInf && float64(l0)*float64(lInf) >= l1 && float64(l0)*float64(lInf)*float64(lInf) >= l2
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

// Relation is a join of snapshots, and perhaps a per-unit aggregation over it, that the worker
// materializes before bounding. The result is clustered by the privacy unit of the first
// source as a snapshot is — an ascending unit key, consecutive rowids per unit, rows in an
// order fixed by the data — so the same bounding pass runs over it, after the join: however
// many rows the join gives one unit, that unit still contributes at most the plan's bounds.
type Relation struct {
	Sources []RelationSource `json:"sources"`
	Columns []RelationColumn `json:"columns"`
	// PerUnit groups the joined rows by unit and GroupBy; Columns are then group keys and
	// exact per-unit aggregates, and Filter applies before grouping.
	PerUnit bool    `json:"per_unit,omitempty"`
	GroupBy []*Expr `json:"group_by,omitempty"`
	Filter  *Expr   `json:"filter,omitempty"`
	// MaxRowsPerUnit, when positive, keeps at most that many rows of each privacy unit in every
	// source with a unit before the sources are joined, chosen by a keyed hash of each row's
	// place among its unit's rows (which depends on that unit's rows alone). A join multiplies
	// a unit's rows; this bounds the product by public quantities, whatever the data holds.
	MaxRowsPerUnit int64 `json:"max_rows_per_unit,omitempty"`
	// Keyed selects the worker's rendering: sources matched through the snapshots' unit keys and
	// joined rows ordered by their rowids (every plan built today). Plans recorded before it
	// existed lack it and are materialized as they were then — units normalised as text per
	// row, rows ordered by every column — so their replay reproduces the same pre-noise states.
	Keyed bool `json:"keyed,omitempty"`
}

// RelationSource is one snapshot of a Relation, whose columns its expressions read as
// Col(alias, column).
type RelationSource struct {
	Snapshot string `json:"snapshot"`
	Alias    string `json:"alias"`
	// Unit is the source's privacy unit column; "" for a public lookup table.
	Unit string `json:"unit,omitempty"`
	// Join is "" for the first source, else "inner" or "left". A source with a unit joins on
	// the unit (normalised as at registration); a lookup table joins on On.
	Join string `json:"join,omitempty"`
	On   *Expr  `json:"on,omitempty"`
}

// RelationColumn is one column of a Relation: its name and its expression over the sources. A
// column of a per-unit relation is either one of its GroupBy terms (Expr equal to that term) or
// an exact per-unit aggregate: Aggregate names it (count_star, count, sum, avg, min, max), Expr
// is its argument, and Clamps apply to its result in order. The worker renders both (see
// total.go).
type RelationColumn struct {
	Name      string  `json:"name"`
	Expr      *Expr   `json:"expr,omitempty"`
	Aggregate string  `json:"aggregate,omitempty"`
	Clamps    []Clamp `json:"clamps,omitempty"`
}

// Clamp is LEAST(value, Value) or GREATEST(value, Value) with a numeric constant's text (as
// ValidNumber accepts it).
type Clamp struct {
	Func  string `json:"func"` // "least" or "greatest"
	Value string `json:"value"`
}

// RawSetInfo describes a snapshot's raw-value set file. It holds no value.
type RawSetInfo struct {
	// Digest is the SHA-256 of the file; a set rebuilt from the same snapshot under the same
	// key has the same digest (its hashes are sorted).
	Digest  string `json:"digest"`
	Entries int    `json:"entries"`
	// KeyID is rawset.Keyer.ID of the key, in hex: it names the key without revealing it.
	KeyID string `json:"key_id"`
}

// Profile, when set on a Plan, asks the worker for contribution histograms over exactly the
// rows the plan would read (its relation, filter, keys and public domains) instead of its
// aggregates: per privacy unit, the number of groups it has rows in, and the number of rows
// it has in one of those groups chosen by a keyed hash of the unit and the group. Each is
// binned geometrically (1, 2, 3–4, 5–8, …, up to the maximum, then one bin above it), so a
// unit falls into exactly one bin of each histogram. Every bin is a DP count (Spec) of units;
// the worker returns each bin's pre-noise state as a partition keyed by ProfileBin's name.
type Profile struct {
	MaxGroups int64 `json:"max_groups"`
	MaxRows   int64 `json:"max_rows"`
	// TotalRows bins each unit's rows in all its groups in the "rows" histogram, for an L1
	// bound (Bounds.MaxRowsPerUnit), instead of the rows of its lowest-ranked group.
	TotalRows bool `json:"total_rows,omitempty"`
	// Spec is every bin's count: CountDistinct with L0 2 (one bin in each of the two
	// histograms) and L∞ 1. With RowsSpec, Spec counts the groups histogram's bins and
	// RowsSpec the rows histogram's, each at L0 1 with its own share of the epsilon.
	Spec     dp.Spec  `json:"spec"`
	RowsSpec *dp.Spec `json:"rows_spec,omitempty"`
}

// SpecFor is the spec counting the bin called name (ProfileBin).
func (p *Profile) SpecFor(name string) dp.Spec {
	if p.RowsSpec != nil && strings.HasPrefix(name, "rows/") {
		return *p.RowsSpec
	}
	return p.Spec
}

// ProfileBin names the bin of value v (≥ 1) in the histogram called name ("groups" or
// "rows") whose last bounded bin ends at max: the smallest power of two ≥ v, or "over".
func ProfileBin(name string, v, max int64) string {
	edge := int64(1)
	for edge < v {
		edge *= 2
	}
	if edge > max {
		return name + "/over"
	}
	return name + "/" + itoa(edge)
}

// ProfileEdges are the upper edges of a histogram's bounded bins: 1, 2, 4, … up to max.
func ProfileEdges(max int64) []int64 {
	var out []int64
	for e := int64(1); e <= max; e *= 2 {
		out = append(out, e)
	}
	return out
}

func itoa(v int64) string {
	if v == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	for v > 0 {
		i--
		b[i] = byte('0' + v%10)
		v /= 10
	}
	return string(b[i:])
}

// BiasSpecs, when set on a Plan, has the worker's bounding pass also count what bounding
// costs the answer. Each privacy unit with kept-or-dropped rows adds, once: 1 to Units; 1 to
// Dropping if bounding dropped any of its rows; its fraction of rows dropped (in [0, 1]) to
// DroppedFraction; and, per aggregate that clamps values, 1 to Clamped[j] if any of its kept
// values lay outside the aggregate's bounds. Every one of these is a sum over units of a
// number in [0, 1], so each has sensitivity 1; the worker returns their pre-noise states.
type BiasSpecs struct {
	Count           dp.Spec   `json:"count"`            // CountDistinct, L0 1, L∞ 1
	DroppedFraction dp.Spec   `json:"dropped_fraction"` // Sum over [0, 1], L0 1, L∞ 1
	Clamped         []dp.Spec `json:"clamped,omitempty"`
	// ClampedAggregates are the indices in Plan.Aggregates the Clamped entries count.
	ClampedAggregates []int `json:"clamped_aggregates,omitempty"`
}

// BiasStates are the pre-noise states of a plan's BiasSpecs.
type BiasStates struct {
	Units           []byte   `json:"units"`
	Dropping        []byte   `json:"dropping"`
	DroppedFraction []byte   `json:"dropped_fraction"`
	Clamped         [][]byte `json:"clamped,omitempty"`
}
