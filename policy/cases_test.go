package policy

// One case corpus, three uses: the table tests, the fuzz seeds and the benchmarks all read
// the cases below.

// visits is the flagship dataset: medical insurance visits, one row per visit, protected
// per person.
var visits = DatasetRef{
	Name: "visits", Provider: "medical_insurance_bureau", Grade: "L2", Domain: "platform",
	PrivacyUnit: "person_id",
}

var (
	colDistrict = ColumnUse{Dataset: "visits", Column: "district", Tags: []string{"quasi_identifier"}, Usage: UsageGroupKey}
	colPerson   = ColumnUse{Dataset: "visits", Column: "person_id", Tags: []string{"identifier"}, Usage: UsageCountDistinctUnit, PrivacyUnit: true}
	colClaim    = ColumnUse{Dataset: "visits", Column: "claim_amount", Tags: []string{"sensitive"}, Usage: UsageAggregate}
	colPhone    = ColumnUse{Dataset: "visits", Column: "phone", Tags: []string{"identifier"}, Usage: UsageGroupKey}
)

// claims is a second private dataset of visits' domain, protected per person too; districts
// is a public lookup table of district codes and names.
var (
	claims    = DatasetRef{Name: "claims", Provider: "medical_insurance_bureau", Grade: "L3", Domain: "platform", PrivacyUnit: "person_id"}
	districts = DatasetRef{Name: "districts", Provider: "civil_affairs_bureau", Grade: "L1", Domain: "platform", Public: true}
)

// withUsage returns c with usage u.
func withUsage(c ColumnUse, u string) ColumnUse {
	c.Usage = u
	return c
}

var goodJob = JobParams{
	Kind: "sql", Epsilon: 1, Delta: 1e-6, MaxGroupsContributed: 1, MaxContributionsPerGroup: 5,
	PublicPartitions: true,
}

// goodAccess is an applicant counting insured persons and summing claims by district.
func goodAccess() AccessInput {
	return AccessInput{
		Principal: Principal{Name: "alice", Role: "applicant", Org: "insurer_a"},
		Action:    ActionSubmitJob,
		Datasets:  []DatasetRef{visits},
		Columns:   []ColumnUse{colDistrict, colPerson, colClaim},
		Job:       goodJob,
	}
}

// goodEgress is the DP result of goodAccess's job.
func goodEgress() EgressInput {
	return EgressInput{
		Principal: Principal{Name: "alice", Role: "applicant", Org: "insurer_a"},
		Datasets:  []DatasetRef{visits},
		Job:       goodJob,
		Output: Output{
			Columns: []OutputColumn{
				{Name: "district", Kind: KindGroupKey, DerivedFrom: []ColumnUse{colDistrict}},
				{Name: "persons", Kind: KindAggregate, Aggregate: AggregateCountDistinct, DerivedFrom: []ColumnUse{colPerson}},
				{Name: "claims", Kind: KindAggregate, Aggregate: AggregateSum, DerivedFrom: []ColumnUse{colClaim}},
			},
			Rows: 16, Cells: 48,
			Mechanisms: []string{"laplace", "preagg_select_partition"},
		},
		Findings: []Finding{{Code: "small_group_suppressed", Severity: SeverityLow}},
	}
}

type accessCase struct {
	name   string
	edit   func(*AccessInput)
	result string
	codes  []string // exactly the decision's reason codes, sorted
}

var accessCases = []accessCase{
	{"allow_count_by_district", func(*AccessInput) {}, ResultAllow, nil},
	{"allow_same_domain_join", func(in *AccessInput) {
		in.Datasets = append(in.Datasets, claims)
	}, ResultAllow, nil},
	{"allow_join_on_privacy_units", func(in *AccessInput) {
		in.Datasets = append(in.Datasets, claims)
		other := withUsage(colPerson, UsageJoinUnit)
		other.Dataset = "claims"
		in.Columns = append(in.Columns, withUsage(colPerson, UsageJoinUnit), other)
	}, ResultAllow, nil},
	{"allow_lookup_join", func(in *AccessInput) {
		in.Datasets = append(in.Datasets, districts)
		in.Columns = append(in.Columns,
			ColumnUse{Dataset: "visits", Column: "district_code", Tags: []string{"quasi_identifier"}, Usage: UsageJoinKey},
			ColumnUse{Dataset: "districts", Column: "code", Tags: []string{"attribute"}, Usage: UsageJoinKey},
			ColumnUse{Dataset: "districts", Column: "name", Tags: []string{"attribute"}, Usage: UsageGroupKey})
	}, ResultAllow, nil},
	{"allow_epsilon_at_limit", func(in *AccessInput) { in.Job.Epsilon = 2 }, ResultAllow, nil},
	{"deny_l4_dataset", func(in *AccessInput) { in.Datasets[0].Grade = "L4" }, ResultDeny, []string{"grade_not_operable"}},
	{"deny_unknown_grade", func(in *AccessInput) { in.Datasets[0].Grade = "" }, ResultDeny, []string{"grade_unknown"}},
	{"deny_reviewer_submitting", func(in *AccessInput) { in.Principal.Role = "reviewer" }, ResultDeny, []string{"role_not_permitted"}},
	{"deny_unknown_action", func(in *AccessInput) { in.Action = "export" }, ResultDeny, []string{"action_unknown"}},
	{"deny_no_dataset", func(in *AccessInput) { in.Datasets, in.Columns = nil, nil }, ResultDeny, []string{"datasets_missing"}},
	{"deny_group_by_identifier", func(in *AccessInput) { in.Columns = append(in.Columns, colPhone) }, ResultDeny, []string{"identifier_in_group_key"}},
	{"deny_group_by_privacy_unit", func(in *AccessInput) { in.Columns[1].Usage = UsageGroupKey }, ResultDeny, []string{"identifier_in_group_key"}},
	{"deny_aggregate_identifier", func(in *AccessInput) {
		c := colPhone
		c.Usage = UsageAggregate
		in.Columns = append(in.Columns, c)
	}, ResultDeny, []string{"identifier_in_aggregate"}},
	{"deny_output_identifier", func(in *AccessInput) {
		c := colPhone
		c.Usage = UsageOutput
		in.Columns = append(in.Columns, c)
	}, ResultDeny, []string{"identifier_in_output"}},
	{"deny_filter_on_identifier", func(in *AccessInput) {
		c := colPhone
		c.Usage = UsageFilter
		in.Columns = append(in.Columns, c)
	}, ResultDeny, []string{"identifier_in_filter"}},
	{"deny_equality_filter_on_identifier", func(in *AccessInput) {
		in.Columns = append(in.Columns, withUsage(colPhone, UsageFilterEquality))
	}, ResultDeny, []string{"identifier_in_filter"}},
	{"deny_join_not_on_unit", func(in *AccessInput) {
		in.Datasets = append(in.Datasets, claims)
		in.Columns = append(in.Columns, withUsage(colPhone, UsageJoinUnit))
	}, ResultDeny, []string{"join_not_on_unit"}},
	{"deny_identifier_join_key", func(in *AccessInput) {
		in.Datasets = append(in.Datasets, districts)
		in.Columns = append(in.Columns, withUsage(colPhone, UsageJoinKey))
	}, ResultDeny, []string{"identifier_in_join_key"}},
	{"deny_lookup_only", func(in *AccessInput) {
		in.Datasets = []DatasetRef{districts}
		in.Columns = []ColumnUse{{Dataset: "districts", Column: "name", Tags: []string{"attribute"}, Usage: UsageGroupKey}}
	}, ResultDeny, []string{"lookup_only"}},
	{"deny_counting_non_unit", func(in *AccessInput) {
		c := colPhone
		c.Usage = UsageCountDistinctUnit
		in.Columns = append(in.Columns, c)
	}, ResultDeny, []string{"unit_mismatch"}},
	{"deny_unknown_usage", func(in *AccessInput) { in.Columns[0].Usage = "window_partition" }, ResultDeny, []string{"usage_unknown"}},
	{"deny_undeclared_dataset_column", func(in *AccessInput) { in.Columns[0].Dataset = "claims" }, ResultDeny, []string{"column_dataset_unknown"}},
	{"deny_cross_domain_join", func(in *AccessInput) {
		in.Datasets = append(in.Datasets, DatasetRef{Name: "records", Provider: "health_commission", Grade: "L2", Domain: "health", PrivacyUnit: "person_id"})
	}, ResultDeny, []string{"cross_domain_join"}},
	{"deny_model_job", func(in *AccessInput) { in.Job.Kind = "model" }, ResultDeny, []string{"job_kind_unsupported"}},
	{"deny_zero_epsilon", func(in *AccessInput) { in.Job.Epsilon = 0 }, ResultDeny, []string{"epsilon_out_of_range"}},
	{"deny_large_epsilon", func(in *AccessInput) { in.Job.Epsilon = 2.5 }, ResultDeny, []string{"epsilon_out_of_range"}},
	{"deny_delta_at_limit", func(in *AccessInput) { in.Job.Delta = 1e-5 }, ResultDeny, []string{"delta_out_of_range"}},
	{"deny_negative_delta", func(in *AccessInput) { in.Job.Delta = -1e-9 }, ResultDeny, []string{"delta_out_of_range"}},
	{"deny_zero_groups", func(in *AccessInput) { in.Job.MaxGroupsContributed = 0 }, ResultDeny, []string{"max_groups_contributed_out_of_range"}},
	{"deny_eleven_groups", func(in *AccessInput) { in.Job.MaxGroupsContributed = 11 }, ResultDeny, []string{"max_groups_contributed_out_of_range"}},
	{"deny_zero_contributions", func(in *AccessInput) { in.Job.MaxContributionsPerGroup = 0 }, ResultDeny, []string{"max_contributions_per_group_out_of_range"}},
	{"deny_101_contributions", func(in *AccessInput) { in.Job.MaxContributionsPerGroup = 101 }, ResultDeny, []string{"max_contributions_per_group_out_of_range"}},
	{"deny_nan_epsilon", func(in *AccessInput) { in.Job.Epsilon = nan() }, ResultDeny, []string{ReasonInputInvalid}},
	{"deny_several_reasons_sorted", func(in *AccessInput) {
		in.Principal.Role = "operator"
		in.Datasets[0].Grade = "L4"
		in.Job.Epsilon = 9
	}, ResultDeny, []string{"epsilon_out_of_range", "grade_not_operable", "role_not_permitted"}},
}

type egressCase struct {
	name   string
	edit   func(*EgressInput)
	result string
	codes  []string
}

var egressCases = []egressCase{
	{"allow_counts_by_district", func(*EgressInput) {}, ResultAllow, nil},
	{"allow_at_size_limits", func(in *EgressInput) { in.Output.Rows, in.Output.Cells = 10000, 100000 }, ResultAllow, nil},
	{"allow_gaussian", func(in *EgressInput) { in.Output.Mechanisms = []string{"gaussian"} }, ResultAllow, nil},
	{"review_medium_finding", func(in *EgressInput) {
		in.Findings = append(in.Findings, Finding{Code: "repeat_query", Severity: SeverityMedium})
	}, ResultReview, []string{"finding_medium"}},
	{"deny_high_finding", func(in *EgressInput) {
		in.Findings = append(in.Findings, Finding{Code: "identifier_in_string", Severity: SeverityHigh})
	}, ResultDeny, []string{"finding_high"}},
	{"deny_high_over_medium", func(in *EgressInput) {
		in.Findings = append(in.Findings,
			Finding{Code: "repeat_query", Severity: SeverityMedium},
			Finding{Code: "identifier_in_string", Severity: SeverityHigh})
	}, ResultDeny, []string{"finding_high"}},
	{"deny_unknown_severity", func(in *EgressInput) { in.Findings[0].Severity = "critical" }, ResultDeny, []string{"finding_severity_unknown"}},
	{"deny_identifier_group_key", func(in *EgressInput) {
		in.Output.Columns[0].DerivedFrom = []ColumnUse{colPhone}
	}, ResultDeny, []string{"identifier_in_output"}},
	{"deny_sum_of_privacy_unit", func(in *EgressInput) { in.Output.Columns[1].Aggregate = AggregateSum }, ResultDeny, []string{"identifier_in_output"}},
	{"deny_count_distinct_of_non_unit", func(in *EgressInput) {
		in.Output.Columns[1].DerivedFrom = []ColumnUse{colPhone}
	}, ResultDeny, []string{"identifier_in_output"}},
	{"deny_count_distinct_of_join_unit", func(in *EgressInput) {
		in.Output.Columns[1].DerivedFrom = []ColumnUse{withUsage(colPerson, UsageJoinUnit)}
	}, ResultDeny, []string{"identifier_in_output"}},
	{"deny_unknown_output_kind", func(in *EgressInput) { in.Output.Columns[2].Kind = "row" }, ResultDeny, []string{"output_kind_unknown"}},
	{"deny_too_many_rows", func(in *EgressInput) { in.Output.Rows = 10001 }, ResultDeny, []string{"rows_over_limit"}},
	{"deny_too_many_cells", func(in *EgressInput) { in.Output.Cells = 100001 }, ResultDeny, []string{"cells_over_limit"}},
	{"deny_negative_size", func(in *EgressInput) { in.Output.Rows = -1 }, ResultDeny, []string{"output_size_invalid"}},
	{"deny_no_mechanism", func(in *EgressInput) { in.Output.Mechanisms = nil }, ResultDeny, []string{"mechanism_missing"}},
	{"deny_unknown_mechanism", func(in *EgressInput) {
		in.Output.Mechanisms = append(in.Output.Mechanisms, "none")
	}, ResultDeny, []string{"mechanism_not_allowed"}},
	{"deny_l4_dataset", func(in *EgressInput) { in.Datasets[0].Grade = "L4" }, ResultDeny, []string{"grade_not_operable"}},
	{"deny_inf_delta", func(in *EgressInput) { in.Job.Delta = inf() }, ResultDeny, []string{ReasonInputInvalid}},
}

func (c accessCase) input() AccessInput {
	in := goodAccess()
	in.Datasets = append([]DatasetRef(nil), in.Datasets...)
	in.Columns = append([]ColumnUse(nil), in.Columns...)
	c.edit(&in)
	return in
}

func (c egressCase) input() EgressInput {
	in := goodEgress()
	in.Datasets = append([]DatasetRef(nil), in.Datasets...)
	in.Findings = append([]Finding(nil), in.Findings...)
	in.Output.Columns = append([]OutputColumn(nil), in.Output.Columns...)
	c.edit(&in)
	return in
}
