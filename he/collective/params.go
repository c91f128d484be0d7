package collective

import (
	"math"
	"sync"

	"github.com/tuneinsight/lattigo/v6/core/rlwe"
	"github.com/tuneinsight/lattigo/v6/ring"
	"github.com/tuneinsight/lattigo/v6/schemes/bgv"
)

// ParamSetName names the only parameter set of this package. Every message carries it and a
// receiver rejects any other (ErrWrongParams); a new set gets a new name.
const ParamSetName = "bgv-logn13-q3x60-t55-flood60-v1"

const (
	// logN is the ring degree: N = 8192 slots, so one ciphertext holds up to 8192 partitions.
	logN = 13
	// plaintextModulus is t, the prime 2^55 − 300·2^14 + 1 = 36028797018652673 ≡ 1 (mod 2N), so
	// every one of the N slots is an independent integer modulo t (SIMD batching).
	plaintextModulus = 36028797018652673
	// floodLogSigma is log2 of the standard deviation of the smudging (flooding) noise each domain
	// adds to its public-key-switch share. See FloodSigma.
	floodLogSigma = 60
	// MaxParties bounds the number of domains; the noise and range analysis below assumes it.
	MaxParties = 16
	// MaxPartitions is the number of slots: the longest aggregate vector one job can carry.
	MaxPartitions = 1 << logN
)

// StandardMaxLogQP is the HomomorphicEncryption.org standard's bound on log2(QP) for 128-bit
// classical security with a uniform ternary secret and error σ ≈ 3.2, by ring degree.
// Source: M. Albrecht et al., "Homomorphic Encryption Security Standard", HomomorphicEncryption.org,
// Toronto, November 2018, Table 1 ("uniform ternary", λ = 128, classical):
// n = 1024: 27, 2048: 54, 4096: 109, 8192: 218, 16384: 438, 32768: 881.
var StandardMaxLogQP = map[int]int{10: 27, 11: 54, 12: 109, 13: 218, 14: 438, 15: 881}

// Params is the parameter set: BGV over Z_t[X]/(X^8192+1) with t a 55-bit prime, a ciphertext
// modulus Q of three 60-bit primes (log2 Q ≈ 180 ≤ 218, no special modulus P since no
// evaluation keys exist), a uniform ternary secret and the standard error σ = 3.2.
type Params struct {
	bgv bgv.Parameters
}

var (
	paramsOnce sync.Once
	paramsVal  Params
	paramsErr  error
)

// DefaultParams returns the package's parameter set (computed once; the value is immutable).
func DefaultParams() (Params, error) {
	paramsOnce.Do(func() {
		p, err := bgv.NewParametersFromLiteral(bgv.ParametersLiteral{
			LogN:             logN,
			LogQ:             []int{60, 60, 60},
			PlaintextModulus: plaintextModulus,
			Xs:               ring.Ternary{P: 2.0 / 3.0},
			Xe:               ring.DiscreteGaussian{Sigma: rlwe.DefaultNoise, Bound: rlwe.DefaultNoiseBound},
		})
		if err != nil {
			paramsErr = ErrConfig
			return
		}
		paramsVal = Params{bgv: p}
	})
	return paramsVal, paramsErr
}

// Name is the parameter set's name carried in every message.
func (p Params) Name() string { return ParamSetName }

// BGV returns the lattigo parameters.
func (p Params) BGV() bgv.Parameters { return p.bgv }

// LogN is log2 of the ring degree.
func (p Params) LogN() int { return p.bgv.LogN() }

// LogQP is log2 of the full modulus, the quantity the security standard bounds.
func (p Params) LogQP() float64 { return p.bgv.LogQP() }

// T is the plaintext modulus.
func (p Params) T() uint64 { return p.bgv.PlaintextModulus() }

// Slots is the number of partitions one ciphertext holds.
func (p Params) Slots() int { return p.bgv.MaxSlots() }

// MaxTotal is the largest |total| a decrypted slot can hold: values are signed integers centred in
// Z_t, so every total must satisfy |total| ≤ MaxTotal = (t−1)/2. Beyond it a sum would wrap
// around modulo t and decrypt to a wrong answer, which the range checks below rule out.
func (p Params) MaxTotal() int64 { return int64((p.T() - 1) / 2) }

// MaxInput is the largest |value| one of n domains may encrypt in a slot (after its noise share):
// n·MaxInput ≤ MaxTotal, so the sum of the n inputs cannot wrap around. A domain refuses to
// encrypt a larger value (ErrOutOfRange) instead of producing a wrong total, and a receiver
// refuses a decrypted total beyond n·MaxInput.
func (p Params) MaxInput(n int) int64 {
	if n < 1 {
		return 0
	}
	return p.MaxTotal() / int64(n)
}

// FloodSigma is the standard deviation of the smudging noise in each domain's public-key-switch
// share, 2^60 (sampled by lattigo's big-integer Gaussian sampler, Bound 2^66).
//
// Why this value: the receiver decrypts the switched total exactly and so learns the total noise
// of the ciphertext, which without flooding would include the aggregated ciphertext's noise — a
// function of every domain's secret share. A decryption share hides it when the flooding noise of
// one honest domain is statistically close to itself shifted by that noise: for Gaussians the
// statistical distance is at most ‖e‖₂/(2σ). CiphertextNoiseL2(MaxParties) is below 2^20, so
// the distance is below 2^-41 (40-bit statistical security); CorrectnessMarginBits shows the cost
// in modulus is affordable.
func (p Params) FloodSigma() float64 { return math.Exp2(floodLogSigma) }

func (p Params) floodDistribution() ring.DiscreteGaussian {
	// Bound above 2^64 selects lattigo's big-integer sampler, which fills the low bits that a
	// float64 product cannot represent at this σ (the float path would leave them zero).
	return ring.DiscreteGaussian{Sigma: p.FloodSigma(), Bound: math.Exp2(floodLogSigma + 6)}
}

// CiphertextNoiseStd estimates the standard deviation of one coefficient of the noise of the sum of
// n fresh public-key encryptions under an n-party collective key: each encryption contributes
// u·e_pk + e0 + e1·s with u, s ternary (variance 2/3 per coefficient, s the sum of n shares),
// e_pk the sum of n CKG errors and e0, e1 fresh errors of σ = 3.2.
func (p Params) CiphertextNoiseStd(n int) float64 {
	N := float64(int(1) << p.LogN())
	s2 := p.bgv.NoiseFreshSK() * p.bgv.NoiseFreshSK()
	perEnc := N*(2.0/3.0)*float64(n)*s2 + s2 + N*s2*float64(n)*(2.0/3.0)
	return math.Sqrt(float64(n) * perEnc)
}

// CiphertextNoiseL2 bounds the Euclidean norm of that noise vector (√N coefficients times the
// standard deviation, times 2 for the tail).
func (p Params) CiphertextNoiseL2(n int) float64 {
	return 2 * math.Sqrt(float64(int(1)<<p.LogN())) * p.CiphertextNoiseStd(n)
}

// CorrectnessMarginBits is log2 Q − log2(t · B) − 1 where B bounds the infinity norm of the noise
// after public key switching with n domains (n flooding terms at 64σ plus the ciphertext and
// re-encryption noise). Decryption is exact while the margin is positive. (lattigo's BGV keeps the
// message scaled by t⁻¹ mod Q, so decryption returns m + t·e mod Q and needs |m + t·e| < Q/2.)
func (p Params) CorrectnessMarginBits(n int) float64 {
	flood := float64(n) * math.Exp2(floodLogSigma+6)
	ct := 10 * p.CiphertextNoiseStd(n)
	reenc := 10 * p.CiphertextNoiseStd(1) * float64(n)
	b := flood + ct + reenc
	return p.bgv.LogQ() - (math.Log2(float64(p.T())) + math.Log2(b)) - 1
}
