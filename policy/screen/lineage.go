package screen

import (
	"fmt"
	"slices"

	"github.com/c1b99f93/cleanroom/policy"
)

// Catalog tags the lineage check reads.
const (
	tagIdentifier = "identifier"
	tagSensitive  = "sensitive"
)

func hasTag(u policy.ColumnUse, tag string) bool { return slices.Contains(u.Tags, tag) }

// countsUnits reports whether a column's use of an identifier only counts: the distinct
// privacy units (the identifier must be the privacy unit) or the rows where it is present.
// Only an aggregate may count.
func countsUnits(c Column, u policy.ColumnUse) bool {
	if c.Kind != KindAggregate {
		return false
	}
	return u.Usage == policy.UsageCountDistinctUnit && u.PrivacyUnit || u.Usage == policy.UsageCountRows
}

// identifierLineage reports whether a column carries an identifier's values: it derives from
// an identifier other than by counting.
func identifierLineage(c Column) bool {
	for _, u := range c.DerivedFrom {
		if hasTag(u, tagIdentifier) && !countsUnits(c, u) {
			return true
		}
	}
	return false
}

// sensitiveGroupKey reports whether a column is a group key over a sensitive column.
func sensitiveGroupKey(c Column) bool {
	if c.Kind != KindGroupKey {
		return false
	}
	for _, u := range c.DerivedFrom {
		if hasTag(u, tagSensitive) {
			return true
		}
	}
	return false
}

// checkLineage reports columns of unknown kind, columns that carry identifier values and
// group keys over sensitive columns. The catalog records no public domain for a sensitive
// column (policy.ColumnUse has no such field), so a sensitive group key is always medium:
// a person decides whether its values may be shown.
func (st *state) checkLineage() error {
	for i, c := range st.cols {
		switch c.Kind {
		case KindGroupKey, KindAggregate, KindParameter, KindAnswer:
		default:
			st.findings.add(CodeColumnKindUnknown, fmt.Sprintf("%s has a kind the reviewer does not know", st.colRef(i)))
		}
		for _, u := range c.DerivedFrom {
			if hasTag(u, tagIdentifier) && !countsUnits(c, u) {
				st.findings.add(CodeIdentifierLineage, fmt.Sprintf("%s derives from %s.%s, tagged identifier, used as %s", st.colRef(i), u.Dataset, u.Column, usage(u)))
			}
			if c.Kind == KindGroupKey && hasTag(u, tagSensitive) {
				st.findings.add(CodeSensitiveGroupKey, fmt.Sprintf("group key %s derives from %s.%s, tagged sensitive; its values need a reviewer", st.colRef(i), u.Dataset, u.Column))
			}
		}
	}
	return nil
}

func usage(u policy.ColumnUse) string {
	if u.Usage == "" {
		return "(no usage)"
	}
	return u.Usage
}
