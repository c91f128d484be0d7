package catalog_test

import (
	"encoding/json"
	"errors"
	"os"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/c1b99f93/cleanroom/catalog"
)

// checkAccepted is the property every accepted spec must have, whatever the input: Validate
// agrees with the parser, the privacy unit is a declared identifier, and the other format's
// parser accepts the same spec (every entry point accepts the same specs).
func checkAccepted(t *testing.T, s *catalog.Spec, err error, other func([]byte) (*catalog.Spec, error), marshal func(any) ([]byte, error)) {
	t.Helper()
	if err != nil {
		if s != nil {
			t.Fatalf("returned a spec beside error %v", err)
		}
		var ce *catalog.Error
		if !errors.As(err, &ce) || ce.Code != catalog.CodeInvalidSpec {
			t.Fatalf("refusal %v (%T) is not an invalid_spec *catalog.Error", err, err)
		}
		return
	}
	if err := s.Validate(); err != nil {
		t.Fatalf("accepted spec fails Validate again: %v", err)
	}
	if s.Public {
		// A lookup table: no unit, no budget, nothing that identifies anyone.
		if s.PrivacyUnit != "" || s.Budget != (catalog.Budget{}) {
			t.Fatalf("accepted public table with a privacy unit or a budget")
		}
		for name, c := range s.Columns {
			if c.Has(catalog.TagIdentifier) {
				t.Fatalf("accepted public table with identifier column %q", name)
			}
		}
	} else if unit, ok := s.Columns[s.PrivacyUnit]; !ok || !unit.Has(catalog.TagIdentifier) {
		t.Fatalf("accepted spec's privacy unit %q is not a declared identifier column", s.PrivacyUnit)
	}
	b, err := marshal(s)
	if err != nil {
		t.Fatalf("re-encoding an accepted spec: %v", err)
	}
	if _, err := other(b); err != nil {
		t.Fatalf("the other format refuses an accepted spec: %v\n%s", err, b)
	}
}

func yamlSeeds(f *testing.F) {
	for _, path := range committedSpecs(f) {
		b, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, c := range append(append([]specCase{}, accepted...), refused...) {
		f.Add(c.yamlBytes(f))
	}
	f.Add([]byte(""))
	f.Add([]byte("name: [unterminated"))
}

func jsonSeeds(f *testing.F) {
	for _, path := range committedSpecs(f) {
		s, err := catalog.LoadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		b, err := json.Marshal(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, c := range append(append([]specCase{}, accepted...), refused...) {
		if !c.yamlOnly {
			f.Add(c.jsonBytes(f))
		}
	}
	f.Add([]byte(""))
	f.Add([]byte(`{"budget": {"epsilon": 1e999}}`))
}

func FuzzParseYAML(f *testing.F) {
	yamlSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := catalog.ParseYAML(data)
		checkAccepted(t, s, err, catalog.ParseJSON, json.Marshal)
	})
}

func FuzzParseJSON(f *testing.F) {
	jsonSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := catalog.ParseJSON(data)
		checkAccepted(t, s, err, catalog.ParseYAML, yaml.Marshal)
	})
}
