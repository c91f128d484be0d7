package gate_test

import (
	"context"
	dbsql "database/sql"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	_ "github.com/duckdb/duckdb-go/v2"

	"github.com/c1b99f93/cleanroom/catalog"
	"github.com/c1b99f93/cleanroom/engine/gate"
)

// datedCatalog is medical_visits with a public date range on visit_date and none on
// admitted_at.
func datedCatalog(from, to string) specs {
	id := catalog.Column{Tags: []catalog.Tag{catalog.TagIdentifier}}
	return specs{"medical_visits": {
		Name: "medical_visits", Provider: "health-commission", Grade: catalog.GradeL2, PrivacyUnit: "person_id",
		Columns: map[string]catalog.Column{
			"person_id":   id,
			"visit_date":  {Tags: []catalog.Tag{catalog.TagQuasiIdentifier}, DateRange: []string{from, to}},
			"admitted_at": {Tags: []catalog.Tag{catalog.TagQuasiIdentifier}},
		}}}
}

// TestDateTruncOverADateRangeHasAPublicDomain: a date_trunc of a column with a catalog
// date_range is a public key (every period of the range, no partition selection); any other
// date_trunc still selects its partitions.
func TestDateTruncOverADateRangeHasAPublicDomain(t *testing.T) {
	p := newParser(t)
	cat := datedCatalog("2024-01-15", "2025-12-31")
	for _, tc := range []struct {
		name, key   string
		n           int
		first, last string
	}{
		{"month", "date_trunc('month', visit_date)", 24, "2024-01-01", "2025-12-01"},
		{"upper-case part", "date_trunc('MONTH', visit_date)", 24, "2024-01-01", "2025-12-01"},
		{"year", "date_trunc('year', visit_date)", 2, "2024-01-01", "2025-01-01"},
		{"quarter", "date_trunc('quarter', visit_date)", 8, "2024-01-01", "2025-10-01"},
		{"week from Monday", "date_trunc('week', visit_date)", 103, "2024-01-15", "2025-12-29"},
		{"day", "date_trunc('day', visit_date)", 717, "2024-01-15", "2025-12-31"},
		{"hour: not enumerated", "date_trunc('hour', visit_date)", 0, "", ""},
		{"no date range", "date_trunc('month', admitted_at)", 0, "", ""},
		{"not a bare column", "date_trunc('month', coalesce(visit_date, admitted_at))", 0, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q, err := gate.Admit(context.Background(), p, cat, fmt.Sprintf("SELECT %s AS k, COUNT(*) FROM medical_visits GROUP BY k", tc.key))
			if err != nil {
				t.Fatal(err)
			}
			d := q.Keys[0].Domain
			if len(d) != tc.n {
				t.Fatalf("domain has %d values, want %d: %q", len(d), tc.n, d)
			}
			if tc.n > 0 && (d[0] != tc.first || d[len(d)-1] != tc.last) {
				t.Errorf("domain runs %s..%s, want %s..%s", d[0], d[len(d)-1], tc.first, tc.last)
			}
		})
	}
	t.Run("too many days", func(t *testing.T) {
		q, err := gate.Admit(context.Background(), p, datedCatalog("2000-01-01", "2025-12-31"),
			"SELECT date_trunc('day', visit_date) AS k, COUNT(*) FROM medical_visits GROUP BY k")
		if err != nil {
			t.Fatal(err)
		}
		if q.Keys[0].Domain != nil {
			t.Errorf("a domain of %d days was enumerated", len(q.Keys[0].Domain))
		}
	})
}

// TestDateDomainsMatchDuckDB is the property that makes a date domain safe to publish: for
// random ranges and every part, the domain is exactly the set of values DuckDB's date_trunc
// takes over the days of the range (seeded, so a failure reproduces).
func TestDateDomainsMatchDuckDB(t *testing.T) {
	db, err := dbsql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	p := newParser(t)
	rng := rand.New(rand.NewPCG(15, 2026))
	base := time.Date(1995, 1, 1, 0, 0, 0, 0, time.UTC)
	for range 40 {
		from := base.AddDate(0, 0, rng.IntN(12000))
		to := from.AddDate(0, 0, rng.IntN(900))
		cat := datedCatalog(from.Format(catalog.DateLayout), to.Format(catalog.DateLayout))
		for _, part := range []string{"year", "quarter", "month", "week", "day"} {
			q, err := gate.Admit(context.Background(), p, cat,
				fmt.Sprintf("SELECT date_trunc('%s', visit_date) AS k, COUNT(*) FROM medical_visits GROUP BY k", part))
			if err != nil {
				t.Fatal(err)
			}
			rows, err := db.Query(fmt.Sprintf(`SELECT DISTINCT strftime(date_trunc('%s', d::DATE), '%%Y-%%m-%%d') AS v
				FROM range(DATE '%s', DATE '%s' + INTERVAL 1 DAY, INTERVAL 1 DAY) t(d) ORDER BY v`,
				part, from.Format(catalog.DateLayout), to.Format(catalog.DateLayout)))
			if err != nil {
				t.Fatal(err)
			}
			var want []string
			for rows.Next() {
				var v string
				if err := rows.Scan(&v); err != nil {
					t.Fatal(err)
				}
				want = append(want, v)
			}
			rows.Close()
			if !slices.Equal(q.Keys[0].Domain, want) {
				t.Fatalf("%s over %s..%s: domain %q, DuckDB %q", part, from.Format(catalog.DateLayout), to.Format(catalog.DateLayout), q.Keys[0].Domain, want)
			}
		}
	}
}
