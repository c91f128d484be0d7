package engine

import (
	"context"
	"math"
	"os"
	"slices"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/c1b99f93/cleanroom/catalog"
	"github.com/c1b99f93/cleanroom/connectors"
	"github.com/c1b99f93/cleanroom/engine/gate"
	"github.com/c1b99f93/cleanroom/engine/ledger"
	"github.com/c1b99f93/cleanroom/engine/plan"
	"github.com/c1b99f93/cleanroom/policy"
)

// enterpriseCapital reads registered_capital from the committed enterprises dataset, clamped to
// its catalog bounds, the way the mechanisms see it (one row per enterprise, the privacy unit).
func enterpriseCapital(t *testing.T, spec *catalog.Spec) []float64 {
	t.Helper()
	rdr, err := connectors.Open(context.Background(), connectors.KindParquet, spec.Source.Path, connectors.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer rdr.Release()
	col := rdr.Schema().FieldIndices("registered_capital")
	if len(col) != 1 {
		t.Fatal("enterprises has no registered_capital column")
	}
	lo, hi := spec.Columns["registered_capital"].Lower(), spec.Columns["registered_capital"].Upper()
	var out []float64
	for rdr.Next() {
		a, ok := rdr.RecordBatch().Column(col[0]).(*array.Float64)
		if !ok {
			t.Fatalf("registered_capital has type %s", rdr.RecordBatch().Column(col[0]).DataType())
		}
		for i := range a.Len() {
			if a.IsValid(i) {
				out = append(out, min(max(a.Value(i), lo), hi))
			}
		}
	}
	if err := rdr.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// quantileCont is DuckDB's quantile_cont: linear interpolation between order statistics.
func quantileCont(sorted []float64, q float64) float64 {
	pos := q * float64(len(sorted)-1)
	i := int(math.Floor(pos))
	if i+1 >= len(sorted) {
		return sorted[len(sorted)-1]
	}
	return sorted[i] + (pos-float64(i))*(sorted[i+1]-sorted[i])
}

// TestReleasedIntervalsCoverTheTruthOnTestdata is the accuracy test of every aggregate kind on
// the committed 10k-person testdata at epsilon 1: each query runs once in the worker, and its
// pre-noise state is then released 1000 times (noise is drawn only at release, by the library,
// whose randomness cannot be seeded). The true value must lie in the reported 95% interval in
// at least 90% of the releases. For an interval with exact 95% coverage the chance of fewer
// than 900 of 1000 is 4e-11 (binomial tail; 200 repetitions would give 1e-3), so the test
// does not flake. Each enterprise is one row, so bounding (L0 = L∞ = 1) removes nothing and the
// truth is the plain aggregate of the clamped column.
func TestReleasedIntervalsCoverTheTruthOnTestdata(t *testing.T) {
	ctx := context.Background()
	e, spec, ds := openEnterprisesEngine(t)
	vals := enterpriseCapital(t, spec)
	sorted := slices.Sorted(slices.Values(vals))
	var sum float64
	for _, v := range vals {
		sum += v
	}
	n := float64(len(vals))
	mean := sum / n
	var ss float64
	for _, v := range vals {
		ss += (v - mean) * (v - mean)
	}
	for _, tc := range []struct {
		sql  string
		want float64
	}{
		{"SELECT COUNT(*) FROM enterprises", n},
		{"SELECT COUNT(registered_capital) FROM enterprises", n},
		{"SELECT COUNT(DISTINCT uscc) FROM enterprises", float64(ds.Snapshot.Units)},
		{"SELECT SUM(registered_capital) FROM enterprises", sum},
		{"SELECT AVG(registered_capital) FROM enterprises", mean},
		{"SELECT VAR_POP(registered_capital) FROM enterprises", ss / n},
		{"SELECT STDDEV_POP(registered_capital) FROM enterprises", math.Sqrt(ss / n)},
		{"SELECT MEDIAN(registered_capital) FROM enterprises", quantileCont(sorted, 0.5)},
		{"SELECT QUANTILE_CONT(registered_capital, 0.9) FROM enterprises", quantileCont(sorted, 0.9)},
	} {
		t.Run(tc.sql, func(t *testing.T) {
			q, err := gate.Admit(ctx, e.parser, e, tc.sql)
			if err != nil {
				t.Fatal(err)
			}
			p, err := plan.Build(q, map[string]string{spec.Name: ds.Snapshot.Digest}, plan.Options{Epsilon: 1, MaxGroupsContributed: 1, MaxContributionsPerGroup: 1}.Defaults(), 7)
			if err != nil {
				t.Fatal(err)
			}
			w, err := e.worker(ctx, spec.Domain)
			if err != nil {
				t.Fatal(err)
			}
			parts, err := w.Execute(ctx, &p.Worker)
			if err != nil {
				t.Fatal(err)
			}
			const reps = 1000
			hits := 0
			for range reps {
				res, err := release(q, p, parts)
				if err != nil {
					t.Fatal(err)
				}
				c := res.Rows[0][0].DP
				if c.CILow <= tc.want && tc.want <= c.CIHigh {
					hits++
				}
			}
			t.Logf("true %.6g: coverage %.3f", tc.want, float64(hits)/reps)
			if hits < reps*9/10 {
				t.Fatalf("the 95%% interval held the true value %v in %d of %d releases", tc.want, hits, reps)
			}
		})
	}
}

// openTestSource opens a test source as the server hands it to RegisterDataset; it is closed
// when the test ends.
func openTestSource(t testing.TB, path string) *os.File {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// TestIntervalsCoverTheTruthWithAutomaticBounds is the coverage test on the automatic-bounds
// path where bounding drops nothing: enterprises have one row each, so whatever the
// choose_bounds stage picks keeps every row, and COUNT(*) by industry (a public domain) has no
// bias. The job runs for real through its stages up to execution — the bounds chosen under DP
// from the worker's histograms, with their share of epsilon — and its pre-noise states are
// then released 1000 times (the library's noise cannot be seeded). Each cell's 95% interval
// must hold the true count in at least 90% of the releases; for an exact 95% interval the
// chance of fewer than 900 of 1000 is 4e-11 per cell, so over 13 cells the test does not flake.
func TestIntervalsCoverTheTruthWithAutomaticBounds(t *testing.T) {
	ctx := context.Background()
	e, spec, _ := openEnterprisesEngine(t)
	if err := e.OpenGrant(ctx, "g", ledger.Budget{Epsilon: 10, Delta: 1e-6}); err != nil {
		t.Fatal(err)
	}
	truth := map[string]float64{}
	for _, v := range enterpriseColumn(t, spec, "industry") {
		truth[v]++
	}
	j := Job{ID: "job-coverage", Principal: policy.Principal{Name: "a", Role: "applicant", Org: "o"}, Grant: "g",
		SQL: "SELECT industry, COUNT(*) AS n FROM enterprises GROUP BY industry", Options: plan.Options{Epsilon: 1}}
	s := &jobState{id: j.ID, job: j, opts: e.options(ctx, j)}
	stages := sqlStages()
	last := slices.IndexFunc(stages, func(st stage) bool { return st.name == "execute" })
	if err := e.runStages(ctx, stages[:last+1], s); err != nil {
		t.Fatal(err)
	}
	if s.p.Auto == nil {
		t.Fatal("the job's contribution bounds were not chosen automatically")
	}
	const reps = 1000
	hits := map[string]int{}
	for range reps {
		res, err := release(s.q, s.p, s.parts)
		if err != nil {
			t.Fatal(err)
		}
		for _, row := range res.Rows {
			c := row[1].DP
			if want := truth[*row[0].Key]; c.CILow <= want && want <= c.CIHigh {
				hits[*row[0].Key]++
			}
		}
	}
	t.Logf("bounds chosen: %+v", s.p.Worker.Bounds)
	for k, want := range truth {
		t.Logf("%s: true %v, coverage %.3f", k, want, float64(hits[k])/reps)
		if hits[k] < reps*9/10 {
			t.Errorf("%s: the 95%% interval held the true count %v in %d of %d releases", k, want, hits[k], reps)
		}
	}
}

// enterpriseColumn reads one column of the enterprises source as text (the truth of a test).
func enterpriseColumn(t *testing.T, spec *catalog.Spec, name string) []string {
	t.Helper()
	rdr, err := connectors.Open(context.Background(), connectors.KindParquet, spec.Source.Path, connectors.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer rdr.Release()
	col := rdr.Schema().FieldIndices(name)
	if len(col) != 1 {
		t.Fatalf("enterprises has no %s column", name)
	}
	var out []string
	for rdr.Next() {
		a := rdr.RecordBatch().Column(col[0])
		for i := range a.Len() {
			if a.IsValid(i) {
				out = append(out, a.ValueStr(i))
			}
		}
	}
	if err := rdr.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// openEnterprisesEngine opens an engine (closed when the test ends) with the committed
// enterprises testdata registered: one row per unit.
func openEnterprisesEngine(t *testing.T) (*Engine, *catalog.Spec, *Dataset) {
	t.Helper()
	return openTestdataEngine(t, "enterprises")
}
