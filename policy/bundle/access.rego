# Package cleanroom.access decides whether a principal may run a job. The engine queries
# data.cleanroom.access.decision before anything touches data; a job runs only on "allow".
# Access only allows or denies: what a person must look at (epsilon_review, double_review)
# is held at egress, where the result exists to be looked at.
#
# Input: {principal, action, datasets, columns, job}; see the Go type policy.AccessInput.
package cleanroom.access

import data.cleanroom.lib

decision := lib.decide(deny, set())

params := lib.params

deny contains reason if {
	some reason in lib.invalid_params
}

# --- who may do what ---

actions := {"submit_job"}

deny contains sprintf("action_unknown: action %s is not one the policy knows", [action]) if {
	action := object.get(input, "action", "")
	not action in actions
}

deny contains sprintf("role_not_permitted: role %s may not submit jobs (applicant only)", [role]) if {
	input.action == "submit_job"
	role := object.get(input, ["principal", "role"], "")
	role != "applicant"
}

# --- which data ---

deny contains "datasets_missing: the job declares no dataset" if {
	count(object.get(input, "datasets", [])) == 0
}

deny contains reason if {
	some reason in lib.grade_denials
}

# A public lookup table has no privacy unit and no budget, so a job over lookup tables alone
# would spend nothing and protect no one: it must read a private dataset too.
deny contains "lookup_only: the job reads only public lookup tables; it must read a private dataset" if {
	count(object.get(input, "datasets", [])) > 0
	every d in input.datasets {
		lib.is_public(d)
	}
}

# Joins are allowed inside one data domain (on the privacy unit key); never across domains.
# A public lookup table has a domain too and joins only within it.
domains := {object.get(d, "domain", "") | some d in input.datasets}

deny contains sprintf("cross_domain_join: datasets span %d data domains (%s)", [count(domains), concat(", ", sort(domains))]) if {
	count(domains) > 1
	not federated_job
}

# A federated job reads one dataset in each of several domains and combines them only under a
# collective key (docs/he-collective.md): never two datasets of one domain.
federated_job if input.job.kind == "federated_sql"

deny contains "federated_same_domain: a federated job reads one dataset per data domain" if {
	federated_job
	count(domains) < count(input.datasets)
}

# --- how columns are used ---

usages := {
	"group_key", "filter", "filter_equality", "aggregate", "count_distinct_unit", "count_rows",
	"output", "join_unit", "join_key", "verify_attribute", "model_feature", "model_label",
	"wasm_input",
}

dataset_names := {d.name | some d in input.datasets}

deny contains sprintf("column_dataset_unknown: column %s.%s is from a dataset the job does not declare", [c.dataset, c.column]) if {
	some c in input.columns
	not c.dataset in dataset_names
}

# object.get: "not c.usage in usages" is not true when usage is absent, and every rule below
# keys on the usage.
deny contains sprintf("usage_unknown: column %s.%s has usage %s", [c.dataset, c.column, usage]) if {
	some c in input.columns
	usage := object.get(c, "usage", "")
	not usage in usages
}

# An identifier may be counted — as its dataset's privacy unit (usage count_distinct_unit), or
# as rows where it is present (usage count_rows, COUNT(col)) — but never grouped by, aggregated
# or output. Nor may it key a join with a lookup table (join_key): a table keyed by
# identifiers selects or labels persons, a filter on identifiers in disguise.
deny contains sprintf("identifier_in_%s: column %s.%s is tagged identifier", [c.usage, c.dataset, c.column]) if {
	some c in input.columns
	c.usage in {"group_key", "aggregate", "output", "join_key", "model_feature", "model_label", "wasm_input"}
	lib.is_identifier(c)
}

# Filtering on an identifier singles out a person. A filter other than = or IN with constants
# (ranges, LIKE, functions) can probe values, so it is always refused.
deny contains sprintf("identifier_in_filter: column %s.%s is tagged identifier; only = or IN with constants may filter on it", [c.dataset, c.column]) if {
	some c in input.columns
	c.usage == "filter"
	lib.is_identifier(c)
}

# An equality filter (WHERE id = '...' or IN (...)) names the persons in the result, so it is
# the operator's call: refused unless data.json sets allow_identifier_equality_filters.
deny contains sprintf("identifier_in_filter: column %s.%s is tagged identifier; equality filters on identifiers need the operator to set allow_identifier_equality_filters", [c.dataset, c.column]) if {
	some c in input.columns
	c.usage == "filter_equality"
	lib.is_identifier(c)
	not identifier_equality_filters_allowed
}

# Written as a positive test so that a missing tunable leaves it undefined, i.e. refused.
identifier_equality_filters_allowed if params.allow_identifier_equality_filters == true

# Private datasets join only on their privacy units, so each row still belongs to one person
# and the per-person contribution bounds still hold.
deny contains sprintf("join_not_on_unit: column %s.%s is joined as the privacy unit but is not its dataset's privacy unit", [c.dataset, c.column]) if {
	some c in input.columns
	c.usage == "join_unit"
	not lib.is_privacy_unit(c, input.datasets)
}

deny contains sprintf("unit_mismatch: column %s.%s is counted as the privacy unit but is not its dataset's privacy unit", [c.dataset, c.column]) if {
	some c in input.columns
	c.usage == "count_distinct_unit"
	not lib.is_privacy_unit(c, input.datasets)
}

# --- the job's privacy parameters ---

deny contains sprintf("job_kind_unsupported: job kind %s is not allowed", [kind]) if {
	kind := object.get(input, ["job", "kind"], "")
	not kind in {k | some k in params.allowed_job_kinds}
}

# The privacy parameters are a DP SQL job's — and a federated one's, which runs the same SQL
# over one dataset per data domain under a collective key; a verification spends no budget
# (below).
sql_job if input.job.kind in {"sql", "federated_sql"}

# A model job spends (epsilon, delta) like a SQL job; its noise is Gaussian, so its delta is
# never 0 (below).
dp_job if sql_job

dp_job if model_job

dp_job if wasm_job

deny contains sprintf("epsilon_out_of_range: epsilon %v must be in (0, %v]", [input.job.epsilon, params.max_epsilon_per_job]) if {
	dp_job
	not epsilon_ok
}

epsilon_ok if {
	is_number(input.job.epsilon)
	input.job.epsilon > 0
	input.job.epsilon <= params.max_epsilon_per_job
}

# Below the operator's minimum the noise swamps any answer a job could get (at 5e-13 a count
# came back 0 with the interval [0, 0]): such a job spends budget and a rate-limit slot on
# nothing. Refused by name, so the applicant learns the minimum.
deny contains sprintf("epsilon_below_minimum: epsilon %v is below the operator's minimum of %v per job; a smaller epsilon's noise drowns any answer, so spend at least %v", [input.job.epsilon, params.min_epsilon_per_job, params.min_epsilon_per_job]) if {
	dp_job
	epsilon_ok
	input.job.epsilon < params.min_epsilon_per_job
}

deny contains sprintf("delta_out_of_range: delta %v must be in [0, %v)", [input.job.delta, params.max_delta_per_job]) if {
	dp_job
	not delta_ok
}

delta_ok if {
	is_number(input.job.delta)
	input.job.delta >= 0
	input.job.delta < params.max_delta_per_job
}

deny contains sprintf("max_groups_contributed_out_of_range: %v must be a whole number in 1..%v", [input.job.max_groups_contributed, params.max_groups_contributed]) if {
	sql_job
	not lib.is_whole_in_range(input.job.max_groups_contributed, 1, params.max_groups_contributed)
}

deny contains sprintf("max_contributions_per_group_out_of_range: %v must be a whole number in 1..%v", [input.job.max_contributions_per_group, params.max_contributions_per_group]) if {
	sql_job
	not lib.is_whole_in_range(input.job.max_contributions_per_group, 1, params.max_contributions_per_group)
}

# --- models ---

# A model job (kind model) trains a DP regression on row-level SQL: its features and label are
# clipped to public bounds and summed per unit into noisy statistics; only coefficients and
# noisy metrics leave. The operator caps its shape: features, rows read per person, and a
# logistic fit's steps.
model_job if input.job.kind == "model"

deny contains sprintf("model_delta_zero: a model's noise is Gaussian and needs delta > 0, not %v", [input.job.delta]) if {
	model_job
	input.job.delta == 0
}

deny contains sprintf("model_features_out_of_range: %v features must be a whole number in 1..%v", [n, params.max_model_features]) if {
	model_job
	n := object.get(input.job, ["model", "features"], 0)
	not lib.is_whole_in_range(n, 1, params.max_model_features)
}

deny contains sprintf("model_rows_per_unit_out_of_range: %v rows per unit must be a whole number in 1..%v", [n, params.max_model_rows_per_unit]) if {
	model_job
	n := object.get(input.job, ["model", "max_rows_per_unit"], 0)
	not lib.is_whole_in_range(n, 1, params.max_model_rows_per_unit)
}

deny contains sprintf("model_iterations_out_of_range: %v iterations must be a whole number in 1..%v", [n, params.max_model_iterations]) if {
	model_job
	input.job.model.type == "logistic_regression"
	n := object.get(input.job, ["model", "iterations"], 0)
	not lib.is_whole_in_range(n, 1, params.max_model_iterations)
}

deny contains sprintf("usage_outside_kind: column %s.%s is used as %s in a %s job", [c.dataset, c.column, c.usage, input.job.kind]) if {
	some c in input.columns
	c.usage in {"model_feature", "model_label"}
	not model_job
}

deny contains sprintf("usage_outside_kind: column %s.%s is used as %s in a %s job", [c.dataset, c.column, c.usage, input.job.kind]) if {
	some c in input.columns
	not c.usage in {"model_feature", "model_label", "filter", "filter_equality", "join_unit", "join_key"}
	model_job
}

# --- custom model code (WebAssembly) ---

# A custom model job (kind wasm) runs the applicant's module once per block of privacy units
# (k disjoint blocks by a keyed hash); each output is clamped to declared bounds and only the
# noisy average over the blocks leaves (sample-and-aggregate, docs/models.md). Its delta may be
# 0 (Laplace) or positive (Gaussian). The operator caps its shape: k, the output's length, the
# module's size and the per-block deadline (which bound the work a job may cost). The columns
# the module reads are never identifiers (above): the unit decides the block and stays out.
wasm_job if input.job.kind == "wasm"

deny contains sprintf("wasm_blocks_out_of_range: %v blocks must be a whole number in 2..%v", [n, params.max_wasm_blocks]) if {
	wasm_job
	n := object.get(input.job, ["wasm", "blocks"], 0)
	not lib.is_whole_in_range(n, 2, params.max_wasm_blocks)
}

deny contains sprintf("wasm_output_length_out_of_range: an output of %v elements must be a whole number in 1..%v", [n, params.max_wasm_output_length]) if {
	wasm_job
	n := object.get(input.job, ["wasm", "output_length"], 0)
	not lib.is_whole_in_range(n, 1, params.max_wasm_output_length)
}

deny contains sprintf("wasm_module_too_large: a module of %v bytes is more than the %v allowed", [n, params.max_wasm_module_bytes]) if {
	wasm_job
	n := object.get(input.job, ["wasm", "module_bytes"], 0)
	not lib.is_whole_in_range(n, 1, params.max_wasm_module_bytes)
}

deny contains sprintf("wasm_deadline_out_of_range: a per-block deadline of %v ms must be a whole number in 1..%v", [n, params.max_wasm_deadline_ms]) if {
	wasm_job
	n := object.get(input.job, ["wasm", "deadline_ms"], 0)
	not lib.is_whole_in_range(n, 1, params.max_wasm_deadline_ms)
}

deny contains sprintf("usage_outside_kind: column %s.%s is used as %s in a %s job", [c.dataset, c.column, c.usage, input.job.kind]) if {
	some c in input.columns
	c.usage == "wasm_input"
	not wasm_job
}

deny contains sprintf("usage_outside_kind: column %s.%s is used as %s in a %s job", [c.dataset, c.column, c.usage, input.job.kind]) if {
	some c in input.columns
	not c.usage in {"wasm_input", "filter", "filter_equality", "join_unit", "join_key"}
	wasm_job
}

# --- verification (核验) ---

# A verification answers an exact question about one person per check — match or no match —
# so it is the exception it is: only a dataset's declared verifiable attributes (the engine
# refuses others before asking), a bounded number of checks per job, and per fact and day the
# limits the engine keeps in the ledger (verify_checks_per_fact per verify_fact_period_days,
# verify_checks_per_grant_per_day). An identifier is never what a check is about.
verify_job if input.job.kind == "verify"

deny contains sprintf("checks_out_of_range: %v checks must be a whole number in 1..%v", [input.job.checks, params.max_checks_per_job]) if {
	verify_job
	not lib.is_whole_in_range(object.get(input.job, "checks", 0), 1, params.max_checks_per_job)
}

deny contains sprintf("identifier_in_verify: column %s.%s is tagged identifier; a check is about a person, not an identifier to confirm", [c.dataset, c.column]) if {
	some c in input.columns
	c.usage == "verify_attribute"
	lib.is_identifier(c)
}

deny contains sprintf("usage_outside_kind: column %s.%s is used as %s in a %s job", [c.dataset, c.column, c.usage, input.job.kind]) if {
	some c in input.columns
	c.usage == "verify_attribute"
	not verify_job
}

deny contains sprintf("usage_outside_kind: column %s.%s is used as %s in a %s job", [c.dataset, c.column, c.usage, input.job.kind]) if {
	some c in input.columns
	c.usage != "verify_attribute"
	verify_job
}

# --- the grant ---

# A job under a grant reads only the datasets the grant covers (public lookup tables aside),
# runs only a job kind it covers, and only for the grant's own organisation. The server
# enforces the same; the rules here make the agreement part of every recorded decision.
deny contains sprintf("dataset_outside_grant: dataset %s is not covered by grant %s", [d.name, input.grant.id]) if {
	some d in input.datasets
	not lib.is_public(d)
	not d.name in {n | some n in input.grant.datasets}
}

deny contains sprintf("job_kind_outside_grant: grant %s does not cover %s jobs", [input.grant.id, input.job.kind]) if {
	input.grant
	not input.job.kind in {k | some k in input.grant.job_kinds}
}

deny contains sprintf("grant_other_org: grant %s belongs to %s", [input.grant.id, input.grant.org]) if {
	input.grant
	input.grant.org != input.principal.org
}

# A grant runs at most so many jobs an hour and a day: many small queries are how averaging and
# reconstruction attacks spend a budget, and a burst is worth a person's look. The server counts
# the grant's earlier jobs into input.grant.usage.
deny contains sprintf("rate_limited: grant %s ran %v jobs in the last hour (limit %v)", [input.grant.id, n, params.max_jobs_per_grant_per_hour]) if {
	n := input.grant.usage.jobs_last_hour
	n >= params.max_jobs_per_grant_per_hour
}

deny contains sprintf("rate_limited: grant %s ran %v jobs in the last day (limit %v)", [input.grant.id, n, params.max_jobs_per_grant_per_day]) if {
	n := input.grant.usage.jobs_last_day
	n >= params.max_jobs_per_grant_per_day
}
