package synth

import (
	"context"
	"math"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

var visitsSchema = arrow.NewSchema([]arrow.Field{
	{Name: "visit_id", Type: arrow.BinaryTypes.String},
	{Name: "person_id", Type: arrow.BinaryTypes.String},
	{Name: "hospital_id", Type: arrow.BinaryTypes.String},
	{Name: "visit_date", Type: arrow.FixedWidthTypes.Date32},
	{Name: "diagnosis", Type: arrow.BinaryTypes.String},
	{Name: "diagnosis_chapter", Type: arrow.BinaryTypes.String},
	{Name: "cost", Type: arrow.PrimitiveTypes.Float64},
	{Name: "inpatient", Type: arrow.FixedWidthTypes.Boolean},
	{Name: "district", Type: arrow.BinaryTypes.String},
	{Name: "age_band", Type: arrow.BinaryTypes.String},
}, nil)

var claimsSchema = arrow.NewSchema([]arrow.Field{
	{Name: "claim_id", Type: arrow.BinaryTypes.String},
	{Name: "person_id", Type: arrow.BinaryTypes.String},
	{Name: "visit_id", Type: arrow.BinaryTypes.String},
	{Name: "amount", Type: arrow.PrimitiveTypes.Float64},
	{Name: "reimbursed", Type: arrow.PrimitiveTypes.Float64},
	{Name: "claim_date", Type: arrow.FixedWidthTypes.Date32},
	{Name: "district", Type: arrow.BinaryTypes.String},
	{Name: "age_band", Type: arrow.BinaryTypes.String},
}, nil)

// Visit and claim model parameters.
const (
	// shuffleBlock is the number of visit rows shuffled together before IDs are assigned, so a
	// person's visits are not contiguous. It is fixed (not BatchRows) so rows and their order
	// depend only on Persons and Seed.
	shuffleBlock = 1 << 16
	idDigits     = 10 // visit_id "V" + 10 digits, claim_id "C" + 10 digits

	visitBase     = 4.25 // mean visits in the two-year window before age factors (non-heavy users)
	visitSigma    = 1.0  // lognormal spread of personal propensity
	heavyMinVisit = 60.0
	heavyMaxVisit = 350.0
	chronicShare  = 0.85 // share of a heavy user's visits for their chronic condition

	outSigma      = 0.8
	inSigma       = 0.7
	extremeShare  = 0.004 // inpatient stays with a Pareto-tailed multiplier (ICU, surgery)
	extremeAlpha  = 1.5
	tertiaryOut   = 0.08
	tertiaryIn    = 0.30
	tertiaryC     = 0.55
	claimOut      = 0.645
	claimIn       = 0.97
	claimCheckup  = 0.10
	claimRejected = 0.03
)

var (
	visitAgeFactor = [5]float64{0.8, 0.6, 0.9, 1.4, 2.2}
	heavyShare     = [5]float64{0.0003, 0.0008, 0.002, 0.004, 0.006}
	// tertiaryHospitals are the large provincial/city hospitals: the first ones of the four
	// main urban districts (global hospital indices are assigned in newHospitals).
	tertiaryDistricts = []int{0, 0, 0, 1, 1, 2, 3}
	tertiaryLocal     = []int{0, 1, 2, 0, 1, 0, 0}
)

type hospitals struct {
	ids      []string   // global index -> "H530102-01"
	district []weighted // district -> weights over its hospitals
	first    []int      // district -> global index of its first hospital
	tertiary []int      // global indices
}

func newHospitals() hospitals {
	var h hospitals
	for d, n := range districtHospitals {
		h.first = append(h.first, len(h.ids))
		w := make([]float64, n)
		for k := 0; k < n; k++ {
			b := append([]byte("H"), Districts[d]...)
			b = append(b, '-')
			b = appendPadded(b, uint64(k+1), 2)
			h.ids = append(h.ids, string(b))
			w[k] = 1 / math.Pow(float64(k+1), 0.8)
		}
		h.district = append(h.district, newWeighted(w))
	}
	for i, d := range tertiaryDistricts {
		h.tertiary = append(h.tertiary, h.first[d]+tertiaryLocal[i])
	}
	return h
}

// visitRow is one visit before IDs are assigned.
type visitRow struct {
	cost      float64
	person    int32
	date      int32
	dx        uint8
	hosp      uint8
	band      uint8
	inpatient bool
}

// visits streams medical_visits and, from the same rows, insurance_claims.
func (pop *population) visits(ctx context.Context, opt Options, emitVisits, emitClaims func(arrow.RecordBatch) error) error {
	r := newRand(pop.seed, streamVisits)
	rc := newRand(pop.seed, streamClaims)
	hosp := newHospitals()
	from, to := VisitsFrom.days(), VisitsTo.days()
	ref := ReferenceDate.days()

	// Visit dates: fewer at weekends, a little more in winter.
	dayW := make([]float64, to-from+1)
	for i := range dayW {
		day := from + int32(i)
		w := 1.0
		switch (day + 4) % 7 { // 1970-01-01 was a Thursday; 0 = Sunday
		case 0:
			w = 0.5
		case 6:
			w = 0.65
		}
		if m := civilFromDays(day).m; m == 12 || m <= 2 {
			w *= 1.15
		}
		dayW[i] = w
	}
	dates := newWeighted(dayW)

	// Diagnosis mixes per (age band, sex).
	var dxW [5][2]weighted
	for b := 0; b < 5; b++ {
		for s, sex := range []byte{'M', 'F'} {
			w := make([]float64, len(diagnoses))
			for k, d := range diagnoses {
				if d.sex == 0 || d.sex == sex {
					w[k] = d.w[b]
				}
			}
			dxW[b][s] = newWeighted(w)
		}
	}
	dxIndex := map[string]uint8{}
	for k, d := range diagnoses {
		dxIndex[d.code] = uint8(k)
	}
	chronic := make([]uint8, len(chronicCodes))
	for k, c := range chronicCodes {
		chronic[k] = dxIndex[c]
	}

	vb := array.NewRecordBuilder(memory.DefaultAllocator, visitsSchema)
	defer vb.Release()
	cb := array.NewRecordBuilder(memory.DefaultAllocator, claimsSchema)
	defer cb.Release()
	var (
		vID    = vb.Field(0).(*array.StringBuilder)
		vPID   = vb.Field(1).(*array.StringBuilder)
		vHosp  = vb.Field(2).(*array.StringBuilder)
		vDate  = vb.Field(3).(*array.Date32Builder)
		vDx    = vb.Field(4).(*array.StringBuilder)
		vChap  = vb.Field(5).(*array.StringBuilder)
		vCost  = vb.Field(6).(*array.Float64Builder)
		vIn    = vb.Field(7).(*array.BooleanBuilder)
		vDist  = vb.Field(8).(*array.StringBuilder)
		vBand  = vb.Field(9).(*array.StringBuilder)
		cID    = cb.Field(0).(*array.StringBuilder)
		cPID   = cb.Field(1).(*array.StringBuilder)
		cVID   = cb.Field(2).(*array.StringBuilder)
		cAmt   = cb.Field(3).(*array.Float64Builder)
		cReimb = cb.Field(4).(*array.Float64Builder)
		cDate  = cb.Field(5).(*array.Date32Builder)
		cDist  = cb.Field(6).(*array.StringBuilder)
		cBand  = cb.Field(7).(*array.StringBuilder)
	)
	var (
		nextVisit, nextClaim uint64
		vidBuf, cidBuf       []byte
		block                = make([]visitRow, 0, shuffleBlock)
	)

	flushBlock := func() error {
		r.Shuffle(len(block), func(i, j int) { block[i], block[j] = block[j], block[i] })
		for _, v := range block {
			p := pop.people[v.person]
			pid := p.id()
			dx := &diagnoses[v.dx]
			nextVisit++
			vidBuf = appendPadded(append(vidBuf[:0], 'V'), nextVisit, idDigits)
			vID.BinaryBuilder.Append(vidBuf)
			vPID.BinaryBuilder.Append(pid[:])
			vHosp.Append(hosp.ids[v.hosp])
			vDate.Append(arrow.Date32(v.date))
			vDx.Append(dx.code)
			vChap.Append(dx.code[:1])
			vCost.Append(v.cost)
			vIn.Append(v.inpatient)
			vDist.Append(Districts[p.district])
			vBand.Append(AgeBands[v.band])
			if vID.Len() == opt.BatchRows {
				if err := emitVisits(vb.NewRecordBatch()); err != nil {
					return err
				}
			}

			// Claim for a subset of visits.
			pc := claimOut
			switch {
			case v.inpatient:
				pc = claimIn
			case dx.code == "Z00.0":
				pc = claimCheckup
			}
			if rc.Float64() >= pc {
				continue
			}
			amount := round2(v.cost * (0.82 + 0.18*rc.Float64()))
			ratio := 0.50
			if v.inpatient {
				ratio = 0.72
			}
			if v.band == 4 {
				ratio += 0.08
			}
			ratio += 0.1 * (rc.Float64() - 0.5)
			if rc.Float64() < claimRejected {
				ratio = 0
			}
			reimbursed := min(round2(amount*ratio), amount)
			lag := rc.Int32N(15)
			if v.inpatient {
				lag = 3 + rc.Int32N(40)
			}
			nextClaim++
			cidBuf = appendPadded(append(cidBuf[:0], 'C'), nextClaim, idDigits)
			cID.BinaryBuilder.Append(cidBuf)
			cPID.BinaryBuilder.Append(pid[:])
			cVID.BinaryBuilder.Append(vidBuf)
			cAmt.Append(amount)
			cReimb.Append(reimbursed)
			cDate.Append(arrow.Date32(v.date + lag))
			cDist.Append(Districts[p.district])
			cBand.Append(AgeBands[v.band])
			if cID.Len() == opt.BatchRows {
				if err := emitClaims(cb.NewRecordBatch()); err != nil {
					return err
				}
			}
		}
		block = block[:0]
		return ctx.Err()
	}

	for i, p := range pop.people {
		// Exposure: persons born inside the window are seen only after birth.
		first := max(from, p.birth)
		if first > to {
			continue
		}
		exposure := float64(to-first+1) / float64(to-from+1)
		refBand := p.bandAt(ref)
		var lambda float64
		chronicDx := -1
		if r.Float64() < heavyShare[refBand] {
			lambda = heavyMinVisit + (heavyMaxVisit-heavyMinVisit)*r.Float64()
			chronicDx = int(chronic[r.IntN(len(chronic))])
		} else {
			lambda = visitBase * visitAgeFactor[refBand] * math.Exp(visitSigma*r.NormFloat64()-visitSigma*visitSigma/2)
		}
		n := poisson(r, lambda*exposure)
		sex := b2i(!p.male)
		lo := float64(0)
		if k := int(first - from); k > 0 {
			lo = dates[k-1]
		}
		for k := 0; k < n; k++ {
			day := from + int32(pickFrom(dates, lo+(1-lo)*r.Float64()))
			band := p.bandAt(day)
			var dxi int
			if chronicDx >= 0 && r.Float64() < chronicShare {
				dxi = chronicDx
			} else {
				dxi = dxW[band][sex].pick(r)
				// Respiratory visits concentrate in the cold season.
				if diagnoses[dxi].code[0] == 'J' {
					if m := civilFromDays(day).m; m >= 4 && m <= 10 && r.Float64() < 0.35 {
						dxi = dxW[band][sex].pick(r)
					}
				}
			}
			dx := &diagnoses[dxi]
			pIn := dx.pIn
			if dxi == chronicDx {
				pIn *= 0.1 // dialysis and chemotherapy sessions are mostly outpatient
			}
			inpatient := r.Float64() < pIn
			var cost float64
			if inpatient {
				cost = dx.inMed * math.Exp(inSigma*r.NormFloat64())
				if r.Float64() < extremeShare {
					cost *= 1 + math.Pow(1-r.Float64(), -1/extremeAlpha)
				}
			} else {
				cost = max(5, dx.outMed*math.Exp(outSigma*r.NormFloat64()))
			}
			pt := tertiaryOut
			switch {
			case dx.code[0] == 'C':
				pt = tertiaryC
			case inpatient:
				pt = tertiaryIn
			}
			var h int
			if r.Float64() < pt {
				h = hosp.tertiary[r.IntN(len(hosp.tertiary))]
			} else {
				h = hosp.first[p.district] + hosp.district[p.district].pick(r)
			}
			block = append(block, visitRow{
				cost: round2(cost), person: int32(i), date: day, dx: uint8(dxi),
				hosp: uint8(h), band: uint8(band), inpatient: inpatient,
			})
			if len(block) == shuffleBlock {
				if err := flushBlock(); err != nil {
					return err
				}
			}
		}
		if i%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
	}
	if err := flushBlock(); err != nil {
		return err
	}
	if vID.Len() > 0 {
		if err := emitVisits(vb.NewRecordBatch()); err != nil {
			return err
		}
	}
	if cID.Len() > 0 {
		if err := emitClaims(cb.NewRecordBatch()); err != nil {
			return err
		}
	}
	return nil
}

// pickFrom returns the index whose cumulative weight first exceeds u.
func pickFrom(c weighted, u float64) int {
	lo, hi := 0, len(c)-1
	for lo < hi {
		mid := (lo + hi) / 2
		if u < c[mid] {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return lo
}
