package collective

import (
	"crypto/sha256"
	"fmt"
	"sync"

	"github.com/tuneinsight/lattigo/v6/core/rlwe"
	"github.com/tuneinsight/lattigo/v6/multiparty"
	"github.com/tuneinsight/lattigo/v6/ring"
	"github.com/tuneinsight/lattigo/v6/schemes/bgv"
	"github.com/tuneinsight/lattigo/v6/utils/sampling"
)

// This file is the boundary between untrusted bytes and lattigo, which panics or allocates without
// bound on inputs of the wrong shape. Nothing reaches lattigo's UnmarshalBinary unless its bytes
// match a template of the expected object byte for byte everywhere except in coefficient words
// (lengths, levels and metadata are thus fixed), and every coefficient is then checked to be
// reduced modulo its prime. Calls into lattigo are wrapped in recover as a second line.

// template is the encoding of an object of the expected shape with a mask of its coefficient bytes.
type template struct {
	ref  []byte
	data []bool
}

func newTemplate(zero, ones []byte) (template, error) {
	if len(zero) != len(ones) {
		return template{}, ErrConfig
	}
	t := template{ref: zero, data: make([]bool, len(zero))}
	for i := range zero {
		t.data[i] = zero[i] != ones[i]
	}
	return t, nil
}

func (t template) matches(p []byte) bool {
	if len(p) != len(t.ref) {
		return false
	}
	for i, b := range p {
		if !t.data[i] && b != t.ref[i] {
			return false
		}
	}
	return true
}

// shapes holds the templates of the four objects that cross the wire.
type shapes struct {
	ckgShare, publicKey, ciphertext, pcksShare, secretKey template
}

var (
	shapesOnce sync.Once
	shapesVal  shapes
	shapesErr  error
)

func fill(polys []ring.Poly, v uint64) {
	for _, p := range polys {
		for _, row := range p.Coeffs {
			for j := range row {
				row[j] = v
			}
		}
	}
}

func templates(p Params) (shapes, error) {
	shapesOnce.Do(func() {
		shapesVal, shapesErr = buildTemplates(p)
	})
	return shapesVal, shapesErr
}

func buildTemplates(p Params) (s shapes, err error) {
	defer func() {
		if recover() != nil {
			err = ErrConfig
		}
	}()
	params := p.bgv
	pair := func(polys []ring.Poly, marshal func() ([]byte, error)) (template, error) {
		fill(polys, 0)
		z, err := marshal()
		if err != nil {
			return template{}, ErrConfig
		}
		fill(polys, ^uint64(0))
		o, err := marshal()
		if err != nil {
			return template{}, ErrConfig
		}
		return newTemplate(z, o)
	}
	ckg := multiparty.NewPublicKeyGenProtocol(params).AllocateShare()
	if s.ckgShare, err = pair([]ring.Poly{ckg.Value.Q}, ckg.MarshalBinary); err != nil {
		return
	}
	sk := rlwe.NewSecretKey(params)
	if s.secretKey, err = pair([]ring.Poly{sk.Value.Q}, sk.MarshalBinary); err != nil {
		return
	}
	pk := rlwe.NewPublicKey(params)
	if s.publicKey, err = pair([]ring.Poly{pk.Value[0].Q, pk.Value[1].Q}, pk.MarshalBinary); err != nil {
		return
	}
	ct := bgv.NewCiphertext(params, 1, params.MaxLevel())
	if s.ciphertext, err = pair(ct.Value, ct.MarshalBinary); err != nil {
		return
	}
	pcks, err := multiparty.NewPublicKeySwitchProtocol(params, p.floodDistribution())
	if err != nil {
		return s, ErrConfig
	}
	sh := pcks.AllocateShare(params.MaxLevel())
	s.pcksShare, err = pair(sh.Value, sh.MarshalBinary)
	return
}

// reduced reports whether every coefficient of the polynomials is below its modulus.
func reduced(r *ring.Ring, polys ...ring.Poly) bool {
	moduli := r.ModuliChain()
	for _, p := range polys {
		if len(p.Coeffs) > len(moduli) {
			return false
		}
		for i, row := range p.Coeffs {
			if len(row) != r.N() {
				return false
			}
			for _, c := range row {
				if c >= moduli[i] {
					return false
				}
			}
		}
	}
	return true
}

func unmarshalChecked(t template, p []byte, into interface{ UnmarshalBinary([]byte) error }) (err error) {
	if !t.matches(p) {
		return fmt.Errorf("%w: object shape", ErrMalformed)
	}
	defer func() {
		if recover() != nil {
			err = fmt.Errorf("%w: object encoding", ErrMalformed)
		}
	}()
	if into.UnmarshalBinary(p) != nil {
		return fmt.Errorf("%w: object encoding", ErrMalformed)
	}
	return nil
}

func decodeCKGShare(p Params, b []byte) (multiparty.PublicKeyGenShare, error) {
	s, err := templates(p)
	if err != nil {
		return multiparty.PublicKeyGenShare{}, err
	}
	var sh multiparty.PublicKeyGenShare
	if err := unmarshalChecked(s.ckgShare, b, &sh); err != nil {
		return sh, err
	}
	if !reduced(p.bgv.RingQ(), sh.Value.Q) {
		return sh, fmt.Errorf("%w: coefficient range", ErrMalformed)
	}
	return sh, nil
}

func decodePublicKey(p Params, b []byte) (*rlwe.PublicKey, error) {
	s, err := templates(p)
	if err != nil {
		return nil, err
	}
	pk := new(rlwe.PublicKey)
	if err := unmarshalChecked(s.publicKey, b, pk); err != nil {
		return nil, err
	}
	if len(pk.Value) != 2 || !reduced(p.bgv.RingQ(), pk.Value[0].Q, pk.Value[1].Q) {
		return nil, fmt.Errorf("%w: coefficient range", ErrMalformed)
	}
	return pk, nil
}

func decodeSecretKey(p Params, b []byte) (*rlwe.SecretKey, error) {
	s, err := templates(p)
	if err != nil {
		return nil, err
	}
	sk := new(rlwe.SecretKey)
	if err := unmarshalChecked(s.secretKey, b, sk); err != nil {
		return nil, err
	}
	if !reduced(p.bgv.RingQ(), sk.Value.Q) {
		return nil, fmt.Errorf("%w: coefficient range", ErrMalformed)
	}
	return sk, nil
}

func decodeCiphertext(p Params, b []byte) (*rlwe.Ciphertext, error) {
	s, err := templates(p)
	if err != nil {
		return nil, err
	}
	ct := new(rlwe.Ciphertext)
	if err := unmarshalChecked(s.ciphertext, b, ct); err != nil {
		return nil, err
	}
	if len(ct.Value) != 2 || ct.MetaData == nil || !reduced(p.bgv.RingQ(), ct.Value...) {
		return nil, fmt.Errorf("%w: coefficient range", ErrMalformed)
	}
	return ct, nil
}

func decodePCKSShare(p Params, b []byte) (multiparty.PublicKeySwitchShare, error) {
	s, err := templates(p)
	if err != nil {
		return multiparty.PublicKeySwitchShare{}, err
	}
	var sh multiparty.PublicKeySwitchShare
	if err := unmarshalChecked(s.pcksShare, b, &sh); err != nil {
		return sh, err
	}
	if len(sh.Value) != 2 || !reduced(p.bgv.RingQ(), sh.Value...) {
		return sh, fmt.Errorf("%w: coefficient range", ErrMalformed)
	}
	return sh, nil
}

// crp derives the common reference polynomial of a key ceremony from public data only, so every
// domain computes the same one without a round: a keyed PRNG seeded with SHA-256 of a context
// string, the parameter set and the ceremony id.
func crp(p Params, ceremony string) (c multiparty.PublicKeyGenCRP, err error) {
	seed := sha256.Sum256([]byte("cleanroom/he/collective/v1/ckg-crs\x00" + ParamSetName + "\x00" + ceremony))
	prng, err := sampling.NewKeyedPRNG(seed[:])
	if err != nil {
		return c, ErrConfig
	}
	return multiparty.NewPublicKeyGenProtocol(p.bgv).SampleCRP(prng), nil
}

// KeyDigest is the SHA-256 of a marshalled public key: the collective key's KeyID, or the
// receiver's key digest carried in Job.Receiver.
func KeyDigest(marshalledPublicKey []byte) [32]byte {
	return sha256.Sum256(marshalledPublicKey)
}

// sumCiphertexts adds the ciphertexts; they have been shape-checked, so lattigo cannot fail.
func sumCiphertexts(p Params, cts []*rlwe.Ciphertext) (out *rlwe.Ciphertext, err error) {
	defer func() {
		if recover() != nil {
			err = fmt.Errorf("%w: ciphertext sum", ErrMalformed)
		}
	}()
	eval := bgv.NewEvaluator(p.bgv, nil)
	out = cts[0].CopyNew()
	for _, ct := range cts[1:] {
		if err := eval.Add(out, ct, out); err != nil {
			return nil, fmt.Errorf("%w: ciphertext sum", ErrMalformed)
		}
	}
	return out, nil
}
