package verify

import (
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"

	"github.com/tuneinsight/lattigo/v6/core/rlwe"
	"github.com/tuneinsight/lattigo/v6/ring"
	"github.com/tuneinsight/lattigo/v6/schemes/bgv"
	"github.com/tuneinsight/lattigo/v6/utils/sampling"
)

// Cut-and-choose against a malicious applicant (covert security, Aumann–Lindell).
//
// The domain cannot check that a public key or a claims ciphertext is well formed without a
// zero-knowledge proof. Instead the applicant makes K objects, each determined by its own
// 32-byte seed, commits to all K (their SHA-256), and opens all but the one a challenge drawn
// after the commitment picks; the opened ones are rebuilt and compared with their digests.
// A malformed object escapes with probability 1/K; an opening that does not rebuild its
// digest is evidence of cheating anyone can check again from the opening and the digest.
//
//   - Keys (KeyCandidate): K candidate key pairs; the challenged one is pinned, the others
//     are opened by their seed and their error polynomial.
//   - Claims (ClaimShares): each claims ciphertext is K additive shares mod t of the claims
//     vector, each a public-key encryption under the pinned key determined by its seed; all
//     but one share's plaintext come from their seed, so any K−1 shares are jointly uniform
//     and opening them reveals nothing about the claims. The domain evaluates the unopened
//     share plus the opened shares' plaintexts (CombineShares).
//
// What a seed determines is derived with HKDF-SHA-256 (one label per use) into lattigo's
// keyed BLAKE2b PRNG, read by lattigo's own samplers (ternary, uniform). The Gaussian errors
// are drawn from the seed too, but an opening carries them explicitly and the verifier checks
// their bound: lattigo's Gaussian sampler uses floating point (math.Exp, math.Log, and
// expressions a compiler may fuse into FMA on some architectures), so its output from a
// seed is not guaranteed bit-identical across machines, and an honest opening must never
// fail on another machine. Lattigo's Encryptor and KeyGenerator key their Gaussian and
// ternary samplers from crypto/rand with no hook (only the uniform part takes a PRNG), so the
// sums below are lattigo's ring operations in the order of rlwe's encryptZeroSkFromC1QP
// (keys) and encryptZeroPkNoP (encryption); tests check the results with lattigo's own
// decryptor and noise measure.

// SeedSize is the size of a candidate's or a share's seed.
const SeedSize = 32

// MinCandidates is the least number of candidates (keys) or shares (claims) of a cut-and-
// choose: with one there is nothing to open. MaxCandidates bounds both (a request's size).
const (
	MinCandidates = 2
	MaxCandidates = 64
)

// Opening kinds, after the key and ciphertext kinds in the header.
const (
	kindKeyOpening   kind = 5
	kindShareOpening kind = 6
)

// Share opening modes: the plaintext comes from the seed, or is carried explicitly (the one
// share that makes the sum equal the claims).
const (
	plaintextFromSeed = 0
	plaintextExplicit = 1
)

// errorBound is the largest |coefficient| lattigo's truncated Gaussian sampler returns for
// the parameter set's error distribution (σ = 3.2, bound 6σ = 19.2: values are rounded after
// the bound test, so 19).
func errorBound(p bgv.Parameters) int {
	xe, ok := p.Xe().(ring.DiscreteGaussian)
	if !ok {
		return 0
	}
	return int(math.Floor(xe.Bound + 0.5))
}

// NewSeed draws a seed from crypto/rand.
func NewSeed() ([]byte, error) {
	seed := make([]byte, SeedSize)
	if _, err := rand.Read(seed); err != nil {
		return nil, fmt.Errorf("verify: reading crypto/rand: %w", err)
	}
	return seed, nil
}

// derive returns the 32-byte key for one use of a seed (HKDF-Expand with SHA-256; the seed
// is uniform, so it serves as the pseudorandom key).
func derive(seed []byte, use string) ([]byte, error) {
	return hkdf.Expand(sha256.New, seed, "cleanroom/he/verify/"+use+"/v1", 32)
}

// derivedPRNG is lattigo's keyed BLAKE2b PRNG for one use of a seed.
func derivedPRNG(seed []byte, use string) (sampling.PRNG, error) {
	k, err := derive(seed, use)
	if err != nil {
		return nil, err
	}
	return sampling.NewKeyedPRNG(k)
}

// sampleFromSeed reads poly (coefficient domain) from lattigo's sampler for X, keyed by use
// of seed.
func sampleFromSeed(p bgv.Parameters, seed []byte, use string, X ring.DistributionParameters, polys ...ring.Poly) error {
	prng, err := derivedPRNG(seed, use)
	if err != nil {
		return err
	}
	s, err := ring.NewSampler(prng, p.RingQ(), X, false)
	if err != nil {
		return err
	}
	for _, poly := range polys {
		s.Read(poly)
	}
	return nil
}

// smallPoly is a polynomial with small signed coefficients (an error), in the clear.
type smallPoly []int8

// smallOf reads the centred coefficients of poly (coefficient domain, first prime) and
// reports whether each is within bound.
func smallOf(p bgv.Parameters, poly ring.Poly, bound int) (smallPoly, bool) {
	q := p.RingQ().ModuliChain()[0]
	out := make(smallPoly, p.N())
	for i, c := range poly.Coeffs[0] {
		v := int64(c)
		if c > q/2 {
			v = -int64(q - c)
		}
		if v < -int64(bound) || v > int64(bound) {
			return nil, false
		}
		out[i] = int8(v)
	}
	return out, true
}

// poly lifts the small polynomial into Q (coefficient domain), at the ring's every prime.
func (s smallPoly) poly(p bgv.Parameters) ring.Poly {
	r := p.RingQ()
	out := r.NewPoly()
	for j, q := range r.ModuliChain()[:r.Level()+1] {
		row := out.Coeffs[j]
		for i, v := range s {
			if v < 0 {
				row[i] = q - uint64(-int64(v))
			} else {
				row[i] = uint64(v)
			}
		}
	}
	return out
}

// readSmall decodes n int8 coefficients within bound.
func readSmall(b []byte, n, bound int) (smallPoly, bool) {
	if len(b) != n {
		return nil, false
	}
	out := make(smallPoly, n)
	for i, c := range b {
		v := int8(c)
		if int(v) < -bound || int(v) > bound {
			return nil, false
		}
		out[i] = v
	}
	return out, true
}

func (s smallPoly) bytes() []byte {
	out := make([]byte, len(s))
	for i, v := range s {
		out[i] = byte(v)
	}
	return out
}

// ---- Keys -------------------------------------------------------------------------------

// KeyCandidate is one of the K candidate key pairs an applicant commits to before its key is
// pinned: everything in it is determined by Seed. The seed is the secret key: it stays on the
// applicant's machine unless the platform's challenge asks to open this candidate, which is
// then never used.
type KeyCandidate struct {
	// Seed determines the candidate (SeedSize bytes).
	Seed []byte
	// Digest is what the applicant commits to: Digest of the public key.
	Digest string

	client  *Client
	opening []byte
}

// NewKeyCandidate makes the candidate key pair seed determines: the secret key s from
// lattigo's ternary sampler, the public key's uniform half a from the seed lattigo's uniform
// sampler expands (as in GenerateKeys), and its error e from lattigo's Gaussian sampler, each
// keyed by its own derivation of seed; pk = (−a·s + e, a).
func NewKeyCandidate(seed []byte) (*KeyCandidate, error) {
	if len(seed) != SeedSize {
		return nil, fmt.Errorf("%w: a seed is %d bytes", ErrMalformedOpening, SeedSize)
	}
	p, err := parameters()
	if err != nil {
		return nil, ErrInternal
	}
	e := p.RingQ().NewPoly()
	if err := sampleFromSeed(p, seed, "key/error", p.Xe(), e); err != nil {
		return nil, ErrInternal
	}
	small, ok := smallOf(p, e, errorBound(p))
	if !ok {
		return nil, ErrInternal
	}
	sk, pk, err := keyFrom(p, seed, small)
	if err != nil {
		return nil, err
	}
	opening := append(header(kindKeyOpening), seed...)
	opening = append(opening, small.bytes()...)
	return &KeyCandidate{Seed: append([]byte(nil), seed...), Digest: Digest(pk), client: &Client{params: p, sk: sk, pk: pk}, opening: opening}, nil
}

// GenerateKeyCandidates makes k candidates from fresh seeds (crypto/rand).
func GenerateKeyCandidates(k int) ([]*KeyCandidate, error) {
	if k < MinCandidates || k > MaxCandidates {
		return nil, fmt.Errorf("%w: %d candidates (%d to %d)", ErrCandidateCount, k, MinCandidates, MaxCandidates)
	}
	out := make([]*KeyCandidate, k)
	for i := range out {
		seed, err := NewSeed()
		if err != nil {
			return nil, err
		}
		if out[i], err = NewKeyCandidate(seed); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Client is the candidate's key pair, for encrypting and decrypting once it is pinned.
func (k *KeyCandidate) Client() *Client { return k.client }

// PublicKey is the candidate's serialized public key.
func (k *KeyCandidate) PublicKey() []byte { return k.client.PublicKey() }

// Opening is what opens this candidate: its seed and its error polynomial. Sending it gives
// the secret key away; it is sent only for a candidate the challenge did not pick.
func (k *KeyCandidate) Opening() []byte { return append([]byte(nil), k.opening...) }

// keyFrom builds the key pair seed and the error e determine.
func keyFrom(p bgv.Parameters, seed []byte, e smallPoly) (*rlwe.SecretKey, []byte, error) {
	ringQ := p.RingQ()
	sk := rlwe.NewSecretKey(p)
	if err := sampleFromSeed(p, seed, "key/secret", p.Xs(), sk.Value.Q); err != nil {
		return nil, nil, ErrInternal
	}
	// As lattigo's genSecretKeyFromSampler: NTT and Montgomery form.
	ringQ.NTT(sk.Value.Q, sk.Value.Q)
	ringQ.MForm(sk.Value.Q, sk.Value.Q)
	aSeed, err := derive(seed, "key/a")
	if err != nil {
		return nil, nil, ErrInternal
	}
	a, err := expandSeed(p, aSeed)
	if err != nil {
		return nil, nil, ErrInternal
	}
	// As lattigo's encryptZeroSkFromC1QP without P: c0 = MForm(NTT(e)) − a·s, c1 = a.
	pk := rlwe.NewPublicKey(p)
	c0 := pk.Value[0].Q
	c0.Copy(e.poly(p))
	ringQ.NTT(c0, c0)
	ringQ.MForm(c0, c0)
	ringQ.MulCoeffsMontgomeryThenSub(a.Q, sk.Value.Q, c0)
	pk.Value[1].Q.Copy(a.Q)
	b, err := marshalPublicKey(aSeed, pk)
	if err != nil {
		return nil, nil, err
	}
	return sk, b, nil
}

// CheckKeyOpening checks that opening opens a candidate whose public key has digest: its
// error is within the Gaussian's bound and the key its seed and error make has that digest.
// A malformed opening (header, size) is ErrMalformedOpening; one that decodes but does not
// open its commitment is ErrOpeningMismatch: evidence of cheating, which anyone can check
// again from the opening and the digest.
func CheckKeyOpening(opening []byte, digest string) (err error) {
	p, err := parameters()
	if err != nil {
		return ErrInternal
	}
	defer func() {
		if recover() != nil {
			err = ErrInternal
		}
	}()
	payload, err := readHeader(opening, kindKeyOpening, ErrMalformedOpening)
	if err != nil {
		return err
	}
	if len(payload) != SeedSize+p.N() {
		return fmt.Errorf("%w: a key opening is a seed and %d error coefficients", ErrMalformedOpening, p.N())
	}
	e, ok := readSmall(payload[SeedSize:], p.N(), errorBound(p))
	if !ok {
		return fmt.Errorf("%w: the error is larger than the parameter set's Gaussian allows", ErrOpeningMismatch)
	}
	_, pk, err := keyFrom(p, payload[:SeedSize], e)
	if err != nil {
		return err
	}
	if Digest(pk) != digest {
		return fmt.Errorf("%w: the key the seed makes is not the one committed to", ErrOpeningMismatch)
	}
	return nil
}

// ---- Claims -----------------------------------------------------------------------------

// ClaimShares is one claims ciphertext's cut-and-choose: K ciphertexts of additive shares
// mod t of its slot values, with what opens each.
type ClaimShares struct {
	// Ciphertexts are the shares, claims ciphertexts under the pinned key.
	Ciphertexts [][]byte
	// Openings open each share: its seed, its two error polynomials and, for the share
	// whose plaintext is not drawn from its seed, that plaintext. Opening share i reveals
	// its plaintext, a uniform vector whatever the claims while another share stays closed.
	Openings [][]byte
}

// Digests are the shares' digests, the commitment.
func (c ClaimShares) Digests() []string {
	out := make([]string, len(c.Ciphertexts))
	for i, ct := range c.Ciphertexts {
		out[i] = Digest(ct)
	}
	return out
}

// EncryptClaimShares encrypts claimed slot values (from Encode) as EncryptClaims does, Slots
// per claims ciphertext, but each claims ciphertext as k additive shares: shares 0..k−2 have
// plaintexts drawn from their seeds, share k−1 the claims minus their sum mod t; every share
// is a public-key encryption under this client's key determined by its seed (fresh from
// crypto/rand) and, for the last, its plaintext.
func (c *Client) EncryptClaimShares(values []uint64, k int) ([]ClaimShares, error) {
	if k < MinCandidates || k > MaxCandidates {
		return nil, fmt.Errorf("%w: %d shares (%d to %d)", ErrCandidateCount, k, MinCandidates, MaxCandidates)
	}
	if len(values) > MaxChecks {
		return nil, ErrTooManyChecks
	}
	for i, v := range values {
		if v >= PlaintextModulus {
			return nil, fmt.Errorf("claim %d: %w", i, ErrValueOutOfRange)
		}
	}
	pk, err := unmarshalPublicKey(c.params, c.pk)
	if err != nil {
		return nil, err
	}
	n := CiphertextsFor(len(values))
	seeds := make([][]byte, n*k)
	for i := range seeds {
		if seeds[i], err = NewSeed(); err != nil {
			return nil, err
		}
	}
	out := make([]ClaimShares, n)
	err = parallel(n, func() func(i int) error {
		sh := newSharer(c.params, pk)
		return func(i int) error {
			sum := make([]uint64, Slots)
			copy(sum, values[i*Slots:min(len(values), (i+1)*Slots)])
			cs := ClaimShares{Ciphertexts: make([][]byte, k), Openings: make([][]byte, k)}
			for j := range k {
				seed := seeds[i*k+j]
				var pt []uint64
				if j < k-1 {
					var err error
					if pt, err = sh.plaintextFromSeed(seed); err != nil {
						return err
					}
					for s := range sum { // sum becomes the claims minus the shares so far
						sum[s] = (sum[s] + PlaintextModulus - pt[s]) % PlaintextModulus
					}
				} else {
					pt = sum
				}
				e0, e1 := c.params.RingQ().NewPoly(), c.params.RingQ().NewPoly()
				if err := sampleFromSeed(c.params, seed, "share/error", c.params.Xe(), e0, e1); err != nil {
					return ErrInternal
				}
				s0, ok0 := smallOf(c.params, e0, errorBound(c.params))
				s1, ok1 := smallOf(c.params, e1, errorBound(c.params))
				if !ok0 || !ok1 {
					return ErrInternal
				}
				ct, err := sh.encrypt(seed, s0, s1, pt)
				if err != nil {
					return err
				}
				if cs.Ciphertexts[j], err = marshalCiphertext(kindClaims, ct); err != nil {
					return err
				}
				cs.Openings[j] = shareOpening(seed, s0, s1, pt, j == k-1)
			}
			out[i] = cs
			return nil
		}
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// shareOpening encodes a share's opening.
func shareOpening(seed []byte, e0, e1 smallPoly, pt []uint64, explicit bool) []byte {
	out := append(header(kindShareOpening), seed...)
	if !explicit {
		out = append(out, plaintextFromSeed)
	} else {
		out = append(out, plaintextExplicit)
	}
	out = append(out, e0.bytes()...)
	out = append(out, e1.bytes()...)
	if explicit {
		for _, v := range pt {
			out = binary.LittleEndian.AppendUint64(out, v)
		}
	}
	return out
}

// sharer holds one goroutine's lattigo state for building shares.
type sharer struct {
	p   bgv.Parameters
	pk  *rlwe.PublicKey
	ecd *bgv.Encoder
}

func newSharer(p bgv.Parameters, pk *rlwe.PublicKey) *sharer {
	return &sharer{p: p, pk: pk, ecd: bgv.NewEncoder(p)}
}

// plaintextFromSeed draws Slots values uniform in Z_t from lattigo's uniform sampler over
// the plaintext ring, keyed by the seed.
func (sh *sharer) plaintextFromSeed(seed []byte) ([]uint64, error) {
	prng, err := derivedPRNG(seed, "share/plaintext")
	if err != nil {
		return nil, ErrInternal
	}
	poly := sh.p.RingT().NewPoly()
	ring.NewUniformSampler(prng, sh.p.RingT()).Read(poly)
	return append([]uint64(nil), poly.Coeffs[0][:Slots]...), nil
}

// encrypt is the public-key encryption of the slot values pt that seed and the errors
// determine, at the top level: as lattigo's encryptZeroPkNoP then addPtToCt, with u from
// lattigo's ternary sampler keyed by the seed: c0 = u·p0 + e0 + pt, c1 = u·p1 + e1 (NTT).
func (sh *sharer) encrypt(seed []byte, e0, e1 smallPoly, pt []uint64) (*rlwe.Ciphertext, error) {
	p := sh.p
	ringQ := p.RingQ()
	plain := bgv.NewPlaintext(p, p.MaxLevel())
	if err := sh.ecd.Encode(pt, plain); err != nil {
		return nil, ErrInternal
	}
	ct := bgv.NewCiphertext(p, 1, p.MaxLevel())
	*ct.MetaData = *plain.MetaData
	u := ringQ.NewPoly()
	if err := sampleFromSeed(p, seed, "share/u", p.Xs(), u); err != nil {
		return nil, ErrInternal
	}
	ringQ.NTT(u, u)
	c0, c1 := ct.Value[0], ct.Value[1]
	ringQ.MulCoeffsMontgomery(u, sh.pk.Value[0].Q, c0)
	ringQ.MulCoeffsMontgomery(u, sh.pk.Value[1].Q, c1)
	for i, e := range []smallPoly{e0, e1} {
		ep := e.poly(p)
		ringQ.NTT(ep, ep)
		ringQ.Add(ct.Value[i], ep, ct.Value[i])
	}
	if !plain.IsNTT {
		return nil, ErrInternal
	}
	ringQ.Add(c0, plain.Value, c0)
	return ct, nil
}

// ShareChecker checks share openings under one pinned public key and combines the shares a
// challenge left closed. It is the platform's side; it never decrypts. Prepare it once per
// key; it is not safe for concurrent use (make one per goroutine).
type ShareChecker struct {
	p    bgv.Parameters
	sh   *sharer
	eval *bgv.Evaluator
}

// NewShareChecker validates the pinned public key (as NewEvaluator) and prepares a checker.
func NewShareChecker(pk []byte) (*ShareChecker, error) {
	e, err := NewEvaluator(pk)
	if err != nil {
		return nil, err
	}
	return &ShareChecker{p: e.params, sh: newSharer(e.params, e.pk), eval: bgv.NewEvaluator(e.params, nil)}, nil
}

// Open checks that opening opens a share whose ciphertext has digest, and returns the share's
// plaintext slot values. ErrMalformedOpening: the opening does not decode (header, size, mode);
// ErrOpeningMismatch: it decodes, but its errors exceed the Gaussian's bound or the
// ciphertext it makes is not the one committed to — evidence of cheating.
func (c *ShareChecker) Open(opening []byte, digest string) (pt []uint64, err error) {
	defer func() {
		if recover() != nil {
			pt, err = nil, ErrInternal
		}
	}()
	p := c.p
	payload, err := readHeader(opening, kindShareOpening, ErrMalformedOpening)
	if err != nil {
		return nil, err
	}
	n := p.N()
	if len(payload) < SeedSize+1 {
		return nil, fmt.Errorf("%w: too short", ErrMalformedOpening)
	}
	seed, mode, rest := payload[:SeedSize], payload[SeedSize], payload[SeedSize+1:]
	switch {
	case mode == plaintextFromSeed && len(rest) == 2*n:
	case mode == plaintextExplicit && len(rest) == 2*n+8*Slots:
	default:
		return nil, fmt.Errorf("%w: wrong mode or size", ErrMalformedOpening)
	}
	bound := errorBound(p)
	e0, ok0 := readSmall(rest[:n], n, bound)
	e1, ok1 := readSmall(rest[n:2*n], n, bound)
	if !ok0 || !ok1 {
		return nil, fmt.Errorf("%w: an error is larger than the parameter set's Gaussian allows", ErrOpeningMismatch)
	}
	if mode == plaintextFromSeed {
		if pt, err = c.sh.plaintextFromSeed(seed); err != nil {
			return nil, err
		}
	} else {
		pt = make([]uint64, Slots)
		for i := range pt {
			pt[i] = binary.LittleEndian.Uint64(rest[2*n+8*i:])
			if pt[i] >= PlaintextModulus {
				return nil, fmt.Errorf("%w: a plaintext value is not in Z_t", ErrMalformedOpening)
			}
		}
	}
	ct, err := c.sh.encrypt(seed, e0, e1, pt)
	if err != nil {
		return nil, err
	}
	b, err := marshalCiphertext(kindClaims, ct)
	if err != nil {
		return nil, err
	}
	if Digest(b) != digest {
		return nil, fmt.Errorf("%w: the share the opening makes is not the one committed to", ErrOpeningMismatch)
	}
	return pt, nil
}

// Combine returns the claims ciphertext the domain evaluates: the unopened share (validated
// as a claims ciphertext) plus the opened shares' plaintexts, which encrypts the claims with
// the unopened share's noise only.
func (c *ShareChecker) Combine(unopened []byte, opened [][]uint64) (out []byte, err error) {
	defer func() {
		if recover() != nil {
			out, err = nil, ErrInternal
		}
	}()
	ct, err := unmarshalCiphertext(c.p, kindClaims, unopened)
	if err != nil {
		return nil, err
	}
	sum := make([]uint64, Slots)
	for _, pt := range opened {
		if len(pt) != Slots {
			return nil, ErrInternal
		}
		for i, v := range pt {
			sum[i] = (sum[i] + v) % PlaintextModulus
		}
	}
	if err := c.eval.Add(ct, sum, ct); err != nil {
		return nil, ErrInternal
	}
	return marshalCiphertext(kindClaims, ct)
}

// CandidatesFile holds an applicant's key candidates in a key directory until one is pinned:
// one seed per line, in hex, mode 0600.
const CandidatesFile = "verify-candidates.seeds"

// SaveKeyCandidates writes the candidates' seeds into dir (created with mode 0700), mode
// 0600: they are secret keys until opened.
func SaveKeyCandidates(dir string, cands []*KeyCandidate) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("verify: key directory: %w", err)
	}
	var b strings.Builder
	for _, k := range cands {
		b.WriteString(hex.EncodeToString(k.Seed) + "\n")
	}
	return writeFileAtomic(filepath.Join(dir, CandidatesFile), []byte(b.String()), 0o600)
}

// LoadKeyCandidates reads and rebuilds the candidates SaveKeyCandidates wrote. The file must
// not be accessible to group or others (ErrKeyPermissions).
func LoadKeyCandidates(dir string) ([]*KeyCandidate, error) {
	data, err := readPrivate(filepath.Join(dir, CandidatesFile))
	if err != nil {
		return nil, fmt.Errorf("verify: key candidates: %w", err)
	}
	var out []*KeyCandidate
	for _, line := range strings.Fields(string(data)) {
		seed, err := hex.DecodeString(line)
		if err != nil || len(seed) != SeedSize {
			return nil, fmt.Errorf("%w: %s holds a line that is not a seed", ErrMalformedKey, CandidatesFile)
		}
		k, err := NewKeyCandidate(seed)
		if err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	if len(out) < MinCandidates || len(out) > MaxCandidates {
		return nil, fmt.Errorf("%w: %s holds %d candidates", ErrCandidateCount, CandidatesFile, len(out))
	}
	return out, nil
}
