package verify

import (
	"encoding/binary"
	"fmt"
	"math/big"
	"math/bits"

	"github.com/tuneinsight/lattigo/v6/core/rlwe"
	"github.com/tuneinsight/lattigo/v6/ring"
	"github.com/tuneinsight/lattigo/v6/schemes/bgv"
	"github.com/tuneinsight/lattigo/v6/utils/bignum"
	"github.com/tuneinsight/lattigo/v6/utils/sampling"
)

// Actual is the domain's authoritative record for one check.
type Actual struct {
	// Value is Encode of the actual value (or of BandOf's label); ignored when !Present.
	Value uint64
	// Present is false when the domain has no record for the subject: the slot then answers
	// a uniform non-zero value, exactly like a non-match.
	Present bool
}

// Evaluator is the domain's side for one applicant public key. Evaluator never decrypts
// and never learns a claim: it sees ciphertexts, their number and the public key, and
// returns per slot only Enc(r·(claimed − actual)) with r uniform non-zero, re-randomised
// and noise-flooded. Prepare it once per key (NewEvaluator validates the key); it is safe
// for concurrent use.
type Evaluator struct {
	params bgv.Parameters
	pk     *rlwe.PublicKey
	opts   evalOptions
}

// evalOptions switches off steps of the evaluation. Only this package's tests set them, to
// show what each step prevents; production code cannot reach them.
type evalOptions struct {
	noRerandomize bool
	noFlood       bool
	noRescale     bool
}

// NewEvaluator validates an applicant's public key (see checkPublicKey for what is
// checked) and prepares an Evaluator for it.
func NewEvaluator(pk []byte) (e *Evaluator, err error) {
	p, err := parameters()
	if err != nil {
		return nil, ErrInternal
	}
	defer func() {
		if recover() != nil {
			e, err = nil, fmt.Errorf("%w: does not decode", ErrMalformedKey)
		}
	}()
	key, err := unmarshalPublicKey(p, pk)
	if err != nil {
		return nil, err
	}
	return &Evaluator{params: p, pk: key}, nil
}

// CheckClaims validates a request as Evaluate would — the public key, and n checks in cts,
// each a claims ciphertext of ParameterSet at the top level — without answering it: a
// domain refuses malformed input before it reads a record.
func CheckClaims(pk []byte, cts [][]byte, n int) (err error) {
	e, err := NewEvaluator(pk)
	if err != nil {
		return err
	}
	defer func() {
		if recover() != nil {
			err = ErrInternal
		}
	}()
	switch {
	case n > MaxChecks:
		return ErrTooManyChecks
	case len(cts) != CiphertextsFor(n):
		return ErrCheckCount
	}
	for i, b := range cts {
		if _, err := unmarshalCiphertext(e.params, kindClaims, b); err != nil {
			return fmt.Errorf("ciphertext %d: %w", i, err)
		}
	}
	return nil
}

// Evaluate is NewEvaluator(pk) followed by Evaluate(cts, actual).
func Evaluate(pk []byte, cts [][]byte, actual []Actual) ([][]byte, error) {
	e, err := NewEvaluator(pk)
	if err != nil {
		return nil, err
	}
	return e.Evaluate(cts, actual)
}

// Evaluate answers the checks in cts against actual, one Actual per check, in slot order
// (check i is slot i mod Slots of ciphertext i / Slots). There must be exactly
// CiphertextsFor(len(actual)) ciphertexts, each a claims ciphertext of ParameterSet at the
// top level. Per slot the answer decrypts to
//
//	r·(claimed − actual)   if the record is present, r uniform in [1, t−1], fresh per slot
//	u                      if absent, or a padding slot past len(actual), u uniform in [1, t−1]
//
// and every answer is re-randomised with a fresh public-key encryption of zero, flooded
// with uniform noise and rescaled to level 1. Nothing is returned unless every input is
// valid.
func (e *Evaluator) Evaluate(cts [][]byte, actual []Actual) (out [][]byte, err error) {
	defer func() {
		if recover() != nil {
			out, err = nil, ErrInternal
		}
	}()
	n := len(actual)
	if n > MaxChecks {
		return nil, ErrTooManyChecks
	}
	if len(cts) != CiphertextsFor(n) {
		return nil, ErrCheckCount
	}
	for i, a := range actual {
		if a.Present && a.Value >= PlaintextModulus {
			return nil, fmt.Errorf("actual %d: %w", i, ErrValueOutOfRange)
		}
	}
	out = make([][]byte, len(cts))
	err = parallel(len(cts), func() func(i int) error {
		w, werr := e.newWorker()
		return func(i int) error {
			if werr != nil {
				return werr
			}
			ct, err := unmarshalCiphertext(e.params, kindClaims, cts[i])
			if err != nil {
				return fmt.Errorf("ciphertext %d: %w", i, err)
			}
			if err := w.answer(ct, actual[i*Slots:min(n, (i+1)*Slots)]); err != nil {
				return err
			}
			out[i], err = marshalCiphertext(kindAnswer, ct)
			return err
		}
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// worker holds one goroutine's lattigo state.
type worker struct {
	e      *Evaluator
	eval   *bgv.Evaluator
	enc    *rlwe.Encryptor
	prng   sampling.PRNG
	rnd    scalars
	r, v   []uint64
	flood  []*big.Int
	floodB *big.Int
	poly   ring.Poly
}

func (e *Evaluator) newWorker() (*worker, error) {
	prng, err := sampling.NewPRNG() // keyed from crypto/rand
	if err != nil {
		return nil, ErrInternal
	}
	w := &worker{
		e:      e,
		eval:   bgv.NewEvaluator(e.params, nil),
		enc:    bgv.NewEncryptor(e.params, e.pk),
		prng:   prng,
		rnd:    scalars{prng: prng},
		r:      make([]uint64, Slots),
		v:      make([]uint64, Slots),
		flood:  make([]*big.Int, e.params.N()),
		floodB: floodBound(e.params),
		poly:   e.params.RingQ().NewPoly(),
	}
	for i := range w.flood {
		w.flood[i] = new(big.Int)
	}
	return w, nil
}

// answer turns a validated claims ciphertext into the answer, in place: slot-wise
// ct·R + V, where R = r and V = −r·actual for a present record, and R = 0 and V = u for an
// absent record or a padding slot; then + Enc_pk(0), + flooding noise, rescaled to outLevel.
func (w *worker) answer(ct *rlwe.Ciphertext, actual []Actual) error {
	t := PlaintextModulus
	for j := range w.r {
		if j < len(actual) && actual[j].Present {
			r := w.rnd.nonZero()
			hi, lo := bits.Mul64(r, actual[j].Value)
			w.r[j], w.v[j] = r, (t-bits.Rem64(hi, lo, t))%t
		} else {
			w.r[j], w.v[j] = 0, w.rnd.nonZero()
		}
	}
	if err := w.eval.Mul(ct, w.r, ct); err != nil {
		return ErrInternal
	}
	if err := w.eval.Add(ct, w.v, ct); err != nil {
		return ErrInternal
	}
	level := ct.Level()
	if !w.e.opts.noRerandomize {
		// Allocated with the scheme's constructor, then EncryptZero (DEPENDENCIES.md).
		zero := bgv.NewCiphertext(w.e.params, 1, level)
		if err := w.enc.EncryptZero(zero); err != nil {
			return ErrInternal
		}
		if err := w.eval.Add(ct, zero, ct); err != nil {
			return ErrInternal
		}
	}
	if !w.e.opts.noFlood {
		w.addFlood(ct)
	}
	if !w.e.opts.noRescale {
		for ct.Level() > outLevel {
			if err := w.eval.Rescale(ct, ct); err != nil {
				return ErrInternal
			}
		}
	}
	return nil
}

// addFlood adds to c0 a polynomial whose coefficients are independent and uniform in
// [−B, B), B = 2^floodLogBound, drawn with lattigo's bignum.RandInt from its crypto/rand-
// keyed PRNG and lifted to RNS by the ring. (Lattigo's Gaussian sampler at σ > 2^53 keeps
// only 53 bits of precision; a uniform flood gives the exact bound SD ≤ ‖x‖∞/(2B) per
// coefficient for any shift x.)
func (w *worker) addFlood(ct *rlwe.Ciphertext) {
	ringQ := w.e.params.RingQ().AtLevel(ct.Level())
	width := new(big.Int).Lsh(w.floodB, 1)
	for i := range w.flood {
		w.flood[i].Sub(bignum.RandInt(w.prng, width), w.floodB)
	}
	poly := w.poly
	ringQ.SetCoefficientsBigint(w.flood, poly)
	ringQ.NTT(poly, poly)
	ringQ.Add(ct.Value[0], poly, ct.Value[0])
}

// scalars draws uniform values in [1, t−1] by rejection from a buffered PRNG stream.
type scalars struct {
	prng sampling.PRNG
	buf  [8 * 1024]byte
	pos  int // bytes of buf consumed
	n    int // bytes of buf filled
}

func (s *scalars) nonZero() uint64 {
	const mask = 1<<41 - 1 // t < 2^41: acceptance about 1/2
	for {
		if s.pos >= s.n {
			if _, err := s.prng.Read(s.buf[:]); err != nil {
				panic("verify: PRNG failed")
			}
			s.pos, s.n = 0, len(s.buf)
		}
		v := binary.LittleEndian.Uint64(s.buf[s.pos:]) & mask
		s.pos += 8
		if v != 0 && v < PlaintextModulus {
			return v
		}
	}
}
