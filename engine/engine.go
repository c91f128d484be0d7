package engine

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/c1b99f93/cleanroom/catalog"
	"github.com/c1b99f93/cleanroom/engine/gate"
	"github.com/c1b99f93/cleanroom/engine/ledger"
	"github.com/c1b99f93/cleanroom/engine/provenance"
	"github.com/c1b99f93/cleanroom/errcode"
	"github.com/c1b99f93/cleanroom/policy"
	"github.com/c1b99f93/cleanroom/sandbox"
	"github.com/c1b99f93/cleanroom/sandbox/wire"
)

// Config opens an engine over a data directory.
type Config struct {
	DataDir string
	// WorkerCommand starts sandbox workers (default: this executable with the argument
	// "worker"; the program must then call sandbox.RunWorker, as `cleanroom worker` does).
	WorkerCommand []string
	// PolicyDir loads an operator's bundle instead of the embedded default.
	PolicyDir string
	// WorkerDB sets the workers' DuckDB limits.
	WorkerDB sandbox.DBLimits
	// Stderr receives worker logs.
	Stderr io.Writer
}

// Engine is the platform's job pipeline over one data directory. Safe for concurrent use.
type Engine struct {
	dataDir  string
	parser   *sandbox.Parser
	policy   *policy.Engine
	ledger   *ledger.Ledger
	log      *provenance.Log
	logPath  string
	auditKey provenance.AuditKey
	// platformKey signs checkpoints and release receipts; its verifier key is public.
	platformKey *provenance.PlatformKey
	workers     map[string]*sandbox.Client // by data domain
	isol        map[string]*wire.Isolation
	cfg         Config

	mu       sync.RWMutex
	datasets map[string]*Dataset
	regMu    sync.Mutex // one registration at a time, so a name is checked and taken at once
	fedMu    sync.Mutex // serialises collective key ceremonies and pin updates (rare and short)
	// fedTamper is the federated job's test seam (tamperFunc); only this package's tests set it.
	fedTamper tamperFunc
	// verifyChallenge is the cut-and-choose test seam (challengeFunc): nil draws challenges
	// with crypto/rand; only this package's tests set it.
	verifyChallenge challengeFunc
	// verifyClock is the cut-and-choose deadlines' clock seam: nil is time.Now; only this
	// package's tests set it.
	verifyClock func() time.Time

	fpMu    sync.Mutex
	fpLocks map[string]*fpLock // jobs in flight by grant and query fingerprint

	// raw is the raw-value key and the loaded raw-value sets (rawvalues.go).
	raw *rawValues
}

type fpLock struct {
	mu      sync.Mutex
	waiters int
}

// Dataset is a registered dataset: its spec and snapshot.
type Dataset struct {
	Spec     *catalog.Spec
	Snapshot wire.Snapshot
}

// Open prepares the data directory: provenance log and audit key, control-plane ledger,
// policy bundle (its digest is recorded), the catalog of datasets registered before, and the
// SQL parser. Workers start on first use.
func Open(ctx context.Context, cfg Config) (*Engine, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("engine: data directory is required")
	}
	// Workers run with their own directory as the working directory, so every path handed to
	// them must be absolute.
	dir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("engine: data directory: %w", err)
	}
	cfg.DataDir = dir
	if err := os.MkdirAll(filepath.Join(cfg.DataDir, "keys"), 0o700); err != nil {
		return nil, err
	}
	e := &Engine{dataDir: cfg.DataDir, cfg: cfg, workers: map[string]*sandbox.Client{},
		isol: map[string]*wire.Isolation{}, datasets: map[string]*Dataset{}, fpLocks: map[string]*fpLock{},
		logPath: filepath.Join(cfg.DataDir, "provenance.log")}
	ok := false
	defer func() {
		if !ok {
			e.Close()
		}
	}()
	if e.auditKey, err = provenance.LoadOrCreateAuditKey(filepath.Join(cfg.DataDir, "keys", "audit.key")); err != nil {
		return nil, err
	}
	if e.platformKey, err = provenance.LoadOrCreatePlatformKey(filepath.Join(cfg.DataDir, "keys", "platform.key")); err != nil {
		return nil, err
	}
	if e.raw, err = openRawValues(cfg.DataDir); err != nil {
		return nil, err
	}
	if e.log, err = provenance.Open(e.logPath, provenance.WithSigner(e.platformKey)); err != nil {
		return nil, err
	}
	if e.ledger, err = ledger.Open(ctx, filepath.Join(cfg.DataDir, "control.db"), ledger.WithWriteBarrier(e.log.Sync)); err != nil {
		return nil, err
	}
	var popts []policy.Option
	if cfg.PolicyDir != "" {
		popts = append(popts, policy.WithBundleDir(cfg.PolicyDir))
	}
	if e.policy, err = policy.New(ctx, popts...); err != nil {
		return nil, err
	}
	// Every bundle that ever decided is kept by digest, so replay and what-if can load it again.
	if dir := e.bundleDir(e.policy.Digest()); !exists(dir) {
		if err := e.policy.SaveBundle(dir); err != nil {
			return nil, err
		}
	}
	if _, err := e.record(ctx, "", &provenance.PolicyLoaded{BundleDigest: e.policy.Digest(), Source: policySource(cfg.PolicyDir)}); err != nil {
		return nil, err
	}
	if err := e.loadRegistry(); err != nil {
		return nil, err
	}
	if e.parser, err = sandbox.NewParser(); err != nil {
		return nil, err
	}
	ok = true
	return e, nil
}

// bundleDir is where a policy bundle is kept by its digest.
func (e *Engine) bundleDir(digest string) string {
	return filepath.Join(e.dataDir, "bundles", strings.TrimPrefix(digest, "sha256:"))
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func policySource(dir string) string {
	if dir == "" {
		return "embedded default bundle"
	}
	return dir
}

// Close stops workers and closes the stores.
func (e *Engine) Close() error {
	var errs []error
	for _, w := range e.workers {
		errs = append(errs, w.Close())
	}
	if e.parser != nil {
		errs = append(errs, e.parser.Close())
	}
	if e.ledger != nil {
		errs = append(errs, e.ledger.Close())
	}
	if e.log != nil {
		errs = append(errs, e.log.Close())
	}
	return errors.Join(errs...)
}

// PublicKey is the platform's verifier key (C2SP note form): it checks checkpoints and
// release receipts offline. Auditors keep it out of band.
func (e *Engine) PublicKey() string { return e.platformKey.Verifier() }

// PolicyDigest names the policy bundle in force.
func (e *Engine) PolicyDigest() string { return e.policy.Digest() }

// record appends a provenance event of job ("" for none); every stage calls it before handing on.
func (e *Engine) record(ctx context.Context, job string, ev provenance.Event) (provenance.Entry, error) {
	ent, err := e.log.Append(ctx, job, ev)
	if err != nil {
		return ent, errcode.Wrap(errcode.ProvenanceFailed, err, "the provenance log cannot be written; nothing is released")
	}
	return ent, nil
}

// recordDeferred appends a job's event without waiting for the disk; runStages syncs the log
// (syncLog) before anything outside the log acts on it.
func (e *Engine) recordDeferred(ctx context.Context, job string, ev provenance.Event) (provenance.Entry, error) {
	ent, err := e.log.AppendDeferred(ctx, job, ev)
	if err != nil {
		return ent, errcode.Wrap(errcode.ProvenanceFailed, err, "the provenance log cannot be written; nothing is released")
	}
	return ent, nil
}

// syncLog makes every record appended so far durable.
func (e *Engine) syncLog(ctx context.Context) error {
	if err := e.log.Sync(ctx); err != nil {
		return errcode.Wrap(errcode.ProvenanceFailed, err, "the provenance log cannot be written; nothing is released")
	}
	return nil
}

// worker returns the domain's sandbox worker, starting it on first use and again after it died.
func (e *Engine) worker(ctx context.Context, domain string) (*sandbox.Client, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if w := e.workers[domain]; w != nil {
		if !w.Exited() {
			return w, nil
		}
		// The worker died (killed, out of memory, crashed): the jobs it was running have
		// failed; later ones get a new worker rather than its sandbox_failed forever.
		delete(e.workers, domain)
		go w.Close() // reap the process; its calls have all been answered
	}
	w, iso, err := sandbox.Start(ctx, sandbox.Config{
		Command: e.cfg.WorkerCommand,
		Worker:  sandbox.WorkerConfig{Dir: filepath.Join(e.dataDir, "domains", domain), Domain: domain, DB: e.cfg.WorkerDB},
		Stderr:  e.cfg.Stderr,
		// The worker hashes the raw values it holds under the engine's key (rawvalues.go).
		RawValueKey: e.raw.key,
	})
	if err != nil {
		return nil, errcode.Wrap(errcode.SandboxFailed, err, "the sandbox worker for domain %q could not start", domain)
	}
	if _, err := e.record(ctx, "", &provenance.WorkerStarted{Domain: domain, Isolation: provenance.DocOf(iso)}); err != nil {
		w.Close()
		return nil, err
	}
	e.workers[domain] = w
	e.isol[domain] = iso
	return w, nil
}

// Isolation reports the isolation in force for a domain's worker, starting it if needed.
func (e *Engine) Isolation(ctx context.Context, domain string) (*wire.Isolation, error) {
	if _, err := e.worker(ctx, domain); err != nil {
		return nil, err
	}
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.isol[domain], nil
}

// Lookup implements gate.Catalog over registered datasets.
func (e *Engine) Lookup(name string) (*catalog.Spec, bool) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	d, ok := e.datasets[name]
	if !ok {
		return nil, false
	}
	return d.Spec, true
}

// DatasetNames implements gate.DatasetLister: the gate suggests one of these for a misspelt
// dataset. They are the names GET /v1/datasets lists to every principal, so a suggestion
// reveals nothing the caller could not list.
func (e *Engine) DatasetNames() []string {
	e.mu.RLock()
	defer e.mu.RUnlock()
	out := make([]string, 0, len(e.datasets))
	for name := range e.datasets {
		out = append(out, name)
	}
	return out
}

var _ gate.DatasetLister = (*Engine)(nil)

// Dataset returns a registered dataset.
func (e *Engine) Dataset(name string) (*Dataset, bool) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	d, ok := e.datasets[name]
	return d, ok
}

// Authorize asks the policy bundle in force whether a request may proceed (data.cleanroom.api).
// The caller records a deny; the engine only decides. The front doors ask here rather than
// holding the bundle, so one bundle — the one whose digest is recorded — decides everything.
func (e *Engine) Authorize(ctx context.Context, in policy.RequestInput) (policy.Decision, error) {
	return e.policy.Authorize(ctx, in)
}

// Params are the bundle's platform parameters (budget returns, per-job limits, ...).
func (e *Engine) Params() policy.Params { return e.policy.Params() }

// Datasets lists registered datasets by name.
func (e *Engine) Datasets() []*Dataset {
	e.mu.RLock()
	defer e.mu.RUnlock()
	out := make([]*Dataset, 0, len(e.datasets))
	for _, d := range e.datasets {
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Spec.Name < out[j].Spec.Name })
	return out
}

// Prefixes of ledger account names.
const (
	datasetAccountPrefix = "dataset:"
	grantAccountPrefix   = "grant:"
)

// datasetWithDigest returns the registered dataset whose snapshot has digest, or nil.
func (e *Engine) datasetWithDigest(digest string) *Dataset {
	e.mu.RLock()
	defer e.mu.RUnlock()
	for _, d := range e.datasets {
		if d.Snapshot.Digest == digest {
			return d
		}
	}
	return nil
}

// DatasetAccount and GrantAccount name ledger accounts.
func DatasetAccount(name string) string { return datasetAccountPrefix + name }

// GrantAccount names a grant's ledger account.
func GrantAccount(id string) string { return grantAccountPrefix + id }

// RegisterDataset validates a spec, has the domain's worker build its snapshot from the
// provider's source, opens the dataset's lifetime budget account (a public lookup table has
// none), records the snapshot digest and keeps the entry for restarts. A failure registers
// nothing.
//
// src is the source, already opened by the caller (the server opens it under the provider's
// import root without following symbolic links); the worker reads it through its descriptor
// and nobody opens spec.Source.Path again. The caller closes src.
//
// One budget per data: a snapshot digest already registered — under any name, grade, budget,
// domain or provider — is refused (dataset_already_registered) and the refusal is recorded in
// provenance. The digest is that of the canonical snapshot (rows sorted by privacy unit and then
// every column), so it does not depend on the source's row order or batching; it does depend
// on the column names, their order and types (so on the file format's typing) and on every
// value. The refusal names the registered dataset only when the same provider registered it.
func (e *Engine) RegisterDataset(ctx context.Context, spec *catalog.Spec, src *os.File) (*Dataset, error) {
	e.regMu.Lock()
	defer e.regMu.Unlock()
	if err := spec.Validate(); err != nil {
		var ce *catalog.Error
		if errors.As(err, &ce) {
			return nil, errcode.Wrap(errcode.InvalidSpec, err, "%s", ce.Error())
		}
		return nil, err
	}
	if _, ok := e.Lookup(spec.Name); ok {
		return nil, errcode.New(errcode.Conflict, "a dataset named %q is already registered", spec.Name)
	}
	w, err := e.worker(ctx, spec.Domain)
	if err != nil {
		return nil, err
	}
	snap, err := w.Register(ctx, spec, src)
	if err != nil {
		return nil, err
	}
	if prev := e.datasetWithDigest(snap.Digest); prev != nil {
		if _, err := e.record(context.WithoutCancel(ctx), "", &provenance.DatasetRegistrationRefused{
			Code: string(errcode.DatasetAlreadyRegistered), Name: spec.Name, Provider: spec.Provider, Grade: string(spec.Grade),
			Snapshot: snap.Digest, RegisteredAs: prev.Spec.Name, RegisteredBy: prev.Spec.Provider,
		}); err != nil {
			return nil, err
		}
		if prev.Spec.Provider == spec.Provider {
			return nil, errcode.New(errcode.DatasetAlreadyRegistered,
				"this data is already registered as dataset %q; one data has one dataset and one lifetime budget", prev.Spec.Name)
		}
		return nil, errcode.New(errcode.DatasetAlreadyRegistered,
			"this data is already registered as another dataset; one data has one dataset and one lifetime budget")
	}
	if !spec.Public { // a public lookup table has no privacy to spend
		if err := e.ledger.EnsureAccount(ctx, DatasetAccount(spec.Name), ledger.Budget{Epsilon: spec.Budget.Epsilon, Delta: spec.Budget.Delta}); err != nil {
			return nil, err
		}
	}
	if _, err := e.record(ctx, "", &provenance.DatasetRegistered{
		Name: spec.Name, Provider: spec.Provider, Grade: string(spec.Grade), Domain: spec.Domain,
		PrivacyUnit: spec.PrivacyUnit, Snapshot: snap.Digest, Rows: snap.Rows, Spec: provenance.DocOf(spec),
		RawSet: provenance.DocOf(snap.RawSet), // the set's digest, entry count and key ID: keyed hashes only, no value
	}); err != nil {
		return nil, err
	}
	d := &Dataset{Spec: spec, Snapshot: *snap}
	if err := e.saveDataset(d); err != nil {
		return nil, errcode.Wrap(errcode.Internal, err, "the catalog entry of %q could not be written; the dataset is not registered", spec.Name)
	}
	e.mu.Lock()
	e.datasets[spec.Name] = d
	e.mu.Unlock()
	return d, nil
}

// Balance returns a ledger account's balance.
func (e *Engine) Balance(ctx context.Context, account string) (ledger.Balance, error) {
	return e.ledger.Balance(ctx, account)
}

// VerifyLog checks the provenance log: its hash chain, its Merkle tree and every signed checkpoint.
func (e *Engine) VerifyLog() (provenance.VerifyReport, error) {
	return provenance.VerifyAll(e.logPath, e.PublicKey())
}

func newJobID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "job-" + hex.EncodeToString(b[:])
}

func randomKey() uint64 {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return binary.LittleEndian.Uint64(b[:])
}

var _ gate.Catalog = (*Engine)(nil)

func tags(c catalog.Column) []string {
	out := make([]string, len(c.Tags))
	for i, t := range c.Tags {
		out[i] = string(t)
	}
	return out
}
