package provenance

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"runtime"
	"strings"
	"unicode/utf8"

	"golang.org/x/mod/sumdb/note"
)

// PlatformKeyName is the key name of the platform's note signer: signatures on checkpoints and
// receipts read "— cleanroom <base64>".
const PlatformKeyName = "cleanroom"

// maxKeyFile bounds what LoadOrCreatePlatformKey reads; a signer key is about 80 bytes.
const maxKeyFile = 1 << 10

// PlatformKey is the platform's Ed25519 signing key, in the form of a golang.org/x/mod/sumdb/note
// signer: it signs the log's checkpoints and other signed notes (release receipts). Auditors
// hold its public verifier key (Verifier) out of band. The private key never leaves the value:
// String and GoString show only the public verifier key, and the value holds no printable copy of
// the private key.
type PlatformKey struct {
	signer   note.Signer
	verifier string
}

// LoadOrCreatePlatformKey reads the platform key at path, or creates it (note.GenerateKey with
// the name "cleanroom", mode 0600, exclusive create so a concurrent creator is never
// overwritten) if the file does not exist. The file holds the note signer key text
// "PRIVATE+KEY+cleanroom+<hash>+<base64>" and a newline. An existing file that does not parse, or
// is readable by group or others, is refused (ErrBadPlatformKey) rather than used or replaced.
func LoadOrCreatePlatformKey(path string) (*PlatformKey, error) {
	k, err := loadPlatformKey(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return k, err
	}
	skey, _, err := note.GenerateKey(rand.Reader, PlatformKeyName)
	if err != nil {
		return nil, fmt.Errorf("provenance: platform key: %w", err)
	}
	if err := createExclusive(path, []byte(skey+"\n")); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return loadPlatformKey(path) // another process created it first; use theirs
		}
		return nil, fmt.Errorf("provenance: platform key: %w", err)
	}
	return loadPlatformKey(path)
}

func loadPlatformKey(path string) (*PlatformKey, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("provenance: platform key: %w", err)
	}
	if runtime.GOOS != "windows" && st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("provenance: platform key %s has mode %v, want 0600: %w", path, st.Mode().Perm(), ErrBadPlatformKey)
	}
	buf, err := io.ReadAll(io.LimitReader(f, maxKeyFile))
	if err != nil {
		return nil, fmt.Errorf("provenance: platform key: %w", err)
	}
	k, err := parsePlatformKey(string(bytes.TrimSuffix(buf, []byte{'\n'})))
	if err != nil {
		// The error never quotes the file: it holds the private key.
		return nil, fmt.Errorf("provenance: platform key %s: %w: %w", path, ErrBadPlatformKey, err)
	}
	return k, nil
}

// parsePlatformKey builds a PlatformKey from note signer key text and derives its verifier key.
func parsePlatformKey(skey string) (*PlatformKey, error) {
	signer, err := note.NewSigner(skey)
	if err != nil {
		return nil, errors.New("not a note signer key")
	}
	if signer.Name() != PlatformKeyName {
		return nil, fmt.Errorf("signer name is not %q", PlatformKeyName)
	}
	// The verifier key is the public half of the seed, the fifth '+'-separated field (the base64
	// itself may hold '+'; algorithm byte 1 is Ed25519). note.NewSigner accepted the text.
	fields := strings.SplitN(skey, "+", 5)
	if len(fields) != 5 {
		return nil, errors.New("not a note signer key")
	}
	raw, err := base64.StdEncoding.DecodeString(fields[4])
	if err != nil || len(raw) != 1+ed25519.SeedSize || raw[0] != 1 {
		return nil, errors.New("not an Ed25519 signer key")
	}
	pub := ed25519.NewKeyFromSeed(raw[1:]).Public().(ed25519.PublicKey)
	vkey, err := note.NewEd25519VerifierKey(PlatformKeyName, pub)
	if err != nil {
		return nil, err
	}
	v, err := note.NewVerifier(vkey)
	if err != nil || v.KeyHash() != signer.KeyHash() {
		return nil, errors.New("verifier key does not match the signer key")
	}
	return &PlatformKey{signer: signer, verifier: vkey}, nil
}

// Verifier returns the public verifier key, "cleanroom+<hash>+<base64>" (golang.org/x/mod/sumdb
// note's form), that auditors keep out of band and pass to ParseCheckpoint, VerifyAll and
// VerifyArchive.
func (k *PlatformKey) Verifier() string { return k.verifier }

// Origin returns the origin line of this key's checkpoints (see CheckpointOrigin).
func (k *PlatformKey) Origin() string {
	o, _ := CheckpointOrigin(k.verifier)
	return o
}

// SignNote signs text as a C2SP signed note (golang.org/x/mod/sumdb/note) and returns the note:
// text, a blank line, and the line "— cleanroom <signature>". text must be non-empty UTF-8 ending
// in a newline, without control characters other than newline. So that no other document can
// pass for a checkpoint, text whose first line is this key's checkpoint origin is refused:
// checkpoints are signed only by the Log.
func (k *PlatformKey) SignNote(text []byte) ([]byte, error) {
	if err := checkNoteText(text); err != nil {
		return nil, err
	}
	first, _, _ := bytes.Cut(text, []byte{'\n'})
	if string(first) == k.Origin() {
		return nil, fmt.Errorf("provenance: sign note: text begins with the checkpoint origin: %w", ErrInvalidNote)
	}
	return k.sign(text)
}

func (k *PlatformKey) sign(text []byte) ([]byte, error) {
	msg, err := note.Sign(&note.Note{Text: string(text)}, k.signer)
	if err != nil {
		return nil, fmt.Errorf("provenance: sign note: %w", err)
	}
	return msg, nil
}

// VerifyNote checks that msg is a signed note carrying a valid signature by verifierKey and
// returns its text. Signatures by other keys are ignored (a note may be co-signed). It is the
// counterpart of PlatformKey.SignNote for receipts; for checkpoints use ParseCheckpoint.
func VerifyNote(msg []byte, verifierKey string) ([]byte, error) {
	v, err := note.NewVerifier(verifierKey)
	if err != nil {
		return nil, fmt.Errorf("provenance: verifier key: %w: %w", ErrBadVerifierKey, err)
	}
	n, err := note.Open(msg, note.VerifierList(v))
	if err != nil {
		var invalid *note.InvalidSignatureError
		var unverified *note.UnverifiedNoteError
		if errors.As(err, &invalid) || errors.As(err, &unverified) {
			return nil, fmt.Errorf("provenance: note: %w: %w", ErrBadSignature, err)
		}
		return nil, fmt.Errorf("provenance: note: %w: %w", ErrInvalidNote, err)
	}
	return []byte(n.Text), nil
}

// checkNoteText refuses text that note.Sign would sign but note.Open could not read back.
func checkNoteText(text []byte) error {
	if len(text) == 0 || text[len(text)-1] != '\n' {
		return fmt.Errorf("provenance: note text must end with a newline: %w", ErrInvalidNote)
	}
	if !utf8.Valid(text) {
		return fmt.Errorf("provenance: note text is not UTF-8: %w", ErrInvalidNote)
	}
	for _, c := range text {
		if c < 0x20 && c != '\n' {
			return fmt.Errorf("provenance: note text has a control character: %w", ErrInvalidNote)
		}
	}
	return nil
}

// String shows the public verifier key only.
func (k *PlatformKey) String() string {
	if k == nil {
		return "PlatformKey(nil)"
	}
	return "PlatformKey(" + k.verifier + ", private key redacted)"
}

// GoString shows the public verifier key only.
func (k *PlatformKey) GoString() string {
	if k == nil {
		return "(*provenance.PlatformKey)(nil)"
	}
	return "&provenance.PlatformKey{verifier: " + fmt.Sprintf("%q", k.verifier) + ", private key redacted}"
}
