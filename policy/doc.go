// Package policy decides, in the operator's Rego, what may be accessed and what may leave.
//
// The operator writes access and egress policy as an OPA bundle; this package embeds the
// default bundle (the bundle directory beside this file), or loads an operator's bundle
// from a directory, prepares the two decision queries once, and evaluates them per job:
//
//	AccessInput ──► data.cleanroom.access.decision ──► allow: the job runs
//	                                                   deny:  refused before it touches data
//	(job runs, DP/HE result, reviewer checks)
//	EgressInput ──► data.cleanroom.egress.decision ──► allow:  ledger debit, provenance, release
//	                                                   review: held for a reviewer
//	                                                   deny:   dropped
//
// Decisions fail closed: an undefined or malformed decision, an evaluation error, or an input
// that cannot be encoded is a deny. Every Decision carries the bundle's digest
// (Engine.Digest), so provenance names the exact policy that decided; policies may call only
// deterministic built-ins and no network, so a decision replays.
//
// The default bundle's reasons are stable snake_case codes followed by a short text built
// only from catalog names and job parameters ("grade_not_operable: dataset x is graded L4
// (不予开放)"); ReasonCode extracts the code.
package policy
