package dp_test

import (
	"fmt"
	"math"

	"github.com/c1b99f93/cleanroom/engine/dp"
)

// The worker bounds each unit and ships Encode's pre-noise state; the engine, holding the spec
// from the plan, adds the noise once in Release.
func ExampleSpec_Release() {
	spec := dp.Spec{Kind: dp.Count, Value: -1, Epsilon: 1e4, MaxPartitions: 1, MaxPerPartition: 5}

	// Worker side: three units with 2, 5 and 9 rows; the last is clamped to L∞ = 5.
	acc, _ := spec.NewAccumulator()
	for _, rows := range []int64{2, 5, 9} {
		_ = acc.AddUnit(rows, 0)
	}
	state, _ := acc.Encode()

	// Engine side.
	r, err := spec.Release(state)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(r.Mechanism, math.Round(r.Value))
	// Output: laplace 12
}
