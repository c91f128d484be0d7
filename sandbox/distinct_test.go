package sandbox

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/c1b99f93/cleanroom/catalog"
	"github.com/c1b99f93/cleanroom/dp"
	"github.com/c1b99f93/cleanroom/sandbox/wire"
)

// diagnosesCSV writes visits where the distinct diagnoses per district are known without
// bounding anything: persons 1..light have one visit each (odd in district A with diagnoses
// D0..D6, even in B with E0..E4, every 11th with no diagnosis), and person 0 has heavy visits
// in A, each with a diagnosis no one else has (H0, H1, …). Whatever rows bounding keeps of
// person 0, A's kept rows then hold the light persons' diagnoses plus min(heavy, L∞) of
// person 0's. It returns the light persons' distinct diagnoses per district.
func diagnosesCSV(t *testing.T, light, heavy int) (string, map[string]map[string]bool) {
	t.Helper()
	id := func(i int) string { return fmt.Sprintf("53010219800101%04d", 1000+i) }
	lines := []string{"person_id,district,diagnosis"}
	for v := range heavy {
		lines = append(lines, fmt.Sprintf("%s,A,H%d", id(0), v))
	}
	want := map[string]map[string]bool{"A": {}, "B": {}}
	for i := 1; i <= light; i++ {
		d, dx := "A", fmt.Sprintf("D%d", i%7)
		if i%2 == 0 {
			d, dx = "B", fmt.Sprintf("E%d", i%5)
		}
		if i%11 == 0 {
			dx = "" // NULL: COUNT(DISTINCT) ignores it
		} else {
			want[d][dx] = true
		}
		lines = append(lines, fmt.Sprintf("%s,%s,%s", id(i), d, dx))
	}
	path := filepath.Join(t.TempDir(), "diagnoses.csv")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, want
}

// TestWorkerCountsDistinctValuesAmongKeptRows runs COUNT(DISTINCT diagnosis) by district
// through the worker process (DuckDB scan, identity hashing, bounding pass, shards) and reads
// the pre-noise state it returns: it must hold exactly the number of distinct non-NULL
// diagnoses among the rows bounding kept, computed here from how the data was built — all of
// them when L∞ keeps every row, and a heavy person's L∞ rows only when it does not.
func TestWorkerCountsDistinctValuesAmongKeptRows(t *testing.T) {
	ctx := context.Background()
	c := startWorker(t, nil)
	const light, heavy = 300, 40
	path, lightDistinct := diagnosesCSV(t, light, heavy)
	spec := &catalog.Spec{Name: "visits", Provider: "p", Grade: catalog.GradeL2, PrivacyUnit: "person_id",
		Source: catalog.Source{Kind: catalog.SourceCSV, Path: path}, Budget: catalog.Budget{Epsilon: 10},
		Columns: map[string]catalog.Column{
			"person_id": {Tags: []catalog.Tag{catalog.TagIdentifier}},
			"district":  {Tags: []catalog.Tag{catalog.TagQuasiIdentifier}, Domain: []string{"A", "B"}},
			"diagnosis": {Tags: []catalog.Tag{catalog.TagSensitive}},
		}}
	snap, err := register(ctx, t, c, spec)
	if err != nil {
		t.Fatal(err)
	}
	for _, lInf := range []int64{heavy, 3, 1} {
		s := dp.Spec{Kind: dp.CountDistinctValues, Value: 0, Epsilon: 1, MaxPartitions: 1, MaxPerPartition: lInf}
		p := &wire.Plan{Snapshot: snap.Digest, Keys: []*wire.Expr{wire.Col("", "district")}, Values: []*wire.Expr{wire.Col("", "diagnosis")},
			Aggregates: []dp.Spec{s}, Domains: [][]string{{"A", "B"}},
			Bounds: wire.Bounds{MaxGroupsContributed: 1, MaxContributionsPerGroup: lInf}, SamplingKey: 42, TimeoutMS: 30_000}
		parts, err := c.Execute(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]int64{"A": int64(len(lightDistinct["A"])) + min(heavy, lInf), "B": int64(len(lightDistinct["B"]))}
		got := map[string]int64{}
		for _, pt := range parts {
			canon, err := s.Canonical(pt.States[0])
			if err != nil {
				t.Fatal(err)
			}
			var st struct{ Sum int64 }
			if err := json.Unmarshal(canon, &st); err != nil {
				t.Fatal(err)
			}
			got[*pt.Key[0]] = st.Sum
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("L∞ %d: pre-noise distinct diagnoses by district %v, want %v", lInf, got, want)
		}
	}
}

// A plan whose value is read both as a distinct count's identity and as a number is malformed:
// the worker refuses it rather than summing hashes.
func TestWorkerRefusesAValueReadAsIdentityAndNumber(t *testing.T) {
	p := &wire.Plan{Values: []*wire.Expr{wire.Col("", "cost")}, Aggregates: []dp.Spec{
		{Kind: dp.CountDistinctValues, Value: 0, Epsilon: 1, MaxPartitions: 1, MaxPerPartition: 1},
		{Kind: dp.Sum, Value: 0, Lower: 0, Upper: 1, Epsilon: 1, MaxPartitions: 1, MaxPerPartition: 1},
	}}
	if _, err := identityValues(p); err == nil {
		t.Error("a value read as an identity and as a number was accepted")
	}
	p.Aggregates = p.Aggregates[:1]
	p.Aggregates[0].Value = 1
	if _, err := identityValues(p); err == nil {
		t.Error("an aggregate reading a value the plan does not have was accepted")
	}
}
