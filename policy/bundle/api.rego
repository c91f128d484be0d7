# Package cleanroom.api decides whether a principal may make one request of the platform's
# API. The server queries data.cleanroom.api.decision for every request before it acts; it
# serves the request only on "allow".
#
# This policy is an allow-list: a request is allowed only when permissions grants the
# principal's role the action on that resource and no deny reason holds. A request that no
# rule speaks to is denied (not_permitted). The result is "allow" or "deny", never "review".
#
# Input: {principal, action, resource}; see the Go type policy.RequestInput.
package cleanroom.api

import data.cleanroom.lib

# roles are the roles a principal may act in.
roles := {"provider", "operator", "applicant", "reviewer", "auditor"}

# permissions maps each action to the roles that may do it and the scope they may do it in:
# "any" (any resource of the action's kind) or "own" (only a resource of the principal's own
# org: the resource's org, or for a dataset its provider). A role not listed may not do the
# action at all.
permissions := {
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
	# Operators red-team a grant before approving its use and record the report.
	"grant.redteam": {"operator": "any"},
	# A job is submitted on a grant: the resource is the grant.
	"job.submit": {"applicant": "own"},
	# A dry run of a job (POST /v1/explain) is authorized like a submission on the grant: it
	# reads no data and spends nothing, but it shows the grant's budget and the policy's view.
	"job.explain": {"applicant": "own"},
	"job.list": {"applicant": "any", "operator": "any", "auditor": "any"},
	"job.read": {"applicant": "own", "operator": "any", "auditor": "any"},
	# Operators and providers never read released results; auditors may, to check a release.
	"job.result": {"applicant": "own", "auditor": "any"},
	"review.list": {"reviewer": "any"},
	# Who may decide on a particular held job is narrowed further by separation of duties.
	"review.decide": {"reviewer": "any"},
	"audit.verify": {"auditor": "any"},
	"audit.job": {"auditor": "any"},
	"audit.replay": {"auditor": "any"},
	"audit.checkpoint": {"auditor": "any"},
	"audit.proof": {"auditor": "any"},
	# The platform's public verifier key: anyone who holds a release receipt may check it.
	"audit.pubkey": {"provider": "any", "operator": "any", "applicant": "any", "reviewer": "any", "auditor": "any"},
}

# resource_kinds are the kinds of resource each action acts on. A request naming another
# kind is denied: "own" compares the principal's org with the org field of the expected kind,
# so a resource of the wrong kind must not be judged by it.
resource_kinds := {
	"whoami": {"self"},
	"dataset.register": {"dataset"},
	"dataset.list": {"dataset"},
	"dataset.usage": {"dataset"},
	"application.create": {"application"},
	"application.list": {"application"},
	"application.read": {"application"},
	"application.approve": {"application"},
	"application.reject": {"application"},
	"grant.list": {"grant"},
	"grant.read": {"grant"},
	"grant.budget": {"grant"},
	"grant.suspend": {"grant"},
	"grant.resume": {"grant"},
	"grant.revoke": {"grant"},
	"grant.redteam": {"grant"},
	"job.submit": {"grant"},
	"job.explain": {"grant"},
	"job.list": {"job"},
	"job.read": {"job"},
	"job.result": {"job"},
	"review.list": {"review"},
	"review.decide": {"review", "job"},
	"audit.verify": {"audit"},
	"audit.job": {"audit", "job"},
	"audit.replay": {"audit", "job"},
	"audit.checkpoint": {"audit"},
	"audit.proof": {"audit"},
	"audit.pubkey": {"audit"},
}

actions := object.keys(permissions)

decision := {"result": "deny", "reasons": sort(deny)} if {
	count(deny) > 0
} else := {"result": "allow", "reasons": []} if {
	allow
} else := {"result": "deny", "reasons": [not_permitted]}

not_permitted := sprintf("not_permitted: role %s may not do %s", [shown(role), shown(action)])

# --- the request ---

# str is the string at path in the input, or "" when it is absent or not a string.
str(path) := s if {
	is_object(input)
	s := object.get(input, path, "")
	is_string(s)
} else := ""

# shown is s for a reason's text, or "(none)" when s is empty.
shown(s) := s if {
	s != ""
} else := "(none)"

action := str(["action"])

name := str(["principal", "name"])

role := str(["principal", "role"])

org := str(["principal", "org"])

kind := str(["resource", "kind"])

# resource is the input's resource object, or {} when there is none.
resource := r if {
	is_object(input)
	r := object.get(input, "resource", {})
	is_object(r)
} else := {}

# reviewers are the principals who already reviewed a held job.
reviewers := object.get(resource, "reviewers", [])

# owner is the org that owns the resource: a dataset's provider, anything else's org.
owner := str(["resource", "provider"]) if {
	kind == "dataset"
} else := str(["resource", "org"])

# owns holds when the principal's org owns the resource.
owns if {
	org != ""
	org == owner
}

# scope is the role's scope for the action; undefined when the role may not do it.
scope := permissions[action][role]

permitted if role in object.keys(object.get(permissions, action, {}))

allow if scope == "any"

allow if {
	scope == "own"
	owns
}

# --- deny reasons ---

deny contains sprintf("principal_invalid: the principal has no %s", [key]) if {
	some key in ["name", "role", "org"]
	str(["principal", key]) == ""
}

deny contains sprintf("action_unknown: action %s is not one the policy knows", [shown(action)]) if {
	not action in actions
}

deny contains sprintf("role_unknown: role %s is not one the policy knows", [role]) if {
	role != ""
	not role in roles
}

deny contains not_permitted if {
	action in actions
	role in roles
	not permitted
}

deny contains sprintf("resource_kind_mismatch: action %s acts on a %s, not a %s", [action, concat(" or ", sort(resource_kinds[action])), shown(kind)]) if {
	action in actions
	not kind in object.get(resource_kinds, action, set())
}

deny contains sprintf("other_org: role %s may do %s only on its own org's %s", [role, action, kind]) if {
	scope == "own"
	not owns
}

deny contains "resource_invalid: resource.reviewers must be a list of principal names" if {
	not lib.is_string_list(reviewers)
}

# --- separation of duties ---

# A held job is decided by a reviewer independent of it: not its submitter, not of its org,
# and not one who has already reviewed it (a job held for two reviewers needs two people).

deciding if {
	action == "review.decide"
	permitted
}

deny contains sprintf("resource_invalid: review.decide needs the job's %s", [key]) if {
	deciding
	some key in ["org", "submitter"]
	str(["resource", key]) == ""
}

deny contains "separation_of_duties: a reviewer may not decide on a job they submitted" if {
	deciding
	name != ""
	name == str(["resource", "submitter"])
}

deny contains "separation_of_duties: a reviewer may not decide on a job of their own org" if {
	deciding
	org != ""
	org == str(["resource", "org"])
}

deny contains "separation_of_duties: a reviewer may not review the same job twice" if {
	deciding
	name != ""
	name in reviewers
}
