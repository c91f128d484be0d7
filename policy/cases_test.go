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
		Findings: []Finding{{Code: "small_groups_suppressed", Severity: SeverityLow}},
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
	// Review happens at egress; access only allows or denies.
	{"allow_l3_dataset_not_held_at_access", func(in *AccessInput) { in.Datasets[0].Grade = "L3" }, ResultAllow, nil},
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
	{"deny_notebook_job", func(in *AccessInput) { in.Job.Kind = "notebook" }, ResultDeny, []string{"job_kind_unsupported"}},
	{"deny_zero_epsilon", func(in *AccessInput) { in.Job.Epsilon = 0 }, ResultDeny, []string{"epsilon_out_of_range"}},
	{"deny_large_epsilon", func(in *AccessInput) { in.Job.Epsilon = 2.5 }, ResultDeny, []string{"epsilon_out_of_range"}},
	{"deny_tiny_epsilon", func(in *AccessInput) { in.Job.Epsilon = 5e-13 }, ResultDeny, []string{"epsilon_below_minimum"}},
	{"deny_delta_at_limit", func(in *AccessInput) { in.Job.Delta = 1e-5 }, ResultDeny, []string{"delta_out_of_range"}},
	{"deny_negative_delta", func(in *AccessInput) { in.Job.Delta = -1e-9 }, ResultDeny, []string{"delta_out_of_range"}},
	{"deny_zero_groups", func(in *AccessInput) { in.Job.MaxGroupsContributed = 0 }, ResultDeny, []string{"max_groups_contributed_out_of_range"}},
	{"deny_thirty_three_groups", func(in *AccessInput) { in.Job.MaxGroupsContributed = 33 }, ResultDeny, []string{"max_groups_contributed_out_of_range"}},
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
	name      string
	edit      func(*EgressInput)
	result    string
	codes     []string
	reviewers int // Decision.Reviewers: 1..3 for a review, 0 otherwise
}

var egressCases = []egressCase{
	{"allow_counts_by_district", func(*EgressInput) {}, ResultAllow, nil, 0},
	{"allow_at_size_limits", func(in *EgressInput) { in.Output.Rows, in.Output.Cells = 10000, 100000 }, ResultAllow, nil, 0},
	{"allow_gaussian", func(in *EgressInput) { in.Output.Mechanisms = []string{"gaussian"} }, ResultAllow, nil, 0},
	{"review_medium_finding", func(in *EgressInput) {
		in.Findings = append(in.Findings, Finding{Code: "repeat_query", Severity: SeverityMedium})
	}, ResultReview, []string{"finding_medium"}, 1},
	{"review_l3_dataset_by_two", func(in *EgressInput) { in.Datasets[0].Grade = "L3" }, ResultReview, []string{"double_review"}, 2},
	{"review_l3_join_by_two", func(in *EgressInput) { in.Datasets = append(in.Datasets, claims) }, ResultReview, []string{"double_review"}, 2},
	{"review_l3_and_medium_finding_by_two", func(in *EgressInput) {
		in.Datasets[0].Grade = "L3"
		in.Findings = append(in.Findings, Finding{Code: "repeat_query", Severity: SeverityMedium})
	}, ResultReview, []string{"double_review", "finding_medium"}, 2},
	{"allow_public_l3_lookup_table", func(in *EgressInput) {
		lookup := districts
		lookup.Grade = "L3"
		in.Datasets = append(in.Datasets, lookup)
	}, ResultAllow, nil, 0},
	// Access denies an epsilon over max_epsilon_per_job; egress holds one over the review
	// threshold, which by default is the same.
	{"review_epsilon_over_threshold", func(in *EgressInput) { in.Job.Epsilon = 2.5 }, ResultReview, []string{"epsilon_review"}, 1},
	{"allow_epsilon_at_threshold", func(in *EgressInput) { in.Job.Epsilon = 2 }, ResultAllow, nil, 0},
	{"deny_l3_over_size_not_held", func(in *EgressInput) {
		in.Datasets[0].Grade = "L3"
		in.Output.Rows = 10001
	}, ResultDeny, []string{"rows_over_limit"}, 0},
	{"deny_high_finding", func(in *EgressInput) {
		in.Findings = append(in.Findings, Finding{Code: "identifier_in_string", Severity: SeverityHigh})
	}, ResultDeny, []string{"finding_high"}, 0},
	{"deny_high_over_medium", func(in *EgressInput) {
		in.Findings = append(in.Findings,
			Finding{Code: "repeat_query", Severity: SeverityMedium},
			Finding{Code: "identifier_in_string", Severity: SeverityHigh})
	}, ResultDeny, []string{"finding_high"}, 0},
	{"deny_unknown_severity", func(in *EgressInput) { in.Findings[0].Severity = "critical" }, ResultDeny, []string{"finding_severity_unknown"}, 0},
	{"deny_identifier_group_key", func(in *EgressInput) {
		in.Output.Columns[0].DerivedFrom = []ColumnUse{colPhone}
	}, ResultDeny, []string{"identifier_in_output"}, 0},
	{"deny_sum_of_privacy_unit", func(in *EgressInput) { in.Output.Columns[1].Aggregate = AggregateSum }, ResultDeny, []string{"identifier_in_output"}, 0},
	{"deny_count_distinct_of_non_unit", func(in *EgressInput) {
		in.Output.Columns[1].DerivedFrom = []ColumnUse{colPhone}
	}, ResultDeny, []string{"identifier_in_output"}, 0},
	{"allow_count_distinct_values_of_a_non_identifier", func(in *EgressInput) {
		in.Output.Columns[1].Aggregate = AggregateCountDistinctValues
		in.Output.Columns[1].DerivedFrom = []ColumnUse{withUsage(colDistrict, UsageAggregate)}
	}, ResultAllow, nil, 0},
	// A distinct count of values counts values, not units: of an identifier, even the privacy
	// unit, it releases lineage of that identifier (the gate never admits it; policy denies it
	// anyway).
	{"deny_count_distinct_values_of_privacy_unit", func(in *EgressInput) {
		in.Output.Columns[1].Aggregate = AggregateCountDistinctValues
	}, ResultDeny, []string{"identifier_in_output"}, 0},
	{"deny_count_distinct_of_join_unit", func(in *EgressInput) {
		in.Output.Columns[1].DerivedFrom = []ColumnUse{withUsage(colPerson, UsageJoinUnit)}
	}, ResultDeny, []string{"identifier_in_output"}, 0},
	{"deny_unknown_output_kind", func(in *EgressInput) { in.Output.Columns[2].Kind = "row" }, ResultDeny, []string{"output_kind_unknown"}, 0},
	{"deny_too_many_rows", func(in *EgressInput) { in.Output.Rows = 10001 }, ResultDeny, []string{"rows_over_limit"}, 0},
	{"deny_too_many_cells", func(in *EgressInput) { in.Output.Cells = 100001 }, ResultDeny, []string{"cells_over_limit"}, 0},
	{"deny_negative_size", func(in *EgressInput) { in.Output.Rows = -1 }, ResultDeny, []string{"output_size_invalid"}, 0},
	{"deny_no_mechanism", func(in *EgressInput) { in.Output.Mechanisms = nil }, ResultDeny, []string{"mechanism_missing"}, 0},
	{"deny_unknown_mechanism", func(in *EgressInput) {
		in.Output.Mechanisms = append(in.Output.Mechanisms, "none")
	}, ResultDeny, []string{"mechanism_not_allowed"}, 0},
	{"deny_l4_dataset", func(in *EgressInput) { in.Datasets[0].Grade = "L4" }, ResultDeny, []string{"grade_not_operable"}, 0},
	{"deny_inf_delta", func(in *EgressInput) { in.Job.Delta = inf() }, ResultDeny, []string{ReasonInputInvalid}, 0},
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

// Principals of API requests, one per role, each of its own org.
var (
	alice = Principal{Name: "alice", Role: "applicant", Org: "insurer_a"}
	pia   = Principal{Name: "pia", Role: "provider", Org: "medical_insurance_bureau"}
	otto  = Principal{Name: "otto", Role: "operator", Org: "platform_ops"}
	rex   = Principal{Name: "rex", Role: "reviewer", Org: "review_board"}
	aud   = Principal{Name: "aud", Role: "auditor", Org: "audit_office"}
)

// Resources of API requests: alice's org owns grant g1 and job j1; bob of insurer_b submitted
// job j2, which is held and was reviewed once by ria.
var (
	resVisits     = Resource{Kind: ResourceDataset, ID: "visits", Provider: "medical_insurance_bureau"}
	resOwnGrant   = Resource{Kind: ResourceGrant, ID: "g1", Org: "insurer_a"}
	resOtherGrant = Resource{Kind: ResourceGrant, ID: "g2", Org: "insurer_b"}
	resOwnJob     = Resource{Kind: ResourceJob, ID: "j1", Org: "insurer_a", Submitter: "alice"}
	resOtherJob   = Resource{Kind: ResourceJob, ID: "j2", Org: "insurer_b", Submitter: "bob"}
	resHeld       = Resource{Kind: ResourceReview, ID: "j2", Org: "insurer_b", Submitter: "bob", Reviewers: []string{"ria"}}
)

type requestCase struct {
	name     string
	who      Principal
	action   string
	resource Resource
	result   string
	codes    []string // exactly the decision's reason codes, sorted
}

func (c requestCase) input() RequestInput {
	r := c.resource
	r.Reviewers = append([]string(nil), r.Reviewers...)
	return RequestInput{Principal: c.who, Action: c.action, Resource: r}
}

var requestCases = []requestCase{
	{"allow_whoami", rex, ActionWhoami, Resource{Kind: ResourceSelf}, ResultAllow, nil},
	{"allow_provider_registers_own_dataset", pia, ActionDatasetRegister, resVisits, ResultAllow, nil},
	{"deny_provider_registers_for_other_provider", Principal{Name: "hc", Role: "provider", Org: "health_commission"}, ActionDatasetRegister, resVisits, ResultDeny, []string{"other_org"}},
	{"deny_dataset_owned_by_provider_not_org", Principal{Name: "hc", Role: "provider", Org: "health_commission"}, ActionDatasetUsage,
		Resource{Kind: ResourceDataset, ID: "visits", Provider: "medical_insurance_bureau", Org: "health_commission"}, ResultDeny, []string{"other_org"}},
	{"deny_applicant_registers_dataset", alice, ActionDatasetRegister, Resource{Kind: ResourceDataset, Provider: "insurer_a"}, ResultDeny, []string{"not_permitted"}},
	{"allow_applicant_lists_datasets", alice, ActionDatasetList, Resource{Kind: ResourceDataset}, ResultAllow, nil},
	{"allow_operator_reads_dataset_usage", otto, ActionDatasetUsage, resVisits, ResultAllow, nil},
	{"deny_applicant_reads_dataset_usage", alice, ActionDatasetUsage, resVisits, ResultDeny, []string{"not_permitted"}},
	{"allow_applicant_applies_for_own_org", alice, ActionApplicationCreate, Resource{Kind: ResourceApplication, Org: "insurer_a"}, ResultAllow, nil},
	{"deny_applicant_applies_for_other_org", alice, ActionApplicationCreate, Resource{Kind: ResourceApplication, Org: "insurer_b"}, ResultDeny, []string{"other_org"}},
	{"allow_operator_approves", otto, ActionApplicationApprove, Resource{Kind: ResourceApplication, ID: "a1", Org: "insurer_a"}, ResultAllow, nil},
	{"deny_applicant_approves_own", alice, ActionApplicationApprove, Resource{Kind: ResourceApplication, ID: "a1", Org: "insurer_a"}, ResultDeny, []string{"not_permitted"}},
	{"allow_applicant_reads_own_grant_budget", alice, ActionGrantBudget, resOwnGrant, ResultAllow, nil},
	{"deny_applicant_reads_other_grant", alice, ActionGrantRead, resOtherGrant, ResultDeny, []string{"other_org"}},
	{"allow_auditor_reads_any_grant", aud, ActionGrantRead, resOtherGrant, ResultAllow, nil},
	{"allow_operator_revokes", otto, ActionGrantRevoke, resOwnGrant, ResultAllow, nil},
	{"deny_auditor_suspends", aud, ActionGrantSuspend, resOwnGrant, ResultDeny, []string{"not_permitted"}},
	{"allow_applicant_submits_on_own_grant", alice, ActionJobSubmit, resOwnGrant, ResultAllow, nil},
	{"deny_applicant_submits_on_other_grant", alice, ActionJobSubmit, resOtherGrant, ResultDeny, []string{"other_org"}},
	{"deny_submit_naming_a_job", alice, ActionJobSubmit, resOwnJob, ResultDeny, []string{"resource_kind_mismatch"}},
	{"allow_applicant_explains_on_own_grant", alice, ActionJobExplain, resOwnGrant, ResultAllow, nil},
	{"deny_applicant_explains_on_other_grant", alice, ActionJobExplain, resOtherGrant, ResultDeny, []string{"other_org"}},
	{"deny_operator_explains", otto, ActionJobExplain, resOwnGrant, ResultDeny, []string{"not_permitted"}},
	{"allow_applicant_reads_own_result", alice, ActionJobResult, resOwnJob, ResultAllow, nil},
	{"deny_applicant_reads_other_result", alice, ActionJobResult, resOtherJob, ResultDeny, []string{"other_org"}},
	{"deny_operator_reads_result", otto, ActionJobResult, resOwnJob, ResultDeny, []string{"not_permitted"}},
	{"deny_provider_reads_result", pia, ActionJobResult, resOwnJob, ResultDeny, []string{"not_permitted"}},
	{"allow_auditor_reads_result", aud, ActionJobResult, resOtherJob, ResultAllow, nil},
	{"allow_reviewer_lists_reviews", rex, ActionReviewList, Resource{Kind: ResourceReview}, ResultAllow, nil},
	{"allow_independent_second_reviewer", rex, ActionReviewDecide, resHeld, ResultAllow, nil},
	{"allow_reviewer_decides_on_job_kind", rex, ActionReviewDecide, resOtherJob, ResultAllow, nil},
	{"deny_submitter_decides", Principal{Name: "bob", Role: "reviewer", Org: "review_board"}, ActionReviewDecide, resHeld, ResultDeny, []string{"separation_of_duties"}},
	{"deny_reviewer_of_submitting_org", Principal{Name: "rita", Role: "reviewer", Org: "insurer_b"}, ActionReviewDecide, resHeld, ResultDeny, []string{"separation_of_duties"}},
	{"deny_same_reviewer_twice", Principal{Name: "ria", Role: "reviewer", Org: "review_board"}, ActionReviewDecide, resHeld, ResultDeny, []string{"separation_of_duties"}},
	{"deny_decide_without_submitter", rex, ActionReviewDecide, Resource{Kind: ResourceReview, ID: "j2", Org: "insurer_b"}, ResultDeny, []string{"resource_invalid"}},
	{"deny_operator_decides", otto, ActionReviewDecide, resHeld, ResultDeny, []string{"not_permitted"}},
	{"allow_auditor_verifies", aud, ActionAuditVerify, Resource{Kind: ResourceAudit}, ResultAllow, nil},
	{"allow_auditor_audits_job", aud, ActionAuditJob, resOtherJob, ResultAllow, nil},
	{"deny_operator_verifies", otto, ActionAuditVerify, Resource{Kind: ResourceAudit}, ResultDeny, []string{"not_permitted"}},
	{"deny_unknown_action", otto, "dataset.delete", resVisits, ResultDeny, []string{"action_unknown"}},
	{"deny_unknown_role", Principal{Name: "root", Role: "admin", Org: "platform_ops"}, ActionWhoami, Resource{Kind: ResourceSelf}, ResultDeny, []string{"role_unknown"}},
	{"deny_missing_principal_org", Principal{Name: "alice", Role: "applicant"}, ActionGrantList, Resource{Kind: ResourceGrant}, ResultDeny, []string{"principal_invalid"}},
	{"deny_anonymous", Principal{}, ActionWhoami, Resource{Kind: ResourceSelf}, ResultDeny, []string{"principal_invalid", "principal_invalid", "principal_invalid"}},
	{"deny_no_resource_kind", aud, ActionAuditVerify, Resource{}, ResultDeny, []string{"resource_kind_mismatch"}},
}
