package main

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/c1b99f93/cleanroom/server/api"
	"github.com/c1b99f93/cleanroom/server/client"
)

// maxExcerpt bounds the columns of the SQL line shown above a caret; a longer line is cut
// around the position.
const maxExcerpt = 100

// sqlCaret renders the line of sql that holds byte offset pos, and a caret under pos, as a
// compiler does:
//
//	1 | SELECT COUNT(*) FROM medical_visit
//	  |                      ^
//
// It returns "" when pos is not in sql (the end of the text counts: a query that ends too
// early is refused there). The SQL is the applicant's own text, printed back on their own
// terminal; the server's message never quotes it.
func sqlCaret(sql string, pos int) string {
	if pos < 0 || pos > len(sql) || !utf8.ValidString(sql) {
		return ""
	}
	for pos > 0 && pos < len(sql) && !utf8.RuneStart(sql[pos]) {
		pos--
	}
	start := strings.LastIndexByte(sql[:pos], '\n') + 1
	end := len(sql)
	if i := strings.IndexByte(sql[pos:], '\n'); i >= 0 {
		end = pos + i
	}
	lineNo := strings.Count(sql[:start], "\n") + 1
	line := []rune(strings.TrimRight(sql[start:end], "\r"))
	col := utf8.RuneCountInString(sql[start:pos])
	// Cut a long line to a window around the caret.
	prefix, suffix := "", ""
	if len(line) > maxExcerpt {
		from := max(0, min(col-maxExcerpt/2, len(line)-maxExcerpt))
		to := min(len(line), from+maxExcerpt)
		if from > 0 {
			prefix = "…"
		}
		if to < len(line) {
			suffix = "…"
		}
		line, col = line[from:to], col-from
	}
	var text, pad strings.Builder
	text.WriteString(prefix)
	pad.WriteString(strings.Repeat(" ", utf8.RuneCountInString(prefix)))
	for i, r := range line {
		if r == '\t' || unicode.IsControl(r) {
			r = ' '
		}
		text.WriteRune(r)
		if i < col {
			pad.WriteString(strings.Repeat(" ", runeWidth(r)))
		}
	}
	text.WriteString(suffix)
	gutter := fmt.Sprint(lineNo)
	return fmt.Sprintf("  %s | %s\n  %s | %s^", gutter, text.String(), strings.Repeat(" ", len(gutter)), pad.String())
}

// runeWidth is the columns a terminal gives a rune: two for East Asian wide characters.
func runeWidth(r rune) int {
	if unicode.In(r, unicode.Han, unicode.Hangul, unicode.Hiragana, unicode.Katakana) ||
		r >= 0x3000 && r <= 0x303f || r >= 0xff00 && r <= 0xff60 || r >= 0xffe0 && r <= 0xffe6 {
		return 2
	}
	return 1
}

// positionedError is an error of the server that points into the SQL: its text is the
// server's, followed by the SQL line and a caret.
type positionedError struct {
	err     error
	excerpt string
}

func (e *positionedError) Error() string { return e.err.Error() + "\n" + e.excerpt }
func (e *positionedError) Unwrap() error { return e.err }

// withSQLPosition adds the SQL line and a caret to err when the server's error document
// carries a position in sql; any other error is returned as it is.
func withSQLPosition(err error, sql string) error {
	var ce *client.Error
	if !errors.As(err, &ce) {
		return err
	}
	return atPosition(err, &ce.APIError, sql)
}

func atPosition(err error, doc *api.Error, sql string) error {
	if doc == nil || doc.Position == nil {
		return err
	}
	excerpt := sqlCaret(sql, *doc.Position)
	if excerpt == "" {
		return err
	}
	return &positionedError{err: err, excerpt: excerpt}
}
