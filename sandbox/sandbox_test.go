package sandbox

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/c1b99f93/cleanroom/catalog"
	"github.com/c1b99f93/cleanroom/dp"
	"github.com/c1b99f93/cleanroom/errcode"
	"github.com/c1b99f93/cleanroom/sandbox/wire"
)

func TestMain(m *testing.M) {
	if IsWorkerInvocation(os.Args) {
		os.Exit(RunWorker())
	}
	os.Exit(m.Run())
}

// lockedBuffer collects the worker's output bytes for inspection.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) Bytes() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return bytes.Clone(l.b.Bytes())
}

func startWorker(t *testing.T, tap *lockedBuffer) *Client {
	t.Helper()
	return startWorkerWith(t, tap, WorkerConfig{Dir: t.TempDir(), Domain: "test", DB: DBLimits{MemoryLimit: "1GB", Threads: 2}})
}

// startWorkerWith starts a worker process with configuration wc and the test raw-value key.
func startWorkerWith(t *testing.T, tap *lockedBuffer, wc WorkerConfig) *Client {
	t.Helper()
	cfg := Config{Worker: wc, RawValueKey: testRawKey}
	if tap != nil {
		cfg.tap = tap
	}
	c, _, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// visitsCSV writes a small visits table: person 0 ("heavy") has 1000 visits in district A;
// persons 1..200 have one visit each, alternating districts A and B. Raw values are
// distinctive so tests can look for them on the pipe.
func visitsCSV(t *testing.T, dir string, reverse bool) (string, []string) {
	t.Helper()
	var lines []string
	var ids []string
	id := func(i int) string { return fmt.Sprintf("53010219800101%04d", 1000+i) }
	for v := 0; v < 1000; v++ {
		lines = append(lines, fmt.Sprintf("%s,A,%0.3f", id(0), 777.125+float64(v)))
	}
	ids = append(ids, id(0))
	for i := 1; i <= 200; i++ {
		d := "A"
		if i%2 == 0 {
			d = "B"
		}
		lines = append(lines, fmt.Sprintf("%s,%s,%0.3f", id(i), d, 1234.5+float64(i)))
		ids = append(ids, id(i))
	}
	if reverse {
		for i, j := 0, len(lines)-1; i < j; i, j = i+1, j-1 {
			lines[i], lines[j] = lines[j], lines[i]
		}
	}
	path := filepath.Join(dir, fmt.Sprintf("visits-%v.csv", reverse))
	if err := os.WriteFile(path, []byte("person_id,district,cost\n"+strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, ids
}

// writeCSV writes body to a file named name in a fresh temporary directory.
func writeCSV(t *testing.T, name, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// openSource opens a test source as the server would hand it to Register; it is closed when
// the test ends.
func openSource(t testing.TB, path string) *os.File {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// register registers spec from the file at its source path.
func register(ctx context.Context, t testing.TB, c *Client, spec *catalog.Spec) (*wire.Snapshot, error) {
	t.Helper()
	return c.Register(ctx, spec, openSource(t, spec.Source.Path))
}

func visitsSpec(path string) *catalog.Spec {
	return &catalog.Spec{Name: "visits", Provider: "p", Grade: catalog.GradeL2, PrivacyUnit: "person_id",
		Source: catalog.Source{Kind: catalog.SourceCSV, Path: path}, Budget: catalog.Budget{Epsilon: 10},
		Columns: map[string]catalog.Column{
			"person_id": {Tags: []catalog.Tag{catalog.TagIdentifier}},
			"district":  {Tags: []catalog.Tag{catalog.TagQuasiIdentifier}, Domain: []string{"A", "B"}},
			"cost":      {Tags: []catalog.Tag{catalog.TagSensitive}, Bounds: []float64{0, 5000}},
		}}
}

func countPlan(snap string, eps float64, linf int64) *wire.Plan {
	return &wire.Plan{Snapshot: snap, Keys: []*wire.Expr{wire.Col("", "district")}, Values: []*wire.Expr{wire.Col("", "cost")},
		Aggregates: []dp.Spec{
			{Kind: dp.Count, Value: -1, Epsilon: eps, MaxPartitions: 1, MaxPerPartition: linf},
			{Kind: dp.Sum, Value: 0, Lower: 0, Upper: 5000, Epsilon: eps, MaxPartitions: 1, MaxPerPartition: linf},
		},
		Bounds: wire.Bounds{MaxGroupsContributed: 1, MaxContributionsPerGroup: linf}, SamplingKey: 42, TimeoutMS: 30_000}
}

func TestWorkerBoundsAHeavyContributor(t *testing.T) {
	ctx := context.Background()
	c := startWorker(t, nil)
	path, _ := visitsCSV(t, t.TempDir(), false)
	snap, err := register(ctx, t, c, visitsSpec(path))
	if err != nil {
		t.Fatal(err)
	}
	if snap.Rows != 1200 || snap.Units != 201 {
		t.Fatalf("snapshot rows=%d units=%d, want 1200 and 201", snap.Rows, snap.Units)
	}
	// Epsilon 50 makes Laplace noise tiny (scale 3/50 for the count), so the released count
	// must sit within ±5 of the bounded truth: 100 one-visit persons plus 3 for the heavy one.
	// Without bounding it would be 1100. The tolerance is over 80 noise scales: it never flakes.
	parts, err := c.Execute(ctx, countPlan(snap.Digest, 50, 3))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, p := range parts {
		rel, err := countPlan(snap.Digest, 50, 3).Aggregates[0].Release(p.States[0])
		if err != nil {
			t.Fatal(err)
		}
		got[*p.Key[0]] = rel[0].Value
	}
	if math.Abs(got["A"]-103) > 5 || math.Abs(got["B"]-100) > 5 {
		t.Fatalf("bounded counts = %v, want A≈103 and B≈100", got)
	}
}

func TestParentReceivesNoRawRows(t *testing.T) {
	ctx := context.Background()
	tap := &lockedBuffer{}
	c := startWorker(t, tap)
	path, ids := visitsCSV(t, t.TempDir(), false)
	snap, err := register(ctx, t, c, visitsSpec(path))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Execute(ctx, countPlan(snap.Digest, 1, 3)); err != nil {
		t.Fatal(err)
	}
	wire := tap.Bytes()
	if len(wire) == 0 {
		t.Fatal("tap saw nothing")
	}
	for _, id := range ids {
		if bytes.Contains(wire, []byte(id)) {
			t.Fatalf("a raw person_id crossed the pipe")
		}
	}
	for _, v := range []float64{777.125, 1235.5, 1434.5} {
		var le [8]byte
		binary.LittleEndian.PutUint64(le[:], math.Float64bits(v))
		if bytes.Contains(wire, le[:]) || bytes.Contains(wire, []byte(fmt.Sprint(v))) {
			t.Fatalf("raw cost %v crossed the pipe", v)
		}
	}
}

func TestWorkerHasNoNetwork(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	// The same dial from the test process succeeds, so a failure inside is the namespace.
	if c, err := net.Dial("tcp", ln.Addr().String()); err != nil {
		t.Fatalf("control dial failed: %v", err)
	} else {
		c.Close()
	}
	c := startWorker(t, nil)
	iso, err := c.Isolation(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !iso.NetworkNamespace || !iso.NoNewPrivs {
		t.Fatalf("isolation = %+v, want a network namespace and no_new_privs", iso)
	}
	err = c.Probe(context.Background(), ln.Addr().String())
	if errcode.Of(err) != "network_unreachable" {
		t.Fatalf("probe from inside the worker: %v, want network_unreachable", err)
	}
}

func TestSnapshotDigestIgnoresSourceRowOrder(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	a, _ := visitsCSV(t, dir, false)
	b, _ := visitsCSV(t, dir, true)
	s1, err := register(ctx, t, startWorker(t, nil), visitsSpec(a))
	if err != nil {
		t.Fatal(err)
	}
	s2, err := register(ctx, t, startWorker(t, nil), visitsSpec(b))
	if err != nil {
		t.Fatal(err)
	}
	if s1.Digest != s2.Digest {
		t.Fatalf("same rows in another order gave digests %s and %s", s1.Digest, s2.Digest)
	}
}

func TestMalformedSourceRegistersNothing(t *testing.T) {
	ctx := context.Background()
	cfgDir := t.TempDir()
	client, _, err := Start(ctx, Config{Worker: WorkerConfig{Dir: cfgDir, Domain: "t"}})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	dir := t.TempDir()
	cases := map[string]struct{ kind, body string }{
		"ragged":            {"csv", "person_id,district,cost\n530102198001011001,A,1\n530102198001011002,A\n"},
		"text in numeric":   {"csv", "person_id,district,cost\n530102198001011001,A,1\n530102198001011002,A,SECRET-VALUE\n"},
		"undeclared":        {"csv", "person_id,district,cost,extra\n530102198001011001,A,1,x\n"},
		"missing":           {"csv", "person_id,cost\n530102198001011001,1\n"},
		"empty":             {"csv", ""},
		"parquet garbage":   {"parquet", "PAR1 this is not a parquet file SECRET-VALUE PAR1"},
		"parquet truncated": {"parquet", "PAR1\x15\x04\x15"},
		"arrow garbage":     {"arrow", "ARROW1\x00\x00 SECRET-VALUE"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(name, " ", "_")+"."+c.kind)
			if err := os.WriteFile(path, []byte(c.body), 0o600); err != nil {
				t.Fatal(err)
			}
			spec := visitsSpec(path)
			spec.Source.Kind = catalog.SourceKind(c.kind)
			_, err := register(ctx, t, client, spec)
			if err == nil {
				t.Fatal("malformed source was registered")
			}
			if code := errcode.Of(err); code != "malformed_input" && code != errcode.InvalidSpec && code != "empty_source" {
				t.Fatalf("code %q (%v)", code, err)
			}
			if strings.Contains(err.Error(), "SECRET-VALUE") {
				t.Fatalf("error quotes a raw value: %v", err)
			}
		})
	}
	files, _ := filepath.Glob(filepath.Join(cfgDir, "snapshots", "*.arrow"))
	if len(files) != 0 {
		t.Fatalf("snapshots left behind: %v", files)
	}
}

func TestPlanDeadlineInterruptsTheQuery(t *testing.T) {
	ctx := context.Background()
	c := startWorker(t, nil)
	var b strings.Builder
	b.WriteString("person_id,district,cost\n")
	for i := 0; i < 20000; i++ {
		fmt.Fprintf(&b, "5301021980%08d,A,%d\n", i, i%100)
	}
	path := writeCSV(t, "big.csv", b.String())
	snap, err := register(ctx, t, c, visitsSpec(path))
	if err != nil {
		t.Fatal(err)
	}
	p := countPlan(snap.Digest, 1, 3)
	// Costly per row (thousands of terms each), seconds in all: the deadline must cut it short.
	p.Filter = costlyCondition(3000)
	p.TimeoutMS = 200
	start := time.Now()
	_, err = c.Execute(ctx, p)
	if errcode.Of(err) != errcode.SandboxTimeout {
		t.Fatalf("err = %v, want sandbox_timeout", err)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Fatalf("interrupt took %v", d)
	}
	// The worker is still healthy afterwards.
	if _, err := c.Execute(ctx, countPlan(snap.Digest, 1, 3)); err != nil {
		t.Fatal(err)
	}
}

// costlyCondition is a condition of n terms that no row satisfies, each a few operations.
func costlyCondition(n int) *wire.Expr {
	var terms []*wire.Expr
	cost := wire.Col("", "cost")
	for i := range n {
		terms = append(terms, wire.Compare("=", wire.Func("floor", wire.Arith("*", cost, wire.Num(strconv.Itoa(i+2)))), wire.Num("-1")))
	}
	return wire.Or(terms...)
}

func TestLockedDuckDBRefusesFileAccess(t *testing.T) {
	ctx := context.Background()
	c := startWorker(t, nil)
	path, _ := visitsCSV(t, t.TempDir(), false)
	snap, err := register(ctx, t, c, visitsSpec(path))
	if err != nil {
		t.Fatal(err)
	}
	// A plan carries no SQL, and the worker renders only the IR's closed list of functions: a
	// file reader or the environment cannot even be named.
	for _, filter := range []*wire.Expr{
		wire.Compare(">", wire.Func("read_csv", wire.Str("/etc/passwd")), wire.Num("0")),
		wire.Compare(">", wire.Func("read_text", wire.Str(path)), wire.Num("0")),
		wire.IsNull(wire.Func("getenv", wire.Str("HOME")), true),
		wire.Compare("=", wire.Col("", "district"), wire.Str("x') OR (SELECT count(*) FROM read_csv('/etc/passwd')) > 0 OR ('")),
		{Kind: "sql", Value: "getenv('HOME') IS NOT NULL"},
		// Only the snapshot's own columns can be read: not the worker's, not a made-up one.
		wire.IsNull(wire.Col("", "__cr_unit"), false),
		wire.IsNull(wire.Col("", "no_such_column"), false),
		wire.IsNull(wire.Col("snap", "district"), false),
	} {
		p := countPlan(snap.Digest, 1, 3)
		p.Filter = filter
		parts, err := c.Execute(ctx, p)
		if filter.Kind == wire.KindCompare && filter.Args[0].Kind == wire.KindColumn {
			// A literal is escaped: the filter compares district with that text, and no row has it.
			if err != nil || len(parts) != 0 {
				t.Fatalf("the escaped literal: %d partitions, %v", len(parts), err)
			}
			continue
		}
		if errcode.Of(err) != errcode.Internal {
			t.Fatalf("filter %s: err = %v, want the worker to refuse it", filter.Canonical(), err)
		}
		if strings.Contains(err.Error(), "root:") || strings.Contains(err.Error(), "5301021980") {
			t.Fatalf("error leaks file content: %v", err)
		}
	}
}

// Units whose runs cross DuckDB's and Arrow's batch boundaries still get exactly one dense key
// each: 5,000 persons with 3 rows each, in shuffled order, are 5,000 units.
func TestSnapshotUnitKeysAcrossBatches(t *testing.T) {
	var b strings.Builder
	b.WriteString("person_id,district,cost\n")
	for r := 0; r < 3; r++ {
		for i := 0; i < 5000; i++ {
			fmt.Fprintf(&b, "5301021980%08d,%s,%d\n", (i*7919)%5000, []string{"A", "B"}[i%2], r)
		}
	}
	path := writeCSV(t, "many.csv", b.String())
	snap, err := register(context.Background(), t, startWorker(t, nil), visitsSpec(path))
	if err != nil {
		t.Fatal(err)
	}
	if snap.Rows != 15000 || snap.Units != 5000 {
		t.Fatalf("rows=%d units=%d, want 15000 and 5000", snap.Rows, snap.Units)
	}
}

// The fast unordered scan and the ORDER BY fallback must bound identically: the kept rows are
// chosen by rowid, never by arrival order, and the sums are exact whatever the order.
func TestOrderedAndUnorderedScansAgree(t *testing.T) {
	ctx := context.Background()
	db, err := openLockedDB(DBLimits{MemoryLimit: "1GB", Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	w := &worker{dir: t.TempDir(), db: db, log: slog.New(slog.NewTextHandler(io.Discard, nil)), tables: map[string]*snapTable{}, shards: 2, shardRows: 1}
	var b strings.Builder
	b.WriteString("person_id,district,cost\n")
	for r := 0; r < 7; r++ {
		for i := 0; i < 3000; i++ {
			fmt.Fprintf(&b, "5301021980%08d,%s,%d.%03d\n", (i*7919)%3000, []string{"A", "B"}[(i+r)%2], r*100+i%97, (i*37)%1000)
		}
	}
	path := writeCSV(t, "v.csv", b.String())
	spec := visitsSpec(path)
	snap, err := w.snapshot(ctx, &registerArgs{Kind: "csv", src: openSource(t, path), Name: "visits.csv", PrivacyUnit: "person_id", Columns: spec.ColumnNames()})
	if err != nil {
		t.Fatal(err)
	}
	p := countPlan(snap.Digest, 1, 2)
	// floor(cost) is not a multiple of 3.
	cost := wire.Func("floor", wire.Col("", "cost"))
	p.Filter = wire.Compare("<>", wire.Arith("*", wire.Func("floor", wire.Arith("/", cost, wire.Num("3"))), wire.Num("3")), cost)
	// The DP library's encoded pre-noise states must match byte for byte: unit contributions
	// sit on a power-of-two grid, so float sums do not depend on the order units arrive in.
	states := func(ordered bool) map[uint64]string {
		pass := newBoundPass(p, 0, snap.Units, snap.Units, nil)
		if err := w.scan(ctx, p, snap, 0, snap.Units, ordered, pass); err != nil {
			t.Fatal(err)
		}
		return encodedStates(t, pass)
	}
	a, o := states(false), states(true)
	if len(a) != 2 || len(o) != 2 {
		t.Fatalf("partitions: unordered %d, ordered %d, want 2", len(a), len(o))
	}
	for g := range a {
		if a[g] != o[g] {
			t.Fatalf("partition %x: unordered and ordered scans give different pre-noise states", g)
		}
	}
}

// Public domains: rows whose key is outside the declared values never reach a partition (so
// they cannot use up a unit's L0 choice), domain values match typed keys after a cast, and a
// declared value with no rows comes back as no partition (the engine releases it empty).
func TestPublicDomainsDropOutsideRowsByKeyHash(t *testing.T) {
	ctx := context.Background()
	c := startWorker(t, nil)
	var b strings.Builder
	b.WriteString("person_id,district,cost,year\n")
	for i := 0; i < 300; i++ {
		d := []string{"A", "B", "O'Neil"}[i%3] // O'Neil is not public (and needs quoting)
		fmt.Fprintf(&b, "5301021980%08d,%s,%d,%d\n", i, d, 10, 2020+i%2)
	}
	path := writeCSV(t, "d.csv", b.String())
	spec := visitsSpec(path)
	spec.Columns["year"] = catalog.Column{Tags: []catalog.Tag{catalog.TagAttribute}}
	snap, err := register(ctx, t, c, spec)
	if err != nil {
		t.Fatal(err)
	}
	p := countPlan(snap.Digest, 50, 1)
	p.Keys = []*wire.Expr{wire.Col("", "district"), wire.Col("", "year")}
	p.Domains = [][]string{{"A", "B", "C", "O'Brien"}, {"2020", "2021", "not-a-year"}}
	parts, err := c.Execute(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, pt := range parts {
		rel, err := p.Aggregates[0].Release(pt.States[0])
		if err != nil {
			t.Fatal(err)
		}
		got[*pt.Key[0]+"/"+*pt.Key[1]] = math.Round(rel[0].Value)
	}
	want := map[string]float64{"A/2020": 50, "B/2021": 50, "A/2021": 50, "B/2020": 50}
	for k, v := range want {
		if math.Abs(got[k]-v) > 3 {
			t.Errorf("%s = %v, want about %v", k, got[k], v)
		}
	}
	for k := range got {
		if strings.HasPrefix(k, "O'") || strings.HasPrefix(k, "C") || strings.Contains(k, "not-a-year") {
			t.Errorf("partition %s should not exist", k)
		}
	}
}

// One person written as "…x" in one row and " …X" in another is one privacy unit: the unit is
// normalised (trimmed, upper-case) before the dense key is assigned, so the bounds apply to the
// person, not to each spelling.
func TestUnitSpellingsOfOnePersonAreOneUnit(t *testing.T) {
	rows := "person_id,district,cost\n" +
		"11010519491231002X,A,1\n" +
		"11010519491231002x,B,2\n" +
		" 11010519491231002X ,A,3\n" +
		"110105194912310011,A,4\n"
	path := writeCSV(t, "spellings.csv", rows)
	snap, err := register(context.Background(), t, startWorker(t, nil), visitsSpec(path))
	if err != nil {
		t.Fatal(err)
	}
	if snap.Units != 2 {
		t.Fatalf("units = %d, want 2 (three spellings of one person, and another person)", snap.Units)
	}
}

func TestFloatPrivacyUnitIsRefused(t *testing.T) {
	path := writeCSV(t, "floats.csv", "person_id,district,cost\n1.5,A,1\n-0.0,A,1\n")
	_, err := register(context.Background(), t, startWorker(t, nil), visitsSpec(path))
	if errcode.Of(err) != errcode.InvalidSpec {
		t.Fatalf("err = %v, want invalid_spec", err)
	}
}
