package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/c1b99f93/cleanroom/catalog"
	"github.com/c1b99f93/cleanroom/connectors/synth"
)

// dataSeed is the generator's seed, the Go benchmarks' (engine BenchmarkDPAggregates), so the
// folders are shared with them.
const dataSeed = 1

// data is one scale's generated files.
type data struct {
	dir     string
	persons int
}

// needed are the files a scale's workloads read.
var needed = []struct{ name, ext string }{
	{"medical_visits", ".parquet"}, {"medical_visits", ".csv"}, {"residents", ".parquet"},
}

func (d *data) path(name, ext string) string {
	return synth.Path(synth.Options{OutDir: d.dir}, name, ext)
}

// ensureData returns the scale's folder (DataDir/persons-N, N = rows/5), generating what is
// missing once. The generator is deterministic (same persons and seed, same bytes), so files
// written beside ones another run left are the same data; they are written into a fresh
// folder and moved in, never over a file someone may be reading.
func ensureData(ctx context.Context, o Options, rows int) (*data, error) {
	persons := max(1, rows/5)
	dir, err := filepath.Abs(filepath.Join(o.DataDir, "persons-"+strconv.Itoa(persons)))
	if err != nil {
		return nil, err
	}
	d := &data{dir: dir, persons: persons}
	var missing []string
	for _, f := range needed {
		if _, err := os.Stat(d.path(f.name, f.ext)); errors.Is(err, os.ErrNotExist) {
			missing = append(missing, f.name+f.ext)
		} else if err != nil {
			return nil, err
		}
	}
	if len(missing) == 0 {
		return d, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp(dir, ".gen-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	start := time.Now()
	if _, err := synth.Generate(ctx, synth.Options{Persons: persons, Seed: dataSeed, OutDir: tmp, CSV: true}); err != nil {
		return nil, fmt.Errorf("bench: generating %d persons: %w", persons, err)
	}
	for _, f := range missing {
		if err := os.Rename(filepath.Join(tmp, f), filepath.Join(dir, f)); err != nil {
			return nil, err
		}
	}
	fmt.Fprintf(o.Log, "generated %d persons into %s in %s\n", persons, dir, time.Since(start).Round(time.Millisecond))
	return d, nil
}

// spec is the catalog spec of dataset name over this scale's file (CSV or Parquet), with a
// lifetime budget large enough for every repetition.
func (d *data) spec(o Options, name string, csv bool) (*catalog.Spec, error) {
	spec, err := catalog.LoadFile(filepath.Join(o.DatasetsDir, name+".yaml"))
	if err != nil {
		return nil, fmt.Errorf("bench: the catalog spec of %s (run from the repository root or pass --datasets): %w", name, err)
	}
	spec.Budget = datasetBudget
	spec.Source.Kind, spec.Source.Path = catalog.SourceParquet, d.path(name, ".parquet")
	if csv {
		spec.Source.Kind, spec.Source.Path = catalog.SourceCSV, d.path(name, ".csv")
	}
	return spec, nil
}
