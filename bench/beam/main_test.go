package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/google/differential-privacy/go/v3/noise"
	"github.com/xitongsys/parquet-go-source/local"
	"github.com/xitongsys/parquet-go/writer"
)

func TestMain(m *testing.M) {
	// Prism's loopback mode leaves an empty beamloopbackworker-* file in the temporary directory
	// on every run (as mainErr does for the program, give it one to remove).
	tmp, err := os.MkdirTemp("", "beam-bench-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Setenv("TMPDIR", tmp)
	beam.Init() // prism (the universal runner) refuses to run without it
	code := m.Run()
	os.RemoveAll(tmp)
	os.Exit(code)
}

// fixtureRow is one row of the controlled fixture: the columns of medical_visits the program
// reads, a diagnosis text with a comma (so the CSV reader's quoted path runs) and a nullable cost.
type fixtureRow struct {
	VisitID   string   `parquet:"name=visit_id, type=BYTE_ARRAY, convertedtype=UTF8"`
	PersonID  string   `parquet:"name=person_id, type=BYTE_ARRAY, convertedtype=UTF8"`
	Diagnosis string   `parquet:"name=diagnosis, type=BYTE_ARRAY, convertedtype=UTF8"`
	Cost      *float64 `parquet:"name=cost, type=DOUBLE, repetitiontype=OPTIONAL"`
	District  string   `parquet:"name=district, type=BYTE_ARRAY, convertedtype=UTF8"`
}

// Fixture bounds: at most 5 rows per unit and partition, values in [0, 50000], one partition
// per unit. The fixture gives every unit a single partition so that the only random part of
// Privacy on Beam's bounding is which rows of a unit a mean keeps.
const (
	fixtureUnits = 560
	fixtureMaxC  = 5
	fixtureLower = 0.0
	fixtureUpper = 50000.0
)

// publicPartitions are the released partitions: "d" has no rows (it must still be released) and
// the fixture's "z" rows are outside the list (they must not be).
var publicPartitions = []string{"a", "b", "c", "d"}

// writeFixture writes the same ~2k rows (fixed seed) as CSV and Parquet into dir.
func writeFixture(t *testing.T, dir string) (csvPath, parquetPath string, rows []fixtureRow) {
	t.Helper()
	r := rand.New(rand.NewPCG(19, 2))
	parts := []string{"a", "b", "c", "z"}
	for u := range fixtureUnits {
		part := parts[r.IntN(len(parts))]
		for range 1 + r.IntN(7) { // 1..7 rows: units with more than 5 are bounded
			row := fixtureRow{
				VisitID: fmt.Sprintf("V%06d", len(rows)), PersonID: fmt.Sprintf("P%05d", u),
				Diagnosis: "J06.9, acute upper respiratory infection", District: part,
			}
			if r.IntN(20) > 0 { // 5% NULL costs
				v := math.Round(r.Float64()*60000*100) / 100 // about 1 in 6 above the upper bound
				row.Cost = &v
			}
			rows = append(rows, row)
		}
	}
	csvPath, parquetPath = filepath.Join(dir, "visits.csv"), filepath.Join(dir, "visits.parquet")
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	_ = w.Write([]string{"visit_id", "person_id", "diagnosis", "cost", "district"})
	for _, row := range rows {
		cost := ""
		if row.Cost != nil {
			cost = strconv.FormatFloat(*row.Cost, 'f', -1, 64)
		}
		_ = w.Write([]string{row.VisitID, row.PersonID, row.Diagnosis, cost, row.District})
	}
	w.Flush()
	if err := os.WriteFile(csvPath, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	fw, err := local.NewLocalFileWriter(parquetPath)
	if err != nil {
		t.Fatal(err)
	}
	pw, err := writer.NewParquetWriter(fw, new(fixtureRow), 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, row := range rows {
		if err := pw.Write(row); err != nil {
			t.Fatal(err)
		}
	}
	if err := pw.WriteStop(); err != nil {
		t.Fatal(err)
	}
	if err := fw.Close(); err != nil {
		t.Fatal(err)
	}
	return csvPath, parquetPath, rows
}

// band is the interval a released value must fall in.
type band struct{ lo, hi float64 }

// sigma is the noise standard deviation of one addition with the library's calibration.
func sigma(l0 int64, lInf, eps, delta float64) float64 {
	if delta == 0 {
		return math.Sqrt2 * float64(l0) * lInf / eps // Laplace b·√2, b = L0·L∞/ε
	}
	return noise.SigmaForGaussian(l0, lInf, eps, delta)
}

// expectedBands computes, from the rows, the interval each released value must lie in: the
// bounded, noise-free value (a range for the mean, whose kept rows are random) widened by 10σ of
// each noise addition. A Gaussian exceeds 10σ with probability about 2e-23 and a Laplace about
// 7e-7, per partition, so the test does not flake; a wrong bound, sensitivity or partition list
// moves a value far outside.
func expectedBands(rows []fixtureRow, workload string, eps, delta float64) map[string]band {
	type unitPart struct{ unit, part string }
	vals := map[unitPart][]float64{}
	counts := map[unitPart]int{}
	for _, r := range rows {
		k := unitPart{r.PersonID, r.District}
		counts[k]++
		if r.Cost != nil {
			vals[k] = append(vals[k], *r.Cost)
		}
	}
	clamp := func(v, lo, hi float64) float64 { return math.Max(lo, math.Min(hi, v)) }
	n := float64(fixtureMaxC)
	out := map[string]band{}
	for _, p := range publicPartitions {
		var b band
		switch workload {
		case workloadCount:
			var c float64
			for k, cnt := range counts {
				if k.part == p {
					c += math.Min(float64(cnt), n)
				}
			}
			w := 10 * sigma(1, n, eps, delta)
			b = band{math.Max(0, c-w), c + w}
		case workloadSum: // a unit's total in the partition, clamped to n·[lower, upper]
			var s float64
			for k, vs := range vals {
				if k.part == p {
					var tot float64
					for _, v := range vs {
						tot += v
					}
					s += clamp(tot, n*fixtureLower, n*fixtureUpper)
				}
			}
			w := 10 * sigma(1, n*fixtureUpper, eps, delta)
			b = band{s - w, s + w}
		case workloadMean: // up to n values per unit, each clamped; which ones is random
			mid := (fixtureLower + fixtureUpper) / 2
			var cnt, sLo, sHi float64
			for k, vs := range vals {
				if k.part != p {
					continue
				}
				cs := make([]float64, len(vs))
				for i, v := range vs {
					cs[i] = clamp(v, fixtureLower, fixtureUpper) - mid
				}
				slices.Sort(cs)
				keep := min(len(cs), fixtureMaxC)
				cnt += float64(keep)
				for i := range keep {
					sLo += cs[i]
					sHi += cs[len(cs)-1-i]
				}
			}
			wc := 10 * sigma(1, n, eps/2, delta/2)
			ws := 10 * sigma(1, n*(fixtureUpper-fixtureLower)/2, eps/2, delta/2)
			b = band{math.Inf(1), math.Inf(-1)}
			for _, s := range []float64{sLo - ws, sHi + ws} {
				for _, c := range []float64{cnt - wc, cnt + wc} {
					m := clamp(mid+s/math.Max(1, c), fixtureLower, fixtureUpper)
					b = band{math.Min(b.lo, m), math.Max(b.hi, m)}
				}
			}
		}
		out[p] = b
	}
	return out
}

func TestWorkloadsReleaseThePublicPartitionsWithinTheNoiseBand(t *testing.T) {
	csvPath, parquetPath, rows := writeFixture(t, t.TempDir())
	for _, tc := range []struct {
		workload, reader, runner string
		eps, delta               float64
	}{
		{workloadCount, readerCSV, runnerDirect, 1, 1e-6},
		{workloadCount, readerParquet, runnerDirect, 1, 0},
		{workloadCount, readerParquet, runnerPrism, 1, 1e-6},
		{workloadSum, readerCSV, runnerDirect, 1, 0},
		{workloadSum, readerParquet, runnerDirect, 1, 1e-6},
		{workloadSum, readerCSV, runnerPrism, 1, 0},
		{workloadMean, readerCSV, runnerDirect, 1, 0},
		{workloadMean, readerParquet, runnerDirect, 1, 1e-6},
		{workloadMean, readerParquet, runnerPrism, 4, 0},
	} {
		name := fmt.Sprintf("%s/%s/%s/eps=%g/delta=%g", tc.workload, tc.reader, tc.runner, tc.eps, tc.delta)
		t.Run(name, func(t *testing.T) {
			c := config{
				csvPath: csvPath, parquetPath: parquetPath, reader: tc.reader, runner: tc.runner,
				workload: tc.workload, epsilon: tc.eps, delta: tc.delta,
				maxPartitions: 1, maxContributions: fixtureMaxC, lower: fixtureLower, upper: fixtureUpper,
				partitionColumn: "district", valueColumn: "cost", unitColumn: "person_id",
				partitions: publicPartitions, reps: 1,
			}
			if err := c.validate(); err != nil {
				t.Fatal(err)
			}
			in, err := inspect(c)
			if err != nil {
				t.Fatal(err)
			}
			res, err := runOnce(context.Background(), c, in)
			if err != nil {
				t.Fatal(err)
			}
			if res.rows != int64(len(rows)) {
				t.Errorf("rows = %d, want %d", res.rows, len(rows))
			}
			if !(res.seconds > 0) {
				t.Errorf("seconds = %v, want > 0", res.seconds)
			}
			got := slices.Sorted(func(yield func(string) bool) {
				for p := range res.values {
					if !yield(p) {
						return
					}
				}
			})
			if !slices.Equal(got, publicPartitions) {
				t.Fatalf("released partitions %v, want exactly %v", got, publicPartitions)
			}
			for p, b := range expectedBands(rows, tc.workload, tc.eps, tc.delta) {
				if v := res.values[p]; v < b.lo || v > b.hi {
					t.Errorf("partition %s: released %.2f outside [%.2f, %.2f]", p, v, b.lo, b.hi)
				}
			}
		})
	}
}

// TestReadsTheGeneratorsFiles runs the program end to end on the project generator's own files
// (cleanroom testdata gen --scale 400 --seed 1 --csv, medical_visits only): 1939 rows, the 14
// districts released, from both readers.
func TestReadsTheGeneratorsFiles(t *testing.T) {
	districts := "530102,530103,530111,530112,530113,530114,530115,530124,530125,530126,530127,530128,530129,530181"
	for _, reader := range []string{readerCSV, readerParquet} {
		t.Run(reader, func(t *testing.T) {
			c, err := parseConfig([]string{
				"--parquet", "testdata/synth-400/medical_visits.parquet", "--csv", "testdata/synth-400/medical_visits.csv",
				"--reader", reader, "--workload", "mean", "--epsilon", "1", "--delta", "1e-6",
				"--max-partitions", "1", "--max-contributions", "5", "--min", "0", "--max", "50000",
				"--partition-column", "district", "--value-column", "cost", "--unit-column", "person_id",
				"--partitions", districts, "--reps", "2",
			}, os.Stderr)
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			if err := run(context.Background(), c, &out); err != nil {
				t.Fatal(err)
			}
			dec := json.NewDecoder(&out)
			dec.DisallowUnknownFields()
			for i := range 2 {
				var l line
				if err := dec.Decode(&l); err != nil {
					t.Fatalf("line %d: %v", i, err)
				}
				if l.Workload != "mean" || l.Rows != 1939 || l.Partitions != 14 || !(l.Seconds > 0) {
					t.Errorf("line %d = %+v, want mean, 1939 rows, 14 partitions, seconds > 0", i, l)
				}
			}
			if dec.More() {
				t.Error("more than --reps lines")
			}
		})
	}
}

func TestBadFlagsAreRefusedWithAClearError(t *testing.T) {
	dir := t.TempDir()
	csvPath, parquetPath, _ := writeFixture(t, dir)
	ok := []string{"--csv", csvPath, "--parquet", parquetPath, "--workload", "sum", "--min", "0", "--max", "10",
		"--partition-column", "district", "--value-column", "cost", "--unit-column", "person_id", "--partitions", "a,b"}
	with := func(extra ...string) []string { return append(slices.Clone(ok), extra...) }
	for _, tc := range []struct {
		name string
		args []string
		want string // in the message
	}{
		{"unknown workload", with("--workload", "median"), `unknown --workload "median"`},
		{"no workload", []string{"--csv", csvPath, "--partitions", "a"}, "--workload is required"},
		{"missing file", with("--reader", "csv", "--csv", filepath.Join(dir, "nope.csv")), "no such file"},
		{"directory", with("--reader", "parquet", "--parquet", dir), "not a regular file"},
		{"reader without its file", []string{"--csv", csvPath, "--reader", "parquet", "--workload", "count"}, "--reader parquet needs --parquet"},
		{"no file", []string{"--workload", "count"}, "give --parquet or --csv"},
		{"min above max", with("--min", "5", "--max", "1"), "--min 5 is greater than --max 1"},
		{"infinite bound", with("--max", "+Inf"), "finite"},
		{"zero epsilon", with("--epsilon", "0"), "--epsilon must be positive"},
		{"delta one", with("--delta", "1"), "--delta must be in [0, 1)"},
		{"zero partitions per unit", with("--max-partitions", "0"), "--max-partitions must be at least 1"},
		{"zero contributions", with("--max-contributions", "0"), "--max-contributions must be at least 1"},
		{"sum without value column", with("--value-column", ""), "needs --value-column"},
		{"no partitions", with("--partitions", ""), "--partitions is required"},
		{"duplicate partition", with("--partitions", "a,b,a"), `lists "a" twice`},
		{"unknown runner", with("--runner", "flink"), `unknown --runner "flink"`},
		{"unknown reader", with("--reader", "orc"), `unknown --reader "orc"`},
		{"no reps", with("--reps", "0"), "--reps must be at least 1"},
		{"unknown flag", with("--bogus"), "not defined"},
		{"stray argument", with("extra"), "unexpected argument"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseConfig(tc.args, new(bytes.Buffer))
			if !errors.Is(err, errUsage) {
				t.Fatalf("err = %v, want a usage error", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %q, want it to say %q", err, tc.want)
			}
		})
	}
	if _, err := parseConfig(ok, new(bytes.Buffer)); err != nil {
		t.Fatalf("the valid command line is refused: %v", err)
	}
}

func TestMissingColumnsAreRefusedBeforeRunning(t *testing.T) {
	csvPath, parquetPath, _ := writeFixture(t, t.TempDir())
	for _, reader := range []string{readerCSV, readerParquet} {
		for _, tc := range []struct{ unit, part, value string }{
			{"patient", "district", "cost"},
			{"person_id", "region", "cost"},
			{"person_id", "district", "amount"},
		} {
			t.Run(reader+"/"+tc.unit+"/"+tc.part+"/"+tc.value, func(t *testing.T) {
				c := config{csvPath: csvPath, parquetPath: parquetPath, reader: reader, runner: runnerDirect,
					workload: workloadSum, epsilon: 1, maxPartitions: 1, maxContributions: 1, upper: 1,
					unitColumn: tc.unit, partitionColumn: tc.part, valueColumn: tc.value, partitions: []string{"a"}, reps: 1}
				if err := c.validate(); err != nil {
					t.Fatal(err)
				}
				_, err := inspect(c)
				if !errors.Is(err, errInput) || !strings.Contains(err.Error(), "no ") {
					t.Fatalf("err = %v, want a missing-column input error", err)
				}
			})
		}
	}
}

func TestAMalformedValueFailsTheRunWithoutQuotingIt(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "bad.csv")
	secret := "4111-1111"
	if err := os.WriteFile(path, []byte("person_id,district,cost\nP1,a,10\nP2,a,"+secret+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c := config{csvPath: path, reader: readerCSV, runner: runnerDirect, workload: workloadSum, epsilon: 1,
		maxPartitions: 1, maxContributions: 1, upper: 100, unitColumn: "person_id", partitionColumn: "district",
		valueColumn: "cost", partitions: []string{"a"}, reps: 1}
	if err := c.validate(); err != nil {
		t.Fatal(err)
	}
	in, err := inspect(c)
	if err != nil {
		t.Fatal(err)
	}
	_, err = runOnce(context.Background(), c, in)
	if err == nil {
		t.Fatal("a run over a non-numeric value succeeded")
	}
	if strings.Contains(err.Error(), secret) {
		t.Errorf("the error quotes the data value: %v", err)
	}
}

// csvCases seed FuzzSplitCSVLine and pin splitCSVLine.
var csvCases = []struct {
	line string
	want []string
}{
	{"a,b,c", []string{"a", "b", "c"}},
	{"a,,c\r", []string{"a", "", "c"}},
	{"", []string{""}},
	{`V1,"J06.9, acute",12.5`, []string{"V1", "J06.9, acute", "12.5"}},
	{`"say ""hi""",x`, []string{`say "hi"`, "x"}},
}

func TestSplitCSVLine(t *testing.T) {
	for _, tc := range csvCases {
		got, err := splitCSVLine(tc.line, nil)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("splitCSVLine(%q) = %q, %v; want %q", tc.line, got, err, tc.want)
		}
	}
	if _, err := splitCSVLine(`a,"open`, nil); !errors.Is(err, errInput) {
		t.Errorf("an unterminated quote gave %v, want an input error", err)
	}
}

// FuzzSplitCSVLine checks the split agrees with encoding/csv on every single-line record.
func FuzzSplitCSVLine(f *testing.F) {
	for _, tc := range csvCases {
		f.Add(tc.line)
	}
	f.Fuzz(func(t *testing.T, line string) {
		got, err := splitCSVLine(line, nil)
		line = strings.TrimSuffix(line, "\r")
		if line == "" || strings.ContainsAny(line, "\r\n") {
			return // textio never yields these; the split must only not panic
		}
		r := csv.NewReader(strings.NewReader(line))
		r.FieldsPerRecord = -1
		want, werr := r.Read()
		if werr != nil {
			if err == nil && strings.Contains(line, `"`) {
				t.Fatalf("splitCSVLine(%q) accepted what encoding/csv refuses: %v", line, werr)
			}
			return
		}
		if err != nil || !slices.Equal(got, want) {
			t.Fatalf("splitCSVLine(%q) = %q, %v; encoding/csv gives %q", line, got, err, want)
		}
	})
}

func TestTheDefaultReaderIsCSVWhenGiven(t *testing.T) {
	csvPath, parquetPath, _ := writeFixture(t, t.TempDir())
	base := []string{"--workload", "count", "--partition-column", "district", "--unit-column", "person_id", "--partitions", "a"}
	for _, tc := range []struct {
		files []string
		want  string
	}{
		{[]string{"--csv", csvPath, "--parquet", parquetPath}, readerCSV},
		{[]string{"--csv", csvPath}, readerCSV},
		{[]string{"--parquet", parquetPath}, readerParquet},
		{[]string{"--csv", csvPath, "--parquet", parquetPath, "--reader", "parquet"}, readerParquet},
	} {
		c, err := parseConfig(append(slices.Clone(base), tc.files...), new(bytes.Buffer))
		if err != nil {
			t.Fatal(err)
		}
		if c.reader != tc.want {
			t.Errorf("%v: reader %s, want %s", tc.files, c.reader, tc.want)
		}
	}
}
