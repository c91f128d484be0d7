package plan_test

import (
	"errors"
	"math"
	"testing"

	"github.com/c1b99f93/cleanroom/dp"
	"github.com/c1b99f93/cleanroom/engine/gate"
	"github.com/c1b99f93/cleanroom/engine/plan"
	"github.com/c1b99f93/cleanroom/errcode"
)

// FuzzBuild: whatever options a job sends — any epsilon, delta, bounds, minimum group size,
// automatic maxima — Build either refuses with a typed error (a stable code, no panic) or
// returns a plan whose mechanisms spend exactly the job's cost and none of whose specs the
// library would refuse.
func FuzzBuild(f *testing.F) {
	f.Add(1.0, 1e-6, int64(0), int64(0), int64(10), int64(32), int64(64), uint8(0), false)
	f.Add(3.0, 0.0, int64(2), int64(4), int64(0), int64(0), int64(0), uint8(1), true)
	f.Add(1e-300, 0.999, int64(1000), int64(10000), int64(1), int64(1), int64(1), uint8(2), false)
	f.Add(math.NaN(), math.Inf(1), int64(-1), int64(-5), int64(-3), int64(-1), int64(0), uint8(3), false)
	f.Add(100.0, 1e-300, int64(0), int64(7), int64(0), int64(5000), int64(3), uint8(4), false)
	aggSets := [][]gate.Aggregate{
		{aggCount},
		{aggCount, aggSumCost},
		{aggUnits},
		{aggSumCost, aggUnits, aggCount},
		{{Name: "avg_cost", Kind: dp.Mean, Column: "cost", Value: aggSumCost.Value, Bounds: aggSumCost.Bounds}},
	}
	keySets := [][]gate.Key{nil, {keyDistrict}, {keyDiagnosis}, {keyDistrict, keyHospital}}
	f.Fuzz(func(t *testing.T, eps, delta float64, l0, lInf, minUnits, autoG, autoR int64, shape uint8, deltaSet bool) {
		o := plan.Options{Epsilon: eps, Delta: delta, DeltaSet: deltaSet, MaxGroupsContributed: l0, MaxContributionsPerGroup: lInf,
			MinUnitsPerGroup: float64(minUnits), TimeoutMS: 5000}
		if autoG != 0 || autoR != 0 {
			o.Auto = &plan.AutoMax{MaxGroups: autoG, MaxRows: autoR}
		}
		q := query(nil, keySets[int(shape)%len(keySets)], aggSets[int(shape/4)%len(aggSets)]...)
		p, err := plan.Build(q, snaps("sha256:snap"), o.Defaults(), 42)
		if err != nil {
			var e *errcode.Error
			if !errors.As(err, &e) || e.Code == errcode.Internal {
				t.Fatalf("a refusal without a stable code: %v", err)
			}
			return
		}
		if !(p.Cost.Epsilon > 0) || math.IsInf(p.Cost.Epsilon, 0) {
			t.Fatalf("a plan costing epsilon %v", p.Cost.Epsilon)
		}
		var spent float64
		for _, s := range p.Worker.Aggregates {
			if err := s.Validate(); err != nil {
				t.Fatalf("the plan holds a spec the library refuses: %v", err)
			}
			spent += s.Epsilon
		}
		if spent > p.Cost.Epsilon*(1+1e-9) {
			t.Fatalf("the aggregates spend %v of a cost of %v", spent, p.Cost.Epsilon)
		}
	})
}
