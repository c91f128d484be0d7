// Package synth generates the flagship scenario's synthetic public datasets — a Kunming
// medical insurance pilot: residents (public security bureau), medical visits (health
// commission), insurance claims (medical insurance bureau) and enterprises (market
// regulation bureau) — as Arrow record batches written to Parquet and, optionally, CSV.
//
// Generation is deterministic: the same Persons and Seed give the same rows in the same order
// (math/rand/v2 PCG generators seeded from Seed, one stream per dataset; no map iteration, no
// clock), and with the same BatchRows the same bytes. It streams: each dataset is built in
// record batches and written as it goes, so memory stays bounded by a compact per-person index
// (8 bytes a person) plus a few batches, whatever the scale. Identifiers are valid by the
// national standards (policy/pii): resident IDs carry the person's district, birth date and
// gender, enterprise codes their district; both are unique, as are mobile numbers.
package synth

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"sync"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/csv"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

// Options control a generation run.
type Options struct {
	// Persons is the number of residents; visits (~5 per person), claims (~1 per 1.5 visits)
	// and enterprises (Persons/20) scale with it.
	Persons int
	// Seed selects the random streams; the same Persons and Seed give the same data.
	Seed uint64
	// OutDir receives <dataset>.parquet (and .csv); it is created if missing.
	OutDir string
	// ByProvider writes each dataset into a folder named for its provider (Providers), the
	// layout of per-organisation import roots, instead of directly into OutDir.
	ByProvider bool
	// CSV also writes <dataset>.csv with a header row, dates as YYYY-MM-DD.
	CSV bool
	// BatchRows is the Arrow record batch size; 0 means DefaultBatchRows. It changes the
	// Parquet page layout (so the bytes) but never the rows or their order.
	BatchRows int
}

// DefaultBatchRows is the record batch size used when Options.BatchRows is 0.
const DefaultBatchRows = 65536

// RowGroupRows is the Parquet row group size of every generated file.
const RowGroupRows = 1 << 20

// MaxPersons bounds Options.Persons (resident sequence numbers and identifier spaces are far
// larger; this keeps the per-person index under a few hundred MB).
const MaxPersons = 50_000_000

// ReferenceDate is the date ages are computed at in residents (2026-01-01).
var ReferenceDate = civilDate{2026, 1, 1}

// Visit dates span VisitsFrom..VisitsTo inclusive.
var (
	VisitsFrom = civilDate{2024, 1, 1}
	VisitsTo   = civilDate{2025, 12, 31}
)

// Generate writes every dataset of Datasets into opt.OutDir and returns the row count of each.
// Files are written under a temporary name and renamed when complete, so a failed or
// cancelled run leaves no partial dataset behind (earlier complete ones may remain).
func Generate(ctx context.Context, opt Options) (map[string]int64, error) {
	if opt.Persons < 1 || opt.Persons > MaxPersons {
		return nil, fmt.Errorf("synth: persons must be in 1..%d, got %d", MaxPersons, opt.Persons)
	}
	if opt.OutDir == "" {
		return nil, errors.New("synth: OutDir is required")
	}
	if opt.BatchRows == 0 {
		opt.BatchRows = DefaultBatchRows
	}
	if opt.BatchRows < 1 {
		return nil, fmt.Errorf("synth: BatchRows must be positive, got %d", opt.BatchRows)
	}
	if err := os.MkdirAll(opt.OutDir, 0o755); err != nil {
		return nil, fmt.Errorf("synth: %w", err)
	}

	people, err := newPopulation(opt.Persons, opt.Seed)
	if err != nil {
		return nil, err
	}

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		counts = map[string]int64{}
		errs   = make([]error, len(Datasets))
	)
	// run starts a producer feeding one dataset's sink through a channel, so generation and
	// Parquet encoding of each dataset proceed in parallel.
	run := func(idx int, schema *arrow.Schema, produce func(ctx context.Context, emit func(arrow.RecordBatch) error) error) chan arrow.RecordBatch {
		ch := make(chan arrow.RecordBatch, 2)
		name := Datasets[idx]
		wg.Add(1)
		go func() {
			defer wg.Done()
			n, err := writeDataset(ctx, opt, name, schema, ch)
			if err != nil {
				errs[idx] = fmt.Errorf("synth: %s: %w", name, err)
				cancel(errs[idx])
				return
			}
			mu.Lock()
			counts[name] = n
			mu.Unlock()
		}()
		if produce != nil {
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer close(ch)
				emit := func(rec arrow.RecordBatch) error { return send(ctx, ch, rec) }
				if err := produce(ctx, emit); err != nil {
					cancel(err)
				}
			}()
		}
		return ch
	}

	run(0, residentsSchema, func(ctx context.Context, emit func(arrow.RecordBatch) error) error {
		return people.residents(ctx, opt, emit)
	})
	claims := run(2, claimsSchema, nil)
	run(1, visitsSchema, func(ctx context.Context, emit func(arrow.RecordBatch) error) error {
		defer close(claims)
		return people.visits(ctx, opt, emit, func(rec arrow.RecordBatch) error { return send(ctx, claims, rec) })
	})
	run(3, enterprisesSchema, func(ctx context.Context, emit func(arrow.RecordBatch) error) error {
		return enterprises(ctx, opt, emit)
	})
	wg.Wait()

	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	if err := context.Cause(ctx); err != nil {
		return nil, err
	}
	return counts, nil
}

// send delivers rec to ch unless ctx ends first (then rec is released).
func send(ctx context.Context, ch chan<- arrow.RecordBatch, rec arrow.RecordBatch) error {
	select {
	case ch <- rec:
		return nil
	case <-ctx.Done():
		rec.Release()
		return context.Cause(ctx)
	}
}

// writeDataset drains ch into <name>.parquet (and .csv), returning the number of rows. It
// always drains ch, so producers never block after a failure.
func writeDataset(ctx context.Context, opt Options, name string, schema *arrow.Schema, ch <-chan arrow.RecordBatch) (rows int64, err error) {
	defer func() {
		for rec := range ch {
			rec.Release()
		}
	}()
	if err := os.MkdirAll(filepath.Dir(Path(opt, name, ".parquet")), 0o755); err != nil {
		return 0, err
	}
	pq, err := createFile(Path(opt, name, ".parquet"))
	if err != nil {
		return 0, err
	}
	defer pq.abort()
	props := parquet.NewWriterProperties(parquetOptions(schema)...)
	fw, err := pqarrow.NewFileWriter(schema, pq.w, props, pqarrow.NewArrowWriterProperties())
	if err != nil {
		return 0, err
	}

	var cf *atomicFile
	var cw *csv.Writer
	if opt.CSV {
		if cf, err = createFile(Path(opt, name, ".csv")); err != nil {
			return 0, err
		}
		defer cf.abort()
		cw = csv.NewWriter(cf.w, schema, csv.WithHeader(true), csv.WithNullWriter(""),
			csv.WithCustomTypeConverter(formatFloats))
	}

	for rec := range ch {
		rows += rec.NumRows()
		err = fw.WriteBuffered(rec)
		if err == nil && cw != nil {
			err = cw.Write(rec)
		}
		rec.Release()
		if err != nil {
			return 0, err
		}
	}
	if err := context.Cause(ctx); err != nil {
		return 0, err
	}
	if err := fw.Close(); err != nil {
		return 0, err
	}
	if err := pq.commit(); err != nil {
		return 0, err
	}
	if cw != nil {
		if err := cw.Flush(); err != nil {
			return 0, err
		}
		if err := cw.Error(); err != nil {
			return 0, err
		}
		if err := cf.commit(); err != nil {
			return 0, err
		}
	}
	return rows, nil
}

// zstdLevel is the zstd level of the Parquet pages: 1, the fastest, costs about 10% in
// size over the default and halves the compression time.
var zstdLevel = 1

// parquetOptions: zstd, fixed 1M-row row groups, a fixed created_by (so bytes do not depend
// on the library version string), neither dictionary nor min/max statistics for the unique
// identifier columns, no dictionary for the continuous float columns.
func parquetOptions(schema *arrow.Schema) []parquet.WriterProperty {
	opts := []parquet.WriterProperty{
		parquet.WithCompression(compress.Codecs.Zstd),
		parquet.WithCompressionLevel(zstdLevel),
		parquet.WithMaxRowGroupLength(RowGroupRows),
		parquet.WithCreatedBy("cleanroom synth"),
		parquet.WithDictionaryDefault(true),
	}
	for _, f := range schema.Fields() {
		switch f.Name {
		case "person_id", "name", "mobile", "visit_id", "claim_id", "uscc":
			opts = append(opts, parquet.WithDictionaryFor(f.Name, false), parquet.WithStatsFor(f.Name, false))
			continue
		}
		if f.Type.ID() == arrow.FLOAT64 {
			opts = append(opts, parquet.WithDictionaryFor(f.Name, false))
		}
	}
	return opts
}

// formatFloats writes float64 columns in plain decimal notation (never 1.2e+06).
func formatFloats(typ arrow.DataType, col arrow.Array) ([]string, bool) {
	arr, ok := col.(*array.Float64)
	if !ok {
		return nil, false
	}
	out := make([]string, arr.Len())
	for i := range out {
		if arr.IsValid(i) {
			out[i] = strconv.FormatFloat(arr.Value(i), 'f', -1, 64)
		}
	}
	return out, true
}

// atomicFile is written under a temporary name and renamed on commit.
type atomicFile struct {
	path string
	f    *os.File
	w    *bufio.Writer
	done bool
}

func createFile(path string) (*atomicFile, error) {
	f, err := os.Create(path + ".tmp")
	if err != nil {
		return nil, err
	}
	return &atomicFile{path: path, f: f, w: bufio.NewWriterSize(f, 1<<20)}, nil
}

func (a *atomicFile) commit() error {
	if err := a.w.Flush(); err != nil {
		return err
	}
	if err := a.f.Close(); err != nil {
		return err
	}
	a.done = true
	return os.Rename(a.path+".tmp", a.path)
}

func (a *atomicFile) abort() {
	if a.done {
		return
	}
	a.f.Close()
	os.Remove(a.path + ".tmp")
}

// ---- randomness ----

// Stream identifiers: one PCG stream per dataset (and per independent use).
const (
	streamPopulation  = 0x706f70756c617469 // "populati"
	streamResidents   = 0x7265736964656e74 // "resident"
	streamVisits      = 0x7669736974730000 // "visits"
	streamClaims      = 0x636c61696d730000 // "claims"
	streamEnterprises = 0x656e746572707269 // "enterpri"
	keyMobile         = 0x6d6f62696c650000 // "mobile"
	keyUSCC           = 0x7573636300000000 // "uscc"
)

func newRand(seed, stream uint64) *rand.Rand {
	return rand.New(rand.NewPCG(seed, stream))
}

// splitmix64 is a strong 64-bit mixer used to key permutations.
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// permutation is a keyed bijection of [0, n) (a balanced Feistel network over the smallest
// even number of bits covering n, with cycle walking), used to hand out unique identifiers
// that look random without remembering which were used.
type permutation struct {
	n         uint64
	halfBits  uint
	halfMask  uint64
	roundKeys [4]uint64
}

func newPermutation(n, key uint64) permutation {
	bits := uint(2)
	for uint64(1)<<bits < n {
		bits += 2
	}
	p := permutation{n: n, halfBits: bits / 2, halfMask: 1<<(bits/2) - 1}
	for i := range p.roundKeys {
		p.roundKeys[i] = splitmix64(key + uint64(i)*0x632be59bd9b4e019)
	}
	return p
}

func (p permutation) apply(x uint64) uint64 {
	for {
		l, r := x>>p.halfBits, x&p.halfMask
		for _, k := range p.roundKeys {
			l, r = r, l^(splitmix64(r^k)&p.halfMask)
		}
		x = l<<p.halfBits | r
		if x < p.n {
			return x
		}
	}
}

// weighted samples indices in proportion to fixed weights.
type weighted []float64 // cumulative, normalised to end at 1

func newWeighted(w []float64) weighted {
	c := make(weighted, len(w))
	sum := 0.0
	for _, x := range w {
		sum += x
	}
	acc := 0.0
	for i, x := range w {
		acc += x / sum
		c[i] = acc
	}
	c[len(c)-1] = 1
	return c
}

func (c weighted) pick(r *rand.Rand) int { return pickFrom(c, r.Float64()) }

// poisson draws a Poisson variate (Knuth below 30, a rounded normal above).
func poisson(r *rand.Rand, lambda float64) int {
	if lambda <= 0 {
		return 0
	}
	if lambda < 30 {
		l := math.Exp(-lambda)
		k, p := 0, 1.0
		for {
			p *= r.Float64()
			if p <= l {
				return k
			}
			k++
		}
	}
	n := int(math.Round(lambda + math.Sqrt(lambda)*r.NormFloat64()))
	if n < 0 {
		return 0
	}
	return n
}

func round2(x float64) float64 { return math.Round(x*100) / 100 }

// ---- calendar ----

type civilDate struct{ y, m, d int }

// days returns the days since 1970-01-01 (Arrow date32).
func (c civilDate) days() int32 { return daysFromCivil(c.y, c.m, c.d) }

// daysFromCivil converts a proleptic Gregorian date to days since 1970-01-01.
func daysFromCivil(y, m, d int) int32 {
	if m <= 2 {
		y--
	}
	era := y / 400
	if y < 0 && y%400 != 0 {
		era--
	}
	yoe := y - era*400
	mp := (m + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return int32(era*146097 + doe - 719468)
}

// civilFromDays is the inverse of daysFromCivil.
func civilFromDays(z32 int32) civilDate {
	z := int(z32) + 719468
	era := z / 146097
	if z < 0 && z%146097 != 0 {
		era--
	}
	doe := z - era*146097
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365
	y := yoe + era*400
	doy := doe - (365*yoe + yoe/4 - yoe/100)
	mp := (5*doy + 2) / 153
	d := doy - (153*mp+2)/5 + 1
	m := mp + 3
	if m > 12 {
		m -= 12
	}
	if m <= 2 {
		y++
	}
	return civilDate{y, m, d}
}

// ageAt returns the age in whole years on date at of a person born on birth.
func ageAt(birth, at civilDate) int {
	a := at.y - birth.y
	if at.m < birth.m || (at.m == birth.m && at.d < birth.d) {
		a--
	}
	return a
}

// appendPadded appends v in decimal, left-padded with zeros to width.
func appendPadded(b []byte, v uint64, width int) []byte {
	var tmp [20]byte
	s := strconv.AppendUint(tmp[:0], v, 10)
	for i := len(s); i < width; i++ {
		b = append(b, '0')
	}
	return append(b, s...)
}
