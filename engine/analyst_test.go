package engine_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/c1b99f93/cleanroom/engine/plan"
	"github.com/c1b99f93/cleanroom/errcode"
)

// analystQueries is a committed set of ordinary analyst queries (issue 15), one per entry: a
// comment naming what it asks, then the query ending with ";".
var analystQueries = filepath.Join("..", "testdata", "queries", "analyst.sql")

// minAnalystShare is the share of the set that ran when it was last measured; it may only go
// up. Issue 15 asks for at least 85%.
const minAnalystShare = 33.0 / 35

type analystQuery struct{ asks, sql string }

func readAnalystQueries(t *testing.T) []analystQuery {
	t.Helper()
	data, err := os.ReadFile(analystQueries)
	if err != nil {
		t.Fatal(err)
	}
	var out []analystQuery
	var asks string
	var sql []string
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "":
			continue
		case strings.HasPrefix(line, "--"):
			asks = strings.TrimSpace(strings.TrimPrefix(line, "--"))
			continue
		}
		sql = append(sql, line)
		if strings.HasSuffix(line, ";") {
			if asks == "" {
				t.Fatalf("%s: a query without a comment naming what it asks", analystQueries)
			}
			out = append(out, analystQuery{asks: asks, sql: strings.TrimSuffix(strings.Join(sql, " "), ";")})
			asks, sql = "", nil
		}
	}
	if len(out) < 30 {
		t.Fatalf("%s holds %d queries; has its format changed?", analystQueries, len(out))
	}
	return out
}

// TestAnalystQueriesRun runs every query of the analyst set end to end and reports the share
// that is released; the share may not drop below what was measured.
func TestAnalystQueriesRun(t *testing.T) {
	queries := readAnalystQueries(t)
	e := openEngine(t)
	for _, name := range []string{"medical_visits", "residents", "insurance_claims", "districts", "icd10_chapters"} {
		register(t, e, loadDataset(t, name))
	}
	grant(t, e, "g", 1e6)
	ran := 0
	for _, q := range queries {
		r, err := submitReviewed(e, "g", q.sql, plan.Options{Epsilon: 1})
		if err != nil {
			t.Logf("refused %-70s %s: %s", q.asks, errcode.Of(err), errcode.Public(err).Message)
			continue
		}
		ran++
		t.Logf("ran     %-70s %d row(s)", q.asks, len(r.Rows))
	}
	share := float64(ran) / float64(len(queries))
	t.Logf("%d of %d analyst queries run (%.1f%%)", ran, len(queries), 100*share)
	if share < minAnalystShare-1e-9 {
		t.Fatalf("%d of %d analyst queries run (%.1f%%), below the measured %.1f%%", ran, len(queries), 100*share, 100*minAnalystShare)
	}
}
