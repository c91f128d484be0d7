package api

import (
	"encoding/json"

	"github.com/c1b99f93/cleanroom/catalog"
)

// Explanation is POST /v1/explain: a dry run of a job — the bounded plan the worker would run,
// each aggregate's mechanism and noise, the partitions, the bounds, the access policy's
// decision and what the job would cost. It is computed without reading data or touching the
// budget, and it is not a job: nothing is queued, recorded or counted against rate limits.
type Explanation struct {
	Dataset   string            `json:"dataset"`
	Snapshots map[string]string `json:"snapshots"`
	// Plan is the bounded plan as the worker would receive it (without a sampling key, which a
	// dry run never draws).
	Plan json.RawMessage `json:"plan"`
	// PublicPartitions says whether every declared key value is released (no selection, no
	// delta); Partitions says the same in words, with the number of public partitions or the
	// selection's budget.
	PublicPartitions bool                 `json:"public_partitions"`
	Partitions       string               `json:"partitions"`
	Aggregates       []ExplainedAggregate `json:"aggregates"`
	Cost             Budget               `json:"cost"`
	Split            string               `json:"budget_split"`
	// Bounds are the contribution and clamping bounds in force; BoundsChoice says where they
	// come from (the job's options, the platform's defaults, the catalog).
	Bounds       string `json:"bounds"`
	BoundsChoice string `json:"bounds_choice"`
	// AnsweredFromRelease is set when an identical query was already released on the grant:
	// submitting would return that answer and cost nothing.
	AnsweredFromRelease string `json:"answered_from_release,omitempty"`
	// Policy is the access policy's decision on the job (allow, review or deny with reasons).
	// A denial is reported here, not as an error.
	Policy PolicyDecision `json:"policy"`
	// Budget is the balance of each account the job would draw on (its grant's and its
	// datasets'), before the job.
	Budget []LedgerBalance `json:"budget"`
}

// ExplainedAggregate is one aggregate of a dry run.
type ExplainedAggregate struct {
	Name      string  `json:"name"`
	Kind      string  `json:"kind"`
	Mechanism string  `json:"mechanism"`
	Epsilon   float64 `json:"epsilon"`
	Delta     float64 `json:"delta"`
	// Lower and Upper are the clamping bounds of each value (for kinds that read values).
	Lower *float64 `json:"lower,omitempty"`
	Upper *float64 `json:"upper,omitempty"`
	// Components are the elementary noise additions with their standard deviations.
	Components []NoiseComponent `json:"components"`
	// ExpectedError is the half-width of the 95% interval the noise alone gives each cell,
	// where it does not depend on the data (counts and sums); Note says how to read it
	// otherwise.
	ExpectedError *float64 `json:"expected_error_95,omitempty"`
	Note          string   `json:"note,omitempty"`
}

// NoiseComponent is one elementary noise addition: its mechanism, budget share, sensitivities
// and the standard deviation of the noise it adds.
type NoiseComponent struct {
	Name       string  `json:"name"`
	Mechanism  string  `json:"mechanism"`
	Epsilon    float64 `json:"epsilon"`
	Delta      float64 `json:"delta"`
	L0         int64   `json:"l0_sensitivity"`
	LInf       float64 `json:"linf_sensitivity"`
	NoiseScale float64 `json:"noise_stddev"`
}

// PolicyDecision is a policy's decision: allow, review or deny, with its reasons, how many
// reviewers a review needs, and the digest of the bundle that decided.
type PolicyDecision struct {
	Result       string   `json:"result"`
	Reasons      []string `json:"reasons"`
	Reviewers    int      `json:"reviewers,omitempty"`
	BundleDigest string   `json:"bundle_digest"`
}

// Allowed reports whether the decision lets the job run without a person's review.
func (d PolicyDecision) Allowed() bool { return d.Result == "allow" }

// Dataset size disclosures (the policy's disclose_dataset_size).
const (
	// SizePublic: the exact numbers of rows and privacy units are shown to every caller.
	SizePublic = "public"
	// SizeNone: neither is shown (only the dataset's provider and operators see its rows in
	// its registration and budget report).
	SizeNone = "none"
)

// DatasetDetail is GET /v1/datasets/{name}: what an applicant may read about a dataset before
// asking for it — its columns with types, tags, bounds and domains, its privacy unit, its size
// as the policy allows, and the budget left to the caller's grants on it and, as the policy
// allows, to the dataset itself. Never rows, never the source location.
type DatasetDetail struct {
	Name        string `json:"name"`
	Provider    string `json:"provider"`
	Grade       string `json:"grade"`
	Domain      string `json:"domain"`
	PrivacyUnit string `json:"privacy_unit,omitempty"`
	Public      bool   `json:"public"`
	Digest      string `json:"digest"`
	// Size says how the policy discloses the dataset's size: "public" (Rows and Units are
	// exact) or "none" (both absent).
	Size  string `json:"size"`
	Rows  *int64 `json:"rows,omitempty"`
	Units *int64 `json:"units,omitempty"`
	// Budget is the provider's lifetime cap (absent for a public lookup table).
	Budget *Budget `json:"budget,omitempty"`
	// Remaining is what the dataset's lifetime budget has left to allocate to grants, present
	// when the policy lets the caller see it.
	Remaining *Budget         `json:"remaining,omitempty"`
	Columns   []DatasetColumn `json:"columns"`
	// Verify are the attributes a verification (kind verify) may check claims against: the
	// column each is read from, how a unit's rows are folded, and the public band edges.
	Verify map[string]catalog.VerifyAttribute `json:"verify,omitempty"`
	// Grants are the caller's grants (those it may read the budget of) that name the dataset,
	// with what each has left.
	Grants []DatasetGrant `json:"grants"`
}

// DatasetColumn is a column of a dataset: its name and type as in the snapshot, and its
// catalog tags, bounds, public domain and date range.
type DatasetColumn struct {
	Name   string    `json:"name"`
	Type   string    `json:"type"`
	Tags   []string  `json:"tags,omitempty"`
	Bounds []float64 `json:"bounds,omitempty"`
	Domain []string  `json:"domain,omitempty"`
	// DateRange is a date column's public first and last date: its date_trunc keys have a
	// public domain.
	DateRange []string `json:"date_range,omitempty"`
	// PrivacyUnit marks the dataset's privacy unit column.
	PrivacyUnit bool `json:"privacy_unit,omitempty"`
}

// DatasetGrant is one of the caller's grants on a dataset, with its state and budget left.
type DatasetGrant struct {
	ID        string `json:"id"`
	State     string `json:"state"`
	Remaining Budget `json:"remaining"`
}
