// Package wasm runs an applicant's custom model code — a WebAssembly module — over blocks of
// raw rows inside the sandbox worker, and returns only the clamped average of its per-block
// outputs. Whatever the module does, nothing it computes leaves except through that average,
// to which the engine adds noise (sample-and-aggregate; docs/models.md).
//
//	rows (Arrow) ──keyed hash of the unit──▶ k disjoint blocks, each an Arrow IPC stream
//	   block i ──▶ fresh instance: _initialize, alloc(len), run(ptr, len) ──▶ n float64
//	   n float64 ──finite? length n? else Default──▶ clamp to Bounds ──▶ Σ / k ──▶ worker
//
// Invariant: the module gets nothing the host does not grant, and the host grants nothing but
// the block's bytes: WASI with no filesystem, no network, no environment, no arguments, a
// fixed wall clock, a monotonic clock that advances 1 ms per reading and a fixed random
// source; stdout and stderr go to a small bounded buffer that is dropped with the instance.
// Each block gets a fresh instance (no state crosses blocks), a memory cap and a wall-clock
// deadline enforced with close-on-context-done. A block whose run fails in any way contributes
// the declared default vector: the caller cannot tell it from a block that returned it.
//
// The module ABI (exports; any other export is ignored):
//
//	memory                      the linear memory
//	_initialize () -> ()        optional; called once per instance first (Go reactors need it)
//	alloc (size i32) -> i32     a pointer to size writable bytes the host fills with the input
//	run (ptr i32, len i32) -> i64
//	                            reads the Arrow IPC stream at [ptr, ptr+len) and returns
//	                            (outPtr << 32) | outLen, where [outPtr, outPtr+outLen) holds
//	                            n float64, little-endian (outLen = 8n)
//
// Imports may come only from wasi_snapshot_preview1. A module is compiled once per runtime and
// cached by its SHA-256 digest; compiling it and a trial instantiation with no data run before
// any row is read, so only they can fail a job.
package wasm
