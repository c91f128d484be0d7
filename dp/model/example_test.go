package model_test

import (
	"fmt"

	"github.com/c1b99f93/cleanroom/dp/model"
)

// The worker accumulates each unit's bounded rows and ships only the encoded state; the
// engine, holding the spec from the plan, decodes it and releases the model with noise.
func ExampleReleaseLinear() {
	spec := model.LinearSpec{
		Features:       []model.Feature{{Name: "hours", Bounds: model.Bounds{Lo: 0, Hi: 10}}},
		Label:          model.Bounds{Lo: 0, Hi: 100},
		MaxRowsPerUnit: 1,
	}

	// Worker side: 50,000 units, label = 20 + 5·hours exactly.
	stats, _ := model.NewStats(spec)
	for i := 0; i < 50000; i++ {
		h := float64(i%1000) / 100
		_ = stats.AddUnit([][]float64{{h}}, []float64{20 + 5*h})
	}
	state := stats.Encode()

	// Engine side.
	decoded, err := model.DecodeStats(state, spec)
	if err != nil {
		fmt.Println(err)
		return
	}
	m, err := model.ReleaseLinear(decoded, model.Params{Epsilon: 1, Delta: 1e-6})
	if err != nil {
		fmt.Println(err)
		return
	}
	c := m.Coefficients[0]
	fmt.Printf("%s ≈ %.1f, intercept ≈ %.0f, %d noise additions\n", c.Name, c.Value, m.Intercept.Value, len(m.Components))
	// Output: hours ≈ 5.0, intercept ≈ 20, 3 noise additions
}
