// Package redteam attacks a live cleanroom server through one grant, exactly as a malicious
// applicant would, and reports for each known attack whether the platform blocked it, what it
// cost in budget and what it recovered compared with a baseline guess.
//
// It speaks to the server only through server/client with the applicant's token. Scoring needs
// the raw data, which the attacker never has: an operator runs the tool inside the data domain
// and points it at the provider's copy of the datasets (LoadTruth), read locally through the
// connectors; without it the report still shows what was blocked, the cost and each estimate's
// noise against what the attack would need.
//
//	Run ──▶ averaging ─▶ differencing ─▶ tracker ─▶ isolation ─▶ exfiltration ─▶ reconstruction
//	         each: SQL jobs on the grant (client) ─▶ released / held / refused, cost from the grant
//	               ─▶ the attacker's estimate ─▶ Score against the baseline (Truth, when given)
//	Report ──▶ Exceeded (any score above its baseline + margin) and Summary (for provenance)
package redteam
