# Package cleanroom.lib holds what the access, egress and api policies share: the operator's
# tunables, the check that they are well formed, the column predicates, and the rules that
# turn deny and review reasons into a decision.
package cleanroom.lib

# params are the operator's tunables, data.cleanroom.params (data.json in this bundle).
# There are deliberately no defaults in Rego: data.json is the one place a limit is set,
# and a missing or mistyped tunable is itself a deny reason (params_invalid), so a bundle
# that lost its data fails closed instead of silently skipping a limit.
default params := {}

params := p if {
	p := data.cleanroom.params
	is_object(p)
}

number_params := {
	"min_epsilon_per_job",
	"max_epsilon_per_job",
	"review_epsilon_per_job",
	"max_delta_per_job",
	"max_groups_contributed",
	"max_contributions_per_group",
	"max_rows",
	"max_cells",
	"max_bytes",
	"min_units_per_group",
	"differencing_min_units",
	"max_differencing_checks",
	"max_jobs_per_grant_per_hour",
	"max_jobs_per_grant_per_day",
	"max_checks_per_job",
	"max_model_features",
	"max_model_rows_per_unit",
	"max_model_iterations",
	"max_wasm_blocks",
	"max_wasm_output_length",
	"max_wasm_module_bytes",
	"max_wasm_deadline_ms",
	"verify_checks_per_fact",
	"verify_fact_period_days",
	"verify_checks_per_grant_per_day",
}

string_list_params := {"allowed_job_kinds", "allowed_mechanisms", "double_review_grades"}

boolean_params := {"allow_identifier_equality_filters", "disclose_suppressed_groups"}

invalid_params contains sprintf("params_invalid: data.cleanroom.params.%s must be a number", [key]) if {
	some key in number_params
	not is_number(object.get(params, key, null))
}

invalid_params contains sprintf("params_invalid: data.cleanroom.params.%s must be a list of strings", [key]) if {
	some key in string_list_params
	not is_string_list(object.get(params, key, null))
}

invalid_params contains sprintf("params_invalid: data.cleanroom.params.%s must be true or false", [key]) if {
	some key in boolean_params
	not is_boolean(object.get(params, key, null))
}

# The engine reads these itself (policy.Engine.Params) to plan noisy unit counts; a negative
# value would read as "off".
invalid_params contains sprintf("params_invalid: data.cleanroom.params.%s must not be negative", [key]) if {
	some key in {"min_units_per_group", "differencing_min_units", "max_differencing_checks"}
	object.get(params, key, 0) < 0
}

# The engine counts differencing checks in whole jobs' worth; policy.New refuses the same.
invalid_params contains "params_invalid: data.cleanroom.params.max_differencing_checks must be a whole number from 0 to 1000" if {
	n := object.get(params, "max_differencing_checks", 0)
	is_number(n)
	not valid_check_cap(n)
}

valid_check_cap(n) if {
	n == round(n)
	n >= 0
	n <= 1000
}

# A grade the operator mistyped ("l3") would silently release what it meant to hold twice.
invalid_params contains "params_invalid: data.cleanroom.params.double_review_grades must list grades among L1..L4" if {
	some g in object.get(params, "double_review_grades", [])
	not g in grades
}

is_string_list(x) if {
	is_array(x)
	every v in x {
		is_string(v)
	}
}

# decide builds the decision document the engine reads: deny if any deny reason, else
# review if any review reason, else allow. Reasons are sorted, so equal inputs give equal
# decisions.
decide(deny_reasons, review_reasons) := {"result": "deny", "reasons": sort(deny_reasons)} if {
	count(deny_reasons) > 0
} else := {"result": "review", "reasons": sort(review_reasons)} if {
	count(review_reasons) > 0
} else := {"result": "allow", "reasons": []}

# decide_reviewed is decide, and a review decision also says how many independent reviewers
# (1..3) must approve the held result.
decide_reviewed(deny_reasons, review_reasons, reviewers) := object.union(d, {"reviewers": reviewers}) if {
	d := decide(deny_reasons, review_reasons)
	d.result == "review"
} else := decide(deny_reasons, review_reasons)

# grades are the classification grades (分级) a dataset may carry; L4 (不予开放) is never
# operated.
grades := {"L1", "L2", "L3", "L4"}

not_operable_grade := "L4"

# is_identifier holds for a column tagged identifier.
is_identifier(col) if "identifier" in col.tags

# is_public holds for a public lookup table. "public" may be absent (false); any value but
# false counts as public, so a mistyped flag fails closed (no privacy unit, not private).
is_public(d) if object.get(d, "public", false) != false

# is_privacy_unit holds when col is its dataset's declared privacy unit: the engine marked
# it so and the dataset the job declares names that column. A public table has no privacy
# unit, whatever it declares.
is_privacy_unit(col, datasets) if {
	col.privacy_unit == true
	some d in datasets
	d.name == col.dataset
	d.privacy_unit == col.column
	not is_public(d)
}

# is_whole_in_range holds for a whole number x with lo <= x <= hi.
is_whole_in_range(x, lo, hi) if {
	is_number(x)
	floor(x) == x
	x >= lo
	x <= hi
}

# grade_denials are the reasons input.datasets may not be operated at all; both access and
# egress deny on them, so a result never leaves for a dataset that should not have run.
grade_denials contains sprintf("grade_not_operable: dataset %s is graded L4 (不予开放)", [d.name]) if {
	some d in input.datasets
	d.grade == not_operable_grade
}

grade_denials contains sprintf("grade_unknown: dataset %s has no known grade (L1..L4)", [d.name]) if {
	some d in input.datasets

	# object.get: "not d.grade in grades" is not true when grade is absent.
	not object.get(d, "grade", "") in grades
}
