package screen

import (
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/c1b99f93/cleanroom/policy"
)

// Message shapes: every finding message is one of these templates, whose only variable parts
// are numbers ({n}), a column reference ({col}: "column N", with the name quoted when the
// name passed the scans), catalog names ({cat}, {usage}) and fixed words. Pinning the shapes
// is what guarantees no data value reaches a message: a change that puts a value in one
// fails here.
var messageTemplates = []string{
	"{desc} in {col}: {n} of {n} rows, first row {n}",
	"{desc} in the name of column {n}",
	"{desc} in the error messages: {n} of {n}, first message {n}",
	"{col} has a kind the reviewer does not know",
	"{col} derives from {cat}, tagged identifier, used as {usage}",
	"group key {col} derives from {cat}, tagged sensitive; its values need a reviewer",
	"the output has {n} {unit}, over the limit of {n}",
	"{n} of {n} rows stand for fewer privacy units than the minimum and are suppressed",
	"a minimum number of units per group is set but the output has no per-row unit counts; no row was suppressed",
	"the review was cancelled before the {check} check; the output is not released",
	"the review was cancelled during the {check} check; the output is not released",
	"the {check} check failed unexpectedly; the output is not released",
	"the {check} check could not run: {reason}; the output is not released",
	"the {check} check could not run; the output is not released",
}

var (
	checkNames   = []string{"output", "names", "lineage", "identifiers", "raw_values", "small_groups", "limits"}
	checkReasons = []string{"there is no output", "the output reports a negative number of rows", "the output reports a negative size", "the output's unit counts do not match its rows"}
	units        = []string{"rows", "cells", "bytes"}
	placeholder  = regexp.MustCompile(`\{[a-z]+\}`)
	digitRuns    = regexp.MustCompile(`[0-9]+`)
	nameFinding  = regexp.MustCompile(` in the name of column ([0-9]+)$`)
)

func alt(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = regexp.QuoteMeta(s)
	}
	return "(?:" + strings.Join(q, "|") + ")"
}

func descList() []string {
	var d []string
	for _, s := range descriptions {
		d = append(d, s)
	}
	slices.Sort(d)
	return d
}

var shapeCache sync.Map // joined names → []*regexp.Regexp

// shapes compiles the templates for an output with the given column and catalog names.
func shapes(names, catalog []string) []*regexp.Regexp {
	k := strings.Join(names, "\x00") + "\x01" + strings.Join(catalog, "\x00")
	if re, ok := shapeCache.Load(k); ok {
		return re.([]*regexp.Regexp)
	}
	re := compileShapes(names, catalog)
	shapeCache.Store(k, re)
	return re
}

func compileShapes(names, catalog []string) []*regexp.Regexp {
	quoted := make([]string, len(names))
	for i, n := range names {
		quoted[i] = `"` + n + `"`
	}
	cat := []string{"-"}
	cat = append(cat, catalog...)
	parts := map[string]string{
		"{desc}":   alt(descList()),
		"{n}":      `[0-9]{1,5}`,
		"{col}":    `column [0-9]{1,5}(?: ` + alt(append(quoted, `""`)) + `)?`,
		"{cat}":    alt(cat),
		"{usage}":  `(?:[a-z_]+|\(no usage\))`,
		"{unit}":   alt(units),
		"{check}":  alt(checkNames),
		"{reason}": alt(checkReasons),
	}
	var out []*regexp.Regexp
	for _, t := range messageTemplates {
		var b strings.Builder
		last := 0
		for _, loc := range placeholder.FindAllStringIndex(t, -1) {
			b.WriteString(regexp.QuoteMeta(t[last:loc[0]]))
			b.WriteString(parts[t[loc[0]:loc[1]]])
			last = loc[1]
		}
		b.WriteString(regexp.QuoteMeta(t[last:]))
		out = append(out, regexp.MustCompile("^"+b.String()+"$"))
	}
	return out
}

// vocabulary is the fixed text of the templates with every number written 0: a string that
// occurs in it is the reviewer's own words, not data.
var vocabulary = func() string {
	var b strings.Builder
	fill := map[string][]string{
		"{desc}": descList(), "{n}": {"0"}, "{col}": {"column 0"}, "{cat}": {"-"}, "{usage}": {"(no usage)"},
		"{unit}": units, "{check}": checkNames, "{reason}": checkReasons,
	}
	for _, t := range messageTemplates {
		// Render every template once per value of each placeholder it has (enough for
		// substrings: each placeholder's values appear next to the fixed text around it).
		for p, vals := range fill {
			for _, v := range vals {
				s := strings.ReplaceAll(t, p, v)
				s = placeholder.ReplaceAllStringFunc(s, func(q string) string { return fill[q][0] })
				b.WriteString(s)
				b.WriteByte('\n')
			}
		}
	}
	return b.String()
}()

func zeroDigits(s string) string { return digitRuns.ReplaceAllString(s, "0") }

// outputNames returns the column names and the catalog names an output's messages may quote.
func outputNames(out Output) (names, catalog []string) {
	defer func() { recover() }()
	if out == nil {
		return nil, nil
	}
	for _, c := range out.Columns() {
		names = append(names, c.Name)
		for _, u := range c.DerivedFrom {
			catalog = append(catalog, u.Dataset+"."+u.Column, u.Dataset, u.Column)
		}
	}
	return names, catalog
}

// checkFindings asserts the invariants every review meets: known codes with their fixed
// severities, messages of a known shape, no run of six or more digits in a message (no
// number in these outputs is that large, so such a run would be data), and no scanned string
// of six or more characters in a message, unless it is the reviewer's own words or a name.
func checkFindings(t testing.TB, rev Screening, out Output, scanned []string) {
	t.Helper()
	names, catalog := outputNames(out)
	// A name with a finding of its own must not be quoted anywhere.
	for _, f := range rev.Findings {
		if m := nameFinding.FindStringSubmatch(f.Message); m != nil {
			if i, _ := strconv.Atoi(m[1]); i < len(names) {
				names = slices.Delete(slices.Clone(names), i, i+1)
			}
		}
	}
	re := shapes(names, catalog)
	for _, f := range rev.Findings {
		if Severity(f.Code) == "" || f.Severity != Severity(f.Code) {
			t.Errorf("finding %q has severity %q, want %q", f.Code, f.Severity, Severity(f.Code))
		}
		if !slices.ContainsFunc(re, func(r *regexp.Regexp) bool { return r.MatchString(f.Message) }) {
			t.Errorf("finding %s: message %q has no known shape", f.Code, f.Message)
		}
		for _, run := range digitRuns.FindAllString(f.Message, -1) {
			if len(run) >= 6 {
				t.Errorf("finding %s: message %q has a run of %d digits", f.Code, f.Message, len(run))
			}
		}
		for _, s := range scanned {
			if len(s) < 6 || !strings.Contains(f.Message, s) {
				continue
			}
			if strings.Contains(vocabulary, zeroDigits(s)) || slices.ContainsFunc(append(names, catalog...), func(n string) bool { return strings.Contains(n, s) }) {
				continue
			}
			t.Errorf("finding %s: message %q contains the scanned value %q", f.Code, f.Message, s)
		}
	}
	prev := -1
	for _, r := range rev.Suppressed {
		if r <= prev {
			t.Errorf("suppressed rows %v are not ascending", rev.Suppressed)
			break
		}
		prev = r
	}
}

// Every code has a severity the policy knows, and Codes lists them all.
func TestEveryCodeHasASeverity(t *testing.T) {
	sev := []string{policy.SeverityLow, policy.SeverityMedium, policy.SeverityHigh}
	for _, c := range Codes() {
		if !slices.Contains(sev, Severity(c)) {
			t.Errorf("code %s has severity %q", c, Severity(c))
		}
	}
	if len(Codes()) != len(severities) {
		t.Errorf("Codes() lists %d codes, severities %d", len(Codes()), len(severities))
	}
	for _, fc := range foundCodes {
		if descriptions[fc.code] == "" {
			t.Errorf("identifier code %s has no description", fc.code)
		}
	}
}

// The shapes check itself rejects a message carrying a value.
func TestShapesRejectAValue(t *testing.T) {
	re := shapes([]string{"district"}, nil)
	good := `a mainland mobile number in column 0 "district": 1 of 1 rows, first row 0`
	bad := `a mainland mobile number in column 0 "13812345678": 1 of 1 rows, first row 0`
	match := func(m string) bool {
		return slices.ContainsFunc(re, func(r *regexp.Regexp) bool { return r.MatchString(m) })
	}
	if !match(good) || match(bad) {
		t.Errorf("shapes: good %v (want true), bad %v (want false)", match(good), match(bad))
	}
}
