package engine_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/c1b99f93/cleanroom/engine"
	"github.com/c1b99f93/cleanroom/engine/plan"
	"github.com/c1b99f93/cleanroom/errcode"
)

// TestTwoWideBucketKeysAreRefusedBeforeAnythingRuns: two 998-bucket width_bucket keys make a
// million public partitions, which the server would noise one by one before refusing the
// output as too large. The gate refuses it at once (Admit: what the server runs before a job
// exists), and a job that gets past submission anyway ends job_refused in the free phase:
// nothing reserved, no worker run, nothing spent.
func TestTwoWideBucketKeysAreRefusedBeforeAnythingRuns(t *testing.T) {
	e := openEngine(t)
	register(t, e, visits(t, "visits", 50, false))
	grant(t, e, "g", 5)
	sql := "SELECT width_bucket(cost, 0, 1000, 998) AS a, width_bucket(cost, 0, 500, 998) AS b, COUNT(*) AS n FROM visits GROUP BY 1, 2"
	start := time.Now()
	err := e.Admit(context.Background(), engine.Job{Principal: applicant, Grant: "g", SQL: sql, Options: plan.Options{Epsilon: 1e-3}})
	if got := errcode.Of(err); got != errcode.TooManyPartitions {
		t.Fatalf("Admit: code %q (%v), want %q", got, err, errcode.TooManyPartitions)
	}
	pub := errcode.Public(err)
	for _, want := range []string{"1000 × 1000", "fewer keys", "fewer buckets"} {
		if !strings.Contains(pub.Message, want) {
			t.Errorf("message %q does not say %q", pub.Message, want)
		}
	}
	if _, err := submit(e, "g", sql, plan.Options{Epsilon: 1e-3}); errcode.Of(err) != errcode.TooManyPartitions {
		t.Fatalf("Submit: %v, want %s", err, errcode.TooManyPartitions)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("the refusals took %v; they must not enumerate the partitions", d)
	}
	var ended []string
	for _, r := range records(t, e) {
		switch r["type"] {
		case "budget_reserved", "execution", "mechanism":
			t.Errorf("a refused job wrote %s", r["type"])
		case "job_refused", "job_failed":
			ended = append(ended, fmt.Sprint(r["type"], " ", r["data"].(map[string]any)["code"]))
		}
	}
	if want := "job_refused " + string(errcode.TooManyPartitions); len(ended) != 1 || ended[0] != want {
		t.Errorf("job end records %v, want [%s]", ended, want)
	}
	if got := spent(t, e, "g"); got != 0 {
		t.Errorf("the refused job cost %v", got)
	}
}

// TestPublicPartitionsAboveTheLimitAreRefusedByTheGate is the property over random domain
// products: for keys of random width_bucket counts and a random number of outputs, the gate
// refuses exactly the queries whose product of domain sizes exceeds the most partitions the
// policy's max_rows and max_cells (and the engine's ceiling) allow — before a job exists, so
// before any worker call — and admits the rest.
func TestPublicPartitionsAboveTheLimitAreRefusedByTheGate(t *testing.T) {
	e := openEngine(t)
	register(t, e, visits(t, "visits", 20, false))
	grant(t, e, "g", 5)
	params := e.Params()
	if params.OutputMaxRows <= 0 || params.OutputMaxCells <= 0 {
		t.Fatalf("the shipped policy sets no output limits (max_rows %v, max_cells %v)", params.OutputMaxRows, params.OutputMaxCells)
	}
	rng := rand.New(rand.NewPCG(16, 1))
	aggs := []string{"COUNT(*) AS n", "SUM(cost) AS s", "AVG(cost) AS m"}
	var refused, admitted int
	for i := range 60 {
		keys := 1 + rng.IntN(3)
		var sel, group []string
		product := int64(1)
		for k := range keys {
			n := 1 + rng.IntN(998)
			sel = append(sel, fmt.Sprintf("width_bucket(cost, 0, %d, %d) AS k%d", 100*(k+1), n, k))
			group = append(group, fmt.Sprint(k+1))
			product *= int64(n + 2) // buckets 0..n+1: below, the n buckets, above
		}
		na := 1 + rng.IntN(len(aggs))
		sel = append(sel, aggs[:na]...)
		outputs := int64(keys + na)
		limit := min(int64(engine.MaxPublicPartitions), int64(params.OutputMaxRows), int64(params.OutputMaxCells)/outputs)
		sql := fmt.Sprintf("SELECT %s FROM visits GROUP BY %s", strings.Join(sel, ", "), strings.Join(group, ", "))
		err := e.Admit(context.Background(), engine.Job{Principal: applicant, Grant: "g", SQL: sql, Options: plan.Options{Epsilon: 1}})
		switch {
		case product > limit && errcode.Of(err) != errcode.TooManyPartitions:
			t.Errorf("case %d: %d partitions over a limit of %d: got %v, want %s", i, product, limit, err, errcode.TooManyPartitions)
		case product <= limit && err != nil:
			t.Errorf("case %d: %d partitions within a limit of %d: refused: %v", i, product, limit, err)
		}
		if product > limit {
			refused++
		} else {
			admitted++
		}
	}
	if refused == 0 || admitted == 0 {
		t.Fatalf("the random cases exercised one side only: %d refused, %d admitted", refused, admitted)
	}
}
