# Package cleanroom.egress decides whether a computed result may leave (出域). The engine
# queries data.cleanroom.egress.decision after the DP/HE result and the reviewer's checks;
# "allow" releases, "review" holds the result for reviewers, "deny" drops it. A review
# decision also carries "reviewers": how many independent reviewers must approve the result.
#
# Input: {principal, datasets, job, output, findings}; see the Go type policy.EgressInput.
package cleanroom.egress

import data.cleanroom.lib

decision := lib.decide_reviewed(deny, review, reviewers)

params := lib.params

deny contains reason if {
	some reason in lib.invalid_params
}

deny contains reason if {
	some reason in lib.grade_denials
}

# --- lineage ---

kinds := {"group_key", "aggregate"}

deny contains sprintf("output_kind_unknown: output column %s has kind %s", [col.name, col.kind]) if {
	some col in input.output.columns
	not col.kind in kinds
}

# No output column may derive from an identifier, except a count of distinct privacy units or a
# count of rows where the identifier is present. Both are allow-listed by usage, so an
# identifier used otherwise (to join or filter) never counts as released lineage.
deny contains sprintf("identifier_in_output: output column %s derives from %s.%s, tagged identifier", [col.name, src.dataset, src.column]) if {
	some col in input.output.columns
	some src in col.derived_from
	lib.is_identifier(src)
	not counts_units(col, src)
}

counts_units(col, src) if {
	col.kind == "aggregate"
	col.aggregate == "count_distinct"
	src.usage == "count_distinct_unit"
	lib.is_privacy_unit(src, input.datasets)
}

counts_units(col, src) if {
	col.kind == "aggregate"
	col.aggregate == "count"
	src.usage == "count_rows"
}

# A column computed after the noise from released counts (a ratio, a share, a window over
# them) carries its operands' lineage; a function of those counts releases no identifier either.
counts_units(col, src) if {
	col.kind == "aggregate"
	col.aggregate == "post_processing"
	src.usage == "count_distinct_unit"
	lib.is_privacy_unit(src, input.datasets)
}

counts_units(col, src) if {
	col.kind == "aggregate"
	col.aggregate == "post_processing"
	src.usage == "count_rows"
}

# --- the reviewer's findings ---

severities := {"low", "medium", "high"}

deny contains sprintf("finding_high: reviewer finding %s is high severity", [f.code]) if {
	some f in input.findings
	f.severity == "high"
}

deny contains sprintf("finding_severity_unknown: reviewer finding %s has severity %s", [f.code, f.severity]) if {
	some f in input.findings
	not f.severity in severities
}

review contains sprintf("finding_medium: reviewer finding %s needs a reviewer", [f.code]) if {
	some f in input.findings
	f.severity == "medium"
}

# --- size ---

deny contains sprintf("rows_over_limit: %v rows exceed the limit of %v", [input.output.rows, params.max_rows]) if {
	input.output.rows > params.max_rows
}

deny contains sprintf("cells_over_limit: %v cells exceed the limit of %v", [input.output.cells, params.max_cells]) if {
	input.output.cells > params.max_cells
}

deny contains sprintf("bytes_over_limit: %v bytes exceed the limit of %v", [input.output.bytes, params.max_bytes]) if {
	input.output.bytes > params.max_bytes
}

deny contains "output_size_invalid: rows and cells must be non-negative whole numbers" if {
	some n in [input.output.rows, input.output.cells]
	not lib.is_whole_in_range(n, 0, n)
}

# --- mechanisms ---

allowed_mechanisms := {m | some m in params.allowed_mechanisms}

deny contains "mechanism_missing: the result names no DP mechanism" if {
	count(object.get(input, ["output", "mechanisms"], [])) == 0
}

deny contains sprintf("mechanism_not_allowed: mechanism %s is not allowed", [m]) if {
	some m in input.output.mechanisms
	not m in allowed_mechanisms
}

# --- review ---

# A job that spends more than review_epsilon_per_job in one go is held for a person on the
# operator side. The default threshold equals max_epsilon_per_job, so by default nothing is
# held; an operator lowers it in data.json.
review contains sprintf("epsilon_review: epsilon %v exceeds the review threshold %v", [input.job.epsilon, params.review_epsilon_per_job]) if {
	input.job.epsilon > params.review_epsilon_per_job
}

# Results over datasets of a grade in double_review_grades (by default L3) are held
# for two independent reviewers. A public lookup table protects no one, whatever its grade.
double_review_grades := {g | some g in params.double_review_grades}

double_review_datasets contains d if {
	some d in input.datasets
	not lib.is_public(d)
	d.grade in double_review_grades
}

review contains sprintf("double_review: dataset %s is graded %s; its output needs two independent reviewers", [d.name, d.grade]) if {
	some d in double_review_datasets
}

# reviewers is how many independent reviewers a held result needs.
reviewers := 2 if {
	count(double_review_datasets) > 0
} else := 1
