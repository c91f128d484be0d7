package server

import (
	"bytes"
	"context"
	"errors"
	"io"
	"mime"
	"net/http"

	"github.com/c1b99f93/cleanroom/errcode"
	"github.com/c1b99f93/cleanroom/policy"
	"github.com/c1b99f93/cleanroom/server/api"
	"github.com/c1b99f93/cleanroom/server/governance"
)

// uploadWasmModule answers POST /v1/wasm/modules?grant=G: an applicant stores a custom model
// module once and names it by digest in later jobs. The caller must be able to submit jobs on
// the grant, and the grant must cover wasm jobs. The body is the module's bytes
// (application/wasm or application/octet-stream) or JSON {"module": base64} (application/json,
// or a body that is a JSON object rather than a module). The module is
// checked against the ABI without running any of its code (engine.PutWasmModule); no data is
// involved, so a refusal (wasm_invalid_module) is answered at once.
func (s *Server) uploadWasmModule(_ http.ResponseWriter, r *http.Request, who policy.Principal) (int, any, error) {
	ctx := r.Context()
	grant := r.URL.Query().Get("grant")
	if grant == "" {
		return 0, nil, errcode.New(errcode.InvalidRequest, "a module is uploaded for a grant: POST /v1/wasm/modules?grant=<id>")
	}
	g, err := s.grantFor(ctx, who, grant, policy.ActionJobSubmit)
	if errors.Is(err, governance.ErrNotFound) {
		return 0, nil, errcode.New(errcode.NotFound, "no such grant")
	}
	if err != nil {
		return 0, nil, err
	}
	if err := s.jobAllowed(g, api.KindWasm); err != nil {
		return 0, nil, err
	}
	bin, err := io.ReadAll(r.Body)
	if err != nil {
		return 0, nil, bodyError(err, "the module could not be read")
	}
	// JSON when it says so, or when it is not a module and looks like a JSON object (a client
	// that sets no Content-Type); a module's bytes begin with "\x00asm".
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	trimmed := bytes.TrimLeft(bin, " \t\r\n")
	if mt == "application/json" || (!bytes.HasPrefix(bin, []byte("\x00asm")) && len(trimmed) > 0 && trimmed[0] == '{') {
		var up api.WasmModuleUpload
		r.Body = io.NopCloser(bytes.NewReader(bin))
		if err := decode(r, &up, false); err != nil {
			return 0, nil, err
		}
		bin = up.Module
	}
	digest, err := s.eng.PutWasmModule(ctx, bin)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusCreated, api.WasmModule{Digest: digest, Bytes: len(bin)}, nil
}

// storeJobModule stores a custom model job's module sent with the job and replaces it by its
// digest, so that the job — its document, its store row, its provenance — carries the digest
// only, never the bytes.
func (s *Server) storeJobModule(ctx context.Context, req *api.JobRequest) error {
	if req.Wasm == nil || len(req.Wasm.Module) == 0 {
		return nil
	}
	digest, err := s.eng.PutWasmModule(ctx, req.Wasm.Module)
	if err != nil {
		return err
	}
	w := *req.Wasm
	w.Module, w.ModuleDigest = nil, digest
	req.Wasm = &w
	return nil
}
