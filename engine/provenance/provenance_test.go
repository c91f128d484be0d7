package provenance

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/c1b99f93/cleanroom/errcode"
)

func openTemp(t *testing.T) (*Log, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "provenance.log")
	l, err := Open(path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	return l, path
}

func mustAppend(t *testing.T, l *Log, r RecordEnvelope) Entry {
	t.Helper()
	e, err := l.appendRecord(context.Background(), r, true)
	if err != nil {
		t.Fatalf("Append(%s): %v", r.Type, err)
	}
	return e
}

// writeSample writes a closed log of n records and returns its path and lines.
func writeSample(t *testing.T, n int) (string, [][]byte) {
	t.Helper()
	l, path := openTemp(t)
	for i := 0; i < n; i++ {
		mustAppend(t, l, RecordEnvelope{
			Type: TypeMechanism,
			Job:  fmt.Sprintf("job-%d", i%3),
			Time: time.Date(2026, 1, 2, 3, 4, 5, i, time.UTC),
			Data: &Mechanism{Aggregates: DocOf(map[string]any{"n": i, "note": "abcdef"})},
		})
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return path, readLines(t, path)
}

func readLines(t *testing.T, path string) [][]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.SplitAfter(b, []byte("\n"))
}

func TestAppendThenVerifyRoundTrip(t *testing.T) {
	l, path := openTemp(t)
	var entries []Entry
	for i, ev := range []Event{&JobSubmitted{SQL: "SELECT 1"}, &Gate{Admitted: true}, &Plan{}, &Mechanism{RowsReleased: 3}, &Release{Rows: 3}} {
		e, err := l.Append(context.Background(), "j1", ev)
		if err != nil || e.Index != uint64(i) {
			t.Fatalf("Append(%s) = %d, %v", ev.EventType(), e.Index, err)
		}
		entries = append(entries, e)
	}
	mustAppend(t, l, RecordEnvelope{Type: TypePolicyLoaded, Data: &PolicyLoaded{BundleDigest: "sha256:00"}})

	if got := l.Size(); got != 6 {
		t.Fatalf("Size = %d, want 6", got)
	}
	for i, e := range entries {
		if e.Index != uint64(i) {
			t.Errorf("entry %d has index %d", i, e.Index)
		}
		want := GenesisHash
		if i > 0 {
			want = entries[i-1].Hash
		}
		if e.Prev != want {
			t.Errorf("entry %d prev = %s, want %s", i, e.Prev, want)
		}
	}
	var rec recordHead
	if err := json.Unmarshal(entries[0].Record, &rec); err != nil {
		t.Fatal(err)
	}
	if rec.Time.IsZero() || rec.Time.Location() != time.UTC {
		t.Errorf("Append did not set a UTC time: %v", rec.Time)
	}
	head := l.Head()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	rep, err := Verify(path)
	if err != nil {
		t.Fatalf("Verify: %v (%+v)", err, rep)
	}
	want := VerifyReport{Records: 6, Head: head, FirstBad: -1}
	if rep != want {
		t.Errorf("Verify = %+v, want %+v", rep, want)
	}

	job, err := ReadJob(path, "j1")
	if err != nil {
		t.Fatal(err)
	}
	if len(job) != 5 {
		t.Fatalf("ReadJob returned %d entries, want 5", len(job))
	}
	for i := range job {
		if !bytes.Equal(job[i].Record, entries[i].Record) || job[i].Hash != entries[i].Hash {
			t.Errorf("ReadJob entry %d = %+v, want %+v", i, job[i], entries[i])
		}
	}

	// Reopening continues the chain.
	l2, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	if l2.Size() != 6 || l2.Head() != head {
		t.Fatalf("reopened Size=%d Head=%s, want 6 %s", l2.Size(), l2.Head(), head)
	}
	e := mustAppend(t, l2, RecordEnvelope{Type: TypeJobFailed, Job: "j2"})
	if e.Index != 6 || e.Prev != head {
		t.Errorf("append after reopen = %+v", e)
	}
	if rep, err := Verify(path); err != nil || rep.Records != 7 {
		t.Errorf("Verify after reopen = %+v, %v", rep, err)
	}
}

func TestConcurrentAppendsKeepValidChain(t *testing.T) {
	l, path := openTemp(t)
	const workers, each = 50, 8
	var wg sync.WaitGroup
	seen := make([]bool, workers*each)
	var mu sync.Mutex
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				e, err := l.appendRecord(context.Background(), RecordEnvelope{Type: TypeExecution, Job: fmt.Sprintf("w%d", w), Data: &Execution{DurationMS: int64(i)}}, true)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if seen[e.Index] {
					t.Errorf("index %d returned twice", e.Index)
				}
				seen[e.Index] = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	rep, err := Verify(path)
	if err != nil || rep.Records != workers*each {
		t.Fatalf("Verify = %+v, %v; want %d records", rep, err, workers*each)
	}
	for w := 0; w < workers; w++ {
		es, err := ReadJob(path, fmt.Sprintf("w%d", w))
		if err != nil || len(es) != each {
			t.Fatalf("ReadJob(w%d) = %d entries, %v", w, len(es), err)
		}
	}
}

func TestVerifyDetectsTampering(t *testing.T) {
	const n = 10
	tests := []struct {
		name     string
		tamper   func(lines [][]byte) [][]byte
		problem  string
		firstBad int64
	}{
		{
			name: "flip a byte inside a record",
			tamper: func(ls [][]byte) [][]byte {
				i := bytes.Index(ls[4], []byte("abcdef"))
				ls[4][i] = 'x'
				return ls
			},
			problem: ProblemBadHash, firstBad: 4,
		},
		{
			name:    "delete a line",
			tamper:  func(ls [][]byte) [][]byte { return append(ls[:3:3], ls[4:]...) },
			problem: ProblemBadIndex, firstBad: 3,
		},
		{
			name: "swap two lines",
			tamper: func(ls [][]byte) [][]byte {
				ls[5], ls[6] = ls[6], ls[5]
				return ls
			},
			problem: ProblemBadIndex, firstBad: 5,
		},
		{
			name: "truncate mid-line",
			tamper: func(ls [][]byte) [][]byte {
				ls[n-1] = ls[n-1][:len(ls[n-1])/2]
				return ls
			},
			problem: ProblemTruncated, firstBad: n - 1,
		},
		{
			name:    "edit a hash",
			tamper:  func(ls [][]byte) [][]byte { return editField(ls, 7, `"hash":"`) },
			problem: ProblemBadHash, firstBad: 7,
		},
		{
			name:    "edit a prev",
			tamper:  func(ls [][]byte) [][]byte { return editField(ls, 2, `"prev":"`) },
			problem: ProblemBrokenLink, firstBad: 2,
		},
		{
			name: "rewrite a record and its hash",
			tamper: func(ls [][]byte) [][]byte {
				// A forger who recomputes the hash of line 3 still breaks line 4's link.
				l := ls[3]
				i := bytes.Index(l, []byte("abcdef"))
				l[i] = 'x'
				var env envelope
				json.Unmarshal(l, &env)
				prev, _ := decodeHash(*env.Prev)
				h := entryHash(*env.Index, prev, env.Record)
				ls[3] = formatLine(Entry{Index: *env.Index, Prev: *env.Prev, Hash: fmt.Sprintf("%x", h), Record: env.Record})
				return ls
			},
			problem: ProblemBrokenLink, firstBad: 4,
		},
		{
			name: "insert a blank line",
			tamper: func(ls [][]byte) [][]byte {
				return append(ls[:6:6], append([][]byte{[]byte("\n")}, ls[6:]...)...)
			},
			problem: ProblemMalformedLine, firstBad: 6,
		},
		{
			name: "reformat a line with whitespace",
			tamper: func(ls [][]byte) [][]byte {
				ls[1] = bytes.Replace(ls[1], []byte(`,"prev"`), []byte(`, "prev"`), 1)
				return ls
			},
			problem: ProblemMalformedLine, firstBad: 1,
		},
		{
			name: "append a line from another log",
			tamper: func(ls [][]byte) [][]byte {
				return append(ls, ls[0])
			},
			problem: ProblemBadIndex, firstBad: n,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path, lines := writeSample(t, n)
			tampered := bytes.Join(tt.tamper(lines), nil)
			if err := os.WriteFile(path, tampered, 0o600); err != nil {
				t.Fatal(err)
			}
			rep, err := Verify(path)
			if !errors.Is(err, ErrCorrupt) {
				t.Errorf("Verify error = %v, want ErrCorrupt", err)
			}
			if errcode.Of(err) != errcode.LogCorrupt {
				t.Errorf("Verify error code = %q, want %q", errcode.Of(err), errcode.LogCorrupt)
			}
			if rep.Problem != tt.problem || rep.FirstBad != tt.firstBad || rep.Records != uint64(tt.firstBad) {
				t.Errorf("Verify = %+v, want problem %s at %d", rep, tt.problem, tt.firstBad)
			}
			if tt.problem == ProblemTruncated {
				return // Open recovers this one; see TestOpenRecoversTornFinalLine.
			}
			// Fail closed: Open refuses a damaged log and leaves it untouched.
			if l, err := Open(path); !errors.Is(err, ErrCorrupt) {
				if l != nil {
					l.Close()
				}
				t.Errorf("Open error = %v, want ErrCorrupt", err)
			}
			after, _ := os.ReadFile(path)
			if !bytes.Equal(after, tampered) {
				t.Error("Open modified a corrupt log")
			}
			if _, err := ReadJob(path, "job-0"); !errors.Is(err, ErrCorrupt) {
				t.Errorf("ReadJob error = %v, want ErrCorrupt", err)
			}
		})
	}
}

// editField changes the first hex digit of the named field on line i.
func editField(ls [][]byte, i int, field string) [][]byte {
	j := bytes.Index(ls[i], []byte(field)) + len(field)
	if ls[i][j] == '0' {
		ls[i][j] = '1'
	} else {
		ls[i][j] = '0'
	}
	return ls
}

func TestOpenRecoversTornFinalLine(t *testing.T) {
	const n = 10
	path, lines := writeSample(t, n)
	keep := bytes.Join(lines[:n-1], nil)
	torn := lines[n-1][:len(lines[n-1])-7]
	if err := os.WriteFile(path, append(append([]byte{}, keep...), torn...), 0o600); err != nil {
		t.Fatal(err)
	}
	if rep, _ := Verify(path); rep.Problem != ProblemTruncated || rep.FirstBad != n-1 {
		t.Fatalf("raw torn file: Verify = %+v, want truncated at %d", rep, n-1)
	}

	l, err := Open(path)
	if err != nil {
		t.Fatalf("Open torn log: %v", err)
	}
	if got := l.Size(); got != n {
		t.Errorf("Size after recovery = %d, want %d (%d kept + log_recovered)", got, n, n-1)
	}
	mustAppend(t, l, RecordEnvelope{Type: TypeGate, Job: "after"})
	l.Close()

	rep, err := Verify(path)
	if err != nil || rep.Records != n+1 {
		t.Fatalf("Verify after recovery = %+v, %v", rep, err)
	}
	rec, err := readRecord(path, n-1)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Type != TypeLogRecovered {
		t.Fatalf("entry %d type = %q, want %q", n-1, rec.Type, TypeLogRecovered)
	}
	data, ok := rec.Event.(*LogRecovered)
	if !ok || data.DroppedBytes != int64(len(torn)) {
		t.Errorf("log_recovered = %#v, want dropped_bytes %d", rec.Event, len(torn))
	}
	after := readLines(t, path)
	if !bytes.Equal(bytes.Join(after[:n-1], nil), keep) {
		t.Error("recovery changed the complete lines")
	}
}

func readRecord(path string, index int) (Record, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Record{}, err
	}
	lines := bytes.Split(b, []byte("\n"))
	var env envelope
	if err := json.Unmarshal(lines[index], &env); err != nil {
		return Record{}, err
	}
	return Entry{Index: uint64(index), Record: env.Record}.Decode()
}

// faultyFile fails the way a full or dying disk does.
type faultyFile struct {
	logFile
	writeErr  error
	shortBy   int
	syncErr   error
	writeSeen int
}

func (f *faultyFile) Write(p []byte) (int, error) {
	f.writeSeen++
	if f.writeErr != nil {
		n, _ := f.logFile.Write(p[:len(p)/2]) // a torn line, as a real failure may leave
		return n, f.writeErr
	}
	if f.shortBy > 0 {
		return f.logFile.Write(p[:len(p)-f.shortBy])
	}
	return f.logFile.Write(p)
}

func (f *faultyFile) Sync() error {
	if f.syncErr != nil {
		return f.syncErr
	}
	return f.logFile.Sync()
}

func TestAppendFailsClosedAfterWriteFailure(t *testing.T) {
	tests := []struct {
		name  string
		fault faultyFile
	}{
		{"write error", faultyFile{writeErr: errors.New("no space left on device")}},
		{"short write", faultyFile{shortBy: 3}},
		{"sync error", faultyFile{syncErr: errors.New("input/output error")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, path := openTemp(t)
			mustAppend(t, l, RecordEnvelope{Type: TypeJobSubmitted, Job: "j"})
			good := l.f
			fault := tt.fault
			fault.logFile = good
			l.f = &fault

			if _, err := l.appendRecord(context.Background(), RecordEnvelope{Type: TypeRelease, Job: "j"}, true); !errors.Is(err, ErrUnavailable) {
				t.Fatalf("Append during fault = %v, want ErrUnavailable", err)
			}
			// The disk recovers, but the Log stays poisoned: it never writes after a failure.
			l.f = good
			_, err := l.appendRecord(context.Background(), RecordEnvelope{Type: TypeRelease, Job: "j"}, true)
			if !errors.Is(err, ErrUnavailable) || errcode.Of(err) != errcode.ProvenanceFailed {
				t.Fatalf("Append after fault = %v (code %s), want ErrUnavailable", err, errcode.Of(err))
			}
			if l.Size() != 1 {
				t.Errorf("Size = %d after failed appends, want 1", l.Size())
			}
			l.Close()

			// Reopening verifies; a torn tail is recovered, a complete-but-unsynced line kept.
			l2, err := Open(path)
			if err != nil {
				t.Fatalf("reopen after fault: %v", err)
			}
			l2.Close()
			if _, err := Verify(path); err != nil {
				t.Errorf("Verify after reopen: %v", err)
			}
		})
	}
}

func TestAppendRefusesBadRecordWithoutPoisoning(t *testing.T) {
	l, _ := openTemp(t)
	if _, err := l.appendRecord(context.Background(), RecordEnvelope{Job: "j"}, true); !errors.Is(err, ErrInvalidRecord) {
		t.Errorf("record without type: %v, want ErrInvalidRecord", err)
	}
	if _, err := l.appendRecord(context.Background(), RecordEnvelope{Type: TypePlan, Data: make(chan int)}, true); !errors.Is(err, ErrInvalidRecord) {
		t.Errorf("unmarshalable data: %v, want ErrInvalidRecord", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := l.appendRecord(ctx, RecordEnvelope{Type: TypePlan}, true); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled ctx: %v, want context.Canceled", err)
	}
	mustAppend(t, l, RecordEnvelope{Type: TypePlan})
	if l.Size() != 1 {
		t.Errorf("Size = %d, want 1", l.Size())
	}
}

func TestAppendAfterCloseFails(t *testing.T) {
	l, _ := openTemp(t)
	l.Close()
	if _, err := l.appendRecord(context.Background(), RecordEnvelope{Type: TypePlan}, true); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Append after Close = %v, want ErrUnavailable", err)
	}
	if err := l.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
}

func TestOpenRefusesSecondWriter(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("flock is unix-only")
	}
	_, path := openTemp(t)
	if l, err := Open(path); !errors.Is(err, ErrLocked) {
		if l != nil {
			l.Close()
		}
		t.Fatalf("second Open = %v, want ErrLocked", err)
	}
}

func TestCanonical(t *testing.T) {
	type inner struct {
		Z int    `json:"z"`
		A string `json:"a"`
	}
	type outer struct {
		Name  string         `json:"name"`
		Inner inner          `json:"inner"`
		Map   map[string]any `json:"map"`
		Skip  string         `json:"skip,omitempty"`
	}
	tests := []struct {
		name string
		in   any
		want string
	}{
		{"sorted keys", map[string]int{"b": 2, "a": 1, "c": 3}, `{"a":1,"b":2,"c":3}`},
		{"nested maps", map[string]any{"z": map[string]any{"y": 1, "x": []any{map[string]int{"q": 1, "p": 2}}}, "a": nil},
			`{"a":null,"z":{"x":[{"p":2,"q":1}],"y":1}}`},
		{"struct fields sorted", outer{Name: "n", Inner: inner{Z: 1, A: "a"}, Map: map[string]any{"k": true}},
			`{"inner":{"a":"a","z":1},"map":{"k":true},"name":"n"}`},
		{"no html escaping", map[string]string{"s": "<a & b>"}, `{"s":"<a & b>"}`},
		{"raw json reformatted", json.RawMessage(` { "b" : [1, 2.50, 1e3] , "a" : "x" } `), `{"a":"x","b":[1,2.50,1e3]}`},
		{"large integers kept exact", json.RawMessage(`{"n":12345678901234567890}`), `{"n":12345678901234567890}`},
		{"floats as Go writes them", map[string]float64{"f": 0.1, "g": 1e21}, `{"f":0.1,"g":1e+21}`},
		{"unicode kept", map[string]string{"区": "朝阳"}, `{"区":"朝阳"}`},
		{"scalar", "plain", `"plain"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Canonical(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("Canonical = %s, want %s", got, tt.want)
			}
			// Stable: canonical of canonical is itself, and repeated calls agree.
			again, err := Canonical(json.RawMessage(got))
			if err != nil || !bytes.Equal(again, got) {
				t.Errorf("Canonical not idempotent: %s -> %s (%v)", got, again, err)
			}
			for i := 0; i < 20; i++ {
				if b, _ := Canonical(tt.in); !bytes.Equal(b, got) {
					t.Fatalf("Canonical unstable: %s then %s", got, b)
				}
			}
		})
	}
	// A struct and the equivalent map have the same canonical form.
	a, _ := Canonical(inner{Z: 1, A: "a"})
	b, _ := Canonical(map[string]any{"a": "a", "z": 1})
	if !bytes.Equal(a, b) {
		t.Errorf("struct %s != map %s", a, b)
	}
	if _, err := Canonical(json.RawMessage(`{"a":1} {"b":2}`)); err == nil {
		t.Error("Canonical accepted two values")
	}
}

func TestRecordWithDigestDoesNotContainDigestedInput(t *testing.T) {
	key, err := LoadOrCreateAuditKey(filepath.Join(t.TempDir(), "audit.key"))
	if err != nil {
		t.Fatal(err)
	}
	// A pre-noise aggregate: exactly what must never reach the log in the clear. Its values are
	// long or not hex, so that none can turn up by chance inside the log's hex digests (a
	// four-digit count did, about once in two hundred runs).
	secret := []byte(`{"district":"Xicheng","count":424242424242,"sum":98765.43219876}`)
	digest := key.Digest(secret)

	l, path := openTemp(t)
	mustAppend(t, l, RecordEnvelope{Type: TypeExecution, Job: "j", Data: &Execution{PreNoiseDigest: digest}})
	l.Close()

	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, needle := range []string{string(secret), "424242424242", "98765.43219876", "Xicheng"} {
		if bytes.Contains(raw, []byte(needle)) {
			t.Errorf("log contains digested input %q", needle)
		}
	}
	if !bytes.Contains(raw, []byte(digest)) {
		t.Errorf("log lacks the digest %s", digest)
	}
	if !strings.HasPrefix(digest, DigestPrefix) || len(digest) != len(DigestPrefix)+64 {
		t.Errorf("digest %q has the wrong form", digest)
	}
	if key.Digest(secret) != digest {
		t.Error("Digest is not deterministic")
	}
	other := AuditKey(bytes.Repeat([]byte{7}, AuditKeySize))
	if other.Digest(secret) == digest {
		t.Error("Digest does not depend on the key")
	}
	if s := fmt.Sprint(key) + fmt.Sprintf("%#v", key); strings.Contains(s, fmt.Sprintf("%x", []byte(key))) {
		t.Error("formatting an AuditKey printed the key")
	}
}

func TestLoadOrCreateAuditKey(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.key")
	k1, err := LoadOrCreateAuditKey(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(k1) != AuditKeySize {
		t.Fatalf("key length %d", len(k1))
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" && st.Mode().Perm() != 0o600 {
		t.Errorf("key mode %v, want 0600", st.Mode().Perm())
	}
	k2, err := LoadOrCreateAuditKey(path)
	if err != nil || !bytes.Equal(k1, k2) {
		t.Fatalf("reload gave a different key (%v)", err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("temporary files left behind: %v", entries)
	}

	short := filepath.Join(dir, "short.key")
	os.WriteFile(short, []byte("too short"), 0o600)
	if _, err := LoadOrCreateAuditKey(short); !errors.Is(err, ErrBadAuditKey) {
		t.Errorf("short key: %v, want ErrBadAuditKey", err)
	}
	if runtime.GOOS != "windows" {
		open := filepath.Join(dir, "open.key")
		os.WriteFile(open, bytes.Repeat([]byte{1}, AuditKeySize), 0o644)
		os.Chmod(open, 0o644)
		if _, err := LoadOrCreateAuditKey(open); !errors.Is(err, ErrBadAuditKey) {
			t.Errorf("world-readable key: %v, want ErrBadAuditKey", err)
		}
	}
}

func TestLoadOrCreateAuditKeyConcurrentCreatorsAgree(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.key")
	keys := make([]AuditKey, 16)
	var wg sync.WaitGroup
	for i := range keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k, err := LoadOrCreateAuditKey(path)
			if err != nil {
				t.Error(err)
			}
			keys[i] = k
		}()
	}
	wg.Wait()
	for i := range keys {
		if !bytes.Equal(keys[i], keys[0]) {
			t.Fatalf("creator %d got a different key", i)
		}
	}
}

// crashChildEnv names the log a re-executed test binary appends to until it is killed;
// crashKeyEnv the platform key it signs checkpoints with.
const (
	crashChildEnv = "CLEANROOM_PROVENANCE_CRASH_CHILD_LOG"
	crashKeyEnv   = "CLEANROOM_PROVENANCE_CRASH_CHILD_KEY"
)

// TestCrashChildProcess is the child half of TestAppendSurvivesSIGKILL; it does nothing when run
// normally.
func TestCrashChildProcess(t *testing.T) {
	path := os.Getenv(crashChildEnv)
	if path == "" {
		t.Skip("only runs as the child of TestAppendSurvivesSIGKILL")
	}
	key, err := LoadOrCreatePlatformKey(os.Getenv(crashKeyEnv))
	if err != nil {
		fmt.Fprintln(os.Stderr, "child key:", err)
		os.Exit(2)
	}
	// A checkpoint every 3 appends: a kill lands between line, tree and checkpoint writes alike.
	l, err := Open(path, WithSigner(key), WithCheckpointEvery(3))
	if err != nil {
		fmt.Fprintln(os.Stderr, "child open:", err)
		os.Exit(3)
	}
	pad := strings.Repeat("p", 4096) // large lines widen the window for a torn write
	for i := 0; ; i++ {
		if _, err := l.appendRecord(context.Background(), RecordEnvelope{Type: TypeExecution, Job: "crash", Data: &Execution{DurationMS: int64(i), Domain: pad}}, true); err != nil {
			fmt.Fprintln(os.Stderr, "child append:", err)
			os.Exit(4)
		}
	}
}

func TestAppendSurvivesSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a child process")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "provenance.log")
	keyPath := filepath.Join(dir, "platform.key")
	key, err := LoadOrCreatePlatformKey(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	// The kill lands anywhere among a record's line, tree and checkpoint writes. Linux seldom
	// leaves a torn line on SIGKILL (the page-cache write is short beside the fsyncs), so in the
	// "tear" rounds the harness also cuts the last line in half, as a kill mid-write would leave
	// it — when no checkpoint covers it yet, as none can cover a line whose write never finished.
	for round, tear := range []bool{false, false, true, true, false} {
		before := countLines(t, path)
		var stderr bytes.Buffer
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChildProcess$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+path, crashKeyEnv+"="+keyPath)
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(30 * time.Second)
		for countLines(t, path) < before+50+round { // vary the moment of the kill
			if time.Now().After(deadline) {
				cmd.Process.Kill()
				cmd.Wait()
				t.Fatalf("child made no progress; stderr: %s", stderr.String())
			}
			time.Sleep(time.Millisecond)
		}
		if err := cmd.Process.Kill(); err != nil { // SIGKILL on unix
			t.Fatal(err)
		}
		cmd.Wait()
		if tear {
			tearLastLine(t, path)
		}
		killedAt := countLines(t, path) // complete lines
		raw, _ := os.ReadFile(path)
		torn := len(raw) > 0 && raw[len(raw)-1] != '\n' // by the kill itself, now and then

		// As the child left it: every complete line verifies, a torn last line at most, the tree
		// file a correct prefix at worst, and every checkpoint valid.
		rep, err := VerifyAll(path, key.Verifier())
		if rep.Problem != "" && rep.Problem != ProblemTruncated || torn && rep.Problem != ProblemTruncated {
			t.Fatalf("round %d: VerifyAll after SIGKILL = %+v, %v", round, rep, err)
		}
		if rep.Records != uint64(killedAt) || rep.Checkpoints == 0 && killedAt >= 3 {
			t.Errorf("round %d: VerifyAll = %+v, want %d records and some checkpoints", round, rep, killedAt)
		}
		t.Logf("round %d: killed at %d lines: problem %q, tree file %s, %d checkpoints", round, killedAt, rep.Problem, rep.TreeFile, rep.Checkpoints)
		// (Long only when the harness tore a line whose tree hashes the child had written.)
		if rep.TreeFile != TreeFileOK && rep.TreeFile != TreeFileShort && !(tear && rep.TreeFile == TreeFileLong) {
			t.Errorf("round %d: tree file %q after SIGKILL, want ok or short", round, rep.TreeFile)
		}

		l, err := Open(path, WithSigner(key))
		if err != nil {
			t.Fatalf("round %d: Open after SIGKILL: %v", round, err)
		}
		if l.Size() < uint64(killedAt) {
			t.Errorf("round %d: Size %d < %d complete lines at kill", round, l.Size(), killedAt)
		}
		l.Close()
		rep, err = VerifyAll(path, key.Verifier())
		if err != nil || rep.TreeFile != TreeFileOK || rep.Records < uint64(killedAt) {
			t.Fatalf("round %d: VerifyAll after recovery = %+v, %v", round, rep, err)
		}
		if _, err := Verify(path); err != nil {
			t.Fatalf("round %d: Verify after recovery: %v", round, err)
		}
	}
}

// tearLastLine cuts the log's last line in half, unless the kill already tore it or a
// checkpoint covers it.
func tearLastLine(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) == 0 || b[len(b)-1] != '\n' {
		return
	}
	lines := fileLines(t, path)
	if len(fileLines(t, path+checkpointsSuffix)) > 0 && lastCheckpointSize(t, path) >= uint64(len(lines)) {
		return
	}
	last := lines[len(lines)-1]
	if err := os.WriteFile(path, b[:len(b)-len(last)/2], 0o600); err != nil {
		t.Fatal(err)
	}
}

func countLines(t *testing.T, path string) int {
	t.Helper()
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Count(b, []byte("\n"))
}
