package main

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/c1b99f93/cleanroom/server/api"
	"github.com/c1b99f93/cleanroom/server/client"
)

func TestSQLCaretPointsAtThePosition(t *testing.T) {
	long := "SELECT COUNT(*) FROM medical_visits WHERE " + strings.Repeat("cost > 1 AND ", 20) + "dignosis = 'x'"
	for _, tc := range []struct {
		name string
		sql  string
		pos  int
		want string
	}{
		{"one line", "SELECT COUNT(*) FROM medical_visit", 21,
			"  1 | SELECT COUNT(*) FROM medical_visit\n" +
				"    |                      ^"},
		{"start", "SELEC 1", 0,
			"  1 | SELEC 1\n" +
				"    | ^"},
		{"end of the text", "SELECT COUNT(*) FROM medical_visits WHERE", 41,
			"  1 | SELECT COUNT(*) FROM medical_visits WHERE\n" +
				"    |                                          ^"},
		{"second line", "SELECT COUNT(*)\nFROM medical_visits\nWHERE dignosis = 'x'", 42,
			"  3 | WHERE dignosis = 'x'\n" +
				"    |       ^"},
		{"tab and CRLF", "SELECT COUNT(*)\r\n\tFROM medicl", 23,
			"  2 |  FROM medicl\n" +
				"    |       ^"},
		{"wide characters before the position", "SELECT 病历 AS n, cout(*) FROM t", 20,
			"  1 | SELECT 病历 AS n, cout(*) FROM t\n" +
				"    | " + strings.Repeat(" ", 18) + "^"}, // 病历 takes four columns
		{"long line cut around the position", long, strings.Index(long, "dignosis"), ""},
		{"negative", "SELECT 1", -1, ""},
		{"past the end", "SELECT 1", 9, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := sqlCaret(tc.sql, tc.pos)
			if tc.name == "long line cut around the position" {
				lines := strings.Split(got, "\n")
				if len(lines) != 2 || !strings.Contains(lines[0], "…") {
					t.Fatalf("excerpt %q", got)
				}
				col := strings.Index(lines[1], "^") // the pad is ASCII; the line may not be
				if text := string([]rune(lines[0])[col:]); !strings.HasPrefix(text, "dignosis") {
					t.Fatalf("caret at %q, want it under dignosis:\n%s", text, got)
				}
				return
			}
			if got != tc.want {
				t.Fatalf("got\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
}

func TestJobErrorsShowTheSQLLineAndACaret(t *testing.T) {
	pos := 21
	sql := "SELECT COUNT(*) FROM medical_visit"
	doc := api.Error{Code: "unknown_dataset", Message: `no dataset named "medical_visit" is registered; did you mean "medical_visits"?`, Position: &pos}
	caret := "  1 | SELECT COUNT(*) FROM medical_visit\n    |                      ^"

	err := jobStateError(&api.Job{ID: "j-1", State: api.JobDenied, SQL: sql, Error: &doc})
	if want := "job j-1 denied: unknown_dataset: " + doc.Message + "\n" + caret; err.Error() != want {
		t.Errorf("job error\n%s\nwant\n%s", err, want)
	}

	sync := &client.Error{Status: 422, APIError: doc}
	err = withSQLPosition(fmt.Errorf("submit: %w", sync), sql)
	if !strings.HasSuffix(err.Error(), "\n"+caret) {
		t.Errorf("submit error %q lacks the caret", err)
	}
	var ce *client.Error
	if !errors.As(err, &ce) || ce.Code != "unknown_dataset" {
		t.Errorf("the caret hides the server's error from errors.As")
	}

	noPos := &client.Error{Status: 403, APIError: api.Error{Code: "forbidden", Message: "no"}}
	if err := withSQLPosition(noPos, sql); err != error(noPos) {
		t.Errorf("an error without a position changed: %v", err)
	}
}

func FuzzSQLCaret(f *testing.F) {
	f.Add("SELECT COUNT(*)\nFROM medical_visit", 21)
	f.Add("SELECT 病历\r\n\tFROM t", 9)
	f.Add("\xff\xfe", 1)
	f.Fuzz(func(t *testing.T, sql string, pos int) {
		got := sqlCaret(sql, pos)
		if got != "" && (strings.Count(got, "\n") != 1 || !strings.HasSuffix(got, "^")) {
			t.Fatalf("sqlCaret(%q, %d) = %q", sql, pos, got)
		}
	})
}
