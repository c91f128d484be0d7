package verify

import (
	"math"
	"math/big"
	"sync"

	"github.com/tuneinsight/lattigo/v6/core/rlwe"
	"github.com/tuneinsight/lattigo/v6/ring"
	"github.com/tuneinsight/lattigo/v6/schemes/bgv"
)

// ParameterSet names the one parameter set of this package. Every key and ciphertext
// carries its identifier (paramSetID) in its header; a later set gets a new name and id.
const ParameterSet = "bgv-logn13-logq218-t40-v1"

// paramSetID is ParameterSet's identifier in headers.
const paramSetID = 1

// LogN is log2 of the ring degree N.
const LogN = 13

// Slots is the number of checks one ciphertext carries (N, full batching).
const Slots = 1 << LogN

// PlaintextModulus is t: the prime 2^40 + 0x48001 = 1,099,511,922,689, the smallest prime
// above 2^40 with t ≡ 1 mod 2N (2N = 16384), so that Z_t[X]/(X^N+1) splits into N slots.
// Two distinct values collide after Encode with probability 1/t < 2^-40.
const PlaintextModulus uint64 = 0x10000048001

// MaxChecks bounds one batch (128 ciphertexts, about 64 MiB in each direction).
const MaxChecks = 128 * Slots

// qModuli is the ciphertext modulus Q: four NTT-friendly primes (≡ 1 mod 2N), the largest
// below 2^55, 2^55, 2^54, 2^54 (ring.NewNTTFriendlyPrimesGenerator(…).NextDownstreamPrimes),
// so log2 Q < 218. There is no special modulus P: the protocol needs no key switching.
var qModuli = []uint64{0x7ffffffffb4001, 0x7fffffffeac001, 0x3fffffffef8001, 0x3fffffffeb8001}

// outLevel is the level the domain's answers are rescaled to before they are returned:
// two primes, half the size of a level-3 ciphertext, still far above the flooded noise.
const outLevel = 1

// securityTable is the HomomorphicEncryption.org Security Standard (Albrecht et al.,
// "Homomorphic Encryption Security Standard", HomomorphicEncryption.org, Toronto, November
// 2018, Table 1, https://homomorphicencryption.org/standard/): for a uniform ternary secret
// and error σ ≈ 3.2, the largest log2(QP) that gives 128-bit classical security, by log2 N.
var securityTable = map[int]int{10: 27, 11: 54, 12: 109, 13: 218, 14: 438, 15: 881}

var (
	paramsOnce sync.Once
	paramsVal  bgv.Parameters
	paramsErr  error
)

// parameters returns the parameter set, built once.
func parameters() (bgv.Parameters, error) {
	paramsOnce.Do(func() {
		paramsVal, paramsErr = bgv.NewParametersFromLiteral(bgv.ParametersLiteral{
			LogN:             LogN,
			Q:                qModuli,
			Xs:               ring.Ternary{P: 2.0 / 3.0}, // uniform ternary (lattigo's default, stated)
			Xe:               rlwe.DefaultXe,             // σ = 3.2, bound 6σ
			PlaintextModulus: PlaintextModulus,
		})
	})
	return paramsVal, paramsErr
}

// mustParameters is parameters for code paths that already built them once successfully.
func mustParameters() bgv.Parameters {
	p, err := parameters()
	if err != nil {
		panic("verify: the fixed parameter set does not build: " + err.Error())
	}
	return p
}

// floodLogBound is log2 B, where the flooding noise added to each coefficient of an answer
// is uniform in [−B, B] (in the t^-1-scaled representation lattigo's BGV uses: after
// decryption the flood is t·e'). B = 2^(⌊log2 Q⌋ − ⌈log2 t⌉ − 2), so t·(B + existing noise)
// stays below Q/2 and decryption is exact (see docs/he.md for the budget).
func floodLogBound(p bgv.Parameters) int {
	logQ := p.RingQ().AtLevel(p.MaxLevel()).Modulus().BitLen() - 1 // ⌊log2 Q⌋
	logT := int(math.Ceil(math.Log2(float64(p.PlaintextModulus()))))
	return logQ - logT - 2
}

// floodBound returns B as a big integer.
func floodBound(p bgv.Parameters) *big.Int {
	return new(big.Int).Lsh(big.NewInt(1), uint(floodLogBound(p)))
}
