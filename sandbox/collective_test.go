package sandbox

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/c1b99f93/cleanroom/catalog"
	"github.com/c1b99f93/cleanroom/dp"
	"github.com/c1b99f93/cleanroom/errcode"
	"github.com/c1b99f93/cleanroom/he/collective"
	"github.com/c1b99f93/cleanroom/sandbox/wire"
)

// fedDomain is one domain of a test federation: its worker, its pipe transcript and its
// exact per-district aggregates (count, sum of cost).
type fedDomain struct {
	name   string
	dir    string
	c      *Client
	tap    *lockedBuffer
	sent   bytes.Buffer // what the test (the engine's side) sent it, as JSON
	snap   string
	counts []int64
	sums   []int64
}

var fedDistricts = []string{"A", "B", "C"}

// startDomain starts a worker for a domain with its own visits: persons with one visit each,
// a district and an integer cost, the mix differing by domain.
func startDomain(t *testing.T, name string, seed int, noiseOff bool) *fedDomain {
	t.Helper()
	d := &fedDomain{name: name, dir: t.TempDir(), tap: &lockedBuffer{}, counts: make([]int64, 3), sums: make([]int64, 3)}
	if noiseOff {
		if err := os.WriteFile(filepath.Join(d.dir, noiseOffMarker), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	d.c = startDomainWorker(t, d)
	lines := []string{"person_id,district,cost"}
	for i := range 150 + 37*seed {
		k := (i*7 + seed) % 3
		cost := (i*13+seed*101)%900 + 3
		lines = append(lines, fmt.Sprintf("P%d-%05d,%s,%d", seed, i, fedDistricts[k], cost))
		d.counts[k]++
		d.sums[k] += int64(cost)
	}
	path := filepath.Join(t.TempDir(), name+".csv")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	spec := &catalog.Spec{Name: "visits_" + name, Provider: name, Grade: catalog.GradeL2, PrivacyUnit: "person_id", Domain: name,
		Source: catalog.Source{Kind: catalog.SourceCSV, Path: path}, Budget: catalog.Budget{Epsilon: 10},
		Columns: map[string]catalog.Column{
			"person_id": {Tags: []catalog.Tag{catalog.TagIdentifier}},
			"district":  {Tags: []catalog.Tag{catalog.TagQuasiIdentifier}, Domain: fedDistricts},
			"cost":      {Tags: []catalog.Tag{catalog.TagSensitive}, Bounds: []float64{0, 1000}},
		}}
	snap, err := register(context.Background(), t, d.c, spec)
	if err != nil {
		t.Fatal(err)
	}
	d.snap = snap.Digest
	return d
}

func startDomainWorker(t *testing.T, d *fedDomain) *Client {
	t.Helper()
	c, _, err := Start(context.Background(), Config{Worker: WorkerConfig{Dir: d.dir, Domain: d.name, DB: DBLimits{MemoryLimit: "1GB", Threads: 2}},
		RawValueKey: testRawKey, tap: d.tap})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func (d *fedDomain) record(v any) {
	b, _ := json.Marshal(v)
	d.sent.Write(b)
}

// federation runs the key ceremony over the domains' workers with an in-test aggregator.
type federation struct {
	domains  []*fedDomain
	names    []string
	dir      collective.Directory
	aggKey   ed25519.PrivateKey
	agg      *collective.Aggregator
	ceremony string
}

func newFederation(t *testing.T, ds ...*fedDomain) *federation {
	t.Helper()
	ctx := context.Background()
	f := &federation{domains: ds, dir: collective.Directory{}, ceremony: "test-ceremony"}
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	f.dir["platform"], f.aggKey = pub, priv
	for _, d := range ds {
		k, err := d.c.CollectiveIdentity(ctx)
		if err != nil {
			t.Fatal(err)
		}
		f.dir[d.name] = k
		f.names = append(f.names, d.name)
	}
	var err error
	if f.agg, err = collective.NewAggregator(collective.Config{Name: "platform", SigningKey: priv, Directory: f.dir, Domains: f.names, Aggregator: "platform"}); err != nil {
		t.Fatal(err)
	}
	dirBytes := map[string][]byte{}
	for n, k := range f.dir {
		dirBytes[n] = k
	}
	inbox := make(collective.MemoryInbox, len(ds))
	for _, d := range ds {
		a := &wire.CollectiveKeyGen{Ceremony: f.ceremony, Domains: f.names, Aggregator: "platform", Directory: dirBytes}
		d.record(a)
		r, err := d.c.CollectiveKeyGen(ctx, a)
		if err != nil {
			t.Fatal(err)
		}
		inbox.Send(r.Messages[0])
	}
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	key, err := f.agg.CollectKeyGen(cctx, f.ceremony, inbox)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range ds {
		a := &wire.CollectiveAccept{Ceremony: f.ceremony, Message: key.Encode()}
		d.record(a)
		if _, err := d.c.CollectiveAccept(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

func (f *federation) plan(d *fedDomain) *wire.Plan {
	return &wire.Plan{Snapshot: d.snap, Keys: []*wire.Expr{wire.Col("", "district")}, Values: []*wire.Expr{wire.Col("", "cost")},
		Aggregates: []dp.Spec{
			{Kind: dp.Count, Value: -1, Epsilon: 1, MaxPartitions: 1, MaxPerPartition: 1},
			{Kind: dp.Sum, Value: 0, Lower: 0, Upper: 1000, Epsilon: 1, MaxPartitions: 1, MaxPerPartition: 1},
		}, Domains: [][]string{fedDistricts},
		Bounds: wire.Bounds{MaxGroupsContributed: 1, MaxContributionsPerGroup: 1}, SamplingKey: 7, TimeoutMS: 30_000}
}

// jobs describes one collective job per aggregate (count, sum) at the given epsilon.
func (f *federation) jobs(t *testing.T, id string, eps float64, r *collective.Receiver) []collective.Job {
	t.Helper()
	var out []collective.Job
	for i, lInf := range []int64{1, 1000} {
		// A person may be in every domain: the noise covers the sum of the domains' bounds.
		noise, err := collective.NoiseShares(collective.Budget{Epsilon: eps, Delta: 1e-6, L0: 1, LInf: lInf * int64(len(f.domains))}, len(f.domains))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, collective.Job{ID: fmt.Sprintf("%s-a%d", id, i), Key: f.agg.KeyID(), Partitions: len(fedDistricts), Receiver: r.KeyDigest(), Noise: noise})
	}
	return out
}

func fedPartitions() [][]*string {
	var out [][]*string
	for _, d := range fedDistricts {
		out = append(out, []*string{&d})
	}
	return out
}

// run runs one federated job through every round and returns the opened totals per job.
func (f *federation) run(t *testing.T, id string, eps float64) ([][]int64, []collective.Job) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cfg := collective.Config{Directory: f.dir, Domains: f.names, Aggregator: "platform"}
	r, err := collective.NewReceiver(cfg)
	if err != nil {
		t.Fatal(err)
	}
	jobs := f.jobs(t, id, eps, r)
	inboxes := make([]collective.MemoryInbox, len(jobs))
	for i := range inboxes {
		inboxes[i] = make(collective.MemoryInbox, len(f.domains))
	}
	for _, d := range f.domains {
		a := &wire.CollectiveInput{Ceremony: f.ceremony, Plan: f.plan(d), Partitions: fedPartitions(), Jobs: jobs}
		d.record(a)
		msgs, err := d.c.CollectiveInput(ctx, a)
		if err != nil {
			t.Fatal(err)
		}
		for i, m := range msgs {
			inboxes[i].Send(m)
		}
	}
	sums := make([]*collective.Message, len(jobs))
	var sumBytes [][]byte
	for i, j := range jobs {
		if sums[i], err = f.agg.CollectInputs(ctx, j, r.PublicKey(), inboxes[i]); err != nil {
			t.Fatal(err)
		}
		sumBytes = append(sumBytes, sums[i].Encode())
	}
	for _, d := range f.domains {
		a := &wire.CollectiveKeySwitch{Ceremony: f.ceremony, Jobs: jobs, Sums: sumBytes}
		d.record(a)
		msgs, err := d.c.CollectiveKeySwitch(ctx, a)
		if err != nil {
			t.Fatal(err)
		}
		for i, m := range msgs {
			inboxes[i].Send(m)
		}
	}
	var totals [][]int64
	for i, j := range jobs {
		res, err := f.agg.CollectKeySwitch(ctx, j, sums[i], inboxes[i])
		if err != nil {
			t.Fatal(err)
		}
		v, err := r.Open(j, res)
		if err != nil {
			t.Fatal(err)
		}
		totals = append(totals, v)
	}
	return totals, jobs
}

// TestWorkersAsDomainsReleaseTheExactTotalWithoutNoise runs three domains' workers through the
// whole protocol with their noise switched off (the test-only seam, collective_seam_test.go):
// the opened totals are then exactly the sums of the three domains' bounded aggregates, so the
// bounding pass, the read of the pre-noise states and the slot order are right.
func TestWorkersAsDomainsReleaseTheExactTotalWithoutNoise(t *testing.T) {
	ds := []*fedDomain{startDomain(t, "insurance", 1, true), startDomain(t, "health", 2, true), startDomain(t, "civil", 3, true)}
	f := newFederation(t, ds...)
	totals, _ := f.run(t, "job-exact", 1)
	want := [][]int64{make([]int64, 3), make([]int64, 3)}
	for _, d := range ds {
		for k := range 3 {
			want[0][k] += d.counts[k]
			want[1][k] += d.sums[k]
		}
	}
	if fmt.Sprint(totals) != fmt.Sprint(want) {
		t.Errorf("opened totals %v, want the exact bounded totals %v", totals, want)
	}
}

// TestDomainTranscriptsHoldNoOtherDomainsAggregate records every byte each worker sent and
// everything sent to it, with noise off so that the encrypted values are the aggregates,
// and looks for every domain's aggregate vector in clear — as JSON numbers and as int64
// words — in each transcript: a domain's own pipe may not carry even its own vector, and no
// pipe another's.
func TestDomainTranscriptsHoldNoOtherDomainsAggregate(t *testing.T) {
	ds := []*fedDomain{startDomain(t, "insurance", 1, true), startDomain(t, "health", 2, true), startDomain(t, "civil", 3, true)}
	f := newFederation(t, ds...)
	f.run(t, "job-transcript", 1)
	for _, pipe := range ds {
		transcript := append(pipe.tap.Bytes(), pipe.sent.Bytes()...)
		for _, d := range ds {
			for _, vec := range [][]int64{d.counts, d.sums} {
				for _, enc := range clearEncodings(vec) {
					if bytes.Contains(transcript, enc) {
						t.Errorf("the pipe of %s carries %s's aggregate vector %v in clear", pipe.name, d.name, vec)
					}
				}
			}
		}
	}
}

func clearEncodings(v []int64) [][]byte {
	var js []string
	le := make([]byte, 0, 8*len(v))
	for _, x := range v {
		js = append(js, strconv.FormatInt(x, 10))
		le = binary.LittleEndian.AppendUint64(le, uint64(x))
	}
	be := make([]byte, 0, 8*len(v))
	for _, x := range v {
		be = binary.BigEndian.AppendUint64(be, uint64(x))
	}
	return [][]byte{[]byte("[" + strings.Join(js, ",") + "]"), []byte(strings.Join(js, ",")), le, be}
}

// TestWorkerAnswersAFederatedJobOnceAcrossRestarts: a domain's input and key-switch share are
// recorded in its directory; a restarted worker refuses to encrypt the job again and, having
// lost the in-memory input it sent, refuses to key-switch it.
func TestWorkerAnswersAFederatedJobOnceAcrossRestarts(t *testing.T) {
	ctx := context.Background()
	a, b := startDomain(t, "insurance", 1, false), startDomain(t, "health", 2, false)
	f := newFederation(t, a, b)
	r, _ := collective.NewReceiver(collective.Config{Directory: f.dir, Domains: f.names, Aggregator: "platform"})
	jobs := f.jobs(t, "job-once", 1, r)
	inboxes := []collective.MemoryInbox{make(collective.MemoryInbox, 2), make(collective.MemoryInbox, 2)}
	for _, d := range []*fedDomain{a, b} {
		msgs, err := d.c.CollectiveInput(ctx, &wire.CollectiveInput{Ceremony: f.ceremony, Plan: f.plan(d), Partitions: fedPartitions(), Jobs: jobs})
		if err != nil {
			t.Fatal(err)
		}
		for i, m := range msgs {
			inboxes[i].Send(m)
		}
	}
	in := &wire.CollectiveInput{Ceremony: f.ceremony, Plan: f.plan(a), Partitions: fedPartitions(), Jobs: jobs}
	if _, err := a.c.CollectiveInput(ctx, in); errcode.Of(err) != errcode.FederatedProtocol {
		t.Fatalf("a second input for the job: %v, want %s", err, errcode.FederatedProtocol)
	}
	var sums [][]byte
	for i, j := range jobs {
		cctx, cancel := context.WithTimeout(ctx, time.Minute)
		m, err := f.agg.CollectInputs(cctx, j, r.PublicKey(), inboxes[i])
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		sums = append(sums, m.Encode())
	}
	a.c.Close()
	a.c = startDomainWorker(t, a)
	if _, err := a.c.CollectiveInput(ctx, in); errcode.Of(err) != errcode.FederatedProtocol {
		t.Fatalf("an input for the job after a restart: %v, want %s", err, errcode.FederatedProtocol)
	}
	// Key switching the job needs the input the party sent, which the restart lost.
	_, err := a.c.CollectiveKeySwitch(ctx, &wire.CollectiveKeySwitch{Ceremony: f.ceremony, Jobs: jobs, Sums: sums})
	if errcode.Of(err) != errcode.FederatedProtocol {
		t.Fatalf("a key switch after a restart: %v, want %s", err, errcode.FederatedProtocol)
	}
	// The key share survived the restart: a new job is answered.
	jobs2 := f.jobs(t, "job-after-restart", 1, r)
	if _, err := a.c.CollectiveInput(ctx, &wire.CollectiveInput{Ceremony: f.ceremony, Plan: f.plan(a), Partitions: fedPartitions(), Jobs: jobs2}); err != nil {
		t.Fatalf("a new job after a restart: %v", err)
	}
}

// TestWorkerKeepsItsKeysToItself: the signing key and the key share are files of mode 0600
// in the domain's directory, and no answer on the pipe carries either.
func TestWorkerKeepsItsKeysToItself(t *testing.T) {
	a, b := startDomain(t, "insurance", 1, false), startDomain(t, "health", 2, false)
	f := newFederation(t, a, b)
	f.run(t, "job-keys", 1)
	for _, path := range []string{"signing.key", filepath.Join(f.ceremony, "share.json")} {
		fi, err := os.Stat(filepath.Join(a.dir, "collective", path))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", path, fi.Mode().Perm())
		}
	}
	seed, err := os.ReadFile(filepath.Join(a.dir, "collective", "signing.key"))
	if err != nil {
		t.Fatal(err)
	}
	var share struct {
		Secret []byte `json:"secret_share"`
	}
	b2, _ := os.ReadFile(filepath.Join(a.dir, "collective", f.ceremony, "share.json"))
	if err := json.Unmarshal(b2, &share); err != nil || len(share.Secret) < 64 {
		t.Fatalf("share file: %v", err)
	}
	out := a.tap.Bytes()
	for what, secret := range map[string][]byte{"signing key": seed, "key share": share.Secret[len(share.Secret)-64:]} {
		if bytes.Contains(out, secret) || bytes.Contains(out, []byte(jsonBase64(secret))) {
			t.Errorf("the worker's pipe carries its %s", what)
		}
	}
}

func jsonBase64(b []byte) string {
	s, _ := json.Marshal(b)
	return strings.Trim(string(s), `"`)
}
