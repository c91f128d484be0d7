package server

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/c1b99f93/cleanroom/errcode"
)

// Both ways of opening beneath a root — openat2 and the component walk used where the kernel
// has no openat2 — give the same answers.
func TestImportRootOpensOnlyRegularFilesBeneathItWithoutFollowingLinks(t *testing.T) {
	base := t.TempDir()
	root := filepath.Join(base, "org")
	outside := filepath.Join(base, "outside.csv")
	for _, f := range []string{filepath.Join(root, "a.csv"), filepath.Join(root, "sub", "b.csv"), outside} {
		if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f, []byte("x\n1\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for link, target := range map[string]string{"out.csv": outside, "in.csv": "a.csv", "subl": "sub", "up": ".."} {
		if err := os.Symlink(target, filepath.Join(root, link)); err != nil {
			t.Fatal(err)
		}
	}
	if err := unix.Mkfifo(filepath.Join(root, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	roots, err := openImportRoots(map[string]string{"org": root})
	if err != nil {
		t.Fatal(err)
	}
	defer roots["org"].dir.Close()
	cases := []struct {
		path string
		code errcode.Code // "" opens
	}{
		{"a.csv", ""},
		{"sub/b.csv", ""},
		{"./sub/../a.csv", ""},
		{filepath.Join(root, "sub", "b.csv"), ""},
		{"missing.csv", errcode.SourceNotFound},
		{"a.csv/x", errcode.SourceNotFound},
		{"sub", errcode.SourceUnreadable},
		{".", errcode.SourceUnreadable},
		{"fifo", errcode.SourceUnreadable},
		{"out.csv", errcode.SourceSymlink},
		{"in.csv", errcode.SourceSymlink},
		{"subl/b.csv", errcode.SourceSymlink},
		{"up/outside.csv", errcode.SourceSymlink},
		{"../outside.csv", errcode.SourceOutsideImportRoot},
		{"sub/../../outside.csv", errcode.SourceOutsideImportRoot},
		{outside, errcode.SourceOutsideImportRoot},
		{"", errcode.InvalidSpec},
	}
	for _, walk := range []bool{false, true} {
		roots["org"].walk = walk
		for _, tc := range cases {
			f, _, err := roots["org"].open(tc.path)
			if got := errcode.Of(err); got != tc.code {
				t.Errorf("walk=%v %q: code %q (%v), want %q", walk, tc.path, got, err, tc.code)
			}
			if f != nil {
				f.Close()
			}
		}
	}
}

func TestImportRootsMayNotOverlap(t *testing.T) {
	base := t.TempDir()
	if err := os.MkdirAll(filepath.Join(base, "a", "b"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, m := range map[string]map[string]string{
		"nested":       {"x": filepath.Join(base, "a"), "y": filepath.Join(base, "a", "b")},
		"shared":       {"x": filepath.Join(base, "a"), "y": filepath.Join(base, "a", ".")},
		"missing":      {"x": filepath.Join(base, "nope")},
		"no org":       {"": filepath.Join(base, "a")},
		"not a folder": {"x": filepath.Join(base, "a", "b", "..", "..", "a", "b", "f")},
	} {
		if name == "not a folder" {
			if err := os.WriteFile(filepath.Join(base, "a", "b", "f"), nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if roots, err := openImportRoots(m); err == nil {
			for _, r := range roots {
				r.dir.Close()
			}
			t.Errorf("%s: roots %v accepted", name, m)
		}
	}
}
