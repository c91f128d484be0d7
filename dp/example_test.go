package dp_test

import (
	"fmt"
	"math"

	"github.com/c1b99f93/cleanroom/dp"
)

// The worker bounds each unit and ships Encode's pre-noise state; the engine, holding the spec
// from the plan, adds the noise once in Release.
func ExampleSpec_Release() {
	spec := dp.Spec{Kind: dp.Count, Value: -1, Epsilon: 1e4, MaxPartitions: 1, MaxPerPartition: 5}

	// Worker side: three units with 2, 5 and 9 rows; the last is clamped to L∞ = 5.
	acc, _ := spec.NewAccumulator(1000)
	for _, rows := range []int64{2, 5, 9} {
		_ = acc.AddUnit(rows, nil)
	}
	state, _ := acc.Encode()

	// Engine side.
	rs, err := spec.Release(state)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(rs[0].Mechanism, math.Round(rs[0].Value))
	// Output: laplace 12
}
