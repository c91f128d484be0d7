package gate

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/c1b99f93/cleanroom/errcode"
	"github.com/c1b99f93/cleanroom/policy/pii"
)

// A syntax error names the place and gives one hint, built from the SQL's own tokens around
// DuckDB's error position — never DuckDB's message (which quotes the SQL verbatim, string
// literals included) and never the grammar. A token is shown only when it is a keyword, a
// bare name that does not look like an identifier (pii.ScanText), or punctuation; a string
// literal, a number or a quoted name is described, not quoted, since it may hold a person's
// data.

// tokenKind classifies the tokens of the SQL the hints need.
type tokenKind int

const (
	tokWord   tokenKind = iota // a keyword or a bare name
	tokQuoted                  // a "quoted name"
	tokString                  // a 'string literal', perhaps unterminated
	tokNumber
	tokPunct
)

type token struct {
	kind       tokenKind
	start, end int // byte offsets into the SQL
}

// tokenize splits SQL into tokens, skipping blanks and comments. It is total: any byte
// sequence gives tokens covering every non-blank, non-comment byte, in order.
func tokenize(sql string) []token {
	var out []token
	for i := 0; i < len(sql); {
		r, size := utf8.DecodeRuneInString(sql[i:])
		switch {
		case unicode.IsSpace(r):
			i += size
			continue
		case strings.HasPrefix(sql[i:], "--"):
			j := strings.IndexByte(sql[i:], '\n')
			if j < 0 {
				return out
			}
			i += j + 1
			continue
		case strings.HasPrefix(sql[i:], "/*"):
			j := strings.Index(sql[i+2:], "*/")
			if j < 0 {
				return out
			}
			i += j + 4
			continue
		}
		t := token{start: i}
		switch {
		case r == '\'' || r == '"':
			t.kind = tokString
			if r == '"' {
				t.kind = tokQuoted
			}
			j := i + 1
			for j < len(sql) {
				if sql[j] == byte(r) {
					if j+1 < len(sql) && sql[j+1] == byte(r) { // a doubled quote stays inside
						j += 2
						continue
					}
					j++
					break
				}
				j++
			}
			t.end = j
		case r == '_' || unicode.IsLetter(r):
			j := i + size
			for j < len(sql) {
				r2, s2 := utf8.DecodeRuneInString(sql[j:])
				if r2 != '_' && r2 != '$' && !unicode.IsLetter(r2) && !unicode.IsDigit(r2) {
					break
				}
				j += s2
			}
			t.kind, t.end = tokWord, j
		case r >= '0' && r <= '9' || r == '.' && i+1 < len(sql) && sql[i+1] >= '0' && sql[i+1] <= '9':
			j := i + 1
			for j < len(sql) && (sql[j] >= '0' && sql[j] <= '9' || sql[j] == '.' || sql[j] == '_' ||
				sql[j] == 'e' || sql[j] == 'E' || (sql[j] == '-' || sql[j] == '+') && (sql[j-1] == 'e' || sql[j-1] == 'E')) {
				j++
			}
			t.kind, t.end = tokNumber, j
		default:
			t.kind, t.end = tokPunct, i+size
			for _, op := range []string{"<=", ">=", "<>", "!=", "::", "||", "=="} {
				if strings.HasPrefix(sql[i:], op) {
					t.end = i + len(op)
				}
			}
		}
		out = append(out, t)
		i = t.end
	}
	return out
}

// clauseKeywords are the keywords a typo is most often meant to be. Short ones (AS, BY, ON,
// OR, IN, IS) are left out: one edit turns too many names into them.
var clauseKeywords = []string{"SELECT", "FROM", "WHERE", "GROUP", "ORDER", "LIMIT", "OFFSET", "JOIN", "LEFT",
	"INNER", "USING", "DISTINCT", "BETWEEN", "AND", "NOT", "NULL", "CASE", "WHEN", "THEN", "ELSE", "END",
	"LIKE", "ILIKE", "WITH", "CAST", "DESC", "ASC"}

// keywords are words that are never taken for a misspelling.
var keywords = map[string]bool{"AS": true, "BY": true, "ON": true, "OR": true, "IN": true, "IS": true,
	"ALL": true, "ANY": true, "TRUE": true, "FALSE": true, "INTERVAL": true, "DATE": true, "TIMESTAMP": true,
	"OVER": true, "PARTITION": true, "HAVING": true, "FILTER": true, "WITHIN": true, "RIGHT": true, "FULL": true, "CROSS": true,
	"OUTER": true, "UNION": true, "EXCEPT": true, "INTERSECT": true, "TRY_CAST": true, "EXTRACT": true, "ESCAPE": true, "NULLS": true,
	"FIRST": true, "LAST": true, "DAY": true, "MONTH": true, "YEAR": true}

func init() {
	for _, k := range clauseKeywords {
		keywords[k] = true
	}
}

// clauseOrder is the one-line shape of an admitted query, the fallback hint.
const clauseOrder = "an admitted query reads SELECT … FROM … [JOIN … ON …] [WHERE …] [GROUP BY …] [ORDER BY …] [LIMIT n]"

// maxShownToken bounds a token quoted in a message.
const maxShownToken = 40

// shown returns how a message names a token: the token itself when it is safe to show,
// else a description.
func shown(sql string, t token) string {
	text := sql[t.start:t.end]
	switch t.kind {
	case tokString:
		return "a string literal"
	case tokQuoted:
		return "a quoted name"
	case tokNumber:
		return "a number"
	case tokWord:
		// A bare word is the analyst's name or keyword, but one with a run of digits may
		// carry a number from the data (an ID after a letter).
		if len(text) > maxShownToken || pii.ScanText(text) != 0 || digits(text) >= 4 {
			return "a name"
		}
	}
	return fmt.Sprintf("%q", text)
}

func digits(s string) int {
	n := 0
	for _, r := range s {
		if unicode.IsDigit(r) {
			n++
		}
	}
	return n
}

// byteOffset converts the parser error's position, which DuckDB counts in characters (unlike
// the AST's query_location, in bytes), to a byte offset into sql, as every refusal's position
// is. A position past the end is the end.
func byteOffset(sql string, chars int64) int {
	if chars < 0 {
		return -1
	}
	for i := range sql {
		if chars == 0 {
			return i
		}
		chars--
	}
	return len(sql)
}

// syntaxError turns DuckDB's parser error at byte offset at into a refusal with one hint.
// duckMsg is used only to classify the error, never shown.
func syntaxError(sql string, at int, duckMsg string) error {
	toks := tokenize(sql)
	if at < 0 || at > len(sql) {
		at = len(sql)
	}
	// i is the token at or after the error position; len(toks) means the end of the input.
	i := 0
	for i < len(toks) && toks[i].end <= at {
		i++
	}
	refuse := func(format string, args ...any) error {
		return errcode.At(errcode.SyntaxError, at, "the SQL could not be parsed "+format, args...)
	}
	if strings.Contains(duckMsg, "unterminated quoted") || i < len(toks) && toks[i].kind >= tokQuoted && toks[i].kind <= tokString && !closed(sql, toks[i]) {
		if i < len(toks) && toks[i].kind == tokQuoted {
			return refuse("here: a quoted name is not closed; close it with a double quote (\")")
		}
		return refuse("here: a string literal is not closed; end it with a single quote, and double a quote inside it")
	}
	if i == len(toks) || strings.Contains(duckMsg, "end of input") {
		depth := 0
		for _, t := range toks {
			switch sql[t.start:t.end] {
			case "(":
				depth++
			case ")":
				depth--
			}
		}
		switch {
		case depth == 1:
			return refuse("at the end: a parenthesis is not closed")
		case depth > 1:
			return refuse("at the end: %d parentheses are not closed", depth)
		case len(toks) > 0:
			return refuse("at the end: the query stops after %s; complete the last clause", shown(sql, toks[len(toks)-1]))
		}
		return refuse("at the end: the query is empty; %s", clauseOrder)
	}
	t := toks[i]
	word := strings.ToUpper(sql[t.start:t.end])
	if i == 0 {
		if t.kind == tokWord && word != "SELECT" && word != "WITH" {
			if s := Suggest(word, []string{"SELECT", "WITH"}); s != "" {
				return refuse("at %s: did you mean %s?", shown(sql, t), s)
			}
		}
		return refuse("at %s: a job is one SELECT query; %s", shown(sql, t), clauseOrder)
	}
	prev := toks[i-1]
	pword := strings.ToUpper(sql[prev.start:prev.end])
	if prev.kind == tokWord && (pword == "GROUP" || pword == "ORDER") && word != "BY" {
		return refuse("at %s: write %s BY", shown(sql, t), pword)
	}
	// A misspelt keyword often parses as an alias, so the error falls on the next token:
	// look at the word before the position first.
	for _, c := range []token{prev, t} {
		w := strings.ToUpper(sql[c.start:c.end])
		if c.kind != tokWord || keywords[w] {
			continue
		}
		if s := Suggest(w, clauseKeywords); s != "" {
			return refuse("at %s: %s is not a keyword; did you mean %s?", shown(sql, t), shown(sql, c), s)
		}
	}
	return refuse("at %s; %s", shown(sql, t), clauseOrder)
}

// closed reports whether a quoted token ends with its closing quote.
func closed(sql string, t token) bool {
	text := sql[t.start:t.end]
	if len(text) < 2 {
		return false
	}
	q := text[0]
	if text[len(text)-1] != q {
		return false
	}
	// An even run of quotes at the end is an escaped quote, not the close.
	n := 0
	for j := len(text) - 1; j > 0 && text[j] == q; j-- {
		n++
	}
	return n%2 == 1
}
