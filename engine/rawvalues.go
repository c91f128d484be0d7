package engine

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"sync"

	"github.com/c1b99f93/cleanroom/engine/provenance"
	"github.com/c1b99f93/cleanroom/errcode"
	"github.com/c1b99f93/cleanroom/rawset"
	"github.com/c1b99f93/cleanroom/sandbox"
)

// The raw-value scan's data. The engine owns a secret key (DataDir/keys/rawvalue.key); each
// domain's worker builds, at registration, a set of keyed hashes of the identifier and
// sensitive values of the dataset (rawset) and writes it beside the snapshot. For a
// job, the engine loads the sets of the datasets it read and the output screen looks every
// output value up in their union. The engine holds keyed hashes only, never a value.

// ErrBadRawValueKey is wrapped when the raw-value key file exists but is unusable (wrong
// length, or readable by group or others). Open refuses it rather than replacing it: a new
// key would make every set built under the old one useless.
var ErrBadRawValueKey = errcode.New(errcode.BadRawValueKey, "the raw-value key file is unusable")

// rawValues is the engine's raw-value key and its cache of loaded sets.
type rawValues struct {
	key   rawset.Key
	keyer *rawset.Keyer

	// mu makes loads and rebuilds one at a time: two jobs reaching a set that is not loaded
	// (or must be rebuilt) would otherwise both ask the worker for it.
	mu   sync.Mutex
	sets map[string]*rawset.HashSet // by snapshot digest
}

// openRawValues reads the raw-value key, creating it on first use.
func openRawValues(dataDir string) (*rawValues, error) {
	key, err := provenance.LoadOrCreateSecret(filepath.Join(dataDir, "keys", "rawvalue.key"), "engine: raw-value key", rawset.KeySize, ErrBadRawValueKey)
	if err != nil {
		return nil, err
	}
	k, err := rawset.NewKeyer(key)
	if err != nil {
		return nil, fmt.Errorf("engine: raw-value key: %w", err)
	}
	return &rawValues{key: key, keyer: k, sets: map[string]*rawset.HashSet{}}, nil
}

// rawSets returns the union of the raw-value sets of the datasets ds.
func (e *Engine) rawSets(ctx context.Context, ds sources) (*rawset.Union, error) {
	sets := make([]*rawset.HashSet, 0, len(ds))
	for _, d := range ds {
		s, err := e.rawSet(ctx, d)
		if err != nil {
			return nil, err
		}
		sets = append(sets, s)
	}
	u, err := rawset.NewUnion(sets...)
	if err != nil {
		return nil, errcode.Wrap(errcode.Internal, err, "the raw-value sets of the job's datasets disagree on their key; nothing was released")
	}
	return u, nil
}

// rawSetsCached says whether the raw-value sets of ds are all in memory: loading one takes a
// time that grows with the dataset's distinct values.
func (e *Engine) rawSetsCached(ds sources) bool {
	e.raw.mu.Lock()
	defer e.raw.mu.Unlock()
	for _, d := range ds {
		if e.raw.sets[d.Snapshot.Digest] == nil {
			return false
		}
	}
	return true
}

// rawSet returns a dataset's raw-value set: from memory, else from its file, else rebuilt by
// the worker from the snapshot. A file that is missing (a data directory from before sets
// existed), damaged, built under another key or not the one registered is rebuilt, and the
// rebuild is recorded.
func (e *Engine) rawSet(ctx context.Context, d *Dataset) (*rawset.HashSet, error) {
	r := e.raw
	r.mu.Lock()
	defer r.mu.Unlock()
	if s := r.sets[d.Snapshot.Digest]; s != nil {
		return s, nil
	}
	w, err := e.worker(ctx, d.Spec.Domain)
	if err != nil {
		return nil, err
	}
	s, reason, err := e.readRawSet(w, d)
	if err != nil {
		return nil, errcode.Wrap(errcode.SandboxFailed, err, "the raw-value set of dataset %q cannot be read; nothing was released", d.Spec.Name)
	}
	if reason != "" {
		if s, err = e.rebuildRawSet(ctx, w, d, reason); err != nil {
			return nil, err
		}
	}
	r.sets[d.Snapshot.Digest] = s
	return s, nil
}

// Why a set is rebuilt, as recorded.
const (
	rebuildMissing        = "missing"
	rebuildDamaged        = "damaged"
	rebuildOtherKey       = "other_key"
	rebuildDigestMismatch = "digest_mismatch"
)

// readRawSet reads a dataset's set file and says why it must be rebuilt ("" if it need not).
// Other errors (the file cannot be read at all) are returned: they need an operator.
func (e *Engine) readRawSet(w *sandbox.Client, d *Dataset) (*rawset.HashSet, string, error) {
	s, digest, err := w.ReadRawSet(d.Snapshot.Digest)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, rebuildMissing, nil
	case errors.Is(err, rawset.ErrHashSetFormat):
		return nil, rebuildDamaged, nil
	case err != nil:
		return nil, "", err
	case s.KeyID() != e.raw.keyer.ID():
		return nil, rebuildOtherKey, nil
	case d.Snapshot.RawSet != nil && digest != d.Snapshot.RawSet.Digest:
		return nil, rebuildDigestMismatch, nil
	}
	return s, "", nil
}

// rebuildRawSet has the worker build the set again from the snapshot, records the rebuild,
// and keeps the new set's description in the dataset's catalog entry, so the next start
// checks the file against it.
func (e *Engine) rebuildRawSet(ctx context.Context, w *sandbox.Client, d *Dataset, reason string) (*rawset.HashSet, error) {
	info, err := w.BuildRawSet(ctx, d.Spec, d.Snapshot.Digest)
	if err != nil {
		return nil, err
	}
	if _, err := e.record(ctx, "", &provenance.RawSetRebuilt{
		Name: d.Spec.Name, Snapshot: d.Snapshot.Digest, Reason: reason, RawSet: provenance.DocOf(info),
	}); err != nil {
		return nil, err
	}
	s, digest, err := w.ReadRawSet(d.Snapshot.Digest)
	if err == nil && digest != info.Digest {
		err = fmt.Errorf("the file is not the set the worker built (%s, want %s)", digest, info.Digest)
	}
	if err != nil {
		return nil, errcode.Wrap(errcode.SandboxFailed, err, "the rebuilt raw-value set of dataset %q cannot be read; nothing was released", d.Spec.Name)
	}
	nd := &Dataset{Spec: d.Spec, Snapshot: d.Snapshot}
	nd.Snapshot.RawSet = info
	if err := e.saveDataset(nd); err != nil {
		return nil, errcode.Wrap(errcode.Internal, err, "the catalog entry of %q could not be updated with its rebuilt raw-value set", d.Spec.Name)
	}
	e.mu.Lock()
	if e.datasets[d.Spec.Name] == d {
		e.datasets[d.Spec.Name] = nd
	}
	e.mu.Unlock()
	return s, nil
}
