package client

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/c1b99f93/cleanroom/he/verify"
	"github.com/c1b99f93/cleanroom/server/api"
)

// Claim is one fact an applicant's customer declared: that Subject (a privacy unit of
// Dataset, e.g. a person_id) has Claimed as its Attribute (one of the dataset's verifiable
// attributes), under the consent or contract reference Consent.
type Claim struct {
	Dataset, Subject, Attribute, Claimed, Consent string
}

// DefaultChecksPerJob is how many claims Verify puts in one job: the shipped policy's
// max_checks_per_job (65,536, eight ciphertexts, about 6 MB of request).
const DefaultChecksPerJob = 8 * verify.Slots

// VerifyReport is what Verify did: per claim in order, whether it matched, and the jobs it
// ran.
type VerifyReport struct {
	Matches []bool
	Jobs    []string
}

// Verify checks claims under grant (private verification, kind verify): it encrypts the
// claimed values under keys — which never leave this process — batched by dataset and
// attribute, submits them as verification jobs of at most perJob claims (0: the default),
// waits for each, and decrypts the answers. The platform sees subjects, counts and
// ciphertexts, never a claimed value; this side learns match or no match per claim and
// nothing else. A job that does not release ends Verify with an *Error carrying the job's code
// (verify_limit, say) and naming the job; claims of the jobs before it keep their answers in
// the report.
func (c *Client) Verify(ctx context.Context, grant string, keys *verify.Client, claims []Claim, perJob int) (*VerifyReport, error) {
	if perJob <= 0 {
		perJob = DefaultChecksPerJob
	}
	type group struct {
		dataset, attribute string
		rows               []int // claim indexes
	}
	var groups []*group
	byKey := map[[2]string]*group{}
	for i, cl := range claims {
		k := [2]string{cl.Dataset, cl.Attribute}
		g := byKey[k]
		if g == nil {
			g = &group{dataset: cl.Dataset, attribute: cl.Attribute}
			byKey[k] = g
			groups = append(groups, g)
		}
		g.rows = append(g.rows, i)
	}
	rep := &VerifyReport{Matches: make([]bool, len(claims))}
	// One job holds whole batches of at most perJob claims in all; a group larger than that
	// is split across jobs.
	type part struct {
		g    *group
		rows []int
	}
	var job []part
	size := 0
	flush := func() error {
		if len(job) == 0 {
			return nil
		}
		defer func() { job, size = nil, 0 }()
		req := api.VerifyRequest{PublicKey: keys.PublicKey()}
		for _, p := range job {
			b := api.VerifyBatch{Dataset: p.g.dataset, Attribute: p.g.attribute}
			values := make([]uint64, len(p.rows))
			for j, i := range p.rows {
				b.Subjects = append(b.Subjects, claims[i].Subject)
				b.Consents = append(b.Consents, claims[i].Consent)
				values[j] = verify.Encode(claims[i].Claimed)
			}
			cts, err := keys.EncryptClaims(values)
			if err != nil {
				return fmt.Errorf("client: encrypt the claims: %w", err)
			}
			b.Ciphertexts = cts
			req.Batches = append(req.Batches, b)
		}
		j, err := c.SubmitJob(ctx, api.JobRequest{Grant: grant, Kind: api.KindVerify, Verify: &req})
		if err != nil {
			return err
		}
		rep.Jobs = append(rep.Jobs, j.ID)
		if j, err = c.WaitJob(ctx, j.ID); err != nil {
			return err
		}
		if j.State != api.JobReleased {
			if j.Error != nil { // the job's own error, as an *Error: callers branch on its code
				e := *j.Error
				e.Message = fmt.Sprintf("verification job %s ended %s: %s", j.ID, j.State, e.Message)
				return &Error{APIError: e}
			}
			return fmt.Errorf("client: verification job %s ended %s", j.ID, j.State)
		}
		var res api.VerifyResult
		if err := json.Unmarshal(j.Result, &res); err != nil || len(res.Batches) != len(job) {
			return fmt.Errorf("client: verification job %s: the answer does not match the request", j.ID)
		}
		for bi, p := range job {
			m, err := keys.DecryptMatches(res.Batches[bi].Ciphertexts, len(p.rows))
			if err != nil {
				return fmt.Errorf("client: verification job %s: decrypt the answers: %w", j.ID, err)
			}
			for k, i := range p.rows {
				rep.Matches[i] = m[k]
			}
		}
		return nil
	}
	for _, g := range groups {
		for rows := g.rows; len(rows) > 0; {
			n := min(len(rows), perJob-size)
			job = append(job, part{g, rows[:n]})
			size += n
			rows = rows[n:]
			if size == perJob {
				if err := flush(); err != nil {
					return rep, err
				}
			}
		}
	}
	return rep, flush()
}
