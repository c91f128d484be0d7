package sandbox

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/duckdb/duckdb-go/v2"

	"github.com/c1b99f93/cleanroom/catalog"
	"github.com/c1b99f93/cleanroom/errcode"
	"github.com/c1b99f93/cleanroom/rawset"
	"github.com/c1b99f93/cleanroom/sandbox/wire"
)

// The raw-value set: the keyed hashes (rawset) of every distinct value of a snapshot's
// identifier and sensitive columns, built by the worker and written beside the snapshot as
// <digest>.rawset. The output screen looks output values up in it. Only keyed hashes leave
// the worker: the file holds no value, and the response names the file's digest, its entry
// count and the key's ID.

// rawValuesArgs asks for a raw-value set: the key and the columns to hash. The key prints
// redacted (rawset.Key), so a request that reaches a log does not disclose it.
type rawValuesArgs struct {
	Key     rawset.Key `json:"key"`
	Columns []string   `json:"columns"`
}

// RawValueColumns are the spec's columns whose raw values the set holds: those tagged
// identifier or sensitive, in sorted order.
func RawValueColumns(spec *catalog.Spec) []string {
	var out []string
	for _, name := range spec.ColumnNames() {
		if c := spec.Columns[name]; c.Has(catalog.TagIdentifier) || c.Has(catalog.TagSensitive) {
			out = append(out, name)
		}
	}
	return out
}

// rawSetPath is where the worker keeps a snapshot's raw-value set.
func rawSetPath(dir, digest string) string {
	return filepath.Join(dir, "snapshots", strings.TrimPrefix(digest, "sha256:")+".rawset")
}

// buildRawSet hashes the distinct values of the requested columns of a loaded snapshot and
// writes the set beside it. DuckDB computes each column's distinct values in turn (spilling to
// its temporary directory under the memory limit), the worker hashes them on as many
// goroutines as DuckDB has threads (hashValues), holding a few Arrow batches of them at a time
// and a bounded buffer of hashes, spilling sorted runs to the temporary directory
// (rawset.Builder): a unique identifier at 1e8 rows has 1e8 distinct values, which fit neither
// one DuckDB hash table beside the others nor Go's heap twice. Every value is read as text
// (CAST AS VARCHAR) and hashed in all its forms (rawset.Hasher.AppendRawHashes), so a number
// matches its CanonicalNumber form; a value found in two columns is one entry.
func (w *worker) buildRawSet(ctx context.Context, snap *snapTable, a *rawValuesArgs) (*wire.RawSetInfo, error) {
	k, err := rawset.NewKeyer(a.Key)
	if err != nil {
		return nil, errcode.Wrap(errcode.InvalidOptions, err, "the raw-value key is unusable")
	}
	present := map[string]bool{}
	for _, c := range snap.Columns {
		present[c.Name] = true
	}
	for _, c := range a.Columns {
		if !present[c] {
			return nil, errcode.New(errcode.InvalidSpec, "column %q to hash is not in snapshot %s", c, snap.Digest)
		}
	}
	b := k.NewBuilder(w.tmp, w.rawSetHashes)
	defer b.Close()
	for _, c := range a.Columns {
		query := fmt.Sprintf("SELECT DISTINCT CAST(%s AS VARCHAR) AS v FROM %s WHERE %s IS NOT NULL", quoteIdent(c), snap.table, quoteIdent(c))
		err := withArrow(ctx, w.db, func(ar *duckdb.Arrow) error {
			rdr, err := ar.QueryContext(ctx, query)
			if err != nil {
				return err
			}
			defer rdr.Release()
			return hashValues(rdr, k, b, max(w.shards, 1))
		})
		if err != nil {
			return nil, errcode.Wrap(errcode.SandboxFailed, err, "the raw-value set of snapshot %s could not be built (%s)", snap.Digest, duckErrorClass(err))
		}
	}
	entries, digest, err := writeRawSet(rawSetPath(w.dir, snap.Digest), b.Write)
	if err != nil {
		return nil, errcode.Wrap(errcode.SandboxFailed, err, "the raw-value set of snapshot %s could not be written", snap.Digest)
	}
	return &wire.RawSetInfo{Digest: digest, Entries: entries, KeyID: fmt.Sprintf("%016x", k.ID())}, nil
}

// textArray is a batch column of text: a string or a string-view array, both with Value.
type textArray interface {
	arrow.Array
	Value(int) string
}

// hashValues adds the hashes of every value rdr yields (one text column) to b. DuckDB has
// computed the distinct values before the first batch arrives, so hashing is all that is left
// and it is the larger part: workers goroutines hash batches, each with its own Hasher, and one
// goroutine alone adds their hashes to b (the set does not depend on their order). The slices
// of hashes go back to the workers for reuse.
func hashValues(rdr array.RecordReader, k *rawset.Keyer, b *rawset.Builder, workers int) error {
	in := make(chan arrow.RecordBatch, workers)
	out := make(chan []uint64, workers)
	free := make(chan []uint64, 2*workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h := k.Hasher()
			for rb := range in {
				var hs []uint64
				select {
				case hs = <-free:
				default:
				}
				col := rb.Column(0).(textArray) // checked before it was sent
				for i := range col.Len() {
					if !col.IsNull(i) {
						hs = h.AppendRawHashes(hs, col.Value(i))
					}
				}
				rb.Release()
				out <- hs
			}
		}()
	}
	added := make(chan error, 1)
	go func() {
		var err error
		for hs := range out {
			if err == nil {
				err = b.AddHashes(hs)
			}
			select {
			case free <- hs[:0]:
			default:
			}
		}
		added <- err
	}()
	var err error
	for err == nil && rdr.Next() {
		rb := rdr.RecordBatch()
		if _, ok := rb.Column(0).(textArray); !ok {
			err = errors.New("sandbox: distinct values did not arrive as text")
			break
		}
		rb.Retain() // past the reader's next batch, until a worker has hashed it
		in <- rb
	}
	close(in)
	wg.Wait()
	close(out)
	return errors.Join(err, rdr.Err(), <-added)
}

// writeRawSet writes a set to path atomically (temporary file, fsync, rename), so a reader
// sees the whole set or none, and returns its number of hashes and the file's SHA-256.
func writeRawSet(path string, write func(io.Writer) (int, error)) (int, string, error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "incoming-*.rawset")
	if err != nil {
		return 0, "", err
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	defer tmp.Close()
	h := sha256.New()
	entries, err := write(io.MultiWriter(tmp, h))
	if err != nil {
		return 0, "", err
	}
	if err := tmp.Sync(); err != nil {
		return 0, "", err
	}
	if err := tmp.Close(); err != nil {
		return 0, "", err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return 0, "", err
	}
	return entries, "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

// BuildRawSet has the worker (re)build the raw-value set of a registered snapshot from the
// snapshot itself, as registration does: for data directories from before sets existed, and
// to replace a damaged set file.
func (c *Client) BuildRawSet(ctx context.Context, spec *catalog.Spec, digest string) (*wire.RawSetInfo, error) {
	args, err := c.rawValuesArgs(spec)
	if err != nil {
		return nil, err
	}
	res, err := c.call(ctx, request{Op: "rawset", Digest: digest, RawValues: args})
	if err != nil {
		return nil, err
	}
	return res.resp.RawSet, nil
}

// rawValuesArgs asks for the set of spec's identifier and sensitive columns under the
// client's key.
func (c *Client) rawValuesArgs(spec *catalog.Spec) (*rawValuesArgs, error) {
	if len(c.rawKey) == 0 {
		return nil, errcode.New(errcode.Internal, "the sandbox client has no raw-value key")
	}
	return &rawValuesArgs{Key: c.rawKey, Columns: RawValueColumns(spec)}, nil
}

// ReadRawSet reads a snapshot's raw-value set file and returns it with the file's SHA-256. The
// file holds only keyed hashes, so the engine may read it. A missing file is an error that
// matches fs.ErrNotExist; a damaged one matches rawset.ErrHashSetFormat.
func (c *Client) ReadRawSet(digest string) (*rawset.HashSet, string, error) {
	f, err := os.Open(rawSetPath(c.dir, digest))
	if err != nil {
		return nil, "", fmt.Errorf("sandbox: raw-value set of snapshot %s: %w", digest, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, "", fmt.Errorf("sandbox: raw-value set of snapshot %s: %w", digest, err)
	}
	h := sha256.New()
	set, err := rawset.ReadHashSetSize(io.TeeReader(f, h), st.Size())
	if err != nil {
		return nil, "", fmt.Errorf("sandbox: raw-value set of snapshot %s: %w", digest, err)
	}
	return set, "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}
