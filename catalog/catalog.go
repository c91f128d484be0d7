// Package catalog defines the dataset catalog spec a provider registers: grade, privacy unit,
// source, per-column tags, public bounds and domains, and the provider's lifetime budget cap.
//
// The spec is metadata only. It is read from YAML (files beside the testdata) or JSON (the API),
// unknown keys are rejected, and Validate is the single place that decides whether a spec is
// usable, so every entry point refuses the same specs with the same codes.
package catalog

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/c1b99f93/cleanroom/errcode"
)

// Grade is the data classification grade (分级). L4 (不予开放) is never operable.
type Grade string

// Grades in increasing restriction.
const (
	GradeL1 Grade = "L1"
	GradeL2 Grade = "L2"
	GradeL3 Grade = "L3"
	GradeL4 Grade = "L4"
)

// Tag classifies a column for lineage and egress decisions.
type Tag string

// Column tags.
const (
	TagIdentifier      Tag = "identifier"
	TagQuasiIdentifier Tag = "quasi_identifier"
	TagSensitive       Tag = "sensitive"
	TagAttribute       Tag = "attribute"
)

// SourceKind names a connector.
type SourceKind string

// Supported source kinds.
const (
	SourceCSV     SourceKind = "csv"
	SourceParquet SourceKind = "parquet"
	SourceArrow   SourceKind = "arrow"
)

// DefaultDomain is the operating platform's data domain, where datasets may be joined.
const DefaultDomain = "platform"

// Spec is one dataset's catalog entry.
type Spec struct {
	Name        string `json:"name" yaml:"name"`
	Provider    string `json:"provider" yaml:"provider"`
	Grade       Grade  `json:"grade" yaml:"grade"`
	Domain      string `json:"domain,omitempty" yaml:"domain,omitempty"`
	PrivacyUnit string `json:"privacy_unit,omitempty" yaml:"privacy_unit,omitempty"`
	// Public marks a public lookup table (administrative division names, ICD-10 chapters):
	// no privacy unit, no budget, no identifiers. Queries join it to a dataset; it is never
	// queried alone.
	Public  bool              `json:"public,omitempty" yaml:"public,omitempty"`
	Source  Source            `json:"source" yaml:"source"`
	Budget  Budget            `json:"budget,omitempty" yaml:"budget,omitempty"`
	Columns map[string]Column `json:"columns" yaml:"columns"`
	// Verify names the attributes of a privacy unit that applicants may verify claims
	// against (核验, kind "verify"): each answer is match or no match for one person, never
	// a value, and the provider opts in per attribute.
	Verify map[string]VerifyAttribute `json:"verify,omitempty" yaml:"verify,omitempty"`
}

// VerifyAttribute is how a verifiable attribute of a privacy unit is read from the unit's
// rows. Both sides encode it alike: the applicant claims the attribute's value as text, the
// worker reads the unit's value the same way, and only their equality is ever computed.
type VerifyAttribute struct {
	// Column is the column the attribute is read from.
	Column string `json:"column" yaml:"column"`
	// Reduce folds the unit's rows into one value: "value" (the default: the rows' one value;
	// rows that disagree, or none, verify nothing), "any" ("true" when some row's value is
	// true, else "false"), "count" (the rows, or with a column the rows where it is true),
	// "max" or "min".
	Reduce string `json:"reduce,omitempty" yaml:"reduce,omitempty"`
	// Bands, for a numeric attribute, are ascending public edges: the attribute is then the
	// band's index as text — "0" below the first edge, "1" from it up to the second, … (an
	// edge starts its band; he/verify.BandOf) — so a claim such as "registered capital at
	// least 1M" is a claim of bands (set membership).
	Bands []float64 `json:"bands,omitempty" yaml:"bands,omitempty"`
}

// Reductions of VerifyAttribute.Reduce.
const (
	ReduceValue = "value"
	ReduceAny   = "any"
	ReduceCount = "count"
	ReduceMax   = "max"
	ReduceMin   = "min"
)

// Source says where the provider's raw data is read from.
type Source struct {
	Kind SourceKind `json:"kind" yaml:"kind"`
	Path string     `json:"path" yaml:"path"`
}

// Budget is an (epsilon, delta) privacy budget.
type Budget struct {
	Epsilon float64 `json:"epsilon" yaml:"epsilon"`
	Delta   float64 `json:"delta" yaml:"delta"`
}

// Column is the provider's declaration about one column.
type Column struct {
	Tags []Tag `json:"tags" yaml:"tags"`
	// Bounds are public clamping bounds [lower, upper] for a numeric column.
	Bounds []float64 `json:"bounds,omitempty" yaml:"bounds,omitempty"`
	// Domain is the public set of values of a categorical key; grouping by it needs no
	// partition selection.
	Domain []string `json:"domain,omitempty" yaml:"domain,omitempty"`
	// DateRange is the public first and last date [from, to] (YYYY-MM-DD) of a date or
	// timestamp column: a dataset covering 2024–2025 says so. A date_trunc of the column then
	// has a public domain (every year, quarter, month, week or day in the range), so grouping
	// by it needs no partition selection and spends no delta.
	DateRange []string `json:"date_range,omitempty" yaml:"date_range,omitempty"`
}

// Has reports whether the column carries tag t.
func (c Column) Has(t Tag) bool {
	for _, x := range c.Tags {
		if x == t {
			return true
		}
	}
	return false
}

// Lower and Upper return the declared bounds; valid only when HasBounds.
func (c Column) Lower() float64 { return c.Bounds[0] }

// Upper returns the declared upper bound; valid only when HasBounds.
func (c Column) Upper() float64 { return c.Bounds[1] }

// HasBounds reports whether public clamping bounds were declared.
func (c Column) HasBounds() bool { return len(c.Bounds) == 2 }

// DateLayout is the layout of DateRange's dates.
const DateLayout = "2006-01-02"

// Dates returns the declared date range; ok is false when none (or an invalid one) was declared.
func (c Column) Dates() (from, to time.Time, ok bool) {
	if len(c.DateRange) != 2 {
		return time.Time{}, time.Time{}, false
	}
	from, err1 := time.Parse(DateLayout, c.DateRange[0])
	to, err2 := time.Parse(DateLayout, c.DateRange[1])
	if err1 != nil || err2 != nil || to.Before(from) {
		return time.Time{}, time.Time{}, false
	}
	return from, to, true
}

// Error is a spec validation error with a stable code. Its message names only spec fields.
type Error struct {
	Code    string // e.g. "invalid_spec"
	Field   string
	Message string
}

func (e *Error) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("%s: %s", e.Code, e.Message)
	}
	return fmt.Sprintf("%s: %s: %s", e.Code, e.Field, e.Message)
}

// CodeInvalidSpec is the code of every spec validation error.
const CodeInvalidSpec = string(errcode.InvalidSpec)

func invalid(field, format string, args ...any) error {
	return &Error{Code: CodeInvalidSpec, Field: field, Message: fmt.Sprintf(format, args...)}
}

var nameRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,62}$`)

// Validate checks the spec and fills defaults (Domain).
func (s *Spec) Validate() error {
	if !nameRE.MatchString(s.Name) {
		return invalid("name", "must match %s", nameRE)
	}
	if s.Provider == "" {
		return invalid("provider", "is required")
	}
	switch s.Grade {
	case GradeL1, GradeL2, GradeL3, GradeL4:
	default:
		return invalid("grade", "must be one of L1, L2, L3, L4")
	}
	if s.Domain == "" {
		s.Domain = DefaultDomain
	}
	if !nameRE.MatchString(s.Domain) {
		return invalid("domain", "must match %s", nameRE)
	}
	switch s.Source.Kind {
	case SourceCSV, SourceParquet, SourceArrow:
	default:
		return invalid("source.kind", "must be one of csv, parquet, arrow")
	}
	if s.Source.Path == "" {
		return invalid("source.path", "is required")
	}
	if s.Public {
		if s.PrivacyUnit != "" {
			return invalid("privacy_unit", "a public lookup table has no privacy unit")
		}
		if s.Budget != (Budget{}) {
			return invalid("budget", "a public lookup table has no budget")
		}
	} else {
		if !(s.Budget.Epsilon > 0) || math.IsInf(s.Budget.Epsilon, 0) {
			return invalid("budget.epsilon", "must be a positive finite number")
		}
		if !(s.Budget.Delta >= 0 && s.Budget.Delta < 1) {
			return invalid("budget.delta", "must be in [0, 1)")
		}
	}
	if len(s.Columns) == 0 {
		return invalid("columns", "at least one column must be declared")
	}
	for _, name := range s.ColumnNames() {
		c := s.Columns[name]
		f := "columns." + name
		if !nameRE.MatchString(name) {
			return invalid(f, "column names must match %s", nameRE)
		}
		if len(c.Tags) == 0 {
			return invalid(f+".tags", "at least one tag is required")
		}
		for _, t := range c.Tags {
			switch t {
			case TagIdentifier, TagQuasiIdentifier, TagSensitive, TagAttribute:
			default:
				return invalid(f+".tags", "unknown tag (allowed: identifier, quasi_identifier, sensitive, attribute)")
			}
		}
		if c.Bounds != nil {
			if len(c.Bounds) != 2 || !(c.Bounds[0] < c.Bounds[1]) ||
				math.IsInf(c.Bounds[0], 0) || math.IsInf(c.Bounds[1], 0) {
				return invalid(f+".bounds", "must be [lower, upper] with finite lower < upper")
			}
		}
		if c.DateRange != nil {
			if _, _, ok := c.Dates(); !ok {
				return invalid(f+".date_range", "must be [from, to], two dates YYYY-MM-DD with from <= to")
			}
			if c.Has(TagIdentifier) {
				return invalid(f+".date_range", "an identifier column cannot declare a public date range")
			}
		}
		seen := map[string]bool{}
		for _, v := range c.Domain {
			if seen[v] {
				// A repeated value would be released twice, each time with fresh noise.
				return invalid(f+".domain", "values must be distinct")
			}
			seen[v] = true
		}
		if c.Has(TagIdentifier) && len(c.Domain) > 0 {
			return invalid(f+".domain", "an identifier column cannot declare a public domain")
		}
		if s.Public && c.Has(TagIdentifier) {
			return invalid(f+".tags", "a public lookup table cannot hold identifiers")
		}
	}
	if s.Public {
		if len(s.Verify) > 0 {
			return invalid("verify", "a public lookup table has no persons to verify")
		}
		return nil
	}
	unit, ok := s.Columns[s.PrivacyUnit]
	if !ok {
		return invalid("privacy_unit", "must name a declared column")
	}
	if !unit.Has(TagIdentifier) {
		return invalid("privacy_unit", "the privacy unit column must be tagged identifier")
	}
	return s.validateVerify()
}

func (s *Spec) validateVerify() error {
	names := make([]string, 0, len(s.Verify))
	for n := range s.Verify {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		a := s.Verify[name]
		f := "verify." + name
		if !nameRE.MatchString(name) {
			return invalid(f, "attribute names must match %s", nameRE)
		}
		if _, ok := s.Columns[a.Column]; !ok {
			return invalid(f+".column", "must name a declared column")
		}
		if a.Column == s.PrivacyUnit {
			return invalid(f+".column", "the privacy unit is what a check is about, not an attribute of it")
		}
		switch a.Reduce {
		case "", ReduceValue, ReduceAny, ReduceCount, ReduceMax, ReduceMin:
		default:
			return invalid(f+".reduce", "must be one of value, any, count, max, min")
		}
		if a.Bands != nil {
			if len(a.Bands) == 0 || len(a.Bands) > 100 {
				return invalid(f+".bands", "must hold 1 to 100 edges")
			}
			for i, e := range a.Bands {
				if math.IsNaN(e) || math.IsInf(e, 0) || (i > 0 && !(a.Bands[i-1] < e)) {
					return invalid(f+".bands", "must be finite and strictly ascending")
				}
			}
			if a.Reduce == ReduceAny {
				return invalid(f+".bands", "an any attribute is true or false, not a number to band")
			}
		}
	}
	return nil
}

// Operable reports whether jobs may run on the dataset at all (L4 never).
func (s *Spec) Operable() bool { return s.Grade != GradeL4 }

// ColumnNames returns the declared column names in sorted order.
func (s *Spec) ColumnNames() []string {
	names := make([]string, 0, len(s.Columns))
	for n := range s.Columns {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// ParseYAML decodes a spec from YAML, rejecting unknown keys, and validates it.
func ParseYAML(data []byte) (*Spec, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var s Spec
	if err := dec.Decode(&s); err != nil {
		return nil, &Error{Code: CodeInvalidSpec, Message: "cannot decode YAML spec: " + err.Error()}
	}
	var extra any
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, &Error{Code: CodeInvalidSpec, Message: "a spec file holds exactly one YAML document"}
	}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return &s, nil
}

// ParseJSON decodes a spec from JSON, rejecting unknown keys, and validates it.
func ParseJSON(data []byte) (*Spec, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var s Spec
	if err := dec.Decode(&s); err != nil {
		return nil, &Error{Code: CodeInvalidSpec, Message: "cannot decode JSON spec: " + err.Error()}
	}
	if dec.More() {
		return nil, &Error{Code: CodeInvalidSpec, Message: "unexpected content after the JSON spec"}
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, &Error{Code: CodeInvalidSpec, Message: "unexpected content after the JSON spec"}
	}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return &s, nil
}

// LoadFile reads a YAML or JSON spec and resolves a relative source path against the spec's
// directory, to an absolute path.
func LoadFile(path string) (*Spec, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("catalog: read spec: %w", err)
	}
	var s *Spec
	if filepath.Ext(path) == ".json" {
		s, err = ParseJSON(data)
	} else {
		s, err = ParseYAML(data)
	}
	if err != nil {
		return nil, err
	}
	if !filepath.IsAbs(s.Source.Path) {
		// Absolute, because the sandbox worker that reads it runs in its own directory.
		if s.Source.Path, err = filepath.Abs(filepath.Join(filepath.Dir(path), s.Source.Path)); err != nil {
			return nil, fmt.Errorf("catalog: resolve source path: %w", err)
		}
	}
	return s, nil
}

// ErrNotFound is returned when a dataset is not in the catalog.
var ErrNotFound = errors.New("dataset not found")
