// Package bundletest gives tests a copy of the default policy bundle (policy/bundle) with its
// data.json edited, so that a test can change an operator's parameter without touching the
// shipped bundle. Tests only: it reads the bundle from this repository's source tree.
package bundletest

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// Copy writes the default bundle into a fresh temporary directory, with data.json passed
// through edit (nil: unchanged), and returns the directory.
func Copy(t testing.TB, edit func(data string) string) string {
	t.Helper()
	_, here, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("bundletest: cannot locate the policy bundle")
	}
	src := filepath.Join(filepath.Dir(here), "..", "bundle")
	dir := t.TempDir()
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if e.Name() == "data.json" && edit != nil {
			b = []byte(edit(string(b)))
		}
		if err := os.WriteFile(filepath.Join(dir, e.Name()), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// Replace is an edit that replaces each old text of data.json with its new one (pairs: old,
// new, …), each once.
func Replace(pairs ...string) func(string) string {
	return func(data string) string {
		for i := 0; i+1 < len(pairs); i += 2 {
			data = strings.Replace(data, pairs[i], pairs[i+1], 1)
		}
		return data
	}
}
