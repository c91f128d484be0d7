package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/c1b99f93/cleanroom/errcode"
	"github.com/c1b99f93/cleanroom/sandbox/wasm"
)

// MaxWasmModuleBytes is the largest module the platform stores (the policy's
// max_wasm_module_bytes may allow less per job).
const MaxWasmModuleBytes = 16 << 20

// wasmModuleDir holds uploaded modules under the data directory, one file per digest.
const wasmModuleDir = "wasm-modules"

// validModuleDigest reports whether d is "sha256:" and 64 lower-case hex digits: the only
// names the store knows, so a digest can never name a path outside it.
func validModuleDigest(d string) bool {
	h, ok := strings.CutPrefix(d, "sha256:")
	if !ok || len(h) != 64 {
		return false
	}
	for _, c := range h {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

func (e *Engine) wasmModulePath(digest string) string {
	return filepath.Join(e.dataDir, wasmModuleDir, strings.TrimPrefix(digest, "sha256:")+".wasm")
}

// PutWasmModule checks a module against the ABI without running any of its code
// (wasm.Check) and stores it by digest, so that jobs can name it by digest: a large module is
// sent once. Storing the same bytes again is a no-op. A module refused here has code
// wasm_invalid_module; nothing about any data is involved.
func (e *Engine) PutWasmModule(ctx context.Context, bin []byte) (string, error) {
	digest, err := wasm.Check(ctx, bin, MaxWasmModuleBytes)
	if err != nil {
		return "", err
	}
	path := e.wasmModulePath(digest)
	if _, err := os.Stat(path); err == nil {
		return digest, nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", errcode.Wrap(errcode.Internal, err, "the module store is unavailable")
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".upload-*")
	if err != nil {
		return "", errcode.Wrap(errcode.Internal, err, "the module store is unavailable")
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(bin)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return "", errcode.Wrap(errcode.Internal, err, "the module could not be stored")
	}
	return digest, nil
}

// wasmModuleSize is the size of a stored module, or not_found.
func (e *Engine) wasmModuleSize(digest string) (int, error) {
	if !validModuleDigest(digest) {
		return 0, errcode.New(errcode.InvalidRequest, "wasm.module_digest must be \"sha256:\" and 64 lower-case hex digits")
	}
	fi, err := os.Stat(e.wasmModulePath(digest))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, errcode.New(errcode.NotFound, "no module with this digest was uploaded; upload it first (POST /v1/wasm/modules)")
	}
	if err != nil {
		return 0, errcode.Wrap(errcode.Internal, err, "the module store is unavailable")
	}
	return int(fi.Size()), nil
}

// wasmModule reads a stored module and checks that its bytes still have their digest.
func (e *Engine) wasmModule(digest string) ([]byte, error) {
	if _, err := e.wasmModuleSize(digest); err != nil {
		return nil, err
	}
	bin, err := os.ReadFile(e.wasmModulePath(digest))
	if err != nil {
		return nil, errcode.Wrap(errcode.Internal, err, "the module store is unavailable")
	}
	sum := sha256.Sum256(bin)
	if "sha256:"+hex.EncodeToString(sum[:]) != digest {
		return nil, errcode.New(errcode.Internal, "the stored module does not have its digest; nothing was run")
	}
	return bin, nil
}
