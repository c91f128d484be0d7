package gate

import (
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"
)

// "Did you mean": a refusal for an unknown name suggests the one name it was most likely meant
// to be. Candidates are only names the caller can already see — the datasets of the catalog
// the gate is given (DatasetLister), the columns of the sources in the query's scope, and the
// gate's closed function list — so a suggestion never reveals a name the applicant could not
// list, nor a column of a dataset the query does not read.

// DatasetLister is implemented by a Catalog that can list the dataset names a caller may
// name. The gate uses it only to suggest a name for a misspelt one, so every name it returns
// must already be visible to the caller (the engine's catalog is: GET /v1/datasets lists every
// registered dataset to every principal). A Catalog without it gets no dataset suggestions.
type DatasetLister interface {
	DatasetNames() []string
}

// maxSuggestLen bounds the names compared: no typo is longer, and the distance costs
// len(a)·len(b).
const maxSuggestLen = 64

// Suggest returns the candidate closest to name by Damerau–Levenshtein distance (optimal
// string alignment, ignoring case), or "" when none is close enough to be a typo: at most one
// edit for names of up to four letters, two for longer ones, and fewer edits than the name
// has letters. Ties go to the candidate sharing the longer prefix with name (a typo is more
// often at the end: WHER is WHERE, not WHEN), then to the first in sorted order.
func Suggest(name string, candidates []string) string {
	n := utf8.RuneCountInString(name)
	if n == 0 || n > maxSuggestLen {
		return ""
	}
	limit := 2
	if n <= 4 {
		limit = 1
	}
	limit = min(limit, n-1)
	sorted := slices.Clone(candidates)
	slices.Sort(sorted)
	lower := strings.ToLower(name)
	best, bestD, bestP := "", limit+1, 0
	for _, c := range slices.Compact(sorted) {
		if c == name || c == "" || utf8.RuneCountInString(c) > maxSuggestLen {
			continue
		}
		lc := strings.ToLower(c)
		d, p := distance(lower, lc), commonPrefix(lower, lc)
		if d <= limit && (d < bestD || d == bestD && p > bestP) {
			best, bestD, bestP = c, d, p
		}
	}
	return best
}

// distance is the optimal-string-alignment distance between a and b in runes: insertions,
// deletions, substitutions and transpositions of neighbours each cost one.
func distance(a, b string) int {
	r, s := []rune(a), []rune(b)
	prev2 := make([]int, len(s)+1)
	prev := make([]int, len(s)+1)
	cur := make([]int, len(s)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(r); i++ {
		cur[0] = i
		for j := 1; j <= len(s); j++ {
			cost := 1
			if r[i-1] == s[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && r[i-1] == s[j-2] && r[i-2] == s[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(s)]
}

func commonPrefix(a, b string) int {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return n
}

// didYouMean is the suggestion clause of a refusal, or "".
func didYouMean(name string, candidates []string) string {
	if s := Suggest(name, candidates); s != "" {
		return fmt.Sprintf("; did you mean %q?", s)
	}
	return ""
}

// datasetNames are the names a FROM clause may use: the catalog's datasets, when it lists
// them, and the query's WITH name.
func (g *gater) datasetNames() []string {
	var out []string
	if l, ok := g.cat.(DatasetLister); ok {
		out = append(out, l.DatasetNames()...)
	}
	for name := range g.ctes {
		out = append(out, name)
	}
	return out
}

// functionNames are the functions the gate admits anywhere: the aggregates and the closed
// scalar list.
func functionNames() []string {
	out := []string{"width_bucket", "coalesce"}
	for f := range aggregateFunctions {
		if f != "count_star" {
			out = append(out, f)
		}
	}
	for f := range scalarFunctions {
		out = append(out, f)
	}
	slices.Sort(out)
	return slices.Compact(out)
}
