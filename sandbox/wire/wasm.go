package wire

import (
	"fmt"
	"math"
)

// Limits of a custom-model (WebAssembly) job's declared shape. They are public and checked
// before anything is reserved or read.
const (
	// MaxWasmOutput is the longest output vector a module may declare.
	MaxWasmOutput = 1024
	// MinWasmBlocks and MaxWasmBlocks bound k, the number of disjoint blocks of privacy units:
	// one block would release a clamped function of everyone with sensitivity its whole range.
	MinWasmBlocks = 2
	MaxWasmBlocks = 10000
	// MaxWasmBlockTimeoutMS bounds the per-block wall-clock deadline.
	MaxWasmBlockTimeoutMS = 60_000
)

// WasmOutput is the output a custom model module declares: Length float64 values, element i
// clamped to Bounds[i] = [lo, hi], and the Default vector a block contributes when its run
// fails (traps, exceeds its deadline or memory, or returns a bad vector) — so whether a block
// failed never shows in the outcome except through the noisy average.
type WasmOutput struct {
	Length  int          `json:"length"`
	Bounds  [][2]float64 `json:"bounds"`
	Default []float64    `json:"default"`
}

// Validate reports whether the shape is one the platform runs: 1 ≤ Length ≤ MaxWasmOutput,
// one finite bound pair with lo < hi per element, and a default inside the bounds. Its
// message names positions only.
func (o WasmOutput) Validate() error {
	if o.Length < 1 || o.Length > MaxWasmOutput {
		return fmt.Errorf("the output length must be between 1 and %d", MaxWasmOutput)
	}
	if len(o.Bounds) != o.Length {
		return fmt.Errorf("the output declares %d bounds for %d elements", len(o.Bounds), o.Length)
	}
	if len(o.Default) != o.Length {
		return fmt.Errorf("the default vector has %d elements, the output %d", len(o.Default), o.Length)
	}
	for i, b := range o.Bounds {
		if !finite(b[0]) || !finite(b[1]) || !(b[0] < b[1]) {
			return fmt.Errorf("the bounds of element %d must be finite with lower < upper", i+1)
		}
		if d := o.Default[i]; !finite(d) || d < b[0] || d > b[1] {
			return fmt.Errorf("the default of element %d must lie within its bounds", i+1)
		}
	}
	return nil
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// Wasm asks a worker to run a custom model module by sample-and-aggregate: the rows of
// Relation (the job's feature query) are split by a keyed hash of their privacy unit into
// Blocks disjoint blocks, the module runs once per block on that block's rows as an Arrow IPC
// stream (sandbox/wasm describes the ABI), each output vector is validated and clamped to
// Output.Bounds (a failed block gives Output.Default), and the worker returns only the
// average over blocks, before noise (WasmResult). The engine adds the noise.
type Wasm struct {
	Job string `json:"job"`
	// Module is the WebAssembly binary. The worker computes its digest itself and caches the
	// compiled module by it.
	Module []byte `json:"module"`
	// Relation computes the feature rows; its first source's privacy unit decides the block.
	// Its columns are what the module reads (the unit column is not passed unless selected).
	Relation *Relation  `json:"relation"`
	Output   WasmOutput `json:"output"`
	Blocks   int        `json:"blocks"`
	// BlockKey keys the hash that assigns units to blocks: a per-job secret, at least 32
	// bytes, never released.
	BlockKey       []byte `json:"block_key"`
	BlockTimeoutMS int64  `json:"block_timeout_ms"`
	// SamplingKey keys the choice of a unit's rows when Relation.MaxRowsPerUnit bounds them.
	SamplingKey uint64 `json:"sampling_key"`
}

// Validate checks what can be checked without the data: the shape, k and the deadline.
func (w *Wasm) Validate() error {
	if err := w.Output.Validate(); err != nil {
		return err
	}
	if w.Blocks < MinWasmBlocks || w.Blocks > MaxWasmBlocks {
		return fmt.Errorf("blocks must be between %d and %d", MinWasmBlocks, MaxWasmBlocks)
	}
	if w.BlockTimeoutMS < 1 || w.BlockTimeoutMS > MaxWasmBlockTimeoutMS {
		return fmt.Errorf("the per-block deadline must be between 1 and %d ms", MaxWasmBlockTimeoutMS)
	}
	if len(w.BlockKey) < 32 {
		return fmt.Errorf("the block key must be at least 32 bytes")
	}
	if w.Relation == nil || len(w.Relation.Sources) == 0 || w.Relation.Sources[0].Unit == "" {
		return fmt.Errorf("the feature rows must come from a dataset with a privacy unit")
	}
	return nil
}

// WasmResult is a worker's answer to Wasm: the element-wise average over the Blocks blocks of
// their clamped output vectors (or defaults), before noise. Changing one privacy unit changes
// one block, so element i moves by at most (hi_i − lo_i)/Blocks. It says nothing about which
// or how many blocks failed.
type WasmResult struct {
	Mean   []float64 `json:"mean"`
	Blocks int       `json:"blocks"`
	// ModuleDigest is the SHA-256 of the module the worker ran ("sha256:<hex>").
	ModuleDigest string `json:"module_digest"`
}
