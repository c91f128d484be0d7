package synth

import (
	"context"
	"math/rand/v2"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

var residentsSchema = arrow.NewSchema([]arrow.Field{
	{Name: "person_id", Type: arrow.BinaryTypes.String},
	{Name: "name", Type: arrow.BinaryTypes.String},
	{Name: "gender", Type: arrow.BinaryTypes.String},
	{Name: "birth_date", Type: arrow.FixedWidthTypes.Date32},
	{Name: "district", Type: arrow.BinaryTypes.String},
	{Name: "age_band", Type: arrow.BinaryTypes.String},
	{Name: "income_band", Type: arrow.BinaryTypes.String},
	{Name: "mobile", Type: arrow.BinaryTypes.String},
}, nil)

// incomeAgeFactor reshapes incomeWeights by age band (students and retirees earn less).
var incomeAgeFactor = [5][5]float64{
	{1.0, 1.0, 1.0, 1.0, 1.0},
	{1.2, 1.2, 1.0, 0.8, 0.6},
	{0.9, 0.9, 1.0, 1.1, 1.3},
	{1.0, 1.0, 1.0, 1.0, 1.0},
	{1.6, 1.3, 0.9, 0.6, 0.5},
}

// residents streams the residents dataset, one row per person in index order.
func (pop *population) residents(ctx context.Context, opt Options, emit func(arrow.RecordBatch) error) error {
	r := newRand(pop.seed, streamResidents)
	mobiles := newPermutation(uint64(len(mobilePrefixes))*1e8, splitmix64(pop.seed^keyMobile))
	surnameW := newWeighted(surnameWeights)
	var incomeW [2][5]weighted
	for u := 0; u < 2; u++ {
		for b := 0; b < 5; b++ {
			w := make([]float64, 5)
			for k := range w {
				w[k] = incomeWeights[u][k] * incomeAgeFactor[b][k]
			}
			incomeW[u][b] = newWeighted(w)
		}
	}
	ref := ReferenceDate.days()

	rb := array.NewRecordBuilder(memory.DefaultAllocator, residentsSchema)
	defer rb.Release()
	var (
		idB     = rb.Field(0).(*array.StringBuilder)
		nameB   = rb.Field(1).(*array.StringBuilder)
		genderB = rb.Field(2).(*array.StringBuilder)
		birthB  = rb.Field(3).(*array.Date32Builder)
		distB   = rb.Field(4).(*array.StringBuilder)
		bandB   = rb.Field(5).(*array.StringBuilder)
		incB    = rb.Field(6).(*array.StringBuilder)
		mobB    = rb.Field(7).(*array.StringBuilder)
	)
	rb.Reserve(min(opt.BatchRows, len(pop.people)))
	var buf []byte
	for i, p := range pop.people {
		id := p.id()
		idB.BinaryBuilder.Append(id[:])
		buf = appendName(buf[:0], r, surnameW, p.male)
		nameB.BinaryBuilder.Append(buf)
		genderB.Append(Genders[b2i(!p.male)])
		birthB.Append(arrow.Date32(p.birth))
		distB.Append(Districts[p.district])
		band := p.bandAt(ref)
		bandB.Append(AgeBands[band])
		incB.Append(IncomeBands[incomeW[b2i(districtUrban[p.district])][band].pick(r)])
		m := mobiles.apply(uint64(i))
		buf = append(buf[:0], mobilePrefixes[m/1e8]...)
		buf = appendPadded(buf, m%1e8, 8)
		mobB.BinaryBuilder.Append(buf)

		if idB.Len() == opt.BatchRows || i == len(pop.people)-1 {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := emit(rb.NewRecordBatch()); err != nil {
				return err
			}
		}
	}
	return nil
}

// appendName appends a synthetic Chinese name: a surname and one or two given-name characters.
func appendName(b []byte, r *rand.Rand, surnameW weighted, male bool) []byte {
	b = append(b, surnames[surnameW.pick(r)]...)
	given := givenFemale
	if male {
		given = givenMale
	}
	n := 2
	if r.IntN(4) == 0 {
		n = 1
	}
	for k := 0; k < n; k++ {
		b = append(b, given[r.IntN(len(given))]...)
	}
	return b
}
