package provenance

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
)

// AuditKeySize is the length in bytes of an audit key.
const AuditKeySize = 32

// DigestPrefix starts every keyed digest, naming its algorithm.
const DigestPrefix = "hmac-sha256:"

// AuditKey is the platform's secret HMAC key for keyed digests in the provenance log. A digest
// reveals nothing about its input to anyone without the key, yet a replay holding the key can
// recompute and compare it. The key itself is never logged: String and GoString redact it.
type AuditKey []byte

// LoadOrCreateAuditKey reads the audit key at path, or creates it (32 bytes from crypto/rand,
// mode 0600) if the file does not exist. An existing file of the wrong length, or one readable
// by group or others, is refused rather than used.
func LoadOrCreateAuditKey(path string) (AuditKey, error) {
	k, err := LoadOrCreateSecret(path, "provenance: audit key", AuditKeySize, ErrBadAuditKey)
	if err != nil {
		return nil, err
	}
	return AuditKey(k), nil
}

// LoadOrCreateSecret reads the secret key of size bytes at path, or creates it (crypto/rand,
// mode 0600, linked into place atomically so a concurrent creator is never overwritten) if the
// file does not exist. An existing file of another length, or one readable by group or
// others, is refused with an error wrapping bad rather than used or replaced; name says which
// key in messages, which never quote the file. The audit key is one such secret; the engine's
// raw-value key is another.
func LoadOrCreateSecret(path, name string, size int, bad error) ([]byte, error) {
	k, err := loadSecret(path, name, size, bad)
	if !errors.Is(err, fs.ErrNotExist) {
		return k, err
	}
	key := make([]byte, size)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if err := createExclusive(path, key); err != nil {
		if errors.Is(err, fs.ErrExist) {
			// Another process created it first; use theirs.
			return loadSecret(path, name, size, bad)
		}
		return nil, err
	}
	return key, nil
}

func loadSecret(path, name string, size int, bad error) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if runtime.GOOS != "windows" && st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%s %s has mode %v, want 0600: %w", name, path, st.Mode().Perm(), bad)
	}
	buf, err := io.ReadAll(io.LimitReader(f, int64(size)+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if len(buf) != size {
		return nil, fmt.Errorf("%s %s is not %d bytes: %w", name, path, size, bad)
	}
	return buf, nil
}

// createExclusive writes data to a temporary file, syncs it, and links it into place only if
// path does not exist yet, so a crash never leaves a partial key and a concurrent creator is
// never overwritten. It is used for the secret keys and the platform key.
func createExclusive(path string, data []byte) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("provenance: create key: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("provenance: create key: %w", err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("provenance: create key: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("provenance: create key: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("provenance: create key: %w", err)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		return err // fs.ErrExist is handled by the caller
	}
	return syncDir(dir)
}

// Digest returns the keyed digest of data: "hmac-sha256:" followed by the hex HMAC-SHA256 of data
// under k. It panics on an empty key, which would make digests of small values guessable.
func (k AuditKey) Digest(data []byte) string {
	if len(k) == 0 {
		panic("provenance: Digest with an empty AuditKey")
	}
	m := hmac.New(sha256.New, k)
	m.Write(data)
	return DigestPrefix + hex.EncodeToString(m.Sum(nil))
}

// String redacts the key.
func (k AuditKey) String() string { return "AuditKey(redacted)" }

// GoString redacts the key.
func (k AuditKey) GoString() string { return "provenance.AuditKey(redacted)" }
