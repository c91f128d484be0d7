// Package engine runs jobs through the pipeline, one way, each stage recording what it decided
// in the provenance log before the next begins:
//
//	submit ─▶ gate ─▶ plan ─▶ policy access ─▶ budget reserve ─▶ sandbox execute
//	   ─▶ DP mechanism ─▶ policy egress ─▶ budget debit ─▶ release record ─▶ result
//
// A refusal before execution costs nothing; a failure after the reservation refunds it, since
// nothing was released; a crash leaves the reservation standing (counted as spent) and the
// log shows the job never released. No record, no release.
package engine
