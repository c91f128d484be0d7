package policy

import (
	"fmt"
	"math"
)

// Principal is who asks: a user of an organisation acting in a role
// (provider, operator, applicant, reviewer, auditor).
type Principal struct {
	Name string `json:"name"`
	Role string `json:"role"`
	Org  string `json:"org"`
}

// DatasetRef is the catalog's view of a dataset a job reads.
type DatasetRef struct {
	Name        string `json:"name"`
	Provider    string `json:"provider"`
	Grade       string `json:"grade"` // L1..L4
	Domain      string `json:"domain"`
	PrivacyUnit string `json:"privacy_unit"` // the column naming the protected entity
	// Public marks a lookup table (district names, code lists): no privacy unit, no budget.
	// A job must also read a dataset that is not public.
	Public bool `json:"public"`
}

// Column usages in a job.
const (
	UsageGroupKey          = "group_key"
	UsageFilter            = "filter"
	UsageAggregate         = "aggregate"
	UsageCountDistinctUnit = "count_distinct_unit"
	UsageCountRows         = "count_rows" // COUNT(col): rows where the column is not NULL
	UsageOutput            = "output"
	// UsageJoinUnit: a privacy unit equated with another private dataset's privacy unit in
	// a join's ON.
	UsageJoinUnit = "join_unit"
	// UsageJoinKey: a private dataset's column equated with a public lookup table's column
	// in a join's ON.
	UsageJoinKey = "join_key"
	// UsageFilterEquality: an identifier compared with constants by = or IN in WHERE; any
	// other filter on an identifier is UsageFilter.
	UsageFilterEquality = "filter_equality"
	// UsageVerifyAttribute: the column a verification checks claims against (kind verify).
	UsageVerifyAttribute = "verify_attribute"
	// UsageModelFeature and UsageModelLabel: a column a model's feature or label reads (kind
	// model); its values are clipped and summed into noisy statistics, never output.
	UsageModelFeature = "model_feature"
	UsageModelLabel   = "model_label"
	// UsageWasmInput: a column a custom model's module reads (kind wasm); its values reach
	// the output only through the clamped, noisy block average.
	UsageWasmInput = "wasm_input"
)

// ColumnUse is one use of a catalog column by a job.
type ColumnUse struct {
	Dataset     string   `json:"dataset"`
	Column      string   `json:"column"`
	Tags        []string `json:"tags"`  // catalog tags: identifier, quasi_identifier, sensitive, attribute
	Usage       string   `json:"usage"` // one of the Usage… constants
	PrivacyUnit bool     `json:"privacy_unit"`
}

// JobParams are a job's privacy parameters.
type JobParams struct {
	Kind                     string  `json:"kind"` // "sql"
	Epsilon                  float64 `json:"epsilon"`
	Delta                    float64 `json:"delta"`
	MaxGroupsContributed     int     `json:"max_groups_contributed"`
	MaxContributionsPerGroup int     `json:"max_contributions_per_group"`
	PublicPartitions         bool    `json:"public_partitions"`
	// Checks is how many facts a verification job checks (kind "verify"; 0 otherwise).
	Checks int `json:"checks,omitempty"`
	// Model is a model job's shape (kind "model"; nil otherwise).
	Model *ModelParams `json:"model,omitempty"`
	// Wasm is a custom model job's shape (kind "wasm"; nil otherwise).
	Wasm *WasmParams `json:"wasm,omitempty"`
}

// WasmParams are a custom model job's shape, for the policy's limits.
type WasmParams struct {
	Blocks       int   `json:"blocks"`
	OutputLength int   `json:"output_length"`
	ModuleBytes  int   `json:"module_bytes"`
	DeadlineMS   int64 `json:"deadline_ms"`
}

// ModelParams are a model job's shape, for the policy's limits.
type ModelParams struct {
	Type           string `json:"type"` // linear_regression or logistic_regression
	Features       int    `json:"features"`
	MaxRowsPerUnit int    `json:"max_rows_per_unit"`
	Iterations     int    `json:"iterations,omitempty"`
}

// ActionSubmitJob is the action of an applicant submitting a job.
const ActionSubmitJob = "submit_job"

// Grant is the agreement a job runs under: the applicant org, the declared purpose and
// scenario, and the datasets and job kinds it covers. Policies may decide on them (a purpose
// that does not fit a dataset, say).
type Grant struct {
	ID       string   `json:"id"`
	Org      string   `json:"org"`
	Purpose  string   `json:"purpose"`
	Scenario string   `json:"scenario"`
	Datasets []string `json:"datasets"`
	JobKinds []string `json:"job_kinds"`
	// Usage is how many jobs the grant ran recently (before this one), for rate limits.
	Usage *GrantUsage `json:"usage,omitempty"`
}

// GrantUsage counts a grant's jobs submitted in the last hour and day, this one excluded.
type GrantUsage struct {
	JobsLastHour int `json:"jobs_last_hour"`
	JobsLastDay  int `json:"jobs_last_day"`
}

// AccessInput is the input document of data.cleanroom.access.decision.
type AccessInput struct {
	Principal Principal    `json:"principal"`
	Action    string       `json:"action"`
	Datasets  []DatasetRef `json:"datasets"`
	Columns   []ColumnUse  `json:"columns"`
	Job       JobParams    `json:"job"`
	Grant     *Grant       `json:"grant,omitempty"` // absent for jobs run without governance
}

// Output column kinds and aggregates.
const (
	KindGroupKey  = "group_key"
	KindAggregate = "aggregate"

	AggregateCount         = "count"
	AggregateCountDistinct = "count_distinct"
	// AggregateCountDistinctValues is COUNT(DISTINCT col) of a column that is not an
	// identifier: a count of values, never of units, so it carries no identifier lineage.
	AggregateCountDistinctValues = "count_distinct_values"
	AggregateSum                 = "sum"
)

// OutputColumn is one column of a computed result with its lineage.
type OutputColumn struct {
	Name        string      `json:"name"`
	Kind        string      `json:"kind"`      // KindGroupKey or KindAggregate
	Aggregate   string      `json:"aggregate"` // for aggregates: the dp kind (count, count_distinct, count_distinct_values, sum, …)
	DerivedFrom []ColumnUse `json:"derived_from"`
}

// Output summarises a computed result: its columns, size and the DP mechanisms that made it.
// It never holds values.
type Output struct {
	Columns []OutputColumn `json:"columns"`
	Rows    int            `json:"rows"`
	Cells   int            `json:"cells"`
	Bytes   int            `json:"bytes"` // the output's size as released (canonical JSON)
	// Suppressed is how many rows were withheld for standing for too few privacy units
	// (they are not in Rows).
	Suppressed int      `json:"suppressed_rows"`
	Mechanisms []string `json:"mechanisms"` // laplace, gaussian, preagg_select_partition, ...
}

// Finding severities.
const (
	SeverityLow    = "low"
	SeverityMedium = "medium"
	SeverityHigh   = "high"
)

// Finding is one result of the output screen's checks. Message must not contain data
// values; the default policy quotes only Code.
type Finding struct {
	Code     string `json:"code"`
	Severity string `json:"severity"`
	Message  string `json:"message"`
}

// EgressInput is the input document of data.cleanroom.egress.decision.
type EgressInput struct {
	Principal Principal    `json:"principal"`
	Datasets  []DatasetRef `json:"datasets"`
	Job       JobParams    `json:"job"`
	Output    Output       `json:"output"`
	Findings  []Finding    `json:"findings"`
	Grant     *Grant       `json:"grant,omitempty"`
}

// normalized returns a copy with nil slices made empty, so that the policy sees [] rather
// than null (count(null) is an error, and an error is a deny).
func (in AccessInput) normalized() AccessInput {
	in.Datasets = nonNil(in.Datasets)
	in.Columns = normColumns(in.Columns)
	return in
}

func (in EgressInput) normalized() EgressInput {
	in.Datasets = nonNil(in.Datasets)
	in.Findings = nonNil(in.Findings)
	in.Output.Mechanisms = nonNil(in.Output.Mechanisms)
	cols := make([]OutputColumn, len(in.Output.Columns))
	for i, c := range in.Output.Columns {
		c.DerivedFrom = normColumns(c.DerivedFrom)
		cols[i] = c
	}
	in.Output.Columns = cols
	return in
}

func normColumns(cs []ColumnUse) []ColumnUse {
	out := make([]ColumnUse, len(cs))
	for i, c := range cs {
		c.Tags = nonNil(c.Tags)
		out[i] = c
	}
	return out
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// checkJob reports a job parameter that JSON cannot carry (NaN, ±Inf).
func checkJob(j JobParams) error {
	for _, f := range []struct {
		name string
		v    float64
	}{{"epsilon", j.Epsilon}, {"delta", j.Delta}} {
		if math.IsNaN(f.v) || math.IsInf(f.v, 0) {
			return fmt.Errorf("job.%s is not a finite number", f.name)
		}
	}
	return nil
}
