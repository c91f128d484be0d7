package redteam

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/c1b99f93/cleanroom/catalog"
	"github.com/c1b99f93/cleanroom/connectors"
)

// Truth is the raw data an operator scores the attacks against. It is read inside the data
// domain from the provider's copy of the datasets and never sent anywhere: the report carries
// scores and counts computed from it, never its values.
type Truth struct {
	// tables holds each dataset's columns as text, by dataset and column name.
	tables map[string]map[string][]string
	// identifiers are every value of every identifier column of every dataset read.
	identifiers map[string]struct{}
}

// LoadTruth reads every dataset spec (*.yaml) in dir and its source through the connectors (the
// same readers the sandbox uses), keeping each column as text. Public lookup tables and L4
// datasets are skipped: they are not on any grant.
func LoadTruth(ctx context.Context, dir string) (*Truth, error) {
	specs, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return nil, fmt.Errorf("redteam: truth dir: %w", err)
	}
	if len(specs) == 0 {
		return nil, fmt.Errorf("redteam: truth dir %s holds no dataset specs (*.yaml): %w", dir, os.ErrNotExist)
	}
	t := &Truth{tables: map[string]map[string][]string{}, identifiers: map[string]struct{}{}}
	for _, p := range specs {
		spec, err := catalog.LoadFile(p)
		if err != nil {
			return nil, fmt.Errorf("redteam: truth spec %s: %w", filepath.Base(p), err)
		}
		if spec.Public || !spec.Operable() {
			continue
		}
		cols, err := readColumns(ctx, spec)
		if err != nil {
			return nil, fmt.Errorf("redteam: truth dataset %s: %w", spec.Name, err)
		}
		t.tables[spec.Name] = cols
		for name, c := range spec.Columns {
			if !c.Has(catalog.TagIdentifier) {
				continue
			}
			for _, v := range cols[name] {
				if v = strings.TrimSpace(v); v != "" {
					t.identifiers[v] = struct{}{}
				}
			}
		}
	}
	return t, nil
}

// readColumns reads a dataset's source into text columns.
func readColumns(ctx context.Context, spec *catalog.Spec) (map[string][]string, error) {
	rd, err := connectors.Open(ctx, string(spec.Source.Kind), spec.Source.Path, connectors.Options{})
	if err != nil {
		return nil, err
	}
	defer rd.Release()
	cols := map[string][]string{}
	for rd.Next() {
		rec := rd.RecordBatch()
		for i, f := range rec.Schema().Fields() {
			arr := rec.Column(i)
			for r := range arr.Len() {
				v := ""
				if arr.IsValid(r) {
					v = arr.ValueStr(r)
				}
				cols[f.Name] = append(cols[f.Name], v)
			}
		}
	}
	if err := rd.Err(); err != nil {
		return nil, err
	}
	return cols, nil
}

// column returns a dataset's column, or an error naming what is missing.
func (t *Truth) column(dataset, col string) ([]string, error) {
	c, ok := t.tables[dataset][col]
	if !ok {
		return nil, fmt.Errorf("redteam: the truth has no column %s.%s", dataset, col)
	}
	return c, nil
}

// isIdentifier reports whether s is a raw value of an identifier column.
func (t *Truth) isIdentifier(s string) bool {
	_, ok := t.identifiers[strings.TrimSpace(s)]
	return ok
}

// visits is the attacked dataset's rows as the attacks need them.
type visits struct {
	person, district, ageBand, date []string
	inpatient                       []bool
}

// visits reads the attacked dataset's columns from the truth.
func (t *Truth) visits() (*visits, error) {
	v := &visits{}
	for _, c := range []struct {
		name string
		dst  *[]string
	}{{colPerson, &v.person}, {colDistrict, &v.district}, {colAgeBand, &v.ageBand}, {colDate, &v.date}} {
		col, err := t.column(dataset, c.name)
		if err != nil {
			return nil, err
		}
		*c.dst = col
	}
	inp, err := t.column(dataset, colInpatient)
	if err != nil {
		return nil, err
	}
	for i := range inp {
		v.date[i] = dayOf(v.date[i])
		v.inpatient = append(v.inpatient, inp[i] == "true")
	}
	return v, nil
}

// persons counts the distinct persons with a sensitive (inpatient) row matching match: what a
// count with one row per person estimates.
func (v *visits) persons(match func(i int) bool) int {
	seen := map[string]bool{}
	for i := range v.person {
		if v.inpatient[i] && match(i) {
			seen[v.person[i]] = true
		}
	}
	return len(seen)
}

// bits says for each target whether any sensitive row falls in its cell.
func (v *visits) bits(ts []target) []bool {
	cells := map[target]bool{}
	for i := range v.person {
		if v.inpatient[i] {
			cells[target{v.district[i], v.ageBand[i], v.date[i]}] = true
		}
	}
	out := make([]bool, len(ts))
	for i, t := range ts {
		out[i] = cells[t]
	}
	return out
}
