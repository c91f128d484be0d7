package synth

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"github.com/c1b99f93/cleanroom/policy/pii"
)

// ---- reading helpers ----

// table is a parquet file read back into Go slices, column by column.
type table struct {
	rows  int
	cols  map[string]any // []string, []int32 (date32), []float64, []bool, []int64
	names []string
}

func readTable(t testing.TB, path string) *table {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tbl, err := pqarrow.ReadTable(context.Background(), f, parquet.NewReaderProperties(memory.DefaultAllocator),
		pqarrow.ArrowReadProperties{BatchSize: 1 << 16}, memory.DefaultAllocator)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	defer tbl.Release()
	out := &table{rows: int(tbl.NumRows()), cols: map[string]any{}}
	for i := 0; i < int(tbl.NumCols()); i++ {
		col := tbl.Column(i)
		name := col.Name()
		out.names = append(out.names, name)
		switch col.DataType().ID() {
		case arrow.STRING:
			var v []string
			for _, c := range col.Data().Chunks() {
				a := c.(*array.String)
				for j := 0; j < a.Len(); j++ {
					if a.IsNull(j) {
						t.Fatalf("%s.%s: unexpected null", path, name)
					}
					v = append(v, a.Value(j))
				}
			}
			out.cols[name] = v
		case arrow.DATE32:
			var v []int32
			for _, c := range col.Data().Chunks() {
				a := c.(*array.Date32)
				for j := 0; j < a.Len(); j++ {
					v = append(v, int32(a.Value(j)))
				}
			}
			out.cols[name] = v
		case arrow.FLOAT64:
			var v []float64
			for _, c := range col.Data().Chunks() {
				v = append(v, c.(*array.Float64).Float64Values()...)
			}
			out.cols[name] = v
		case arrow.INT64:
			var v []int64
			for _, c := range col.Data().Chunks() {
				v = append(v, c.(*array.Int64).Int64Values()...)
			}
			out.cols[name] = v
		case arrow.BOOL:
			var v []bool
			for _, c := range col.Data().Chunks() {
				a := c.(*array.Boolean)
				for j := 0; j < a.Len(); j++ {
					v = append(v, a.Value(j))
				}
			}
			out.cols[name] = v
		default:
			t.Fatalf("%s.%s: unexpected type %s", path, name, col.DataType())
		}
	}
	return out
}

func (tb *table) str(t testing.TB, name string) []string {
	t.Helper()
	v, ok := tb.cols[name].([]string)
	if !ok {
		t.Fatalf("column %s missing or not utf8", name)
	}
	return v
}

func (tb *table) date(t testing.TB, name string) []int32 {
	t.Helper()
	v, ok := tb.cols[name].([]int32)
	if !ok {
		t.Fatalf("column %s missing or not date32", name)
	}
	return v
}

func (tb *table) f64(t testing.TB, name string) []float64 {
	t.Helper()
	v, ok := tb.cols[name].([]float64)
	if !ok {
		t.Fatalf("column %s missing or not float64", name)
	}
	return v
}

// ---- a shared 10k-person run ----

var (
	sharedOnce   sync.Once
	sharedDir    string
	sharedCounts map[string]int64
	sharedErr    error
)

const sharedPersons = 10000

func shared(t *testing.T) (string, map[string]int64) {
	t.Helper()
	sharedOnce.Do(func() {
		dir, err := os.MkdirTemp("", "synth-shared-")
		if err != nil {
			sharedErr = err
			return
		}
		sharedDir = dir
		sharedCounts, sharedErr = Generate(context.Background(), Options{Persons: sharedPersons, Seed: 1, OutDir: dir, CSV: true})
	})
	if sharedErr != nil {
		t.Fatal(sharedErr)
	}
	return sharedDir, sharedCounts
}

func TestMain(m *testing.M) {
	code := m.Run()
	if sharedDir != "" {
		os.RemoveAll(sharedDir)
	}
	os.Exit(code)
}

// ---- tests ----

func TestDeterministic(t *testing.T) {
	ctx := context.Background()
	a, b, c, d := t.TempDir(), t.TempDir(), t.TempDir(), t.TempDir()
	opt := Options{Persons: 3000, Seed: 42, CSV: true}
	for _, dir := range []string{a, b} {
		o := opt
		o.OutDir = dir
		if _, err := Generate(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	small := opt
	small.OutDir, small.BatchRows = c, 1000
	if _, err := Generate(ctx, small); err != nil {
		t.Fatal(err)
	}
	other := opt
	other.OutDir, other.Seed = d, 43
	if _, err := Generate(ctx, other); err != nil {
		t.Fatal(err)
	}
	for _, name := range Datasets {
		for _, ext := range []string{".parquet", ".csv"} {
			fa := mustRead(t, filepath.Join(a, name+ext))
			if !bytes.Equal(fa, mustRead(t, filepath.Join(b, name+ext))) {
				t.Errorf("%s%s differs between two identical runs", name, ext)
			}
			if bytes.Equal(fa, mustRead(t, filepath.Join(d, name+ext))) {
				t.Errorf("%s%s identical for different seeds", name, ext)
			}
		}
		// The batch size changes page layout, never the rows.
		if !bytes.Equal(mustRead(t, filepath.Join(a, name+".csv")), mustRead(t, filepath.Join(c, name+".csv"))) {
			t.Errorf("%s.csv differs with BatchRows=1000", name)
		}
	}
	entries, _ := os.ReadDir(a)
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".tmp") {
			t.Errorf("temporary file left behind: %s", e.Name())
		}
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestOptionsRejected(t *testing.T) {
	ctx := context.Background()
	for _, o := range []Options{
		{Persons: 0, OutDir: t.TempDir()},
		{Persons: -1, OutDir: t.TempDir()},
		{Persons: 10},
		{Persons: 10, OutDir: t.TempDir(), BatchRows: -5},
	} {
		if _, err := Generate(ctx, o); err == nil {
			t.Errorf("Generate(%+v) succeeded", o)
		}
	}
}

func TestCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	dir := t.TempDir()
	if _, err := Generate(ctx, Options{Persons: 5000, Seed: 1, OutDir: dir}); err == nil {
		t.Fatal("Generate with a cancelled context succeeded")
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		t.Errorf("cancelled run left %s", e.Name())
	}
}

func TestTinyScale(t *testing.T) {
	dir := t.TempDir()
	counts, err := Generate(context.Background(), Options{Persons: 1, Seed: 3, OutDir: dir, CSV: true})
	if err != nil {
		t.Fatal(err)
	}
	if counts["residents"] != 1 || counts["enterprises"] != 1 {
		t.Fatalf("counts = %v", counts)
	}
	for _, name := range Datasets {
		tb := readTable(t, filepath.Join(dir, name+".parquet"))
		if int64(tb.rows) != counts[name] {
			t.Errorf("%s: %d rows read, %d reported", name, tb.rows, counts[name])
		}
	}
}

func TestResidents(t *testing.T) {
	dir, counts := shared(t)
	tb := readTable(t, filepath.Join(dir, "residents.parquet"))
	if tb.rows != sharedPersons || counts["residents"] != sharedPersons {
		t.Fatalf("residents rows = %d (reported %d), want %d", tb.rows, counts["residents"], sharedPersons)
	}
	ids, gender, birth := tb.str(t, "person_id"), tb.str(t, "gender"), tb.date(t, "birth_date")
	district, band, income := tb.str(t, "district"), tb.str(t, "age_band"), tb.str(t, "income_band")
	mobile, name := tb.str(t, "mobile"), tb.str(t, "name")
	seenID, seenMobile := map[string]bool{}, map[string]bool{}
	perDistrict := map[string]int{}
	perBand := map[string]int{}
	for i, id := range ids {
		if !pii.ValidResidentID(id) {
			t.Fatalf("row %d: invalid person_id %q", i, id)
		}
		if seenID[id] {
			t.Fatalf("row %d: duplicate person_id %q", i, id)
		}
		seenID[id] = true
		if id[:6] != district[i] || DistrictName(district[i]) == "" {
			t.Fatalf("row %d: person_id %s region vs district %s", i, id, district[i])
		}
		bc := civilFromDays(birth[i])
		if want := fmt.Sprintf("%04d%02d%02d", bc.y, bc.m, bc.d); id[6:14] != want {
			t.Fatalf("row %d: person_id %s birth digits vs birth_date %s", i, id, want)
		}
		odd := (id[16]-'0')%2 == 1
		if (gender[i] == "M") != odd || (gender[i] != "M" && gender[i] != "F") {
			t.Fatalf("row %d: person_id %s sequence parity vs gender %s", i, id, gender[i])
		}
		if want := AgeBands[AgeBand(ageAt(bc, ReferenceDate))]; band[i] != want {
			t.Fatalf("row %d: age_band %s, want %s for birth %v", i, band[i], want, bc)
		}
		if !slices.Contains(IncomeBands, income[i]) {
			t.Fatalf("row %d: income_band %q", i, income[i])
		}
		if !pii.ValidMobile(mobile[i]) || seenMobile[mobile[i]] {
			t.Fatalf("row %d: mobile %q invalid or duplicate", i, mobile[i])
		}
		seenMobile[mobile[i]] = true
		if n := len([]rune(name[i])); n < 2 || n > 4 {
			t.Fatalf("row %d: name %q", i, name[i])
		}
		perDistrict[district[i]]++
		perBand[band[i]]++
	}
	// Urban districts are bigger than rural counties.
	if perDistrict["530111"] < 5*perDistrict["530124"] {
		t.Errorf("district skew too weak: 官渡 %d vs 富民 %d", perDistrict["530111"], perDistrict["530124"])
	}
	for _, b := range AgeBands {
		if perBand[b] < sharedPersons/20 {
			t.Errorf("age band %s has only %d persons", b, perBand[b])
		}
	}
	t.Logf("persons per district: %v; per age band: %v", perDistrict, perBand)
}

func TestVisitsAndClaims(t *testing.T) {
	dir, counts := shared(t)
	res := readTable(t, filepath.Join(dir, "residents.parquet"))
	type resident struct {
		district string
		birth    civilDate
	}
	people := map[string]resident{}
	for i, id := range res.str(t, "person_id") {
		people[id] = resident{res.str(t, "district")[i], civilFromDays(res.date(t, "birth_date")[i])}
	}

	vt := readTable(t, filepath.Join(dir, "medical_visits.parquet"))
	if int64(vt.rows) != counts["medical_visits"] {
		t.Fatalf("visits: %d rows read, %d reported", vt.rows, counts["medical_visits"])
	}
	vid, pid, hosp := vt.str(t, "visit_id"), vt.str(t, "person_id"), vt.str(t, "hospital_id")
	vdate, dx, chap := vt.date(t, "visit_date"), vt.str(t, "diagnosis"), vt.str(t, "diagnosis_chapter")
	cost, inpatient := vt.f64(t, "cost"), vt.cols["inpatient"].([]bool)
	vdist, vband := vt.str(t, "district"), vt.str(t, "age_band")
	from, to := VisitsFrom.days(), VisitsTo.days()
	perPerson := map[string]int{}
	visitIndex := map[string]int{}
	hospitals := map[string]bool{}
	var inCosts, outCosts []float64
	over50k := 0
	contiguous := 0
	for i := range vid {
		if len(vid[i]) != 11 || vid[i][0] != 'V' {
			t.Fatalf("row %d: visit_id %q", i, vid[i])
		}
		if _, dup := visitIndex[vid[i]]; dup {
			t.Fatalf("duplicate visit_id %s", vid[i])
		}
		visitIndex[vid[i]] = i
		p, ok := people[pid[i]]
		if !ok {
			t.Fatalf("row %d: person_id %s not in residents", i, pid[i])
		}
		perPerson[pid[i]]++
		if i > 0 && pid[i] == pid[i-1] {
			contiguous++
		}
		if vdist[i] != p.district {
			t.Fatalf("row %d: district %s, resident's %s", i, vdist[i], p.district)
		}
		d := civilFromDays(vdate[i])
		if vdate[i] < from || vdate[i] > to || vdate[i] < p.birth.days() {
			t.Fatalf("row %d: visit_date %v out of range (birth %v)", i, d, p.birth)
		}
		if want := AgeBands[AgeBand(ageAt(p.birth, d))]; vband[i] != want {
			t.Fatalf("row %d: age_band %s, want %s at the visit", i, vband[i], want)
		}
		if chap[i] != dx[i][:1] || !slices.Contains(DiagnosisChapters, chap[i]) {
			t.Fatalf("row %d: chapter %s for diagnosis %s", i, chap[i], dx[i])
		}
		if !(cost[i] > 0) || math.Abs(math.Round(cost[i]*100)-cost[i]*100) > 1e-6 {
			t.Fatalf("row %d: cost %v", i, cost[i])
		}
		if cost[i] > 50000 {
			over50k++
		}
		if inpatient[i] {
			inCosts = append(inCosts, cost[i])
		} else {
			outCosts = append(outCosts, cost[i])
		}
		if !strings.HasPrefix(hosp[i], "H5301") || len(hosp[i]) != 10 || hosp[i][7] != '-' {
			t.Fatalf("row %d: hospital_id %q", i, hosp[i])
		}
		hospitals[hosp[i]] = true
	}
	nv := float64(vt.rows)
	mean := nv / sharedPersons
	maxV, low := 0, 0
	for _, n := range perPerson {
		maxV = max(maxV, n)
	}
	low = sharedPersons - len(perPerson) // persons without visits
	for _, n := range perPerson {
		if n <= 2 {
			low++
		}
	}
	sort.Float64s(inCosts)
	sort.Float64s(outCosts)
	t.Logf("visits %d (%.2f per person), max per person %d, persons with 0-2 visits %.1f%%, inpatient %.1f%%, "+
		"median cost out %.0f / in %.0f, costs > 50000: %d, hospitals %d, adjacent same-person rows %d",
		vt.rows, mean, maxV, 100*float64(low)/sharedPersons, 100*float64(len(inCosts))/nv,
		outCosts[len(outCosts)/2], inCosts[len(inCosts)/2], over50k, len(hospitals), contiguous)
	if mean < 4 || mean > 6 {
		t.Errorf("mean visits per person %.2f, want about 5", mean)
	}
	if maxV < 50 {
		t.Errorf("max visits per person %d, want >= 50", maxV)
	}
	if float64(low) < 0.35*sharedPersons {
		t.Errorf("only %d persons with 0-2 visits", low)
	}
	if over50k == 0 || float64(over50k) > 0.02*nv {
		t.Errorf("%d visits cost over 50000, want a rare but present tail", over50k)
	}
	if inCosts[len(inCosts)/2] < 10*outCosts[len(outCosts)/2] {
		t.Errorf("inpatient median %.0f not much above outpatient %.0f", inCosts[len(inCosts)/2], outCosts[len(outCosts)/2])
	}
	if len(hospitals) < 50 || len(hospitals) > 70 {
		t.Errorf("%d hospitals, want about 60", len(hospitals))
	}
	if float64(contiguous) > 0.05*nv {
		t.Errorf("%d adjacent rows of the same person: visits not shuffled", contiguous)
	}

	ct := readTable(t, filepath.Join(dir, "insurance_claims.parquet"))
	if int64(ct.rows) != counts["insurance_claims"] {
		t.Fatalf("claims: %d rows read, %d reported", ct.rows, counts["insurance_claims"])
	}
	cid, cpid, cvid := ct.str(t, "claim_id"), ct.str(t, "person_id"), ct.str(t, "visit_id")
	amount, reimb, cdate := ct.f64(t, "amount"), ct.f64(t, "reimbursed"), ct.date(t, "claim_date")
	cdist, cband := ct.str(t, "district"), ct.str(t, "age_band")
	seenClaim, seenVisit := map[string]bool{}, map[string]bool{}
	for i := range cid {
		if len(cid[i]) != 11 || cid[i][0] != 'C' || seenClaim[cid[i]] {
			t.Fatalf("row %d: claim_id %q bad or duplicate", i, cid[i])
		}
		seenClaim[cid[i]] = true
		v, ok := visitIndex[cvid[i]]
		if !ok || seenVisit[cvid[i]] {
			t.Fatalf("row %d: visit_id %s unknown or claimed twice", i, cvid[i])
		}
		seenVisit[cvid[i]] = true
		if cpid[i] != pid[v] || cdist[i] != vdist[v] || cband[i] != vband[v] {
			t.Fatalf("row %d: claim does not match its visit", i)
		}
		if !(amount[i] > 0) || amount[i] > cost[v] || reimb[i] < 0 || reimb[i] > amount[i] {
			t.Fatalf("row %d: amount %v reimbursed %v cost %v", i, amount[i], reimb[i], cost[v])
		}
		if cdate[i] < vdate[v] || cdate[i] > vdate[v]+60 {
			t.Fatalf("row %d: claim_date before visit or too late", i)
		}
	}
	ratio := nv / float64(ct.rows)
	t.Logf("claims %d (one per %.2f visits)", ct.rows, ratio)
	if ratio < 1.3 || ratio > 1.7 {
		t.Errorf("one claim per %.2f visits, want about 1.5", ratio)
	}
}

func TestEnterprises(t *testing.T) {
	dir, counts := shared(t)
	tb := readTable(t, filepath.Join(dir, "enterprises.parquet"))
	if want := sharedPersons / PersonsPerEnterprise; tb.rows != want || counts["enterprises"] != int64(want) {
		t.Fatalf("enterprises rows = %d, want %d", tb.rows, want)
	}
	uscc, name, industry := tb.str(t, "uscc"), tb.str(t, "name"), tb.str(t, "industry")
	capital, district, employees := tb.f64(t, "registered_capital"), tb.str(t, "district"), tb.cols["employees"].([]int64)
	seen := map[string]bool{}
	for i, u := range uscc {
		if !pii.ValidUSCC(u) || seen[u] {
			t.Fatalf("row %d: uscc %q invalid or duplicate", i, u)
		}
		seen[u] = true
		if u[0] != '9' || !strings.ContainsRune("123", rune(u[1])) || u[2:8] != district[i] {
			t.Fatalf("row %d: uscc %s vs district %s", i, u, district[i])
		}
		if oc, err := pii.OrgCodeCheckChar(u[8:16]); err != nil || oc != u[16] {
			t.Fatalf("row %d: uscc %s organisation code check", i, u)
		}
		if !slices.Contains(Industries, industry[i]) || name[i] == "" || DistrictName(district[i]) == "" {
			t.Fatalf("row %d: industry %q name %q district %q", i, industry[i], name[i], district[i])
		}
		if !(capital[i] > 0) || employees[i] < 1 {
			t.Fatalf("row %d: capital %v employees %d", i, capital[i], employees[i])
		}
	}
}

func TestParquetLayout(t *testing.T) {
	dir, _ := shared(t)
	for _, name := range Datasets {
		r, err := file.OpenParquetFile(filepath.Join(dir, name+".parquet"), false)
		if err != nil {
			t.Fatal(err)
		}
		md := r.MetaData()
		if got := md.GetCreatedBy(); got != "cleanroom synth" {
			t.Errorf("%s: created_by %q", name, got)
		}
		for g := 0; g < r.NumRowGroups(); g++ {
			rg := md.RowGroup(g)
			if rg.NumRows() > RowGroupRows {
				t.Errorf("%s: row group %d has %d rows", name, g, rg.NumRows())
			}
			for c := 0; c < rg.NumColumns(); c++ {
				cc, err := rg.ColumnChunk(c)
				if err != nil {
					t.Fatal(err)
				}
				if cc.Compression() != compress.Codecs.Zstd {
					t.Errorf("%s: column %d compressed with %v", name, c, cc.Compression())
				}
			}
		}
		// Small datasets fit one row group whatever the batch size.
		if md.NumRows <= RowGroupRows && r.NumRowGroups() != 1 {
			t.Errorf("%s: %d rows in %d row groups", name, md.NumRows, r.NumRowGroups())
		}
		r.Close()
	}
}

func TestCSV(t *testing.T) {
	dir, counts := shared(t)
	for _, name := range Datasets {
		data := mustRead(t, filepath.Join(dir, name+".csv"))
		lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
		if int64(len(lines)-1) != counts[name] {
			t.Errorf("%s.csv: %d data lines, want %d", name, len(lines)-1, counts[name])
		}
		if strings.Contains(string(data), "e+") {
			t.Errorf("%s.csv: exponent notation in numbers", name)
		}
	}
	head := strings.SplitN(string(mustRead(t, filepath.Join(dir, "medical_visits.csv"))), "\n", 3)
	if head[0] != "visit_id,person_id,hospital_id,visit_date,diagnosis,diagnosis_chapter,cost,inpatient,district,age_band" {
		t.Errorf("header %q", head[0])
	}
	f := strings.Split(head[1], ",")
	if len(f[3]) != 10 || f[3][4] != '-' || (f[7] != "true" && f[7] != "false") {
		t.Errorf("first row %q: date or bool format", head[1])
	}
}

func TestPublicLists(t *testing.T) {
	if len(Districts) != 14 || len(DistrictNames) != len(Districts) || len(districtPop) != len(Districts) ||
		len(districtHospitals) != len(Districts) || len(districtUrban) != len(Districts) ||
		len(districtEnterprise) != len(Districts) || len(districtShort) != len(Districts) {
		t.Fatal("district tables disagree in length")
	}
	if DistrictName("530102") != "五华区" || DistrictName("530181") != "安宁市" || DistrictName("110105") != "" {
		t.Error("DistrictName")
	}
	if len(industryWeights) != len(Industries) || len(industryWord) != len(Industries) || len(individualWord) != len(Industries) {
		t.Fatal("industry tables disagree in length")
	}
	if len(surnames) != len(surnameWeights) {
		t.Fatalf("%d surnames, %d weights", len(surnames), len(surnameWeights))
	}
	codes := make([]string, len(diagnoses))
	for i, d := range diagnoses {
		codes[i] = d.code
	}
	if !slices.IsSorted(codes) {
		t.Error("diagnoses must be sorted by code (DiagnosisChapters relies on it)")
	}
	if !slices.IsSorted(DiagnosisChapters) || len(slices.Compact(slices.Clone(DiagnosisChapters))) != len(DiagnosisChapters) {
		t.Errorf("DiagnosisChapters %v", DiagnosisChapters)
	}
	for _, c := range chronicCodes {
		if !slices.Contains(codes, c) {
			t.Errorf("chronic code %s not a diagnosis", c)
		}
	}
	for age, want := range map[int]string{0: "0-17", 17: "0-17", 18: "18-34", 34: "18-34", 35: "35-49", 64: "50-64", 65: "65+", 104: "65+"} {
		if got := AgeBands[AgeBand(age)]; got != want {
			t.Errorf("AgeBand(%d) = %s, want %s", age, got, want)
		}
	}
}

func TestCalendar(t *testing.T) {
	if d := daysFromCivil(1970, 1, 1); d != 0 {
		t.Fatalf("epoch = %d", d)
	}
	if d := ReferenceDate.days(); d != 20454 {
		t.Fatalf("2026-01-01 = %d, want 20454", d)
	}
	for z := int32(-25000); z < 30000; z++ {
		c := civilFromDays(z)
		if daysFromCivil(c.y, c.m, c.d) != z || c.d < 1 || c.d > pii.DaysInMonth(c.y, c.m) {
			t.Fatalf("round trip of day %d: %v", z, c)
		}
	}
	if ageAt(civilDate{2000, 3, 1}, civilDate{2026, 2, 28}) != 25 || ageAt(civilDate{2000, 3, 1}, civilDate{2026, 3, 1}) != 26 {
		t.Error("ageAt")
	}
}

func TestPermutation(t *testing.T) {
	for _, n := range []uint64{1, 2, 7, 1000, 4097} {
		p := newPermutation(n, 99)
		seen := make([]bool, n)
		for i := uint64(0); i < n; i++ {
			x := p.apply(i)
			if x >= n || seen[x] {
				t.Fatalf("n=%d: apply(%d) = %d repeated or out of range", n, i, x)
			}
			seen[x] = true
		}
	}
}

func TestCancelledMidRun(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	dir := t.TempDir()
	done := make(chan error, 1)
	go func() {
		_, err := Generate(ctx, Options{Persons: 300000, Seed: 1, OutDir: dir, BatchRows: 4096})
		done <- err
	}()
	time.Sleep(100 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Generate finished despite cancellation")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Generate did not return after cancellation")
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".tmp") {
			t.Errorf("cancelled run left %s", e.Name())
		}
	}
}
