package screen

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"

	"github.com/c1b99f93/cleanroom/policy"
	"github.com/c1b99f93/cleanroom/rawset"
)

// Output is what a job wants to release, as the reviewer sees it: nothing it does not return
// through these methods is reviewed, so an adapter must expose every value that would leave.
// SQL results, HE verification answers and model parameters each implement it (the engine
// adapts its result); Table is an in-memory implementation.
//
// An output is a table: Rows() rows of len(Columns()) cells. Values that leave beside the main
// value of a cell (confidence bounds, standard errors) are cells of columns of their own.
type Output interface {
	// Columns returns the output's columns with their kind and lineage.
	Columns() []Column
	// Rows returns the number of rows.
	Rows() int
	// Cell returns the value in row (0 ≤ row < Rows()) and column (0 ≤ col < len(Columns())).
	Cell(row, col int) Value
	// Bytes returns the size in bytes of the output as it would be released.
	Bytes() int
	// UnitCounts returns, for each row, the noisy count of privacy units behind it, or nil if
	// the job kind has none.
	UnitCounts() []float64
	// Errors returns the error messages, and any other free text, that would reach the
	// applicant along with (or instead of) the rows.
	Errors() []string
}

// Column kinds. A SQL result has group keys and aggregates; an HE verification has answers;
// a model has parameters.
const (
	KindGroupKey  = policy.KindGroupKey
	KindAggregate = policy.KindAggregate
	KindParameter = "parameter"
	KindAnswer    = "answer"
)

// Column is one output column: its name as released, its kind (a Kind… constant), the
// catalog columns it derives from, with how each was used, and, for a group key, where its
// values come from.
type Column struct {
	Name        string
	Kind        string
	DerivedFrom []policy.ColumnUse
	// Origin says where a group key's values come from (OriginQuery unless set); it decides
	// whether they are looked up in the raw-value set. Other kinds' cells are computed from
	// the data (noisy aggregates, answers, parameters) and ignore it.
	Origin Origin
}

// Origin is where a group key's values come from. A raw-value lookup is a test against the
// raw data whose verdict is not differentially private, so it is applied only to values the
// data produced through DP: a string the applicant wrote, looked up, would tell whether some
// raw record holds it (see "What is scanned" in the package doc). The zero value is the safe
// one: values of unknown origin are treated as written by the query and not looked up.
type Origin uint8

const (
	// OriginQuery: the query may have written the values itself — a literal in a value
	// position (a CASE result, a COALESCE/LEAST/GREATEST argument, a clamp) or a value
	// computed with one. Identifier formats are scanned (a verdict on the output alone);
	// raw values are not looked up, not even in the cells that came from the data, which
	// cannot be told apart reliably once the worker has coerced the literal's type.
	OriginQuery Origin = iota
	// OriginPublic: values of a public domain (the catalog's, or one the SQL enumerates),
	// released whatever the data holds. Identifier formats are scanned; raw values are not
	// looked up.
	OriginPublic
	// OriginData: values of dataset columns (or of a function of them with no literal in a
	// value position) that DP partition selection let through. Scanned for identifier formats
	// and looked up in the raw-value set.
	OriginData
)

// ValueType says which field of a Value holds it.
type ValueType uint8

// Value types.
const (
	TypeNull ValueType = iota
	TypeString
	TypeFloat
	TypeInt
)

// Value is one cell. Its String and GoString methods do not print the value, so a Value that
// reaches a log by mistake does not carry data.
type Value struct {
	Type  ValueType
	Str   string
	Float float64
	Int   int64
	// Noisy marks a number a DP mechanism released (a noisy value or an end of its interval)
	// or one computed from such numbers alone (post-processing). Its digits are noise around
	// an aggregate, not a value some record holds, so it is not scanned for identifier
	// formats: a noisy count that happens to read as a mobile number identifies no one, and
	// denying it would charge the applicant for nothing. It is still looked up in the raw-value
	// set by the number rule (package doc, "False-positive rules").
	Noisy bool
}

// Str returns a string value.
func Str(s string) Value { return Value{Type: TypeString, Str: s} }

// Float returns a floating-point value.
func Float(f float64) Value { return Value{Type: TypeFloat, Float: f} }

// Noisy returns a number a DP mechanism released, or one post-processed from such numbers
// only (Value.Noisy).
func Noisy(f float64) Value { return Value{Type: TypeFloat, Float: f, Noisy: true} }

// Int returns an integer value.
func Int(i int64) Value { return Value{Type: TypeInt, Int: i} }

// String redacts the value.
func (v Value) String() string { return "screen.Value(redacted)" }

// GoString redacts the value.
func (v Value) GoString() string { return v.String() }

// Limits are the output limits, from the policy's params. A zero field means no limit.
type Limits struct {
	MaxRows, MaxCells, MaxBytes int
	// MinUnitsPerGroup is the least noisy count of privacy units a row may stand for;
	// rows below it are suppressed.
	MinUnitsPerGroup float64
}

// Review is the result of reviewing one output.
type Screening struct {
	// Findings go into policy.EgressInput.Findings; never nil.
	Findings []policy.Finding
	// Suppressed lists, in ascending order, the rows to withhold for standing for too few
	// privacy units.
	Suppressed []int
}

// Screener runs the egress checks. It holds no per-review state and is safe for concurrent
// use.
type Screener struct {
	limits       Limits
	differencing differencing
	keyer        *rawset.Keyer
	raw          RawSet
}

// Option configures a Screener.
type Option func(*Screener) error

// Errors New returns for invalid options.
var (
	// ErrInvalidLimits is returned for a negative limit or a minimum that is not finite.
	ErrInvalidLimits = errors.New("screen: limits must be non-negative and finite")
	// ErrNoRawSet is returned by WithRawValues given a nil Keyer or RawSet.
	ErrNoRawSet = errors.New("screen: raw-value scan needs a keyer and a set")
	// ErrKeyMismatch is returned by WithRawValues when the set states it was built under a
	// different key than the keyer's: every lookup would miss, silently.
	ErrKeyMismatch = errors.New("screen: raw-value set was built under another key")
)

// WithLimits sets the output limits and the minimum units per group.
func WithLimits(l Limits) Option {
	return func(r *Screener) error {
		if l.MaxRows < 0 || l.MaxCells < 0 || l.MaxBytes < 0 || !(l.MinUnitsPerGroup >= 0) || math.IsInf(l.MinUnitsPerGroup, 0) {
			return ErrInvalidLimits
		}
		r.limits = l
		return nil
	}
}

// WithRawValues enables the raw-value scan: output values are canonicalised, hashed with k
// and looked up in set. A set that reports a key ID (as rawset.HashSet and rawset.Union do)
// must have been built with k.
func WithRawValues(k *rawset.Keyer, set RawSet) Option {
	return func(r *Screener) error {
		if k == nil || set == nil {
			return ErrNoRawSet
		}
		if ks, ok := set.(interface{ KeyID() uint64 }); ok {
			if id := ks.KeyID(); id != 0 && id != k.ID() {
				return ErrKeyMismatch
			}
		}
		r.keyer, r.raw = k, set
		return nil
	}
}

// New returns a Screener with the given options. Without WithLimits there are no limits;
// without WithRawValues there is no raw-value scan.
func New(opts ...Option) (*Screener, error) {
	r := &Screener{}
	for _, o := range opts {
		if err := o(r); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// Screen runs every check on out. It never fails: a check that cannot run (a panic, an
// inconsistent output, a cancelled context) yields a reviewer_failed finding, which the
// default policy denies on.
func (r *Screener) Screen(ctx context.Context, out Output) Screening {
	st := &state{r: r, ctx: ctx, out: out, findings: newFindings()}
	if ctx == nil {
		st.ctx = context.Background()
	}
	if st.run("output", st.prepare) {
		for _, c := range []struct {
			name string
			fn   func() error
		}{
			{"names", st.checkNames},
			{"lineage", st.checkLineage},
			{"identifiers", st.checkIdentifiers},
			{"raw_values", st.checkRawValues},
			{"small_groups", st.checkSmallGroups},
			{"limits", st.checkLimits},
			{"differencing", st.checkDifferencing},
		} {
			if !st.run(c.name, c.fn) && st.ctx.Err() != nil {
				break // one cancellation finding is enough
			}
		}
	}
	return Screening{Findings: st.findings.list(st.colRef), Suppressed: st.suppressed}
}

// state is one review in progress.
type state struct {
	r          *Screener
	ctx        context.Context
	out        Output
	cols       []Column
	rows       int
	findings   *findings
	suppressed []int
	// nameClean[i] reports that column i's name passed the scans, so messages may quote it.
	nameClean []bool
}

// errCheck is a check that could not run for a reason the message states (no data in it).
type errCheck string

func (e errCheck) Error() string { return string(e) }

// run runs one check, turning a panic or an error into a reviewer_failed finding. The panic
// value and the error text are not quoted: either may hold data.
func (st *state) run(name string, fn func() error) (ok bool) {
	defer func() {
		if p := recover(); p != nil {
			st.findings.add(CodeReviewerFailed, "the "+name+" check failed unexpectedly; the output is not released")
			ok = false
		}
	}()
	if err := st.ctx.Err(); err != nil {
		st.findings.add(CodeReviewerFailed, "the review was cancelled before the "+name+" check; the output is not released")
		return false
	}
	err := fn()
	switch {
	case err == nil:
		return true
	case st.ctx.Err() != nil:
		st.findings.add(CodeReviewerFailed, "the review was cancelled during the "+name+" check; the output is not released")
	default:
		var ec errCheck
		if errors.As(err, &ec) {
			st.findings.add(CodeReviewerFailed, "the "+name+" check could not run: "+string(ec)+"; the output is not released")
		} else {
			st.findings.add(CodeReviewerFailed, "the "+name+" check could not run; the output is not released")
		}
	}
	return false
}

// prepare reads the output's shape once.
func (st *state) prepare() error {
	if st.out == nil {
		return errCheck("there is no output")
	}
	st.cols = st.out.Columns()
	st.rows = st.out.Rows()
	if st.rows < 0 {
		return errCheck("the output reports a negative number of rows")
	}
	st.nameClean = make([]bool, len(st.cols))
	return nil
}

// cancelled reports whether the review should stop, checked every 256 rows.
func (st *state) cancelled(row int) error {
	if row&255 == 0 {
		return st.ctx.Err()
	}
	return nil
}

// colRef names column i in messages: its index, and its name when the name passed the scans.
func (st *state) colRef(i int) string {
	if i < len(st.nameClean) && st.nameClean[i] {
		return "column " + strconv.Itoa(i) + " " + strconv.Quote(st.cols[i].Name)
	}
	return "column " + strconv.Itoa(i)
}

// checkLimits reports an output over the rows, cells or bytes limit.
func (st *state) checkLimits() error {
	l := st.r.limits
	cells := st.rows * len(st.cols)
	if len(st.cols) > 0 && cells/len(st.cols) != st.rows {
		cells = math.MaxInt
	}
	bytes := st.out.Bytes()
	if bytes < 0 {
		return errCheck("the output reports a negative size")
	}
	for _, c := range []struct {
		code   string
		n, max int
		unit   string
	}{
		{CodeRowsOverLimit, st.rows, l.MaxRows, "rows"},
		{CodeCellsOverLimit, cells, l.MaxCells, "cells"},
		{CodeBytesOverLimit, bytes, l.MaxBytes, "bytes"},
	} {
		if c.max > 0 && c.n > c.max {
			st.findings.add(c.code, fmt.Sprintf("the output has %d %s, over the limit of %d", c.n, c.unit, c.max))
		}
	}
	return nil
}

// checkSmallGroups lists the rows whose noisy unit count is below the minimum.
func (st *state) checkSmallGroups() error {
	min := st.r.limits.MinUnitsPerGroup
	if min <= 0 {
		return nil
	}
	units := st.out.UnitCounts()
	if units == nil {
		st.findings.add(CodeUnitCountUnavailable, "a minimum number of units per group is set but the output has no per-row unit counts; no row was suppressed")
		return nil
	}
	if len(units) != st.rows {
		return errCheck("the output's unit counts do not match its rows")
	}
	var sup []int
	for i, u := range units {
		if !(u >= min) { // NaN is below any minimum: fail closed
			sup = append(sup, i)
		}
	}
	if len(sup) > 0 {
		st.suppressed = sup
		st.findings.add(CodeSmallGroupsSuppressed, fmt.Sprintf("%d of %d rows stand for fewer privacy units than the minimum and are suppressed", len(sup), st.rows))
	}
	return nil
}
