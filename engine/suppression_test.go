package engine_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/c1b99f93/cleanroom/catalog"
	"github.com/c1b99f93/cleanroom/engine"
	"github.com/c1b99f93/cleanroom/engine/plan"
	"github.com/c1b99f93/cleanroom/sandbox"
)

// openEngineWithParams opens an engine on the test policy with data.json edited: each pair
// replaces an exact text, which must be there.
func openEngineWithParams(t testing.TB, edits ...string) *engine.Engine {
	t.Helper()
	dir := testPolicy(t)
	path := filepath.Join(dir, "data.json")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := string(data)
	for i := 0; i+1 < len(edits); i += 2 {
		if !strings.Contains(s, edits[i]) {
			t.Fatalf("data.json has no %s to edit", edits[i])
		}
		s = strings.Replace(s, edits[i], edits[i+1], 1)
	}
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	e, err := engine.Open(context.Background(), engine.Config{DataDir: t.TempDir(), PolicyDir: dir, WorkerDB: sandbox.DBLimits{MemoryLimit: "2GB"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// openEngineWithoutDifferencing is for tests that ask near-identical queries on one grant on
// purpose (to sample the noise, or to probe thresholds), which the differencing check would
// rightly hold for review.
func openEngineWithoutDifferencing(t testing.TB) *engine.Engine {
	t.Helper()
	return openEngineWithParams(t, `"differencing_min_units": 10`, `"differencing_min_units": 0`)
}

// smallGroups is the visits dataset with 40 persons in district A, 4 in B and none in C.
func smallGroups(t *testing.T) *catalog.Spec {
	t.Helper()
	s := visits(t, "visits", 1, false)
	var b strings.Builder
	b.WriteString("person_id,district,cost,diagnosis,visit_date\n")
	for i := 1; i <= 44; i++ {
		d := "A"
		if i > 40 {
			d = "B"
		}
		fmt.Fprintf(&b, "53010219800101%04d,%s,%d,I10,2024-01-02\n", i, d, 100+i)
	}
	if err := os.WriteFile(s.Source.Path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return s
}

// At epsilon 100 per job the noisy unit counts are within a few hundredths of the true
// counts (Laplace scale 1/50 per share, or less), so which groups fall under the shipped
// minimum of 10 is certain: B (4 persons) and C (none); A (40) is released.
const suppressionEpsilon = 100

func rowKeys(r *engine.Result) []string {
	var keys []string
	for _, row := range r.Rows {
		keys = append(keys, *row[0].Key)
	}
	return keys
}

func lastRecord(t *testing.T, e *engine.Engine, typ string) map[string]any {
	t.Helper()
	var last map[string]any
	for _, r := range records(t, e) {
		if r["type"] == typ {
			last = r
		}
	}
	if last == nil {
		t.Fatalf("no %s record", typ)
	}
	return last
}

func TestSmallGroupsAreWithheldBeforeRelease(t *testing.T) {
	e := openEngine(t)
	register(t, e, smallGroups(t))
	grant(t, e, "g", 1000)
	// Explicit bounds: the shares below are those of a job that chooses none.
	o := plan.Options{Epsilon: suppressionEpsilon, MaxGroupsContributed: 1, MaxContributionsPerGroup: 5}
	const byDistrict = "SELECT district, COUNT(*) AS n FROM visits GROUP BY district"

	r, err := submit(e, "g", byDistrict, o)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(rowKeys(r), ","); got != "A" || r.Suppressed == nil || *r.Suppressed != 2 {
		t.Fatalf("rows %s, suppressed %v; want only A released and 2 withheld", got, r.Suppressed)
	}
	if !strings.Contains(r.Split, "hidden count of units per group") || r.Spent.Epsilon != suppressionEpsilon {
		t.Fatalf("split %q, spent %+v: the hidden unit count must take a share of the job's own epsilon", r.Split, r.Spent)
	}
	// What the bias estimate leaves, shared with the hidden unit count at its stated weight.
	if c := r.Rows[0][1].DP; math.Abs(c.Epsilon-suppressionEpsilon*(1-plan.BiasShare)/(1+plan.HiddenUnitCountWeight)) > 1e-9 {
		t.Fatalf("COUNT(*) got epsilon %v, want 1/(1 + HiddenUnitCountWeight) of what the bias estimate leaves", c.Epsilon)
	}
	// The record of the mechanism names the hidden aggregate; the reviewer's and the egress
	// policy's records say how many rows were withheld.
	mech, _ := json.Marshal(lastRecord(t, e, "mechanism"))
	if !strings.Contains(string(mech), "units_per_group (hidden)") {
		t.Fatalf("mechanism record %s does not name the hidden unit count", mech)
	}
	rv, _ := json.Marshal(lastRecord(t, e, "reviewer"))
	if !strings.Contains(string(rv), `"small_groups_suppressed"`) || !strings.Contains(string(rv), `"suppressed_rows":2`) {
		t.Fatalf("reviewer record %s", rv)
	}
	eg, _ := json.Marshal(lastRecord(t, e, "policy_egress"))
	if !strings.Contains(string(eg), `"suppressed_rows":2`) || !strings.Contains(string(eg), `"rows":1`) {
		t.Fatalf("egress record %s does not describe the output as released", eg)
	}
	// The released JSON says how many rows were withheld, never which.
	out, _ := json.Marshal(r)
	if !strings.Contains(string(out), `"suppressed_rows":2`) || strings.Contains(string(out), `"B"`) {
		t.Fatalf("released %s", out)
	}

	// A repeat is answered from the release: same rows withheld, nothing charged.
	before := spent(t, e, "g")
	again, err := submit(e, "g", byDistrict+" ORDER BY n", o)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(rowKeys(again), ","); got != "A" || *again.Suppressed != 2 || spent(t, e, "g") != before {
		t.Fatalf("repeat: rows %s, suppressed %d, spent %v → %v", got, *again.Suppressed, before, spent(t, e, "g"))
	}

	// Withholding comes before LIMIT: the smallest group released is A, not the withheld B.
	first, err := submit(e, "g", "SELECT district, COUNT(DISTINCT person_id) AS units FROM visits GROUP BY district ORDER BY units LIMIT 1", o)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(rowKeys(first), ","); got != "A" || *first.Suppressed != 2 {
		t.Fatalf("ORDER BY units LIMIT 1: rows %s, suppressed %d; want A", got, *first.Suppressed)
	}
	// The query's own COUNT(DISTINCT unit) is the unit count: no hidden share.
	if strings.Contains(first.Split, "hidden") || math.Abs(first.Rows[0][1].DP.Epsilon-suppressionEpsilon*(1-plan.BiasShare)) > 1e-9 {
		t.Fatalf("split %q, epsilon %v: a query that counts units needs no hidden count", first.Split, first.Rows[0][1].DP.Epsilon)
	}
}

func TestApplicantMayRaiseButNotLowerTheMinimum(t *testing.T) {
	e := openEngine(t)
	register(t, e, smallGroups(t))
	grant(t, e, "g", 1000)
	const q = "SELECT district, SUM(cost) AS total FROM visits GROUP BY district"
	for _, tc := range []struct {
		min        float64
		want       string
		suppressed int
	}{
		{1, "A", 2}, // the policy's 10 still applies
		{50, "", 3}, // stricter than the policy: A's 40 are withheld too
		{0, "A", 2}, // unset: the policy's
		{10.5, "A", 2},
	} {
		r, err := submit(e, "g", q, plan.Options{Epsilon: suppressionEpsilon, MinUnitsPerGroup: tc.min})
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(rowKeys(r), ","); got != tc.want || *r.Suppressed != tc.suppressed {
			t.Errorf("min %v: rows %q, suppressed %d; want %q, %d", tc.min, got, *r.Suppressed, tc.want, tc.suppressed)
		}
	}
	if _, err := submit(e, "g", q, plan.Options{Epsilon: 1, MinUnitsPerGroup: -1}); err == nil || !strings.Contains(err.Error(), "min_units_per_group") {
		t.Fatalf("a negative minimum: %v", err)
	}
}

func TestSuppressionFollowsThePolicy(t *testing.T) {
	const q = "SELECT district, COUNT(*) AS n FROM visits GROUP BY district"
	t.Run("undisclosed", func(t *testing.T) {
		e := openEngineWithParams(t, `"disclose_suppressed_groups": true`, `"disclose_suppressed_groups": false`)
		register(t, e, smallGroups(t))
		grant(t, e, "g", 1000)
		r, err := submit(e, "g", q, plan.Options{Epsilon: suppressionEpsilon})
		if err != nil {
			t.Fatal(err)
		}
		out, _ := json.Marshal(r)
		if got := strings.Join(rowKeys(r), ","); got != "A" || r.Suppressed != nil || strings.Contains(string(out), "suppressed") {
			t.Fatalf("rows %s, released %s: withheld rows must not be counted when the policy does not allow it", got, out)
		}
	})
	t.Run("off", func(t *testing.T) {
		e := openEngineWithParams(t, `"min_units_per_group": 10`, `"min_units_per_group": 0`)
		register(t, e, smallGroups(t))
		grant(t, e, "g", 1000)
		r, err := submit(e, "g", q, plan.Options{Epsilon: suppressionEpsilon})
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(rowKeys(r), ","); got != "A,B,C" || r.Suppressed != nil || strings.Contains(r.Split, "hidden") {
			t.Fatalf("rows %s, suppressed %v, split %q: with no minimum every public partition is released", got, r.Suppressed, r.Split)
		}
	})
}
