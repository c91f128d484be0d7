package server

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/c1b99f93/cleanroom/connectors"
	"github.com/c1b99f93/cleanroom/errcode"
)

// An import root is the one folder a provider organisation's sources may be read from. Each
// organisation has its own (Config.ImportRoots), no two overlap, and a provider reads only
// under its own organisation's root: a source path is resolved within that root (relative) or
// must lie in it (absolute), and is opened beneath the root's directory descriptor without
// following any symbolic link — openat2(2) with RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS, or, where
// the kernel lacks openat2, a walk that opens one component at a time with O_NOFOLLOW. The
// opened file, not its path, goes to the sandbox worker, so nothing that changes on disk
// between this check and the worker's read can redirect the read.
type importRoot struct {
	org   string
	path  string   // absolute, symbolic links resolved (how the root is opened and compared)
	given string   // absolute as configured (an absolute source path may use either form)
	dir   *os.File // the root directory, opened once (O_PATH)
	// walk opens by the component walk even where openat2 exists (tests exercise both ways).
	walk bool
}

// openImportRoots checks and opens the configured roots: each organisation and folder is
// named, each folder exists and is a directory, and no root lies within another's (two
// organisations sharing files would share them with each other).
func openImportRoots(m map[string]string) (map[string]*importRoot, error) {
	roots := map[string]*importRoot{}
	closeAll := func() {
		for _, r := range roots {
			r.dir.Close()
		}
	}
	orgs := make([]string, 0, len(m))
	for org := range m {
		orgs = append(orgs, org)
	}
	sort.Strings(orgs)
	for _, org := range orgs {
		dir := m[org]
		if strings.TrimSpace(org) == "" || dir == "" {
			closeAll()
			return nil, errors.New("server: an import root needs an organisation and a folder (ORG=DIR)")
		}
		given, err := filepath.Abs(dir)
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("server: import root of %s: %w", org, err)
		}
		real, err := filepath.EvalSymlinks(given)
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("server: import root of %s: %w", org, err)
		}
		fd, err := unix.Open(real, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("server: import root of %s is not an openable folder: %w", org, err)
		}
		roots[org] = &importRoot{org: org, path: real, given: given, dir: os.NewFile(uintptr(fd), real)}
	}
	for _, a := range orgs {
		for _, b := range orgs {
			if a != b && within(roots[a].path, roots[b].path) {
				closeAll()
				return nil, fmt.Errorf("server: the import roots of %s and %s overlap (%s holds %s): each organisation needs a folder of its own",
					a, b, roots[a].path, roots[b].path)
			}
		}
	}
	return roots, nil
}

// within reports whether p is root or lies under it (both absolute and clean).
func within(root, p string) bool {
	_, ok := relWithin(root, p)
	return ok
}

// relWithin returns p relative to root when p is root or lies under it (both absolute, clean).
func relWithin(root, p string) (string, bool) {
	rel, err := filepath.Rel(root, p)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) || filepath.IsAbs(rel) {
		return "", false
	}
	return rel, true
}

// open opens a provider's source path under the root for reading. Errors carry stable codes and
// name only the path's base name: source_outside_import_root (a relative path that climbs out
// with "..", or an absolute path elsewhere — decided from the text alone, before anything
// outside the root is touched), source_symlink (a symbolic link on the way), source_not_found,
// source_unreadable (including anything that is not a regular file).
func (r *importRoot) open(p string) (*os.File, string, error) {
	if p == "" {
		return nil, "", errcode.New(errcode.InvalidSpec, "source.path is required")
	}
	base := filepath.Base(p)
	var rel string
	if filepath.IsAbs(p) {
		c := filepath.Clean(p)
		var ok bool
		if rel, ok = relWithin(r.path, c); !ok {
			if rel, ok = relWithin(r.given, c); !ok {
				return nil, "", errcode.New(errcode.SourceOutsideImportRoot, "source.path %q is outside the import root of %s", base, r.org)
			}
		}
	} else {
		// No symbolic link is ever followed below, so ".." means what it says textually.
		rel = filepath.Clean(p)
		if rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
			return nil, "", errcode.New(errcode.SourceOutsideImportRoot, "source.path %q is outside the import root of %s", base, r.org)
		}
	}
	fd, err := openBeneath(int(r.dir.Fd()), rel, r.walk)
	switch {
	case errors.Is(err, unix.ELOOP):
		return nil, "", errcode.Wrap(errcode.SourceSymlink, err, "source.path %q passes through a symbolic link; links are never followed, name the file itself", base)
	case errors.Is(err, unix.EXDEV):
		return nil, "", errcode.Wrap(errcode.SourceOutsideImportRoot, err, "source.path %q is outside the import root of %s", base, r.org)
	case errors.Is(err, unix.ENOENT), errors.Is(err, unix.ENOTDIR):
		return nil, "", errcode.Wrap(connectors.CodeSourceNotFound, err, "source.path %q does not exist under the import root of %s", base, r.org)
	case err != nil:
		return nil, "", errcode.Wrap(connectors.CodeSourceUnreadable, err, "source.path %q cannot be opened", base)
	}
	f := os.NewFile(uintptr(fd), base)
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		f.Close()
		return nil, "", errcode.Wrap(connectors.CodeSourceUnreadable, err, "source.path %q is not a regular file", base)
	}
	return f, filepath.Join(r.path, rel), nil
}

// sourceFlags open a source for reading; O_NONBLOCK keeps a FIFO from blocking the open (it is
// then refused as not a regular file) and has no effect on a regular file.
const sourceFlags = unix.O_RDONLY | unix.O_CLOEXEC | unix.O_NOCTTY | unix.O_NONBLOCK

// openBeneath opens rel (clean, relative, without "..") beneath the directory dirfd without
// following symbolic links. A symbolic link anywhere on the way fails with ELOOP.
func openBeneath(dirfd int, rel string, walk bool) (int, error) {
	if !walk {
		fd, err := unix.Openat2(dirfd, rel, &unix.OpenHow{Flags: sourceFlags,
			Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS})
		for errors.Is(err, unix.EINTR) || errors.Is(err, unix.EAGAIN) { // EAGAIN: a rename raced the lookup
			fd, err = unix.Openat2(dirfd, rel, &unix.OpenHow{Flags: sourceFlags,
				Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS})
		}
		if !errors.Is(err, unix.ENOSYS) {
			return fd, err
		}
	}
	return walkBeneath(dirfd, rel)
}

// walkBeneath is openBeneath without openat2: one component at a time from dirfd, each opened
// with O_NOFOLLOW (a directory also with O_DIRECTORY), so a symbolic link is never traversed.
func walkBeneath(dirfd int, rel string) (int, error) {
	parts := strings.Split(rel, string(filepath.Separator))
	cur := dirfd
	closeCur := func() {
		if cur != dirfd {
			unix.Close(cur)
		}
	}
	for i, part := range parts {
		if part == ".." {
			closeCur()
			return -1, unix.EXDEV
		}
		last := i == len(parts)-1
		flags := sourceFlags | unix.O_NOFOLLOW
		if !last {
			flags = unix.O_PATH | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC
		}
		fd, err := unix.Openat(cur, part, flags, 0)
		if err != nil {
			// O_PATH|O_NOFOLLOW|O_DIRECTORY on a link says ENOTDIR: name the link as a link.
			var st unix.Stat_t
			if unix.Fstatat(cur, part, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK {
				err = unix.ELOOP
			}
			closeCur()
			return -1, err
		}
		closeCur()
		cur = fd
	}
	if cur == dirfd { // rel was "." : the root itself
		return unix.Openat(dirfd, ".", sourceFlags, 0)
	}
	return cur, nil
}
