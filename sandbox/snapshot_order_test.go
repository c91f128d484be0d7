package sandbox

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// workerOn is an in-process worker (relWorker) on dir.
func workerOn(t *testing.T, dir string) *worker {
	w := relWorker(t)
	w.dir = dir
	return w
}

// snapshotCSV registers rows (person_id,district,cost) in w.
func snapshotCSV(t *testing.T, w *worker, rows []string) *snapTable {
	t.Helper()
	return w.tables[relRegister(t, w, "person_id", "person_id,district,cost", rows)]
}

// tableRows lists a loaded snapshot's rows in rowid order, each as "unit|person|district|cost".
func tableRows(t *testing.T, w *worker, s *snapTable) []string {
	t.Helper()
	rows, err := w.db.Query(fmt.Sprintf("SELECT concat_ws('|', %s, person_id, district, cost) FROM %s ORDER BY rowid", unitColumn, s.table))
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var r string
		if err := rows.Scan(&r); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// rowsOfUnit keeps the rows (tableRows) of the unit that person belongs to, without the dense key.
func rowsOfUnit(rows []string, person string) []string {
	key := ""
	for _, r := range rows {
		if k, rest, _ := strings.Cut(r, "|"); strings.HasPrefix(rest, person+"|") {
			key = k
			break
		}
	}
	var out []string
	for _, r := range rows {
		if k, rest, _ := strings.Cut(r, "|"); k == key {
			out = append(out, rest)
		}
	}
	return out
}

// The table a registration leaves loaded is the snapshot file row for row: a fresh worker that
// loads the file has the same rows at the same rowids (replay runs on the loaded file).
func TestRegisteredTableIsItsFileRowForRow(t *testing.T) {
	var rows []string
	for i := range 3000 {
		rows = append(rows, fmt.Sprintf("p%03d,%s,%d", (i*37)%300, []string{"A", "B", "C"}[i%3], (i*7919)%1000))
	}
	dir := t.TempDir()
	w := workerOn(t, dir)
	reg := snapshotCSV(t, w, rows)
	w2 := workerOn(t, dir)
	loaded, err := w2.load(context.Background(), reg.Digest)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := tableRows(t, w2, loaded), tableRows(t, w, reg); !slices.Equal(got, want) {
		t.Fatalf("the loaded table differs from the registered one (%d and %d rows)", len(got), len(want))
	}
	if !slices.Equal(reg.starts, loaded.starts) || reg.Units != 300 || !maps.Equal(reg.twins, loaded.twins) {
		t.Fatalf("unit index or twins differ: %d units, twins %v and %v", reg.Units, reg.twins, loaded.twins)
	}
}

// The order of a unit's rows (which the bounding pass's choice depends on, through their
// positions) is a function of that unit's rows alone: other units' rows, and the source's row
// order, do not change it. " P1 " and "p1" are one unit.
func TestUnitRowOrderDependsOnlyOnTheUnitsOwnRows(t *testing.T) {
	own := []string{"p1,A,5", "p1,B,3", "p1,A,3", " P1 ,C,9", "p1,A,5", "p1,C,1"}
	reversed := slices.Clone(own)
	slices.Reverse(reversed)
	others := []string{"p0,A,1", "p2,B,2", "p2,A,7", "p3,C,4"}
	cases := []struct {
		name string
		rows []string
	}{
		{"with neighbours", append(slices.Clone(others), own...)},
		{"own rows reversed", append(slices.Clone(others), reversed...)},
		{"a neighbour removed", append([]string{"p2,B,2", "p2,A,7"}, own...)},
		{"neighbours added", append(append([]string{"p9,C,8", "p1a,A,1", "o,A,0"}, own...), others...)},
		{"alone", own},
	}
	var want []string
	for i, c := range cases {
		w := workerOn(t, t.TempDir())
		s := snapshotCSV(t, w, c.rows)
		got := rowsOfUnit(tableRows(t, w, s), "p1")
		if len(got) != len(own) {
			t.Fatalf("%s: unit p1 has %d rows, want %d", c.name, len(got), len(own))
		}
		if i == 0 {
			want = got
			continue
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s: unit rows %v, want %v", c.name, got, want)
		}
	}
}

// A snapshot loads in its file's row order whatever that order is, so snapshots written
// before the registration sorted by a row hash (their rows ordered by every column) load as
// they were, and replays of old jobs see the same rowids.
func TestLoadKeepsTheFileRowOrder(t *testing.T) {
	dir := t.TempDir()
	schema := arrow.NewSchema([]arrow.Field{{Name: unitColumn, Type: arrow.PrimitiveTypes.Int64},
		{Name: "person_id", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "district", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "cost", Type: arrow.PrimitiveTypes.Int64, Nullable: true}}, nil)
	units := []int64{0, 0, 0, 1, 1, 2}
	persons := []string{"a", "a", "a", "b", "b", "c"}
	districts := []string{"C", "A", "B", "B", "A", "A"} // not sorted within a unit
	costs := []int64{3, 1, 2, 5, 4, 6}
	bld := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer bld.Release()
	bld.Field(0).(*array.Int64Builder).AppendValues(units, nil)
	bld.Field(1).(*array.StringBuilder).AppendValues(persons, nil)
	bld.Field(2).(*array.StringBuilder).AppendValues(districts, nil)
	bld.Field(3).(*array.Int64Builder).AppendValues(costs, nil)
	rec := bld.NewRecordBatch()
	defer rec.Release()
	var buf strings.Builder
	iw := ipc.NewWriter(&buf, ipc.WithSchema(schema))
	if err := iw.Write(rec); err != nil {
		t.Fatal(err)
	}
	if err := iw.Close(); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(buf.String()))
	digest := "sha256:" + hex.EncodeToString(sum[:])
	w := workerOn(t, dir)
	if err := os.MkdirAll(filepath.Join(dir, "snapshots"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(w.snapshotPath(digest), []byte(buf.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := w.load(context.Background(), digest)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for i := range units {
		want = append(want, fmt.Sprintf("%d|%s|%s|%d", units[i], persons[i], districts[i], costs[i]))
	}
	if got := tableRows(t, w, s); !slices.Equal(got, want) {
		t.Fatalf("loaded rows %v, want the file's order %v", got, want)
	}
}
