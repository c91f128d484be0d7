package verify

import (
	"fmt"
	"math"
	"math/bits"
	"sync"

	"github.com/tuneinsight/lattigo/v6/core/rlwe"
	"github.com/tuneinsight/lattigo/v6/ring"
	"github.com/tuneinsight/lattigo/v6/ring/ringqp"
	"github.com/tuneinsight/lattigo/v6/schemes/bgv"
	"github.com/tuneinsight/lattigo/v6/utils/sampling"
)

// Every key and ciphertext is a header followed by lattigo's binary marshalling:
//
//	offset 0  "crhv"         magic
//	offset 4  formatVersion  1
//	offset 5  kind           1 secret key, 2 public key, 3 claims, 4 answer
//	offset 6  paramSetID     1 = ParameterSet
//	offset 7  0              reserved
//
// A public key's payload is its 32-byte seed, then the lattigo public key. Claims are
// level-3 (top-level) ciphertexts, answers level-1 ones.
const (
	magic         = "crhv"
	formatVersion = 1
	headerSize    = 8
	seedSize      = 32
)

type kind byte

const (
	kindSecretKey kind = 1
	kindPublicKey kind = 2
	kindClaims    kind = 3
	kindAnswer    kind = 4
)

func header(k kind) []byte {
	return []byte{magic[0], magic[1], magic[2], magic[3], formatVersion, byte(k), paramSetID, 0}
}

// readHeader checks b's header against kind k and returns the payload. A bad magic, kind or
// reserved byte is malformed; an unknown version or parameter set is malformed and
// ErrParameterSet.
func readHeader(b []byte, k kind, malformed error) ([]byte, error) {
	if len(b) < headerSize || string(b[:4]) != magic {
		return nil, fmt.Errorf("%w: no header", malformed)
	}
	if b[4] != formatVersion || b[6] != paramSetID {
		return nil, fmt.Errorf("%w: %w", malformed, ErrParameterSet)
	}
	if kind(b[5]) != k || b[7] != 0 {
		return nil, fmt.Errorf("%w: wrong kind of object", malformed)
	}
	return b[headerSize:], nil
}

// unmarshalSafely runs lattigo's UnmarshalBinary, turning a panic into an error.
func unmarshalSafely(u interface{ UnmarshalBinary([]byte) error }, p []byte) (err error) {
	defer func() {
		if recover() != nil {
			err = fmt.Errorf("decoder panicked")
		}
	}()
	return u.UnmarshalBinary(p)
}

// marshalCiphertext writes a ciphertext with its header.
func marshalCiphertext(k kind, ct *rlwe.Ciphertext) ([]byte, error) {
	p, err := ct.MarshalBinary()
	if err != nil {
		return nil, ErrInternal
	}
	return append(header(k), p...), nil
}

// expectedMetaData returns the metadata a ciphertext of kind k must carry: claims are fresh
// encryptions at the default scale; answers were rescaled from the top level to outLevel,
// which divided their scale by each dropped prime (mod t).
func expectedMetaData(p bgv.Parameters, k kind) *rlwe.MetaData {
	md := bgv.NewCiphertext(p, 1, p.MaxLevel()).MetaData.CopyNew()
	if k == kindAnswer {
		for l := p.MaxLevel(); l > outLevel; l-- {
			md.Scale = md.Scale.Div(p.NewScale(p.Q()[l]))
		}
	}
	return md
}

// levelOf returns the level ciphertexts of kind k are at.
func levelOf(p bgv.Parameters, k kind) int {
	if k == kindAnswer {
		return outLevel
	}
	return p.MaxLevel()
}

// unmarshalCiphertext decodes and validates one ciphertext of kind k: header, exact size,
// decoding, degree 1, level, ring degree, metadata, and every coefficient reduced.
func unmarshalCiphertext(p bgv.Parameters, k kind, b []byte) (*rlwe.Ciphertext, error) {
	payload, err := readHeader(b, k, ErrMalformedCiphertext)
	if err != nil {
		return nil, err
	}
	level := levelOf(p, k)
	want := bgv.NewCiphertext(p, 1, level)
	want.MetaData = expectedMetaData(p, k)
	l, err := layoutFor(p, k)
	if err != nil {
		return nil, ErrInternal
	}
	if !l.matches(payload) {
		return nil, fmt.Errorf("%w: wrong size, shape or metadata", ErrMalformedCiphertext)
	}
	ct := new(rlwe.Ciphertext)
	if err := unmarshalSafely(ct, payload); err != nil {
		return nil, fmt.Errorf("%w: does not decode", ErrMalformedCiphertext)
	}
	if ct.MetaData == nil || len(ct.Value) != 2 {
		return nil, fmt.Errorf("%w: not of degree 1", ErrMalformedCiphertext)
	}
	if !ct.MetaData.Equal(want.MetaData) {
		return nil, fmt.Errorf("%w: wrong metadata", ErrMalformedCiphertext)
	}
	for _, poly := range ct.Value {
		if !reduced(p.RingQ().AtLevel(level), poly) {
			return nil, fmt.Errorf("%w: wrong level, ring degree or unreduced coefficients", ErrMalformedCiphertext)
		}
	}
	return ct, nil
}

// reduced reports whether poly has exactly the ring's N and moduli count and every
// coefficient below its modulus.
func reduced(r *ring.Ring, poly ring.Poly) bool {
	moduli := r.ModuliChain()[:r.Level()+1]
	if len(poly.Coeffs) != len(moduli) {
		return false
	}
	for i, q := range moduli {
		if len(poly.Coeffs[i]) != r.N() {
			return false
		}
		for _, c := range poly.Coeffs[i] {
			if c >= q {
				return false
			}
		}
	}
	return true
}

// marshalPublicKey writes a public key with its header and seed.
func marshalPublicKey(seed []byte, pk *rlwe.PublicKey) ([]byte, error) {
	p, err := pk.MarshalBinary()
	if err != nil {
		return nil, ErrInternal
	}
	out := append(header(kindPublicKey), seed...)
	return append(out, p...), nil
}

// unmarshalPublicKey decodes and validates a public key (see checkPublicKey).
func unmarshalPublicKey(p bgv.Parameters, b []byte) (*rlwe.PublicKey, error) {
	payload, err := readHeader(b, kindPublicKey, ErrMalformedKey)
	if err != nil {
		return nil, err
	}
	l, err := layoutFor(p, kindPublicKey)
	if err != nil {
		return nil, ErrInternal
	}
	if len(payload) < seedSize || !l.matches(payload[seedSize:]) {
		return nil, fmt.Errorf("%w: wrong size or shape", ErrMalformedKey)
	}
	seed, body := payload[:seedSize], payload[seedSize:]
	pk := new(rlwe.PublicKey)
	if err := unmarshalSafely(pk, body); err != nil {
		return nil, fmt.Errorf("%w: does not decode", ErrMalformedKey)
	}
	if err := checkPublicKey(p, seed, pk); err != nil {
		return nil, err
	}
	return pk, nil
}

// checkPublicKey checks what can be checked of a public key pk = (p0, p1) = (−a·s + e, a)
// without a zero-knowledge proof:
//   - shape: two polynomials in Q at the top level, no P part, every coefficient reduced;
//   - p1 = a is exactly the expansion of the key's seed (lattigo's uniform sampler over a
//     BLAKE2b XOF keyed by the seed): a is uniform, not chosen by the applicant;
//   - p0 passes a uniformity test in both the NTT and the coefficient domain: for each
//     prime, the coefficients fall into 16 equal ranges with counts within 7 standard
//     deviations of N/16 (an honest key fails with probability below 10^-9). This rejects
//     zero, constant, small and low-entropy p0.
//
// It does not and cannot check that p0 + p1·s is small for some small s: docs/he.md says
// what a malicious p0 allows.
func checkPublicKey(p bgv.Parameters, seed []byte, pk *rlwe.PublicKey) error {
	if len(pk.Value) != 2 {
		return fmt.Errorf("%w: wrong shape", ErrMalformedKey)
	}
	ringQ := p.RingQ()
	for _, v := range pk.Value {
		if v.P.Level() != -1 || !reduced(ringQ, v.Q) {
			return fmt.Errorf("%w: wrong shape or unreduced coefficients", ErrMalformedKey)
		}
	}
	a, err := expandSeed(p, seed)
	if err != nil {
		return ErrInternal
	}
	if !a.Q.Equal(&pk.Value[1].Q) {
		return fmt.Errorf("%w: p1 is not the expansion of the seed", ErrMalformedKey)
	}
	p0 := *pk.Value[0].Q.CopyNew()
	ringQ.IMForm(p0, p0)
	if !looksUniform(ringQ, p0) {
		return fmt.Errorf("%w: p0 is not uniform", ErrMalformedKey)
	}
	ringQ.INTT(p0, p0)
	if !looksUniform(ringQ, p0) {
		return fmt.Errorf("%w: p0 is not uniform", ErrMalformedKey)
	}
	return nil
}

// uniformBuckets and uniformSigmas set looksUniform's test.
const (
	uniformBuckets = 16
	uniformSigmas  = 7
)

// looksUniform reports whether, for every prime, the coefficients of poly spread over
// uniformBuckets equal ranges with each count within uniformSigmas binomial standard
// deviations of its mean.
func looksUniform(r *ring.Ring, poly ring.Poly) bool {
	n := float64(r.N())
	mean := n / uniformBuckets
	slack := uniformSigmas * math.Sqrt(n*(1.0/uniformBuckets)*(1-1.0/uniformBuckets))
	for i, q := range r.ModuliChain()[:r.Level()+1] {
		var counts [uniformBuckets]int
		for _, c := range poly.Coeffs[i] {
			hi, lo := bits.Mul64(c, uniformBuckets)
			b, _ := bits.Div64(hi, lo, q)
			counts[b]++
		}
		for _, c := range counts {
			if d := float64(c) - mean; d > slack || d < -slack {
				return false
			}
		}
	}
	return true
}

// expandSeed returns the uniform polynomial a (in Q, NTT and Montgomery form) that the seed
// expands to: lattigo's ringqp uniform sampler over its BLAKE2b XOF keyed by the seed,
// exactly as lattigo's secret-key encryptor samples the public key's p1 when given that PRNG
// (GenerateKeys).
func expandSeed(p bgv.Parameters, seed []byte) (ringqp.Poly, error) {
	prng, err := sampling.NewKeyedPRNG(seed)
	if err != nil {
		return ringqp.Poly{}, err
	}
	a := p.RingQP().NewPoly()
	ringqp.NewUniformSampler(prng, *p.RingQP()).AtLevel(p.MaxLevelQ(), p.MaxLevelP()).Read(a)
	return a, nil
}

// marshalSecretKey writes a secret key with its header.
func marshalSecretKey(sk *rlwe.SecretKey) ([]byte, error) {
	p, err := sk.MarshalBinary()
	if err != nil {
		return nil, ErrInternal
	}
	return append(header(kindSecretKey), p...), nil
}

// unmarshalSecretKey decodes a secret key and checks its shape.
func unmarshalSecretKey(p bgv.Parameters, b []byte) (*rlwe.SecretKey, error) {
	payload, err := readHeader(b, kindSecretKey, ErrMalformedKey)
	if err != nil {
		return nil, err
	}
	l, err := layoutFor(p, kindSecretKey)
	if err != nil {
		return nil, ErrInternal
	}
	if !l.matches(payload) {
		return nil, fmt.Errorf("%w: wrong size or shape", ErrMalformedKey)
	}
	sk := new(rlwe.SecretKey)
	if err := unmarshalSafely(sk, payload); err != nil {
		return nil, fmt.Errorf("%w: does not decode", ErrMalformedKey)
	}
	if sk.Value.P.Level() != -1 || !reduced(p.RingQ(), sk.Value.Q) {
		return nil, fmt.Errorf("%w: wrong shape or unreduced coefficients", ErrMalformedKey)
	}
	return sk, nil
}

// layout is the byte layout of a fixed-shape lattigo object: the bytes of a template, and
// which of them are coefficient bytes. Lattigo's decoders trust the length fields inside
// their input (a forged length allocates without bound), so every payload is first checked
// to equal the template everywhere but in coefficient bytes: then every length, degree,
// level and metadata field is the expected one, and decoding cannot allocate more.
type layout struct {
	fixed []byte
	coeff []bool
}

// layoutOf marshals a template filled with all-zero and with all-one coefficients; the bytes
// that differ are coefficient bytes.
func layoutOf(marshal func(fill uint64) ([]byte, error)) (layout, error) {
	zero, err := marshal(0)
	if err != nil {
		return layout{}, err
	}
	ones, err := marshal(^uint64(0))
	if err != nil {
		return layout{}, err
	}
	if len(zero) != len(ones) {
		return layout{}, fmt.Errorf("template size depends on its coefficients")
	}
	l := layout{fixed: zero, coeff: make([]bool, len(zero))}
	for i := range zero {
		l.coeff[i] = zero[i] != ones[i]
	}
	return l, nil
}

// matches reports whether b has the layout's size and its fixed bytes.
func (l layout) matches(b []byte) bool {
	if len(b) != len(l.fixed) {
		return false
	}
	for i, c := range b {
		if !l.coeff[i] && c != l.fixed[i] {
			return false
		}
	}
	return true
}

func fill(polys []ring.Poly, v uint64) {
	for _, poly := range polys {
		for _, row := range poly.Coeffs {
			for j := range row {
				row[j] = v
			}
		}
	}
}

var (
	layoutsOnce sync.Once
	layouts     map[kind]layout
	layoutsErr  error
)

// layoutFor returns the layout of kind k's lattigo payload (after the header, and after the
// seed for a public key).
func layoutFor(p bgv.Parameters, k kind) (layout, error) {
	layoutsOnce.Do(func() {
		layouts = map[kind]layout{}
		for _, ck := range []kind{kindClaims, kindAnswer} {
			l, err := layoutOf(func(v uint64) ([]byte, error) {
				ct := bgv.NewCiphertext(p, 1, levelOf(p, ck))
				ct.MetaData = expectedMetaData(p, ck)
				fill(ct.Value, v)
				return ct.MarshalBinary()
			})
			if err != nil {
				layoutsErr = err
				return
			}
			layouts[ck] = l
		}
		pkLayout, err := layoutOf(func(v uint64) ([]byte, error) {
			pk := rlwe.NewPublicKey(p)
			fill([]ring.Poly{pk.Value[0].Q, pk.Value[1].Q}, v)
			return pk.MarshalBinary()
		})
		if err != nil {
			layoutsErr = err
			return
		}
		layouts[kindPublicKey] = pkLayout
		skLayout, err := layoutOf(func(v uint64) ([]byte, error) {
			sk := rlwe.NewSecretKey(p)
			fill([]ring.Poly{sk.Value.Q}, v)
			return sk.MarshalBinary()
		})
		if err != nil {
			layoutsErr = err
			return
		}
		layouts[kindSecretKey] = skLayout
	})
	return layouts[k], layoutsErr
}
