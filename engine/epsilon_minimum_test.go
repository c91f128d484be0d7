package engine_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/c1b99f93/cleanroom/engine"
	"github.com/c1b99f93/cleanroom/engine/plan"
	"github.com/c1b99f93/cleanroom/errcode"
	"github.com/c1b99f93/cleanroom/policy"
)

// TestEpsilonBelowThePolicysMinimumIsRefusedAndExplained: an epsilon of 5e-13 once released a
// count of 0 with the interval [0, 0]. The policy's min_epsilon_per_job refuses it before
// anything runs, at no cost, naming the minimum; an explanation reports the same reason in
// its policy decision; and the minimum itself is admitted.
func TestEpsilonBelowThePolicysMinimumIsRefusedAndExplained(t *testing.T) {
	e := openEngine(t)
	register(t, e, visits(t, "visits", 50, false))
	grant(t, e, "g", 5)
	const sql = "SELECT district, COUNT(*) AS n FROM visits GROUP BY district"
	for _, eps := range []float64{5e-13, 1e-9, 9.9e-4} {
		_, err := submit(e, "g", sql, plan.Options{Epsilon: eps})
		if errcode.Of(err) != errcode.PolicyDenied {
			t.Fatalf("epsilon %g: %v, want %s", eps, err, errcode.PolicyDenied)
		}
		if msg := errcode.Public(err).Message; !strings.Contains(msg, "epsilon_below_minimum") || !strings.Contains(msg, "minimum of 0.001") {
			t.Errorf("epsilon %g: message %q does not name the code and the minimum", eps, msg)
		}
		x, err := e.Explain(context.Background(), engine.Job{Principal: applicant, Grant: "g", SQL: sql, Options: plan.Options{Epsilon: eps}})
		if err != nil {
			t.Fatalf("explain at epsilon %g: %v", eps, err)
		}
		d := policy.Decision{Result: x.Policy.Result, Reasons: x.Policy.Reasons}
		if d.Result != policy.ResultDeny || !slices.Contains(d.Codes(), "epsilon_below_minimum") {
			t.Errorf("explain at epsilon %g: policy %+v, want a deny with epsilon_below_minimum", eps, x.Policy)
		}
	}
	if got := spent(t, e, "g"); got != 0 {
		t.Errorf("refused jobs cost %v", got)
	}
	if _, err := submit(e, "g", sql, plan.Options{Epsilon: 1e-3}); err != nil {
		t.Errorf("epsilon at the minimum: %v", err)
	}
}
