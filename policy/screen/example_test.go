package screen_test

import (
	"context"
	"fmt"
	"slices"

	"github.com/c1b99f93/cleanroom/policy"
	"github.com/c1b99f93/cleanroom/policy/screen"
	"github.com/c1b99f93/cleanroom/rawset"
)

// A result with a small group and a mobile number that slipped into a group key whose values
// came from the data (OriginData: only such keys are looked up in the raw-value set). The
// findings go into the egress policy's input; the suppressed rows are withheld if the policy
// allows the rest.
func ExampleScreener_Screen() {
	key := []byte("an example key of at least 32 bytes!")
	set, err := rawset.BuildHashSet(key, slices.Values([]string{"13812345678", "ZhangSanFeng"}))
	if err != nil {
		panic(err)
	}
	k, _ := rawset.NewKeyer(key)
	r, err := screen.New(
		screen.WithLimits(screen.Limits{MaxRows: 10000, MaxCells: 100000, MinUnitsPerGroup: 20}),
		screen.WithRawValues(k, set),
	)
	if err != nil {
		panic(err)
	}
	district := policy.ColumnUse{Dataset: "visits", Column: "district", Tags: []string{"attribute"}, Usage: policy.UsageGroupKey}
	out := &screen.Table{
		Cols: []screen.Column{
			{Name: "district", Kind: screen.KindGroupKey, DerivedFrom: []policy.ColumnUse{district}, Origin: screen.OriginData},
			{Name: "visits", Kind: screen.KindAggregate},
		},
		Data: [][]screen.Value{
			{screen.Str("Wuhua"), screen.Float(1523.4)},
			{screen.Str("138 1234 5678"), screen.Float(3.2)},
		},
		Units: []float64{1523.4, 3.2},
	}
	rev := r.Screen(context.Background(), out)
	for _, f := range rev.Findings {
		fmt.Printf("%s (%s): %s\n", f.Code, f.Severity, f.Message)
	}
	fmt.Println("suppressed rows:", rev.Suppressed)
	// Output:
	// mobile_in_output (high): a mainland mobile number in column 0 "district": 1 of 2 rows, first row 1
	// raw_value_in_output (high): a value of an identifier or sensitive input column in column 0 "district": 1 of 2 rows, first row 1
	// small_groups_suppressed (low): 1 of 2 rows stand for fewer privacy units than the minimum and are suppressed
	// suppressed rows: [1]
}
