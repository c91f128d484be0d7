package cleanroom.api_test

import data.cleanroom.api

# matrix is who may do what, spelled out again here rather than read from api.permissions,
# so that a change to either fails a test. "any": allowed on any org's resource; "own": only
# on the principal's own org's; "other": only on another org's (separation of duties). A role
# not listed is never allowed.
matrix := {
	"whoami": {"provider": "any", "operator": "any", "applicant": "any", "reviewer": "any", "auditor": "any"},
	"dataset.register": {"provider": "own"},
	"dataset.list": {"provider": "any", "operator": "any", "applicant": "any", "reviewer": "any", "auditor": "any"},
	"dataset.usage": {"provider": "own", "operator": "any", "auditor": "any"},
	"application.create": {"applicant": "own"},
	"application.list": {"applicant": "any", "operator": "any", "auditor": "any"},
	"application.read": {"applicant": "own", "operator": "any", "auditor": "any"},
	"application.approve": {"operator": "any"},
	"application.reject": {"operator": "any"},
	"grant.list": {"applicant": "any", "operator": "any", "auditor": "any"},
	"grant.read": {"applicant": "own", "operator": "any", "auditor": "any"},
	"grant.budget": {"applicant": "own", "operator": "any", "auditor": "any"},
	"grant.suspend": {"operator": "any"},
	"grant.resume": {"operator": "any"},
	"grant.revoke": {"operator": "any"},
	"grant.redteam": {"operator": "any"},
	"job.submit": {"applicant": "own"},
	"job.explain": {"applicant": "own"},
	"job.list": {"applicant": "any", "operator": "any", "auditor": "any"},
	"job.read": {"applicant": "own", "operator": "any", "auditor": "any"},
	"job.result": {"applicant": "own", "auditor": "any"},
	"review.list": {"reviewer": "any"},
	"review.decide": {"reviewer": "other"},
	"audit.verify": {"auditor": "any"},
	"audit.job": {"auditor": "any"},
	"audit.replay": {"auditor": "any"},
	"audit.checkpoint": {"auditor": "any"},
	"audit.proof": {"auditor": "any"},
	"audit.pubkey": {"provider": "any", "operator": "any", "applicant": "any", "reviewer": "any", "auditor": "any"},
}

# kinds is the kind of resource the tests send with each action.
kinds := {
	"whoami": "self",
	"dataset.register": "dataset",
	"dataset.list": "dataset",
	"dataset.usage": "dataset",
	"application.create": "application",
	"application.list": "application",
	"application.read": "application",
	"application.approve": "application",
	"application.reject": "application",
	"grant.list": "grant",
	"grant.read": "grant",
	"grant.budget": "grant",
	"grant.suspend": "grant",
	"grant.resume": "grant",
	"grant.revoke": "grant",
	"grant.redteam": "grant",
	"job.submit": "grant",
	"job.explain": "grant",
	"job.list": "job",
	"job.read": "job",
	"job.result": "job",
	"review.list": "review",
	"review.decide": "review",
	"audit.verify": "audit",
	"audit.job": "audit",
	"audit.replay": "audit",
	"audit.checkpoint": "audit",
	"audit.proof": "audit",
	"audit.pubkey": "audit",
}

roles := ["provider", "operator", "applicant", "reviewer", "auditor"]

# The principal is pat of org_a; "own" resources belong to org_a, "other" ones to org_b.
owner_of("own") := "org_a"

owner_of("other") := "org_b"

# resource is a resource of kind owned by owner. A dataset is owned by its provider; its org
# field is set to the other org, so that a policy reading the wrong field fails.
resource(kind, owner) := {"kind": kind, "id": "visits", "provider": owner, "org": flip(owner)} if {
	kind == "dataset"
}

resource(kind, owner) := {"kind": kind, "id": "r1", "org": owner, "submitter": "sam", "reviewers": ["ria"]} if {
	kind != "dataset"
}

flip("org_a") := "org_b"

flip("org_b") := "org_a"

request(action, role, which) := {
	"principal": {"name": "pat", "role": role, "org": "org_a"},
	"action": action,
	"resource": resource(kinds[action], owner_of(which)),
}

codes(reasons) := {substring(r, 0, indexof(r, ":")) | some r in reasons}

outcome(inp) := {"result": d.result, "codes": codes(d.reasons)} if {
	d := api.decision with input as inp
}

allowed := {"result": "allow", "codes": set()}

want("any", _) := allowed

want("own", "own") := allowed

want("own", "other") := {"result": "deny", "codes": {"other_org"}}

want("other", "other") := allowed

want("other", "own") := {"result": "deny", "codes": {"separation_of_duties"}}

want("none", _) := {"result": "deny", "codes": {"not_permitted"}}

# outcomes are the decisions for action by every role, on its own org's and another org's
# resource.
outcomes(action) := {[role, which]: outcome(request(action, role, which)) |
	some role in roles
	some which in ["own", "other"]
}

# mismatches are the outcomes that differ from the matrix, described for the test's reader.
mismatches(action) := {sprintf("%s by %s on %s org: got %v, want %v", [action, role, which, got, w]) |
	some [role, which], got in outcomes(action)
	w := want(object.get(matrix[action], role, "none"), which)
	got != w
}

# check holds when every role gets the matrix's answer for action, own org and other.
check(action) if {
	count(outcomes(action)) == count(roles) * 2
	mismatches(action) == set()
}

test_matrix_names_every_action if {
	object.keys(matrix) == api.actions
	object.keys(kinds) == api.actions
	object.keys(api.resource_kinds) == api.actions
}

test_roles if {
	api.roles == {r | some r in roles}
}

test_matrix_whoami if check("whoami")

test_matrix_dataset_register if check("dataset.register")

test_matrix_dataset_list if check("dataset.list")

test_matrix_dataset_usage if check("dataset.usage")

test_matrix_application_create if check("application.create")

test_matrix_application_list if check("application.list")

test_matrix_application_read if check("application.read")

test_matrix_application_approve if check("application.approve")

test_matrix_application_reject if check("application.reject")

test_matrix_grant_list if check("grant.list")

test_matrix_grant_read if check("grant.read")

test_matrix_grant_budget if check("grant.budget")

test_matrix_grant_suspend if check("grant.suspend")

test_matrix_grant_resume if check("grant.resume")

test_matrix_grant_revoke if check("grant.revoke")

test_matrix_grant_redteam if check("grant.redteam")

test_matrix_job_submit if check("job.submit")

test_matrix_job_explain if check("job.explain")

test_matrix_job_list if check("job.list")

test_matrix_job_read if check("job.read")

test_matrix_job_result if check("job.result")

test_matrix_review_list if check("review.list")

test_matrix_review_decide if check("review.decide")

test_matrix_audit_verify if check("audit.verify")

test_matrix_audit_job if check("audit.job")

test_matrix_audit_replay if check("audit.replay")

test_matrix_audit_checkpoint if check("audit.checkpoint")

test_matrix_audit_proof if check("audit.proof")

test_matrix_audit_pubkey if check("audit.pubkey")

test_never_review if {
	every action, _ in matrix {
		every role in roles {
			api.decision.result in {"allow", "deny"} with input as request(action, role, "other")
		}
	}
}

# --- the decision document ---

test_allow_has_no_reasons if {
	api.decision == {"result": "allow", "reasons": []} with input as request("grant.read", "applicant", "own")
}

test_not_permitted_says_role_and_action if {
	d := api.decision with input as request("job.result", "operator", "own")
	d == {"result": "deny", "reasons": ["not_permitted: role operator may not do job.result"]}
}

test_other_org_says_role_and_action if {
	d := api.decision with input as request("grant.budget", "applicant", "other")
	d == {"result": "deny", "reasons": ["other_org: role applicant may do grant.budget only on its own org's grant"]}
}

test_reasons_sorted if {
	inp := json.patch(request("grant.read", "applicant", "other"), [
		{"op": "replace", "path": "/resource/kind", "value": "job"},
		{"op": "remove", "path": "/principal/name"},
	])
	d := api.decision with input as inp
	d.result == "deny"
	d.reasons == sort(d.reasons)
	codes(d.reasons) == {"principal_invalid", "resource_kind_mismatch", "other_org"}
}

# Allow-list: a role whose scope no rule understands is allowed nothing, with a reason.
test_unmatched_scope_denied if {
	inp := request("grant.read", "applicant", "own")
	d := api.decision with input as inp with api.permissions as {"grant.read": {"applicant": "mine"}}
	d == {"result": "deny", "reasons": ["not_permitted: role applicant may not do grant.read"]}
}

# --- datasets are owned by their provider ---

test_dataset_owned_by_provider_not_org if {
	own := {"principal": {"name": "pia", "role": "provider", "org": "bureau"}, "action": "dataset.register", "resource": {"kind": "dataset", "id": "visits", "provider": "bureau"}}
	outcome(own) == allowed
	other := json.patch(own, [
		{"op": "replace", "path": "/resource/provider", "value": "other_bureau"},
		{"op": "add", "path": "/resource/org", "value": "bureau"},
	])
	outcome(other) == {"result": "deny", "codes": {"other_org"}}
}

test_dataset_without_provider_not_own if {
	inp := {"principal": {"name": "pia", "role": "provider", "org": "bureau"}, "action": "dataset.usage", "resource": {"kind": "dataset", "id": "visits"}}
	outcome(inp) == {"result": "deny", "codes": {"other_org"}}
}

test_resource_without_org_not_own if {
	inp := json.remove(request("job.read", "applicant", "own"), ["resource/org"])
	outcome(inp) == {"result": "deny", "codes": {"other_org"}}
}

# --- unknown or incomplete requests ---

test_unknown_action_denied if {
	inp := json.patch(request("whoami", "operator", "own"), [{"op": "replace", "path": "/action", "value": "dataset.delete"}])
	outcome(inp) == {"result": "deny", "codes": {"action_unknown"}}
}

test_missing_action_denied if {
	inp := json.remove(request("whoami", "operator", "own"), ["action"])
	outcome(inp) == {"result": "deny", "codes": {"action_unknown"}}
}

test_action_case_matters if {
	inp := json.patch(request("whoami", "operator", "own"), [{"op": "replace", "path": "/action", "value": "WHOAMI"}])
	"action_unknown" in outcome(inp).codes
}

test_unknown_role_denied if {
	every role in ["admin", "root", "Operator", "applicant "] {
		inp := request("whoami", role, "own")
		outcome(inp) == {"result": "deny", "codes": {"role_unknown"}}
	}
}

test_missing_principal_fields_denied if {
	every key in ["name", "role", "org"] {
		inp := json.remove(request("whoami", "auditor", "own"), [concat("/", ["principal", key])])
		"principal_invalid" in outcome(inp).codes
		outcome(inp).result == "deny"
	}
}

test_empty_or_mistyped_principal_fields_denied if {
	every key in ["name", "role", "org"] {
		every v in ["", 1, null, ["auditor"]] {
			inp := json.patch(request("whoami", "auditor", "own"), [{"op": "replace", "path": concat("/", ["", "principal", key]), "value": v}])
			"principal_invalid" in outcome(inp).codes
		}
	}
}

test_missing_principal_denied if {
	inp := json.remove(request("whoami", "auditor", "own"), ["principal"])
	d := api.decision with input as inp
	d.result == "deny"
	codes(d.reasons) == {"principal_invalid"}
	count(d.reasons) == 3
}

test_no_input_denied if {
	api.decision.result == "deny"
}

test_input_not_object_denied if {
	every inp in ["whoami", [], 1, null] {
		api.decision.result == "deny" with input as inp
	}
}

# --- resource kinds ---

test_wrong_resource_kind_denied if {
	inp := json.patch(request("job.submit", "applicant", "own"), [{"op": "replace", "path": "/resource/kind", "value": "job"}])
	d := api.decision with input as inp
	d == {"result": "deny", "reasons": ["resource_kind_mismatch: action job.submit acts on a grant, not a job"]}
}

test_missing_resource_denied if {
	inp := json.remove(request("whoami", "auditor", "own"), ["resource"])
	outcome(inp) == {"result": "deny", "codes": {"resource_kind_mismatch"}}
}

test_resource_not_object_denied if {
	inp := json.patch(request("whoami", "auditor", "own"), [{"op": "replace", "path": "/resource", "value": "self"}])
	outcome(inp) == {"result": "deny", "codes": {"resource_kind_mismatch"}}
}

test_job_kind_accepted_for_review_decide_and_audit_job if {
	every action in ["review.decide", "audit.job"] {
		role := {"review.decide": "reviewer", "audit.job": "auditor"}[action]
		inp := json.patch(request(action, role, "other"), [{"op": "replace", "path": "/resource/kind", "value": "job"}])
		outcome(inp) == allowed
	}
}

# --- separation of duties ---

# held is a job of insurer_a submitted by sam, held for review; ria has reviewed it once.
held := {"kind": "review", "id": "j1", "org": "insurer_a", "submitter": "sam", "reviewers": ["ria"]}

deciding(name, org) := {
	"principal": {"name": name, "role": "reviewer", "org": org},
	"action": "review.decide",
	"resource": held,
}

test_independent_second_reviewer_allowed if {
	outcome(deciding("rex", "review_board")) == allowed
}

test_first_reviewer_allowed if {
	inp := json.remove(deciding("rex", "review_board"), ["resource/reviewers"])
	outcome(inp) == allowed
}

test_submitter_may_not_decide if {
	d := api.decision with input as deciding("sam", "review_board")
	d == {"result": "deny", "reasons": ["separation_of_duties: a reviewer may not decide on a job they submitted"]}
}

test_reviewer_of_submitting_org_may_not_decide if {
	d := api.decision with input as deciding("rex", "insurer_a")
	d == {"result": "deny", "reasons": ["separation_of_duties: a reviewer may not decide on a job of their own org"]}
}

test_same_reviewer_may_not_decide_twice if {
	d := api.decision with input as deciding("ria", "review_board")
	d == {"result": "deny", "reasons": ["separation_of_duties: a reviewer may not review the same job twice"]}
}

test_all_conflicts_reported if {
	inp := json.patch(deciding("sam", "insurer_a"), [{"op": "replace", "path": "/resource/reviewers", "value": ["sam"]}])
	d := api.decision with input as inp
	d.result == "deny"
	count(d.reasons) == 3
	codes(d.reasons) == {"separation_of_duties"}
}

test_decide_needs_org_and_submitter if {
	every key in ["org", "submitter"] {
		inp := json.remove(deciding("rex", "review_board"), [concat("/", ["resource", key])])
		d := api.decision with input as inp
		d == {"result": "deny", "reasons": [sprintf("resource_invalid: review.decide needs the job's %s", [key])]}
	}
}

test_mistyped_reviewers_denied if {
	every v in ["ria", [1], {"ria": true}, null] {
		inp := json.patch(deciding("rex", "review_board"), [{"op": "replace", "path": "/resource/reviewers", "value": v}])
		"resource_invalid" in outcome(inp).codes
	}
}

test_non_reviewer_deciding_only_not_permitted if {
	every role in ["provider", "operator", "applicant", "auditor"] {
		inp := json.patch(deciding("sam", "insurer_a"), [{"op": "replace", "path": "/principal/role", "value": role}])
		outcome(inp) == {"result": "deny", "codes": {"not_permitted"}}
	}
}
