package catalog_test

import (
	"errors"
	"fmt"

	"github.com/c1b99f93/cleanroom/catalog"
)

func ExampleParseYAML() {
	s, err := catalog.ParseYAML([]byte(`
name: visits
provider: health-commission
grade: L2
privacy_unit: person_id
source: {kind: parquet, path: visits.parquet}
budget: {epsilon: 20, delta: 1.0e-5}
columns:
  person_id: {tags: [identifier]}
  district:  {tags: [quasi_identifier], domain: ["530102", "530103"]}
  cost:      {tags: [sensitive], bounds: [0, 50000]}
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(s.Name, s.Domain, s.Operable(), s.ColumnNames())
	// Output: visits platform true [cost district person_id]
}

func ExampleParseYAML_refused() {
	_, err := catalog.ParseYAML([]byte(`
name: visits
provider: health-commission
grade: L2
privacy_unit: district
source: {kind: parquet, path: visits.parquet}
budget: {epsilon: 20, delta: 1.0e-5}
columns:
  district: {tags: [quasi_identifier]}
`))
	var ce *catalog.Error
	if errors.As(err, &ce) {
		fmt.Println(ce.Code, ce.Field)
	}
	// Output: invalid_spec privacy_unit
}
