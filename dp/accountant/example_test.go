package accountant_test

import (
	"fmt"

	"github.com/c1b99f93/cleanroom/dp/accountant"
	"github.com/google/differential-privacy/go/v3/noise"
)

// Ten Gaussian releases of (0.5, 1e-6) each, with a partition selection: the ledger enforces
// (5.2, 1.01e-5); the same noise composed as Gaussian DP costs a third of that ε at that delta.
func ExampleCompose() {
	var events []accountant.Event
	for i := 0; i < 10; i++ {
		events = append(events, accountant.Event{
			Mechanism: "gaussian", Epsilon: 0.5, Delta: 1e-6, L0: 1, LInf: 1,
			NoiseStddev: noise.SigmaForGaussian(1, 1, 0.5, 1e-6),
		})
	}
	events = append(events, accountant.Event{Mechanism: "preagg_select_partition", Epsilon: 0.2, Delta: 1e-7, L0: 1, LInf: 1})

	r, err := accountant.Compose(events)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("basic:   ε=%.3f δ=%.3g\n", r.Basic.Epsilon, r.Basic.Delta)
	fmt.Printf("tighter: ε=%.3f δ=%.3g (%s, %d events)\n", r.Tighter.Epsilon, r.Tighter.Delta, r.Method, r.Events)
	// Output:
	// basic:   ε=5.200 δ=1.01e-05
	// tighter: ε=1.722 δ=1.01e-05 (gdp, 11 events)
}
