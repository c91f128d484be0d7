package gate_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/c1b99f93/cleanroom/dp"
	"github.com/c1b99f93/cleanroom/engine/gate"
	"github.com/c1b99f93/cleanroom/errcode"
)

// TestGateCountDistinct pins which COUNT(DISTINCT …) the gate admits and as what: the privacy
// unit (or an inner-joined dataset's, equal to it on every row) stays a count of units; a
// column or expression that reads no identifier is a distinct count of values, which reads the
// value and uses the column as an aggregate (never as units); any other identifier is refused
// with the hint to count rows where it is present.
func TestGateCountDistinct(t *testing.T) {
	tests := []struct {
		name string
		sql  string
		kind dp.Kind      // the first aggregate's kind when admitted
		code errcode.Code // the refusal's code otherwise
		hint string       // a phrase the refusal carries
	}{
		{name: "the privacy unit", sql: "SELECT COUNT(DISTINCT person_id) FROM medical_visits", kind: dp.CountDistinct},
		{name: "an inner-joined dataset's unit", sql: "SELECT COUNT(DISTINCT r.person_id) FROM medical_visits v JOIN residents r ON v.person_id = r.person_id", kind: dp.CountDistinct},
		{name: "a column without keys", sql: "SELECT COUNT(DISTINCT diagnosis) FROM medical_visits", kind: dp.CountDistinctValues},
		{name: "a column by a public key", sql: "SELECT district, COUNT(DISTINCT diagnosis) FROM medical_visits GROUP BY district", kind: dp.CountDistinctValues},
		{name: "a column by a selected key", sql: "SELECT diagnosis, COUNT(DISTINCT visit_date) FROM medical_visits GROUP BY diagnosis", kind: dp.CountDistinctValues},
		{name: "a bounded column", sql: "SELECT COUNT(DISTINCT cost) FROM medical_visits", kind: dp.CountDistinctValues},
		{name: "the group key itself", sql: "SELECT district, COUNT(DISTINCT district) FROM medical_visits GROUP BY district", kind: dp.CountDistinctValues},
		{name: "a lookup table's column", sql: "SELECT COUNT(DISTINCT d.name) FROM medical_visits v JOIN districts d ON v.district = d.code", kind: dp.CountDistinctValues},
		{name: "an expression", sql: "SELECT COUNT(DISTINCT date_trunc('month', visit_date)) FROM medical_visits", kind: dp.CountDistinctValues},
		{name: "a condition", sql: "SELECT COUNT(DISTINCT cost > 100) FROM medical_visits", kind: dp.CountDistinctValues},
		{name: "another identifier", sql: "SELECT COUNT(DISTINCT visit_id) FROM medical_visits", code: errcode.UnsupportedSQL, hint: "with COUNT(visit_id)"},
		{name: "a joined dataset's identifier", sql: "SELECT COUNT(DISTINCT r.mobile) FROM medical_visits v JOIN residents r ON v.person_id = r.person_id", code: errcode.UnsupportedSQL, hint: "with COUNT(mobile)"},
		{name: "a LEFT-joined dataset's unit", sql: "SELECT COUNT(DISTINCT v.person_id) FROM residents r LEFT JOIN medical_visits v ON r.person_id = v.person_id", code: errcode.UnsupportedSQL, hint: "only on the privacy unit"},
		{name: "an expression of an identifier", sql: "SELECT COUNT(DISTINCT lower(visit_id)) FROM medical_visits", code: errcode.IdentifierInOutput, hint: "COUNT(DISTINCT person_id)"},
		{name: "a subquery's unit in an expression", sql: "SELECT COUNT(DISTINCT upper(person_id)) FROM (SELECT person_id, COUNT(*) AS n FROM medical_visits GROUP BY person_id) t", code: errcode.IdentifierInOutput, hint: "COUNT(DISTINCT person_id)"},
		{name: "DISTINCT in another aggregate", sql: "SELECT SUM(DISTINCT cost) FROM medical_visits", code: errcode.UnsupportedSQL, hint: "admitted only in COUNT(DISTINCT"},
		{name: "an unknown column", sql: "SELECT COUNT(DISTINCT diagnosys) FROM medical_visits", code: errcode.UnknownColumn, hint: `did you mean "diagnosis"?`},
	}
	p := newParser(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, err := gate.Admit(context.Background(), p, testCatalog(), tt.sql)
			if tt.code != "" {
				if got := errcode.Of(err); got != tt.code {
					t.Fatalf("code %q (%v), want %q", got, err, tt.code)
				}
				if msg := errcode.Public(err).Message; !strings.Contains(msg, tt.hint) {
					t.Fatalf("refusal %q lacks %q", msg, tt.hint)
				}
				return
			}
			if err != nil {
				t.Fatalf("refused: %v", err)
			}
			a := q.Aggregates[0]
			if a.Kind != tt.kind {
				t.Fatalf("admitted as %s, want %s", a.Kind, tt.kind)
			}
			units := slices.ContainsFunc(q.Uses, func(u gate.ColumnUse) bool { return u.Usage == gate.UseDistinctUnits })
			if a.Kind == dp.CountDistinctValues {
				if a.Value == nil || len(a.Bounds) != 0 || !strings.HasPrefix(a.Name, "count_distinct_") {
					t.Fatalf("distinct count of values: value %v, bounds %v, name %q", a.Value, a.Bounds, a.Name)
				}
				if units {
					t.Fatal("a distinct count of values is recorded as counting units")
				}
			} else if !units || a.Value != nil {
				t.Fatalf("a count of units: value %v, units use %v", a.Value, units)
			}
		})
	}
}
