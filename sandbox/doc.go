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
// Worker holds raw rows; nothing it returns is row-level: a response carries only snapshot
// metadata (digest, row and unit counts) or, per partition, the group key and the DP
// library's serialized pre-noise aggregation state. Error messages it returns are built from
// codes and catalog names, never from DuckDB's text, which can quote data.
package sandbox
