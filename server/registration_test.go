package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/c1b99f93/cleanroom/engine/provenance"
	"github.com/c1b99f93/cleanroom/errcode"
	"github.com/c1b99f93/cleanroom/sandbox"
	"github.com/c1b99f93/cleanroom/server"
	"github.com/c1b99f93/cleanroom/server/api"
)

// Issue 13, findings 4 and 5: a provider registers only data from its own organisation's
// import root, opened without following symbolic links, and the same data is registered once.
// The organisations of the test principals: hospital-a is of health-commission, psb-1 of
// public-security-bureau.

// startWithRoots runs a server whose providers register from roots (organisation → folder).
func startWithRoots(t *testing.T, roots map[string]string, edits ...func(*server.Config)) *platform {
	t.Helper()
	ps, err := server.ParsePrincipals([]byte(principalsYAML))
	if err != nil {
		t.Fatal(err)
	}
	dataDir := t.TempDir()
	cfg := server.Config{DataDir: dataDir, Principals: ps, ImportRoots: roots,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), WorkerDB: sandbox.DBLimits{MemoryLimit: "1GB"}}
	for _, edit := range edits {
		edit(&cfg)
	}
	srv, err := server.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return serveOn(t, srv, dataDir)
}

// orgRoots makes an import root per organisation of the test providers under a fresh folder.
func orgRoots(t *testing.T) (base string, roots map[string]string) {
	t.Helper()
	base = t.TempDir()
	roots = map[string]string{}
	for _, org := range []string{"health-commission", "public-security-bureau"} {
		roots[org] = filepath.Join(base, org)
		if err := os.Mkdir(roots[org], 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return base, roots
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// residentsAs is the committed resident register's spec, registered as name by provider at
// grade with a budget of epsilon, its source at path.
func residentsAs(t *testing.T, name, provider, grade string, epsilon float64, path string) map[string]any {
	t.Helper()
	spec := specJSON(t, "residents")
	spec["name"], spec["provider"], spec["grade"] = name, provider, grade
	spec["budget"] = map[string]any{"epsilon": epsilon, "delta": 0}
	spec["source"] = map[string]any{"kind": "parquet", "path": path}
	return spec
}

// csvSpec is a small private dataset of person_id and district from a CSV file.
func csvSpec(name, provider, path string) map[string]any {
	return map[string]any{"name": name, "provider": provider, "grade": "L2", "privacy_unit": "person_id",
		"source": map[string]any{"kind": "csv", "path": path}, "budget": map[string]any{"epsilon": 1, "delta": 0},
		"columns": map[string]any{
			"person_id": map[string]any{"tags": []string{"identifier"}},
			"district":  map[string]any{"tags": []string{"quasi_identifier"}, "domain": []string{"A", "B"}},
		}}
}

// writeCSV writes a CSV of n persons (ids from first on), rows in a random order when shuffle.
func writeCSV(t *testing.T, path string, first, n int, shuffle bool) {
	t.Helper()
	rows := make([]string, n)
	for i := range rows {
		rows[i] = fmt.Sprintf("P%06d,%s", first+i, []string{"A", "B"}[i%2])
	}
	if shuffle {
		r := rand.New(rand.NewPCG(1, 2))
		r.Shuffle(len(rows), func(i, j int) { rows[i], rows[j] = rows[j], rows[i] })
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("person_id,district\n"+strings.Join(rows, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// refusals counts the dataset_registration_refused records in the provenance log, by code.
func (p *platform) refusals() map[string]int {
	p.t.Helper()
	entries, err := provenance.Read(filepath.Join(p.dataDir, "provenance.log"), func(typ, _ string) bool {
		return typ == "dataset_registration_refused"
	})
	if err != nil {
		p.t.Fatal(err)
	}
	out := map[string]int{}
	for _, e := range entries {
		var r struct {
			Data struct {
				Code string `json:"code"`
			} `json:"data"`
		}
		if err := json.Unmarshal(e.Record, &r); err != nil {
			p.t.Fatal(err)
		}
		out[r.Data.Code]++
	}
	return out
}

// errorMessage registers body as who and returns the error's status, code and message.
func (p *platform) errorMessage(who string, body any) (int, string, string) {
	p.t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		p.t.Fatal(err)
	}
	req, err := http.NewRequest("POST", p.base+"/v1/datasets", bytes.NewReader(b))
	if err != nil {
		p.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token(who))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	var e api.ErrorBody
	if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
		p.t.Fatal(err)
	}
	return resp.StatusCode, e.Error.Code, e.Error.Message
}

// Finding 4: the health commission's provider tries to register the public security bureau's
// resident register (L3, epsilon 10) as its own L1 dataset with epsilon 1000.
func TestProviderCannotRegisterAnotherOrganisationsFile(t *testing.T) {
	base, roots := orgRoots(t)
	residents := filepath.Join(datasetsDir(t), "public-security-bureau", "residents.parquet")
	copyFile(t, residents, filepath.Join(roots["public-security-bureau"], "residents.parquet"))
	p := startWithRoots(t, roots)
	var reg api.Registered
	p.must("psb-1", "POST", "/v1/datasets", residentsAs(t, "residents", "public-security-bureau", "L3", 10, "residents.parquet"), &reg)

	abs := filepath.Join(roots["public-security-bureau"], "residents.parquet")
	for _, tc := range []struct {
		name, path string
		status     int
		code       errcode.Code
	}{
		{"relative name of the other org's file", "residents.parquet", http.StatusBadRequest, "source_not_found"},
		{"dot-dot into the other org's root", "../public-security-bureau/residents.parquet", http.StatusBadRequest, errcode.SourceOutsideImportRoot},
		{"dot-dot hidden behind a subfolder", "x/../../public-security-bureau/residents.parquet", http.StatusBadRequest, errcode.SourceOutsideImportRoot},
		{"absolute path in the other org's root", abs, http.StatusBadRequest, errcode.SourceOutsideImportRoot},
		{"absolute path with dot-dot through its own root", filepath.Join(roots["health-commission"], "..", "public-security-bureau", "residents.parquet"), http.StatusBadRequest, errcode.SourceOutsideImportRoot},
		{"absolute path outside every root", filepath.Join(base, "residents.parquet"), http.StatusBadRequest, errcode.SourceOutsideImportRoot},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p.t = t
			p.refused("hospital-a", "POST", "/v1/datasets", residentsAs(t, "hc_residents", "health-commission", "L1", 1000, tc.path), tc.status, tc.code)
		})
	}
	p.t = t

	// A provider of one org may not name another as the provider (the policy and the server).
	p.refused("hospital-a", "POST", "/v1/datasets", residentsAs(t, "hc_residents", "public-security-bureau", "L1", 1000, abs),
		http.StatusForbidden, errcode.Forbidden)

	// The same content copied into its own root, under another name, grade and budget: the
	// snapshot digest is already registered. The answer does not name the other org's dataset.
	copyFile(t, residents, filepath.Join(roots["health-commission"], "people", "copy.parquet"))
	for _, grade := range []string{"L1", "L2", "L3", "L4"} {
		status, code, msg := p.errorMessage("hospital-a", residentsAs(t, "hc_copy_"+strings.ToLower(grade), "health-commission", grade, 1000, "people/copy.parquet"))
		if status != http.StatusConflict || code != string(errcode.DatasetAlreadyRegistered) {
			t.Fatalf("a copy registered at %s: %d %s, want 409 %s", grade, status, code, errcode.DatasetAlreadyRegistered)
		}
		if strings.Contains(msg, "residents") || strings.Contains(msg, "public-security-bureau") {
			t.Fatalf("the refusal names the other organisation's dataset: %q", msg)
		}
	}
	// Nor may its own provider register it again under another name: one data, one budget.
	status, code, msg := p.errorMessage("psb-1", residentsAs(t, "residents_again", "public-security-bureau", "L1", 1000, "residents.parquet"))
	if status != http.StatusConflict || code != string(errcode.DatasetAlreadyRegistered) || !strings.Contains(msg, `"residents"`) {
		t.Fatalf("its own provider re-registering: %d %s %q, want 409 %s naming residents", status, code, msg, errcode.DatasetAlreadyRegistered)
	}

	var list api.Datasets
	p.must("op-1", "GET", "/v1/datasets", nil, &list)
	if len(list.Datasets) != 1 || list.Datasets[0].Name != "residents" || list.Datasets[0].Digest != reg.Digest {
		t.Fatalf("registered datasets %+v, want only residents", list.Datasets)
	}
	got := p.refusals()
	if got[string(errcode.SourceOutsideImportRoot)] != 5 || got[string(errcode.SourceNotFound)] != 1 || got[string(errcode.DatasetAlreadyRegistered)] != 5 {
		t.Fatalf("provenance holds the refusals %v", got)
	}
}

// A provider whose organisation has no import root cannot register from files at all.
func TestProviderWithoutImportRootCannotRegister(t *testing.T) {
	_, roots := orgRoots(t)
	writeCSV(t, filepath.Join(roots["health-commission"], "v.csv"), 0, 10, false)
	delete(roots, "health-commission")
	p := startWithRoots(t, roots)
	p.refused("hospital-a", "POST", "/v1/datasets", csvSpec("v", "health-commission", "v.csv"), http.StatusForbidden, errcode.NoImportRoot)
	if got := p.refusals(); got[string(errcode.NoImportRoot)] != 1 {
		t.Fatalf("provenance holds the refusals %v", got)
	}
}

// The snapshot digest does not depend on the order of the source's rows: a shuffled copy is
// the same data. It does depend on every value: a copy with one value changed is new data (a
// residual; what stops a provider registering another organisation's file is its own import
// root, not the digest).
func TestSameDataInAnotherRowOrderIsAlreadyRegistered(t *testing.T) {
	_, roots := orgRoots(t)
	hc := roots["health-commission"]
	writeCSV(t, filepath.Join(hc, "a.csv"), 0, 50, false)
	writeCSV(t, filepath.Join(hc, "shuffled.csv"), 0, 50, true)
	writeCSV(t, filepath.Join(hc, "other.csv"), 1, 50, false)
	p := startWithRoots(t, roots)
	p.must("hospital-a", "POST", "/v1/datasets", csvSpec("a", "health-commission", "a.csv"), nil)
	p.refused("hospital-a", "POST", "/v1/datasets", csvSpec("b", "health-commission", "shuffled.csv"), http.StatusConflict, errcode.DatasetAlreadyRegistered)
	p.must("hospital-a", "POST", "/v1/datasets", csvSpec("c", "health-commission", "other.csv"), nil)
	// A name already taken stays a plain conflict, whatever the data.
	p.refused("hospital-a", "POST", "/v1/datasets", csvSpec("a", "health-commission", "other.csv"), http.StatusConflict, errcode.Conflict)
}

// Finding 5, part one: a symbolic link anywhere on the source path is refused, even one that
// points inside the root; the link is never followed.
func TestRegistrationRefusesSymbolicLinks(t *testing.T) {
	base, roots := orgRoots(t)
	hc := roots["health-commission"]
	secret := filepath.Join(base, "secret")
	writeCSV(t, filepath.Join(secret, "data.csv"), 900, 7, false)
	writeCSV(t, filepath.Join(hc, "real", "data.csv"), 0, 5, false)
	for link, target := range map[string]string{
		"file-out.csv": filepath.Join(secret, "data.csv"),
		"dir-out":      secret,
		"file-in.csv":  filepath.Join(hc, "real", "data.csv"),
		"dir-in":       filepath.Join(hc, "real"),
	} {
		if err := os.Symlink(target, filepath.Join(hc, link)); err != nil {
			t.Fatal(err)
		}
	}
	p := startWithRoots(t, roots)
	for _, path := range []string{"file-out.csv", "dir-out/data.csv", "file-in.csv", "dir-in/data.csv", filepath.Join(hc, "dir-out", "data.csv")} {
		t.Run(path, func(t *testing.T) {
			p.t = t
			p.refused("hospital-a", "POST", "/v1/datasets", csvSpec("s", "health-commission", path), http.StatusBadRequest, errcode.SourceSymlink)
		})
	}
	p.t = t
	p.must("hospital-a", "POST", "/v1/datasets", csvSpec("s", "health-commission", "real/data.csv"), nil)
	if got := p.refusals(); got[string(errcode.SourceSymlink)] != 5 {
		t.Fatalf("provenance holds the refusals %v", got)
	}
}

// Finding 5, part two: while registrations run in a loop, another goroutine keeps swapping a
// folder of the root with a symbolic link to a folder outside it (an atomic exchange). No
// registration ever reads the outside file: each either reads the folder's own file (the first
// registers it, the rest find it already registered), or meets the link and is refused. Bounded
// to about 1.5 s.
func TestRegistrationRaceNeverImportsAFileOutsideTheRoot(t *testing.T) {
	base, roots := orgRoots(t)
	hc := roots["health-commission"]
	secret := filepath.Join(base, "secret")
	writeCSV(t, filepath.Join(secret, "data.csv"), 900, 7, false) // 7 rows: would betray itself
	writeCSV(t, filepath.Join(hc, "d", "data.csv"), 0, 5, false)
	if err := os.Symlink(secret, filepath.Join(hc, "swap")); err != nil {
		t.Fatal(err)
	}
	// Each refused attempt takes a token of the provider's denied-request bucket; this test
	// makes hundreds on purpose.
	p := startWithRoots(t, roots, func(c *server.Config) { c.Limits.DeniedBurst = 1 << 20 })

	var stop atomic.Bool
	var flips atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for !stop.Load() {
			if err := unix.Renameat2(unix.AT_FDCWD, filepath.Join(hc, "d"), unix.AT_FDCWD, filepath.Join(hc, "swap"), unix.RENAME_EXCHANGE); err != nil {
				if errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EINVAL) {
					return // no RENAME_EXCHANGE here: the loop below then sees no race
				}
				t.Errorf("exchange: %v", err)
				return
			}
			flips.Add(1)
		}
	}()
	outcomes := map[string]int{}
	var legit string
	deadline := time.Now().Add(1500 * time.Millisecond)
	for i := 0; time.Now().Before(deadline) && i < 400; i++ {
		var reg api.Registered
		status, code := p.do("hospital-a", "POST", "/v1/datasets", csvSpec(fmt.Sprintf("race%d", i), "health-commission", "d/data.csv"), &reg)
		switch {
		case status == http.StatusCreated:
			if reg.Rows != 5 || (legit != "" && reg.Digest != legit) {
				stop.Store(true)
				wg.Wait()
				t.Fatalf("attempt %d imported the file outside the root: %d rows, digest %s", i, reg.Rows, reg.Digest)
			}
			legit = reg.Digest
			outcomes["registered"]++
		case code == string(errcode.DatasetAlreadyRegistered) || code == string(errcode.SourceSymlink):
			outcomes[code]++
		default:
			stop.Store(true)
			wg.Wait()
			t.Fatalf("attempt %d: %d %s", i, status, code)
		}
	}
	stop.Store(true)
	wg.Wait()
	t.Logf("%d folder/link exchanges; outcomes %v", flips.Load(), outcomes)
	if outcomes["registered"] > 1 {
		t.Fatalf("the folder's file was registered %d times", outcomes["registered"])
	}
	if flips.Load() > 0 && outcomes[string(errcode.SourceSymlink)] == 0 {
		t.Fatalf("the race never met the link (outcomes %v): the test did not exercise it", outcomes)
	}
}
