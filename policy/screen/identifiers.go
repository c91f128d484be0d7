package screen

import (
	"github.com/c1b99f93/cleanroom/policy/pii"
)

// maxMemo bounds the per-review memo of scanned strings.
const maxMemo = 1 << 16

// The identifier scans themselves are pii.ScanText, ScanFloat and ScanInt: the gate runs the
// same scan on what a query writes, so both recognise an identifier the same way.

// foundCodes lists the identifier kinds in the order findings report them.
var foundCodes = [...]struct {
	bit  pii.Kinds
	code string
}{
	{pii.ResidentID, CodeResidentID},
	{pii.USCC, CodeUSCC},
	{pii.Mobile, CodeMobile},
	{pii.BankCard, CodeBankCard},
	{pii.Email, CodeEmail},
}

// checkIdentifiers scans every cell and every error message for identifier formats.
func (st *state) checkIdentifiers() error {
	// Group-key values repeat across rows; each distinct string is scanned once.
	memo := map[string]pii.Kinds{}
	for col := range st.cols {
		for row := 0; row < st.rows; row++ {
			if err := st.cancelled(row); err != nil {
				return err
			}
			v := st.out.Cell(row, col)
			f, ok := pii.Kinds(0), false
			if v.Type == TypeString {
				f, ok = memo[v.Str]
			}
			if !ok {
				f = scanValue(v)
				if v.Type == TypeString && len(memo) < maxMemo {
					memo[v.Str] = f
				}
			}
			st.report(f, placeCells, col, row, st.rows)
		}
	}
	errs := st.out.Errors()
	for i, e := range errs {
		st.report(pii.ScanText(e), placeErrors, 0, i, len(errs))
	}
	return nil
}

// checkNames scans every column name for identifier formats. Names are chosen by the
// applicant (aliases, and names derived from the query's own names) or come from the
// catalog, never from the data, so they are not looked up in the raw-value set: that verdict
// would say whether some raw record holds the name. The gate refuses such names before the
// job runs (gate.CodeIdentifierInQuery); this scan stays as a second line. A name that
// passes (and is short) may be quoted in messages; any other is named by its index only.
func (st *state) checkNames() error {
	for i, c := range st.cols {
		f := pii.ScanText(c.Name)
		st.report(f, placeName, i, 0, 1)
		st.nameClean[i] = f == 0 && len(c.Name) <= 64
	}
	return nil
}

// report records the identifier kinds in f at index i of a place.
func (st *state) report(f pii.Kinds, p place, col, i, total int) {
	if f == 0 {
		return
	}
	for _, fc := range foundCodes {
		if f&fc.bit != 0 {
			st.findings.at(fc.code, p, col, i, total)
		}
	}
}

// scanValue scans one cell. A noisy number is not an identifier candidate (Value.Noisy).
func scanValue(v Value) pii.Kinds {
	if v.Noisy {
		return 0
	}
	switch v.Type {
	case TypeString:
		return pii.ScanText(v.Str)
	case TypeFloat:
		return pii.ScanFloat(v.Float)
	case TypeInt:
		return pii.ScanInt(v.Int)
	}
	return 0
}
