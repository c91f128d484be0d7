package gate

import (
	"strings"
	"time"

	"github.com/c1b99f93/cleanroom/catalog"
	"github.com/c1b99f93/cleanroom/sandbox/wire"
)

// dateDomain returns the public domain of a date_trunc(part, col) key over a column whose
// catalog declares a date_range: every truncated date from the range's first to its last, as
// YYYY-MM-DD text (the worker casts a domain value to the key's type, so the text matches a
// DATE or a TIMESTAMP key). Nil when the key is not of that form, the part is not one of
// year, quarter, month, week (ISO, from Monday) or day, or the domain would have more than
// wire.MaxBuckets values: the key's values then come from the data (partition selection).
func dateDomain(key *wire.Expr, col catalog.Column) []string {
	if key.Kind != wire.KindFunc || key.Name != "date_trunc" || len(key.Args) != 2 {
		return nil
	}
	part, c := key.Args[0], key.Args[1]
	if part.Kind != wire.KindConst || part.Type != wire.TypeVarchar || c.Kind != wire.KindColumn {
		return nil
	}
	from, to, ok := col.Dates()
	if !ok {
		return nil
	}
	trunc, next := datePart(strings.ToLower(part.Value))
	if trunc == nil {
		return nil
	}
	var out []string
	for d := trunc(from); !d.After(to); d = next(d) {
		if len(out) == wire.MaxBuckets {
			return nil
		}
		out = append(out, d.Format(catalog.DateLayout))
	}
	return out
}

// datePart returns how DuckDB's date_trunc truncates a date to part, and the start of the
// next period; nil for a part without a public enumeration here.
func datePart(part string) (trunc, next func(time.Time) time.Time) {
	switch part {
	case "year":
		return func(t time.Time) time.Time { return time.Date(t.Year(), 1, 1, 0, 0, 0, 0, time.UTC) },
			func(t time.Time) time.Time { return t.AddDate(1, 0, 0) }
	case "quarter":
		return func(t time.Time) time.Time {
				return time.Date(t.Year(), (t.Month()-1)/3*3+1, 1, 0, 0, 0, 0, time.UTC)
			},
			func(t time.Time) time.Time { return t.AddDate(0, 3, 0) }
	case "month":
		return func(t time.Time) time.Time { return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC) },
			func(t time.Time) time.Time { return t.AddDate(0, 1, 0) }
	case "week":
		return func(t time.Time) time.Time { return t.AddDate(0, 0, -((int(t.Weekday()) + 6) % 7)) },
			func(t time.Time) time.Time { return t.AddDate(0, 0, 7) }
	case "day":
		return func(t time.Time) time.Time { return t }, func(t time.Time) time.Time { return t.AddDate(0, 0, 1) }
	}
	return nil, nil
}
