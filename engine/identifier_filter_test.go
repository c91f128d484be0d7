package engine_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/c1b99f93/cleanroom/engine"
	"github.com/c1b99f93/cleanroom/engine/errcode"
	"github.com/c1b99f93/cleanroom/engine/plan"
	"github.com/c1b99f93/cleanroom/sandbox"
)

// An equality or IN filter on an identifier singles people out, so it runs only when the
// operator's policy data allows it; any other filter on an identifier never runs. Either way
// the answer is DP and bounded like any other.
func TestIdentifierEqualityFilterOnlyWhenThePolicyAllowsIt(t *testing.T) {
	openWith := func(allow bool) *engine.Engine {
		dir := testPolicy(t)
		path := filepath.Join(dir, "data.json")
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		// The queries below single out the same person on one grant, which the differencing
		// check would hold for review; this test is about the filters alone.
		data = []byte(strings.Replace(string(data), `"differencing_min_units": 10`, `"differencing_min_units": 0`, 1))
		if allow {
			patched := strings.Replace(string(data), `"allow_identifier_equality_filters": false`, `"allow_identifier_equality_filters": true`, 1)
			if patched == string(data) {
				t.Fatal("data.json has no allow_identifier_equality_filters: false to flip")
			}
			data = []byte(patched)
		}
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		e, err := engine.Open(context.Background(), engine.Config{DataDir: t.TempDir(), PolicyDir: dir, WorkerDB: sandbox.DBLimits{MemoryLimit: "2GB"}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { e.Close() })
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
		want  string // "" = released
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
		if got := errcode.Code(err); got != tc.want {
			t.Fatalf("allow=%v %s: code %q (%v), want %q", tc.allow, tc.sql, got, err, tc.want)
		}
		// One person's count is almost always under the minimum of units per group, so the
		// row is released or withheld: one of the two, and charged either way.
		if tc.want == "" && (r.Suppressed == nil || len(r.Rows)+*r.Suppressed != 1 || r.Spent.Epsilon != 1) {
			t.Fatalf("allow=%v %s: result %+v is not one DP row (released or withheld) charged epsilon 1", tc.allow, tc.sql, r)
		}
	}
}
