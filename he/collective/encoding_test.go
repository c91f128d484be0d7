package collective_test

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/c1b99f93/cleanroom/he/collective"
)

// Every round's message survives Encode/DecodeMessage byte for byte, signature included.
func TestMessagesRoundTrip(t *testing.T) {
	noiseOff(t)
	w := newWorld(t, 3)
	const parts = 16
	job := w.job(t, "job-roundtrip", parts, defaultBudget)
	data, _ := dataset(w.domains, parts, 0, 100, 5)
	sum := sumFor(t, w, job, data)
	res := sumResult(t, w, job, sum)
	for _, m := range []*collective.Message{w.keyMsg.Included[0], w.keyMsg, sum.Included[0], sum, res.Included[0], res} {
		b := m.Encode()
		got, err := collective.DecodeMessage(b)
		if err != nil {
			t.Fatalf("round %d: %v", m.Round, err)
		}
		if !bytes.Equal(got.Encode(), b) || got.Digest() != m.Digest() {
			t.Fatalf("round %d does not round-trip", m.Round)
		}
	}
}

// A domain's key share written to its data directory and loaded into a fresh process answers
// jobs as before.
func TestStoredKeyShareRoundTrips(t *testing.T) {
	noiseOff(t)
	w := newWorld(t, 3)
	dir := t.TempDir()
	for _, d := range w.domains {
		b, err := w.parties[d].MarshalKey()
		if err != nil {
			t.Fatal(err)
		}
		path := dir + "/" + d + ".key"
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		b, err = os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		p, err := collective.NewParty(config(w, d))
		if err != nil {
			t.Fatal(err)
		}
		if err := p.UnmarshalKey(b); err != nil {
			t.Fatal(err)
		}
		if p.KeyID() != w.agg.KeyID() {
			t.Fatalf("%s: loaded key differs", d)
		}
		w.parties[d] = p
	}
	// The receiver, too, may open its result in a later process.
	rb, err := w.recv.MarshalKey()
	if err != nil {
		t.Fatal(err)
	}
	if w.recv, err = collective.LoadReceiver(config(w, ""), rb); err != nil {
		t.Fatal(err)
	}
	data, totals := dataset(w.domains, 10, 0, 1000, 8)
	got, err := w.run(t, w.job(t, "job-after-restart", 10, defaultBudget), data)
	if err != nil {
		t.Fatal(err)
	}
	for i := range totals {
		if got[i] != totals[i] {
			t.Fatalf("partition %d differs after reload", i)
		}
	}
	// A stored key of another domain, or a corrupted one, is refused.
	b, _ := w.parties[w.domains[0]].MarshalKey()
	other, _ := collective.NewParty(config(w, w.domains[1]))
	if err := other.UnmarshalKey(b); !errors.Is(err, collective.ErrConfig) {
		t.Fatalf("another domain's key: got %v", err)
	}
	fresh, _ := collective.NewParty(config(w, w.domains[0]))
	if err := fresh.UnmarshalKey(bytes.Replace(b, []byte(`"secret_share":"`), []byte(`"secret_share":"AAAA`), 1)); !errors.Is(err, collective.ErrMalformed) {
		t.Fatalf("corrupted key: got %v", err)
	}
	// The aggregator reloads the collective key from its own signed message.
	agg, err := collective.NewAggregator(config(w, platform))
	if err != nil {
		t.Fatal(err)
	}
	if err := agg.UsePublicKey(w.keyMsg); err != nil || agg.KeyID() != w.agg.KeyID() {
		t.Fatalf("aggregator reload: %v", err)
	}
}

// The package builds without cgo and links no project package, no DuckDB and no cgo package.
func TestPackageIsPureGoWithoutProjectImports(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go tool not found")
	}
	cmd := exec.Command(goBin, "list", "-deps", "-f", "{{.ImportPath}} {{len .CgoFiles}}", ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go list with CGO_ENABLED=0 failed: %v", err)
	}
	const self = "github.com/c1b99f93/cleanroom/he/collective"
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) != 2 {
			continue
		}
		if strings.HasPrefix(f[0], "github.com/c1b99f93/cleanroom") && f[0] != self {
			t.Errorf("imports project package %s", f[0])
		}
		if strings.Contains(f[0], "duckdb") || (f[1] != "0" && f[0] != "runtime/cgo") {
			t.Errorf("links %s (cgo files: %s)", f[0], f[1])
		}
	}
	build := exec.Command(goBin, "build", ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("CGO_ENABLED=0 build failed: %v\n%s", err, out)
	}
}
