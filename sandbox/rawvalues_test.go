package sandbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/c1b99f93/cleanroom/catalog"
	"github.com/c1b99f93/cleanroom/connectors"
	"github.com/c1b99f93/cleanroom/errcode"
	"github.com/c1b99f93/cleanroom/rawset"
)

// testRawKey is the raw-value key of the test workers.
var testRawKey = rawset.Key("sandbox test raw-value key of 32+ bytes")

// firstValues reads the first row of a testdata source whose number column (if any) has a
// canonical form long enough to be hashed: the strings of the named text columns and that
// number.
func firstValues(t *testing.T, spec *catalog.Spec, text []string, number string) ([]string, float64) {
	t.Helper()
	src, err := connectors.Open(context.Background(), string(spec.Source.Kind), spec.Source.Path, connectors.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Release()
	col := func(b arrow.RecordBatch, name string) arrow.Array {
		idx := b.Schema().FieldIndices(name)
		if len(idx) != 1 {
			t.Fatalf("%s has no column %s", spec.Name, name)
		}
		return b.Column(idx[0])
	}
	for src.Next() {
		b := src.RecordBatch()
		for row := range int(b.NumRows()) {
			var f float64
			if number != "" {
				f = col(b, number).(*array.Float64).Value(row)
				if len(rawset.CanonicalNumber(f)) < rawset.MinRawLength {
					continue
				}
			}
			var vals []string
			for _, name := range text {
				vals = append(vals, strings.Clone(col(b, name).ValueStr(row)))
			}
			return vals, f
		}
	}
	t.Fatalf("%s has no row with a hashable %s", spec.Name, number)
	return nil, 0
}

// Registering the committed testdata builds a set that holds the keyed hashes of identifier
// and sensitive values (text and numbers) and of nothing else; neither the set file nor any
// byte the worker sends holds a raw value.
func TestRegisterBuildsTheRawValueSet(t *testing.T) {
	k, err := rawset.NewKeyer(testRawKey)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		dataset string
		hashed  []string // identifier or sensitive text columns
		number  string   // a numeric sensitive column, or ""
		notHash string   // a quasi-identifier column: its values are not in the set
	}{
		{"residents", []string{"person_id", "name", "mobile"}, "", "birth_date"},
		{"medical_visits", []string{"visit_id", "person_id"}, "cost", "visit_date"}, // diagnosis codes are too short to hash
	}
	for _, c := range cases {
		t.Run(c.dataset, func(t *testing.T) {
			spec, err := catalog.LoadFile("../testdata/datasets/" + c.dataset + ".yaml")
			if err != nil {
				t.Fatal(err)
			}
			tap := &lockedBuffer{}
			w := startWorker(t, tap)
			snap, err := register(context.Background(), t, w, spec)
			if err != nil {
				t.Fatal(err)
			}
			info := snap.RawSet
			if info == nil {
				t.Fatal("registration returned no raw-value set")
			}
			set, digest, err := w.ReadRawSet(snap.Digest)
			if err != nil {
				t.Fatal(err)
			}
			if digest != info.Digest || set.Len() != info.Entries || info.Entries == 0 ||
				info.KeyID != fmt.Sprintf("%016x", k.ID()) || set.KeyID() != k.ID() {
				t.Fatalf("set file %s with %d entries, key %x; response %+v", digest, set.Len(), set.KeyID(), info)
			}

			vals, number := firstValues(t, spec, append(c.hashed, c.notHash), c.number)
			raw := slices.Clip(vals[:len(c.hashed)])
			for i, v := range raw {
				if !set.Contains(k.Hash(rawset.CanonicalString(v))) {
					t.Errorf("the set lacks the %s value", c.hashed[i])
				}
			}
			if c.number != "" {
				n := rawset.CanonicalNumber(number)
				if !set.Contains(k.Hash(n)) {
					t.Errorf("the set lacks the %s value as a number", c.number)
				}
				raw = append(raw, n)
			}
			for _, absent := range []string{vals[len(c.hashed)], "NOT-A-VALUE-OF-THE-DATA-0042"} {
				if set.Contains(k.Hash(rawset.CanonicalString(absent))) {
					t.Errorf("the set holds %q, which is not an identifier or sensitive value", absent)
				}
			}

			file, err := os.ReadFile(rawSetPath(w.dir, snap.Digest))
			if err != nil {
				t.Fatal(err)
			}
			for i, v := range raw {
				for where, b := range map[string][]byte{"the set file": file, "the worker's responses": tap.Bytes()} {
					if bytes.Contains(b, []byte(v)) || bytes.Contains(b, []byte(rawset.CanonicalString(v))) {
						t.Errorf("%s holds raw value %d", where, i)
					}
				}
			}
		})
	}
}

// The rawset op rebuilds a missing or damaged set from the snapshot, byte for byte the set
// registration built; ReadRawSet tells the two cases apart.
func TestRawSetOpRebuildsAMissingOrDamagedSet(t *testing.T) {
	ctx := context.Background()
	w := startWorker(t, nil)
	path, _ := visitsCSV(t, t.TempDir(), false)
	spec := visitsSpec(path)
	snap, err := register(ctx, t, w, spec)
	if err != nil {
		t.Fatal(err)
	}
	file := rawSetPath(w.dir, snap.Digest)
	cases := []struct {
		name   string
		damage func() error
		want   error
	}{
		{"missing", func() error { return os.Remove(file) }, fs.ErrNotExist},
		{"damaged", func() error {
			b, err := os.ReadFile(file)
			if err != nil {
				return err
			}
			b[len(b)/2] ^= 0x10
			return os.WriteFile(file, b, 0o600)
		}, rawset.ErrHashSetFormat},
		{"truncated", func() error { return os.Truncate(file, 20) }, rawset.ErrHashSetFormat},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := c.damage(); err != nil {
				t.Fatal(err)
			}
			if _, _, err := w.ReadRawSet(snap.Digest); !errors.Is(err, c.want) {
				t.Fatalf("ReadRawSet: %v, want %v", err, c.want)
			}
			info, err := w.BuildRawSet(ctx, spec, snap.Digest)
			if err != nil {
				t.Fatal(err)
			}
			if *info != *snap.RawSet {
				t.Fatalf("rebuilt %+v, registered %+v", info, snap.RawSet)
			}
			if _, digest, err := w.ReadRawSet(snap.Digest); err != nil || digest != info.Digest {
				t.Fatalf("after the rebuild: %s, %v", digest, err)
			}
		})
	}
	if _, err := w.BuildRawSet(ctx, spec, "sha256:"+strings.Repeat("0", 64)); errcode.Of(err) != errcode.SandboxFailed {
		t.Fatalf("a set of an unknown snapshot: %v, want sandbox_failed", err)
	}
	other := visitsSpec(path)
	other.Columns["nickname"] = catalog.Column{Tags: []catalog.Tag{catalog.TagIdentifier}}
	if _, err := w.BuildRawSet(ctx, other, snap.Digest); errcode.Of(err) != errcode.InvalidSpec {
		t.Fatalf("a column the snapshot lacks: %v, want invalid_spec", err)
	}
}

// The key crosses the pipe in register and rawset requests only; their printed forms do not
// show it.
func TestRequestsPrintTheKeyRedacted(t *testing.T) {
	args := &rawValuesArgs{Key: testRawKey, Columns: []string{"person_id"}}
	reqs := []request{
		{Op: "register", Register: &registerArgs{Kind: "csv", RawValues: args}},
		{Op: "rawset", Digest: "sha256:00", RawValues: args},
	}
	for _, r := range reqs {
		printed := fmt.Sprintf("%v %+v %#v %+v %+v", r, r, r, r.RawValues, args)
		if r.Register != nil {
			printed += fmt.Sprintf("%+v %#v", *r.Register, *r.Register)
		}
		if strings.Contains(printed, "test raw-value key") || strings.Contains(printed, fmt.Sprint([]byte(testRawKey[:4]))) {
			t.Fatalf("%s request prints the key: %s", r.Op, printed)
		}
	}
}

// A worker that holds few hashes in memory spills its raw-value set build into sorted runs and
// still writes the same set, byte for byte (the file's digest), as one that holds them all,
// and leaves no run file in its temporary directory.
func TestRawSetBuildSpillsToTheSameSet(t *testing.T) {
	spec, err := catalog.LoadFile("../testdata/datasets/medical_visits.yaml")
	if err != nil {
		t.Fatal(err)
	}
	whole := startWorker(t, nil)
	want, err := register(context.Background(), t, whole, spec)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	spilling := startWorkerWith(t, nil, WorkerConfig{Dir: dir, Domain: "test", DB: DBLimits{MemoryLimit: "1GB", Threads: 2}, RawSetHashes: 1024})
	got, err := register(context.Background(), t, spilling, spec)
	if err != nil {
		t.Fatal(err)
	}
	if want.RawSet.Entries < 20*1024 || *got.RawSet != *want.RawSet {
		t.Fatalf("spilling worker's set %+v; whole %+v (needs over 20 runs' worth of entries)", got.RawSet, want.RawSet)
	}
	left, err := os.ReadDir(filepath.Join(dir, "tmp"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range left {
		if strings.HasPrefix(e.Name(), "rawset-run-") {
			t.Fatalf("run file %s left behind", e.Name())
		}
	}
}

// The set is the keyed hashes of every distinct value of the columns, whatever the number of
// hashing goroutines and however often the buffer spills: the file is byte for byte what
// rawset builds in memory from the values read back out of the snapshot.
func TestRawSetIsEveryValuesHashesWhateverTheWorkers(t *testing.T) {
	ctx := context.Background()
	spec, err := catalog.LoadFile("../testdata/datasets/medical_visits.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cols := RawValueColumns(spec)
	var want []byte
	var entries int
	for _, tc := range []struct{ workers, hashes int }{{1, defaultRawSetHashes}, {2, defaultRawSetHashes}, {5, defaultRawSetHashes}, {3, 1024}} {
		w := inProcessWorker(t, t.TempDir())
		w.tmp, w.rawSetHashes, w.shards = t.TempDir(), tc.hashes, tc.workers
		snap, err := w.snapshot(ctx, &registerArgs{Kind: string(spec.Source.Kind), src: openSource(t, spec.Source.Path), Name: filepath.Base(spec.Source.Path), PrivacyUnit: spec.PrivacyUnit, Columns: spec.ColumnNames()})
		if err != nil {
			t.Fatal(err)
		}
		info, err := w.buildRawSet(ctx, snap, &rawValuesArgs{Key: testRawKey, Columns: cols})
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(rawSetPath(w.dir, snap.Digest))
		if err != nil {
			t.Fatal(err)
		}
		if want == nil {
			var values []string
			for _, c := range cols {
				rows, err := w.db.QueryContext(ctx, fmt.Sprintf("SELECT CAST(%s AS VARCHAR) FROM %s WHERE %s IS NOT NULL", quoteIdent(c), snap.table, quoteIdent(c)))
				if err != nil {
					t.Fatal(err)
				}
				for rows.Next() {
					var v string
					if err := rows.Scan(&v); err != nil {
						t.Fatal(err)
					}
					values = append(values, v)
				}
				if err := errors.Join(rows.Err(), rows.Close()); err != nil {
					t.Fatal(err)
				}
			}
			set, err := rawset.BuildHashSet(testRawKey, slices.Values(values))
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			if _, err := set.WriteTo(&buf); err != nil {
				t.Fatal(err)
			}
			want, entries = buf.Bytes(), set.Len()
			if entries < 50_000 {
				t.Fatalf("only %d entries: the test needs many batches", set.Len())
			}
		}
		if !bytes.Equal(got, want) || info.Entries != entries {
			t.Fatalf("%d workers, buffer %d: set file of %d bytes (%d entries) differs from the in-memory build of %d bytes", tc.workers, tc.hashes, len(got), info.Entries, len(want))
		}
	}
}
