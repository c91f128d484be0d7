package sandbox

import (
	"context"
	"fmt"

	"github.com/c1b99f93/cleanroom/errcode"
)

// firstUnitColumn is, in a joined source's rows (keyedRows), the unit key of the same person in
// the relation's first source.
const firstUnitColumn = "__cr_funit"

// rowidColumn is, in keyedRows, the rowid of the row in its snapshot.
const rowidColumn = "__cr_rowid"

// unitTable returns the name of a loaded snapshot's unit table under its privacy unit column
// col, built on first use and kept as long as the snapshot: per unit key (__cr_unit), the
// normalised unit text (__cr_norm), the unit's first rowid (__cr_first) and its row count
// (__cr_rows). Registration ranks units by their normalised text and rejects empty units, so
// every row of a unit normalises alike and one is enough; the table is checked to map distinct
// keys to distinct texts, so one person is never two units of a join.
func (w *worker) unitTable(ctx context.Context, snap *snapTable, col string) (string, error) {
	snap.unitMu.Lock()
	defer snap.unitMu.Unlock()
	if t, ok := snap.unitTables[col]; ok {
		return t, nil
	}
	t := fmt.Sprintf("%s_units_%d", snap.table, w.nextID())
	q := fmt.Sprintf("CREATE TABLE %s AS SELECT %s, %s AS __cr_norm, min(rowid) AS __cr_first, count(*) AS __cr_rows FROM %s GROUP BY %[2]s",
		t, unitColumn, normUnit("any_value("+quoteIdent(col)+")"), snap.table)
	if _, err := w.db.ExecContext(ctx, q); err != nil {
		return "", err
	}
	var n, distinct, texts int64
	err := w.db.QueryRowContext(ctx, fmt.Sprintf("SELECT count(*), count(DISTINCT __cr_norm), count(__cr_norm) FROM %s", t)).Scan(&n, &distinct, &texts)
	if err == nil && (n != snap.Units || distinct != n || texts != n) {
		err = errcode.New(errcode.Internal, "the snapshot's units do not match its privacy unit column one to one")
	}
	if err != nil {
		if _, dropErr := w.db.ExecContext(context.WithoutCancel(ctx), "DROP TABLE IF EXISTS "+t); dropErr != nil {
			w.log.Warn("dropping a unit table failed", "class", duckErrorClass(dropErr))
		}
		return "", err
	}
	if snap.unitTables == nil {
		snap.unitTables = map[string]string{}
	}
	snap.unitTables[col] = t
	return t, nil
}

// keyedRows reads a snapshot table through its unit table units. With firstUnits (the first
// source's unit table) each row also carries firstUnitColumn, and rows of units the first
// source does not have are left out (no join could match them). With n > 0 it keeps at most n
// rows of each unit, the same rows as boundedRows: a row's place among its unit's rows is
// rowid − __cr_first + 1 (units are clustered), and which places a unit of c rows keeps is
// keptPlaces, so no window runs over the rows.
func keyedRows(table, units, firstUnits string, n int64, key uint64) string {
	u, sel := units, "s.*, s.rowid AS "+rowidColumn
	if firstUnits != "" {
		u = fmt.Sprintf("(SELECT y.*, x.%s AS %s FROM %s AS y JOIN %s AS x ON x.__cr_norm = y.__cr_norm)", unitColumn, firstUnitColumn, units, firstUnits)
		sel += ", u." + firstUnitColumn
	}
	q := fmt.Sprintf("SELECT %s FROM %s AS s JOIN %s AS u ON s.%s = u.%[4]s", sel, table, u, unitColumn)
	if n > 0 {
		q += fmt.Sprintf(" LEFT JOIN %s AS k ON k.__cr_rows = u.__cr_rows AND k.__cr_pos = s.rowid - u.__cr_first + 1 WHERE u.__cr_rows <= %d OR k.__cr_pos IS NOT NULL",
			keptPlaces(units, n, key), n)
	}
	return "(" + q + ")"
}

// keptPlaces is, for each row count c > n that a unit of the unit table has, the n places
// (1-based, in the unit's rowid order) such a unit keeps: those of lowest hash(place, key),
// ties to the earlier place — boundedRows' ranking. It depends only on c, n and the key, so a
// unit's kept rows depend on its own rows alone; the table has at most n rows per distinct
// count, and the places enumerated sum to at most the snapshot's rows.
func keptPlaces(units string, n int64, key uint64) string {
	return fmt.Sprintf("(SELECT __cr_rows, __cr_pos FROM (SELECT c AS __cr_rows, unnest(range(1, c + 1)) AS __cr_pos FROM (SELECT DISTINCT __cr_rows AS c FROM %s WHERE __cr_rows > %d)) QUALIFY row_number() OVER (PARTITION BY __cr_rows ORDER BY hash(__cr_pos, %d::UBIGINT), __cr_pos) <= %[2]d)",
		units, n, key)
}
