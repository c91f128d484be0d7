package synth

import (
	"context"
	"math"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/c1b99f93/cleanroom/policy/pii"
)

var enterprisesSchema = arrow.NewSchema([]arrow.Field{
	{Name: "uscc", Type: arrow.BinaryTypes.String},
	{Name: "name", Type: arrow.BinaryTypes.String},
	{Name: "industry", Type: arrow.BinaryTypes.String},
	{Name: "registered_capital", Type: arrow.PrimitiveTypes.Float64},
	{Name: "district", Type: arrow.BinaryTypes.String},
	{Name: "employees", Type: arrow.PrimitiveTypes.Int64},
}, nil)

// PersonsPerEnterprise is the ratio of residents to enterprises.
const PersonsPerEnterprise = 20

// Organisation code space: 8-digit numeric codes, then "MA" + 6 characters of the USCC
// charset (the form issued since 2015).
const (
	numericOrgCodes = 100_000_000
	maOrgCodes      = 31 * 31 * 31 * 31 * 31 * 31
)

// enterprises streams the enterprises dataset (registration authority 9 = market regulation).
func enterprises(ctx context.Context, opt Options, emit func(arrow.RecordBatch) error) error {
	n := max(1, opt.Persons/PersonsPerEnterprise)
	r := newRand(opt.Seed, streamEnterprises)
	codes := newPermutation(numericOrgCodes+maOrgCodes, splitmix64(opt.Seed^keyUSCC))
	districtW := newWeighted(districtEnterprise)
	industryW := newWeighted(industryWeights)
	surnameW := newWeighted(surnameWeights)

	rb := array.NewRecordBuilder(memory.DefaultAllocator, enterprisesSchema)
	defer rb.Release()
	var (
		usccB = rb.Field(0).(*array.StringBuilder)
		nameB = rb.Field(1).(*array.StringBuilder)
		indB  = rb.Field(2).(*array.StringBuilder)
		capB  = rb.Field(3).(*array.Float64Builder)
		distB = rb.Field(4).(*array.StringBuilder)
		empB  = rb.Field(5).(*array.Int64Builder)
	)
	var code, name []byte
	for i := 0; i < n; i++ {
		d := districtW.pick(r)
		ind := industryW.pick(r)
		// Organisation type: 1 enterprise, 2 individual business, 3 farmers' cooperative.
		kind := byte('1')
		switch u := r.Float64(); {
		case ind == 0 && !districtUrban[d] && u < 0.5:
			kind = '3'
		case u < 0.22:
			kind = '2'
		}

		code = append(code[:0], '9', kind)
		code = append(code, Districts[d]...)
		x := codes.apply(uint64(i))
		if x < numericOrgCodes {
			code = appendPadded(code, x, 8)
		} else {
			x -= numericOrgCodes
			code = append(code, 'M', 'A')
			var tail [6]byte
			for k := 5; k >= 0; k-- {
				tail[k] = pii.USCCCharset[x%31]
				x /= 31
			}
			code = append(code, tail[:]...)
		}
		oc, err := pii.OrgCodeCheckChar(string(code[8:16]))
		if err != nil {
			return err
		}
		code = append(code, oc)
		uc, err := pii.USCCCheckChar(string(code))
		if err != nil {
			return err
		}
		code = append(code, uc)

		var capital float64
		var employees int64
		name = name[:0]
		switch kind {
		case '1':
			name = append(name, "昆明"...)
			name = appendTrade(name, r)
			words := industryWord[ind]
			name = append(name, words[r.IntN(len(words))]...)
			switch u := r.Float64(); {
			case u < 0.03:
				name = append(name, "股份有限公司"...)
			case u < 0.20:
				name = append(name, "有限责任公司"...)
			default:
				name = append(name, "有限公司"...)
			}
			z := r.NormFloat64()
			capital = 100 * math.Exp(1.4*z)
			if r.Float64() < 0.002 { // a few large state-owned groups
				capital *= 50 + 500*r.Float64()
			}
			employees = int64(math.Round(8 * math.Exp(1.1*r.NormFloat64()+0.35*1.4*z)))
		case '2':
			name = append(name, DistrictNames[d]...)
			name = append(name, surnames[surnameW.pick(r)]...)
			name = append(name, "记"...)
			name = append(name, individualWord[ind]...)
			capital = 5 * math.Exp(0.9*r.NormFloat64())
			employees = 1 + int64(r.IntN(6))
		case '3':
			name = append(name, districtShort[d]...)
			name = appendTrade(name, r)
			if r.IntN(2) == 0 {
				name = append(name, "种植专业合作社"...)
			} else {
				name = append(name, "养殖专业合作社"...)
			}
			capital = 50 * math.Exp(1.0*r.NormFloat64())
			employees = 5 + int64(r.IntN(46))
		}

		usccB.BinaryBuilder.Append(code)
		nameB.BinaryBuilder.Append(name)
		indB.Append(Industries[ind])
		capB.Append(max(0.01, round2(capital)))
		distB.Append(Districts[d])
		empB.Append(max(1, employees))

		if usccB.Len() == opt.BatchRows || i == n-1 {
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

// appendTrade appends a two-character trade name (字号).
func appendTrade(b []byte, r interface{ IntN(int) int }) []byte {
	a := r.IntN(len(tradeNames))
	c := r.IntN(len(tradeNames) - 1)
	if c >= a {
		c++
	}
	return append(append(b, tradeNames[a]...), tradeNames[c]...)
}
