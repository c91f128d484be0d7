package client

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"

	"github.com/c1b99f93/cleanroom/server/api"
)

// UploadWasmModule is POST /v1/wasm/modules: it stores a custom model module for jobs on grant
// and returns its digest, which RunWasm's request names in ModuleDigest. The server checks the
// module against the ABI before storing it (wasm_invalid_module otherwise).
func (c *Client) UploadWasmModule(ctx context.Context, grant string, module []byte) (*api.WasmModule, error) {
	var out api.WasmModule
	err := c.do(ctx, http.MethodPost, "/v1/wasm/modules", url.Values{"grant": {grant}}, true, api.WasmModuleUpload{Module: module}, &out)
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// RunWasm is POST /v1/jobs for a custom model job (kind wasm) on grant. The job starts
// queued; WaitJob follows it and WasmResult reads the released output.
func (c *Client) RunWasm(ctx context.Context, grant string, w api.WasmRequest, opts api.JobOptions) (*api.Job, error) {
	return c.SubmitJob(ctx, api.JobRequest{Grant: grant, Kind: api.KindWasm, Wasm: &w, Options: opts})
}

// WasmResult decodes a released custom model job's result.
func WasmResult(j *api.Job) (*api.WasmResult, error) {
	if j == nil || j.Kind != api.KindWasm || len(j.Result) == 0 {
		return nil, errors.New("client: not a released custom model job")
	}
	var r api.WasmResult
	if err := json.Unmarshal(j.Result, &r); err != nil {
		return nil, err
	}
	return &r, nil
}
