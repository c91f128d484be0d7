package sandbox

import (
	"bytes"
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/duckdb/duckdb-go/v2"

	"github.com/c1b99f93/cleanroom/dp"
	"github.com/c1b99f93/cleanroom/errcode"
	"github.com/c1b99f93/cleanroom/he/collective"
	"github.com/c1b99f93/cleanroom/sandbox/sqlgen"
	"github.com/c1b99f93/cleanroom/sandbox/wire"
)

// WorkerConfig configures a worker process. The parent passes it through the environment
// (configEnv) of the worker it starts as "<executable> worker".
type WorkerConfig struct {
	Dir    string   `json:"dir"` // the domain's directory: snapshots/ and tmp/
	Domain string   `json:"domain"`
	DB     DBLimits `json:"db"`
	// AddressSpace and CPUSeconds are rlimits the worker applies to itself (0 = default).
	AddressSpace uint64 `json:"address_space"`
	CPUSeconds   uint64 `json:"cpu_seconds"`
	// NetworkNamespace is set by the parent when it started the worker in a new one.
	NetworkNamespace bool `json:"network_namespace"`
	// RawSetHashes is how many keyed hashes a raw-value set build holds in memory before it
	// spills a sorted run to DB.TempDir (0: defaultRawSetHashes).
	RawSetHashes int `json:"raw_set_hashes"`
}

// defaultRawSetHashes is 256 MB of hashes: a set of a few million values is built in memory.
const defaultRawSetHashes = 32 << 20

type worker struct {
	dir    string
	domain string
	// tmp and rawSetHashes bound a raw-value set build (WorkerConfig.RawSetHashes).
	tmp          string
	rawSetHashes int
	scanRows     int64 // rows per scan query (0: defaultScanRows); tests set fewer
	shardRows    int64 // fewest rows a shard gets (0: minShardRows); tests set 1 to shard small data
	pubKeys      publicKeyCache
	coll         collectiveState
	wasm         wasmState
	db           *sql.DB
	log          *slog.Logger
	iso          wire.Isolation
	shards       int
	ids          atomic.Uint64

	mu      sync.Mutex
	tables  map[string]*snapTable
	cancels map[uint64]context.CancelFunc
	// loadMu makes loads one at a time: two jobs reaching an unloaded snapshot together
	// (after a restart) would otherwise both build its table.
	loadMu sync.Mutex

	wmu sync.Mutex
	out io.Writer
}

func (w *worker) nextID() uint64 { return w.ids.Add(1) }

// serve answers requests from in until it is closed. Requests run concurrently; a cancel
// request interrupts the named one (DuckDB stops promptly on context cancellation).
//
// A register request's source arrives as a descriptor on the source socket srcSock (-1: none),
// taken here, in request order, before the request is handed to its goroutine.
func serve(ctx context.Context, cfg WorkerConfig, iso wire.Isolation, in io.Reader, out io.Writer, srcSock int, log *slog.Logger) error {
	db, err := openLockedDB(cfg.DB)
	if err != nil {
		return err
	}
	defer db.Close()
	w := &worker{dir: cfg.Dir, domain: cfg.Domain, tmp: cmp.Or(cfg.DB.TempDir, os.TempDir()), rawSetHashes: cmp.Or(cfg.RawSetHashes, defaultRawSetHashes), coll: collectiveState{parties: map[string]*collective.Party{}}, db: db, log: log, iso: iso, out: out, shards: cfg.DB.withDefaults().Threads,
		tables: map[string]*snapTable{}, cancels: map[uint64]context.CancelFunc{}}
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		frame, err := readFrame(in)
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		var req request
		if err := json.Unmarshal(frame, &req); err != nil {
			return fmt.Errorf("sandbox: malformed request: %w", err)
		}
		if req.Op == "register" && req.Register != nil {
			if srcSock < 0 {
				return errors.New("sandbox: a register request but no source socket")
			}
			if req.Register.src, err = receiveSource(srcSock, req.ID, req.Register.Name); err != nil {
				return err
			}
		}
		if req.Op == "cancel" {
			w.mu.Lock()
			if c := w.cancels[req.Cancel]; c != nil {
				c()
			}
			w.mu.Unlock()
			continue
		}
		rctx, cancel := context.WithCancel(ctx)
		w.mu.Lock()
		w.cancels[req.ID] = cancel
		w.mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() {
				w.mu.Lock()
				delete(w.cancels, req.ID)
				w.mu.Unlock()
				cancel()
			}()
			w.handle(rctx, &req)
		}()
	}
}

func (w *worker) handle(ctx context.Context, req *request) {
	resp := response{ID: req.ID}
	payload, err := w.dispatch(ctx, req, &resp)
	if err != nil {
		var ce *errcode.Error
		if !errors.As(err, &ce) {
			ce = errcode.Wrap(errcode.SandboxFailed, err, "the sandbox worker failed (%s)", duckErrorClass(err))
		}
		// The cause may quote data: log only its class.
		w.log.Warn("request failed", "op", req.Op, "code", ce.Code, "class", duckErrorClass(err))
		resp.Error = &wireError{Code: string(ce.Code), Message: ce.Message}
	}
	hdr, _ := json.Marshal(resp)
	w.wmu.Lock()
	defer w.wmu.Unlock()
	if err := writeFrame(w.out, hdr); err != nil {
		w.log.Error("write response", "err", err)
		return
	}
	if resp.Arrow {
		if err := writeFrame(w.out, payload); err != nil {
			w.log.Error("write response payload", "err", err)
		}
	}
}

// dispatch runs a request's operation, filling resp; an Arrow payload is returned.
//
// The snapshots the operation reads are loaded first (request.snapshots), outside its
// deadline: a deadline bounds the work the plan may do, while the load after a worker restart
// takes time that grows with the dataset, not the query (a minute at 1e7 rows on a loaded
// machine), and would otherwise spend the first job's deadline and fail it.
func (w *worker) dispatch(ctx context.Context, req *request, resp *response) (payload []byte, err error) {
	for _, digest := range req.snapshots() {
		if _, err := w.loaded(ctx, digest); err != nil {
			return nil, err
		}
	}
	switch req.Op {
	case "register":
		if req.Register == nil {
			err = errcode.New(errcode.Internal, "register without arguments")
			break
		}
		var st *snapTable
		st, resp.RawSet, err = w.register(ctx, req.Register)
		resp.Snapshot = st.meta()
		req.Register.src.Close() // the connector closed it already unless it failed early
	case "rawset":
		if req.RawValues == nil {
			err = errcode.New(errcode.Internal, "rawset without arguments")
			break
		}
		var snap *snapTable
		if snap, err = w.loaded(ctx, req.Digest); err == nil {
			resp.RawSet, err = w.buildRawSet(ctx, snap, req.RawValues)
		}
	case "load":
		var st *snapTable
		st, err = w.load(ctx, req.Digest)
		resp.Snapshot = st.meta()
	case "verify":
		err = verifyDigest(w.snapshotPath(req.Digest), req.Digest)
	case "execute":
		if req.Plan == nil {
			err = errcode.New(errcode.Internal, "execute without a plan")
			break
		}
		payload, resp.Bias, err = w.execute(ctx, req.Plan)
		resp.Arrow = err == nil
	case "claims":
		if req.Claims == nil {
			err = errcode.New(errcode.Internal, "claims without arguments")
			break
		}
		resp.Answers, err = w.answerClaims(ctx, req.Claims)
	case "model":
		if req.Model == nil {
			err = errcode.New(errcode.Internal, "model without a pass")
			break
		}
		resp.ModelState, err = w.modelPass(ctx, req.Model)
	case "wasm":
		if req.Wasm == nil {
			err = errcode.New(errcode.Internal, "wasm without arguments")
			break
		}
		resp.Wasm, err = w.runWasm(ctx, req.Wasm)
	case "collective_identity":
		resp.Collective, err = w.collectiveIdentity()
	case "collective_keygen", "collective_accept", "collective_input", "collective_keyswitch":
		resp.Collective, err = w.collective(ctx, req)
	case "isolation":
		iso := w.iso
		resp.Isolation = &iso
	case "probe":
		err = probe(ctx, req.Target)
	default:
		err = errcode.New(errcode.Internal, "unknown worker operation")
	}
	return payload, err
}

// probe dials a loopback address; isolation tests expect it to fail inside the namespace.
func probe(ctx context.Context, target string) error {
	host, _, err := net.SplitHostPort(target)
	if err != nil || !net.ParseIP(host).IsLoopback() {
		return errcode.New(errcode.InvalidOptions, "probe targets must be loopback addresses")
	}
	d := net.Dialer{Timeout: 2 * time.Second}
	c, err := d.DialContext(ctx, "tcp", target)
	if err != nil {
		return errcode.Wrap(errcode.NetworkUnreachable, err, "the worker cannot reach the network")
	}
	c.Close()
	return nil
}

// execute runs the plan's filter and projection in DuckDB over disjoint unit ranges in
// parallel, bounds each unit's run in a streaming pass, merges the shards, and encodes only the
// per-partition DP states.
func (w *worker) execute(ctx context.Context, p *wire.Plan) ([]byte, *wire.BiasStates, error) {
	if len(p.Differences) > 0 {
		payload, err := w.differences(ctx, p)
		return payload, nil, err
	}
	payload, pass, err := w.executePass(ctx, p)
	if err != nil {
		return nil, nil, err
	}
	var bias *wire.BiasStates
	if pass.bias != nil {
		if bias, err = encodeBias(pass.bias); err != nil {
			return nil, nil, err
		}
	}
	return payload, bias, nil
}

func encodeBias(ba *biasAccs) (*wire.BiasStates, error) {
	out := &wire.BiasStates{}
	var err error
	if out.Units, err = ba.units.Encode(); err != nil {
		return nil, err
	}
	if out.Dropping, err = ba.dropping.Encode(); err != nil {
		return nil, err
	}
	if out.DroppedFraction, err = ba.fraction.Encode(); err != nil {
		return nil, err
	}
	for _, acc := range ba.clamped {
		b, err := acc.Encode()
		if err != nil {
			return nil, err
		}
		out.Clamped = append(out.Clamped, b)
	}
	return out, nil
}

// executePass runs the plan and returns the encoded partitions (or, for a profile, the
// histogram bins) with the merged pass.
func (w *worker) executePass(ctx context.Context, p *wire.Plan) ([]byte, *boundPass, error) {
	if p.TimeoutMS > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(p.TimeoutMS)*time.Millisecond)
		defer cancel()
	}
	if err := checkCalibration(p); err != nil {
		return nil, nil, err
	}
	var snap *snapTable
	if p.Relation != nil {
		rel, drop, err := w.materialize(ctx, p.Relation, p.SamplingKey)
		if err != nil {
			return nil, nil, classifyExecError(ctx, err)
		}
		defer drop()
		snap = rel
	} else {
		var err error
		if snap, err = w.loaded(ctx, p.Snapshot); err != nil {
			return nil, nil, err
		}
	}
	var public map[uint64][]string
	if len(p.Domains) > 0 {
		var err error
		if public, err = w.publicKeysOf(ctx, p, snap); err != nil {
			return nil, nil, classifyExecError(ctx, err)
		}
	}
	shards := shardsFor(w.shards, cmp.Or(w.shardRows, minShardRows), snap)
	passes := make([]*boundPass, shards)
	errs := make([]error, shards)
	var wg sync.WaitGroup
	for s := range shards {
		lo := snap.Units * int64(s) / int64(shards)
		hi := snap.Units * int64(s+1) / int64(shards)
		wg.Add(1)
		go func() {
			defer wg.Done()
			passes[s], errs[s] = w.scanShard(ctx, p, snap, lo, hi, public)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, nil, classifyExecError(ctx, err)
		}
	}
	for _, o := range passes[1:] {
		if err := passes[0].merge(o); err != nil {
			return nil, nil, err
		}
	}
	if p.Profile != nil {
		out, err := encodeProfile(passes[0])
		return out, passes[0], err
	}
	if err := w.fetchKeys(ctx, p, snap, passes[0]); err != nil {
		return nil, nil, classifyExecError(ctx, err)
	}
	out, err := encodePartitions(passes[0])
	return out, passes[0], err
}

// minShardRows is the fewest rows worth a shard of their own: below it the second shard's
// query costs more (DuckDB prepares each statement: half a millisecond) than it saves.
const minShardRows = 1 << 18

// shardsFor is how many shards (at most cores) scan snap in parallel: one per rows rows,
// never more than its units, at least one.
func shardsFor(cores int, rows int64, snap *snapTable) int {
	return max(1, min(cores, int(snap.Units), int((snap.Rows+rows-1)/rows)))
}

// encodeProfile writes a profile's histogram bins as partitions with one key (the bin's
// name) and one state (its count), in the format of encodePartitions.
func encodeProfile(b *boundPass) ([]byte, error) {
	names := make([]string, 0, len(b.profile))
	for name := range b.profile {
		names = append(names, name)
	}
	slices.Sort(names)
	q := &boundPass{nKeys: 1, plan: &wire.Plan{Aggregates: []dp.Spec{b.plan.Profile.Spec}}}
	for _, name := range names {
		k := name
		q.parts = append(q.parts, &partState{key: []*string{&k}, accs: []dp.Accumulator{b.profile[name]}})
	}
	return encodePartitions(q)
}

// scanShard bounds the units [lo, hi). DuckDB usually delivers a filtered scan in insertion
// (unit) order but does not promise it — a parallel range scan can emit its first rows last —
// so the fast unordered scan is checked run by run and, if any unit's rows came in two runs,
// discarded and repeated with an explicit ORDER BY.
func (w *worker) scanShard(ctx context.Context, p *wire.Plan, snap *snapTable, lo, hi int64, public map[uint64][]string) (*boundPass, error) {
	pass, err := newPass(p, lo, hi, snap.Units, public)
	if err != nil {
		return nil, err
	}
	err = w.scan(ctx, p, snap, lo, hi, false, pass)
	if errors.Is(err, errUnitSplit) {
		w.log.Info("unordered scan split a unit's rows; rescanning in unit order", "job", p.Job)
		if pass, err = newPass(p, lo, hi, snap.Units, public); err != nil {
			return nil, err
		}
		err = w.scan(ctx, p, snap, lo, hi, true, pass)
	}
	return pass, err
}

// scan bounds the units [lo, hi) into pass, one query per unit range of at most about
// w.scanRows rows (scanRanges).
func (w *worker) scan(ctx context.Context, p *wire.Plan, snap *snapTable, lo, hi int64, ordered bool, pass *boundPass) error {
	for _, r := range scanRanges(snap, lo, hi, cmp.Or(w.scanRows, defaultScanRows)) {
		q, err := scanSQL(p, snap, r[0], r[1], ordered)
		if err != nil {
			return err
		}
		if err := w.scanQuery(ctx, q, snap, pass); err != nil {
			return err
		}
	}
	return nil
}

// defaultScanRows bounds one scan query's rows. duckdb-go's Arrow query materialises its whole
// result inside DuckDB before the first batch arrives, so a shard of a 1e8-row snapshot (50M
// rows, 1.6 GB of result at 32 bytes a row) held its result beside the table within the
// memory limit, and both spilled. At 1e7 rows a shard is one query, as before.
const defaultScanRows = 8 << 20

// scanRanges splits the units [lo, hi) into consecutive ranges of at most maxRows rows each
// (a unit with more rows is a range of its own), from the snapshot's unit starts; without
// them (a materialised relation), in ranges of equal units, as many as the rows need.
func scanRanges(snap *snapTable, lo, hi, maxRows int64) [][2]int64 {
	if hi <= lo {
		return [][2]int64{{lo, hi}}
	}
	var out [][2]int64
	if int64(len(snap.starts)) != snap.Units+1 {
		n := max(1, (snap.Rows*(hi-lo)/max(snap.Units, 1)+maxRows-1)/maxRows)
		for i := range n {
			out = append(out, [2]int64{lo + (hi-lo)*i/n, lo + (hi-lo)*(i+1)/n})
		}
		return out
	}
	for a := lo; a < hi; {
		limit := snap.starts[a] + maxRows
		// the first unit end past the limit, searched in (a+1, hi]
		k := a + 1 + int64(sort.Search(int(hi-a-1), func(i int) bool { return snap.starts[a+2+int64(i)] > limit }))
		out = append(out, [2]int64{a, k})
		a = k
	}
	return out
}

// scanQuery streams the result of q, a scanSQL query, through the pass.
func (w *worker) scanQuery(ctx context.Context, q string, snap *snapTable, pass *boundPass) error {
	return withArrow(ctx, w.db, func(ar *duckdb.Arrow) error {
		rdr, err := ar.QueryContext(ctx, q)
		if err != nil {
			return err
		}
		defer rdr.Release()
		for rdr.Next() {
			if err := pass.addScanned(snap, rdr.RecordBatch()); err != nil {
				return err
			}
		}
		if err := rdr.Err(); err != nil {
			return err
		}
		return pass.finish()
	})
}

// scanSQL is the scan of the units [lo, hi): per row its rowid, the group hash when the plan
// has keys, each value as DOUBLE (a distinct count's value as its identity, see identityValues)
// and, with a filter, the keep flag (see boundPass.add).
func scanSQL(p *wire.Plan, snap *snapTable, lo, hi int64, ordered bool) (string, error) {
	cols := []string{"rowid"}
	if len(p.Keys) > 0 {
		h, err := hashKeys(p, snap)
		if err != nil {
			return "", err
		}
		cols = append(cols, h)
	}
	identity, err := identityValues(p)
	if err != nil {
		return "", err
	}
	sc := columnScope(snap.Columns)
	for i, v := range p.Values {
		r, err := sqlgen.Value(v, sc)
		if err != nil {
			return "", errcode.Wrap(errcode.Internal, err, "the plan's value %d is not a valid expression over the scanned columns", i+1)
		}
		if identity[i] {
			// 53 bits of DuckDB's 64-bit hash: a whole number a DOUBLE holds exactly. NULL stays
			// NULL (hash(NULL) is a number), so COUNT(DISTINCT) ignores it as SQL does.
			r = "CASE WHEN (" + r + ") IS NULL THEN NULL ELSE hash(" + r + ") >> 11 END"
		}
		cols = append(cols, asDouble(r, v, identity[i], snap))
	}
	if p.Filter != nil {
		// A flag, not a WHERE: with every row present the pass can see where each unit's run
		// ends (see boundPass). An evaluation error is "row not kept" (total.go).
		f, err := sqlgen.Condition(p.Filter, sc)
		if err != nil {
			return "", errcode.Wrap(errcode.Internal, err, "the plan's filter is not a valid condition over the scanned columns")
		}
		cols = append(cols, f)
	}
	// Units occupy consecutive rowids, so a unit range is a rowid range, and the unit of each
	// row is looked up from its rowid rather than scanned (one column fewer to materialise).
	where := fmt.Sprintf("rowid >= %d AND rowid < %d", snap.starts[lo], snap.starts[hi])
	q := fmt.Sprintf("SELECT %s FROM %s WHERE %s", strings.Join(cols, ", "), snap.table, where)
	if ordered {
		q += " ORDER BY rowid"
	}
	return q, nil
}

// asDouble renders the scanned value r (plan value v) as a total DOUBLE. A bare column the
// snapshot stores as DOUBLE is read as it is, and one of another numeric type is cast without
// try(): neither can fail on any row, and the TRY wrapper costs DuckDB a fifth of the scan
// (BenchmarkScanValue). Anything else, or a column of unknown type (a relation's), keeps
// try(CAST(…)), so totality (total.go) holds. The pass checks that each value arrives as a
// float64 column, so a wrong type is an error, never a misread value.
func asDouble(r string, v *wire.Expr, identity bool, snap *snapTable) string {
	if !identity && v.Kind == wire.KindColumn && v.Source == "" {
		for _, c := range snap.Columns {
			if c.Name != v.Name {
				continue
			}
			switch c.Type {
			case "float64":
				return r
			case "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "float32":
				return "CAST(" + r + " AS DOUBLE)"
			}
		}
	}
	return "try(CAST(" + r + " AS DOUBLE))"
}

// identityValues marks the plan's values that a COUNT(DISTINCT col) reads: the worker scans
// them as an identity of the column's value — a 53-bit hash, equal for equal values — instead
// of the value as a number, so a distinct count of any type (text, dates, numbers) is a count
// of distinct numbers (dp.CountDistinctValues). Two distinct values share a hash with
// probability about 2⁻⁵³ per pair (D²/2⁵⁴ over a partition of D values: 5·10⁻⁵ at a million),
// which can only lower a count, as bounding does. A value read both as an identity and as a
// number, or an aggregate reading a value the plan does not have, is a malformed plan.
func identityValues(p *wire.Plan) ([]bool, error) {
	identity := make([]bool, len(p.Values))
	numeric := make([]bool, len(p.Values))
	for j, s := range p.Aggregates {
		if !s.ReadsValues() {
			continue
		}
		if s.Value >= len(p.Values) {
			return nil, errcode.New(errcode.Internal, "the plan's aggregate %d reads a value the plan does not have", j+1)
		}
		if s.Kind == dp.CountDistinctValues {
			identity[s.Value] = true
		} else {
			numeric[s.Value] = true
		}
		if identity[s.Value] && numeric[s.Value] {
			return nil, errcode.New(errcode.Internal, "the plan's value %d is read both as a distinct count's identity and as a number", s.Value+1)
		}
	}
	return identity, nil
}

// maxPublicTuples bounds the product of the public domains a plan may enumerate.
const maxPublicTuples = 1_000_000

// publicKeysOf is publicKeys, cached for a snapshot (not for a relation, materialised per
// request): the tuples' hashes depend only on the domains, the key expressions and the
// snapshot's column types, never on its rows, and computing them takes two statements that a
// small job would otherwise prepare and run for each of its plans.
func (w *worker) publicKeysOf(ctx context.Context, p *wire.Plan, snap *snapTable) (map[uint64][]string, error) {
	if p.Relation != nil {
		return w.publicKeys(ctx, p, snap)
	}
	key, err := json.Marshal(struct {
		Snapshot string
		Keys     []*wire.Expr
		Domains  [][]string
	}{snap.Digest, p.Keys, p.Domains})
	if err != nil {
		return nil, err
	}
	c := &w.pubKeys
	c.mu.Lock()
	hit, ok := c.sets[string(key)]
	c.mu.Unlock()
	if ok {
		return hit, nil
	}
	out, err := w.publicKeys(ctx, p, snap)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tuples+len(out) > maxCachedPublicTuples {
		c.sets, c.tuples = nil, 0
	}
	if c.sets == nil {
		c.sets = map[string]map[uint64][]string{}
	}
	if _, dup := c.sets[string(key)]; !dup {
		c.sets[string(key)], c.tuples = out, c.tuples+len(out)
	}
	return out, nil
}

// publicKeyCache holds publicKeys' results by snapshot, keys and domains (read-only maps),
// at most maxCachedPublicTuples tuples in all: past it, it starts over.
type publicKeyCache struct {
	mu     sync.Mutex
	sets   map[string]map[uint64][]string
	tuples int
}

// maxCachedPublicTuples is above maxPublicTuples, so any one plan's set fits.
const maxCachedPublicTuples = 1 << 20

// publicKeys hashes every tuple of the plan's public domains exactly as the scan hashes the
// key expressions: each value is cast to the key expression's type, so '1' matches 1 in an
// integer column. Values that do not cast are left out (no row can have them).
func (w *worker) publicKeys(ctx context.Context, p *wire.Plan, snap *snapTable) (map[uint64][]string, error) {
	if len(p.Domains) != len(p.Keys) {
		return nil, errcode.New(errcode.Internal, "the plan's public domains do not match its keys")
	}
	total := 1
	for _, d := range p.Domains {
		total *= len(d)
		if total > maxPublicTuples {
			return nil, errcode.New(errcode.InvalidOptions, "the public domains of the group keys have more than %d combinations", maxPublicTuples)
		}
	}
	// The domain values are cast to the types hashKeys hashes (an ENUM twin's, or the key's).
	keys, err := keyExprs(p, snap)
	if err != nil {
		return nil, err
	}
	hashed := strings.Join(keys, ", ")
	rows, err := w.db.QueryContext(ctx, fmt.Sprintf("DESCRIBE SELECT %s FROM %s", hashed, snap.table))
	if err != nil {
		return nil, err
	}
	var types []string
	for rows.Next() {
		var name, typ string
		var rest [4]sql.NullString
		if err := rows.Scan(&name, &typ, &rest[0], &rest[1], &rest[2], &rest[3]); err != nil {
			rows.Close()
			return nil, err
		}
		types = append(types, typ)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(types) != len(p.Keys) {
		return nil, errcode.New(errcode.Internal, "the key expressions' types could not be read")
	}
	var from, cast, notNull, vals []string
	for i, d := range p.Domains {
		lits := make([]string, len(d))
		for j, v := range d {
			lits[j] = "(" + sqlgen.String(v) + ")"
		}
		from = append(from, fmt.Sprintf("(VALUES %s) d%d(v)", strings.Join(lits, ", "), i))
		c := fmt.Sprintf("TRY_CAST(d%d.v AS %s)", i, types[i])
		cast = append(cast, c)
		notNull = append(notNull, c+" IS NOT NULL")
		vals = append(vals, fmt.Sprintf("d%d.v", i))
	}
	q := fmt.Sprintf("SELECT hash(%s), %s FROM %s WHERE %s", strings.Join(cast, ", "), strings.Join(vals, ", "),
		strings.Join(from, ", "), strings.Join(notNull, " AND "))
	res, err := w.db.QueryContext(ctx, q)
	if err != nil {
		return nil, err
	}
	defer res.Close()
	out := map[uint64][]string{}
	for res.Next() {
		var g uint64
		tuple := make([]string, len(p.Keys))
		dest := []any{&g}
		for i := range tuple {
			dest = append(dest, &tuple[i])
		}
		if err := res.Scan(dest...); err != nil {
			return nil, err
		}
		if _, dup := out[g]; !dup {
			out[g] = tuple
		}
	}
	return out, res.Err()
}

// fetchKeys reads each partition's group key values from one of its rows (by rowid), so the
// scan itself carries only a 64-bit group hash per row. Two different key tuples with the same
// 64-bit hash would share a partition; with DuckDB's hash that is about as likely as a random
// 64-bit collision among the query's groups, and it would merge their counts, never split a
// unit's contribution.
func (w *worker) fetchKeys(ctx context.Context, p *wire.Plan, snap *snapTable, b *boundPass) error {
	if len(p.Keys) == 0 || len(b.parts) == 0 || b.public != nil {
		return nil // public partitions carry their catalog key values already
	}
	byRow := make(map[int64]*partState, len(b.parts))
	ids := make([]string, 0, len(b.parts))
	for _, ps := range b.parts {
		byRow[ps.row] = ps
		ids = append(ids, strconv.FormatInt(ps.row, 10))
	}
	h, err := hashKeys(p, snap)
	if err != nil {
		return err
	}
	keys, err := keyExprs(p, snap)
	if err != nil {
		return err
	}
	cols := []string{"rowid", h}
	for _, k := range keys {
		cols = append(cols, "CAST(("+k+") AS VARCHAR)")
	}
	q := fmt.Sprintf("SELECT %s FROM %s WHERE rowid IN (%s)", strings.Join(cols, ", "), snap.table, strings.Join(ids, ","))
	rows, err := w.db.QueryContext(ctx, q)
	if err != nil {
		return err
	}
	defer rows.Close()
	found := 0
	for rows.Next() {
		var rowid int64
		var g uint64
		keys := make([]sql.NullString, len(p.Keys))
		dest := []any{&rowid, &g}
		for i := range keys {
			dest = append(dest, &keys[i])
		}
		if err := rows.Scan(dest...); err != nil {
			return err
		}
		ps := byRow[rowid]
		if ps == nil || ps.g != g {
			return errcode.New(errcode.Internal, "group keys could not be matched to their partitions; nothing was computed")
		}
		ps.key = make([]*string, len(keys))
		for i, k := range keys {
			if k.Valid {
				s := k.String
				ps.key[i] = &s
			}
		}
		found++
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if found != len(b.parts) {
		return errcode.New(errcode.Internal, "group keys could not be matched to their partitions; nothing was computed")
	}
	return nil
}

func classifyExecError(ctx context.Context, err error) error {
	var ce *errcode.Error
	if errors.As(err, &ce) {
		return ce
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) {
		return errcode.Wrap(errcode.SandboxTimeout, err, "the query exceeded its time limit and was interrupted")
	}
	if errors.Is(ctx.Err(), context.Canceled) || errors.Is(err, context.Canceled) {
		return errcode.Wrap(errcode.Canceled, err, "the query was canceled")
	}
	if errors.Is(err, errUnitSplit) {
		return errcode.Wrap(errcode.Internal, err, "contribution bounding could not be guaranteed; nothing was computed")
	}
	var de *duckdb.Error
	if errors.As(err, &de) {
		switch de.Type {
		case duckdb.ErrorTypeConversion, duckdb.ErrorTypeOutOfRange, duckdb.ErrorTypeDivideByZero,
			duckdb.ErrorTypeInvalidInput, duckdb.ErrorTypeDecimal:
			return errcode.Wrap(errcode.QueryFailed, err, "evaluating the query over the data failed")
		case duckdb.ErrorTypeBinder, duckdb.ErrorTypeCatalog, duckdb.ErrorTypeMismatchType:
			return errcode.Wrap(errcode.QueryInvalid, err, "the query does not type-check against the dataset's columns; check the column types and casts")
		case duckdb.ErrorTypeOutOfMemory:
			return errcode.Wrap(errcode.ResourceLimit, err, "the query exceeded the sandbox memory limit")
		case duckdb.ErrorTypeInterrupt:
			return errcode.Wrap(errcode.Canceled, err, "the query was interrupted")
		}
	}
	return errcode.Wrap(errcode.SandboxFailed, err, "the sandbox worker failed while executing the plan (%s)", duckErrorClass(err))
}

// encodePartitions writes the partitions as one Arrow IPC stream: key_i (utf8), state_j
// (binary) and selection (binary). The plain bounded totals stay behind.
func encodePartitions(b *boundPass) ([]byte, error) {
	var fields []arrow.Field
	for i := 0; i < b.nKeys; i++ {
		fields = append(fields, arrow.Field{Name: fmt.Sprintf("key_%d", i), Type: arrow.BinaryTypes.String, Nullable: true})
	}
	for j := range b.plan.Aggregates {
		fields = append(fields, arrow.Field{Name: fmt.Sprintf("state_%d", j), Type: arrow.BinaryTypes.Binary})
	}
	fields = append(fields, arrow.Field{Name: "selection", Type: arrow.BinaryTypes.Binary, Nullable: true})
	schema := arrow.NewSchema(fields, nil)
	rb := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer rb.Release()
	for _, ps := range b.parts {
		if ps.excluded {
			continue
		}
		for i, k := range ps.key {
			sb := rb.Field(i).(*array.StringBuilder)
			if k == nil {
				sb.AppendNull()
			} else {
				sb.Append(*k)
			}
		}
		for j, acc := range ps.accs {
			enc, err := acc.Encode()
			if err != nil {
				return nil, err
			}
			rb.Field(b.nKeys + j).(*array.BinaryBuilder).Append(enc)
		}
		selB := rb.Field(len(fields) - 1).(*array.BinaryBuilder)
		if ps.sel == nil {
			selB.AppendNull()
		} else {
			enc, err := ps.sel.Encode()
			if err != nil {
				return nil, err
			}
			selB.Append(enc)
		}
	}
	rec := rb.NewRecordBatch()
	defer rec.Release()
	var buf bytes.Buffer
	iw := ipc.NewWriter(&buf, ipc.WithSchema(schema))
	if err := iw.Write(rec); err != nil {
		return nil, err
	}
	if err := iw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// decodePartitions is the parent's side of encodePartitions.
func decodePartitions(payload []byte, nKeys, nAggs int) ([]wire.Partition, error) {
	rdr, err := ipc.NewReader(bytes.NewReader(payload))
	if err != nil {
		return nil, err
	}
	defer rdr.Release()
	if got := rdr.Schema().NumFields(); got != nKeys+nAggs+1 {
		return nil, fmt.Errorf("sandbox: worker returned %d columns, plan expects %d", got, nKeys+nAggs+1)
	}
	var out []wire.Partition
	for rdr.Next() {
		rec := rdr.RecordBatch()
		for i := 0; i < int(rec.NumRows()); i++ {
			var p wire.Partition
			for k := 0; k < nKeys; k++ {
				col, ok := rec.Column(k).(*array.String)
				if !ok {
					return nil, fmt.Errorf("sandbox: key column %d has type %s", k, rec.Column(k).DataType())
				}
				if col.IsNull(i) {
					p.Key = append(p.Key, nil)
				} else {
					s := strings.Clone(col.Value(i))
					p.Key = append(p.Key, &s)
				}
			}
			for j := 0; j < nAggs; j++ {
				col, ok := rec.Column(nKeys + j).(*array.Binary)
				if !ok {
					return nil, fmt.Errorf("sandbox: state column %d has type %s", j, rec.Column(nKeys+j).DataType())
				}
				p.States = append(p.States, bytes.Clone(col.Value(i)))
			}
			sel, ok := rec.Column(nKeys + nAggs).(*array.Binary)
			if !ok {
				return nil, errors.New("sandbox: selection column has the wrong type")
			}
			if !sel.IsNull(i) {
				p.Selection = bytes.Clone(sel.Value(i))
			}
			out = append(out, p)
		}
	}
	return out, rdr.Err()
}

// checkCalibration refuses a plan whose bounds are not positive, or one of whose mechanisms is
// calibrated to less than the bounds let a unit move it (wire.Bounds.Calibration, Covers): the
// noise is only as good as the sensitivity it was drawn for, and the bounds are what this pass
// enforces. A profile applies no bounds (it reads each unit's rows whole) but puts each unit in
// one bin of each of its two histograms: its bins' counts must cover both at one spec (L0 2),
// or one each with a spec per histogram.
func checkCalibration(p *wire.Plan) error {
	b := p.Bounds
	if b.MaxGroupsContributed < 1 || b.MaxContributionsPerGroup < 1 || b.MaxRowsPerUnit < 0 {
		return errcode.New(errcode.InvalidOptions, "contribution bounds must be at least 1")
	}
	if pr := p.Profile; pr != nil {
		need := int64(2)
		if pr.RowsSpec != nil {
			need = 1
			if pr.RowsSpec.Kind != dp.CountDistinct || pr.RowsSpec.MaxPartitions < 1 {
				return errcode.New(errcode.InvalidOptions, "the rows histogram's counts do not cover one bin per unit")
			}
		}
		if pr.Spec.Kind != dp.CountDistinct || pr.Spec.MaxPartitions < need {
			return errcode.New(errcode.InvalidOptions, "the contribution histograms' counts are calibrated to %d bin(s) per unit, the profile fills %d", pr.Spec.MaxPartitions, need)
		}
		return nil
	}
	for _, s := range p.Aggregates {
		if !b.Covers(s.MaxPartitions, s.MaxPerPartition, s.Kind == dp.CountDistinct) {
			return errcode.New(errcode.InvalidOptions, "a %s mechanism calibrated to %d×%d contributions does not cover the bounds (%d groups, %d rows per group, %d rows per unit)",
				s.Kind, s.MaxPartitions, s.MaxPerPartition, b.MaxGroupsContributed, b.MaxContributionsPerGroup, b.MaxRowsPerUnit)
		}
	}
	if sel := p.Selection; sel != nil && !b.Covers(sel.MaxPartitions, 1, true) {
		return errcode.New(errcode.InvalidOptions, "partition selection calibrated to %d partitions does not cover the bounds", sel.MaxPartitions)
	}
	return nil
}
