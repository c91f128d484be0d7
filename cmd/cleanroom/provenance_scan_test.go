package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/c1b99f93/cleanroom/catalog"
	"github.com/c1b99f93/cleanroom/connectors"
)

// TestDemoLogHoldsNoRawValue runs the demo and scans its whole provenance log for every raw
// value of every identifier column of the committed datasets (ID numbers, names, mobiles,
// visit and claim ids) and of every text column tagged sensitive without a public domain (the
// diagnoses): none may appear. Values shorter than 6 bytes are skipped (they would match
// ordinary words and numbers by chance).
func TestDemoLogHoldsNoRawValue(t *testing.T) {
	dataDir := t.TempDir()
	datasets := filepath.Join("..", "..", "testdata", "datasets")
	if err := runDemo(context.Background(), &bytes.Buffer{}, datasets, dataDir, "table"); err != nil {
		t.Fatal(err)
	}
	logText, err := os.ReadFile(filepath.Join(dataDir, "provenance.log"))
	if err != nil {
		t.Fatal(err)
	}
	specs, err := filepath.Glob(filepath.Join(datasets, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, path := range specs {
		spec, err := catalog.LoadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if spec.Public {
			continue
		}
		watch := map[string]bool{}
		for name, col := range spec.Columns {
			// A declared domain is public (it is in the catalog), so its values may appear.
			if (col.Has(catalog.TagIdentifier) || col.Has(catalog.TagSensitive)) && len(col.Domain) == 0 {
				watch[name] = true
			}
		}
		rdr, err := connectors.Open(context.Background(), string(spec.Source.Kind), spec.Source.Path, connectors.Options{})
		if err != nil {
			t.Fatal(err)
		}
		for rdr.Next() {
			rec := rdr.RecordBatch()
			for i, f := range rec.Schema().Fields() {
				col, ok := rec.Column(i).(*array.String)
				if !ok || !watch[f.Name] {
					continue
				}
				for r := 0; r < col.Len(); r++ {
					v := col.Value(r)
					if col.IsNull(r) || len(v) < 6 {
						continue
					}
					checked++
					if bytes.Contains(logText, []byte(v)) {
						t.Fatalf("the provenance log holds a raw value of %s.%s", spec.Name, f.Name)
					}
				}
			}
		}
		if err := rdr.Err(); err != nil {
			t.Fatal(err)
		}
		rdr.Release()
	}
	if checked < 100000 {
		t.Fatalf("only %d raw values were checked; the scan is not looking at the data", checked)
	}
	if !strings.Contains(string(logText), "pre_noise_digest") {
		t.Fatal("the log has no keyed pre-noise digest: is the scan reading the right log?")
	}
}
