package redteam

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"regexp"
	"slices"
	"strings"
	"sync"

	"github.com/c1b99f93/cleanroom/errcode"
	"github.com/c1b99f93/cleanroom/server/api"
	"github.com/c1b99f93/cleanroom/server/client"
)

// Defaults of a run.
const (
	DefaultEpsilon = 0.1 // per job
	DefaultMaxJobs = 100 // below the default policy's 120 jobs per grant and hour
	DefaultSeed    = 1
)

// parallel is how many jobs the attacker keeps in flight: the server's default runner count.
const parallel = 2

// Config is one red-team run.
type Config struct {
	Grant string
	// Attacks to run, by name (AttackNames); empty means all.
	Attacks []string
	// Epsilon each job asks for (default DefaultEpsilon).
	Epsilon float64
	// MaxJobs bounds the jobs of the whole run (default DefaultMaxJobs).
	MaxJobs int
	// Seed drives the attacker's own choices (targets, subsets), so a run can be repeated.
	Seed uint64
	// Truth scores the attacks; nil skips scoring.
	Truth *Truth
}

// runner is one run's state.
type runner struct {
	c      *client.Client
	cfg    Config
	rng    *rand.Rand
	domain map[string][]string // the attacked dataset's public domains by column

	mu    sync.Mutex
	jobs  int
	texts []string // everything the server answered, to scan for identifiers
}

// Run runs the configured attacks against the grant through c (the applicant's client) and
// returns the report. Errors are for the run itself (the grant cannot be read, the dataset is
// not on it); what the platform refuses is the report's content.
func Run(ctx context.Context, c *client.Client, cfg Config) (*Report, error) {
	if cfg.Epsilon == 0 {
		cfg.Epsilon = DefaultEpsilon
	}
	if cfg.MaxJobs == 0 {
		cfg.MaxJobs = DefaultMaxJobs
	}
	if cfg.Seed == 0 {
		cfg.Seed = DefaultSeed
	}
	names := cfg.Attacks
	if len(names) == 0 {
		names = AttackNames()
	}
	for _, n := range names {
		if !slices.Contains(AttackNames(), n) {
			return nil, fmt.Errorf("redteam: unknown attack %q (known: %s)", n, strings.Join(AttackNames(), ", "))
		}
	}
	r := &runner{c: c, cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, 0x7265647465616d))}
	if err := r.readDomains(ctx); err != nil {
		return nil, err
	}
	before, err := r.spent(ctx)
	if err != nil {
		return nil, err
	}
	rep := &Report{Grant: cfg.Grant, Dataset: dataset, EpsilonPerJob: cfg.Epsilon, Seed: cfg.Seed, Scored: cfg.Truth != nil}
	if !rep.Scored {
		rep.Note = "scoring skipped: no truth given (--truth-dir); blocked, cost and noise against need are shown"
	}
	var truth *visits
	if cfg.Truth != nil {
		if truth, err = cfg.Truth.visits(); err != nil {
			return nil, err
		}
	}
	// The attacks run in AttackNames' order whatever the order asked, so a run is repeatable.
	for _, a := range attacks {
		if !slices.Contains(names, a.name) {
			continue
		}
		start, err := r.spent(ctx)
		if err != nil {
			return nil, err
		}
		out := Attack{Name: a.name, Summary: a.summary}
		if err := a.run(ctx, r, &out, truth); err != nil {
			return nil, fmt.Errorf("redteam: %s: %w", a.name, err)
		}
		end, err := r.spent(ctx)
		if err != nil {
			return nil, err
		}
		out.Cost = api.Budget{Epsilon: end.Epsilon - start.Epsilon, Delta: end.Delta - start.Delta}
		rep.Attacks = append(rep.Attacks, out)
	}
	after, err := r.spent(ctx)
	if err != nil {
		return nil, err
	}
	rep.Jobs, rep.Spent = r.jobs, api.Budget{Epsilon: after.Epsilon - before.Epsilon, Delta: after.Delta - before.Delta}
	if cfg.Truth != nil {
		n := len(cfg.Truth.leaks(r.texts))
		rep.IdentifierLeaks = &n
	}
	return rep, nil
}

// spent is what the grant's jobs have charged so far, as the grant reports it.
func (r *runner) spent(ctx context.Context) (api.Budget, error) {
	g, err := r.c.Grant(ctx, r.cfg.Grant)
	if err != nil {
		return api.Budget{}, fmt.Errorf("redteam: read grant %s: %w", r.cfg.Grant, err)
	}
	return api.Budget{Epsilon: g.Budget.EpsilonSpent, Delta: g.Budget.DeltaSpent}, nil
}

// remaining is how many more jobs of the configured epsilon the grant's budget pays for.
func (r *runner) remaining(ctx context.Context) (int, error) {
	g, err := r.c.Grant(ctx, r.cfg.Grant)
	if err != nil {
		return 0, fmt.Errorf("redteam: read grant %s: %w", r.cfg.Grant, err)
	}
	return int((g.Budget.EpsilonTotal - g.Budget.EpsilonSpent) / r.cfg.Epsilon), nil
}

// readDomains reads the attacked dataset's public domains: what any applicant sees in the
// catalog, and all the attacker needs to name its targets.
func (r *runner) readDomains(ctx context.Context) error {
	g, err := r.c.Grant(ctx, r.cfg.Grant)
	if err != nil {
		return fmt.Errorf("redteam: read grant %s: %w", r.cfg.Grant, err)
	}
	if !slices.Contains(g.Datasets, dataset) {
		return fmt.Errorf("redteam: the attacks are written for dataset %s, which grant %s does not cover", dataset, g.ID)
	}
	ds, err := r.c.Datasets(ctx)
	if err != nil {
		return fmt.Errorf("redteam: list datasets: %w", err)
	}
	for _, d := range ds.Datasets {
		if d.Name != dataset {
			continue
		}
		r.domain = map[string][]string{}
		for name, col := range d.Columns {
			r.domain[name] = col.Domain
		}
	}
	for _, col := range []string{colDistrict, colAgeBand} {
		if len(r.domain[col]) < 2 {
			return fmt.Errorf("redteam: dataset %s has no public domain of %s to choose targets from", dataset, col)
		}
	}
	return nil
}

// outcome is what became of one submitted query.
type outcome struct {
	res     *api.Result // the released result, or nil
	code    string      // why there is no result: an error code, "held_for_review" or "max_jobs"
	reasons []string    // why a held job was held
}

// rows indexes a released result's (first) aggregate by its group keys joined with "|" (dates
// cut to the day); nil when there is no result. Every attack query has one aggregate.
func (o outcome) rows() map[string]api.Released {
	if o.res == nil {
		return nil
	}
	at := slices.IndexFunc(o.res.Columns, func(c api.ResultCol) bool { return c.Kind != "group_key" })
	if at < 0 {
		return nil
	}
	out := map[string]api.Released{}
	for _, row := range o.res.Rows {
		var keys []string
		for i, c := range row {
			if o.res.Columns[i].Kind == "group_key" {
				k := "NULL"
				if c.Key != nil {
					k = dayOf(*c.Key)
				}
				keys = append(keys, k)
			}
		}
		if row[at].DP != nil {
			out[strings.Join(keys, "|")] = *row[at].DP
		}
	}
	return out
}

// dayOf cuts a rendered timestamp to its date; other keys pass unchanged.
func dayOf(k string) string {
	if len(k) > 10 && k[4] == '-' && k[7] == '-' && (k[10] == ' ' || k[10] == 'T') {
		return k[:10]
	}
	return k
}

// submit runs queries as jobs on the grant, parallel at most at once, and tallies them into a.
// Once the run has submitted MaxJobs, the rest are skipped.
func (r *runner) submit(ctx context.Context, a *Attack, sqls ...string) []outcome {
	out := make([]outcome, len(sqls))
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	for i, sql := range sqls {
		r.mu.Lock()
		over := r.jobs >= r.cfg.MaxJobs
		if !over {
			r.jobs++
			a.Jobs++
		}
		r.mu.Unlock()
		if over {
			out[i] = outcome{code: "max_jobs"}
			a.Skipped++
			continue
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			out[i] = r.run(ctx, sql)
		}()
	}
	wg.Wait()
	for _, o := range out {
		switch {
		case o.res != nil:
			a.Released++
			if o.res.Suppressed != nil {
				a.SuppressedRows += *o.res.Suppressed
			}
		case o.code == codeHeld:
			a.Held++
			for _, reason := range o.reasons {
				// The reason's code (before the colon) names the rule; its text is the policy's.
				code, _, _ := strings.Cut(reason, ":")
				if !slices.Contains(a.HeldFor, code) {
					a.HeldFor = append(a.HeldFor, code)
				}
			}
		case o.code != "max_jobs":
			if a.Refused == nil {
				a.Refused = map[string]int{}
			}
			a.Refused[o.code]++
		}
	}
	return out
}

// codeHeld marks a job held for review: its answer does not reach the attacker.
const codeHeld = string(errcode.HeldForReview)

// run submits one query and waits for it; every answer is kept for the identifier scan.
func (r *runner) run(ctx context.Context, sql string) outcome {
	j, err := r.c.SubmitJob(ctx, api.JobRequest{Grant: r.cfg.Grant, Kind: api.KindSQL, SQL: sql, Options: api.JobOptions{
		Epsilon: r.cfg.Epsilon,
		// The attacker narrows what one person may add, so each count's noise is as small as
		// the platform lets it be.
		MaxGroupsContributed: 1, MaxContributionsPerGroup: 1}})
	if err == nil && client.Pending(j.State) {
		j, err = r.c.WaitJob(ctx, j.ID)
	}
	if err != nil {
		r.keep(err.Error())
		var apiErr *client.Error
		if errors.As(err, &apiErr) {
			return outcome{code: apiErr.Code}
		}
		return outcome{code: "client_error"}
	}
	if b, err := json.Marshal(j); err == nil {
		r.keep(string(b))
	}
	switch j.State {
	case api.JobReleased:
		var res api.Result
		if err := json.Unmarshal(j.Result, &res); err != nil {
			return outcome{code: "undecodable_result"}
		}
		return outcome{res: &res}
	case api.JobInReview:
		o := outcome{code: codeHeld}
		if j.Review != nil {
			o.reasons = j.Review.Reasons
		}
		return o
	}
	if j.Error != nil {
		return outcome{code: j.Error.Code}
	}
	return outcome{code: j.State}
}

func (r *runner) keep(text string) {
	r.mu.Lock()
	r.texts = append(r.texts, text)
	r.mu.Unlock()
}

// tokens are the runs of letters and digits in a text: identifiers are such runs.
var tokens = regexp.MustCompile(`[\p{L}\p{N}]+`)

// leaks returns the distinct raw identifier values found in texts.
func (t *Truth) leaks(texts []string) []string {
	var out []string
	for _, text := range texts {
		for _, tok := range tokens.FindAllString(text, -1) {
			if t.isIdentifier(tok) && !slices.Contains(out, tok) {
				out = append(out, tok)
			}
		}
	}
	return out
}
