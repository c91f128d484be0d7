package engine

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/c1b99f93/cleanroom/catalog"
	"github.com/c1b99f93/cleanroom/sandbox/wire"
)

// The registry keeps each registered dataset's spec and snapshot under DataDir/catalog, one
// file per dataset, so a restarted engine knows its datasets. The snapshots themselves stay in
// their domain's worker directory, which loads them (verifying their digests) on first use.

const registryDir = "catalog"

type registryEntry struct {
	Spec     *catalog.Spec `json:"spec"`
	Snapshot wire.Snapshot `json:"snapshot"`
}

// saveDataset writes a dataset's entry durably: temporary file, fsync, rename, fsync of the
// directory, so a crash leaves either no entry or the whole one.
func (e *Engine) saveDataset(d *Dataset) error {
	dir := filepath.Join(e.dataDir, registryDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	b, err := json.Marshal(registryEntry{Spec: d.Spec, Snapshot: d.Snapshot})
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), filepath.Join(dir, d.Spec.Name+".json")); err != nil {
		return err
	}
	return syncDir(dir)
}

// loadRegistry reads the registered datasets of a previous run. A damaged entry is an error:
// the platform does not start with part of its catalog silently missing.
func (e *Engine) loadRegistry() error {
	dir := filepath.Join(e.dataDir, registryDir)
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, ent := range ents {
		if ent.IsDir() || !strings.HasSuffix(ent.Name(), ".json") || strings.HasPrefix(ent.Name(), ".") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, ent.Name()))
		if err != nil {
			return err
		}
		var r registryEntry
		if err := json.Unmarshal(b, &r); err != nil || r.Spec == nil {
			return fmt.Errorf("engine: catalog entry %s is damaged: %v", ent.Name(), err)
		}
		if err := r.Spec.Validate(); err != nil {
			return fmt.Errorf("engine: catalog entry %s no longer validates: %w", ent.Name(), err)
		}
		if r.Spec.Name+".json" != ent.Name() || r.Snapshot.Digest == "" {
			return fmt.Errorf("engine: catalog entry %s does not match its dataset", ent.Name())
		}
		e.datasets[r.Spec.Name] = &Dataset{Spec: r.Spec, Snapshot: r.Snapshot}
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
