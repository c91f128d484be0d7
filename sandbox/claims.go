package sandbox

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/c1b99f93/cleanroom/catalog"
	"github.com/c1b99f93/cleanroom/errcode"
	"github.com/c1b99f93/cleanroom/he/verify"
	"github.com/c1b99f93/cleanroom/sandbox/wire"
)

// answerClaims answers a verification (wire.Claims): it reads each subject's attribute from
// the snapshot and has he/verify compute r·(claimed − actual) under the applicant's key. The
// attribute values never leave this function: what returns is ciphertexts the worker cannot
// open, and a subject without a value (absent, or rows that disagree) answers like a
// mismatch.
func (w *worker) answerClaims(ctx context.Context, cl *wire.Claims) ([][]byte, error) {
	if cl.TimeoutMS > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(cl.TimeoutMS)*time.Millisecond)
		defer cancel()
	}
	if len(cl.Subjects) == 0 || len(cl.Ciphertexts) != verify.CiphertextsFor(len(cl.Subjects)) {
		return nil, errcode.New(errcode.MalformedCiphertext, "%d ciphertexts cannot carry %d checks (%d a ciphertext)", len(cl.Ciphertexts), len(cl.Subjects), verify.Slots)
	}
	snap, err := w.loaded(ctx, cl.Snapshot)
	if err != nil {
		return nil, err
	}
	if _, ok := snapColumn(snap, cl.Attribute.Column); !ok || cl.PrivacyUnit == "" {
		return nil, errcode.New(errcode.Internal, "the snapshot has no column for the attribute or the unit")
	}
	if _, ok := snapColumn(snap, cl.PrivacyUnit); !ok {
		return nil, errcode.New(errcode.Internal, "the snapshot has no column for the unit")
	}
	values, err := w.attributeValues(ctx, snap, cl)
	if err != nil {
		return nil, classifyExecError(ctx, err)
	}
	actual := make([]verify.Actual, len(cl.Subjects))
	for i, v := range values {
		if v != nil {
			actual[i] = verify.Actual{Value: verify.Encode(*v), Present: true}
		}
	}
	out, err := verify.Evaluate(cl.PublicKey, cl.Ciphertexts, actual)
	switch {
	case errors.Is(err, verify.ErrMalformedKey), errors.Is(err, verify.ErrMalformedCiphertext), errors.Is(err, verify.ErrCheckCount), errors.Is(err, verify.ErrTooManyChecks):
		return nil, errcode.Wrap(errcode.MalformedCiphertext, err, "the public key or the ciphertexts do not decode as the platform's verification parameters")
	case err != nil:
		return nil, errcode.Wrap(errcode.SandboxFailed, err, "the verification could not be computed")
	}
	return out, nil
}

func snapColumn(snap *snapTable, name string) (wire.Column, bool) {
	for _, c := range snap.Columns {
		if c.Name == name {
			return c, true
		}
	}
	return wire.Column{}, false
}

// attributeValues returns, per subject in order, the unit's attribute as the text both sides
// encode (catalog.VerifyAttribute), or nil when the unit has none.
func (w *worker) attributeValues(ctx context.Context, snap *snapTable, cl *wire.Claims) ([]*string, error) {
	c := quoteIdent(cl.Attribute.Column)
	var agg, present string
	switch cl.Attribute.Reduce {
	case "", catalog.ReduceValue:
		agg, present = "any_value("+c+")", "count(DISTINCT "+c+") = 1"
	case catalog.ReduceAny:
		agg, present = "bool_or(TRY_CAST("+c+" AS BOOLEAN))", "bool_or(TRY_CAST("+c+" AS BOOLEAN)) IS NOT NULL"
	case catalog.ReduceCount:
		agg, present = "count("+c+")", "true"
	case catalog.ReduceMax:
		agg, present = "max("+c+")", "max("+c+") IS NOT NULL"
	case catalog.ReduceMin:
		agg, present = "min("+c+")", "min("+c+") IS NOT NULL"
	default:
		return nil, errcode.New(errcode.Internal, "unknown reduction of a verifiable attribute")
	}
	if len(cl.Attribute.Bands) > 0 {
		agg = "TRY_CAST(" + agg + " AS DOUBLE)"
	}
	unit := normUnit(quoteIdent(cl.PrivacyUnit))
	q := fmt.Sprintf(`WITH q AS (SELECT unnest(?::VARCHAR[]) AS s, generate_subscripts(?::VARCHAR[], 1) AS i),
		u AS (SELECT upper(trim(s)) AS n, i FROM q),
		r AS (SELECT %s AS n, %s AS v, %s AS ok FROM %s WHERE %s IN (SELECT n FROM u) GROUP BY 1)
		SELECT u.i, r.v FROM u JOIN r USING (n) WHERE r.ok`, unit, agg, present, snap.table, unit)
	rows, err := w.db.QueryContext(ctx, q, cl.Subjects, cl.Subjects)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := make([]*string, len(cl.Subjects))
	for rows.Next() {
		var i int64
		var v any
		if err := rows.Scan(&i, &v); err != nil {
			return nil, err
		}
		if i < 1 || i > int64(len(out)) {
			return nil, errors.New("sandbox: a subject's position is out of range")
		}
		text, ok := attributeText(v, cl.Attribute.Bands)
		if ok {
			out[i-1] = &text
		}
	}
	return out, rows.Err()
}

// attributeText is a value as the applicant would write it: integers in decimal (a whole
// DOUBLE too), booleans as true/false, dates as YYYY-MM-DD, text as is; with bands, the band's
// label (verify.BandOf).
func attributeText(v any, bands []float64) (string, bool) {
	if len(bands) > 0 {
		f, ok := v.(float64)
		if !ok || math.IsNaN(f) {
			return "", false
		}
		b := verify.BandOf(bands, f)
		return b, b != ""
	}
	switch x := v.(type) {
	case nil:
		return "", false
	case string:
		return x, true
	case bool:
		return strconv.FormatBool(x), true
	case int64:
		return strconv.FormatInt(x, 10), true
	case int32:
		return strconv.FormatInt(int64(x), 10), true
	case int16:
		return strconv.FormatInt(int64(x), 10), true
	case int8:
		return strconv.FormatInt(int64(x), 10), true
	case uint64:
		return strconv.FormatUint(x, 10), true
	case uint32:
		return strconv.FormatUint(uint64(x), 10), true
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1<<53 {
			return strconv.FormatInt(int64(x), 10), true
		}
		return strconv.FormatFloat(x, 'g', -1, 64), !math.IsNaN(x) && !math.IsInf(x, 0)
	case float32:
		return attributeText(float64(x), nil)
	case time.Time:
		if x.Equal(x.Truncate(24 * time.Hour)) {
			return x.UTC().Format(time.DateOnly), true
		}
		return x.UTC().Format(time.RFC3339Nano), true
	}
	return fmt.Sprint(v), true
}
