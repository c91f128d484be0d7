package api

// WasmRequest is a custom model job's input (kind wasm): the applicant's WebAssembly module
// run by sample-and-aggregate over the rows of a row-level SQL it never sees (docs/models.md).
// SQL selects the privacy unit first, then the module's columns by name, as a model's does:
// SELECT <unit>, <col or expr AS name>, … FROM <dataset> [JOIN …] [WHERE …]; the unit decides
// the block and is not passed to the module, and no identifier column may be selected. The
// module comes as its bytes (Module, base64 in JSON) or as the digest of an earlier upload
// (ModuleDigest, POST /v1/wasm/modules), never both; a job keeps only the digest. Output
// declares the vector the module returns: Length float64 values, element i clamped to
// Bounds[i], and the Default vector a block contributes when its run fails. Blocks is k, the
// number of disjoint blocks of privacy units; DeadlineMS each block's wall-clock deadline.
type WasmRequest struct {
	Module       []byte     `json:"module,omitempty"`
	ModuleDigest string     `json:"module_digest,omitempty"`
	SQL          string     `json:"sql"`
	Output       WasmOutput `json:"output"`
	Blocks       int        `json:"blocks"`
	// DeadlineMS is the per-block deadline (default 10,000 ms; the policy caps it).
	DeadlineMS int64 `json:"deadline_ms,omitempty"`
}

// WasmOutput is the vector a custom model declares (sandbox/wire.WasmOutput).
type WasmOutput struct {
	Length  int          `json:"length"`
	Bounds  [][2]float64 `json:"bounds"`
	Default []float64    `json:"default"`
}

// WasmModule is a stored module: POST /v1/wasm/modules answers it. Digest is what a job's
// module_digest names.
type WasmModule struct {
	Digest string `json:"digest"`
	Bytes  int    `json:"bytes"`
}

// WasmModuleUpload is the JSON body of POST /v1/wasm/modules (the alternative to the raw
// bytes as application/wasm).
type WasmModuleUpload struct {
	Module []byte `json:"module"`
}

// WasmElement is one released element of a custom model's output: the noisy block average,
// its 95% interval from the noise alone, both clamped to the declared bounds, and the noise's
// standard deviation.
type WasmElement struct {
	Index      int        `json:"index"`
	Value      float64    `json:"value"`
	Lower      float64    `json:"lower"`
	Upper      float64    `json:"upper"`
	Bounds     [2]float64 `json:"bounds"`
	NoiseScale float64    `json:"noise_stddev"`
}

// WasmResult is a released custom model (kind wasm): each element of the module's output
// averaged over Blocks disjoint blocks of privacy units, with noise calibrated to
// (hi − lo)/Blocks per element. Nothing says which blocks failed.
type WasmResult struct {
	Job          string           `json:"job"`
	Dataset      string           `json:"dataset"`
	ModuleDigest string           `json:"module_digest"`
	Blocks       int              `json:"blocks"`
	Values       []WasmElement    `json:"values"`
	Confidence   float64          `json:"confidence"`
	Mechanism    string           `json:"mechanism"`
	Components   []NoiseComponent `json:"components"`
	Spent        Budget           `json:"spent"`
	// Note says what k trades: less noise per element against smaller blocks.
	Note     string `json:"note"`
	LogIndex uint64 `json:"log_index,omitempty"`
}
