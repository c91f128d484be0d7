package verify

import (
	"bytes"
	"math"
	"math/big"
	"math/bits"
	"math/rand/v2"
	"testing"

	"github.com/tuneinsight/lattigo/v6/core/rlwe"
	"github.com/tuneinsight/lattigo/v6/ring"
	"github.com/tuneinsight/lattigo/v6/schemes/bgv"
)

func TestParameterSetMeets128BitSecurity(t *testing.T) {
	p := mustParameters()
	maxLogQP, ok := securityTable[p.LogN()]
	if !ok {
		t.Fatalf("no entry for LogN=%d in the security table", p.LogN())
	}
	if p.LogN() != LogN || p.N() != Slots || p.MaxSlots() != Slots {
		t.Fatalf("LogN=%d, N=%d, slots=%d", p.LogN(), p.N(), p.MaxSlots())
	}
	if p.LogQP() > float64(maxLogQP) {
		t.Fatalf("log2(QP) = %.2f exceeds %d, the 128-bit bound for N=2^%d", p.LogQP(), maxLogQP, p.LogN())
	}
	if p.PCount() != 0 {
		t.Fatalf("unexpected special modulus P (%d primes)", p.PCount())
	}
	if xs, ok := p.Xs().(ring.Ternary); !ok || xs.H != 0 || math.Abs(xs.P-2.0/3.0) > 1e-12 {
		t.Fatalf("secret distribution %+v is not uniform ternary", p.Xs())
	}
	if xe, ok := p.Xe().(ring.DiscreteGaussian); !ok || xe.Sigma < 3.19 {
		t.Fatalf("error distribution %+v narrower than the standard's σ≈3.2", p.Xe())
	}
	t.Logf("%s: N=2^%d, log2 Q = %.4f ≤ %d (128-bit classical, HE standard Table 1), t = %d (log2 %.4f)",
		ParameterSet, p.LogN(), p.LogQP(), maxLogQP, PlaintextModulus, math.Log2(float64(PlaintextModulus)))
}

func TestModuliArePrimesThatBatchFully(t *testing.T) {
	twoN := uint64(2 * Slots)
	tt := PlaintextModulus
	if !new(big.Int).SetUint64(tt).ProbablyPrime(64) || tt%twoN != 1 || tt < 1<<40 {
		t.Fatalf("t = %d must be a prime ≥ 2^40 with t ≡ 1 mod 2N", tt)
	}
	// t is the smallest such prime: collisions as rare as 2^-40 at the least cost.
	for c := uint64(1<<40) + 1; c < tt; c += twoN {
		if new(big.Int).SetUint64(c).ProbablyPrime(32) {
			t.Fatalf("%d is a smaller prime ≡ 1 mod 2N above 2^40", c)
		}
	}
	for _, q := range qModuli {
		if !new(big.Int).SetUint64(q).ProbablyPrime(64) || q%twoN != 1 || q <= tt {
			t.Fatalf("q = %#x must be a prime ≡ 1 mod 2N above t", q)
		}
	}
}

// decryptSlots decrypts a ciphertext to its raw slot values.
func decryptSlots(c *Client, ct *rlwe.Ciphertext) []uint64 {
	out := make([]uint64, Slots)
	pt := bgv.NewDecryptor(c.params, c.sk).DecryptNew(ct)
	if err := bgv.NewEncoder(c.params).Decode(pt, out); err != nil {
		panic(err)
	}
	return out
}

// noisePoly returns the decrypted noise of ct (its decryption minus its slot values,
// before decoding), centered, one big integer per coefficient, in the t^-1-scaled
// representation.
func noisePoly(c *Client, ct *rlwe.Ciphertext) []*big.Int {
	p := c.params
	vals := decryptSlots(c, ct)
	noise := ct.CopyNew()
	if err := bgv.NewEvaluator(p, nil).Sub(noise, vals, noise); err != nil {
		panic(err)
	}
	pt := bgv.NewDecryptor(p, c.sk).DecryptNew(noise)
	ringQ := p.RingQ().AtLevel(ct.Level())
	ringQ.INTT(pt.Value, pt.Value)
	coeffs := make([]*big.Int, p.N())
	for i := range coeffs {
		coeffs[i] = new(big.Int)
	}
	ringQ.PolyToBigintCentered(pt.Value, 1, coeffs)
	return coeffs
}

// maxLog2 returns log2 of the largest absolute coefficient.
func maxLog2(coeffs []*big.Int) float64 {
	m := new(big.Int)
	for _, c := range coeffs {
		if a := new(big.Int).Abs(c); a.Cmp(m) > 0 {
			m = a
		}
	}
	f, _ := new(big.Float).SetInt(m).Float64()
	return math.Log2(f)
}

// answerWith evaluates one claims ciphertext with the given options and returns the
// lattigo answer (not serialized: with noRescale it stays at the top level).
func answerWith(t testing.TB, c *Client, opts evalOptions, claims *rlwe.Ciphertext, actual []Actual) *rlwe.Ciphertext {
	t.Helper()
	e, err := NewEvaluator(c.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	e.opts = opts
	w, err := e.newWorker()
	if err != nil {
		t.Fatal(err)
	}
	ct := claims.CopyNew()
	if err := w.answer(ct, actual); err != nil {
		t.Fatal(err)
	}
	return ct
}

// slotBatch is one ciphertext's worth of checks: every other check a present record that
// does not match, the others absent; claims and actual values random in Z_t.
func slotBatch(t testing.TB, c *Client, seed uint64) (claims []uint64, actual []Actual, ct *rlwe.Ciphertext) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 99))
	claims = make([]uint64, Slots)
	actual = make([]Actual, Slots)
	for i := range claims {
		claims[i] = rng.Uint64N(PlaintextModulus)
		actual[i] = Actual{Value: rng.Uint64N(PlaintextModulus), Present: i%2 == 0}
		if i%8 == 0 {
			actual[i].Value = claims[i] // some matches
		}
	}
	cts, err := c.EncryptClaims(claims)
	if err != nil {
		t.Fatal(err)
	}
	ct, err = unmarshalCiphertext(c.params, kindClaims, cts[0])
	if err != nil {
		t.Fatal(err)
	}
	return claims, actual, ct
}

func TestNoiseBudgetKeepsDecryptionExactAfterFlooding(t *testing.T) {
	c := getFixture(t).c
	p := c.params
	claims, actual, ct := slotBatch(t, c, 1)

	fresh := maxLog2(noisePoly(c, ct))
	pre := maxLog2(noisePoly(c, answerWith(t, c, evalOptions{noFlood: true, noRescale: true}, ct, actual)))
	flooded := maxLog2(noisePoly(c, answerWith(t, c, evalOptions{noRescale: true}, ct, actual)))
	final := answerWith(t, c, evalOptions{}, ct, actual)
	out := maxLog2(noisePoly(c, final))

	// Worst-case bound of the noise before flooding, for any claims ciphertext whose noise
	// has ‖e‖∞ ≤ 19.2 (a fresh secret-key encryption): ‖R·e‖∞ ≤ N·t·19.2, plus the
	// encryption of zero, ‖u·e_pk + e0 + e1·s‖∞ ≤ 2·N·19.2 + 19.2.
	bound := float64(p.N())*float64(PlaintextModulus)*19.2 + 2*float64(p.N())*19.2 + 19.2
	logB := floodLogBound(p)
	logT := math.Log2(float64(PlaintextModulus))
	budget := func(level int) float64 { // log2 of the largest noise that still decrypts: Q_level/(2t)
		f, _ := new(big.Float).SetInt(p.RingQ().AtLevel(level).Modulus()).Float64()
		return math.Log2(f) - 1 - logT
	}
	t.Logf("noise (log2 of max |coefficient|): fresh claim %.1f; before flooding %.1f (worst-case bound %.1f); flood bound B = 2^%d; flooded %.1f (budget %.1f at level %d); returned %.1f (budget %.1f at level %d)",
		fresh, pre, math.Log2(bound), logB, flooded, budget(p.MaxLevel()), p.MaxLevel(), out, budget(outLevel), outLevel)

	// Statistical hiding: a shift x of a uniform flood on [−B, B) moves each coefficient's
	// distribution by at most |x|/(2B), so all N coefficients together by N·|x|/(2B):
	// want ≤ 2^-40 for the worst-case bound.
	if hiding := float64(logB+1) - math.Log2(bound) - float64(p.LogN()); hiding < 40 {
		t.Fatalf("flooding hides the noise to 2^-%.1f only", hiding)
	}
	if flooded > budget(p.MaxLevel())-2 || out > budget(outLevel)-1 {
		t.Fatalf("noise too close to the decryption budget")
	}
	if pre > math.Log2(bound) {
		t.Fatalf("measured noise %.1f above the worst-case bound %.1f", pre, math.Log2(bound))
	}
	got := decryptSlots(c, final)
	for i := range got {
		if (got[i] == 0) != (actual[i].Present && actual[i].Value == claims[i]) {
			t.Fatalf("slot %d decrypts wrongly", i)
		}
	}
}

func TestDecryptionIsExactOverManyRandomBatches(t *testing.T) {
	c := getFixture(t).c
	for seed := uint64(10); seed < 18; seed++ {
		claims, actual, ct := slotBatch(t, c, seed)
		got := decryptSlots(c, answerWith(t, c, evalOptions{}, ct, actual))
		for i := range got {
			if (got[i] == 0) != (actual[i].Present && actual[i].Value == claims[i]) {
				t.Fatalf("batch %d, slot %d decrypts wrongly", seed, i)
			}
		}
	}
}

// mulMod returns a·b mod q.
func mulMod(a, b, q uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	return bits.Rem64(hi, lo, q)
}

// recovered counts the present, non-matching slots whose actual value the applicant
// computes from the multipliers r it extracted: actual = claim − d·r^-1, with d the
// decrypted slot. (A matching slot tells the applicant the actual value anyway.)
func recovered(claims []uint64, actual []Actual, d, r []uint64) (hits, tries int) {
	tt := PlaintextModulus
	for j := range claims {
		if !actual[j].Present || actual[j].Value == claims[j] {
			continue
		}
		tries++
		if r[j] == 0 {
			continue
		}
		guess := (claims[j] + tt - mulMod(d[j], ring.ModExp(r[j], tt-2, tt), tt)) % tt
		if guess == actual[j].Value {
			hits++
		}
	}
	return hits, tries
}

// slotsOfRingQ reads a polynomial with small non-negative integer coefficients (given in
// coefficient form, in Q) as slot values mod t.
func slotsOfRingQ(p bgv.Parameters, level int, poly ring.Poly) []uint64 {
	ecd := bgv.NewEncoder(p)
	pT := p.RingT().NewPoly()
	ecd.RingQ2T(level, false, poly, pT)
	out := make([]uint64, Slots)
	if err := ecd.DecodeRingT(pT, p.NewScale(1), out); err != nil {
		panic(err)
	}
	return out
}

// divideOutC1 is the attack that re-randomisation defeats: the applicant knows the c1 it
// submitted; without a fresh encryption of zero, the answer's c1 is R·c1 (R the
// polynomial of the multipliers r), so dividing coefficient-wise in the NTT domain, where
// c1 is invertible, gives R, hence r per slot, hence actual = claim − d/r.
func divideOutC1(p bgv.Parameters, submitted, answer *rlwe.Ciphertext) []uint64 {
	level := submitted.Level()
	ringQ := p.RingQ().AtLevel(level)
	r := ringQ.NewPoly()
	for i, q := range ringQ.ModuliChain()[:level+1] {
		for j, x := range submitted.Value[1].Coeffs[i] {
			if x != 0 {
				r.Coeffs[i][j] = mulMod(answer.Value[1].Coeffs[i][j], ring.ModExp(x, q-2, q), q)
			}
		}
	}
	ringQ.INTT(r, r)
	return slotsOfRingQ(p, level, r)
}

func TestReturnedC1IsRerandomisedSoDividingOutTheSubmittedC1Fails(t *testing.T) {
	c := getFixture(t).c
	claims, actual, ct := slotBatch(t, c, 2)

	// Without the encryption of zero the attack recovers every actual value: the test can
	// tell an attack that works.
	open := answerWith(t, c, evalOptions{noRerandomize: true, noRescale: true}, ct, actual)
	hits, tries := recovered(claims, actual, decryptSlots(c, open), divideOutC1(c.params, ct, open))
	if hits != tries || tries == 0 {
		t.Fatalf("the attack itself is broken: recovered %d of %d without re-randomisation", hits, tries)
	}

	// With it (at the same level, so the division is well defined) the attack fails.
	closed := answerWith(t, c, evalOptions{noRescale: true}, ct, actual)
	hits, tries = recovered(claims, actual, decryptSlots(c, closed), divideOutC1(c.params, ct, closed))
	if hits > 0 {
		t.Fatalf("dividing out c1 recovered %d of %d actual values", hits, tries)
	}
	// And the answer's c1 is not R·c1 for any R that keeps slots small: it differs
	// from the unre-randomised answer's c1.
	if closed.Value[1].Equal(&open.Value[1]) {
		t.Fatal("c1 unchanged by re-randomisation")
	}
}

// readNoise is the attack that flooding defeats: the applicant submits claims whose
// noise is a constant K; the answer's noise is then R·e + K·R + small, so rounding the
// decrypted noise by K gives R, hence r per slot.
func readNoise(c *Client, answer *rlwe.Ciphertext, k *big.Int) []uint64 {
	p := c.params
	noise := noisePoly(c, answer)
	level := answer.Level()
	ringQ := p.RingQ().AtLevel(level)
	r := ringQ.NewPoly()
	half := new(big.Int).Rsh(k, 1)
	coeffs := make([]*big.Int, len(noise))
	for i, n := range noise {
		coeffs[i] = new(big.Int).Div(new(big.Int).Add(n, half), k) // round(n/K)
	}
	ringQ.SetCoefficientsBigint(coeffs, r)
	return slotsOfRingQ(p, level, r)
}

func TestFloodingHidesTheMultipliersFromTheNoise(t *testing.T) {
	c := getFixture(t).c
	p := c.params
	claims, actual, ct := slotBatch(t, c, 3)

	// A malicious claims ciphertext: its noise is the constant K = 2^62 (far below what
	// still decrypts, and below the 2^69 up to which the flood provably hides R·e).
	k := new(big.Int).Lsh(big.NewInt(1), 62)
	for i, q := range p.RingQ().ModuliChain() {
		kq := new(big.Int).Mod(k, new(big.Int).SetUint64(q)).Uint64()
		for j := range ct.Value[0].Coeffs[i] {
			ct.Value[0].Coeffs[i][j] = (ct.Value[0].Coeffs[i][j] + kq) % q
		}
	}

	open := answerWith(t, c, evalOptions{noFlood: true, noRescale: true}, ct, actual)
	hits, tries := recovered(claims, actual, decryptSlots(c, open), readNoise(c, open, k))
	if hits != tries || tries == 0 {
		t.Fatalf("the attack itself is broken: recovered %d of %d without flooding", hits, tries)
	}
	closed := answerWith(t, c, evalOptions{noRescale: true}, ct, actual)
	hits, tries = recovered(claims, actual, decryptSlots(c, closed), readNoise(c, closed, k))
	if hits > 0 {
		t.Fatalf("reading the noise recovered %d of %d actual values through the flood", hits, tries)
	}
}

// spread checks that values look uniform in [1, t−1]: none is zero, 16 equal ranges hold
// counts within 6 standard deviations of their mean, and no more than expected are small.
func spread(t *testing.T, name string, vals []uint64) {
	t.Helper()
	n := float64(len(vals))
	var counts [16]int
	small := 0
	for _, v := range vals {
		if v == 0 {
			t.Fatalf("%s: a zero among non-matches", name)
		}
		counts[v*16/PlaintextModulus]++
		if v < PlaintextModulus>>20 {
			small++
		}
	}
	sd := math.Sqrt(n / 16 * 15 / 16)
	for b, cnt := range counts {
		if math.Abs(float64(cnt)-n/16) > 6*sd {
			t.Errorf("%s: range %d holds %d of %d values (mean %.0f, sd %.1f)", name, b, cnt, len(vals), n/16, sd)
		}
	}
	// Below t/2^20: expected n/2^20 (under 1 here); a bias toward small values would show.
	if small > 3 {
		t.Errorf("%s: %d of %d values below t/2^20", name, small, len(vals))
	}
}

func TestNonMatchesAreSpreadOverZt(t *testing.T) {
	c := getFixture(t).c
	var mismatch, absent, padding []uint64
	rng := rand.New(rand.NewPCG(7, 8))
	for run := 0; run < 4; run++ {
		n := Slots - 1000 // the last 1000 slots are padding
		claims := make([]uint64, n)
		actual := make([]Actual, n)
		for i := range claims {
			// Small claims and actual values, one apart: r·(claim − actual) must still
			// look uniform, not small.
			claims[i] = uint64(rng.IntN(100))
			actual[i] = Actual{Value: claims[i] + 1, Present: i%2 == 0}
		}
		cts, err := c.EncryptClaims(claims)
		if err != nil {
			t.Fatal(err)
		}
		answers, err := Evaluate(c.PublicKey(), cts, actual)
		if err != nil {
			t.Fatal(err)
		}
		ct, err := unmarshalCiphertext(c.params, kindAnswer, answers[0])
		if err != nil {
			t.Fatal(err)
		}
		for i, v := range decryptSlots(c, ct) {
			switch {
			case i >= n:
				padding = append(padding, v)
			case actual[i].Present:
				mismatch = append(mismatch, v)
			default:
				absent = append(absent, v)
			}
		}
	}
	spread(t, "present, not matching", mismatch)
	spread(t, "absent", absent)
	spread(t, "padding", padding)
}

func TestKeysAndCiphertextsRoundTrip(t *testing.T) {
	f := getFixture(t)
	p := f.c.params
	ct, err := unmarshalCiphertext(p, kindClaims, f.claim)
	if err != nil {
		t.Fatal(err)
	}
	again, err := marshalCiphertext(kindClaims, ct)
	if err != nil || !bytes.Equal(again, f.claim) {
		t.Fatalf("claims do not round-trip: %v", err)
	}
	answers, err := Evaluate(f.pk, [][]byte{f.claim}, []Actual{{Value: 5, Present: true}})
	if err != nil {
		t.Fatal(err)
	}
	act, err := unmarshalCiphertext(p, kindAnswer, answers[0])
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := marshalCiphertext(kindAnswer, act); !bytes.Equal(again, answers[0]) {
		t.Fatal("answers do not round-trip")
	}
	pk, err := unmarshalPublicKey(p, f.pk)
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := marshalPublicKey(f.pk[headerSize:headerSize+seedSize], pk); !bytes.Equal(again, f.pk) {
		t.Fatal("the public key does not round-trip")
	}
	skBytes, err := marshalSecretKey(f.c.sk)
	if err != nil {
		t.Fatal(err)
	}
	sk, err := unmarshalSecretKey(p, skBytes)
	if err != nil || !sk.Equal(f.c.sk) {
		t.Fatalf("the secret key does not round-trip: %v", err)
	}
	if len(f.claim) != headerSize+bgv.NewCiphertext(p, 1, p.MaxLevel()).BinarySize() {
		t.Fatal("claims size")
	}
	t.Logf("sizes: claims ciphertext %d B (%.1f B/check), answer %d B (%.1f B/check), public key %d B, secret key %d B",
		len(f.claim), float64(len(f.claim))/Slots, len(answers[0]), float64(len(answers[0]))/Slots, len(f.pk), len(skBytes))
}
