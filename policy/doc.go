// Package policy decides, in the operator's Rego, who may do what, what may be accessed and
// what may leave.
//
// The operator writes request, access and egress policy as an OPA bundle; this package embeds
// the default bundle (the bundle directory beside this file), or loads an operator's bundle
// from a directory, prepares the three decision queries once, and evaluates them per request
// and per job:
//
//	RequestInput ──► data.cleanroom.api.decision ──► allow: the server serves the request
//	                                                 deny:  refused (an allow-list: whatever
//	                                                        no rule permits is denied)
//	AccessInput ──► data.cleanroom.access.decision ──► allow: the job runs
//	                                                   deny:  refused before it touches data
//	(job runs, DP/HE result, reviewer checks)
//	EgressInput ──► data.cleanroom.egress.decision ──► allow:  ledger debit, provenance, release
//	                                                   review: held for Reviewers independent
//	                                                           reviewers (two for L3 data)
//	                                                   deny:   dropped
//
// WhatIf replays recorded decisions under a candidate bundle and lists those whose result it
// would change, so an operator sees what a policy edit does before deploying it.
//
// Decisions fail closed: an undefined or malformed decision, an evaluation error, or an input
// that cannot be encoded is a deny. Every Decision carries the bundle's digest
// (Engine.Digest), so provenance names the exact policy that decided; policies may call only
// deterministic built-ins and no network, so a decision replays.
//
// The default bundle's reasons are stable snake_case codes followed by a short text built
// only from catalog names, roles, actions and job parameters ("grade_not_operable: dataset x
// is graded L4 (不予开放)"); ReasonCode extracts the code.
package policy
