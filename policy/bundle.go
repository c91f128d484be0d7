package policy

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/open-policy-agent/opa/v1/loader/filter"
)

// defaultBundle is the policy shipped with cleanroom. "all:" keeps .manifest, which go:embed
// would otherwise drop as a dot file.
//
//go:embed all:bundle
var defaultBundle embed.FS

// Limits on what New reads from a bundle directory.
const (
	maxBundleFileBytes  = 8 << 20
	maxBundleTotalBytes = 32 << 20
)

// bundleName is the name the bundle is activated under in OPA.
const bundleName = "cleanroom"

// file is one file of a bundle: a slash-separated path relative to the bundle root.
type file struct {
	path string
	data []byte
}

// snapshot is a bundle read into memory once. The digest and every compilation are made
// from the same bytes, so the digest names exactly the policy that decides.
type snapshot struct {
	files  []file // sorted by path
	digest string
}

// readSnapshot reads every regular file under fsys. Anything else but a directory (a
// symlink, a device) is refused: the digest must cover what OPA would read.
func readSnapshot(fsys fs.FS) (*snapshot, error) {
	var files []file
	total := 0
	err := fs.WalkDir(fsys, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		if !d.Type().IsRegular() {
			return fmt.Errorf("%s: not a regular file", path)
		}
		data, err := fs.ReadFile(fsys, path)
		if err != nil {
			return err
		}
		if len(data) > maxBundleFileBytes {
			return fmt.Errorf("%s: larger than %d bytes", path, maxBundleFileBytes)
		}
		if total += len(data); total > maxBundleTotalBytes {
			return fmt.Errorf("bundle larger than %d bytes", maxBundleTotalBytes)
		}
		files = append(files, file{path: path, data: data})
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, errors.New("bundle has no files")
	}
	slices.SortFunc(files, func(a, b file) int {
		switch {
		case a.path < b.path:
			return -1
		case a.path > b.path:
			return 1
		}
		return 0
	})
	return &snapshot{files: files, digest: digestFiles(files)}, nil
}

// digestFiles is "sha256:" + hex of SHA-256 over, for each file in path order:
// path, NUL, content, NUL.
func digestFiles(files []file) string {
	h := sha256.New()
	for _, f := range files {
		h.Write([]byte(f.path))
		h.Write([]byte{0})
		h.Write(f.data)
		h.Write([]byte{0})
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// bundle parses a fresh *bundle.Bundle from the snapshot (activation may mutate it, so each
// compilation gets its own).
func (s *snapshot) bundle(caps *ast.Capabilities) (*bundle.Bundle, error) {
	b, err := bundle.NewCustomReader(&memLoader{files: s.files}).
		WithRegoVersion(ast.RegoV1).
		WithCapabilities(caps).
		WithProcessAnnotations(true).
		WithBundleName(bundleName).
		Read()
	if err != nil {
		return nil, err
	}
	if len(b.WasmModules) > 0 || len(b.PlanModules) > 0 {
		return nil, errors.New("bundle carries wasm or plan modules; only Rego is evaluated")
	}
	return &b, nil
}

// memLoader is a bundle.DirectoryLoader over a snapshot's files.
type memLoader struct {
	files []file
	next  int
}

var _ bundle.DirectoryLoader = (*memLoader)(nil)

func (l *memLoader) NextFile() (*bundle.Descriptor, error) {
	if l.next >= len(l.files) {
		return nil, io.EOF
	}
	f := l.files[l.next]
	l.next++
	p := "/" + f.path
	return bundle.NewDescriptor(p, p, bytes.NewReader(f.data)), nil
}

// The options below concern reading from disk; the snapshot has already been read.

func (l *memLoader) WithFilter(filter.LoaderFilter) bundle.DirectoryLoader   { return l }
func (l *memLoader) WithPathFormat(bundle.PathFormat) bundle.DirectoryLoader { return l }
func (l *memLoader) WithSizeLimitBytes(int64) bundle.DirectoryLoader         { return l }
func (l *memLoader) WithFollowSymlinks(bool) bundle.DirectoryLoader          { return l }

// capabilities are OPA's built-ins minus the nondeterministic ones (http.send, time.now_ns,
// rand.intn, net.lookup_ip_addr, …), with no network: a decision must replay from the
// provenance log and must not carry its input anywhere.
func capabilities() *ast.Capabilities {
	caps := ast.CapabilitiesForThisVersion()
	caps.Builtins = slices.DeleteFunc(caps.Builtins, func(b *ast.Builtin) bool { return b.Nondeterministic })
	caps.AllowNet = []string{}
	return caps
}

// SaveBundle writes the bundle's files under dir (which must not exist yet), so the exact
// policy that made past decisions can be loaded again by digest (replay, what-if). The files
// are written to a temporary sibling and renamed into place, so dir is whole or absent.
func (e *Engine) SaveBundle(dir string) error {
	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, 0o700); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(parent, ".bundle-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	for _, f := range e.snap.files {
		p := filepath.Join(tmp, filepath.FromSlash(f.path))
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			return err
		}
		if err := os.WriteFile(p, f.data, 0o600); err != nil {
			return err
		}
	}
	return os.Rename(tmp, dir)
}
