package synth

import (
	"bytes"
	"context"
	"encoding/csv"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	"github.com/c1b99f93/cleanroom/catalog"
)

// committedDir holds the committed scenario datasets and their catalog specs.
var committedDir = filepath.Join("..", "..", "testdata", "datasets")

// Committed datasets are `cleanroom testdata gen --scale 10000 --seed 1 --by-provider`, each in
// its provider's folder (the provider's import root); the L4 stand-in criminal_records is the
// residents of `--scale 200 --seed 2`.
const (
	committedPersons = 10000
	committedSeed    = 1
	maxCommittedSize = 5 << 20

	standInPersons = 200
	standInSeed    = 2
)

func TestCommittedSpecsMatchData(t *testing.T) {
	specs, err := filepath.Glob(filepath.Join(committedDir, "*.yaml"))
	if err != nil || len(specs) == 0 {
		t.Fatalf("no specs in %s (%v)", committedDir, err)
	}
	want := map[string]struct {
		provider string
		grade    catalog.Grade
	}{
		"residents":        {"public-security-bureau", catalog.GradeL3},
		"medical_visits":   {"health-commission", catalog.GradeL2},
		"insurance_claims": {"medical-insurance-bureau", catalog.GradeL2},
		"enterprises":      {"market-regulation-bureau", catalog.GradeL1},
		"criminal_records": {"public-security-bureau", catalog.GradeL4},
	}
	seen := map[string]bool{}
	for _, path := range specs {
		spec, err := catalog.LoadFile(path)
		if err != nil {
			t.Errorf("%s: %v", path, err)
			continue
		}
		// Each provider's data lie in its own folder, its import root (--import-root ORG=DIR).
		if got := filepath.Base(filepath.Dir(spec.Source.Path)); got != spec.Provider {
			t.Errorf("%s: source in folder %s, want its provider's folder %s", path, got, spec.Provider)
		}
		if spec.Public {
			checkLookupTable(t, spec)
			continue
		}
		seen[spec.Name] = true
		if w, ok := want[spec.Name]; !ok {
			t.Errorf("%s: unexpected dataset %q", path, spec.Name)
		} else if spec.Provider != w.provider || spec.Grade != w.grade {
			t.Errorf("%s: provider %s grade %s, want %s %s", path, spec.Provider, spec.Grade, w.provider, w.grade)
		}
		if spec.Name == "criminal_records" && spec.Operable() {
			t.Errorf("%s: an L4 dataset must not be operable", path)
		}
		if spec.Source.Kind != catalog.SourceParquet {
			t.Errorf("%s: source kind %s", path, spec.Source.Kind)
			continue
		}
		tb := readTable(t, spec.Source.Path)
		for _, col := range tb.names {
			if _, ok := spec.Columns[col]; !ok {
				t.Errorf("%s: parquet column %s is not declared", path, col)
			}
		}
		for _, name := range spec.ColumnNames() {
			c := spec.Columns[name]
			data, ok := tb.cols[name]
			if !ok {
				t.Errorf("%s: declared column %s is not in %s", path, name, spec.Source.Path)
				continue
			}
			if c.Bounds != nil {
				switch data.(type) {
				case []float64, []int64:
				default:
					t.Errorf("%s: bounds on non-numeric column %s", path, name)
				}
			}
			if len(c.Domain) == 0 {
				continue
			}
			if len(slices.Compact(slices.Sorted(slices.Values(c.Domain)))) != len(c.Domain) {
				t.Errorf("%s: column %s domain has duplicates", path, name)
			}
			var values []string
			switch v := data.(type) {
			case []string:
				values = v
			case []bool:
				for _, b := range v {
					values = append(values, strconv.FormatBool(b))
				}
			default:
				t.Errorf("%s: domain on column %s of unexpected type %T", path, name, data)
				continue
			}
			missing := map[string]bool{}
			for _, x := range values {
				if !slices.Contains(c.Domain, x) {
					missing[x] = true
				}
			}
			if len(missing) > 0 {
				t.Errorf("%s: column %s has values outside its domain: %v", path, name, missing)
			}
		}
	}
	for name := range want {
		if !seen[name] {
			t.Errorf("no spec for %s", name)
		}
	}
}

// TestCommittedDataReproducible regenerates the committed datasets and compares bytes, so the
// committed files are exactly what the generator produces. After an intended generator change,
// regenerate with: cleanroom testdata gen --scale 10000 --seed 1 --out testdata/datasets --by-provider
func TestCommittedDataReproducible(t *testing.T) {
	dir := t.TempDir()
	opt := Options{Persons: committedPersons, Seed: committedSeed, OutDir: dir, ByProvider: true}
	if _, err := Generate(context.Background(), opt); err != nil {
		t.Fatal(err)
	}
	for _, name := range Datasets {
		committed, err := os.ReadFile(Path(Options{OutDir: committedDir, ByProvider: true}, name, ".parquet"))
		if err != nil {
			t.Fatal(err)
		}
		if len(committed) >= maxCommittedSize {
			t.Errorf("%s.parquet is %d bytes, keep committed files under %d", name, len(committed), maxCommittedSize)
		}
		if !bytes.Equal(committed, mustRead(t, Path(opt, name, ".parquet"))) {
			t.Errorf("testdata/datasets/%s/%s.parquet differs from the generator's output; regenerate with "+
				"`cleanroom testdata gen --scale %d --seed %d --out testdata/datasets --by-provider`", Providers[name], name, committedPersons, committedSeed)
		}
	}
	standIn := Options{Persons: standInPersons, Seed: standInSeed, OutDir: t.TempDir()}
	if _, err := Generate(context.Background(), standIn); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(mustRead(t, filepath.Join(committedDir, "public-security-bureau", "criminal_records.parquet")), mustRead(t, Path(standIn, "residents", ".parquet"))) {
		t.Errorf("the L4 stand-in criminal_records.parquet is not the residents of --scale %d --seed %d", standInPersons, standInSeed)
	}
}

// checkLookupTable checks a committed public lookup table against the generator's public lists,
// so joins against it match the generated data: every district code with its name, and every
// diagnosis letter the generator uses.
func checkLookupTable(t *testing.T, spec *catalog.Spec) {
	t.Helper()
	f, err := os.Open(spec.Source.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil || len(rows) < 2 {
		t.Fatalf("%s: %v", spec.Source.Path, err)
	}
	col := func(name string) []string {
		i := slices.Index(rows[0], name)
		if i < 0 {
			t.Fatalf("%s has no column %s", spec.Source.Path, name)
		}
		var out []string
		for _, r := range rows[1:] {
			out = append(out, r[i])
		}
		return out
	}
	switch spec.Name {
	case "districts":
		if !slices.Equal(col("code"), Districts) || !slices.Equal(col("name"), DistrictNames) {
			t.Errorf("%s does not list synth.Districts with their names", spec.Source.Path)
		}
	case "icd10_chapters":
		var letters []string
		for _, d := range diagnoses {
			if l := d.code[:1]; !slices.Contains(letters, l) {
				letters = append(letters, l)
			}
		}
		slices.Sort(letters)
		if !slices.Equal(col("letter"), letters) {
			t.Errorf("%s letters %v, the generator uses %v", spec.Source.Path, col("letter"), letters)
		}
	default:
		t.Errorf("unexpected lookup table %q", spec.Name)
	}
}
