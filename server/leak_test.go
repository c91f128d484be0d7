package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/c1b99f93/cleanroom/catalog"
	"github.com/c1b99f93/cleanroom/connectors"
	"github.com/c1b99f93/cleanroom/sandbox"
	"github.com/c1b99f93/cleanroom/server"
	"github.com/c1b99f93/cleanroom/server/api"
)

// lockedBuffer collects the server's and the workers' log lines from several goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) Bytes() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return bytes.Clone(l.b.Bytes())
}

// rawTextValues returns every distinct text value of at least min bytes of the dataset's
// columns — identifiers, quasi-identifiers, sensitive values, attributes — except columns with a
// declared public domain (district codes, bands), whose values are in the catalog.
func rawTextValues(t *testing.T, name string, min int) map[string]bool {
	t.Helper()
	spec, err := catalog.LoadFile(filepath.Join(datasetsDir(t), name+".yaml"))
	if err != nil {
		t.Fatal(err)
	}
	rdr, err := connectors.Open(context.Background(), string(spec.Source.Kind), spec.Source.Path, connectors.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer rdr.Release()
	out := map[string]bool{}
	for rdr.Next() {
		rec := rdr.RecordBatch()
		for i, f := range rec.Schema().Fields() {
			col, ok := rec.Column(i).(*array.String)
			if !ok || len(spec.Columns[f.Name].Domain) > 0 {
				continue
			}
			for r := 0; r < col.Len(); r++ {
				if v := col.Value(r); !col.IsNull(r) && len(v) >= min {
					out[v] = true
				}
			}
		}
	}
	if err := rdr.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// duckdbPhrases are the openings of DuckDB error messages, which quote the offending values.
var duckdbPhrases = []string{"Overflow", "Conversion Error", "Could not convert", "Invalid Input Error",
	"Binder Error", "Out of Range", "Parser Error", "Catalog Error", "INT32", "INT64", "DOUBLE ("}

// TestErrorsNeverLeakRawValues sends queries built to make DuckDB quote a raw value in its
// error (overflowing arithmetic on a sensitive amount, conversions and string functions on
// text columns, impossible date parts) and checks that no raw text value of the test data, and
// no DuckDB message, appears in any answer the applicant gets, in the server's or the workers'
// log lines, or anywhere in the provenance log.
func TestErrorsNeverLeakRawValues(t *testing.T) {
	logs := &lockedBuffer{}
	ps, err := server.ParsePrincipals([]byte(principalsYAML))
	if err != nil {
		t.Fatal(err)
	}
	clk := &clock{now: time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)}
	dataDir := t.TempDir()
	srv, err := server.New(context.Background(), server.Config{DataDir: dataDir, Principals: ps, ImportRoots: importRoots(t),
		Now: clk.Now, Logger: slog.New(slog.NewTextHandler(logs, nil)), Stderr: logs, WorkerDB: sandbox.DBLimits{MemoryLimit: "2GB"}})
	if err != nil {
		t.Fatal(err)
	}
	p := serveOn(t, srv, dataDir)
	grant := setupGrant(t, p, 10) // all of residents' lifetime epsilon; 18 attacks at 0.5 fit

	attacks := []string{
		// Integer overflow: DuckDB's message quotes both operands, one of them a raw amount.
		"SELECT COUNT(*) AS n FROM medical_visits WHERE CAST(cost AS INTEGER) * 2147483647 > 0",
		"SELECT COUNT(*) AS n FROM medical_visits WHERE CAST(cost AS BIGINT) * 9223372036854775807 > 0",
		"SELECT district, COUNT(*) AS n FROM medical_visits WHERE CAST(cost AS INTEGER) + 2147483647 > 0 GROUP BY district",
		// Conversions of text columns: "Could not convert string '…' to …".
		"SELECT COUNT(*) AS n FROM medical_visits WHERE CAST(diagnosis AS INTEGER) > 0",
		"SELECT COUNT(*) AS n FROM medical_visits WHERE CAST(diagnosis AS DATE) > DATE '2020-01-01'",
		"SELECT COUNT(*) AS n FROM medical_visits WHERE CAST(hospital_id AS DOUBLE) > 0",
		"SELECT COUNT(*) AS n FROM residents WHERE CAST(income_band AS BOOLEAN)",
		// String and date functions with arguments chosen to fail on the data.
		"SELECT COUNT(*) AS n FROM medical_visits WHERE substr(diagnosis, 1, -5) = 'x'",
		"SELECT COUNT(*) AS n FROM medical_visits WHERE date_part(diagnosis, visit_date) > 0",
		"SELECT COUNT(*) AS n FROM medical_visits WHERE date_trunc(diagnosis, visit_date) > DATE '2020-01-01'",
		"SELECT COUNT(*) AS n FROM medical_visits WHERE least(diagnosis, 5) = 'x'",
		"SELECT COUNT(*) AS n FROM medical_visits WHERE length(diagnosis) / (length(diagnosis) - length(diagnosis)) > 1",
		// Identifiers in filters and outputs: refused before they run.
		"SELECT COUNT(*) AS n FROM residents WHERE CAST(name AS INTEGER) > 0",
		"SELECT COUNT(*) AS n FROM residents WHERE CAST(person_id AS BIGINT) * 100 > 0",
		"SELECT person_id, COUNT(*) FROM medical_visits GROUP BY person_id",
		"SELECT COUNT(*) AS n FROM medical_visits WHERE diagnosis = 1",
	}
	var answers bytes.Buffer
	codes := map[string]int{}
	for _, sql := range attacks {
		var j api.Job
		status, code := p.do("insurer-1", "POST", "/v1/jobs", api.JobRequest{Grant: grant, SQL: sql, Options: api.JobOptions{Epsilon: 0.5}}, &j)
		if status >= 300 {
			codes[code]++
			continue
		}
		j = p.waitJob("insurer-1", j.ID)
		b, _ := json.Marshal(j)
		answers.Write(b)
		t.Logf("%s → %s %v", sql, j.State, j.Error)
		if j.Error != nil {
			codes[j.Error.Code]++
		} else {
			codes[string(j.State)]++
		}
	}
	t.Logf("outcomes: %v", codes)
	p.stop()
	provLog, err := os.ReadFile(filepath.Join(dataDir, "provenance.log"))
	if err != nil {
		t.Fatal(err)
	}
	places := map[string][]byte{"answers to the applicant": answers.Bytes(), "server and worker logs": logs.Bytes(), "provenance log": provLog}
	// The attacks' SQL is the applicant's own text and is recorded; only values that come
	// from the data count, so values that occur in the SQL are left out.
	sqlText := strings.Join(attacks, "\n")
	for _, ds := range []string{"medical_visits", "residents"} {
		for v := range rawTextValues(t, ds, 5) {
			if strings.Contains(sqlText, v) {
				continue
			}
			for where, text := range places {
				if bytes.Contains(text, []byte(v)) {
					t.Errorf("a raw value of %s appears in the %s: %q", ds, where, v)
				}
			}
		}
	}
	for _, phrase := range duckdbPhrases {
		if bytes.Contains(answers.Bytes(), []byte(phrase)) || bytes.Contains(provLog, []byte(phrase)) {
			t.Errorf("a DuckDB message (%q) reached the applicant or the provenance log", phrase)
		}
	}
	if codes["released"] == len(attacks) {
		t.Fatal("every attack was released: the test is not provoking errors")
	}
}
