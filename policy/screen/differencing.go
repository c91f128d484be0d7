package screen

import (
	"fmt"
	"math"
	"regexp"
)

// DifferenceProbe is what the engine measured of one earlier query on the same grant, dataset
// and group keys: the noisy count of privacy units on which its filter and this output's
// filter disagree. Two answers whose filters disagree on a handful of persons differ by those
// persons' data (a differencing attack); noise makes the count itself differentially private,
// so flagging on it leaks nothing the budget did not pay for.
type DifferenceProbe struct {
	// Against names the earlier job (a job ID, never data).
	Against string
	// Units is the noisy count of privacy units on which the two filters disagree.
	Units float64
}

type differencing struct {
	minUnits float64
	probes   []DifferenceProbe
}

// ErrInvalidDifferencing is returned by WithDifferencing for a minimum that is negative or not
// finite, or a probe whose job ID is not a plain identifier.
var ErrInvalidDifferencing = fmt.Errorf("screen: differencing minimum must be non-negative and finite, and probes must name a job")

// jobID is what a probe may name: job IDs are plain tokens, so a message quoting one cannot
// carry data.
var jobID = regexp.MustCompile(`^[A-Za-z0-9_.:-]{1,128}$`)

// WithDifferencing enables the differencing check: a probe whose noisy unit count is below
// minUnits yields a differencing_suspected finding (medium: the default policy holds the
// output for a reviewer). minUnits 0 turns the check off.
func WithDifferencing(minUnits float64, probes []DifferenceProbe) Option {
	return func(r *Screener) error {
		if !(minUnits >= 0) || math.IsInf(minUnits, 0) {
			return ErrInvalidDifferencing
		}
		for _, p := range probes {
			if !jobID.MatchString(p.Against) {
				return ErrInvalidDifferencing
			}
		}
		r.differencing = differencing{minUnits: minUnits, probes: append([]DifferenceProbe(nil), probes...)}
		return nil
	}
}

// checkDifferencing reports each earlier query this output's filter differs from on fewer
// (noisy) privacy units than the minimum. NaN is below any minimum: fail closed.
func (st *state) checkDifferencing() error {
	d := st.r.differencing
	if d.minUnits <= 0 {
		return nil
	}
	for _, p := range d.probes {
		if !(p.Units >= d.minUnits) {
			st.findings.add(CodeDifferencing, fmt.Sprintf(
				"the filter differs from job %s's on this grant (same dataset and group keys) by a condition about %.0f privacy units satisfy (a noisy count), under the minimum of %g: the two answers together may isolate those units",
				p.Against, math.Max(0, math.Round(p.Units)), d.minUnits))
		}
	}
	return nil
}
