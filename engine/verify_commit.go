package engine

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"time"

	"github.com/c1b99f93/cleanroom/engine/ledger"
	"github.com/c1b99f93/cleanroom/engine/provenance"
	"github.com/c1b99f93/cleanroom/errcode"
	"github.com/c1b99f93/cleanroom/he/verify"
	"github.com/c1b99f93/cleanroom/policy"
	"github.com/c1b99f93/cleanroom/server/api"
)

// Cut-and-choose against a malicious applicant (docs/he.md, covert security): the
// verification key is pinned only after the applicant committed to K candidates and opened
// the K−1 a challenge did not pick; every claims ciphertext is sent as K_c shares committed
// before a challenge picks the one left closed. The challenge is drawn with crypto/rand after
// the commitment is stored, stored with it, and never drawn again; a failed opening or an
// abandoned challenge suspends the grant's verification, with the evidence in provenance.

// Defaults of the cut-and-choose parameters when the policy does not set them.
const (
	defaultKeyCandidates   = 16
	defaultClaimShares     = 2
	defaultOpeningDeadline = 10 * time.Minute
)

// challengeFunc draws a challenge in [0, n). The engine's verifyChallenge test seam replaces
// crypto/rand; only this package's tests set it.
type challengeFunc func(n int) int

// verifyCut is the policy's cut-and-choose parameters, with defaults.
type verifyCut struct {
	keys, shares int
	deadline     time.Duration
}

func (e *Engine) verifyCut() verifyCut {
	p := e.policy.Params()
	c := verifyCut{keys: defaultKeyCandidates, shares: defaultClaimShares, deadline: defaultOpeningDeadline}
	if p.VerifyKeyCandidates > 0 {
		c.keys = p.VerifyKeyCandidates
	}
	if p.VerifyClaimShares > 0 {
		c.shares = p.VerifyClaimShares
	}
	if p.VerifyOpeningDeadlineSeconds > 0 {
		c.deadline = time.Duration(p.VerifyOpeningDeadlineSeconds) * time.Second
	}
	return c
}

// challenge draws an index in [0, n) with crypto/rand (or the test seam).
func (e *Engine) challenge(n int) (int, error) {
	if e.verifyChallenge != nil {
		return e.verifyChallenge(n), nil
	}
	v, err := rand.Int(rand.Reader, big.NewInt(int64(n)))
	if err != nil {
		return 0, errcode.Wrap(errcode.Internal, err, "no challenge could be drawn")
	}
	return int(v.Int64()), nil
}

// verifyNow is the deadlines' clock.
func (e *Engine) verifyNow() time.Time {
	if e.verifyClock != nil {
		return e.verifyClock()
	}
	return time.Now()
}

// validDigests checks a commitment's digests: k of them, each a hex SHA-256, all distinct.
func validDigests(ds []string, least int) error {
	if len(ds) < least || len(ds) > verify.MaxCandidates {
		return errcode.New(errcode.InvalidRequest, "a commitment holds %d to %d candidates (the policy's least), not %d", least, verify.MaxCandidates, len(ds))
	}
	seen := map[string]bool{}
	for i, d := range ds {
		if b, err := hex.DecodeString(d); err != nil || len(b) != 32 {
			return errcode.New(errcode.InvalidRequest, "candidate %d: a digest is a SHA-256 in hex (64 digits)", i)
		}
		if seen[d] {
			return errcode.New(errcode.InvalidRequest, "candidate %d: two candidates with one digest", i)
		}
		seen[d] = true
	}
	return nil
}

// CommitVerifyKey stores who's commitment to key candidates (digests, he/verify.Digest of
// each candidate public key) on grant, draws the challenge after it and returns it. A grant
// commits to keys once.
func (e *Engine) CommitVerifyKey(ctx context.Context, who policy.Principal, grant string, digests []string) (*api.VerifyChallenge, error) {
	cut := e.verifyCut()
	if err := e.sweepCommitments(ctx, grant); err != nil {
		return nil, err
	}
	if err := validDigests(digests, cut.keys); err != nil {
		return nil, err
	}
	return e.commit(ctx, who, grant, ledger.CommitKey, [][]string{digests}, cut)
}

// CommitVerifyClaims stores who's commitment to the shares of each claims ciphertext of a
// coming verification on grant, draws one challenge per ciphertext and returns them.
func (e *Engine) CommitVerifyClaims(ctx context.Context, who policy.Principal, grant string, digests [][]string) (*api.VerifyChallenge, error) {
	cut := e.verifyCut()
	if err := e.sweepCommitments(ctx, grant); err != nil {
		return nil, err
	}
	if len(digests) == 0 || len(digests) > MaxVerifyChecks/verify.Slots {
		return nil, errcode.New(errcode.InvalidRequest, "a claims commitment covers 1 to %d ciphertexts", MaxVerifyChecks/verify.Slots)
	}
	for i, ds := range digests {
		if len(ds) != len(digests[0]) {
			return nil, errcode.New(errcode.InvalidRequest, "ciphertext %d: every ciphertext has the same number of shares", i)
		}
		if err := validDigests(ds, cut.shares); err != nil {
			return nil, errcode.Wrap(errcode.InvalidRequest, err, "ciphertext %d: %s", i, errcode.Public(err).Message)
		}
	}
	return e.commit(ctx, who, grant, ledger.CommitClaims, digests, cut)
}

func (e *Engine) commit(ctx context.Context, who policy.Principal, grant, kind string, digests [][]string, cut verifyCut) (*api.VerifyChallenge, error) {
	prefix := map[string]string{ledger.CommitKey: "vk-", ledger.CommitClaims: "vc-"}[kind]
	idb := make([]byte, 12)
	if _, err := rand.Read(idb); err != nil {
		return nil, errcode.Wrap(errcode.Internal, err, "no commitment id could be drawn")
	}
	now := e.verifyNow().UTC()
	c := ledger.Commitment{ID: prefix + hex.EncodeToString(idb), Grant: grant, Kind: kind, Digests: digests, Created: now, Deadline: now.Add(cut.deadline)}
	// The challenge is drawn only now that the commitment is fixed, and stored with it.
	for _, ds := range digests {
		j, err := e.challenge(len(ds))
		if err != nil {
			return nil, err
		}
		c.Challenges = append(c.Challenges, j)
	}
	if err := e.ledger.AddCommitment(ctx, c); err != nil {
		return nil, ledgerVerifyError(err)
	}
	if _, err := e.record(ctx, c.ID, &provenance.VerifyCommitted{Grant: grant, Commitment: c.ID, By: provenance.Principal(who), Kind: kind,
		Candidates: len(digests[0]), Digests: provenance.DocOf(digests), Challenges: c.Challenges, Deadline: c.Deadline.Format(time.RFC3339)}); err != nil {
		return nil, err
	}
	return challengeDoc(c), nil
}

func challengeDoc(c ledger.Commitment) *api.VerifyChallenge {
	return &api.VerifyChallenge{Grant: c.Grant, Commitment: c.ID, Kind: c.Kind, Candidates: len(c.Digests[0]), Challenges: c.Challenges,
		Deadline: c.Deadline, State: c.State}
}

// ledgerVerifyError turns the ledger's commitment errors into the boundary's.
func ledgerVerifyError(err error) error {
	switch {
	case errors.Is(err, ledger.ErrVerifySuspended):
		return errcode.Wrap(errcode.VerifySuspended, err, "the grant's verification is suspended (a failed or abandoned opening; see GET /v1/grants/{id}/verify): a new grant is needed")
	case errors.Is(err, ledger.ErrKeyNotPinned):
		return errcode.Wrap(errcode.VerifyKeyNotPinned, err, "the grant has no pinned verification key: commit to key candidates and open them first (cleanroom verify check does)")
	case errors.Is(err, ledger.ErrKeyPinned):
		return errcode.Wrap(errcode.VerifyKeyNotPinned, err, "this grant verifies with another public key, the one it pinned; a new key needs a new grant")
	case errors.Is(err, ledger.ErrKeyCommitted):
		return errcode.Wrap(errcode.Conflict, err, "the grant already committed to key candidates; a grant commits once")
	case errors.Is(err, ledger.ErrCommitmentUsed):
		return errcode.Wrap(errcode.VerifyOpeningReplayed, err, "the commitment was opened and used already; commit again for another verification")
	case errors.Is(err, ledger.ErrNoCommitment):
		return errcode.Wrap(errcode.NotFound, err, "no such commitment on this grant")
	case errors.Is(err, ledger.ErrCommitmentState):
		return errcode.Wrap(errcode.Conflict, err, "the commitment is not open for this step")
	}
	return errcode.Wrap(errcode.Internal, err, "the ledger is unavailable")
}

// sweepCommitments ends grant's commitments past their deadline: a challenged one is
// abandoned, which suspends the grant's verification (and is recorded); an opened one that
// no job used expires.
func (e *Engine) sweepCommitments(ctx context.Context, grant string) error {
	overdue, err := e.ledger.Overdue(ctx, grant, e.verifyNow())
	if err != nil {
		return ledgerVerifyError(err)
	}
	for _, c := range overdue {
		if c.State == ledger.StateOpened {
			if err := e.ledger.SetCommitmentState(ctx, c.ID, ledger.StateExpired, ""); err != nil {
				return ledgerVerifyError(err)
			}
			continue
		}
		if err := e.suspend(ctx, c, &provenance.VerifySuspended{Reason: "abandoned", Detail: "the challenge was not opened before its deadline"}, ledger.StateAbandoned); err != nil {
			return err
		}
	}
	return nil
}

// suspend ends commitment c as state, suspends its grant's verification and records ev.
// The ledger is written first: verification stops even if the log cannot be written.
func (e *Engine) suspend(ctx context.Context, c ledger.Commitment, ev *provenance.VerifySuspended, state string) error {
	ctx = context.WithoutCancel(ctx)
	if err := e.ledger.Suspend(ctx, c.Grant, c.ID, state, ev.Reason); err != nil {
		return ledgerVerifyError(err)
	}
	ev.Grant, ev.Commitment, ev.Kind = c.Grant, c.ID, c.Kind
	_, err := e.record(ctx, c.ID, ev)
	return err
}

// cheated suspends the grant for a failed opening of candidate k of object obj of c.
func (e *Engine) cheated(ctx context.Context, c ledger.Commitment, obj, k int, opening []byte, cause error) error {
	ev := &provenance.VerifySuspended{Reason: "opening_mismatch", Object: obj, Candidate: k, Committed: c.Digests[obj][k],
		Opening: base64.StdEncoding.EncodeToString(opening), Detail: publicDetail(cause)}
	if err := e.suspend(ctx, c, ev, ledger.StateCheated); err != nil {
		return err
	}
	what := "key candidate"
	if c.Kind == ledger.CommitClaims {
		what = fmt.Sprintf("share of claims ciphertext %d,", obj)
	}
	return errcode.New(errcode.VerifyOpeningMismatch, "the opening of %s %d does not open its commitment %s: this is recorded as evidence of cheating and the grant's verification is suspended", what, k, c.ID)
}

// publicDetail is the fixed text of he/verify's opening errors (no value in any of them).
func publicDetail(err error) string {
	if errors.Is(err, verify.ErrOpeningMismatch) {
		return err.Error()
	}
	return "the opening does not match its commitment"
}

// openedCommitment reads commitment id of grant for an opening and refuses it unless it is
// challenged (or, for claims, opened: a job refused after opening may be submitted again
// before the deadline).
func (e *Engine) openedCommitment(ctx context.Context, grant, id, kind string) (ledger.Commitment, error) {
	if err := e.sweepCommitments(ctx, grant); err != nil {
		return ledger.Commitment{}, err
	}
	c, err := e.ledger.GetCommitment(ctx, grant, id)
	if err != nil {
		return c, ledgerVerifyError(err)
	}
	switch {
	case c.Kind != kind:
		return c, errcode.New(errcode.InvalidRequest, "commitment %s is not a %s commitment", id, kind)
	case c.State == ledger.StateUsed:
		return c, errcode.New(errcode.VerifyOpeningReplayed, "commitment %s was opened and used already; every commitment is opened once", id)
	case c.State == ledger.StateAbandoned || c.State == ledger.StateExpired:
		return c, errcode.New(errcode.VerifyOpeningLate, "commitment %s passed its deadline (%s) unopened or unused", id, c.Deadline.Format(time.RFC3339))
	case c.State == ledger.StateCheated:
		return c, errcode.New(errcode.VerifySuspended, "commitment %s failed its opening; the grant's verification is suspended", id)
	case c.State == ledger.StateOpened && kind == ledger.CommitKey:
		return c, errcode.New(errcode.VerifyOpeningReplayed, "commitment %s was opened already", id)
	}
	st, err := e.ledger.Status(ctx, grant)
	if err != nil {
		return c, ledgerVerifyError(err)
	}
	if st.Suspended != "" {
		return c, ledgerVerifyError(ledger.ErrVerifySuspended)
	}
	return c, nil
}

// OpenVerifyKey opens grant's key commitment: pk is the challenged candidate's public key,
// openings those of every other candidate in order. When each rebuilds its digest, pk is
// pinned; a mismatch suspends the grant's verification with the evidence.
func (e *Engine) OpenVerifyKey(ctx context.Context, grant string, pk []byte, openings [][]byte) (*api.VerifyStatus, error) {
	if err := e.sweepCommitments(ctx, grant); err != nil {
		return nil, err
	}
	st, err := e.ledger.Status(ctx, grant)
	if err != nil {
		return nil, ledgerVerifyError(err)
	}
	id := ""
	for _, c := range st.Commitments {
		if c.Kind == ledger.CommitKey {
			id = c.ID
		}
	}
	if id == "" {
		return nil, errcode.New(errcode.VerifyKeyNotPinned, "the grant has not committed to key candidates: POST /v1/grants/%s/verify/key first", grant)
	}
	c, err := e.openedCommitment(ctx, grant, id, ledger.CommitKey)
	if err != nil {
		return nil, err
	}
	digests, j := c.Digests[0], c.Challenges[0]
	if len(openings) != len(digests)-1 {
		return nil, errcode.New(errcode.InvalidRequest, "the challenge keeps candidate %d closed: open the other %d, in order", j, len(digests)-1)
	}
	if verify.Digest(pk) != digests[j] {
		return nil, errcode.New(errcode.InvalidRequest, "the public key is not the challenged candidate %d the grant committed to", j)
	}
	if _, err := verify.NewEvaluator(pk); err != nil {
		return nil, errcode.Wrap(errcode.MalformedCiphertext, err, "the challenged candidate's public key does not decode as the platform's verification parameters (%s)", verify.ParameterSet)
	}
	for n, k := 0, 0; k < len(digests); k++ {
		if k == j {
			continue
		}
		err := verify.CheckKeyOpening(openings[n], digests[k])
		switch {
		case errors.Is(err, verify.ErrOpeningMismatch):
			return nil, e.cheated(ctx, c, 0, k, openings[n], err)
		case err != nil:
			return nil, errcode.Wrap(errcode.InvalidRequest, err, "opening %d (candidate %d) is not a key opening of the platform's parameters", n, k)
		}
		n++
	}
	if err := e.ledger.PinKey(ctx, grant, c.ID, sha(pk)); err != nil {
		return nil, ledgerVerifyError(err)
	}
	if _, err := e.record(ctx, c.ID, &provenance.VerifyOpened{Grant: grant, Commitment: c.ID, Kind: c.Kind, KeyDigest: sha(pk)}); err != nil {
		return nil, err
	}
	return e.VerifyStatus(ctx, grant)
}

// VerifyStatus is grant's verification state (after ending overdue commitments).
func (e *Engine) VerifyStatus(ctx context.Context, grant string) (*api.VerifyStatus, error) {
	if err := e.sweepCommitments(ctx, grant); err != nil {
		return nil, err
	}
	st, err := e.ledger.Status(ctx, grant)
	if err != nil {
		return nil, ledgerVerifyError(err)
	}
	cut := e.verifyCut()
	out := &api.VerifyStatus{Grant: grant, State: "unpinned", KeyDigest: st.KeyDigest, KeyCandidates: cut.keys, ClaimShares: cut.shares,
		DeadlineSeconds: int(cut.deadline / time.Second), Commitments: []api.VerifyChallenge{}}
	for _, c := range st.Commitments {
		out.Commitments = append(out.Commitments, *challengeDoc(c))
		if c.Kind == ledger.CommitKey && c.State == ledger.StateChallenged {
			out.State = "challenged"
		}
	}
	if st.KeyDigest != "" {
		out.State = "pinned"
	}
	if st.Suspended != "" {
		out.State = "suspended"
		out.Suspension = &api.VerifySuspension{Reason: st.Suspended, Commitment: st.SuspendedBy}
	}
	return out, nil
}

// openClaims checks a verification's openings against its claims commitment and sets the
// ciphertexts the domain evaluates: per claims ciphertext, the closed share plus the opened
// shares' plaintexts. It runs when the job is submitted (Admit) and again when it runs; the
// first accepted opening moves the commitment to opened.
func (e *Engine) openClaims(ctx context.Context, s *jobState) error {
	r := s.v.req
	if r.Commitment == "" {
		return errcode.New(errcode.InvalidRequest, "a verification opens a claims commitment: POST /v1/grants/%s/verify/commitments with the shares' digests first", s.job.Grant)
	}
	c, err := e.openedCommitment(ctx, s.job.Grant, r.Commitment, ledger.CommitClaims)
	if err != nil {
		return err
	}
	st, err := e.ledger.Status(ctx, s.job.Grant)
	if err != nil {
		return ledgerVerifyError(err)
	}
	if st.KeyDigest != s.v.keyDigest {
		return errcode.New(errcode.VerifyKeyNotPinned, "the request's public key is not the grant's pinned key")
	}
	total := 0
	for _, b := range r.Batches {
		total += len(b.Ciphertexts)
	}
	if total != len(c.Digests) {
		return errcode.New(errcode.InvalidRequest, "commitment %s covers %d claims ciphertexts; the request carries %d", c.ID, len(c.Digests), total)
	}
	chk, err := verify.NewShareChecker(r.PublicKey)
	if err != nil {
		return errcode.Wrap(errcode.MalformedCiphertext, err, "the public key does not decode as the platform's verification parameters (%s)", verify.ParameterSet)
	}
	s.v.combined = make([][][]byte, len(r.Batches))
	obj := 0
	for bi, b := range r.Batches {
		if len(b.Openings) != len(b.Ciphertexts) {
			return errcode.New(errcode.InvalidRequest, "batch %d: one list of openings per ciphertext", bi+1)
		}
		for i, closed := range b.Ciphertexts {
			digests, j := c.Digests[obj], c.Challenges[obj]
			if len(b.Openings[i]) != len(digests)-1 {
				return errcode.New(errcode.InvalidRequest, "batch %d, ciphertext %d: the challenge keeps share %d closed: open the other %d, in order", bi+1, i+1, j, len(digests)-1)
			}
			if verify.Digest(closed) != digests[j] {
				return errcode.New(errcode.InvalidRequest, "batch %d, ciphertext %d: the ciphertext is not the share %d committed to", bi+1, i+1, j)
			}
			var pts [][]uint64
			for n, k := 0, 0; k < len(digests); k++ {
				if k == j {
					continue
				}
				pt, err := chk.Open(b.Openings[i][n], digests[k])
				switch {
				case errors.Is(err, verify.ErrOpeningMismatch):
					return e.cheated(ctx, c, obj, k, b.Openings[i][n], err)
				case err != nil:
					return errcode.Wrap(errcode.InvalidRequest, err, "batch %d, ciphertext %d, opening %d: not a share opening of the platform's parameters", bi+1, i+1, n)
				}
				pts = append(pts, pt)
				n++
			}
			combined, err := chk.Combine(closed, pts)
			if err != nil {
				return errcode.Wrap(errcode.MalformedCiphertext, err, "batch %d, ciphertext %d: the closed share does not decode", bi+1, i+1)
			}
			s.v.combined[bi] = append(s.v.combined[bi], combined)
			obj++
		}
	}
	if c.State == ledger.StateChallenged {
		if err := e.ledger.SetCommitmentState(ctx, c.ID, ledger.StateOpened, ""); err != nil {
			return ledgerVerifyError(err)
		}
		if _, err := e.record(ctx, c.ID, &provenance.VerifyOpened{Grant: c.Grant, Commitment: c.ID, Kind: c.Kind, Job: s.id}); err != nil {
			return err
		}
	}
	return nil
}
