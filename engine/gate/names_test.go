package gate_test

import (
	"context"
	"strings"
	"testing"

	"github.com/c1b99f93/cleanroom/engine/gate"
	"github.com/c1b99f93/cleanroom/errcode"
)

// A name or literal the query writes into its output that looks like an identifier is
// refused before anything runs, at its position in the SQL, without quoting it.
func TestGateRefusesIdentifierLookingNamesAndLiteralsAtTheirPosition(t *testing.T) {
	p := newParser(t)
	for _, c := range []struct {
		name, sql, at string // at: the text the position must point to
	}{
		{"alias", `SELECT district AS "13812345678", COUNT(*) FROM medical_visits GROUP BY district`, "district AS"},
		{"aggregate alias", `SELECT district, COUNT(*) AS "zhang.san@example.com" FROM medical_visits GROUP BY district`, "COUNT(*) AS"},
		{"case result", `SELECT CASE WHEN cost < 100 THEN 'x' ELSE '11010519491231002X' END AS b, COUNT(*) FROM medical_visits GROUP BY b`, "'11010519491231002X'"},
		{"least argument", `SELECT least(diagnosis, '4111111111111111') AS d, COUNT(*) FROM medical_visits GROUP BY d`, "'4111111111111111'"},
		{"subquery alias", `SELECT COUNT(*) FROM (SELECT person_id, LEAST(COUNT(*), 10) AS "13812345678" FROM medical_visits GROUP BY person_id) s`, "LEAST(COUNT(*), 10) AS"},
		{"subquery clamp", `SELECT total, COUNT(*) FROM (SELECT person_id, GREATEST(COUNT(*), 13812345678) AS total FROM medical_visits GROUP BY person_id) s GROUP BY total`, "13812345678)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := gate.Admit(context.Background(), p, testCatalog(), c.sql)
			if errcode.Of(err) != errcode.IdentifierInQuery {
				t.Fatalf("err = %v, want %s", err, errcode.IdentifierInQuery)
			}
			pub := errcode.Public(err)
			if pub.Position == nil || !strings.HasPrefix(c.sql[*pub.Position:], c.at) {
				t.Fatalf("position %v, want the offset of %q", pub.Position, c.at)
			}
			for _, v := range []string{"13812345678", "zhang.san", "11010519491231002X", "4111111111111111"} {
				if strings.Contains(pub.Message, v) {
					t.Fatalf("the message quotes the text: %s", pub.Message)
				}
			}
		})
	}
}

// Literals that cannot reach the output — in filters, in CASE conditions, as parameters of
// substr — are not the gate's business (the access policy sees identifier filters).
func TestGateLeavesLiteralsOutsideTheOutputAlone(t *testing.T) {
	p := newParser(t)
	for _, sql := range []string{
		`SELECT district, COUNT(*) FROM medical_visits WHERE diagnosis = '13812345678' GROUP BY district`,
		`SELECT CASE WHEN diagnosis = '4111111111111111' THEN 'a' ELSE 'b' END AS k, COUNT(*) FROM medical_visits GROUP BY k`,
		`SELECT substr(diagnosis, 1, 13812345678) AS d, COUNT(*) FROM medical_visits GROUP BY d`,
	} {
		q, err := gate.Admit(context.Background(), p, testCatalog(), sql)
		if err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		if strings.HasPrefix(sql, "SELECT substr") && q.Keys[0].Written {
			t.Fatalf("%s: a key whose literals are parameters is marked written", sql)
		}
	}
}
