package provenance

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/c1b99f93/cleanroom/errcode"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

func TestLoadOrCreatePlatformKey(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "platform.key")
	k1, err := LoadOrCreatePlatformKey(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(k1.Verifier(), "cleanroom+") {
		t.Errorf("Verifier = %q, want cleanroom+<hash>+<key>", k1.Verifier())
	}
	if _, err := note.NewVerifier(k1.Verifier()); err != nil {
		t.Errorf("Verifier does not parse as a note verifier key: %v", err)
	}
	if st, _ := os.Stat(path); runtime.GOOS != "windows" && st.Mode().Perm() != 0o600 {
		t.Errorf("key mode %v, want 0600", st.Mode().Perm())
	}
	k2, err := LoadOrCreatePlatformKey(path)
	if err != nil || k2.Verifier() != k1.Verifier() {
		t.Fatalf("reload gave another key (%v)", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("temporary files left behind: %v", entries)
	}

	// Nothing that formats the key prints the private key.
	raw, _ := os.ReadFile(path)
	secret := strings.SplitN(strings.TrimSuffix(string(raw), "\n"), "+", 5)[4]
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x"} {
		for _, v := range []any{k1, *k1} {
			if s := fmt.Sprintf(verb, v); strings.Contains(s, secret) || strings.Contains(s, "PRIVATE") {
				t.Errorf("fmt %s of a PlatformKey printed the private key: %s", verb, s)
			}
		}
	}

	bad := []struct {
		name    string
		content string
		mode    os.FileMode
	}{
		{"not a key", "hello\n", 0o600},
		{"a verifier key", k1.Verifier() + "\n", 0o600},
		{"another name", otherNameKey(t) + "\n", 0o600},
		{"world-readable", string(raw), 0o644},
	}
	for _, tt := range bad {
		if tt.mode != 0o600 && runtime.GOOS == "windows" {
			continue
		}
		p := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "-")+".key")
		os.WriteFile(p, []byte(tt.content), tt.mode)
		os.Chmod(p, tt.mode)
		_, err := LoadOrCreatePlatformKey(p)
		if !errors.Is(err, ErrBadPlatformKey) {
			t.Errorf("%s: %v, want ErrBadPlatformKey", tt.name, err)
		}
		if err != nil && strings.Contains(err.Error(), secret) {
			t.Errorf("%s: error quotes the key", tt.name)
		}
	}
}

func otherNameKey(t *testing.T) string {
	skey, _, err := note.GenerateKey(nil, "someone-else")
	if err != nil {
		t.Fatal(err)
	}
	return skey
}

func TestLoadOrCreatePlatformKeyConcurrentCreatorsAgree(t *testing.T) {
	path := filepath.Join(t.TempDir(), "platform.key")
	keys := make([]string, 16)
	var wg sync.WaitGroup
	for i := range keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k, err := LoadOrCreatePlatformKey(path)
			if err != nil {
				t.Error(err)
				return
			}
			keys[i] = k.Verifier()
		}()
	}
	wg.Wait()
	for i := range keys {
		if keys[i] != keys[0] {
			t.Fatalf("creator %d got another key", i)
		}
	}
}

func TestSignNoteAndVerifyNote(t *testing.T) {
	key, other := testKey(t), testKey(t)
	receipt := []byte("cleanroom release receipt\njob j-1\n")
	msg, err := key.SignNote(receipt)
	if err != nil {
		t.Fatal(err)
	}
	if text, err := VerifyNote(msg, key.Verifier()); err != nil || !bytes.Equal(text, receipt) {
		t.Errorf("VerifyNote = %q, %v", text, err)
	}
	if _, err := VerifyNote(msg, other.Verifier()); !errors.Is(err, ErrBadSignature) {
		t.Errorf("VerifyNote under another key = %v, want ErrBadSignature", err)
	}
	// A receipt is never a checkpoint, and nothing but the Log signs a checkpoint text.
	if _, err := ParseCheckpoint(msg, key.Verifier()); !errors.Is(err, ErrBadCheckpoint) {
		t.Errorf("ParseCheckpoint(receipt) = %v, want ErrBadCheckpoint", err)
	}
	forged := formatCheckpointBody(key.Origin(), 5, tlog.Hash{})
	if _, err := key.SignNote(forged); !errors.Is(err, ErrInvalidNote) {
		t.Errorf("SignNote(checkpoint text) = %v, want ErrInvalidNote", err)
	}
	for _, text := range []string{"", "no newline", "tab\there\n", "\xff\n"} {
		if _, err := key.SignNote([]byte(text)); !errors.Is(err, ErrInvalidNote) {
			t.Errorf("SignNote(%q) = %v, want ErrInvalidNote", text, err)
		}
	}
}

func TestParseCheckpoint(t *testing.T) {
	key, other := testKey(t), testKey(t)
	root := tlog.RecordHash([]byte("x"))
	sign := func(k *PlatformKey, text string) []byte {
		msg, err := k.sign([]byte(text))
		if err != nil {
			t.Fatal(err)
		}
		return msg
	}
	body := func(origin, size, root string) string { return origin + "\n" + size + "\n" + root + "\n" }
	b64 := root.String()
	valid := sign(key, body(key.Origin(), "42", b64))
	cosigned, err := note.Sign(&note.Note{Text: body(key.Origin(), "42", b64)}, key.signer, other.signer)
	if err != nil {
		t.Fatal(err)
	}
	flipped := bytes.Clone(valid)
	mutateBase64(flipped, len(flipped)-5) // inside the signature, past the key hash

	tests := []struct {
		name string
		msg  []byte
		key  string
		want error
	}{
		{"valid", valid, key.Verifier(), nil},
		{"co-signed by another key", cosigned, key.Verifier(), nil},
		{"wrong key", valid, other.Verifier(), ErrBadSignature},
		{"bad signature", flipped, key.Verifier(), ErrBadSignature},
		{"signed by another key", sign(other, body(key.Origin(), "42", b64)), key.Verifier(), ErrBadSignature},
		{"malformed verifier key", valid, "cleanroom+0000+AAAA", ErrBadVerifierKey},
		{"no signature", []byte(body(key.Origin(), "42", b64)), key.Verifier(), ErrInvalidNote},
		{"empty", nil, key.Verifier(), ErrInvalidNote},
		{"another key's origin", sign(key, body(other.Origin(), "42", b64)), key.Verifier(), ErrBadCheckpoint},
		{"origin without key hash", sign(key, body("cleanroom provenance ", "42", b64)), key.Verifier(), ErrBadCheckpoint},
		{"foreign origin", sign(key, body("example.com/log", "42", b64)), key.Verifier(), ErrBadCheckpoint},
		{"extension line", sign(key, body(key.Origin(), "42", b64)+"ext\n"), key.Verifier(), ErrBadCheckpoint},
		{"missing root", sign(key, key.Origin()+"\n42\n"), key.Verifier(), ErrBadCheckpoint},
		{"size with leading zero", sign(key, body(key.Origin(), "042", b64)), key.Verifier(), ErrBadCheckpoint},
		{"size with plus", sign(key, body(key.Origin(), "+42", b64)), key.Verifier(), ErrBadCheckpoint},
		{"negative size", sign(key, body(key.Origin(), "-1", b64)), key.Verifier(), ErrBadCheckpoint},
		{"size beyond int64", sign(key, body(key.Origin(), "9223372036854775808", b64)), key.Verifier(), ErrBadCheckpoint},
		{"hex root", sign(key, body(key.Origin(), "42", fmt.Sprintf("%x", root[:]))), key.Verifier(), ErrBadCheckpoint},
		{"short root", sign(key, body(key.Origin(), "42", base64.StdEncoding.EncodeToString(root[:31]))), key.Verifier(), ErrBadCheckpoint},
		{"unpadded root", sign(key, body(key.Origin(), "42", strings.TrimRight(b64, "="))), key.Verifier(), ErrBadCheckpoint},
		{"blank line in body", sign(key, key.Origin()+"\n\n42\n"+b64+"\n"), key.Verifier(), ErrBadCheckpoint},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cp, err := ParseCheckpoint(tt.msg, tt.key)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("ParseCheckpoint = %v", err)
				}
				if cp.Origin != key.Origin() || cp.Size != 42 || cp.Root != root || !bytes.Equal(cp.Note, tt.msg) {
					t.Errorf("ParseCheckpoint = %+v", cp)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Errorf("ParseCheckpoint = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestCheckpointsAreWrittenEveryNAndOnClose(t *testing.T) {
	key := testKey(t)
	path := filepath.Join(t.TempDir(), "provenance.log")
	l, err := Open(path, WithSigner(key), WithCheckpointEvery(4))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := l.LatestCheckpoint(); ok {
		t.Error("a new log has a checkpoint")
	}
	for i := 0; i < 10; i++ {
		mustAppend(t, l, sampleRecord(i, "a"))
	}
	cp, ok := l.LatestCheckpoint()
	if !ok || cp.Size != 8 {
		t.Fatalf("LatestCheckpoint = %+v, %v; want size 8", cp, ok)
	}
	parsed, err := ParseCheckpoint(cp.Note, key.Verifier())
	if err != nil {
		t.Fatal(err)
	}
	if head, _ := l.TreeHead(8); parsed.Root != head || parsed.Size != 8 || parsed.Origin != key.Origin() {
		t.Errorf("checkpoint %+v, tree head at 8 %v", parsed, head)
	}

	forced, err := l.Checkpoint(context.Background())
	if err != nil || forced.Size != 10 {
		t.Fatalf("Checkpoint = %+v, %v; want size 10", forced, err)
	}
	again, err := l.Checkpoint(context.Background())
	if err != nil || !bytes.Equal(again.Note, forced.Note) {
		t.Errorf("second Checkpoint wrote another: %v", err)
	}
	mustAppend(t, l, sampleRecord(10, "a"))
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	var sizes []uint64
	for _, line := range fileLines(t, path+checkpointsSuffix) {
		var cl struct {
			Size uint64 `json:"size"`
			Key  string `json:"key"`
			Note string `json:"note"`
		}
		if err := json.Unmarshal(line, &cl); err != nil {
			t.Fatal(err)
		}
		if cl.Key != key.Verifier() {
			t.Errorf("checkpoint line names key %q", cl.Key)
		}
		sizes = append(sizes, cl.Size)
	}
	if fmt.Sprint(sizes) != "[4 8 10 11]" {
		t.Errorf("checkpoint sizes %v, want [4 8 10 11] (every 4, forced at 10, Close at 11)", sizes)
	}
	rep, err := VerifyAll(path, key.Verifier())
	if err != nil || rep.Checkpoints != 4 || rep.TreeSize != 11 || rep.TreeFile != TreeFileOK {
		t.Fatalf("VerifyAll = %+v, %v", rep, err)
	}

	l2, err := Open(path, WithSigner(key), WithCheckpointEvery(0))
	if err != nil {
		t.Fatal(err)
	}
	if cp, ok := l2.LatestCheckpoint(); !ok || cp.Size != 11 || cp.Root.String() != rep.Root {
		t.Errorf("LatestCheckpoint after reopen = %+v, %v", cp, ok)
	}
	for i := 11; i < 20; i++ { // every 0: no automatic checkpoints
		mustAppend(t, l2, sampleRecord(i, "a"))
	}
	if cp, _ := l2.LatestCheckpoint(); cp.Size != 11 {
		t.Errorf("WithCheckpointEvery(0) wrote a checkpoint at %d", cp.Size)
	}
	l2.Close()
	if cp := lastCheckpointSize(t, path); cp != 20 {
		t.Errorf("Close wrote no checkpoint of 20 entries (latest %d)", cp)
	}
}

func lastCheckpointSize(t *testing.T, path string) uint64 {
	lines := fileLines(t, path+checkpointsSuffix)
	var cl struct {
		Size uint64 `json:"size"`
	}
	json.Unmarshal(lines[len(lines)-1], &cl)
	return cl.Size
}

func TestLogWithoutSignerWritesNoCheckpoints(t *testing.T) {
	l, path := openTemp(t)
	mustAppend(t, l, RecordEnvelope{Type: TypePlan})
	if _, err := l.Checkpoint(context.Background()); !errors.Is(err, ErrNoSigner) || errcode.Of(err) != errcode.NoSigner {
		t.Errorf("Checkpoint without signer = %v, want ErrNoSigner", err)
	}
	l.Close()
	if _, err := os.Stat(path + checkpointsSuffix); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a log without signer created a checkpoints file (%v)", err)
	}
	if _, err := Open(path, WithSigner(nil)); !errors.Is(err, ErrInvalidLogOption) {
		t.Errorf("WithSigner(nil) = %v, want ErrInvalidLogOption", err)
	}
}

func TestOpenRecoversTornCheckpointLine(t *testing.T) {
	key := testKey(t)
	path := filepath.Join(t.TempDir(), "provenance.log")
	buildLog(t, path, records(8, 0, "a"), WithSigner(key), WithCheckpointEvery(4))
	cps, _ := os.ReadFile(path + checkpointsSuffix)
	lines := fileLines(t, path+checkpointsSuffix)
	torn := append(bytes.Clone(cps[:len(cps)-len(lines[1])]), lines[1][:30]...)
	os.WriteFile(path+checkpointsSuffix, torn, 0o600)
	if rep, err := VerifyAll(path, key.Verifier()); err != nil || rep.Checkpoints != 1 {
		t.Errorf("VerifyAll with a torn checkpoint line = %+v, %v; want it ignored", rep, err)
	}
	l, err := Open(path, WithSigner(key))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if cp, ok := l.LatestCheckpoint(); !ok || cp.Size != 4 {
		t.Errorf("LatestCheckpoint = %+v, %v; want size 4", cp, ok)
	}
	l.Close() // writes the checkpoint of 8 again
	if rep, err := VerifyAll(path, key.Verifier()); err != nil || rep.Checkpoints != 2 {
		t.Errorf("VerifyAll after recovery = %+v, %v", rep, err)
	}
}

// signedSample is a closed log of 16 sample records with checkpoints at 4, 8, 12 and 16.
type signedSample struct {
	dir, path string
	key       *PlatformKey
	lines     [][]byte // of the log
	cps       [][]byte // of the checkpoints file
}

func newSignedSample(t *testing.T, key *PlatformKey, tag string) signedSample {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "provenance.log")
	buildLog(t, path, records(16, 8, tag), WithSigner(key), WithCheckpointEvery(4))
	return signedSample{dir: dir, path: path, key: key, lines: fileLines(t, path), cps: fileLines(t, path+checkpointsSuffix)}
}

func TestVerifyAllDetectsTampering(t *testing.T) {
	key, otherKey := testKey(t), testKey(t)
	type files struct{ lines, cps [][]byte }
	tests := []struct {
		name     string
		tamper   func(t *testing.T, f files) files
		problem  string
		firstBad int64
		cpLine   int  // expected CheckpointLine, 0 for a line problem
		openOK   bool // Open checks checkpoints without a key, so it accepts a bad signature
	}{
		{
			name: "flip a byte in a record",
			tamper: func(t *testing.T, f files) files {
				i := bytes.Index(f.lines[5], []byte("abcdef"))
				f.lines[5][i] = 'x'
				return f
			},
			problem: ProblemBadHash, firstBad: 5,
		},
		{
			name:    "delete a record",
			tamper:  func(t *testing.T, f files) files { f.lines = append(f.lines[:6:6], f.lines[7:]...); return f },
			problem: ProblemBadIndex, firstBad: 6,
		},
		{
			name: "reorder two records",
			tamper: func(t *testing.T, f files) files {
				f.lines[9], f.lines[10] = f.lines[10], f.lines[9]
				return f
			},
			problem: ProblemBadIndex, firstBad: 9,
		},
		{
			name: "truncate mid-line before the last checkpoint",
			tamper: func(t *testing.T, f files) files {
				f.lines = append(f.lines[:10:10], f.lines[10][:40])
				return f
			},
			problem: ProblemCheckpointBeyondLog, firstBad: 10, cpLine: 3,
		},
		{
			name:    "truncate at a line boundary before the last checkpoint",
			tamper:  func(t *testing.T, f files) files { f.lines = f.lines[:14]; return f },
			problem: ProblemCheckpointBeyondLog, firstBad: 14, cpLine: 4,
		},
		{
			name: "replace a checkpoint's signature with another key's",
			tamper: func(t *testing.T, f files) files {
				f.cps[1] = resign(t, f.cps[1], otherKey)
				return f
			},
			problem: ProblemCheckpointBadSignature, firstBad: 4, cpLine: 2, openOK: true,
		},
		{
			name: "flip a bit of a checkpoint's signature",
			tamper: func(t *testing.T, f files) files {
				mutateBase64(f.cps[2], bytes.LastIndex(f.cps[2], []byte(`\n"`))-6)
				return f
			},
			problem: ProblemCheckpointBadSignature, firstBad: 8, cpLine: 3, openOK: true,
		},
		{
			name: "edit a checkpoint line's size",
			tamper: func(t *testing.T, f files) files {
				f.cps[0] = bytes.Replace(f.cps[0], []byte(`"size":4`), []byte(`"size":3`), 1)
				return f
			},
			problem: ProblemCheckpointMalformed, firstBad: 0, cpLine: 1,
		},
		{
			name: "reorder checkpoints",
			tamper: func(t *testing.T, f files) files {
				f.cps[1], f.cps[2] = f.cps[2], f.cps[1]
				return f
			},
			problem: ProblemCheckpointOutOfOrder, firstBad: 12, cpLine: 3,
		},
		{
			name: "splice records from another log (same key)",
			tamper: func(t *testing.T, f files) files {
				other := newSignedSample(t, key, "other")
				f.lines = append(f.lines[:8:8], other.lines[8:]...)
				return f
			},
			problem: ProblemCheckpointRootMismatch, firstBad: 8, cpLine: 3,
		},
		{
			name: "splice records and checkpoints from another log (different key)",
			tamper: func(t *testing.T, f files) files {
				other := newSignedSample(t, otherKey, "other")
				f.lines = append(f.lines[:8:8], other.lines[8:]...)
				f.cps = append(f.cps[:2:2], other.cps[2:]...)
				return f
			},
			problem: ProblemCheckpointBadSignature, firstBad: 8, cpLine: 3, openOK: true,
		},
		{
			name: "rewrite a record and its hash",
			tamper: func(t *testing.T, f files) files {
				// The chain breaks at 4, but the checkpoint of 4 already disagrees: nothing
				// before it is vouched for.
				f.lines[3] = rehash(bytes.Replace(f.lines[3], []byte("abcdef"), []byte("abcdeX"), 1))
				return f
			},
			problem: ProblemCheckpointRootMismatch, firstBad: 0, cpLine: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSignedSample(t, key, "a")
			if rep, err := VerifyAll(s.path, key.Verifier()); err != nil || rep.Checkpoints != 4 || rep.TreeFile != TreeFileOK {
				t.Fatalf("untampered: VerifyAll = %+v, %v", rep, err)
			}
			f := tt.tamper(t, files{lines: s.lines, cps: s.cps})
			os.WriteFile(s.path, bytes.Join(f.lines, nil), 0o600)
			os.WriteFile(s.path+checkpointsSuffix, bytes.Join(f.cps, nil), 0o600)

			rep, err := VerifyAll(s.path, key.Verifier())
			if !errors.Is(err, ErrCorrupt) {
				t.Errorf("VerifyAll error = %v, want ErrCorrupt", err)
			}
			if rep.Problem != tt.problem || rep.FirstBad != tt.firstBad || rep.CheckpointLine != tt.cpLine {
				t.Errorf("VerifyAll = %+v, want %s at %d (checkpoint line %d)", rep, tt.problem, tt.firstBad, tt.cpLine)
			}
			before, _ := os.ReadFile(s.path)
			l, err := Open(s.path, WithSigner(key))
			if tt.openOK {
				if err != nil {
					t.Errorf("Open = %v; it does not check signatures", err)
				} else {
					l.Close()
				}
				return
			}
			if !errors.Is(err, ErrCorrupt) {
				if l != nil {
					l.Close()
				}
				t.Errorf("Open = %v, want ErrCorrupt", err)
			}
			if after, _ := os.ReadFile(s.path); !bytes.Equal(after, before) {
				t.Error("Open modified a log it refused")
			}
		})
	}
}

// TestForkUnderTheSameKeyNeedsAHeldCheckpoint pins the limit of VerifyAll: a log replaced,
// checkpoints and all, by another history signed with the same key verifies on its own; an
// auditor who kept an earlier checkpoint detects it with a consistency check.
func TestForkUnderTheSameKeyNeedsAHeldCheckpoint(t *testing.T) {
	key := testKey(t)
	a, b := newSignedSample(t, key, "a"), newSignedSample(t, key, "b")
	held, err := ParseCheckpoint(a.checkpointNote(t, 3), key.Verifier()) // size 16
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(a.path, bytes.Join(append(a.lines[:8:8], b.lines[8:]...), nil), 0o600)
	os.WriteFile(a.path+checkpointsSuffix, bytes.Join(append(a.cps[:2:2], b.cps[2:]...), nil), 0o600)
	if rep, err := VerifyAll(a.path, key.Verifier()); err != nil {
		t.Fatalf("VerifyAll of a same-key fork = %+v, %v; it verifies on its own", rep, err)
	}
	l, err := Open(a.path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	root, _ := l.TreeHead(held.Size)
	if root == held.Root {
		t.Fatal("the fork has the held checkpoint's root")
	}
	latest, _ := l.LatestCheckpoint()
	p, _ := l.ConsistencyProof(held.Size, latest.Size)
	if err := CheckConsistency(p, held.Size, held.Root, latest.Size, latest.Root); !errors.Is(err, ErrProofInvalid) {
		t.Errorf("consistency of the held checkpoint with the fork = %v, want ErrProofInvalid", err)
	}
}

func (s signedSample) checkpointNote(t *testing.T, i int) []byte {
	var cl struct {
		Note string `json:"note"`
	}
	if err := json.Unmarshal(s.cps[i], &cl); err != nil {
		t.Fatal(err)
	}
	return []byte(cl.Note)
}

// mutateBase64 changes the base64 digit at b[i] to another base64 digit.
func mutateBase64(b []byte, i int) {
	if b[i] == 'A' {
		b[i] = 'B'
	} else {
		b[i] = 'A'
	}
}

// resign replaces the signature of a checkpoints file line with one by k over the same text.
func resign(t *testing.T, line []byte, k *PlatformKey) []byte {
	var cl checkpointLine
	if err := json.Unmarshal(line, &cl); err != nil {
		t.Fatal(err)
	}
	text, _, _ := strings.Cut(*cl.Note, "\n\n")
	msg, err := k.sign([]byte(text + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	out, err := frameCheckpoint(*cl.Size, *cl.Key, msg)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// rehash recomputes a line's hash after its record was edited, as a forger would.
func rehash(line []byte) []byte {
	var env envelope
	json.Unmarshal(line, &env)
	prev, _ := decodeHash(*env.Prev)
	h := entryHash(*env.Index, prev, env.Record)
	return formatLine(Entry{Index: *env.Index, Prev: *env.Prev, Hash: fmt.Sprintf("%x", h), Record: env.Record})
}

func TestOpenRefusesALogShorterThanItsCheckpoint(t *testing.T) {
	key := testKey(t)
	s := newSignedSample(t, key, "a")
	// Even a torn final line, which Open normally recovers, is refused when a checkpoint covers it.
	os.WriteFile(s.path, append(bytes.Join(s.lines[:15], nil), s.lines[15][:20]...), 0o600)
	for _, opts := range [][]Option{nil, {WithSigner(key)}} {
		if l, err := Open(s.path, opts...); !errors.Is(err, ErrCorrupt) {
			if l != nil {
				l.Close()
			}
			t.Errorf("Open(%d options) of a log cut before its checkpoint = %v, want ErrCorrupt", len(opts), err)
		}
	}
}
