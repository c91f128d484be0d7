package redteam

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"

	"github.com/c1b99f93/cleanroom/server/api"
)

// Report is the outcome of a red-team run against one grant.
type Report struct {
	Grant         string  `json:"grant"`
	Dataset       string  `json:"dataset"`
	EpsilonPerJob float64 `json:"epsilon_per_job"`
	Seed          uint64  `json:"seed"`
	// Scored is true when the attacks were scored against the raw data (Config.Truth).
	Scored bool   `json:"scored"`
	Note   string `json:"note,omitempty"`
	// Jobs is how many jobs the run submitted; Spent what they charged to the grant.
	Jobs    int        `json:"jobs"`
	Spent   api.Budget `json:"spent"`
	Attacks []Attack   `json:"attacks"`
	// IdentifierLeaks counts the distinct raw identifier values found anywhere in what the
	// server answered (results, errors, job documents); present only when scored.
	IdentifierLeaks *int `json:"identifier_leaks,omitempty"`
}

// Attack is one attack's outcome.
type Attack struct {
	Name    string `json:"name"`
	Summary string `json:"summary"` // what it tried
	Jobs    int    `json:"jobs"`
	// Released, Held (for HeldFor) and Refused (by error code) say what became of its jobs;
	// Skipped counts the jobs it did not submit because the run reached --max-jobs.
	Released int            `json:"released"`
	Held     int            `json:"held"`
	HeldFor  []string       `json:"held_for,omitempty"` // the egress policy's reason codes
	Refused  map[string]int `json:"refused,omitempty"`
	Skipped  int            `json:"skipped,omitempty"`
	// SuppressedRows counts result rows the platform withheld as small groups.
	SuppressedRows int `json:"suppressed_rows,omitempty"`
	// Blocked: the attack could not get the answers it needed; it then recovers the baseline.
	Blocked bool       `json:"blocked"`
	Why     string     `json:"why,omitempty"`
	Cost    api.Budget `json:"cost"`
	Targets int        `json:"targets,omitempty"`
	// Estimate is the attacker's estimate in words; Noise the typical 95% half-width of the
	// estimates it rests on, and Need the half-width the attack would need to succeed.
	Estimate string  `json:"estimate"`
	Noise    float64 `json:"noise,omitempty"`
	Need     float64 `json:"need,omitempty"`
	Score    *Score  `json:"score,omitempty"`
}

// Score compares what an attack recovered with a baseline guess by one metric where more is a
// better recovery. Margin is how far above the baseline chance alone may carry an attack that
// is no better than the baseline (see the metrics' doc comments).
type Score struct {
	Metric   string  `json:"metric"`
	Attack   float64 `json:"attack"`
	Baseline float64 `json:"baseline"`
	Margin   float64 `json:"margin"`
}

// Exceeds reports whether the attack recovered more than its baseline beyond the margin.
func (s *Score) Exceeds() bool { return s != nil && s.Attack > s.Baseline+s.Margin }

// Exceeded names the attacks that recovered more than their baseline beyond the margin; an
// operator's script fails the grant on any.
func (r *Report) Exceeded() []string {
	var out []string
	for _, a := range r.Attacks {
		if a.Score.Exceeds() {
			out = append(out, a.Name)
		}
	}
	if r.IdentifierLeaks != nil && *r.IdentifierLeaks > 0 {
		out = append(out, "identifier leaks")
	}
	return out
}

// SHA256 is the hex SHA-256 of the report as json.Marshal encodes it.
func (r *Report) SHA256() (string, error) {
	b, err := json.Marshal(r)
	if err != nil {
		return "", fmt.Errorf("redteam: encode the report: %w", err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

// Summary is the report as provenance records it: per attack its jobs, whether it was blocked,
// its cost and score, and the SHA-256 of the whole report.
func (r *Report) Summary() (api.RedteamRequest, error) {
	sum, err := r.SHA256()
	if err != nil {
		return api.RedteamRequest{}, err
	}
	req := api.RedteamRequest{ReportSHA256: sum, Scored: r.Scored}
	for _, a := range r.Attacks {
		s := api.RedteamAttack{Name: a.Name, Jobs: a.Jobs, Blocked: a.Blocked, Epsilon: a.Cost.Epsilon, Delta: a.Cost.Delta,
			Exceeds: a.Score.Exceeds()}
		if a.Score != nil {
			s.Score, s.Baseline, s.Margin = &a.Score.Attack, &a.Score.Baseline, &a.Score.Margin
		}
		req.Attacks = append(req.Attacks, s)
	}
	return req, nil
}
