package screen

import (
	"fmt"

	"github.com/c1b99f93/cleanroom/policy"
	"github.com/c1b99f93/cleanroom/policy/pii"
)

// Finding codes. Each has a fixed severity (Severity).
const (
	CodeIdentifierLineage     = "identifier_lineage"
	CodeSensitiveGroupKey     = "sensitive_group_key"
	CodeColumnKindUnknown     = "column_kind_unknown"
	CodeResidentID            = "resident_id_in_output"
	CodeUSCC                  = "uscc_in_output"
	CodeMobile                = "mobile_in_output"
	CodeBankCard              = "bank_card_in_output"
	CodeEmail                 = "email_in_output"
	CodeRawValue              = "raw_value_in_output"
	CodeSmallGroupsSuppressed = "small_groups_suppressed"
	CodeUnitCountUnavailable  = "unit_count_unavailable"
	CodeRowsOverLimit         = "rows_over_limit"
	CodeCellsOverLimit        = "cells_over_limit"
	CodeBytesOverLimit        = "bytes_over_limit"
	CodeDifferencing          = "differencing_suspected"
	CodeReviewerFailed        = "reviewer_failed"
)

// severities maps every code to its severity.
var severities = map[string]string{
	CodeIdentifierLineage: policy.SeverityHigh,
	// Low: grouping by a sensitive column is ordinary DP SQL (a public domain or DP partition
	// selection decides which keys appear); the finding lets an operator's policy hold it.
	CodeSensitiveGroupKey:     policy.SeverityLow,
	CodeColumnKindUnknown:     policy.SeverityHigh,
	CodeResidentID:            policy.SeverityHigh,
	CodeUSCC:                  policy.SeverityHigh,
	CodeMobile:                policy.SeverityHigh,
	CodeBankCard:              policy.SeverityHigh,
	CodeEmail:                 policy.SeverityHigh,
	CodeRawValue:              policy.SeverityHigh,
	CodeSmallGroupsSuppressed: policy.SeverityLow,
	CodeUnitCountUnavailable:  policy.SeverityLow,
	CodeRowsOverLimit:         policy.SeverityHigh,
	CodeCellsOverLimit:        policy.SeverityHigh,
	CodeBytesOverLimit:        policy.SeverityHigh,
	// Medium: two queries may legitimately differ by a narrow condition; a person decides.
	CodeDifferencing:   policy.SeverityMedium,
	CodeReviewerFailed: policy.SeverityHigh,
}

// Severity returns the severity of a finding code, or "" for an unknown code.
func Severity(code string) string { return severities[code] }

// Codes returns every finding code the reviewer emits.
func Codes() []string {
	return []string{
		CodeIdentifierLineage, CodeSensitiveGroupKey, CodeColumnKindUnknown,
		CodeResidentID, CodeUSCC, CodeMobile, CodeBankCard, CodeEmail, CodeRawValue,
		CodeSmallGroupsSuppressed, CodeUnitCountUnavailable,
		CodeRowsOverLimit, CodeCellsOverLimit, CodeBytesOverLimit, CodeDifferencing, CodeReviewerFailed,
	}
}

// descriptions say, without a value, what a content finding found.
var descriptions = map[string]string{
	CodeResidentID: pii.ResidentID.Description(),
	CodeUSCC:       pii.USCC.Description(),
	CodeMobile:     pii.Mobile.Description(),
	CodeBankCard:   pii.BankCard.Description(),
	CodeEmail:      pii.Email.Description(),
	CodeRawValue:   "a value of an identifier or sensitive input column",
}

// Description says, without a value, what a content finding's code found ("a mainland
// mobile number"); "" for other codes.
func Description(code string) string { return descriptions[code] }

// place is where a content finding was found.
type place uint8

const (
	placeNone   place = iota // a finding with a fixed message
	placeCells               // cells of one column
	placeName                // one column's name
	placeErrors              // the error messages
)

type findingKey struct {
	code  string
	place place
	col   int
}

// finding is one finding being aggregated: for cells, how many rows and the first; for
// error messages, how many messages and the first.
type finding struct {
	findingKey
	msg                string
	count, first, last int
	total              int
}

// findings collects findings in the order they were first seen, one per code and place.
type findings struct {
	order []*finding
	index map[findingKey]*finding
}

func newFindings() *findings { return &findings{index: map[findingKey]*finding{}} }

// add records a finding with a fixed message (built only from codes, counts, limits and
// catalog names).
func (fs *findings) add(code, msg string) {
	fs.order = append(fs.order, &finding{findingKey: findingKey{code: code}, msg: msg})
}

// at records a content finding at index i (a row, or an error message) of a place with
// total entries.
func (fs *findings) at(code string, p place, col, i, total int) {
	k := findingKey{code, p, col}
	if f, ok := fs.index[k]; ok {
		if i != f.last {
			f.count++
			f.last = i
		}
		return
	}
	f := &finding{findingKey: k, count: 1, first: i, last: i, total: total}
	fs.index[k] = f
	fs.order = append(fs.order, f)
}

// list renders the findings; colRef names a column.
func (fs *findings) list(colRef func(int) string) []policy.Finding {
	out := make([]policy.Finding, 0, len(fs.order))
	for _, f := range fs.order {
		msg := f.msg
		switch f.place {
		case placeCells:
			msg = fmt.Sprintf("%s in %s: %d of %d rows, first row %d", descriptions[f.code], colRef(f.col), f.count, f.total, f.first)
		case placeName:
			msg = fmt.Sprintf("%s in the name of column %d", descriptions[f.code], f.col)
		case placeErrors:
			msg = fmt.Sprintf("%s in the error messages: %d of %d, first message %d", descriptions[f.code], f.count, f.total, f.first)
		}
		out = append(out, policy.Finding{Code: f.code, Severity: Severity(f.code), Message: msg})
	}
	return out
}
