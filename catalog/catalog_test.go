package catalog_test

import (
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/c1b99f93/cleanroom/catalog"
)

// committedSpecs are the dataset specs checked in beside the test data.
func committedSpecs(t testing.TB) []string {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join("..", "testdata", "datasets", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) == 0 {
		t.Fatal("no committed specs found under testdata/datasets")
	}
	return paths
}

// baseSpec is a valid spec as a generic document, so that one corpus of mutations feeds both
// the YAML and the JSON decoder (and the fuzz seeds).
func baseSpec() map[string]any {
	return map[string]any{
		"name":         "visits",
		"provider":     "health-commission",
		"grade":        "L2",
		"privacy_unit": "person_id",
		"source":       map[string]any{"kind": "parquet", "path": "visits.parquet"},
		"budget":       map[string]any{"epsilon": 1.0, "delta": 1e-6},
		"columns": map[string]any{
			"person_id": map[string]any{"tags": []any{"identifier"}},
			"district":  map[string]any{"tags": []any{"quasi_identifier"}, "domain": []any{"530102", "530103"}},
			"cost":      map[string]any{"tags": []any{"sensitive"}, "bounds": []any{0.0, 50000.0}},
		},
	}
}

func sub(m map[string]any, keys ...string) map[string]any {
	for _, k := range keys {
		m = m[k].(map[string]any)
	}
	return m
}

// specCase is one document of the corpus: a mutation of baseSpec and the Field of the
// invalid_spec error it must produce ("" for a decode error such as an unknown key).
type specCase struct {
	name     string
	mutate   func(m map[string]any)
	field    string
	yamlOnly bool // JSON cannot express the value (NaN, ±Inf)
}

var refused = []specCase{
	{"public table with a privacy unit", func(m map[string]any) {
		m["public"] = true
		delete(m, "budget")
	}, "privacy_unit", false},
	{"public table with a budget", func(m map[string]any) {
		m["public"] = true
		delete(m, "privacy_unit")
		delete(sub(m, "columns"), "person_id")
	}, "budget", false},
	{"public table with an identifier", func(m map[string]any) {
		m["public"] = true
		delete(m, "privacy_unit")
		delete(m, "budget")
	}, "columns.person_id.tags", false},
	{"unknown top-level key", func(m map[string]any) { m["owner"] = "someone" }, "", false},
	{"unknown source key", func(m map[string]any) { sub(m, "source")["format"] = "x" }, "", false},
	{"unknown budget key", func(m map[string]any) { sub(m, "budget")["rho"] = 1.0 }, "", false},
	{"unknown column key", func(m map[string]any) { sub(m, "columns", "cost")["unit"] = "CNY" }, "", false},
	{"epsilon of the wrong type", func(m map[string]any) { sub(m, "budget")["epsilon"] = "one" }, "", false},

	{"empty name", func(m map[string]any) { m["name"] = "" }, "name", false},
	{"name with capitals", func(m map[string]any) { m["name"] = "Visits" }, "name", false},
	{"name starting with a digit", func(m map[string]any) { m["name"] = "1visits" }, "name", false},
	{"name with a hyphen", func(m map[string]any) { m["name"] = "visits-2024" }, "name", false},
	{"name with a path separator", func(m map[string]any) { m["name"] = "../visits" }, "name", false},
	{"name with a trailing newline", func(m map[string]any) { m["name"] = "visits\n" }, "name", false},
	{"name of 64 characters", func(m map[string]any) { m["name"] = "v" + strings.Repeat("x", 63) }, "name", false},

	{"missing provider", func(m map[string]any) { delete(m, "provider") }, "provider", false},
	{"empty provider", func(m map[string]any) { m["provider"] = "" }, "provider", false},

	{"missing grade", func(m map[string]any) { delete(m, "grade") }, "grade", false},
	{"grade L5", func(m map[string]any) { m["grade"] = "L5" }, "grade", false},
	{"grade in lower case", func(m map[string]any) { m["grade"] = "l1" }, "grade", false},
	{"grade L0", func(m map[string]any) { m["grade"] = "L0" }, "grade", false},

	{"domain with capitals", func(m map[string]any) { m["domain"] = "Platform" }, "domain", false},

	{"unknown source kind", func(m map[string]any) { sub(m, "source")["kind"] = "s3" }, "source.kind", false},
	{"missing source path", func(m map[string]any) { delete(sub(m, "source"), "path") }, "source.path", false},

	{"epsilon zero", func(m map[string]any) { sub(m, "budget")["epsilon"] = 0.0 }, "budget.epsilon", false},
	{"epsilon negative", func(m map[string]any) { sub(m, "budget")["epsilon"] = -1.0 }, "budget.epsilon", false},
	{"epsilon missing", func(m map[string]any) { delete(sub(m, "budget"), "epsilon") }, "budget.epsilon", false},
	{"epsilon NaN", func(m map[string]any) { sub(m, "budget")["epsilon"] = math.NaN() }, "budget.epsilon", true},
	{"epsilon +Inf", func(m map[string]any) { sub(m, "budget")["epsilon"] = math.Inf(1) }, "budget.epsilon", true},

	{"delta negative", func(m map[string]any) { sub(m, "budget")["delta"] = -1e-9 }, "budget.delta", false},
	{"delta one", func(m map[string]any) { sub(m, "budget")["delta"] = 1.0 }, "budget.delta", false},
	{"delta above one", func(m map[string]any) { sub(m, "budget")["delta"] = 1.5 }, "budget.delta", false},
	{"delta NaN", func(m map[string]any) { sub(m, "budget")["delta"] = math.NaN() }, "budget.delta", true},

	{"empty columns", func(m map[string]any) { m["columns"] = map[string]any{} }, "columns", false},
	{"missing columns", func(m map[string]any) { delete(m, "columns") }, "columns", false},
	{"column name with capitals", func(m map[string]any) {
		sub(m, "columns")["Cost"] = map[string]any{"tags": []any{"sensitive"}}
	}, "columns.Cost", false},
	{"column without tags", func(m map[string]any) { sub(m, "columns", "cost")["tags"] = []any{} }, "columns.cost.tags", false},
	{"unknown tag", func(m map[string]any) { sub(m, "columns", "cost")["tags"] = []any{"secret"} }, "columns.cost.tags", false},
	{"unknown tag beside a known one", func(m map[string]any) {
		sub(m, "columns", "cost")["tags"] = []any{"sensitive", "Sensitive"}
	}, "columns.cost.tags", false},

	{"bounds lower above upper", func(m map[string]any) { sub(m, "columns", "cost")["bounds"] = []any{10.0, 0.0} }, "columns.cost.bounds", false},
	{"repeated domain value", func(m map[string]any) {
		sub(m, "columns", "district")["domain"] = []any{"530102", "530102"}
	}, "columns.district.domain", false},
	// Equal bounds give the DP library a zero sensitivity it cannot calibrate noise for.
	{"bounds of equal ends", func(m map[string]any) { sub(m, "columns", "cost")["bounds"] = []any{7.0, 7.0} }, "columns.cost.bounds", false},
	{"bounds with one element", func(m map[string]any) { sub(m, "columns", "cost")["bounds"] = []any{10.0} }, "columns.cost.bounds", false},
	{"bounds with three elements", func(m map[string]any) { sub(m, "columns", "cost")["bounds"] = []any{0.0, 1.0, 2.0} }, "columns.cost.bounds", false},
	{"bounds empty", func(m map[string]any) { sub(m, "columns", "cost")["bounds"] = []any{} }, "columns.cost.bounds", false},
	{"bounds lower -Inf", func(m map[string]any) {
		sub(m, "columns", "cost")["bounds"] = []any{math.Inf(-1), 0.0}
	}, "columns.cost.bounds", true},
	{"bounds upper +Inf", func(m map[string]any) {
		sub(m, "columns", "cost")["bounds"] = []any{0.0, math.Inf(1)}
	}, "columns.cost.bounds", true},
	{"bounds NaN", func(m map[string]any) {
		sub(m, "columns", "cost")["bounds"] = []any{math.NaN(), 1.0}
	}, "columns.cost.bounds", true},

	{"identifier column with a domain", func(m map[string]any) {
		sub(m, "columns", "person_id")["domain"] = []any{"p1", "p2"}
	}, "columns.person_id.domain", false},

	{"privacy unit missing", func(m map[string]any) { delete(m, "privacy_unit") }, "privacy_unit", false},
	{"privacy unit not declared", func(m map[string]any) { m["privacy_unit"] = "patient_id" }, "privacy_unit", false},
	{"privacy unit not tagged identifier", func(m map[string]any) { m["privacy_unit"] = "district" }, "privacy_unit", false},

	{"verify: an undeclared column", func(m map[string]any) {
		m["verify"] = map[string]any{"capital": map[string]any{"column": "capital"}}
	}, "verify.capital.column", false},
	{"verify: the privacy unit itself", func(m map[string]any) {
		m["verify"] = map[string]any{"who": map[string]any{"column": "person_id"}}
	}, "verify.who.column", false},
	{"verify: an unknown reduction", func(m map[string]any) {
		m["verify"] = map[string]any{"cost": map[string]any{"column": "cost", "reduce": "sum"}}
	}, "verify.cost.reduce", false},
	{"verify: bands not ascending", func(m map[string]any) {
		m["verify"] = map[string]any{"cost": map[string]any{"column": "cost", "bands": []any{100.0, 100.0}}}
	}, "verify.cost.bands", false},
	{"verify: empty bands", func(m map[string]any) {
		m["verify"] = map[string]any{"cost": map[string]any{"column": "cost", "bands": []any{}}}
	}, "verify.cost.bands", false},
	{"verify: banded any", func(m map[string]any) {
		m["verify"] = map[string]any{"cost": map[string]any{"column": "cost", "reduce": "any", "bands": []any{1.0}}}
	}, "verify.cost.bands", false},
	{"verify: a bad attribute name", func(m map[string]any) {
		m["verify"] = map[string]any{"Cost Band": map[string]any{"column": "cost"}}
	}, "verify.Cost Band", false},
	{"verify: an unknown key", func(m map[string]any) {
		m["verify"] = map[string]any{"cost": map[string]any{"column": "cost", "edges": []any{1.0}}}
	}, "", false},
	{"verify on a public table", func(m map[string]any) {
		m["public"] = true
		delete(m, "privacy_unit")
		delete(m, "budget")
		delete(sub(m, "columns"), "person_id")
		m["verify"] = map[string]any{"cost": map[string]any{"column": "cost"}}
	}, "verify", false},
}

// accepted are valid variations of baseSpec.
var accepted = []specCase{
	{"base", func(map[string]any) {}, "", false},
	{"name of 63 characters", func(m map[string]any) { m["name"] = "v" + strings.Repeat("x", 62) }, "", false},
	{"explicit domain", func(m map[string]any) { m["domain"] = "health" }, "", false},
	{"delta zero", func(m map[string]any) { sub(m, "budget")["delta"] = 0.0 }, "", false},
	{"negative bounds", func(m map[string]any) { sub(m, "columns", "cost")["bounds"] = []any{-100.0, -1.0} }, "", false},
	{"grade L4", func(m map[string]any) { m["grade"] = "L4" }, "", false},
	{"unit with several tags", func(m map[string]any) {
		sub(m, "columns", "person_id")["tags"] = []any{"quasi_identifier", "identifier"}
	}, "", false},
	{"csv source", func(m map[string]any) { sub(m, "source")["kind"] = "csv" }, "", false},
	{"arrow source", func(m map[string]any) { sub(m, "source")["kind"] = "arrow" }, "", false},
	{"public lookup table", func(m map[string]any) {
		m["public"] = true
		delete(m, "privacy_unit")
		delete(m, "budget")
		delete(sub(m, "columns"), "person_id")
	}, "", false},
}

func (c specCase) doc() map[string]any {
	m := baseSpec()
	c.mutate(m)
	return m
}

func (c specCase) yamlBytes(t testing.TB) []byte {
	b, err := yaml.Marshal(c.doc())
	if err != nil {
		t.Fatalf("%s: yaml.Marshal: %v", c.name, err)
	}
	return b
}

func (c specCase) jsonBytes(t testing.TB) []byte {
	b, err := json.Marshal(c.doc())
	if err != nil {
		t.Fatalf("%s: json.Marshal: %v", c.name, err)
	}
	return b
}

var parsers = []struct {
	name  string
	parse func([]byte) (*catalog.Spec, error)
	bytes func(specCase, testing.TB) []byte
}{
	{"yaml", catalog.ParseYAML, specCase.yamlBytes},
	{"json", catalog.ParseJSON, specCase.jsonBytes},
}

func TestParseRefusesInvalidSpecWithCodeAndField(t *testing.T) {
	for _, p := range parsers {
		for _, c := range refused {
			if c.yamlOnly && p.name == "json" {
				continue
			}
			t.Run(p.name+"/"+c.name, func(t *testing.T) {
				s, err := p.parse(p.bytes(c, t))
				if err == nil {
					t.Fatalf("accepted %+v; want invalid_spec at %q", s, c.field)
				}
				if s != nil {
					t.Errorf("returned a spec beside the error")
				}
				var ce *catalog.Error
				if !errors.As(err, &ce) {
					t.Fatalf("error %v is %T, want *catalog.Error", err, err)
				}
				if ce.Code != catalog.CodeInvalidSpec || ce.Field != c.field {
					t.Errorf("got code %q field %q, want %q field %q (%v)", ce.Code, ce.Field, catalog.CodeInvalidSpec, c.field, err)
				}
			})
		}
	}
}

func TestParseAcceptsValidSpecAndFillsDefaults(t *testing.T) {
	for _, p := range parsers {
		for _, c := range accepted {
			t.Run(p.name+"/"+c.name, func(t *testing.T) {
				s, err := p.parse(p.bytes(c, t))
				if err != nil {
					t.Fatal(err)
				}
				want := c.doc()
				wantUnit, _ := want["privacy_unit"].(string)
				if s.Name != want["name"] || s.PrivacyUnit != wantUnit || string(s.Grade) != want["grade"] {
					t.Errorf("decoded name %q unit %q grade %q, want %v %v %v", s.Name, s.PrivacyUnit, s.Grade, want["name"], want["privacy_unit"], want["grade"])
				}
				wantDomain, ok := want["domain"].(string)
				if !ok {
					wantDomain = catalog.DefaultDomain
				}
				if s.Domain != wantDomain {
					t.Errorf("domain %q, want %q", s.Domain, wantDomain)
				}
				if len(s.Columns) != len(sub(want, "columns")) {
					t.Errorf("decoded %d columns, want %d", len(s.Columns), len(sub(want, "columns")))
				}
			})
		}
	}
}

func TestDefaultDomainIsPlatform(t *testing.T) {
	if catalog.DefaultDomain != "platform" {
		t.Fatalf("DefaultDomain = %q", catalog.DefaultDomain)
	}
	s := &catalog.Spec{Name: "visits", Provider: "p", Grade: catalog.GradeL1, PrivacyUnit: "id",
		Source: catalog.Source{Kind: catalog.SourceCSV, Path: "x.csv"}, Budget: catalog.Budget{Epsilon: 1},
		Columns: map[string]catalog.Column{"id": {Tags: []catalog.Tag{catalog.TagIdentifier}}}}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	if s.Domain != "platform" {
		t.Errorf("Validate filled domain %q, want platform", s.Domain)
	}
	s.Domain = "health"
	if err := s.Validate(); err != nil || s.Domain != "health" {
		t.Errorf("Validate changed an explicit domain to %q (err %v)", s.Domain, err)
	}
}

func TestLoadFileAcceptsCommittedSpecsAndMakesSourceAbsolute(t *testing.T) {
	for _, path := range committedSpecs(t) {
		t.Run(filepath.Base(path), func(t *testing.T) {
			s, err := catalog.LoadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !filepath.IsAbs(s.Source.Path) {
				t.Fatalf("source path %q is not absolute", s.Source.Path)
			}
			dir, err := filepath.Abs(filepath.Dir(path))
			if err != nil {
				t.Fatal(err)
			}
			// The committed data lie in a folder per provider organisation (its import root).
			if want := filepath.Join(dir, s.Provider); filepath.Dir(s.Source.Path) != want {
				t.Errorf("source %q not resolved against the spec's directory %q (into its provider's folder %s)", s.Source.Path, dir, want)
			}
			if _, err := os.Stat(s.Source.Path); err != nil {
				t.Errorf("resolved source does not exist: %v", err)
			}
			if s.Domain != catalog.DefaultDomain {
				t.Errorf("domain %q, want the default %q", s.Domain, catalog.DefaultDomain)
			}
			if !s.Public && !s.Columns[s.PrivacyUnit].Has(catalog.TagIdentifier) {
				t.Errorf("privacy unit %q is not tagged identifier", s.PrivacyUnit)
			}
			if wantOp := s.Grade != catalog.GradeL4; s.Operable() != wantOp {
				t.Errorf("grade %s: Operable() = %v", s.Grade, s.Operable())
			}
		})
	}
}

func TestLoadFileReadsJSONAndKeepsAbsoluteSourcePath(t *testing.T) {
	dir := t.TempDir()
	abs := filepath.Join(dir, "elsewhere", "data.parquet")
	for _, tc := range []struct {
		name, source, want string
	}{
		{"relative source resolved against the spec", "data/visits.parquet", filepath.Join(dir, "data", "visits.parquet")},
		{"absolute source kept", abs, abs},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := baseSpec()
			sub(m, "source")["path"] = tc.source
			b, err := json.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, "visits.json")
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}
			s, err := catalog.LoadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if s.Source.Path != tc.want {
				t.Errorf("source path %q, want %q", s.Source.Path, tc.want)
			}
		})
	}
}

func TestLoadFileRefusesYAMLWithUnknownKeyAsInvalidSpec(t *testing.T) {
	path := filepath.Join(t.TempDir(), "visits.yaml")
	c := refused[0]
	if err := os.WriteFile(path, c.yamlBytes(t), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := catalog.LoadFile(path)
	var ce *catalog.Error
	if !errors.As(err, &ce) || ce.Code != catalog.CodeInvalidSpec {
		t.Fatalf("LoadFile(%s) = %v, want invalid_spec", c.name, err)
	}
}

func TestOperableIsFalseOnlyForL4(t *testing.T) {
	for _, tc := range []struct {
		grade catalog.Grade
		want  bool
	}{
		{catalog.GradeL1, true},
		{catalog.GradeL2, true},
		{catalog.GradeL3, true},
		{catalog.GradeL4, false},
	} {
		t.Run(string(tc.grade), func(t *testing.T) {
			s := catalog.Spec{Grade: tc.grade}
			if got := s.Operable(); got != tc.want {
				t.Errorf("Operable() = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestColumnBoundsAccessors(t *testing.T) {
	for _, tc := range []struct {
		name      string
		col       catalog.Column
		hasBounds bool
	}{
		{"no bounds", catalog.Column{}, false},
		{"two bounds", catalog.Column{Bounds: []float64{-1, 5}}, true},
		{"one bound", catalog.Column{Bounds: []float64{1}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.col.HasBounds(); got != tc.hasBounds {
				t.Fatalf("HasBounds() = %v, want %v", got, tc.hasBounds)
			}
			if tc.hasBounds && (tc.col.Lower() != tc.col.Bounds[0] || tc.col.Upper() != tc.col.Bounds[1]) {
				t.Errorf("Lower, Upper = %v, %v; want %v", tc.col.Lower(), tc.col.Upper(), tc.col.Bounds)
			}
		})
	}
}

func TestColumnNamesAreSorted(t *testing.T) {
	s, err := catalog.ParseYAML(accepted[0].yamlBytes(t))
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(s.ColumnNames(), ",")
	if want := "cost,district,person_id"; got != want {
		t.Errorf("ColumnNames() = %s, want %s", got, want)
	}
}

func TestParseRefusesTrailingDocuments(t *testing.T) {
	valid, err := os.ReadFile(filepath.Join("..", "testdata", "datasets", "medical_visits.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := catalog.ParseYAML(append(append([]byte{}, valid...), []byte("\n---\nname: other\n")...)); err == nil {
		t.Fatal("a second YAML document was accepted")
	}
	spec, err := catalog.ParseYAML(valid)
	if err != nil {
		t.Fatal(err)
	}
	js, _ := json.Marshal(spec)
	for _, tail := range []string{`{"unknown": 1}`, `garbage`} {
		if _, err := catalog.ParseJSON(append(append([]byte{}, js...), tail...)); err == nil {
			t.Fatalf("JSON followed by %q was accepted", tail)
		}
	}
	if _, err := catalog.ParseJSON(js); err != nil {
		t.Fatalf("the spec itself: %v", err)
	}
}
