package engine_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/c1b99f93/cleanroom/catalog"
	"github.com/c1b99f93/cleanroom/engine"
	"github.com/c1b99f93/cleanroom/engine/plan"
	"github.com/c1b99f93/cleanroom/errcode"
	"github.com/c1b99f93/cleanroom/sandbox"
)

// openAt opens an engine over dataDir (which a test reopens); the caller closes it.
func openAt(t *testing.T, dataDir, policyDir string) (*engine.Engine, error) {
	t.Helper()
	return engine.Open(context.Background(), engine.Config{DataDir: dataDir, PolicyDir: policyDir, WorkerDB: sandbox.DBLimits{MemoryLimit: "2GB"}})
}

// The raw-value key is created on first Open (32 bytes, 0600 in a 0700 directory), read
// again by later Opens, and a damaged key file is refused rather than replaced.
func TestRawValueKeyIsCreatedPrivateAndReused(t *testing.T) {
	dir, pol := t.TempDir(), testPolicy(t)
	path := filepath.Join(dir, "keys", "rawvalue.key")
	var first []byte
	for i := range 2 {
		e, err := openAt(t, dir, pol)
		if err != nil {
			t.Fatal(err)
		}
		e.Close()
		key, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		st, _ := os.Stat(path)
		kd, _ := os.Stat(filepath.Dir(path))
		if len(key) != 32 || st.Mode().Perm() != 0o600 || kd.Mode().Perm() != 0o700 {
			t.Fatalf("open %d: key of %d bytes, mode %v, directory %v", i, len(key), st.Mode().Perm(), kd.Mode().Perm())
		}
		if first == nil {
			first = key
		} else if string(key) != string(first) {
			t.Fatal("a second Open replaced the key")
		}
	}
	cases := []struct {
		name string
		data []byte
		perm os.FileMode
	}{
		{"short", first[:31], 0o600},
		{"long", append(slices.Clone(first), 0), 0o600},
		{"readable by others", first, 0o644},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, c.data, c.perm); err != nil {
				t.Fatal(err)
			}
			e, err := openAt(t, dir, pol)
			if err == nil {
				e.Close()
				t.Fatal("Open accepted a damaged raw-value key")
			}
			if !errors.Is(err, engine.ErrBadRawValueKey) || errcode.Of(err) != errcode.BadRawValueKey {
				t.Fatalf("err = %v, want %s", err, errcode.BadRawValueKey)
			}
			if strings.Contains(err.Error(), string(first[:8])) {
				t.Fatal("the error quotes the key")
			}
		})
	}
}

// setFile is a registered dataset's raw-value set file in its domain's worker directory.
func setFile(dir string, d *engine.Dataset) string {
	return filepath.Join(dir, "domains", d.Spec.Domain, "snapshots", strings.TrimPrefix(d.Snapshot.Digest, "sha256:")+".rawset")
}

// recordsOf returns the data of the provenance records of one type.
func recordsOf(t *testing.T, e *engine.Engine, typ string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, r := range records(t, e) {
		if r["type"] == typ {
			out = append(out, r["data"].(map[string]any))
		}
	}
	return out
}

// A data directory from before raw-value sets (a snapshot, no set file, a catalog entry
// without the set) keeps working: the first job has the worker build the set from the
// snapshot. A damaged set file is rebuilt the same way. Both are recorded.
func TestRawSetIsRebuiltWhenMissingOrDamaged(t *testing.T) {
	dir, pol := t.TempDir(), testPolicy(t)
	e, err := openAt(t, dir, pol)
	if err != nil {
		t.Fatal(err)
	}
	vspec := visits(t, "v", 200, false)
	d, err := e.RegisterDataset(context.Background(), vspec, openSource(t, vspec.Source.Path))
	if err != nil {
		t.Fatal(err)
	}
	e.Close()
	reg := d.Snapshot.RawSet
	if reg == nil || reg.Entries == 0 {
		t.Fatalf("registration built no set: %+v", reg)
	}
	cases := []struct {
		reason string
		damage func(t *testing.T)
	}{
		{"missing", func(t *testing.T) {
			if err := os.Remove(setFile(dir, d)); err != nil {
				t.Fatal(err)
			}
			// The catalog entry of a dataset registered before sets existed has none.
			entry := filepath.Join(dir, "catalog", "v.json")
			b, err := os.ReadFile(entry)
			if err != nil {
				t.Fatal(err)
			}
			var m map[string]map[string]any
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatal(err)
			}
			delete(m["snapshot"], "rawset")
			if b, err = json.Marshal(m); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(entry, b, 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		{"damaged", func(t *testing.T) {
			if err := os.Truncate(setFile(dir, d), 40); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for i, c := range cases {
		t.Run(c.reason, func(t *testing.T) {
			c.damage(t)
			e, err := openAt(t, dir, pol)
			if err != nil {
				t.Fatal(err)
			}
			defer e.Close()
			g := fmt.Sprintf("g%d", i)
			grant(t, e, g, 10)
			if _, err := submit(e, g, "SELECT district, COUNT(*) AS n FROM v GROUP BY district", plan.Options{Epsilon: 1}); err != nil {
				t.Fatal(err)
			}
			rebuilt := recordsOf(t, e, "rawset_rebuilt")
			if len(rebuilt) != i+1 || rebuilt[i]["reason"] != c.reason || rebuilt[i]["snapshot"] != d.Snapshot.Digest {
				t.Fatalf("rebuild records %v, want the last for %s", rebuilt, c.reason)
			}
			if got := rebuilt[i]["rawset"].(map[string]any); got["digest"] != reg.Digest || got["key_id"] != reg.KeyID {
				t.Fatalf("rebuilt set %v, registered %+v", got, reg)
			}
			if now, _ := e.Dataset("v"); now.Snapshot.RawSet == nil || *now.Snapshot.RawSet != *reg {
				t.Fatalf("catalog entry after the rebuild: %+v", now.Snapshot.RawSet)
			}
		})
	}
}

// wardsCSV writes a dataset whose ward column (a quasi-identifier without a public domain, so
// its values leave as keys through DP partition selection) wrongly holds a patient's name for
// half of the rows, a name that is also a raw value of the sensitive column contact. (A value
// of a declared public domain is not looked up: it leaves whatever the data holds.)
func wardsCSV(t *testing.T, leaked string) *catalog.Spec {
	t.Helper()
	var b strings.Builder
	b.WriteString("person_id,ward,contact,cost\n")
	for i := range 400 {
		contact := fmt.Sprintf("Contact %04d", i)
		if i == 7 {
			contact = leaked
		}
		fmt.Fprintf(&b, "P%05d,%s,%s,%d\n", i, []string{"North", leaked}[i%2], contact, 100+i%50)
	}
	path := filepath.Join(t.TempDir(), "wards.csv")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return &catalog.Spec{Name: "wards", Provider: "health-commission", Grade: catalog.GradeL2, PrivacyUnit: "person_id",
		Source: catalog.Source{Kind: catalog.SourceCSV, Path: path}, Budget: catalog.Budget{Epsilon: 100, Delta: 1e-3},
		Columns: map[string]catalog.Column{
			"person_id": {Tags: []catalog.Tag{catalog.TagIdentifier}},
			"ward":      {Tags: []catalog.Tag{catalog.TagQuasiIdentifier}},
			"contact":   {Tags: []catalog.Tag{catalog.TagSensitive}},
			"cost":      {Tags: []catalog.Tag{catalog.TagSensitive}, Bounds: []float64{0, 1000}},
		}}
}

// An output holding a raw value of a sensitive column is denied with raw_value_in_output;
// neither the refusal nor the reviewer record quotes it. Ordinary jobs over the testdata are
// released without the finding.
func TestRawValueInOutputIsDenied(t *testing.T) {
	const leaked = "Zhang Sanfeng"
	e := openEngine(t)
	register(t, e, wardsCSV(t, leaked))
	for _, name := range []string{"medical_visits", "residents"} {
		register(t, e, loadDataset(t, name))
	}
	grant(t, e, "g", 100)
	cases := []struct {
		name   string
		sql    string
		denied bool
	}{
		{"leak from the grouped dataset", "SELECT ward, COUNT(*) AS n FROM wards GROUP BY ward", true},
		{"visits by district", "SELECT district, COUNT(*) AS n FROM medical_visits GROUP BY district", false},
		{"residents by age band", "SELECT age_band, COUNT(*) AS n FROM residents GROUP BY age_band", false},
		{"cost by district", "SELECT district, SUM(cost) AS total FROM medical_visits GROUP BY district", false},
		{"joined datasets by income band", "SELECT r.income_band, COUNT(*) AS n FROM medical_visits v JOIN residents r ON v.person_id = r.person_id GROUP BY r.income_band", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := submitReviewed(e, "g", c.sql, plan.Options{Epsilon: 1})
			if c.denied != (errcode.Of(err) == errcode.EgressDenied) || !c.denied && err != nil {
				t.Fatalf("err = %v, want denied %v", err, c.denied)
			}
			if err != nil && strings.Contains(strings.ToUpper(err.Error()), strings.ToUpper(leaked)) {
				t.Fatal("the refusal quotes the raw value")
			}
			revs := recordsOf(t, e, "reviewer")
			last, _ := json.Marshal(revs[len(revs)-1])
			if got := strings.Contains(string(last), `"code":"raw_value_in_output"`); got != c.denied {
				t.Fatalf("reviewer record %s: raw_value_in_output %v, want %v", last, got, c.denied)
			}
			if strings.Contains(strings.ToUpper(string(last)), strings.ToUpper(leaked)) {
				t.Fatal("the reviewer record quotes the raw value")
			}
		})
	}
	reg := recordsOf(t, e, "dataset_registered")
	for _, r := range reg {
		set, _ := r["rawset"].(map[string]any)
		if set == nil || !strings.HasPrefix(fmt.Sprint(set["digest"]), "sha256:") || set["entries"].(float64) < 1 || len(fmt.Sprint(set["key_id"])) != 16 {
			t.Fatalf("registration record of %v lacks its set: %v", r["name"], set)
		}
	}
}
