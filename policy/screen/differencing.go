package screen

import (
	"fmt"
	"math"
	"regexp"
	"strings"
)

// DifferenceProbe is what the engine measured of the earlier queries on the same grant,
// dataset and group keys: the noisy count of privacy units on which this output's filter and
// the nearest of theirs disagree. Two answers whose filters disagree on a handful of persons
// differ by those persons' data (a differencing attack); noise makes the count itself
// differentially private, so flagging on it leaks nothing the budget did not pay for.
type DifferenceProbe struct {
	// Candidates name the earlier jobs compared (job IDs, never data).
	Candidates []string `json:"Candidates,omitempty"`
	// Against names the one earlier job of a probe stored before one count compared them
	// all.
	Against string `json:"Against,omitempty"`
	// Units is the noisy count of privacy units on which the two filters disagree.
	Units float64
}

// jobs are the earlier jobs the probe compared.
func (p DifferenceProbe) jobs() []string {
	if p.Against != "" {
		return []string{p.Against}
	}
	return p.Candidates
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
			if len(p.jobs()) == 0 {
				return ErrInvalidDifferencing
			}
			for _, j := range p.jobs() {
				if !jobID.MatchString(j) {
					return ErrInvalidDifferencing
				}
			}
		}
		r.differencing = differencing{minUnits: minUnits, probes: append([]DifferenceProbe(nil), probes...)}
		return nil
	}
}

// checkDifferencing reports a probe by which this output's filter differs from an earlier
// query's on fewer (noisy) privacy units than the minimum. NaN is below any minimum: fail
// closed.
func (st *state) checkDifferencing() error {
	d := st.r.differencing
	if d.minUnits <= 0 {
		return nil
	}
	for _, p := range d.probes {
		if !(p.Units >= d.minUnits) {
			st.findings.add(CodeDifferencing, fmt.Sprintf(
				"the filter differs from %s on this grant (same dataset and group keys) by a condition about %.0f privacy units satisfy (a noisy count), under the minimum of %g: the two answers together may isolate those units",
				jobsText(p.jobs()), math.Max(0, math.Round(p.Units)), d.minUnits))
		}
	}
	return nil
}

// jobsText names the compared jobs, the first few of many.
func jobsText(jobs []string) string {
	const shown = 5
	if len(jobs) == 1 {
		return "job " + jobs[0] + "'s"
	}
	list := strings.Join(jobs[:min(len(jobs), shown)], ", ")
	if len(jobs) > shown {
		list += fmt.Sprintf(" and %d more", len(jobs)-shown)
	}
	return "the nearest of jobs " + list
}
