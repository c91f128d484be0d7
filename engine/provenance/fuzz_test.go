package provenance

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// fixedKey is a platform key from a fixed seed, so fuzz corpora stay valid across runs.
func fixedKey(t testing.TB, seed byte) *PlatformKey {
	t.Helper()
	skey, _, err := note.GenerateKey(bytes.NewReader(bytes.Repeat([]byte{seed}, 32)), PlatformKeyName)
	if err != nil {
		t.Fatal(err)
	}
	k, err := parsePlatformKey(skey)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func FuzzParseCheckpoint(f *testing.F) {
	key, other := fixedKey(f, 1), fixedKey(f, 2)
	root := tlog.RecordHash([]byte("leaf"))
	for _, text := range []string{
		string(formatCheckpointBody(key.Origin(), 0, root)),
		string(formatCheckpointBody(key.Origin(), 1234, root)),
		string(formatCheckpointBody(other.Origin(), 7, root)),
		key.Origin() + "\n12\n" + root.String() + "\nextension\n",
		key.Origin() + "\n012\n" + root.String() + "\n",
	} {
		msg, err := key.sign([]byte(text))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(msg)
		f.Add([]byte(text))
	}
	msg, _ := other.sign(formatCheckpointBody(key.Origin(), 3, root))
	f.Add(msg)
	f.Add([]byte("\n\n— cleanroom AAAA\n"))
	f.Fuzz(func(t *testing.T, msg []byte) {
		cp, err := ParseCheckpoint(msg, key.Verifier())
		if err != nil {
			return
		}
		// Whatever parses has exactly one spelling and the right origin, and verifies again.
		text, err := VerifyNote(msg, key.Verifier())
		if err != nil {
			t.Fatalf("ParseCheckpoint accepted a note VerifyNote refuses: %v", err)
		}
		if !bytes.Equal(formatCheckpointBody(cp.Origin, cp.Size, cp.Root), text) {
			t.Fatalf("checkpoint text %q is not the canonical form of %+v", text, cp)
		}
		if cp.Origin != key.Origin() || !bytes.Equal(cp.Note, msg) {
			t.Fatalf("ParseCheckpoint = %+v", cp)
		}
	})
}

func FuzzVerifyArchive(f *testing.F) {
	key := fixedKey(f, 1)
	path := filepath.Join(f.TempDir(), "provenance.log")
	buildLog(f, path, records(9, 0, "a"), WithSigner(key), WithCheckpointEvery(4))
	for i, r := range [][2]uint64{{0, 9}, {3, 7}, {5, 6}} {
		out := filepath.Join(f.TempDir(), "a.tar")
		if err := Export(path, r[0], r[1], out); err != nil {
			f.Fatal(err)
		}
		b, err := os.ReadFile(out)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		if i == 0 {
			f.Add(b[:len(b)/2])
			flipped := bytes.Clone(b)
			flipped[len(flipped)-2000] ^= 1
			f.Add(flipped)
		}
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		rep, err := verifyArchive(bytes.NewReader(data), key.Verifier())
		if (err == nil) != rep.OK() {
			t.Fatalf("verifyArchive error %v with report %+v", err, rep)
		}
		if err == nil && (rep.Entries != rep.To-rep.From || rep.CheckpointSize < rep.To || rep.FirstBad != -1) {
			t.Fatalf("verifyArchive accepted with report %+v", rep)
		}
	})
}

// FuzzDecodeEvent: whatever bytes a record's data holds, decoding it as any registered event
// type either refuses with ErrInvalidRecord or yields an event that encodes and decodes back to
// the same JSON — never a panic, and never an event that would be written differently than it
// was read (an auditor's replay depends on both).
func FuzzDecodeEvent(f *testing.F) {
	types := Registered()
	for i := range types {
		f.Add(uint8(i), []byte(`{}`))
	}
	f.Add(uint8(0), []byte(`{"job":"j-1","epsilon":1e308,"extra":1}`))
	f.Add(uint8(1), []byte(`null`))
	f.Add(uint8(2), []byte(`{"epsilon":"1"}`))
	f.Add(uint8(3), []byte(`[1,2,3]`))
	f.Fuzz(func(t *testing.T, which uint8, data []byte) {
		r := types[int(which)%len(types)]
		ev, err := Decode(r.Type, r.Version, data)
		if err != nil {
			if !errors.Is(err, ErrInvalidRecord) {
				t.Fatalf("%s: refused without ErrInvalidRecord: %v", r.Type, err)
			}
			return
		}
		first, err := json.Marshal(ev)
		if err != nil {
			return // a decoded value JSON cannot write (e.g. a NaN read as a number) is refused at Append
		}
		again, err := Decode(r.Type, r.Version, first)
		if err != nil {
			t.Fatalf("%s: its own encoding %s does not decode: %v", r.Type, first, err)
		}
		second, err := json.Marshal(again)
		if err != nil || !bytes.Equal(first, second) {
			t.Fatalf("%s: encodes as %s, then as %s (%v)", r.Type, first, second, err)
		}
	})
}
