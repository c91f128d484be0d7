package plan_test

import (
	"fmt"

	"github.com/c1b99f93/cleanroom/engine/gate"
	"github.com/c1b99f93/cleanroom/engine/plan"
)

// Grouping by a column with a public domain costs no delta; grouping by one without needs DP
// partition selection, which takes a share of epsilon and all of delta. BiasShare (5%) of
// epsilon estimates what bounding costs the answer.
func ExampleBuild() {
	o := plan.Options{}.Defaults()
	for _, keys := range [][]gate.Key{{keyDistrict}, {keyDiagnosis}} {
		p, err := plan.Build(query(nil, keys, aggCount, aggSumCost), snaps("snapshot"), o, 1)
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Printf("public=%v cost=%+v per aggregate ε=%.3f\n", p.Public, p.Cost, p.Worker.Aggregates[0].Epsilon)
	}
	// Output:
	// public=true cost={Epsilon:1 Delta:0} per aggregate ε=0.475
	// public=false cost={Epsilon:1 Delta:1e-06} per aggregate ε=0.317
}
