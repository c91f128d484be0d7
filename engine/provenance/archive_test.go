package provenance

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// archiveLog is a closed log of 18 records with checkpoints at 4, 8, 12, 16 and 18 (Close).
func archiveLog(t testing.TB, key *PlatformKey) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "provenance.log")
	buildLog(t, path, records(18, 0, "a"), WithSigner(key), WithCheckpointEvery(4))
	return path
}

func TestExportThenVerifyOfflineInAFreshDirectory(t *testing.T) {
	key := testKey(t)
	path := archiveLog(t, key)
	lines := fileLines(t, path)
	out := filepath.Join(t.TempDir(), "audit.tar")
	if err := Export(path, 5, 11, out); err != nil {
		t.Fatalf("Export: %v", err)
	}
	if err := Export(path, 5, 11, out); !errors.Is(err, ErrArchiveExists) {
		t.Errorf("Export over an existing archive = %v, want ErrArchiveExists", err)
	}
	// The auditor has the archive and the key, nothing else.
	fresh := filepath.Join(t.TempDir(), "received.tar")
	b, _ := os.ReadFile(out)
	os.WriteFile(fresh, b, 0o600)
	os.RemoveAll(filepath.Dir(path))
	os.Remove(out)

	rep, err := VerifyArchive(fresh, key.Verifier())
	if err != nil {
		t.Fatalf("VerifyArchive: %+v, %v", rep, err)
	}
	want := ArchiveReport{From: 5, To: 11, Entries: 6, CheckpointSize: 12, Origin: key.Origin(), FirstBad: -1}
	want.Root = rep.Root
	if rep != want {
		t.Errorf("VerifyArchive = %+v, want %+v", rep, want)
	}
	// The entries are the log's lines byte for byte, and the README explains the checks.
	members := readTar(t, fresh)
	if got := members[memberEntries]; !bytes.Equal(got, bytes.Join(lines[5:11], nil)) {
		t.Errorf("entries.jsonl is not lines 5-10 of the log")
	}
	for _, s := range []string{"RFC 6962", "C2SP", "SHA-256(0x00 || line", "cleanroom-log-v1"} {
		if !strings.Contains(string(members[memberReadme]), s) {
			t.Errorf("README.txt does not mention %q", s)
		}
	}
}

func TestExportVerifiesForEveryRange(t *testing.T) {
	key := testKey(t)
	path := archiveLog(t, key)
	dir := t.TempDir()
	for from := uint64(0); from < 18; from++ {
		for to := from + 1; to <= 18; to++ {
			out := filepath.Join(dir, "a.tar")
			if err := Export(path, from, to, out); err != nil {
				t.Fatalf("Export(%d, %d): %v", from, to, err)
			}
			rep, err := VerifyArchive(out, key.Verifier())
			if err != nil || rep.Entries != to-from || rep.CheckpointSize < to {
				t.Fatalf("VerifyArchive(%d, %d) = %+v, %v", from, to, rep, err)
			}
			os.Remove(out)
		}
	}
}

func TestExportNeedsACheckpointCoveringTheRange(t *testing.T) {
	key := testKey(t)
	path := archiveLog(t, key)
	l, err := Open(path) // no signer: these entries are not checkpointed
	if err != nil {
		t.Fatal(err)
	}
	mustAppend(t, l, sampleRecord(18, "a"))
	mustAppend(t, l, sampleRecord(19, "a"))
	l.Close()
	out := filepath.Join(t.TempDir(), "a.tar")
	if err := Export(path, 10, 20, out); !errors.Is(err, ErrNoCheckpoint) {
		t.Fatalf("Export beyond the latest checkpoint = %v, want ErrNoCheckpoint", err)
	}
	if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
		t.Error("a failed Export left a file")
	}
	if err := Export(path, 10, 18, out); err != nil {
		t.Errorf("Export within the checkpoint: %v", err)
	}
	os.Remove(out)

	l, err = Open(path, WithSigner(key))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Checkpoint(context.Background()); err != nil {
		t.Fatal(err)
	}
	l.Close()
	if err := Export(path, 10, 20, out); err != nil {
		t.Fatalf("Export after Checkpoint: %v", err)
	}
	if rep, err := VerifyArchive(out, key.Verifier()); err != nil || rep.CheckpointSize != 20 {
		t.Errorf("VerifyArchive = %+v, %v", rep, err)
	}

	for _, r := range [][2]uint64{{5, 5}, {6, 5}} {
		if err := Export(path, r[0], r[1], filepath.Join(t.TempDir(), "x.tar")); !errors.Is(err, ErrOutOfRange) {
			t.Errorf("Export(%d, %d) = %v, want ErrOutOfRange", r[0], r[1], err)
		}
	}
}

func TestExportRefusesACorruptLog(t *testing.T) {
	key := testKey(t)
	path := archiveLog(t, key)
	b, _ := os.ReadFile(path)
	i := bytes.Index(b, []byte("abcdef"))
	b[i] = 'X'
	os.WriteFile(path, b, 0o600)
	if err := Export(path, 3, 5, filepath.Join(t.TempDir(), "a.tar")); !errors.Is(err, ErrCorrupt) {
		t.Errorf("Export of a corrupt log = %v, want ErrCorrupt", err)
	}
}

func TestVerifyArchiveRefusesModifiedArchives(t *testing.T) {
	key, other := testKey(t), testKey(t)
	path := archiveLog(t, key)
	type members = map[string][]byte
	tests := []struct {
		name     string
		from, to uint64
		key      string
		modify   func(t *testing.T, m members)
		raw      func(b []byte) []byte // applied to the archive file instead
		problem  string
		firstBad int64
	}{
		{
			name: "byte flipped in an entry", from: 5, to: 11, key: key.Verifier(),
			modify: func(t *testing.T, m members) {
				e := m[memberEntries]
				i := bytes.LastIndex(e, []byte("abcdef"))
				e[i] = 'x'
			},
			problem: ProblemBadHash, firstBad: 10,
		},
		{
			name: "byte flipped in the first entry's prev", from: 5, to: 11, key: key.Verifier(),
			modify: func(t *testing.T, m members) {
				editField([][]byte{m[memberEntries]}, 0, `"prev":"`)
			},
			problem: ProblemBadHash, firstBad: 5,
		},
		{
			name: "wrong verifier key", from: 5, to: 11, key: other.Verifier(),
			problem: ProblemArchiveKeyMismatch, firstBad: 5,
		},
		{
			name: "verifier.key replaced by the auditor's (wrong) key", from: 5, to: 11, key: other.Verifier(),
			modify:  func(t *testing.T, m members) { m[memberKey] = []byte(other.Verifier() + "\n") },
			problem: ProblemCheckpointBadSignature, firstBad: 5,
		},
		{
			name: "range re-chained by a forger", from: 5, to: 11, key: key.Verifier(),
			modify: func(t *testing.T, m members) {
				forgeEntries(t, m, func(ls [][]byte) [][]byte {
					ls[2] = bytes.Replace(ls[2], []byte("abcdef"), []byte("abcdeX"), 1)
					return ls
				})
			},
			problem: ProblemArchiveNotInCheckpoint, firstBad: 5,
		},
		{
			name: "entry deleted and the rest renumbered by a forger", from: 0, to: 8, key: key.Verifier(),
			modify: func(t *testing.T, m members) {
				forgeEntries(t, m, func(ls [][]byte) [][]byte { return append(ls[:3:3], ls[4:]...) })
			},
			problem: ProblemArchiveNotInCheckpoint, firstBad: 0,
		},
		{
			name: "left hash changed", from: 5, to: 11, key: key.Verifier(),
			modify: func(t *testing.T, m members) {
				editManifest(t, m, func(man *archiveManifest) { man.Left[0][0] ^= 1 })
			},
			problem: ProblemArchiveNotInCheckpoint, firstBad: 5,
		},
		{
			name: "consistency hash changed", from: 5, to: 11, key: key.Verifier(),
			modify: func(t *testing.T, m members) {
				editManifest(t, m, func(man *archiveManifest) { man.Consistency[0][0] ^= 1 })
			},
			problem: ProblemArchiveNotInCheckpoint, firstBad: 5,
		},
		{
			name: "root_at_to changed", from: 5, to: 11, key: key.Verifier(),
			modify: func(t *testing.T, m members) {
				editManifest(t, m, func(man *archiveManifest) { man.RootAtTo[0] ^= 1 })
			},
			problem: ProblemArchiveNotInCheckpoint, firstBad: 5,
		},
		{
			name: "checkpoint swapped for an older one", from: 5, to: 8, key: key.Verifier(),
			modify: func(t *testing.T, m members) {
				s := newSignedSample(t, key, "a")
				m[memberCheckpoint] = s.checkpointNote(t, 0) // size 4 < to
			},
			problem: ProblemArchiveMalformed, firstBad: 5,
		},
		{
			name: "extra line in entries", from: 5, to: 11, key: key.Verifier(),
			modify: func(t *testing.T, m members) {
				m[memberEntries] = append(m[memberEntries], fileLines(t, path)[11]...)
			},
			problem: ProblemArchiveMalformed, firstBad: 11,
		},
		{
			name: "unknown manifest field", from: 5, to: 11, key: key.Verifier(),
			modify: func(t *testing.T, m members) {
				m[memberManifest] = bytes.Replace(m[memberManifest], []byte(`"format"`), []byte(`"x":1,"format"`), 1)
			},
			problem: ProblemArchiveMalformed, firstBad: 0,
		},
		{
			name: "truncated archive", from: 5, to: 11, key: key.Verifier(),
			raw:     func(b []byte) []byte { return b[:len(b)-1024-512] }, // the end blocks and the entries' last block
			problem: ProblemArchiveMalformed, firstBad: 5,
		},
		{
			name: "byte flipped in a tar header", from: 5, to: 11, key: key.Verifier(),
			raw:     func(b []byte) []byte { b[10] ^= 1; return b },
			problem: ProblemArchiveMalformed, firstBad: 0,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "a.tar")
			if err := Export(path, tt.from, tt.to, out); err != nil {
				t.Fatal(err)
			}
			if tt.modify != nil {
				m := readTar(t, out)
				tt.modify(t, m)
				writeTar(t, out, m)
			}
			if tt.raw != nil {
				b, _ := os.ReadFile(out)
				os.WriteFile(out, tt.raw(b), 0o600)
			}
			rep, err := VerifyArchive(out, tt.key)
			if !errors.Is(err, ErrArchiveCorrupt) {
				t.Errorf("VerifyArchive error = %v, want ErrArchiveCorrupt", err)
			}
			if rep.Problem != tt.problem || rep.FirstBad != tt.firstBad {
				t.Errorf("VerifyArchive = %+v, want %s at %d (%v)", rep, tt.problem, tt.firstBad, err)
			}
		})
	}
}

// forgeEntries edits the archive's lines, renumbers and re-chains them and updates the manifest
// (to, root_at_to, entries_sha256), as someone without the platform key could: only the
// checkpoint's tree stops them.
func forgeEntries(t *testing.T, m map[string][]byte, edit func(ls [][]byte) [][]byte) {
	t.Helper()
	ls := bytes.SplitAfter(m[memberEntries], []byte("\n"))
	ls = edit(ls[:len(ls)-1])
	var first envelope
	json.Unmarshal(ls[0], &first)
	prev := *first.Prev
	for i := range ls {
		var env envelope
		json.Unmarshal(ls[i], &env)
		ls[i] = rehash(formatLine(Entry{Index: *first.Index + uint64(i), Prev: prev, Hash: *env.Hash, Record: env.Record}))
		json.Unmarshal(ls[i], &env)
		prev = *env.Hash
	}
	m[memberEntries] = bytes.Join(ls, nil)
	editManifest(t, m, func(man *archiveManifest) {
		man.To = man.From + uint64(len(ls))
		var f frontier
		f.seed(int64(man.From), man.Left)
		for _, l := range ls {
			f.add(leafHash(l))
		}
		man.RootAtTo, _ = f.root()
		sum := sha256.Sum256(m[memberEntries])
		man.EntriesSHA256 = hex.EncodeToString(sum[:])
	})
}

func editManifest(t *testing.T, m map[string][]byte, edit func(*archiveManifest)) {
	t.Helper()
	var man archiveManifest
	if err := json.Unmarshal(m[memberManifest], &man); err != nil {
		t.Fatal(err)
	}
	edit(&man)
	b, err := json.Marshal(man)
	if err != nil {
		t.Fatal(err)
	}
	m[memberManifest] = b
}

var memberOrder = []string{memberReadme, memberManifest, memberCheckpoint, memberKey, memberEntries}

func readTar(t testing.TB, path string) map[string][]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string][]byte{}
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		out[strings.TrimPrefix(hdr.Name, archiveDir)] = b
	}
}

func writeTar(t testing.TB, path string, m map[string][]byte) {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, name := range memberOrder {
		tw.WriteHeader(&tar.Header{Name: archiveDir + name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(m[name]))})
		tw.Write(m[name])
	}
	tw.Close()
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
}
