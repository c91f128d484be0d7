package cleanroom.egress_test

import data.cleanroom.egress

# good is a releasable result: DP counts of insured persons and sums of claims by district.
good := {
	"principal": {"name": "alice", "role": "applicant", "org": "insurer_a"},
	"datasets": [{
		"name": "visits",
		"provider": "medical_insurance_bureau",
		"grade": "L2",
		"domain": "platform",
		"privacy_unit": "person_id",
	}],
	"job": {
		"kind": "sql",
		"epsilon": 1,
		"delta": 1e-6,
		"max_groups_contributed": 1,
		"max_contributions_per_group": 5,
		"public_partitions": true,
	},
	"output": {
		"columns": [
			{"name": "district", "kind": "group_key", "aggregate": "", "derived_from": [district]},
			{"name": "persons", "kind": "aggregate", "aggregate": "count_distinct", "derived_from": [person_id]},
			{"name": "claims", "kind": "aggregate", "aggregate": "sum", "derived_from": [claim_amount]},
		],
		"rows": 16,
		"cells": 48,
		"mechanisms": ["laplace", "preagg_select_partition"],
	},
	"findings": [{"code": "small_group_suppressed", "severity": "low", "message": "2 groups suppressed"}],
}

district := {"dataset": "visits", "column": "district", "tags": ["quasi_identifier"], "usage": "group_key", "privacy_unit": false}

person_id := {"dataset": "visits", "column": "person_id", "tags": ["identifier"], "usage": "count_distinct_unit", "privacy_unit": true}

claim_amount := {"dataset": "visits", "column": "claim_amount", "tags": ["sensitive"], "usage": "aggregate", "privacy_unit": false}

phone := {"dataset": "visits", "column": "phone", "tags": ["identifier"], "usage": "group_key", "privacy_unit": false}

patched(op, path, value) := json.patch(good, [{"op": op, "path": path, "value": value}])

codes(reasons) := {substring(r, 0, indexof(r, ":")) | some r in reasons}

deny_codes(inp) := codes(reasons) if {
	reasons := egress.deny with input as inp
}

review_codes(inp) := codes(reasons) if {
	reasons := egress.review with input as inp
}

test_good_result_is_allowed if {
	egress.decision == {"result": "allow", "reasons": []} with input as good
}

# --- lineage ---

test_identifier_group_key_denied if {
	inp := patched("replace", "/output/columns/0/derived_from", [phone])
	"identifier_in_output" in deny_codes(inp)
}

test_identifier_among_sources_denied if {
	inp := patched("replace", "/output/columns/2/derived_from", [claim_amount, phone])
	"identifier_in_output" in deny_codes(inp)
}

test_identifier_sum_denied if {
	inp := patched("replace", "/output/columns/1/aggregate", "sum")
	"identifier_in_output" in deny_codes(inp)
}

test_privacy_unit_as_group_key_denied if {
	inp := patched("replace", "/output/columns/0/derived_from", [person_id])
	"identifier_in_output" in deny_codes(inp)
}

test_count_distinct_of_non_unit_identifier_denied if {
	inp := patched("replace", "/output/columns/1/derived_from", [phone])
	"identifier_in_output" in deny_codes(inp)
}

test_count_distinct_of_undeclared_unit_denied if {
	inp := patched("replace", "/datasets/0/privacy_unit", "org_code")
	"identifier_in_output" in deny_codes(inp)
}

test_count_distinct_of_unit_not_marked_by_engine_denied if {
	inp := patched("replace", "/output/columns/1/derived_from/0/privacy_unit", false)
	"identifier_in_output" in deny_codes(inp)
}

test_count_distinct_of_privacy_unit_allowed if {
	not "identifier_in_output" in deny_codes(good)
}

test_unknown_output_kind_denied if {
	"output_kind_unknown" in deny_codes(patched("replace", "/output/columns/2/kind", "row"))
}

test_known_output_kinds_accepted if {
	not "output_kind_unknown" in deny_codes(good)
}

# --- datasets ---

test_l4_dataset_denied if {
	"grade_not_operable" in deny_codes(patched("replace", "/datasets/0/grade", "L4"))
}

test_unknown_grade_denied if {
	"grade_unknown" in deny_codes(patched("replace", "/datasets/0/grade", ""))
}

test_operable_grade_accepted if {
	cs := deny_codes(good)
	not "grade_not_operable" in cs
	not "grade_unknown" in cs
}

# --- findings ---

test_high_finding_denied if {
	"finding_high" in deny_codes(patched("add", "/findings/-", {"code": "identifier_in_string", "severity": "high", "message": "an ID number pattern"}))
}

test_medium_finding_held_for_review if {
	inp := patched("add", "/findings/-", {"code": "differencing_suspected", "severity": "medium", "message": "the filter differs from an earlier query by few units"})
	d := egress.decision with input as inp
	d.result == "review"
	codes(d.reasons) == {"finding_medium"}
}

test_high_finding_wins_over_medium if {
	inp := json.patch(good, [
		{"op": "add", "path": "/findings/-", "value": {"code": "differencing_suspected", "severity": "medium", "message": ""}},
		{"op": "add", "path": "/findings/-", "value": {"code": "identifier_in_string", "severity": "high", "message": ""}},
	])
	d := egress.decision with input as inp
	d.result == "deny"
	codes(d.reasons) == {"finding_high"}
}

test_low_finding_neither_denies_nor_holds if {
	deny_codes(good) == set()
	review_codes(good) == set()
}

test_unknown_severity_denied if {
	"finding_severity_unknown" in deny_codes(patched("replace", "/findings/0/severity", "critical"))
}

# --- size ---

test_too_many_rows_denied if {
	"rows_over_limit" in deny_codes(patched("replace", "/output/rows", 10001))
}

test_rows_at_limit_accepted if {
	not "rows_over_limit" in deny_codes(patched("replace", "/output/rows", 10000))
}

test_too_many_cells_denied if {
	"cells_over_limit" in deny_codes(patched("replace", "/output/cells", 100001))
}

test_cells_at_limit_accepted if {
	not "cells_over_limit" in deny_codes(patched("replace", "/output/cells", 100000))
}

test_size_limits_come_from_params if {
	cs := deny_codes(good) with data.cleanroom.params.max_rows as 10
	"rows_over_limit" in cs
}

test_negative_size_denied if {
	"output_size_invalid" in deny_codes(patched("replace", "/output/cells", -1))
}

test_sizes_valid if {
	not "output_size_invalid" in deny_codes(good)
}

# --- mechanisms ---

test_no_mechanism_denied if {
	"mechanism_missing" in deny_codes(patched("replace", "/output/mechanisms", []))
}

test_mechanism_named if {
	not "mechanism_missing" in deny_codes(good)
}

test_unknown_mechanism_denied if {
	"mechanism_not_allowed" in deny_codes(patched("add", "/output/mechanisms/-", "none"))
}

test_allowed_mechanisms_accepted if {
	inp := patched("replace", "/output/mechanisms", ["laplace", "gaussian", "preagg_select_partition"])
	not "mechanism_not_allowed" in deny_codes(inp)
}

# --- params ---

test_missing_params_denied if {
	d := egress.decision with input as good with data.cleanroom.params as "none"
	d.result == "deny"
	"params_invalid" in codes(d.reasons)
}

test_mistyped_mechanism_list_denied if {
	"params_invalid" in deny_codes(good) with data.cleanroom.params.allowed_mechanisms as "laplace"
}

phone_rows := {"dataset": "visits", "column": "phone", "tags": ["identifier"], "usage": "count_rows", "privacy_unit": false}

test_count_of_rows_with_identifier_allowed if {
	inp := json.patch(good, [
		{"op": "replace", "path": "/output/columns/1/aggregate", "value": "count"},
		{"op": "replace", "path": "/output/columns/1/derived_from", "value": [phone_rows]},
	])
	not "identifier_in_output" in deny_codes(inp)
}

test_sum_marked_count_rows_denied if {
	inp := json.patch(good, [
		{"op": "replace", "path": "/output/columns/1/aggregate", "value": "sum"},
		{"op": "replace", "path": "/output/columns/1/derived_from", "value": [phone_rows]},
	])
	"identifier_in_output" in deny_codes(inp)
}

test_post_processed_count_of_rows_with_identifier_allowed if {
	inp := json.patch(good, [
		{"op": "replace", "path": "/output/columns/1/aggregate", "value": "post_processing"},
		{"op": "replace", "path": "/output/columns/1/derived_from", "value": [phone_rows, person_id]},
	])
	not "identifier_in_output" in deny_codes(inp)
}

test_post_processed_identifier_used_otherwise_denied if {
	unit := json.patch(person_id, [{"op": "replace", "path": "/usage", "value": "aggregate"}])
	inp := json.patch(good, [
		{"op": "replace", "path": "/output/columns/1/aggregate", "value": "post_processing"},
		{"op": "replace", "path": "/output/columns/1/derived_from", "value": [unit]},
	])
	"identifier_in_output" in deny_codes(inp)
}

# --- identifiers used to join or filter never count as released lineage ---

test_group_key_from_join_unit_denied if {
	unit := json.patch(person_id, [{"op": "replace", "path": "/usage", "value": "join_unit"}])
	inp := patched("replace", "/output/columns/0/derived_from", [unit])
	"identifier_in_output" in deny_codes(inp)
}

test_count_distinct_of_unit_used_otherwise_denied if {
	every usage in ["join_unit", "join_key", "filter_equality", "aggregate"] {
		"identifier_in_output" in deny_codes(patched("replace", "/output/columns/1/derived_from/0/usage", usage))
	}
}

test_count_of_identifier_used_otherwise_denied if {
	every usage in ["join_unit", "join_key", "filter_equality"] {
		src := json.patch(phone_rows, [{"op": "replace", "path": "/usage", "value": usage}])
		inp := json.patch(good, [
			{"op": "replace", "path": "/output/columns/1/aggregate", "value": "count"},
			{"op": "replace", "path": "/output/columns/1/derived_from", "value": [src]},
		])
		"identifier_in_output" in deny_codes(inp)
	}
}

test_count_distinct_of_public_table_unit_denied if {
	"identifier_in_output" in deny_codes(patched("add", "/datasets/0/public", true))
}

# --- review: thresholds and reviewers ---

test_large_epsilon_held_for_review if {
	d := egress.decision with input as good with data.cleanroom.params.review_epsilon_per_job as 0.5
	d == {
		"result": "review",
		"reasons": ["epsilon_review: epsilon 1 exceeds the review threshold 0.5"],
		"reviewers": 1,
	}
}

test_default_epsilon_threshold_holds_nothing if {
	review_codes(patched("replace", "/job/epsilon", 2)) == set()
}

test_deny_wins_over_review if {
	inp := patched("add", "/findings/-", {"code": "identifier_in_string", "severity": "high", "message": ""})
	d := egress.decision with input as inp with data.cleanroom.params.review_epsilon_per_job as 0.5
	d.result == "deny"
	codes(d.reasons) == {"finding_high"}
	not "reviewers" in object.keys(d)
}

test_allow_carries_no_reviewers if {
	d := egress.decision with input as good
	not "reviewers" in object.keys(d)
}

test_medium_finding_needs_one_reviewer if {
	inp := patched("add", "/findings/-", {"code": "differencing_suspected", "severity": "medium", "message": ""})
	d := egress.decision with input as inp
	d.reviewers == 1
}

test_l3_output_held_for_two_reviewers if {
	d := egress.decision with input as patched("replace", "/datasets/0/grade", "L3")
	d == {
		"result": "review",
		"reasons": ["double_review: dataset visits is graded L3; its output needs two independent reviewers"],
		"reviewers": 2,
	}
}

test_l3_with_medium_finding_needs_two_reviewers if {
	inp := json.patch(good, [
		{"op": "replace", "path": "/datasets/0/grade", "value": "L3"},
		{"op": "add", "path": "/findings/-", "value": {"code": "differencing_suspected", "severity": "medium", "message": ""}},
	])
	d := egress.decision with input as inp
	d.result == "review"
	codes(d.reasons) == {"double_review", "finding_medium"}
	d.reviewers == 2
}

test_each_l3_dataset_named if {
	claims := {"name": "claims", "provider": "medical_insurance_bureau", "grade": "L3", "domain": "platform", "privacy_unit": "person_id"}
	inp := json.patch(good, [
		{"op": "replace", "path": "/datasets/0/grade", "value": "L3"},
		{"op": "add", "path": "/datasets/-", "value": claims},
	])
	d := egress.decision with input as inp
	count(d.reasons) == 2
	d.reviewers == 2
}

test_l3_denied_output_not_held if {
	inp := json.patch(good, [
		{"op": "replace", "path": "/datasets/0/grade", "value": "L3"},
		{"op": "replace", "path": "/output/rows", "value": 10001},
	])
	d := egress.decision with input as inp
	d.result == "deny"
	not "reviewers" in object.keys(d)
}

test_public_l3_lookup_table_not_double_reviewed if {
	districts := {"name": "districts", "provider": "civil_affairs_bureau", "grade": "L3", "domain": "platform", "privacy_unit": "", "public": true}
	d := egress.decision with input as patched("add", "/datasets/-", districts)
	d == {"result": "allow", "reasons": []}
}

test_other_grades_not_double_reviewed if {
	every grade in ["L1", "L2"] {
		not "double_review" in review_codes(patched("replace", "/datasets/0/grade", grade))
	}
}

test_double_review_grades_come_from_params if {
	d := egress.decision with input as good with data.cleanroom.params.double_review_grades as ["L2", "L3"]
	d.result == "review"
	d.reviewers == 2
	codes(d.reasons) == {"double_review"}
	e := egress.decision with input as patched("replace", "/datasets/0/grade", "L3") with data.cleanroom.params.double_review_grades as []
	e == {"result": "allow", "reasons": []}
}

test_double_review_grades_invalid_denied if {
	every v in ["L3", ["l3"], [3], null, {"grade": "L3"}] {
		"params_invalid" in deny_codes(good) with data.cleanroom.params.double_review_grades as v
	}
}

test_double_review_grades_missing_denied if {
	shipped := data.cleanroom.params
	cs := deny_codes(good) with data.cleanroom.params as object.remove(shipped, {"double_review_grades"})
	"params_invalid" in cs
}

test_bytes_limit_from_params if {
	limit := egress.params.max_bytes
	"bytes_over_limit" in deny_codes(patched("add", "/output/bytes", limit + 1))
	not "bytes_over_limit" in deny_codes(patched("add", "/output/bytes", limit))
}
