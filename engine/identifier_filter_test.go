package engine_test

import (
	"testing"

	"github.com/c1b99f93/cleanroom/engine"
	"github.com/c1b99f93/cleanroom/engine/plan"
	"github.com/c1b99f93/cleanroom/errcode"
)

// An equality or IN filter on an identifier singles people out, so it runs only when the
// operator's policy data allows it; any other filter on an identifier never runs. Either way
// the answer is DP and bounded like any other.
func TestIdentifierEqualityFilterOnlyWhenThePolicyAllowsIt(t *testing.T) {
	openWith := func(allow bool) *engine.Engine {
		// The queries below single out the same person on one grant, which the differencing
		// check would hold for review; this test is about the filters alone.
		edits := []string{`"differencing_min_units": 10`, `"differencing_min_units": 0`}
		if allow {
			edits = append(edits, `"allow_identifier_equality_filters": false`, `"allow_identifier_equality_filters": true`)
		}
		e := openEngineWithParams(t, edits...)
		register(t, e, loadDataset(t, "medical_visits"))
		grant(t, e, "g", 100)
		return e
	}
	const (
		equality = "SELECT COUNT(*) FROM medical_visits WHERE person_id = '530102198001010001'"
		in       = "SELECT COUNT(*) FROM medical_visits WHERE visit_id IN ('V1', 'V2') OR person_id IN ('530102198001010001')"
		pattern  = "SELECT COUNT(*) FROM medical_visits WHERE person_id LIKE '530102%'"
		function = "SELECT COUNT(*) FROM medical_visits WHERE substr(person_id, 1, 6) = '530102'"
	)
	engines := map[bool]*engine.Engine{false: openWith(false), true: openWith(true)}
	for _, tc := range []struct {
		allow bool
		sql   string
		want  errcode.Code // "" = released
	}{
		{false, equality, errcode.PolicyDenied},
		{false, in, errcode.PolicyDenied},
		{false, pattern, errcode.PolicyDenied},
		{true, equality, ""},
		{true, in, ""},
		{true, pattern, errcode.PolicyDenied},
		{true, function, errcode.PolicyDenied},
	} {
		r, err := submit(engines[tc.allow], "g", tc.sql, plan.Options{Epsilon: 1})
		if got := errcode.Of(err); got != tc.want {
			t.Fatalf("allow=%v %s: code %q (%v), want %q", tc.allow, tc.sql, got, err, tc.want)
		}
		// One person's count is almost always under the minimum of units per group, so the
		// row is released or withheld: one of the two, and charged either way.
		if tc.want == "" && (r.Suppressed == nil || len(r.Rows)+*r.Suppressed != 1 || r.Spent.Epsilon != 1) {
			t.Fatalf("allow=%v %s: result %+v is not one DP row (released or withheld) charged epsilon 1", tc.allow, tc.sql, r)
		}
	}
}
