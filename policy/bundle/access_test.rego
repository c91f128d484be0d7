package cleanroom.access_test

import data.cleanroom.access

# good is an admissible job: an applicant counts insured persons by district.
good := {
	"principal": {"name": "alice", "role": "applicant", "org": "insurer_a"},
	"action": "submit_job",
	"datasets": [{
		"name": "visits",
		"provider": "medical_insurance_bureau",
		"grade": "L2",
		"domain": "platform",
		"privacy_unit": "person_id",
	}],
	"columns": [
		{"dataset": "visits", "column": "district", "tags": ["quasi_identifier"], "usage": "group_key", "privacy_unit": false},
		{"dataset": "visits", "column": "person_id", "tags": ["identifier"], "usage": "count_distinct_unit", "privacy_unit": true},
		{"dataset": "visits", "column": "claim_amount", "tags": ["sensitive"], "usage": "aggregate", "privacy_unit": false},
	],
	"job": {
		"kind": "sql",
		"epsilon": 1,
		"delta": 1e-6,
		"max_groups_contributed": 1,
		"max_contributions_per_group": 5,
		"public_partitions": true,
	},
}

# patched returns good with one JSON-patch operation applied.
patched(op, path, value) := json.patch(good, [{"op": op, "path": path, "value": value}])

# codes are the reason codes (text before the first colon) of a set of reasons.
codes(reasons) := {substring(r, 0, indexof(r, ":")) | some r in reasons}

deny_codes(inp) := codes(reasons) if {
	reasons := access.deny with input as inp
}

test_good_job_is_allowed if {
	access.decision == {"result": "allow", "reasons": []} with input as good
}

test_denial_lists_its_reasons if {
	inp := patched("replace", "/principal/role", "operator")
	d := access.decision with input as inp
	d.result == "deny"
	d.reasons == ["role_not_permitted: role operator may not submit jobs (applicant only)"]
}

# --- action and role ---

test_unknown_action_denied if {
	"action_unknown" in deny_codes(patched("replace", "/action", "drop_table"))
}

test_missing_action_denied if {
	"action_unknown" in deny_codes(json.remove(good, ["action"]))
}

test_known_action_not_denied_as_unknown if {
	not "action_unknown" in deny_codes(good)
}

test_non_applicant_denied if {
	"role_not_permitted" in deny_codes(patched("replace", "/principal/role", "reviewer"))
}

test_missing_role_denied if {
	"role_not_permitted" in deny_codes(json.remove(good, ["principal/role"]))
}

test_applicant_permitted if {
	not "role_not_permitted" in deny_codes(good)
}

# --- datasets ---

test_no_dataset_denied if {
	inp := json.patch(good, [{"op": "replace", "path": "/datasets", "value": []}, {"op": "replace", "path": "/columns", "value": []}])
	"datasets_missing" in deny_codes(inp)
}

test_declared_dataset_not_missing if {
	not "datasets_missing" in deny_codes(good)
}

test_l4_dataset_denied if {
	"grade_not_operable" in deny_codes(patched("replace", "/datasets/0/grade", "L4"))
}

test_l3_dataset_operable if {
	cs := deny_codes(patched("replace", "/datasets/0/grade", "L3"))
	not "grade_not_operable" in cs
	not "grade_unknown" in cs
}

test_unknown_grade_denied if {
	"grade_unknown" in deny_codes(patched("replace", "/datasets/0/grade", "l4"))
}

test_missing_grade_denied if {
	"grade_unknown" in deny_codes(json.remove(good, ["datasets/0/grade"]))
}

test_cross_domain_join_denied if {
	inp := patched("add", "/datasets/-", {"name": "health_records", "provider": "health_commission", "grade": "L2", "domain": "health", "privacy_unit": "person_id"})
	"cross_domain_join" in deny_codes(inp)
}

test_same_domain_join_allowed if {
	inp := patched("add", "/datasets/-", {"name": "claims", "provider": "medical_insurance_bureau", "grade": "L2", "domain": "platform", "privacy_unit": "person_id"})
	access.decision.result == "allow" with input as inp
}

test_missing_domain_counts_as_a_domain if {
	inp := patched("add", "/datasets/-", {"name": "claims", "provider": "medical_insurance_bureau", "grade": "L2", "privacy_unit": "person_id"})
	"cross_domain_join" in deny_codes(inp)
}

# --- columns ---

test_column_of_undeclared_dataset_denied if {
	"column_dataset_unknown" in deny_codes(patched("replace", "/columns/0/dataset", "claims"))
}

test_column_of_declared_dataset_accepted if {
	not "column_dataset_unknown" in deny_codes(good)
}

test_unknown_usage_denied if {
	"usage_unknown" in deny_codes(patched("replace", "/columns/0/usage", "window_partition"))
}

test_missing_usage_denied if {
	"usage_unknown" in deny_codes(json.remove(good, ["columns/0/usage"]))
}

test_known_usages_accepted if {
	not "usage_unknown" in deny_codes(good)
}

identifier_col(usage) := {"dataset": "visits", "column": "phone", "tags": ["identifier"], "usage": usage, "privacy_unit": false}

test_identifier_group_key_denied if {
	"identifier_in_group_key" in deny_codes(patched("add", "/columns/-", identifier_col("group_key")))
}

test_identifier_aggregate_denied if {
	"identifier_in_aggregate" in deny_codes(patched("add", "/columns/-", identifier_col("aggregate")))
}

test_identifier_output_denied if {
	"identifier_in_output" in deny_codes(patched("add", "/columns/-", identifier_col("output")))
}

test_privacy_unit_group_key_denied if {
	inp := patched("replace", "/columns/1/usage", "group_key")
	"identifier_in_group_key" in deny_codes(inp)
}

test_identifier_filter_denied if {
	"identifier_in_filter" in deny_codes(patched("add", "/columns/-", identifier_col("filter")))
}

test_non_identifier_uses_allowed if {
	col := {"dataset": "visits", "column": "age_band", "tags": ["quasi_identifier"], "usage": "filter", "privacy_unit": false}
	inp := json.patch(good, [
		{"op": "add", "path": "/columns/-", "value": col},
		{"op": "add", "path": "/columns/-", "value": json.patch(col, [{"op": "replace", "path": "/usage", "value": "output"}])},
	])
	access.decision.result == "allow" with input as inp
}

test_privacy_unit_counted_allowed if {
	cs := deny_codes(good)
	not "identifier_in_aggregate" in cs
	not "unit_mismatch" in cs
}

test_counting_non_unit_identifier_denied if {
	"unit_mismatch" in deny_codes(patched("add", "/columns/-", identifier_col("count_distinct_unit")))
}

test_counting_unit_the_dataset_does_not_declare_denied if {
	inp := patched("replace", "/datasets/0/privacy_unit", "org_code")
	"unit_mismatch" in deny_codes(inp)
}

test_counting_unit_not_marked_by_engine_denied if {
	"unit_mismatch" in deny_codes(patched("replace", "/columns/1/privacy_unit", false))
}

# --- job parameters ---

test_unsupported_job_kind_denied if {
	"job_kind_unsupported" in deny_codes(patched("replace", "/job/kind", "notebook"))
}

# good_model is an admissible model job: a linear regression of cost on age group.
good_model := {
	"principal": good.principal,
	"action": "submit_job",
	"datasets": good.datasets,
	"columns": [
		{"dataset": "visits", "column": "age_band", "tags": ["quasi_identifier"], "usage": "model_feature", "privacy_unit": false},
		{"dataset": "visits", "column": "claim_amount", "tags": ["sensitive"], "usage": "model_label", "privacy_unit": false},
	],
	"job": {"kind": "model", "epsilon": 1, "delta": 1e-6, "model": {"type": "linear_regression", "features": 1, "max_rows_per_unit": 1}},
}

model_patched(path, value) := json.patch(good_model, [{"op": "replace", "path": path, "value": value}])

test_model_job_allowed if {
	count(deny_codes(good_model)) == 0
}

test_model_job_limits if {
	"model_features_out_of_range" in deny_codes(model_patched("/job/model/features", 17))
	"model_rows_per_unit_out_of_range" in deny_codes(model_patched("/job/model/max_rows_per_unit", 101))
	"model_delta_zero" in deny_codes(model_patched("/job/delta", 0))
	"epsilon_out_of_range" in deny_codes(model_patched("/job/epsilon", 3))
	"model_iterations_out_of_range" in deny_codes(model_patched("/job/model", {"type": "logistic_regression", "features": 1, "max_rows_per_unit": 1, "iterations": 1001}))
}

test_model_feature_identifier_denied if {
	"identifier_in_model_feature" in deny_codes(model_patched("/columns/0/tags", ["identifier"]))
}

test_model_usages_only_in_model_jobs if {
	"usage_outside_kind" in deny_codes(patched("replace", "/columns/2/usage", "model_feature"))
	"usage_outside_kind" in deny_codes(model_patched("/columns/0/usage", "group_key"))
}

# good_wasm is an admissible custom model job: a module reading the visit cost, 20 blocks.
good_wasm := {
	"principal": good.principal,
	"action": "submit_job",
	"datasets": good.datasets,
	"columns": [{"dataset": "visits", "column": "claim_amount", "tags": ["sensitive"], "usage": "wasm_input", "privacy_unit": false}],
	"job": {"kind": "wasm", "epsilon": 1, "delta": 0, "wasm": {"blocks": 20, "output_length": 2, "module_bytes": 2000000, "deadline_ms": 10000}},
}

wasm_patched(path, value) := json.patch(good_wasm, [{"op": "replace", "path": path, "value": value}])

test_wasm_job_allowed if {
	count(deny_codes(good_wasm)) == 0
}

test_wasm_job_limits if {
	"wasm_blocks_out_of_range" in deny_codes(wasm_patched("/job/wasm/blocks", 1))
	"wasm_blocks_out_of_range" in deny_codes(wasm_patched("/job/wasm/blocks", 1001))
	"wasm_output_length_out_of_range" in deny_codes(wasm_patched("/job/wasm/output_length", 65))
	"wasm_module_too_large" in deny_codes(wasm_patched("/job/wasm/module_bytes", 16777217))
	"wasm_deadline_out_of_range" in deny_codes(wasm_patched("/job/wasm/deadline_ms", 30001))
	"epsilon_out_of_range" in deny_codes(wasm_patched("/job/epsilon", 3))
	count(deny_codes(wasm_patched("/job/delta", 1e-6))) == 0
}

test_wasm_input_identifier_denied if {
	"identifier_in_wasm_input" in deny_codes(wasm_patched("/columns/0/tags", ["identifier"]))
}

test_wasm_usages_only_in_wasm_jobs if {
	"usage_outside_kind" in deny_codes(patched("replace", "/columns/2/usage", "wasm_input"))
	"usage_outside_kind" in deny_codes(wasm_patched("/columns/0/usage", "group_key"))
}

test_sql_job_kind_accepted if {
	not "job_kind_unsupported" in deny_codes(good)
}

test_federated_job_is_held_to_the_sql_rules if {
	federated := json.patch(good, [{"op": "replace", "path": "/job/kind", "value": "federated_sql"}])
	access.decision == {"result": "allow", "reasons": []} with input as federated
	"epsilon_out_of_range" in deny_codes(json.patch(federated, [{"op": "replace", "path": "/job/epsilon", "value": 100}]))
}

test_federated_job_spans_domains_one_dataset_each if {
	two := json.patch(good, [
		{"op": "replace", "path": "/job/kind", "value": "federated_sql"},
		{"op": "add", "path": "/datasets/-", "value": object.union(input_dataset(good), {"name": "claims", "domain": "insurance"})},
	])
	not "cross_domain_join" in deny_codes(two)
	same := json.patch(two, [{"op": "replace", "path": "/datasets/1/domain", "value": object.get(input_dataset(good), "domain", "")}])
	"federated_same_domain" in deny_codes(same)
	"cross_domain_join" in deny_codes(json.patch(two, [{"op": "replace", "path": "/job/kind", "value": "sql"}]))
}

input_dataset(x) := x.datasets[0]

test_epsilon_out_of_range_denied if {
	every eps in [0, -1, 2.0001, 100, "1"] {
		"epsilon_out_of_range" in deny_codes(patched("replace", "/job/epsilon", eps))
	}
}

test_epsilon_in_range_accepted if {
	every eps in [1e-3, 0.5, 2] {
		not "epsilon_out_of_range" in deny_codes(patched("replace", "/job/epsilon", eps))
	}
}

test_epsilon_limit_comes_from_params if {
	cs := deny_codes(good) with data.cleanroom.params.max_epsilon_per_job as 0.5
	"epsilon_out_of_range" in cs
}

test_epsilon_below_minimum_denied if {
	every eps in [5e-13, 1e-9, 9.99e-4] {
		cs := deny_codes(patched("replace", "/job/epsilon", eps))
		"epsilon_below_minimum" in cs
		not "epsilon_out_of_range" in cs
	}
}

test_epsilon_minimum_comes_from_params if {
	inp := patched("replace", "/job/epsilon", 0.01)
	"epsilon_below_minimum" in deny_codes(inp) with data.cleanroom.params.min_epsilon_per_job as 0.05
	not "epsilon_below_minimum" in deny_codes(inp)
}

test_epsilon_below_minimum_names_the_minimum if {
	d := access.decision with input as patched("replace", "/job/epsilon", 1e-4)
	some r in d.reasons
	startswith(r, "epsilon_below_minimum:")
	contains(r, "minimum of 0.001")
}

test_missing_epsilon_minimum_denied if {
	cs := deny_codes(good) with data.cleanroom.params as object.remove(data.cleanroom.params, {"min_epsilon_per_job"})
	"params_invalid" in cs
}

test_delta_out_of_range_denied if {
	every delta in [1e-5, 0.5, -1e-9, null] {
		"delta_out_of_range" in deny_codes(patched("replace", "/job/delta", delta))
	}
}

test_delta_in_range_accepted if {
	every delta in [0, 1e-7, 9.99e-6] {
		not "delta_out_of_range" in deny_codes(patched("replace", "/job/delta", delta))
	}
}

test_max_groups_contributed_out_of_range_denied if {
	every n in [0, 33, -1, 1.5] {
		"max_groups_contributed_out_of_range" in deny_codes(patched("replace", "/job/max_groups_contributed", n))
	}
}

test_max_groups_contributed_in_range_accepted if {
	every n in [1, 32] {
		not "max_groups_contributed_out_of_range" in deny_codes(patched("replace", "/job/max_groups_contributed", n))
	}
}

test_max_contributions_per_group_out_of_range_denied if {
	every n in [0, 101, -5] {
		"max_contributions_per_group_out_of_range" in deny_codes(patched("replace", "/job/max_contributions_per_group", n))
	}
}

test_max_contributions_per_group_in_range_accepted if {
	every n in [1, 100] {
		not "max_contributions_per_group_out_of_range" in deny_codes(patched("replace", "/job/max_contributions_per_group", n))
	}
}

# --- access only allows or denies; review happens at egress ---

test_large_epsilon_not_held_at_access if {
	d := access.decision with input as good with data.cleanroom.params.review_epsilon_per_job as 0.5
	d == {"result": "allow", "reasons": []}
}

test_l3_dataset_not_held_at_access if {
	d := access.decision with input as patched("replace", "/datasets/0/grade", "L3")
	d == {"result": "allow", "reasons": []}
}

test_mistyped_review_threshold_still_denied if {
	# lib checks every tunable for both policies, so a broken bundle fails at access too.
	"params_invalid" in deny_codes(good) with data.cleanroom.params.review_epsilon_per_job as "0.5"
}

# --- params ---

test_missing_params_denied if {
	d := access.decision with input as good with data.cleanroom.params as {}
	d.result == "deny"
	"params_invalid" in codes(d.reasons)
}

test_mistyped_param_denied if {
	cs := deny_codes(good) with data.cleanroom.params.max_epsilon_per_job as "2"
	"params_invalid" in cs
}

test_negative_min_units_denied if {
	"params_invalid" in deny_codes(good) with data.cleanroom.params.min_units_per_group as -1
}

test_negative_differencing_min_units_denied if {
	"params_invalid" in deny_codes(good) with data.cleanroom.params.differencing_min_units as -1
}

test_mistyped_disclosure_denied if {
	"params_invalid" in deny_codes(good) with data.cleanroom.params.disclose_suppressed_groups as "yes"
}

test_shipped_params_valid if {
	not "params_invalid" in deny_codes(good)
}

test_counting_rows_of_identifier_allowed if {
	cs := deny_codes(patched("add", "/columns/-", identifier_col("count_rows")))
	not "identifier_in_count_rows" in cs
	not "usage_unknown" in cs
}

# --- joins ---

# claims is a second private dataset of the same domain, protected per person too.
claims := {"name": "claims", "provider": "medical_insurance_bureau", "grade": "L2", "domain": "platform", "privacy_unit": "person_id"}

# districts is a public lookup table: district codes and names, no privacy unit.
districts := {"name": "districts", "provider": "civil_affairs_bureau", "grade": "L1", "domain": "platform", "privacy_unit": "", "public": true}

unit_col(dataset, usage) := {"dataset": dataset, "column": "person_id", "tags": ["identifier"], "usage": usage, "privacy_unit": true}

district_code := {"dataset": "visits", "column": "district_code", "tags": ["quasi_identifier"], "usage": "join_key", "privacy_unit": false}

lookup_code := {"dataset": "districts", "column": "code", "tags": ["attribute"], "usage": "join_key", "privacy_unit": false}

lookup_name := {"dataset": "districts", "column": "name", "tags": ["attribute"], "usage": "group_key", "privacy_unit": false}

# unit_join is good joined with claims on person_id.
unit_join := json.patch(good, [
	{"op": "add", "path": "/datasets/-", "value": claims},
	{"op": "add", "path": "/columns/-", "value": unit_col("visits", "join_unit")},
	{"op": "add", "path": "/columns/-", "value": unit_col("claims", "join_unit")},
])

# lookup_join is good joined with districts on the district code, grouped by district name.
lookup_join := json.patch(good, [
	{"op": "add", "path": "/datasets/-", "value": districts},
	{"op": "add", "path": "/columns/-", "value": district_code},
	{"op": "add", "path": "/columns/-", "value": lookup_code},
	{"op": "add", "path": "/columns/-", "value": lookup_name},
])

test_join_usages_known if {
	every usage in ["join_unit", "join_key", "filter_equality"] {
		not "usage_unknown" in deny_codes(patched("add", "/columns/-", identifier_col(usage)))
	}
}

test_join_on_privacy_units_allowed if {
	access.decision == {"result": "allow", "reasons": []} with input as unit_join
}

test_join_on_non_unit_identifier_denied if {
	"join_not_on_unit" in deny_codes(patched("add", "/columns/-", identifier_col("join_unit")))
}

test_join_on_non_identifier_as_unit_denied if {
	"join_not_on_unit" in deny_codes(patched("replace", "/columns/0/usage", "join_unit"))
}

test_join_unit_not_marked_by_engine_denied if {
	inp := json.patch(unit_join, [{"op": "replace", "path": "/columns/4/privacy_unit", "value": false}])
	"join_not_on_unit" in deny_codes(inp)
}

test_join_unit_the_dataset_does_not_declare_denied if {
	inp := json.patch(unit_join, [{"op": "replace", "path": "/datasets/1/privacy_unit", "value": "claim_id"}])
	"join_not_on_unit" in deny_codes(inp)
}

test_join_unit_of_public_table_denied if {
	# A public table has no privacy unit, even if it declares one.
	inp := json.patch(unit_join, [{"op": "add", "path": "/datasets/1/public", "value": true}])
	"join_not_on_unit" in deny_codes(inp)
}

test_lookup_join_allowed if {
	access.decision == {"result": "allow", "reasons": []} with input as lookup_join
}

test_identifier_join_key_denied if {
	"identifier_in_join_key" in deny_codes(patched("add", "/columns/-", identifier_col("join_key")))
}

test_privacy_unit_join_key_denied if {
	inp := json.patch(lookup_join, [{"op": "add", "path": "/columns/-", "value": unit_col("visits", "join_key")}])
	"identifier_in_join_key" in deny_codes(inp)
}

test_non_identifier_join_key_not_denied if {
	not "identifier_in_join_key" in deny_codes(lookup_join)
}

# --- public lookup tables ---

test_lookup_only_denied if {
	inp := json.patch(good, [
		{"op": "replace", "path": "/datasets", "value": [districts]},
		{"op": "replace", "path": "/columns", "value": [lookup_name]},
	])
	"lookup_only" in deny_codes(inp)
}

test_private_dataset_not_lookup_only if {
	not "lookup_only" in deny_codes(good)
	not "lookup_only" in deny_codes(patched("add", "/datasets/0/public", false))
	not "lookup_only" in deny_codes(lookup_join)
}

test_mistyped_public_flag_counts_as_public if {
	"lookup_only" in deny_codes(patched("add", "/datasets/0/public", "false"))
}

test_no_dataset_not_lookup_only if {
	inp := json.patch(good, [{"op": "replace", "path": "/datasets", "value": []}, {"op": "replace", "path": "/columns", "value": []}])
	not "lookup_only" in deny_codes(inp)
}

test_l4_lookup_table_denied if {
	inp := json.patch(lookup_join, [{"op": "replace", "path": "/datasets/1/grade", "value": "L4"}])
	"grade_not_operable" in deny_codes(inp)
}

test_lookup_table_without_grade_denied if {
	inp := json.patch(lookup_join, [{"op": "remove", "path": "/datasets/1/grade"}])
	"grade_unknown" in deny_codes(inp)
}

test_lookup_table_of_another_domain_denied if {
	inp := json.patch(lookup_join, [{"op": "replace", "path": "/datasets/1/domain", "value": "civil_affairs"}])
	"cross_domain_join" in deny_codes(inp)
}

test_counting_declared_unit_of_public_table_denied if {
	# With the flag dropped this very input is allowed, so the flag alone denies it.
	inp := patched("add", "/datasets/0/public", true)
	"unit_mismatch" in deny_codes(inp)
}

# --- equality filters on identifiers ---

test_identifier_equality_filter_denied_by_default if {
	reasons := access.deny with input as patched("add", "/columns/-", identifier_col("filter_equality"))
	some r in reasons
	startswith(r, "identifier_in_filter:")
	contains(r, "allow_identifier_equality_filters")
}

test_identifier_equality_filter_allowed_when_operator_sets_it if {
	inp := patched("add", "/columns/-", identifier_col("filter_equality"))
	d := access.decision with input as inp with data.cleanroom.params.allow_identifier_equality_filters as true
	d == {"result": "allow", "reasons": []}
}

test_identifier_other_filter_denied_even_when_equality_allowed if {
	inp := patched("add", "/columns/-", identifier_col("filter"))
	cs := deny_codes(inp) with data.cleanroom.params.allow_identifier_equality_filters as true
	"identifier_in_filter" in cs
}

test_non_identifier_equality_filter_allowed if {
	col := {"dataset": "visits", "column": "age_band", "tags": ["quasi_identifier"], "usage": "filter_equality", "privacy_unit": false}
	access.decision.result == "allow" with input as patched("add", "/columns/-", col)
}

test_equality_filter_tunable_missing_denied if {
	shipped := data.cleanroom.params
	inp := patched("add", "/columns/-", identifier_col("filter_equality"))
	cs := deny_codes(inp) with data.cleanroom.params as object.remove(shipped, {"allow_identifier_equality_filters"})
	"params_invalid" in cs
	"identifier_in_filter" in cs
}

test_equality_filter_tunable_not_boolean_denied if {
	inp := patched("add", "/columns/-", identifier_col("filter_equality"))
	every v in ["true", 1, null, {}] {
		cs := deny_codes(inp) with data.cleanroom.params.allow_identifier_equality_filters as v
		"params_invalid" in cs
		"identifier_in_filter" in cs
	}
}

# under_grant is good, run under a grant covering visits for sql jobs of insurer_a.
under_grant := object.union(good, {"grant": {
	"id": "g-1", "org": "insurer_a", "purpose": "pricing", "scenario": "claims by district",
	"datasets": ["visits"], "job_kinds": ["sql"],
}})

test_job_within_grant_allowed if {
	access.decision.result == "allow" with input as under_grant
}

test_dataset_outside_grant_denied if {
	inp := json.patch(under_grant, [{"op": "replace", "path": "/grant/datasets", "value": ["claims"]}])
	"dataset_outside_grant" in deny_codes(inp)
}

test_job_kind_outside_grant_denied if {
	inp := json.patch(under_grant, [{"op": "replace", "path": "/grant/job_kinds", "value": ["model"]}])
	"job_kind_outside_grant" in deny_codes(inp)
}

test_grant_of_other_org_denied if {
	inp := json.patch(under_grant, [{"op": "replace", "path": "/grant/org", "value": "insurer_b"}])
	"grant_other_org" in deny_codes(inp)
}

test_public_lookup_table_need_not_be_in_grant if {
	inp := json.patch(under_grant, [{"op": "add", "path": "/datasets/-", "value": {
		"name": "districts", "provider": "civil_affairs_bureau", "grade": "L1", "domain": "platform", "public": true,
	}}])
	access.decision.result == "allow" with input as inp
}

test_rate_limits if {
	hour := access.params.max_jobs_per_grant_per_hour
	day := access.params.max_jobs_per_grant_per_day
	busy := json.patch(under_grant, [{"op": "add", "path": "/grant/usage", "value": {"jobs_last_hour": hour, "jobs_last_day": 0}}])
	"rate_limited" in deny_codes(busy)
	daily := json.patch(under_grant, [{"op": "add", "path": "/grant/usage", "value": {"jobs_last_hour": 0, "jobs_last_day": day}}])
	"rate_limited" in deny_codes(daily)
	quiet := json.patch(under_grant, [{"op": "add", "path": "/grant/usage", "value": {"jobs_last_hour": hour - 1, "jobs_last_day": day - 1}}])
	access.decision.result == "allow" with input as quiet
}

test_missing_max_differencing_checks_denied if {
	cs := deny_codes(good) with data.cleanroom.params as object.remove(data.cleanroom.params, {"max_differencing_checks"})
	"params_invalid" in cs
}

test_fractional_max_differencing_checks_denied if {
	every n in [2.5, -1, 1001, "8"] {
		"params_invalid" in deny_codes(good) with data.cleanroom.params.max_differencing_checks as n
	}
}

test_whole_max_differencing_checks_accepted if {
	every n in [0, 2, 16, 1000] {
		not "params_invalid" in deny_codes(good) with data.cleanroom.params.max_differencing_checks as n
	}
}

# --- verification (核验) ---

# verify_good is an admissible verification: 100 checks of residents' income band.
verify_good := {
	"principal": {"name": "alice", "role": "applicant", "org": "insurer_a"},
	"action": "submit_job",
	"datasets": [{
		"name": "residents", "provider": "public_security_bureau", "grade": "L3",
		"domain": "platform", "privacy_unit": "person_id",
	}],
	"columns": [{"dataset": "residents", "column": "income_band", "tags": ["sensitive"], "usage": "verify_attribute", "privacy_unit": false}],
	"job": {"kind": "verify", "epsilon": 0, "delta": 0, "max_groups_contributed": 0, "max_contributions_per_group": 0, "public_partitions": false, "checks": 100},
}

test_verify_job_is_allowed_without_privacy_parameters if {
	access.decision == {"result": "allow", "reasons": []} with input as verify_good
}

test_verify_checks_out_of_range_denied if {
	every n in [0, -1, 1.5, 65537, "100"] {
		"checks_out_of_range" in deny_codes(json.patch(verify_good, [{"op": "replace", "path": "/job/checks", "value": n}]))
	}
}

test_verify_of_an_identifier_denied if {
	inp := json.patch(verify_good, [{"op": "replace", "path": "/columns/0/tags", "value": ["identifier"]}])
	"identifier_in_verify" in deny_codes(inp)
}

test_verify_usage_in_a_sql_job_denied if {
	inp := json.patch(good, [{"op": "add", "path": "/columns/-", "value": {"dataset": "visits", "column": "district", "tags": ["quasi_identifier"], "usage": "verify_attribute", "privacy_unit": false}}])
	"usage_outside_kind" in deny_codes(inp)
}

test_sql_usage_in_a_verify_job_denied if {
	inp := json.patch(verify_good, [{"op": "replace", "path": "/columns/0/usage", "value": "group_key"}])
	"usage_outside_kind" in deny_codes(inp)
}

test_sql_parameters_still_checked_for_sql if {
	"epsilon_out_of_range" in deny_codes(patched("replace", "/job/epsilon", 0))
}

test_l4_dataset_never_verified if {
	inp := json.patch(verify_good, [{"op": "replace", "path": "/datasets/0/grade", "value": "L4"}])
	count(deny_codes(inp)) > 0
}
