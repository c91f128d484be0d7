package gate_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/c1b99f93/cleanroom/catalog"
	"github.com/c1b99f93/cleanroom/dp"
	"github.com/c1b99f93/cleanroom/engine/gate"
	"github.com/c1b99f93/cleanroom/engine/plan"
	"github.com/c1b99f93/cleanroom/engine/post"
	"github.com/c1b99f93/cleanroom/errcode"
	"github.com/c1b99f93/cleanroom/sandbox"
	"github.com/c1b99f93/cleanroom/sandbox/sqlgen"
	"github.com/c1b99f93/cleanroom/sandbox/wire"
)

var rewrite = flag.Bool("rewrite", false, "rewrite the golden file testdata/admitted.golden")

type specs map[string]*catalog.Spec

func (s specs) Lookup(name string) (*catalog.Spec, bool) { sp, ok := s[name]; return sp, ok }

func (s specs) DatasetNames() []string {
	var out []string
	for name := range s {
		out = append(out, name)
	}
	return out
}

func testCatalog() specs {
	id := catalog.Column{Tags: []catalog.Tag{catalog.TagIdentifier}}
	return specs{"medical_visits": {
		Name: "medical_visits", Provider: "health-commission", Grade: catalog.GradeL2, PrivacyUnit: "person_id",
		Columns: map[string]catalog.Column{
			"person_id":  id,
			"visit_id":   id,
			"district":   {Tags: []catalog.Tag{catalog.TagQuasiIdentifier}, Domain: []string{"530102", "530103"}},
			"age_band":   {Tags: []catalog.Tag{catalog.TagQuasiIdentifier}, Domain: []string{"0-17", "18-34"}},
			"cost":       {Tags: []catalog.Tag{catalog.TagSensitive}, Bounds: []float64{0, 50000}},
			"diagnosis":  {Tags: []catalog.Tag{catalog.TagSensitive}},
			"inpatient":  {Tags: []catalog.Tag{catalog.TagSensitive}},
			"visit_date": {Tags: []catalog.Tag{catalog.TagAttribute}},
		}},
		"residents": {
			Name: "residents", Provider: "public-security-bureau", Grade: catalog.GradeL3, PrivacyUnit: "person_id",
			Columns: map[string]catalog.Column{
				"person_id": id,
				"mobile":    id,
				"gender":    {Tags: []catalog.Tag{catalog.TagQuasiIdentifier}, Domain: []string{"M", "F"}},
				"age_band":  {Tags: []catalog.Tag{catalog.TagQuasiIdentifier}, Domain: []string{"0-17", "18-34"}},
				"district":  {Tags: []catalog.Tag{catalog.TagQuasiIdentifier}, Domain: []string{"530102", "530103"}},
			}},
		"enterprises": {
			Name: "enterprises", Provider: "market-regulation", Grade: catalog.GradeL2, PrivacyUnit: "uscc",
			Columns: map[string]catalog.Column{
				"uscc":     id,
				"district": {Tags: []catalog.Tag{catalog.TagAttribute}},
			}},
		"districts": {
			Name: "districts", Provider: "civil-affairs", Grade: catalog.GradeL1, Public: true,
			Columns: map[string]catalog.Column{
				"code": {Tags: []catalog.Tag{catalog.TagAttribute}},
				"name": {Tags: []catalog.Tag{catalog.TagAttribute}, Domain: []string{"Wuhua", "Panlong"}},
			}},
	}
}

// cases is the gate's corpus: unit tests, fuzz seeds and the golden file all use it.
var cases = []struct {
	name string
	sql  string
	code errcode.Code // "" = admitted
}{
	{"count by district", "SELECT district, COUNT(*) AS visits FROM medical_visits GROUP BY district", ""},
	{"sum and distinct units", "SELECT district, age_band, SUM(cost), COUNT(DISTINCT person_id) FROM medical_visits GROUP BY district, age_band", ""},
	{"global aggregate", "SELECT COUNT(*) FROM medical_visits", ""},
	{"filters", "SELECT district, COUNT(*) FROM medical_visits WHERE inpatient AND cost > 10.5 AND district IN ('530102', '530103') AND visit_date BETWEEN DATE '2024-01-01' AND DATE '2024-12-31' AND diagnosis LIKE 'J%' AND diagnosis IS NOT NULL AND NOT (cost + 1 >= 2e3 OR cost <> 3) GROUP BY district", ""},
	{"alias qualified", "SELECT v.district, COUNT(*) FROM medical_visits AS v WHERE v.cost < 100 GROUP BY v.district", ""},
	{"quote in literal", "SELECT COUNT(*) FROM medical_visits WHERE diagnosis = 'it''s'", ""},
	{"coalesce in a filter and a key", "SELECT CASE WHEN coalesce(cost, 0) > 100 THEN 'high' ELSE 'low' END AS band, COUNT(*) FROM medical_visits WHERE coalesce(inpatient, false) GROUP BY band", ""},
	{"syntax error", "SELEC district FROM medical_visits", errcode.SyntaxError},
	{"copy", "COPY medical_visits TO '/tmp/x.csv'", errcode.UnsupportedSQL},
	{"attach", "ATTACH '/tmp/x.db' AS x", errcode.UnsupportedSQL},
	{"install", "INSTALL httpfs", errcode.UnsupportedSQL},
	{"load", "LOAD httpfs", errcode.UnsupportedSQL},
	{"pragma", "PRAGMA database_list", errcode.UnsupportedSQL},
	{"set", "SET enable_external_access = true", errcode.UnsupportedSQL},
	{"delete", "DELETE FROM medical_visits", errcode.UnsupportedSQL},
	{"several statements", "SELECT COUNT(*) FROM medical_visits; SELECT COUNT(*) FROM medical_visits", errcode.UnsupportedSQL},
	{"read_csv", "SELECT COUNT(*) FROM read_csv('/etc/passwd')", errcode.UnsupportedSQL},
	{"read_parquet in filter", "SELECT COUNT(*) FROM medical_visits WHERE cost > (SELECT count(*) FROM read_parquet('x'))", errcode.UnsupportedSQL},
	{"getenv", "SELECT COUNT(*) FROM medical_visits WHERE getenv('HOME') = 'x'", errcode.UnsupportedSQL},
	{"query function", "SELECT COUNT(*) FROM query('SELECT 1')", errcode.UnsupportedSQL},
	{"select identifier", "SELECT person_id, cost FROM medical_visits", errcode.IdentifierInOutput},
	{"select star", "SELECT * FROM medical_visits", errcode.IdentifierInOutput},
	{"group by identifier", "SELECT person_id, COUNT(*) FROM medical_visits GROUP BY person_id", errcode.IdentifierInOutput},
	{"raw column", "SELECT cost FROM medical_visits", "raw_column_in_output"},
	{"sum identifier", "SELECT SUM(visit_id) FROM medical_visits", errcode.IdentifierInOutput},
	{"unbounded sum", "SELECT SUM(diagnosis) FROM medical_visits", errcode.MissingBounds},
	{"unknown dataset", "SELECT COUNT(*) FROM secret_table", errcode.UnknownDataset},
	{"unknown column", "SELECT COUNT(*) FROM medical_visits WHERE salary > 1", errcode.UnknownColumn},
	{"count distinct non-unit", "SELECT COUNT(DISTINCT district) FROM medical_visits", ""},
	{"count distinct of a column by key, with HAVING and a ratio", "SELECT district, COUNT(DISTINCT diagnosis) AS diagnoses, COUNT(*) / COUNT(DISTINCT diagnosis) AS visits_per_diagnosis FROM medical_visits GROUP BY district HAVING COUNT(DISTINCT diagnosis) > 3", ""},
	{"count distinct of a joined column", "SELECT v.age_band, COUNT(DISTINCT r.district) FROM medical_visits v JOIN residents r ON v.person_id = r.person_id GROUP BY v.age_band", ""},
	{"count distinct of a per-unit value", "SELECT COUNT(DISTINCT n) FROM (SELECT person_id, LEAST(COUNT(*), 20) AS n FROM medical_visits GROUP BY person_id) t", ""},
	{"count distinct of an identifier", "SELECT COUNT(DISTINCT visit_id) FROM medical_visits", errcode.UnsupportedSQL},
	{"count distinct of a joined identifier", "SELECT COUNT(DISTINCT r.mobile) FROM medical_visits v JOIN residents r ON v.person_id = r.person_id", errcode.UnsupportedSQL},
	{"count distinct of an expression", "SELECT COUNT(DISTINCT substr(diagnosis, 1, 1)) FROM medical_visits", ""},
	{"count distinct of an expression of an identifier", "SELECT COUNT(DISTINCT substr(visit_id, 1, 4)) FROM medical_visits", errcode.IdentifierInOutput},
	{"join on the unit", "SELECT r.age_band, COUNT(*), SUM(v.cost), COUNT(DISTINCT v.person_id) FROM medical_visits v JOIN residents r ON v.person_id = r.person_id WHERE r.gender = 'F' AND v.cost > 10 GROUP BY r.age_band", ""},
	{"left join on the unit with using", "SELECT age_band, COUNT(*) FROM residents LEFT JOIN medical_visits USING (person_id) GROUP BY age_band", errcode.UnknownColumn},
	{"left join qualified keys", "SELECT r.age_band, COUNT(v.visit_id) FROM residents r LEFT JOIN medical_visits v USING (person_id) GROUP BY r.age_band", ""},
	{"self join on the unit", "SELECT COUNT(*) FROM medical_visits a JOIN medical_visits b ON a.person_id = b.person_id", ""},
	{"lookup join", "SELECT d.name, COUNT(*) FROM medical_visits v LEFT JOIN districts d ON v.district = d.code GROUP BY d.name", ""},
	{"three-way join", "SELECT d.name, AVG(v.cost) FROM medical_visits v JOIN residents r ON r.person_id = v.person_id JOIN districts d ON r.district = d.code GROUP BY d.name", ""},
	{"join not on the unit", "SELECT COUNT(*) FROM medical_visits v JOIN residents r ON v.district = r.district", errcode.UnsupportedSQL},
	{"join on unit and another column", "SELECT COUNT(*) FROM medical_visits v JOIN residents r ON v.person_id = r.person_id AND v.district = r.district", errcode.UnsupportedSQL},
	{"lookup join on identifier", "SELECT COUNT(*) FROM medical_visits v JOIN districts d ON v.person_id = d.code", errcode.IdentifierInOutput},
	{"lookup first", "SELECT COUNT(*) FROM districts d JOIN medical_visits v ON v.district = d.code", errcode.UnsupportedSQL},
	{"right join", "SELECT COUNT(*) FROM medical_visits v RIGHT JOIN residents r ON v.person_id = r.person_id", errcode.UnsupportedSQL},
	{"full join", "SELECT COUNT(*) FROM medical_visits v FULL JOIN residents r ON v.person_id = r.person_id", errcode.UnsupportedSQL},
	{"cross join", "SELECT COUNT(*) FROM medical_visits v, residents r", errcode.UnsupportedSQL},
	{"ambiguous column", "SELECT district, COUNT(*) FROM medical_visits v JOIN residents r ON v.person_id = r.person_id GROUP BY district", errcode.UnknownColumn},
	{"distinct units of a left-joined dataset", "SELECT COUNT(DISTINCT v.person_id) FROM residents r LEFT JOIN medical_visits v ON r.person_id = v.person_id", errcode.UnsupportedSQL},
	{"select joined identifier", "SELECT r.mobile, COUNT(*) FROM medical_visits v JOIN residents r ON v.person_id = r.person_id GROUP BY r.mobile", errcode.IdentifierInOutput},
	{"identifier equality filter", "SELECT COUNT(*) FROM medical_visits WHERE person_id = '530102199001011234' AND visit_id IN ('a', 'b')", ""},
	{"identifier range filter", "SELECT COUNT(*) FROM medical_visits WHERE person_id LIKE '5301%'", ""},
	{"per-unit subquery", "SELECT AVG(total), COUNT(*) FROM (SELECT person_id, LEAST(GREATEST(SUM(cost), 0), 200000) AS total FROM medical_visits GROUP BY person_id) t", ""},
	{"per-unit subquery with keys and join", "SELECT age_band, n, COUNT(DISTINCT person_id) FROM (SELECT v.person_id, r.age_band, LEAST(COUNT(*), 20) AS n FROM medical_visits v JOIN residents r ON v.person_id = r.person_id WHERE v.inpatient GROUP BY v.person_id, r.age_band) GROUP BY age_band, n", ""},
	{"per-unit CTE", "WITH per_person AS (SELECT person_id, district, AVG(cost) AS mean_cost, MAX(cost) AS top FROM medical_visits GROUP BY person_id, district) SELECT district, MEDIAN(mean_cost), SUM(top) FROM per_person WHERE top > 100 GROUP BY district", ""},
	{"per-unit sum without clamp (bounded by the catalog and the row cap)", "SELECT AVG(total) FROM (SELECT person_id, SUM(cost) AS total FROM medical_visits GROUP BY person_id) t", ""},
	{"per-unit count, average and maximum without clamp", "SELECT AVG(n), AVG(mean_cost), SUM(top) FROM (SELECT person_id, COUNT(*) AS n, AVG(cost) AS mean_cost, MAX(cost) AS top FROM medical_visits GROUP BY person_id) t", ""},
	{"per-unit sum clamped on one side", "SELECT AVG(total) FROM (SELECT person_id, LEAST(SUM(cost), 200000) AS total FROM medical_visits GROUP BY person_id) t", ""},
	{"per-unit sum of a column without catalog bounds", "SELECT AVG(total) FROM (SELECT person_id, SUM(diagnosis) AS total FROM medical_visits GROUP BY person_id) t", errcode.MissingBounds},
	{"subquery not per unit", "SELECT COUNT(*) FROM (SELECT district, COUNT(*) AS n FROM medical_visits GROUP BY district) t", errcode.UnsupportedSQL},
	{"subquery select star", "SELECT COUNT(*) FROM (SELECT * FROM medical_visits)", errcode.UnsupportedSQL},
	{"subquery outputs unit", "SELECT person_id, COUNT(*) FROM (SELECT person_id, COUNT(*) AS n FROM medical_visits GROUP BY person_id) GROUP BY person_id", errcode.IdentifierInOutput},
	{"subquery max of identifier", "SELECT COUNT(*) FROM (SELECT person_id, MAX(visit_id) AS v FROM medical_visits GROUP BY person_id)", errcode.IdentifierInOutput},
	{"subquery unnamed aggregate", "SELECT COUNT(*) FROM (SELECT person_id, SUM(cost) FROM medical_visits GROUP BY person_id)", errcode.UnsupportedSQL},
	{"subquery with limit", "SELECT COUNT(*) FROM (SELECT person_id, COUNT(*) AS n FROM medical_visits GROUP BY person_id LIMIT 5)", errcode.UnsupportedSQL},
	{"cte not per unit", "WITH x AS (SELECT * FROM medical_visits) SELECT COUNT(*) FROM x", errcode.UnsupportedSQL},
	{"reserved name in another case", "SELECT SUM(\"__CR_NORM\") FROM (SELECT person_id, LEAST(COUNT(*), 10) AS \"__CR_NORM\" FROM medical_visits GROUP BY person_id) s", errcode.UnsupportedSQL},
	{"subquery names differing in case", "SELECT SUM(\"N\") FROM (SELECT person_id, LEAST(COUNT(*), 10) AS n, LEAST(SUM(cost), 1000) AS \"N\" FROM medical_visits GROUP BY person_id) s", errcode.UnsupportedSQL},
	{"rowid as a subquery column", "SELECT SUM(rowid) FROM (SELECT person_id, LEAST(COUNT(*), 10) AS rowid FROM medical_visits GROUP BY person_id) s", errcode.UnsupportedSQL},
	{"aliases differing in case", "SELECT COUNT(*) FROM medical_visits v JOIN residents V ON v.person_id = V.person_id", errcode.UnsupportedSQL},
	{"two ctes", "WITH a AS (SELECT person_id, COUNT(*) AS n FROM medical_visits GROUP BY person_id), b AS (SELECT person_id, COUNT(*) AS n FROM medical_visits GROUP BY person_id) SELECT COUNT(*) FROM a", errcode.UnsupportedSQL},
	{"union", "SELECT COUNT(*) FROM medical_visits UNION SELECT COUNT(*) FROM medical_visits", errcode.UnsupportedSQL},
	{"having on a released count", "SELECT district, COUNT(*) FROM medical_visits GROUP BY district HAVING COUNT(*) > 5", ""},
	{"having on an alias and a key", "SELECT district, AVG(cost) AS mean_cost FROM medical_visits GROUP BY district HAVING mean_cost BETWEEN 100 AND 900 AND district <> '530102'", ""},
	{"having on an aggregate not selected", "SELECT district, COUNT(*) FROM medical_visits GROUP BY district HAVING SUM(cost) > 5", errcode.UnsupportedSQL},
	{"having with a window", "SELECT district, COUNT(*) AS n FROM medical_visits GROUP BY district HAVING n > SUM(n) OVER ()", errcode.UnsupportedSQL},
	{"ratio of two sums", "SELECT district, 100.0 * SUM(cost) / COUNT(*) AS ratio FROM medical_visits GROUP BY district", ""},
	{"rounded average and a difference", "SELECT age_band, ROUND(AVG(cost), 1) AS mean_cost, MAX(cost) - MIN(cost) AS spread, SUM(cost) FROM medical_visits GROUP BY age_band", ""},
	{"share of the total", "SELECT district, COUNT(*) * 100.0 / SUM(COUNT(*)) OVER () AS share FROM medical_visits GROUP BY district ORDER BY share DESC LIMIT 1", ""},
	{"lag and rank over outputs", "SELECT district, COUNT(*) AS n, COUNT(*) - LAG(COUNT(*)) OVER (ORDER BY district) AS change, RANK() OVER (ORDER BY COUNT(*) DESC) AS r FROM medical_visits GROUP BY district", ""},
	{"moving average over outputs", "SELECT district, age_band, AVG(COUNT(*)) OVER (PARTITION BY age_band ORDER BY district ROWS BETWEEN 2 PRECEDING AND CURRENT ROW) AS moving FROM medical_visits GROUP BY district, age_band", ""},
	{"window over a raw column", "SELECT district, LAG(cost) OVER (ORDER BY district), COUNT(*) FROM medical_visits GROUP BY district", errcode.UnsupportedSQL},
	{"arithmetic on a key", "SELECT district, district + COUNT(*) FROM medical_visits GROUP BY district", errcode.UnsupportedSQL},
	{"condition as an output", "SELECT district, COUNT(*) > 5 FROM medical_visits GROUP BY district", errcode.UnsupportedSQL},
	{"WITH over a DP query", "WITH t AS (SELECT district, COUNT(*) AS n FROM medical_visits GROUP BY district) SELECT district, n, n - LAG(n) OVER (ORDER BY district) AS change FROM t WHERE n > 10 ORDER BY change DESC LIMIT 3", ""},
	{"subquery over a DP query with HAVING", "SELECT t.*, ROW_NUMBER() OVER (ORDER BY total DESC) AS r FROM (SELECT age_band, SUM(cost) AS total FROM medical_visits GROUP BY age_band HAVING SUM(cost) > 0) t", ""},
	{"WITH over a DP query aggregated again", "WITH t AS (SELECT district, COUNT(*) AS n FROM medical_visits GROUP BY district) SELECT SUM(n) FROM t", errcode.UnsupportedSQL},
	{"WITH over a DP query ordered inside", "WITH t AS (SELECT district, COUNT(*) AS n FROM medical_visits GROUP BY district ORDER BY n LIMIT 1) SELECT district, n FROM t", errcode.UnsupportedSQL},
	{"average of a CASE", "SELECT district, AVG(CASE WHEN diagnosis LIKE 'I%' THEN 1 ELSE 0 END) AS share FROM medical_visits GROUP BY district", ""},
	{"sums of CASEs and a cast condition", "SELECT SUM(CASE WHEN cost > 1000 THEN 1 ELSE 0 END) AS big, SUM(CASE WHEN inpatient THEN cost ELSE 0 END) AS inpatient_cost, SUM(CAST(cost > 10 AS INTEGER)) AS over_10, COUNT(CASE WHEN cost > 5 THEN 1 END) AS n FROM medical_visits", ""},
	{"sum of an unbounded expression", "SELECT SUM(length(diagnosis)) FROM medical_visits", errcode.MissingBounds},
	{"CASE reading an identifier", "SELECT SUM(CASE WHEN person_id LIKE '53%' THEN 1 ELSE 0 END) FROM medical_visits", errcode.IdentifierInOutput},
	{"window", "SELECT COUNT(*) OVER () FROM medical_visits", errcode.UnsupportedSQL},
	{"order by position", "SELECT district, COUNT(*) FROM medical_visits GROUP BY district ORDER BY 2", ""},
	{"order by name desc with limit and offset", "SELECT district, COUNT(*) AS n FROM medical_visits GROUP BY district ORDER BY n DESC, district LIMIT 5 OFFSET 1", ""},
	{"limit", "SELECT COUNT(*) FROM medical_visits LIMIT 1", ""},
	{"min and max as quantiles", "SELECT MIN(cost), MAX(cost) FROM medical_visits", ""},
	{"value aggregates", "SELECT district, AVG(cost), VAR_SAMP(cost), VAR_POP(cost), STDDEV_SAMP(cost), STDDEV_POP(cost), COUNT(diagnosis), COUNT(person_id) FROM medical_visits GROUP BY district", ""},
	{"quantiles share one tree", "SELECT MEDIAN(cost), QUANTILE_CONT(cost, 0.9), PERCENTILE_CONT(0.25) WITHIN GROUP (ORDER BY cost) FROM medical_visits", ""},
	{"floor bin", "SELECT floor(cost / 1000) * 1000 AS band, COUNT(*) FROM medical_visits GROUP BY band", ""},
	{"width_bucket", "SELECT width_bucket(cost, 0, 50000, 10) AS b, SUM(cost) FROM medical_visits GROUP BY 1", ""},
	{"date_trunc and substr", "SELECT date_trunc('month', visit_date) AS m, substr(diagnosis, 1, 1) AS chapter, COUNT(*) FROM medical_visits GROUP BY m, chapter", ""},
	{"case band", "SELECT CASE WHEN cost < 100 THEN 'low' WHEN cost < 1000 THEN 'mid' ELSE 'high' END AS band, COUNT(*) FROM medical_visits GROUP BY band", ""},
	{"case without else", "SELECT CASE WHEN cost < 100 THEN 1 END AS cheap, COUNT(*) FROM medical_visits GROUP BY cheap", ""},
	{"date arithmetic", "SELECT COUNT(*) FROM medical_visits WHERE visit_date >= DATE '2024-01-01' + INTERVAL 30 DAY AND visit_date < DATE '2024-06-01' - INTERVAL '1 month' AND extract(year FROM visit_date) = 2024", ""},
	{"key derived from identifier", "SELECT substr(person_id, 1, 6) AS region, COUNT(*) FROM medical_visits GROUP BY region", errcode.IdentifierInOutput},
	{"avg of unbounded column", "SELECT AVG(diagnosis) FROM medical_visits", errcode.MissingBounds},
	{"quantile rank out of range", "SELECT QUANTILE_CONT(cost, 1.5) FROM medical_visits", errcode.UnsupportedSQL},
	{"quantile rank not constant", "SELECT QUANTILE_CONT(cost, cost) FROM medical_visits", errcode.UnsupportedSQL},
	{"order by unknown output", "SELECT district, COUNT(*) FROM medical_visits GROUP BY district ORDER BY cost", errcode.UnknownColumn},
	{"order by expression", "SELECT district, COUNT(*) FROM medical_visits GROUP BY district ORDER BY COUNT(*) + 1", errcode.UnsupportedSQL},
	{"derived item not grouped", "SELECT floor(cost / 10) AS b, COUNT(*) FROM medical_visits GROUP BY district", "raw_column_in_output"},
	{"width_bucket with column bound", "SELECT width_bucket(cost, 0, cost, 10) AS b, COUNT(*) FROM medical_visits GROUP BY b", errcode.UnsupportedSQL},
	{"clock function", "SELECT COUNT(*) FROM medical_visits WHERE visit_date < now()", errcode.UnsupportedSQL},
	{"sum of expression", "SELECT SUM(cost * 2) FROM medical_visits", ""},
	{"distinct sum", "SELECT SUM(DISTINCT cost) FROM medical_visits", errcode.UnsupportedSQL},
	{"no aggregate", "SELECT district FROM medical_visits GROUP BY district", errcode.UnsupportedSQL},
	{"rollup", "SELECT district, COUNT(*) FROM medical_visits GROUP BY ROLLUP (district)", errcode.UnsupportedSQL},
	{"group by all", "SELECT district, COUNT(*) FROM medical_visits GROUP BY ALL", errcode.UnsupportedSQL},
	{"distinct", "SELECT DISTINCT district FROM medical_visits", errcode.UnsupportedSQL},
	{"sample", "SELECT COUNT(*) FROM medical_visits USING SAMPLE 10", errcode.UnsupportedSQL},
	{"scalar function in filter", "SELECT COUNT(*) FROM medical_visits WHERE length(diagnosis) > 3", ""},
	{"unknown function in filter", "SELECT COUNT(*) FROM medical_visits WHERE md5(diagnosis) = 'x'", errcode.UnsupportedSQL},
	{"no from", "SELECT 1", errcode.UnsupportedSQL},
	{"filter on aggregate", "SELECT COUNT(*) FILTER (WHERE cost > 1) FROM medical_visits", errcode.UnsupportedSQL},

	// What the query writes into its output: names and literals in value positions are
	// checked for identifier formats from the SQL alone; keys they reach are marked written.
	{"alias looks like a mobile number", "SELECT district AS \"13812345678\", COUNT(*) FROM medical_visits GROUP BY district", errcode.IdentifierInQuery},
	{"alias looks like an e-mail address", "SELECT COUNT(*) AS \"zhang.san@example.com\" FROM medical_visits", errcode.IdentifierInQuery},
	{"case result looks like a resident ID", "SELECT CASE WHEN cost < 100 THEN '11010519491231002X' ELSE 'other' END AS band, COUNT(*) FROM medical_visits GROUP BY band", errcode.IdentifierInQuery},
	{"greatest argument looks like a bank card", "SELECT greatest(diagnosis, '4111111111111111') AS d, COUNT(*) FROM medical_visits GROUP BY d", errcode.IdentifierInQuery},
	{"numeric case result looks like a mobile number", "SELECT CASE WHEN cost < 100 THEN 13812345678 END AS k, COUNT(*) FROM medical_visits GROUP BY k", errcode.IdentifierInQuery},
	{"subquery alias looks like a mobile number", "SELECT SUM(\"13812345678\") FROM (SELECT person_id, LEAST(COUNT(*), 10) AS \"13812345678\" FROM medical_visits GROUP BY person_id) s", errcode.IdentifierInQuery},
	{"derived name looks like a USCC", "SELECT COUNT(\"91350100M000100Y43\") FROM (SELECT person_id, LEAST(COUNT(*), 10) AS \"91350100M000100Y43\" FROM medical_visits GROUP BY person_id) s", errcode.IdentifierInQuery},
	{"case condition literal is not written", "SELECT CASE WHEN diagnosis = '13812345678' THEN 'a' ELSE 'b' END AS k, COUNT(*) FROM medical_visits GROUP BY k", ""},
	{"least with a literal is written", "SELECT least(diagnosis, 'unknown') AS d, COUNT(*) FROM medical_visits GROUP BY d", ""},
	{"case literal without else is written", "SELECT CASE WHEN cost < 100 THEN 'Zhang Sanfeng' END AS k, COUNT(*) FROM medical_visits GROUP BY k", ""},
	{"subquery clamp is written", "SELECT total, COUNT(*) FROM (SELECT person_id, LEAST(SUM(cost), 100000) AS total FROM medical_visits GROUP BY person_id) s GROUP BY total", ""},
	{"subquery derived key is written", "SELECT grp, COUNT(*) FROM (SELECT person_id, CASE WHEN cost > 10 THEN 'Zhang Sanfeng' END AS grp, COUNT(*) AS n FROM medical_visits GROUP BY person_id, grp) s GROUP BY grp", ""},
	{"upper of a literal is written", "SELECT upper(greatest(diagnosis, 'x')) AS d, COUNT(*) FROM medical_visits GROUP BY d", ""},
}

func newParser(t testing.TB) *sandbox.Parser {
	p, err := sandbox.NewParser()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// sql shows an expression as the worker renders it, without the totality wrapper ("" for nil).
func sql(e *wire.Expr) string {
	if e == nil {
		return ""
	}
	s, err := sqlgen.Text(e)
	if err != nil {
		return "INVALID: " + err.Error()
	}
	return s
}

func render(q *gate.Query) string {
	var b strings.Builder
	for _, k := range q.Keys {
		fmt.Fprintf(&b, "key %s = %s", k.Name, sql(k.Expr))
		if k.Domain != nil {
			fmt.Fprintf(&b, " domain %q", k.Domain)
		}
		if k.Written {
			b.WriteString(" written")
		}
		b.WriteString("\n")
	}
	for _, s := range q.Sources {
		fmt.Fprintf(&b, "source %s = %s join=%q on=%q\n", s.Alias, s.Dataset.Name, s.Join, sql(s.On))
	}
	if r := q.Relation; r != nil {
		for _, c := range r.Columns {
			expr := sql(c.Expr)
			if c.Aggregate != "" {
				expr = c.Aggregate + "(" + expr + ")"
				for _, cl := range c.Clamps {
					expr = cl.Func + "(" + expr + ", " + cl.Value + ")"
				}
			}
			fmt.Fprintf(&b, "relation column %s = %s\n", c.Name, expr)
		}
		if r.PerUnit {
			var groups []string
			for _, g := range r.GroupBy {
				groups = append(groups, sql(g))
			}
			fmt.Fprintf(&b, "relation per unit, group by %q, filter %q\n", groups, sql(r.Filter))
		}
	}
	for _, a := range q.Aggregates {
		fmt.Fprintf(&b, "agg %s = %s(%s) sql=%s bounds=%v", a.Name, a.Kind, a.Column, sql(a.Value), a.Bounds)
		if a.Outer[0] || a.Outer[1] {
			fmt.Fprintf(&b, " outer=%v", a.Outer)
		}
		if a.Ranks != nil {
			fmt.Fprintf(&b, " ranks %v", a.Ranks)
		}
		b.WriteString("\n")
	}
	for _, o := range q.Outputs {
		fmt.Fprintf(&b, "out %s key=%d agg=%d rank=%d\n", o.Name, o.Key, o.Aggregate, o.Rank)
	}
	if q.Filter != nil {
		fmt.Fprintf(&b, "filter %s\n", sql(q.Filter))
	}
	for _, u := range q.Uses {
		fmt.Fprintf(&b, "use %s.%s %s\n", u.Dataset, u.Column, u.Usage)
	}
	if p := q.Post; p != nil {
		var names []string
		for _, o := range q.Outputs {
			names = append(names, o.Name)
		}
		for i, s := range p.Steps {
			if s.Where != nil {
				where := &post.Program{Inputs: p.Inputs, Steps: []post.Step{{Columns: []post.Column{{Expr: s.Where}}}}}
				fmt.Fprintf(&b, "post %d where %s\n", i+1, where.Format(0, 0, names))
			}
			var next []string
			for j, c := range s.Columns {
				fmt.Fprintf(&b, "post %d column %s = %s\n", i+1, c.Name, p.Format(i, j, names))
				next = append(next, c.Name)
			}
			names = next
		}
	}
	for _, o := range q.Order {
		fmt.Fprintf(&b, "order %d desc=%v\n", o.Output, o.Descending)
	}
	if q.Limit >= 0 || q.Offset > 0 {
		fmt.Fprintf(&b, "limit %d offset %d\n", q.Limit, q.Offset)
	}
	return b.String()
}

func TestAdmitCorpus(t *testing.T) {
	p := newParser(t)
	cat := testCatalog()
	var golden strings.Builder
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			q, err := gate.Admit(context.Background(), p, cat, c.sql)
			if c.code == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				fmt.Fprintf(&golden, "# %s\n%s\n----\n%s\n", c.name, c.sql, render(q))
				return
			}
			if got := errcode.Of(err); got != c.code {
				t.Fatalf("code = %q (%v), want %q", got, err, c.code)
			}
			pub := errcode.Public(err)
			if pub.Message == "" || strings.Contains(pub.Message, "duckdb") {
				t.Fatalf("public message %q should teach what is allowed", pub.Message)
			}
		})
	}
	path := filepath.Join("testdata", "admitted.golden")
	if *rewrite {
		if err := os.WriteFile(path, []byte(golden.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run TestAdmitCorpus -rewrite)", err)
	}
	if golden.String() != string(want) {
		t.Fatalf("rendered queries differ from %s (review, then -rewrite):\n%s", path, golden.String())
	}
}

func TestRefusalCarriesSQLPosition(t *testing.T) {
	q := "SELECT district, COUNT(*) FROM medical_visits WHERE md5(diagnosis) > 3 GROUP BY district"
	_, err := gate.Admit(context.Background(), newParser(t), testCatalog(), q)
	pub := errcode.Public(err)
	if pub.Position == nil || !strings.HasPrefix(q[*pub.Position:], "md5") {
		t.Fatalf("position = %v, want the offset of md5(...)", pub.Position)
	}
}

// The rendered filter must survive a DuckDB round trip: re-parsing it gives the same admitted
// query, so nothing the applicant wrote changes meaning on the way to the worker.
func TestRenderedFilterRoundTrips(t *testing.T) {
	p := newParser(t)
	for _, c := range cases {
		if c.code != "" {
			continue
		}
		q, err := gate.Admit(context.Background(), p, testCatalog(), c.sql)
		if err != nil || q.Filter == nil || q.Relation != nil {
			continue // a relation's filter reads the worker's materialized columns
		}
		again := "SELECT COUNT(*) FROM medical_visits WHERE " + sql(q.Filter)
		q2, err := gate.Admit(context.Background(), p, testCatalog(), again)
		if err != nil {
			t.Fatalf("%s: rendered filter refused: %v", c.name, err)
		}
		if sql(q2.Filter) != sql(q.Filter) {
			t.Fatalf("%s: filter not stable:\n%s\n%s", c.name, sql(q.Filter), sql(q2.Filter))
		}
	}
}

func FuzzAdmit(f *testing.F) {
	for _, c := range cases {
		f.Add(c.sql)
	}
	p := newParser(f)
	cat := testCatalog()
	f.Fuzz(func(t *testing.T, sql string) {
		q, err := gate.Admit(context.Background(), p, cat, sql)
		if err != nil {
			if errcode.Of(err) == errcode.Internal {
				t.Fatalf("internal error for %q: %v", sql, err)
			}
			return
		}
		// Whatever is admitted bounds the first dataset's privacy unit and never outputs an
		// identifier.
		if q.Dataset == nil || q.Dataset.Public || q.Sources[0].Dataset != q.Dataset {
			t.Fatalf("admitted without a dataset whose unit is bounded: %q", sql)
		}
		for _, k := range q.Keys {
			for _, c := range k.Columns {
				spec, _ := cat.Lookup(c.Dataset)
				if spec.Columns[c.Column].Has(catalog.TagIdentifier) {
					t.Fatalf("key derived from an identifier admitted: %q", sql)
				}
			}
		}
		for _, a := range q.Aggregates {
			if a.Kind != dp.Count && a.Kind != dp.CountDistinct && a.Kind != dp.CountDistinctValues && len(a.Bounds) != 2 {
				t.Fatalf("value aggregate without bounds admitted: %q", sql)
			}
			if a.Kind == dp.CountDistinctValues {
				for _, c := range a.From {
					spec, _ := cat.Lookup(c.Dataset)
					if spec.Columns[c.Column].Has(catalog.TagIdentifier) {
						t.Fatalf("distinct count of an identifier admitted: %q", sql)
					}
				}
			}
		}
		// The rewriter: the bounded plan always scans one dataset, or a relation whose first
		// source carries the privacy unit the worker groups and bounds by.
		snaps := map[string]string{}
		for _, d := range q.Datasets() {
			snaps[d.Name] = "sha256:" + d.Name
		}
		p, err := plan.Build(q, snaps, plan.Options{}.Defaults(), 1)
		if err != nil {
			if errcode.Of(err) == errcode.Internal {
				t.Fatalf("internal error planning %q: %v", sql, err)
			}
			return
		}
		w := p.Worker
		switch r := w.Relation; {
		case r == nil && (w.Snapshot == "" || len(q.Sources) != 1):
			t.Fatalf("plan of %q scans no single snapshot", sql)
		case r != nil && (w.Snapshot != "" || r.Sources[0].Unit == "" || r.Sources[0].Join != ""):
			t.Fatalf("relation of %q does not start with a dataset's privacy unit", sql)
		}
		// Every expression the worker will receive is valid IR (the worker refuses any other).
		exprs := append(append([]*wire.Expr{w.Filter}, w.Keys...), w.Values...)
		if r := w.Relation; r != nil {
			exprs = append(append(exprs, r.Filter), r.GroupBy...)
			for _, c := range r.Columns {
				exprs = append(exprs, c.Expr)
			}
			for _, s := range r.Sources {
				exprs = append(exprs, s.On)
			}
		}
		for _, e := range exprs {
			if e == nil {
				continue
			}
			if err := e.Validate(); err != nil {
				t.Fatalf("plan of %q has an invalid expression %s: %v", sql, e.Canonical(), err)
			}
		}
		if w.Bounds.MaxGroupsContributed < 1 || w.Bounds.MaxContributionsPerGroup < 1 || len(w.Aggregates) != len(q.Aggregates) {
			t.Fatalf("plan of %q is not bounded", sql)
		}
		if len(q.Aggregates) == 0 {
			t.Fatalf("query without aggregates admitted: %q", sql)
		}
	})
}
