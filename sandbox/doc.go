// Package sandbox is the isolated worker that holds a data domain's raw rows, and the client
// the engine uses to talk to it. It is the only package (with connectors) that imports DuckDB
// or sees a raw row.
//
//	engine ──Plan (JSON)──▶ stdin ┌─────────────── worker process ────────────────┐
//	                              │ no network namespace, no_new_privs, rlimits     │
//	                              │ connectors ─▶ snapshot (Arrow IPC, by unit)     │
//	                              │ locked DuckDB: filter + project ─▶ bound pass   │
//	engine ◀─partition states──── │ per unit: ≤ L0 groups, ≤ L∞ rows, clamped       │
//	        (Arrow IPC, stdout)   └─────────────────────────────────────────────────┘
//
//	server ──source fd (SCM_RIGHTS)──▶ fd 3 (source socket)
//
// A worker is a program started as "<executable> worker" (Start's default command): in the
// cleanroom binary the hidden `cleanroom worker` subcommand, which calls RunWorker and exits
// with the code it returns. Nothing else selects worker mode — no environment variable, and
// nothing in this package exits the process. A test binary that starts workers is not the
// cleanroom binary, so its TestMain dispatches on the same argument:
//
//	func TestMain(m *testing.M) {
//		if sandbox.IsWorkerInvocation(os.Args) {
//			os.Exit(sandbox.RunWorker())
//		}
//		os.Exit(m.Run())
//	}
//
// The worker's environment holds only its configuration (directories and limits), HOME and
// TMPDIR; the raw-value key travels with the requests.
//
// The worker never opens a provider's path: a register request carries only the source's base
// name (for errors), and its source arrives as an open file descriptor on a socket pair (the
// worker's fd 3), sent by the server after it opened the file beneath the provider's import
// root without following symbolic links. Nothing that changes on disk after that open can
// redirect what the worker reads.
//
// At registration the worker also builds the snapshot's raw-value set (package rawset): the
// keyed hashes, under the engine's raw-value key sent with the request, of every distinct
// value of the columns tagged identifier or sensitive. It writes the set beside the snapshot
// (<digest>.rawset, atomically) for the output screen; the rawset request rebuilds it from
// the snapshot when it is missing or damaged.
//
// Worker holds raw rows; nothing it returns is row-level: a response carries only snapshot
// metadata (digest, row and unit counts), a raw-value set's digest, entry count and key ID,
// or, per partition, the group key and the DP library's serialized pre-noise aggregation
// state. Error messages it returns are built from
// codes and catalog names, never from DuckDB's text, which can quote data.
//
// A job's outcome does not depend on the raw data: every expression the worker evaluates on
// rows — filters, group keys, aggregated values, the columns, keys and conditions of a joined
// or per-unit relation, the arguments of per-unit aggregates — is total, rendered in one place
// (package sqlgen, used as total.go describes): an evaluation error becomes NULL, or drops the
// row from a filter, the same way everywhere, so no row can make a job fail. A plan carries no
// SQL text: its expressions are typed trees (wire.Expr) that the worker validates — closed sets
// of operators, functions and cast types, and only columns the scanned table or the relation's
// sources have — before sqlgen renders them with every name quoted and every literal escaped. The work is bounded by the plan from public
// quantities: each unit keeps at most Relation.MaxRowsPerUnit rows of each dataset before a
// join. What remains data-dependent is time, which the server rounds up to its completion
// quantum (docs/threat-model.md).
package sandbox
