package synth

import (
	"fmt"

	"github.com/c1b99f93/cleanroom/policy/pii"
)

// person is the compact per-person index shared by the residents, visits and claims
// generators (8 bytes a person). Everything else about a person is drawn from the streams of
// the dataset that needs it.
type person struct {
	birth    int32  // date32 days
	seq      uint16 // resident ID sequence number 1..998, odd for men
	district uint8  // index into Districts
	male     bool
}

// population is the generated person index.
type population struct {
	seed   uint64
	people []person
}

// Age draw: the 65+ band has an exponential tail capped at maxAge.
const (
	maxAge         = 105
	elderlyMeanAge = 11.0
	seqPerCell     = 499 // sequence numbers per (district, birth date, gender)
	seqStride      = 197 // coprime with seqPerCell
)

// newPopulation draws each person's district, gender and birth date and gives them a unique
// resident ID sequence number: within one (district, birth date, gender) cell the k-th person
// gets number 2*((k*197 + h(cell)) mod 499) + 1 (+1 more for women), a bijection over the
// cell's 499 numbers of the right parity.
func newPopulation(n int, seed uint64) (*population, error) {
	r := newRand(seed, streamPopulation)
	ref := ReferenceDate.days()
	minBirth := daysFromCivil(ReferenceDate.y-maxAge-1, 1, 1)
	numDays := int(ref-minBirth) + 1
	counters := make([]uint16, len(Districts)*numDays*2)

	districtW := newWeighted(districtPop)
	bandW := newWeighted(ageBandShare)
	pop := &population{seed: seed, people: make([]person, n)}
	for i := range pop.people {
		d := districtW.pick(r)
		male := r.IntN(1000) < 512
		band := bandW.pick(r)
		var age int
		if band == len(AgeBands)-1 {
			age = ageBandLow[band] + min(int(r.ExpFloat64()*elderlyMeanAge), maxAge-ageBandLow[band])
		} else {
			age = ageBandLow[band] + r.IntN(ageBandLow[band+1]-ageBandLow[band])
		}
		// Born in ((ref.y-age-1)-01-01, (ref.y-age)-01-01]: exactly `age` on the reference date.
		lo := daysFromCivil(ReferenceDate.y-age-1, 1, 2)
		hi := daysFromCivil(ReferenceDate.y-age, 1, 1)
		for tries := 0; ; tries++ {
			if tries > 1000 {
				return nil, fmt.Errorf("synth: resident ID sequence space exhausted (district %s, age %d)", Districts[d], age)
			}
			birth := lo + r.Int32N(hi-lo+1)
			cell := (d*numDays+int(birth-minBirth))*2 + b2i(!male)
			k := counters[cell]
			if k >= seqPerCell {
				continue
			}
			counters[cell]++
			j := (int(k)*seqStride + int(splitmix64(seed^uint64(cell))%seqPerCell)) % seqPerCell
			seq := 2*j + 1
			if !male {
				seq++
			}
			pop.people[i] = person{birth: birth, seq: uint16(seq), district: uint8(d), male: male}
			break
		}
	}
	return pop, nil
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// id returns the person's 18-character resident ID: district code, birth date, sequence
// number and GB 11643 check character.
func (p person) id() [18]byte {
	var b [18]byte
	copy(b[:6], Districts[p.district])
	c := civilFromDays(p.birth)
	put := func(off, v, width int) {
		for i := width - 1; i >= 0; i-- {
			b[off+i] = byte('0' + v%10)
			v /= 10
		}
	}
	put(6, c.y, 4)
	put(10, c.m, 2)
	put(12, c.d, 2)
	put(14, int(p.seq), 3)
	check, err := pii.ResidentIDCheckDigit(string(b[:17]))
	if err != nil {
		panic(err) // unreachable: the body is 17 digits by construction
	}
	b[17] = check
	return b
}

// bandAt returns the person's age band index on day (date32).
func (p person) bandAt(day int32) int {
	return AgeBand(ageAt(civilFromDays(p.birth), civilFromDays(day)))
}
