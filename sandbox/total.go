package sandbox

import (
	"context"
	"database/sql"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/c1b99f93/cleanroom/errcode"
	"github.com/c1b99f93/cleanroom/sandbox/sqlgen"
	"github.com/c1b99f93/cleanroom/sandbox/wire"
)

// Totality: a job's outcome must not depend on the raw data except through its noisy result.
// An expression that raises an error on some rows only (an overflow, abs of the smallest
// integer, an invalid date part read from a column, a conversion) would otherwise end the job
// as failed exactly when some row satisfies a predicate of the applicant's choosing — a
// noise-free answer about the data, for the price of a refused job. So every expression the
// worker evaluates on rows is a plan expression (wire.Expr) rendered by package sqlgen, and
// only through its two total forms:
//
//   - sqlgen.Value:     group keys, aggregated values, relation columns and their GROUP BY
//     terms; an error becomes SQL NULL (DuckDB's try()).
//   - sqlgen.Condition: filters and join conditions; an error or NULL drops the row, like false.
//   - perUnitAggregate (below): the exact per-unit aggregates of a relation; its argument is a
//     sqlgen.Value and, where the aggregate's accumulator could overflow (SUM or AVG of a wide
//     integer or decimal), a DOUBLE, whose sum saturates at ±Inf instead of failing.
//
// The same rendering is used wherever the same key is read again (the public-domain hashes,
// fetching a partition's key values), so a key is the same value in every place. What stays
// data-dependent is time: TRY re-evaluates a failing vector row by row, so a job whose
// predicate makes rows fail runs measurably longer (docs/threat-model.md has the figure).

// columnScope admits the unqualified columns of a scanned table (a snapshot or a materialized
// relation), never the worker's own (__cr…, rowid).
func columnScope(cols []wire.Column) sqlgen.Scope {
	names := map[string]bool{}
	for _, c := range cols {
		names[c.Name] = true
	}
	return func(source, name string) bool { return source == "" && names[name] && !internalColumn(name) }
}

// internalColumn reports the names the worker uses itself, in any case (DuckDB's names are
// case-insensitive).
func internalColumn(name string) bool {
	l := strings.ToLower(name)
	return strings.HasPrefix(l, "__cr") || l == "rowid"
}

// Per-unit aggregate functions a relation may compute (RelationColumn.Aggregate).
var perUnitFuncs = map[string]bool{"count_star": true, "count": true, "sum": true, "avg": true, "min": true, "max": true}

// narrowSumTypes are the argument types whose SUM and AVG accumulate exactly without any risk
// of overflow: DuckDB sums them into a 128-bit integer (or a DECIMAL(38)), which 2^63-sized
// values cannot overflow below 2^64 rows; DOUBLE and FLOAT saturate at ±Inf. Any other
// numeric argument (HUGEINT, UHUGEINT, a DECIMAL wider than 18 digits) could overflow on a
// chosen pair of rows, so it is summed as DOUBLE.
var narrowSumTypes = map[string]bool{"TINYINT": true, "SMALLINT": true, "INTEGER": true, "BIGINT": true,
	"UTINYINT": true, "USMALLINT": true, "UINTEGER": true, "UBIGINT": true, "FLOAT": true, "DOUBLE": true}

var decimalType = regexp.MustCompile(`^DECIMAL\((\d+),\d+\)$`)

func narrowSumType(t string) bool {
	if narrowSumTypes[t] {
		return true
	}
	if m := decimalType.FindStringSubmatch(t); m != nil {
		width, err := strconv.Atoi(m[1])
		return err == nil && width <= 18
	}
	return false
}

// perUnitAggregate renders a per-unit aggregate column: the aggregate over its total argument,
// then its clamps in order. argType is the argument's DuckDB type (from DESCRIBE).
func perUnitAggregate(c wire.RelationColumn, argType string, sc sqlgen.Scope) (string, error) {
	if !perUnitFuncs[c.Aggregate] {
		return "", errcode.New(errcode.Internal, "the relation has a per-unit aggregate of unknown kind")
	}
	var s string
	switch c.Aggregate {
	case "count_star":
		if c.Expr != nil {
			return "", errcode.New(errcode.Internal, "COUNT(*) of a relation has an argument")
		}
		s = "count(*)"
	default:
		arg, err := sqlgen.Value(c.Expr, sc)
		if err != nil {
			return "", errcode.Wrap(errcode.Internal, err, "the relation has an invalid per-unit aggregate argument")
		}
		if (c.Aggregate == "sum" || c.Aggregate == "avg") && !narrowSumType(argType) {
			arg = "try(CAST(" + arg + " AS DOUBLE))"
		}
		s = c.Aggregate + "(" + arg + ")"
	}
	for _, cl := range c.Clamps {
		if cl.Func != "least" && cl.Func != "greatest" {
			return "", errcode.New(errcode.Internal, "the relation has a clamp of unknown kind")
		}
		v, err := sqlgen.Number(cl.Value)
		if err != nil {
			return "", errcode.Wrap(errcode.Internal, err, "the relation has a clamp that is not a number")
		}
		s = fmt.Sprintf("%s(%s, %s)", cl.Func, s, v)
	}
	return s, nil
}

// argumentTypes returns the DuckDB types of the per-unit aggregates' arguments over from (a
// FROM clause), by binding them without reading a row.
func (w *worker) argumentTypes(ctx context.Context, cols []wire.RelationColumn, from string, sc sqlgen.Scope) (map[int]string, error) {
	var args []string
	var idx []int
	for i, c := range cols {
		if c.Aggregate == "sum" || c.Aggregate == "avg" {
			v, err := sqlgen.Value(c.Expr, sc)
			if err != nil {
				return nil, errcode.Wrap(errcode.Internal, err, "the relation has an invalid per-unit aggregate argument")
			}
			args = append(args, fmt.Sprintf("(%s) AS a%d", v, len(args)))
			idx = append(idx, i)
		}
	}
	out := map[int]string{}
	if len(args) == 0 {
		return out, nil
	}
	rows, err := w.db.QueryContext(ctx, "DESCRIBE SELECT "+strings.Join(args, ", ")+" FROM "+from)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	k := 0
	for rows.Next() {
		var name, typ string
		var rest [4]sql.NullString
		if err := rows.Scan(&name, &typ, &rest[0], &rest[1], &rest[2], &rest[3]); err != nil {
			return nil, err
		}
		if k < len(idx) {
			out[idx[k]] = typ
		}
		k++
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if k != len(idx) {
		return nil, errcode.New(errcode.Internal, "the per-unit aggregates' argument types could not be read")
	}
	return out, nil
}
