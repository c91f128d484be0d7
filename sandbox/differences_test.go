package sandbox

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/c1b99f93/cleanroom/catalog"
	"github.com/c1b99f93/cleanroom/dp"
	"github.com/c1b99f93/cleanroom/errcode"
	"github.com/c1b99f93/cleanroom/sandbox/wire"
)

// TestDifferencingCheckIsTheFewestUnitsOfAnyCondition: through the worker process, a
// differencing check's pre-noise state holds exactly the smallest, over its conditions, count
// of persons with a row on which the condition holds — computed here in Go from how the data
// was built — for random data and random conditions (seeded: the cases are reproducible).
func TestDifferencingCheckIsTheFewestUnitsOfAnyCondition(t *testing.T) {
	ctx := context.Background()
	c := startWorker(t, nil)
	rng := rand.New(rand.NewPCG(20261205, 1))
	type row struct {
		person   int
		district string
		cost     int
	}
	var rows []row
	lines := []string{"person_id,district,cost"}
	for p := range 300 {
		for range 1 + rng.IntN(4) {
			r := row{p, string(rune('A' + rng.IntN(3))), rng.IntN(200)}
			rows = append(rows, r)
			lines = append(lines, fmt.Sprintf("53010219800101%04d,%s,%d", p, r.district, r.cost))
		}
	}
	path := filepath.Join(t.TempDir(), "visits.csv")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	spec := &catalog.Spec{Name: "visits", Provider: "p", Grade: catalog.GradeL2, PrivacyUnit: "person_id",
		Source: catalog.Source{Kind: catalog.SourceCSV, Path: path}, Budget: catalog.Budget{Epsilon: 10},
		Columns: map[string]catalog.Column{
			"person_id": {Tags: []catalog.Tag{catalog.TagIdentifier}},
			"district":  {Tags: []catalog.Tag{catalog.TagQuasiIdentifier}, Domain: []string{"A", "B", "C"}},
			"cost":      {Tags: []catalog.Tag{catalog.TagSensitive}},
		}}
	snap, err := register(ctx, t, c, spec)
	if err != nil {
		t.Fatal(err)
	}
	count := dp.Spec{Kind: dp.CountDistinct, Value: -1, Epsilon: 1, MaxPartitions: 1, MaxPerPartition: 1}
	for trial := range 12 {
		// Each condition: cost < x (some persons) or district = d AND cost >= x.
		var conds []*wire.Expr
		var holds []func(row) bool
		for range 1 + rng.IntN(20) {
			x := rng.IntN(220)
			if rng.IntN(2) == 0 {
				conds = append(conds, wire.Compare("<", wire.Col("", "cost"), wire.Num(strconv.Itoa(x))))
				holds = append(holds, func(r row) bool { return r.cost < x })
			} else {
				d := string(rune('A' + rng.IntN(3)))
				conds = append(conds, wire.And(wire.Compare("=", wire.Col("", "district"), wire.Str(d)),
					wire.Compare(">=", wire.Col("", "cost"), wire.Num(strconv.Itoa(x)))))
				holds = append(holds, func(r row) bool { return r.district == d && r.cost >= x })
			}
		}
		want := int64(-1)
		for _, h := range holds {
			units := map[int]bool{}
			for _, r := range rows {
				if h(r) {
					units[r.person] = true
				}
			}
			if n := int64(len(units)); want < 0 || n < want {
				want = n
			}
		}
		p := &wire.Plan{Snapshot: snap.Digest, Aggregates: []dp.Spec{count}, Differences: conds,
			Bounds: wire.Bounds{MaxGroupsContributed: 1, MaxContributionsPerGroup: 1}, TimeoutMS: 30_000}
		parts, err := c.Execute(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		if len(parts) != 1 || len(parts[0].Key) != 0 {
			t.Fatalf("trial %d: %d partitions, want one without keys", trial, len(parts))
		}
		canon, err := count.Canonical(parts[0].States[0])
		if err != nil {
			t.Fatal(err)
		}
		var st struct{ Count int64 }
		if err := json.Unmarshal(canon, &st); err != nil {
			t.Fatal(err)
		}
		if st.Count != want {
			t.Errorf("trial %d (%d conditions): pre-noise count %d, want the fewest units %d", trial, len(conds), st.Count, want)
		}
	}
}

// TestDifferencingCheckRefusesAnyOtherShape: the check's noise assumes one count of units
// over one partition; a plan that adds anything to it is refused, not run.
func TestDifferencingCheckRefusesAnyOtherShape(t *testing.T) {
	cond := []*wire.Expr{wire.Compare("<", wire.Col("", "cost"), wire.Num("3"))}
	good := func() *wire.Plan {
		return &wire.Plan{Snapshot: "x", Differences: cond,
			Aggregates: []dp.Spec{{Kind: dp.CountDistinct, Value: -1, Epsilon: 1, MaxPartitions: 1, MaxPerPartition: 1}},
			Bounds:     wire.Bounds{MaxGroupsContributed: 1, MaxContributionsPerGroup: 1}}
	}
	if err := differenceShape(good()); err != nil {
		t.Fatalf("the plan the engine builds was refused: %v", err)
	}
	for name, spoil := range map[string]func(*wire.Plan){
		"a filter":            func(p *wire.Plan) { p.Filter = cond[0] },
		"keys":                func(p *wire.Plan) { p.Keys = cond },
		"a sum":               func(p *wire.Plan) { p.Aggregates[0].Kind = dp.Sum },
		"two partitions":      func(p *wire.Plan) { p.Aggregates[0].MaxPartitions = 2 },
		"rows per unit":       func(p *wire.Plan) { p.Bounds.MaxContributionsPerGroup = 5 },
		"two aggregates":      func(p *wire.Plan) { p.Aggregates = append(p.Aggregates, p.Aggregates[0]) },
		"a missing condition": func(p *wire.Plan) { p.Differences = append(p.Differences, nil) },
		"too many conditions": func(p *wire.Plan) { p.Differences = make([]*wire.Expr, MaxDifferences+1) },
	} {
		p := good()
		spoil(p)
		if err := differenceShape(p); errcode.Of(err) == "" {
			t.Errorf("a check with %s was accepted", name)
		}
	}
}
