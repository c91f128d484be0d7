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

// VerifyStatus is GET /v1/grants/{id}/verify: the grant's verification key, cut-and-choose
// state and commitments.
func (c *Client) VerifyStatus(ctx context.Context, grant string) (*api.VerifyStatus, error) {
	if err := requireID("grant id", grant); err != nil {
		return nil, err
	}
	return get[api.VerifyStatus](ctx, c, path("v1", "grants", grant, "verify"), nil)
}

// CommitVerifyKey is POST /v1/grants/{id}/verify/key: the candidates' digests; the answer is
// the challenge.
func (c *Client) CommitVerifyKey(ctx context.Context, grant string, digests []string) (*api.VerifyChallenge, error) {
	if err := requireID("grant id", grant); err != nil {
		return nil, err
	}
	return post[api.VerifyChallenge](ctx, c, path("v1", "grants", grant, "verify", "key"), api.VerifyKeyCommitRequest{Candidates: digests})
}

// OpenVerifyKey is POST /v1/grants/{id}/verify/key/open.
func (c *Client) OpenVerifyKey(ctx context.Context, grant string, req api.VerifyKeyOpenRequest) (*api.VerifyStatus, error) {
	if err := requireID("grant id", grant); err != nil {
		return nil, err
	}
	return post[api.VerifyStatus](ctx, c, path("v1", "grants", grant, "verify", "key", "open"), req)
}

// CommitVerifyClaims is POST /v1/grants/{id}/verify/commitments: per claims ciphertext, its
// shares' digests; the answer holds one challenge per ciphertext.
func (c *Client) CommitVerifyClaims(ctx context.Context, grant string, digests [][]string) (*api.VerifyChallenge, error) {
	if err := requireID("grant id", grant); err != nil {
		return nil, err
	}
	return post[api.VerifyChallenge](ctx, c, path("v1", "grants", grant, "verify", "commitments"), api.VerifyClaimsCommitRequest{Ciphertexts: digests})
}

// PinVerifyKey runs the key cut-and-choose on grant: it commits to the candidates' digests,
// opens every candidate but the challenged one, and returns the challenged candidate, now the
// grant's pinned key. The challenged candidate's seed never leaves this process; the opened
// ones are spent (their secret keys are public now) and must not be used.
func (c *Client) PinVerifyKey(ctx context.Context, grant string, cands []*verify.KeyCandidate) (*verify.KeyCandidate, error) {
	digests := make([]string, len(cands))
	for i, k := range cands {
		digests[i] = k.Digest
	}
	ch, err := c.CommitVerifyKey(ctx, grant, digests)
	if err != nil {
		return nil, err
	}
	if len(ch.Challenges) != 1 || ch.Challenges[0] < 0 || ch.Challenges[0] >= len(cands) {
		return nil, fmt.Errorf("client: the platform's challenge does not fit %d candidates", len(cands))
	}
	j := ch.Challenges[0]
	req := api.VerifyKeyOpenRequest{PublicKey: cands[j].PublicKey()}
	for i, k := range cands {
		if i != j {
			req.Openings = append(req.Openings, k.Opening())
		}
	}
	if _, err := c.OpenVerifyKey(ctx, grant, req); err != nil {
		return nil, err
	}
	return cands[j], nil
}

// Verify checks claims under grant (private verification, kind verify): it encrypts the
// claimed values under keys — the grant's pinned key, which never leaves this process —
// batched by dataset and attribute, each claims ciphertext as the policy's number of
// additive shares; per job of at most perJob claims (0: the default) it commits to the
// shares, opens what the platform's challenge did not pick, waits for the job and decrypts
// the answers. The platform sees subjects, counts and
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
	st, err := c.VerifyStatus(ctx, grant)
	if err != nil {
		return rep, err
	}
	shares := max(st.ClaimShares, verify.MinCandidates)
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
		var all [][]verify.ClaimShares // per batch
		var digests [][]string
		for _, p := range job {
			b := api.VerifyBatch{Dataset: p.g.dataset, Attribute: p.g.attribute}
			values := make([]uint64, len(p.rows))
			for j, i := range p.rows {
				b.Subjects = append(b.Subjects, claims[i].Subject)
				b.Consents = append(b.Consents, claims[i].Consent)
				values[j] = verify.Encode(claims[i].Claimed)
			}
			cs, err := keys.EncryptClaimShares(values, shares)
			if err != nil {
				return fmt.Errorf("client: encrypt the claims: %w", err)
			}
			for _, sh := range cs {
				digests = append(digests, sh.Digests())
			}
			all = append(all, cs)
			req.Batches = append(req.Batches, b)
		}
		// Commit, then open what the challenge did not pick: the closed share goes as the
		// claims ciphertext, the others as their openings (uniform, whatever the claims).
		ch, err := c.CommitVerifyClaims(ctx, grant, digests)
		if err != nil {
			return err
		}
		if len(ch.Challenges) != len(digests) {
			return fmt.Errorf("client: the platform's challenges do not fit %d ciphertexts", len(digests))
		}
		req.Commitment = ch.Commitment
		obj := 0
		for bi, cs := range all {
			for _, sh := range cs {
				j := ch.Challenges[obj]
				if j < 0 || j >= len(sh.Ciphertexts) {
					return fmt.Errorf("client: the platform's challenge %d does not fit %d shares", j, len(sh.Ciphertexts))
				}
				req.Batches[bi].Ciphertexts = append(req.Batches[bi].Ciphertexts, sh.Ciphertexts[j])
				var open [][]byte
				for k, o := range sh.Openings {
					if k != j {
						open = append(open, o)
					}
				}
				req.Batches[bi].Openings = append(req.Batches[bi].Openings, open)
				obj++
			}
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
