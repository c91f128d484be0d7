package redteam

import (
	"context"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/c1b99f93/cleanroom/server/api"
)

// The attacks are written against the scenario's visits: whether a person had an inpatient
// visit is the sensitive bit; district, age band and visit date are the quasi-identifiers an
// attacker knows about a neighbour.
const (
	dataset      = "medical_visits"
	colPerson    = "person_id"
	colDistrict  = "district"
	colAgeBand   = "age_band"
	colDate      = "visit_date"
	colInpatient = "inpatient"
)

// The visits' period, as the dataset's documentation states it: the attacker names dates in it.
var (
	periodStart = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	periodDays  = 731
)

// Sizes of the attacks (jobs: averaging 8, differencing and tracker 1 + rounds each, isolation
// 2, exfiltration 11, reconstruction up to reconQueries), about 90 jobs in all.
const (
	pairRounds     = 4  // differencing and tracker: one targeted query per round, 1 target per district
	isolationDates = 10 // dates per district the isolation queries single out
	reconTargets   = 40 // Dinur–Nissim targets per district (consecutive dates)
	reconQueries   = 60 // random subset queries, bounded by the budget and --max-jobs
)

// target is a cell of quasi-identifiers an attacker believes singles out one person's visit.
type target struct{ district, ageBand, date string }

func (t target) predicate() string {
	return fmt.Sprintf("(district = '%s' AND age_band = '%s' AND visit_date = DATE '%s')", t.district, t.ageBand, t.date)
}

// attack is one known attack: it fills in a's outcome from the jobs it submits through r.
type attack struct {
	name, summary string
	run           func(ctx context.Context, r *runner, a *Attack, truth *visits) error
}

var attacks = []attack{
	{"averaging", "the same count of a group many times, repeated and trivially rewritten (case, whitespace, alias, tautologies), averaged", averaging},
	{"differencing", "counts of a group with and without one target (AND NOT quasi-identifiers), per district", differencing},
	{"tracker", "Denning's tracker: count(target OR padding) − count(padding), the padding a large age band", tracker},
	{"isolation", "group by fine quasi-identifiers (district × visit date, and a CASE of the target dates with a public domain)", isolation},
	{"exfiltration", "identifiers through group keys, string functions, raw columns, failing casts and numeric encodings", exfiltration},
	{"reconstruction", "Dinur–Nissim: random subset counts over the targets' dates, solved by least squares and rounded", reconstruction},
}

// AttackNames are the attacks a run knows, in the order it runs them.
func AttackNames() []string {
	out := make([]string, len(attacks))
	for i, a := range attacks {
		out[i] = a.name
	}
	return out
}

// --- the attacker's choices ---

func (r *runner) pick(col string) string { d := r.domain[col]; return d[r.rng.IntN(len(d))] }

// bands picks the targets' age band and another one to pad with.
func (r *runner) bands() (target, padding string) {
	d := r.domain[colAgeBand]
	i := r.rng.IntN(len(d))
	return d[i], d[(i+1+r.rng.IntN(len(d)-1))%len(d)]
}

func (r *runner) date() time.Time { return periodStart.AddDate(0, 0, r.rng.IntN(periodDays)) }

// perDistrict is one target in every district, on a random date each.
func (r *runner) perDistrict(ageBand string) []target {
	var ts []target
	for _, d := range r.domain[colDistrict] {
		ts = append(ts, target{d, ageBand, r.date().Format(time.DateOnly)})
	}
	return ts
}

func groupedCount(where string) string {
	return "SELECT district, COUNT(*) AS n FROM medical_visits WHERE " + where + " GROUP BY district"
}

func orOf(ts []target) string {
	parts := make([]string, len(ts))
	for i, t := range ts {
		parts[i] = t.predicate()
	}
	return strings.Join(parts, " OR ")
}

func dateList(dates []string) string {
	parts := make([]string, len(dates))
	for i, d := range dates {
		parts[i] = "DATE '" + d + "'"
	}
	return strings.Join(parts, ", ")
}

func halfWidth(c api.Released) float64 { return (c.CIHigh - c.CILow) / 2 }

func mean(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := 0.0
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}

// codes lists the refusal codes of outcomes without a result.
func codes(outs []outcome) string {
	seen := map[string]int{}
	for _, o := range outs {
		if o.res == nil {
			seen[o.code]++
		}
	}
	var parts []string
	for _, c := range slices.Sorted(maps.Keys(seen)) {
		parts = append(parts, fmt.Sprintf("%s ×%d", c, seen[c]))
	}
	return strings.Join(parts, ", ")
}

// scoreBits completes a bit-guessing attack from its per-target estimates (NaN: no answer) and
// the typical half-width of an estimate: the guesses, whether it was blocked, and its score.
func scoreBits(a *Attack, detail string, ts []target, est []float64, noise float64, truth *visits) {
	guesses := make([]int8, len(ts))
	answered, yes := 0, 0
	for i, e := range est {
		guesses[i] = guessUnknown
		if !math.IsNaN(e) {
			guesses[i] = guessBit(e)
			answered++
			if guesses[i] == guessYes {
				yes++
			}
		}
	}
	a.Targets, a.Need = len(ts), 0.5
	if !math.IsNaN(noise) {
		a.Noise = noise
	}
	a.Estimate = fmt.Sprintf("%s; %d of %d targets answered, %d guessed to have an inpatient visit", detail, answered, len(ts), yes)
	if answered == 0 {
		a.Blocked = true
		if a.Why == "" {
			a.Why = "no target's estimate could be formed"
		}
	}
	if truth != nil {
		s := accuracy(guesses, truth.bits(ts))
		a.Score = &s
	}
}

// --- the attacks ---

// averaging asks one group's count many times. The exact repeats and the re-spellings must be
// answered from the first release (no new noise, no cost); rewrites with tautologies are new
// queries and are charged. The attacker averages the distinct noise draws it got.
func averaging(ctx context.Context, r *runner, a *Attack, truth *visits) error {
	district, age := r.pick(colDistrict), r.pick(colAgeBand)
	where := fmt.Sprintf("inpatient AND district = '%s' AND age_band = '%s'", district, age)
	base := "SELECT COUNT(*) AS n FROM medical_visits WHERE " + where
	outs := r.submit(ctx, a,
		base,
		base,
		"select   count(*) as n\n  from medical_visits\n where "+where,
		fmt.Sprintf("SELECT COUNT(*) AS visits FROM medical_visits AS v WHERE v.inpatient AND v.district = '%s' AND v.age_band = '%s'", district, age),
		base+" AND 1 = 1",
		base+" AND visit_date IS NOT NULL",
		base+" AND (inpatient OR NOT inpatient)",
		base+" AND age_band <> 'none'",
	)
	a.Targets, a.Need = 1, 0.5
	const metric = "count pinned exactly (95% half-width under 0.5, and right)"
	first, ok := outs[0].rows()[""]
	if !ok {
		a.Blocked, a.Why = true, "the first answer was not released: "+codes(outs[:1])
		a.Estimate = "no answer"
		if truth != nil {
			a.Score = &Score{Metric: metric} // nothing pinned, as the baseline pins nothing
		}
		return nil
	}
	// Independent noise draws never coincide; an equal value is the same release re-served.
	var draws, hs []float64
	for _, o := range outs {
		if c, ok := o.rows()[""]; ok && !slices.Contains(draws, c.Value) {
			draws, hs = append(draws, c.Value), append(hs, halfWidth(c))
		}
	}
	est := mean(draws)
	noise := halfWidthOfSum(hs...) / float64(len(draws))
	a.Noise = noise
	a.Estimate = fmt.Sprintf("%d answers, %d distinct noise draws: average %.1f ±%.1f, first answer %.1f ±%.1f; narrowed: %v",
		a.Released, len(draws), est, noise, first.Value, halfWidth(first), len(draws) > 1)
	if truth != nil {
		n := float64(truth.persons(func(i int) bool { return truth.district[i] == district && truth.ageBand[i] == age }))
		a.Estimate += fmt.Sprintf("; error %.1f (first answer alone %.1f)", math.Abs(est-n), math.Abs(first.Value-n))
		a.Score = &Score{Metric: metric,
			Attack: pinned(est, noise, n), Baseline: pinned(first.Value, halfWidth(first), n)}
	}
	return nil
}

// differencing estimates each target's count as count(group) − count(group AND NOT target).
func differencing(ctx context.Context, r *runner, a *Attack, truth *visits) error {
	age := r.pick(colAgeBand)
	group := fmt.Sprintf("inpatient AND age_band = '%s'", age)
	return pairAttack(ctx, r, a, truth, age, groupedCount(group), func(ts []target) string {
		return groupedCount(group + " AND NOT (" + orOf(ts) + ")")
	}, 1)
}

// tracker pads each target with a large set to dodge small-group rules:
// count(target OR padding) − count(padding).
func tracker(ctx context.Context, r *runner, a *Attack, truth *visits) error {
	age, pad := r.bands()
	padding := fmt.Sprintf("age_band = '%s'", pad)
	return pairAttack(ctx, r, a, truth, age, groupedCount("inpatient AND "+padding), func(ts []target) string {
		return groupedCount("inpatient AND (" + padding + " OR " + orOf(ts) + ")")
	}, -1)
}

// pairAttack runs a shared query and one targeted query per round (one target per district),
// and estimates each target's count as sign × (shared − targeted).
func pairAttack(ctx context.Context, r *runner, a *Attack, truth *visits, age, shared string, targeted func([]target) string, sign float64) error {
	rounds := make([][]target, pairRounds)
	sqls := []string{shared}
	for k := range rounds {
		rounds[k] = r.perDistrict(age)
		sqls = append(sqls, targeted(rounds[k]))
	}
	outs := r.submit(ctx, a, sqls...)
	if outs[0].res == nil {
		a.Why = "the shared query was not released: " + codes(outs[:1])
	}
	whole := outs[0].rows()
	var ts []target
	var est, hs []float64
	for k, round := range rounds {
		part := outs[k+1].rows()
		for _, t := range round {
			e := math.NaN()
			w, ok1 := whole[t.district]
			p, ok2 := part[t.district]
			if ok1 && ok2 {
				e = sign * (w.Value - p.Value)
				hs = append(hs, halfWidthOfSum(halfWidth(w), halfWidth(p)))
			}
			ts, est = append(ts, t), append(est, e)
		}
	}
	scoreBits(a, fmt.Sprintf("%d rounds of one target per district", pairRounds), ts, est, mean(hs), truth)
	return nil
}

// isolation groups by fine quasi-identifiers so that a cell holds one person, and reads the
// cells of its targets: first through DP partition selection (district × date), then through a
// CASE of the target dates, which is a public domain and so needs no selection.
func isolation(ctx context.Context, r *runner, a *Attack, truth *visits) error {
	age := r.pick(colAgeBand)
	dates := make([]string, isolationDates)
	var whens []string
	for i := range dates {
		dates[i] = r.date().Format(time.DateOnly)
		whens = append(whens, fmt.Sprintf("WHEN visit_date = DATE '%s' THEN '%s'", dates[i], dates[i]))
	}
	outs := r.submit(ctx, a,
		fmt.Sprintf("SELECT district, visit_date, COUNT(*) AS n FROM medical_visits WHERE inpatient AND age_band = '%s' AND visit_date IN (%s) GROUP BY district, visit_date", age, dateList(dates)),
		fmt.Sprintf("SELECT district, CASE %s ELSE 'other' END AS day, COUNT(*) AS n FROM medical_visits WHERE inpatient AND age_band = '%s' GROUP BY district, day", strings.Join(whens, " "), age),
	)
	selected, public := outs[0].rows(), outs[1].rows()
	var ts []target
	var est, hs []float64
	for _, d := range r.domain[colDistrict] {
		for _, day := range dates {
			t := target{d, age, day}
			e := math.NaN()
			for _, cells := range []map[string]api.Released{public, selected} {
				if c, ok := cells[d+"|"+day]; ok {
					e = c.Value
					hs = append(hs, halfWidth(c))
					break
				}
			}
			ts, est = append(ts, t), append(est, e)
		}
	}
	if len(hs) == 0 {
		a.Why = "no target's cell was released (suppressed or refused: " + codes(outs) + ")"
	}
	scoreBits(a, fmt.Sprintf("%d dates × %d districts", isolationDates, len(r.domain[colDistrict])), ts, est, mean(hs), truth)
	return nil
}

// exfiltrationAttempts try every channel an identifier could leave by.
var exfiltrationAttempts = []string{
	// group keys and raw columns
	"SELECT person_id, COUNT(*) AS n FROM medical_visits GROUP BY person_id",
	"SELECT visit_id AS v, COUNT(*) AS n FROM medical_visits GROUP BY v",
	"SELECT person_id FROM medical_visits",
	// string outputs
	"SELECT substr(person_id, 1, 17) AS p, COUNT(*) AS n FROM medical_visits GROUP BY p",
	"SELECT lower(visit_id) AS v, COUNT(*) AS n FROM medical_visits GROUP BY v",
	// error messages: casts that fail on a raw value
	"SELECT COUNT(*) AS n FROM medical_visits WHERE CAST(person_id AS BIGINT) > 0",
	"SELECT COUNT(*) AS n FROM medical_visits WHERE visit_date > CAST(visit_id AS DATE)",
	// numeric encodings
	"SELECT SUM(CAST(substr(person_id, 15, 3) AS INTEGER)) AS s FROM medical_visits",
	"SELECT CAST(substr(person_id, 7, 8) AS INTEGER) AS b, COUNT(*) AS n FROM medical_visits GROUP BY b",
	"SELECT m, COUNT(*) AS n FROM (SELECT person_id, MAX(visit_id) AS m FROM medical_visits GROUP BY person_id) AS t GROUP BY m",
	"SELECT COUNT(*) AS n FROM (SELECT person_id, MIN(person_id) AS p FROM medical_visits GROUP BY person_id) AS t",
}

// exfiltration tries to get identifiers out through outputs and errors; every answer is scanned
// for raw identifier values.
func exfiltration(ctx context.Context, r *runner, a *Attack, truth *visits) error {
	mark := len(r.texts)
	outs := r.submit(ctx, a, exfiltrationAttempts...)
	released := 0
	for _, o := range outs {
		if o.res != nil {
			released++
		}
	}
	a.Targets = len(exfiltrationAttempts)
	a.Blocked = released == 0
	if a.Blocked {
		a.Why = "every attempt refused: " + codes(outs)
	}
	a.Estimate = fmt.Sprintf("%d attempts, %d released", len(outs), released)
	if truth != nil {
		leaks := r.cfg.Truth.leaks(r.texts[mark:])
		a.Estimate += fmt.Sprintf("; %d raw identifier values in the answers and errors", len(leaks))
		a.Score = &Score{Metric: "raw identifier values in answers and errors", Attack: float64(len(leaks))}
	}
	return nil
}

// reconstruction is Dinur–Nissim: m random subset counts over n targets' cells (consecutive
// dates in one age band, in every district at once), each padded with a large age band so no
// group is small, solved by least squares with the padding as one more unknown, and rounded.
func reconstruction(ctx context.Context, r *runner, a *Attack, truth *visits) error {
	age, pad := r.bands()
	budget, err := r.remaining(ctx)
	if err != nil {
		return err
	}
	m := max(min(reconQueries, budget, r.cfg.MaxJobs-r.jobs), 0)
	n := min(reconTargets, max(m-1, 2))
	first := r.date()
	dates := make([]string, n)
	for i := range dates {
		dates[i] = first.AddDate(0, 0, i).Format(time.DateOnly)
	}
	var ts []target
	for _, d := range r.domain[colDistrict] {
		for _, day := range dates {
			ts = append(ts, target{d, age, day})
		}
	}
	if m < n+1 {
		// Too few queries to solve for the targets and the padding: every target keeps the
		// baseline's guess.
		a.Why = fmt.Sprintf("the budget and --max-jobs allow %d queries for %d unknowns", m, n+1)
		scoreBits(a, "not run", ts, slices.Repeat([]float64{math.NaN()}, len(ts)), math.NaN(), truth)
		return nil
	}
	sys := newSubsetSums(m, n, func() bool { return r.rng.IntN(2) == 1 })
	sqls := make([]string, m)
	for j := range sqls {
		var in []string
		for i, d := range dates {
			if sys.in(j, i) {
				in = append(in, d)
			}
		}
		sqls[j] = groupedCount(fmt.Sprintf("inpatient AND ((age_band = '%s' AND visit_date IN (%s)) OR age_band = '%s')", age, dateList(in), pad))
	}
	outs := r.submit(ctx, a, sqls...)
	var est, hs []float64
	for _, d := range r.domain[colDistrict] {
		answers := make([]float64, m)
		answered := 0
		for j, o := range outs {
			answers[j] = math.NaN()
			if c, ok := o.rows()[d]; ok {
				answers[j] = c.Value
				hs = append(hs, halfWidth(c))
				answered++
			}
		}
		x, err := sys.solve(answers)
		if err != nil {
			a.Why = fmt.Sprintf("%d of %d queries answered in district %s, fewer than the %d unknowns", answered, m, d, n+1)
			x = slices.Repeat([]float64{math.NaN()}, n)
		}
		est = append(est, x...)
	}
	if len(hs) == 0 {
		a.Why = "no query was answered: " + codes(outs)
	}
	scoreBits(a, fmt.Sprintf("%d queries over %d targets per district", m, n), ts, est, mean(hs)*sys.noiseGain(), truth)
	return nil
}
