package verify

import (
	"bytes"
	"errors"
	"math"
	"math/big"
	"math/rand/v2"
	"testing"

	"github.com/tuneinsight/lattigo/v6/core/rlwe"
	"github.com/tuneinsight/lattigo/v6/schemes/bgv"
)

// fixedSeed is a seed for deterministic tests.
func fixedSeed(b byte) []byte { return bytes.Repeat([]byte{b}, SeedSize) }

func TestKeyCandidateIsDeterminedByItsSeedAndIsAValidKeyPair(t *testing.T) {
	a, err := NewKeyCandidate(fixedSeed(1))
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewKeyCandidate(fixedSeed(1))
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewKeyCandidate(fixedSeed(2))
	if err != nil {
		t.Fatal(err)
	}
	if a.Digest != b.Digest || !bytes.Equal(a.Opening(), b.Opening()) {
		t.Fatal("one seed made two different candidates")
	}
	if a.Digest == c.Digest {
		t.Fatal("two seeds made the same candidate")
	}
	// The candidate passes everything the domain checks of a key, and the pair passes
	// LoadKeys' check (lattigo's NoisePublicKey ≤ 2^4) and round-trips through a key directory.
	if _, err := NewEvaluator(a.PublicKey()); err != nil {
		t.Fatalf("the domain refuses an honest candidate: %v", err)
	}
	dir := t.TempDir()
	if err := a.Client().Save(dir); err != nil {
		t.Fatal(err)
	}
	loaded, err := LoadKeys(dir)
	if err != nil {
		t.Fatalf("an honest candidate is not a key pair: %v", err)
	}
	noise := rlwe.NoisePublicKey(mustPK(t, a.PublicKey()), a.Client().sk, mustParameters().Parameters)
	if noise > 2.5 { // log2 of σ = 3.2 is 1.7
		t.Fatalf("public key noise 2^%.2f, want that of σ = 3.2", noise)
	}
	// And it verifies: one match, one mismatch, one absent.
	vals := []uint64{Encode("a"), Encode("b"), Encode("c")}
	cts, err := loaded.EncryptClaims(vals)
	if err != nil {
		t.Fatal(err)
	}
	answers, err := Evaluate(a.PublicKey(), cts, []Actual{{Value: Encode("a"), Present: true}, {Value: Encode("x"), Present: true}, {}})
	if err != nil {
		t.Fatal(err)
	}
	m, err := loaded.DecryptMatches(answers, 3)
	if err != nil || !m[0] || m[1] || m[2] {
		t.Fatalf("matches %v, %v; want [true false false]", m, err)
	}
}

func mustPK(t testing.TB, b []byte) *rlwe.PublicKey {
	t.Helper()
	pk, err := unmarshalPublicKey(mustParameters(), b)
	if err != nil {
		t.Fatal(err)
	}
	return pk
}

// craftedP0 is docs/he.md's malicious key: the candidate's key with ⌊Q/4⌉ added to p0, so
// that the domain's encryption of zero would reveal its ternary u. It still passes every check
// NewEvaluator makes.
func craftedP0(t testing.TB, k *KeyCandidate) []byte {
	t.Helper()
	p := mustParameters()
	pk := mustPK(t, k.PublicKey())
	ringQ := p.RingQ()
	quarter := new(big.Int).Rsh(ringQ.Modulus(), 2)
	c := make([]*big.Int, p.N())
	for i := range c {
		c[i] = new(big.Int).Set(quarter)
	}
	add := ringQ.NewPoly()
	ringQ.SetCoefficientsBigint(c, add)
	ringQ.NTT(add, add)
	ringQ.MForm(add, add)
	ringQ.Add(pk.Value[0].Q, add, pk.Value[0].Q)
	payload, _ := readHeader(k.PublicKey(), kindPublicKey, ErrMalformedKey)
	b, err := marshalPublicKey(payload[:SeedSize], pk)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewEvaluator(b); err != nil {
		t.Fatalf("the crafted key is refused by the domain's own checks, so the test shows nothing: %v", err)
	}
	return b
}

func TestKeyOpeningIsCheckedAgainstItsCommitment(t *testing.T) {
	k, err := NewKeyCandidate(fixedSeed(3))
	if err != nil {
		t.Fatal(err)
	}
	other, err := NewKeyCandidate(fixedSeed(4))
	if err != nil {
		t.Fatal(err)
	}
	big := k.Opening()
	big[headerSize+SeedSize+7] = 40 // an error coefficient above 6σ
	cases := []struct {
		name    string
		opening []byte
		digest  string
		want    error
	}{
		{"honest", k.Opening(), k.Digest, nil},
		{"another candidate's digest", k.Opening(), other.Digest, ErrOpeningMismatch},
		{"crafted p0 committed, honest seed opened", k.Opening(), Digest(craftedP0(t, k)), ErrOpeningMismatch},
		{"error above the Gaussian's bound", big, k.Digest, ErrOpeningMismatch},
		{"truncated", k.Opening()[:100], k.Digest, ErrMalformedOpening},
		{"a share opening", withByte(k.Opening(), 5, byte(kindShareOpening)), k.Digest, ErrMalformedOpening},
		{"empty", nil, k.Digest, ErrMalformedOpening},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := CheckKeyOpening(c.opening, c.digest)
			if c.want == nil && err != nil || c.want != nil && !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
		})
	}
}

// TestCutAndChooseCatchesACraftedKeyWheneverItIsOpened runs the key cut-and-choose over
// random K and positions (math/rand/v2, fixed seed): one candidate slot holds the crafted-p0
// key. Whenever the challenge opens that slot, its opening fails; when the challenge picks it,
// every opening passes and the crafted key would be pinned — probability 1/K.
func TestCutAndChooseCatchesACraftedKeyWheneverItIsOpened(t *testing.T) {
	rng := rand.New(rand.NewPCG(17, 17))
	pool := make([]*KeyCandidate, 8)
	for i := range pool {
		var err error
		if pool[i], err = NewKeyCandidate(fixedSeed(byte(10 + i))); err != nil {
			t.Fatal(err)
		}
	}
	caught, pinned := 0, 0
	for trial := range 24 {
		k := 2 + rng.IntN(len(pool)-1)
		bad, challenge := rng.IntN(k), rng.IntN(k)
		if trial < 2 { // both outcomes at least once, whatever the draws
			challenge = (bad + trial) % k
		}
		digests := make([]string, k)
		for i := range k {
			digests[i] = pool[i].Digest
		}
		digests[bad] = Digest(craftedP0(t, pool[bad])) // committed; opened as the honest seed
		var failed []int
		for i := range k {
			if i == challenge {
				continue
			}
			if err := CheckKeyOpening(pool[i].Opening(), digests[i]); err != nil {
				if !errors.Is(err, ErrOpeningMismatch) {
					t.Fatalf("trial %d: opening %d: %v", trial, i, err)
				}
				failed = append(failed, i)
			}
		}
		switch {
		case challenge == bad && len(failed) == 0:
			pinned++
		case challenge != bad && len(failed) == 1 && failed[0] == bad:
			caught++
		default:
			t.Fatalf("trial %d: K=%d, crafted slot %d, challenge %d: openings failed at %v", trial, k, bad, challenge, failed)
		}
	}
	if caught == 0 || pinned == 0 {
		t.Fatalf("caught %d, pinned %d: both outcomes must occur", caught, pinned)
	}
}

// sharesFixture encrypts values as k shares under a fresh candidate key.
func sharesFixture(t testing.TB, values []uint64, k int) (*KeyCandidate, []ClaimShares) {
	t.Helper()
	key, err := NewKeyCandidate(fixedSeed(40))
	if err != nil {
		t.Fatal(err)
	}
	shares, err := key.Client().EncryptClaimShares(values, k)
	if err != nil {
		t.Fatal(err)
	}
	return key, shares
}

// openAllBut opens every share but challenge and combines.
func openAllBut(t testing.TB, chk *ShareChecker, cs ClaimShares, challenge int) ([]byte, [][]uint64) {
	t.Helper()
	digests := cs.Digests()
	var pts [][]uint64
	for i := range cs.Ciphertexts {
		if i == challenge {
			continue
		}
		pt, err := chk.Open(cs.Openings[i], digests[i])
		if err != nil {
			t.Fatalf("honest opening %d: %v", i, err)
		}
		pts = append(pts, pt)
	}
	combined, err := chk.Combine(cs.Ciphertexts[challenge], pts)
	if err != nil {
		t.Fatal(err)
	}
	return combined, pts
}

func TestClaimSharesOpenAndCombineToTheClaimsForEveryChallenge(t *testing.T) {
	n := Slots + 5 // two claims ciphertexts
	values := make([]uint64, n)
	actual := make([]Actual, n)
	rng := rand.New(rand.NewPCG(5, 5))
	for i := range values {
		values[i] = rng.Uint64N(PlaintextModulus)
		actual[i] = Actual{Value: values[i], Present: i%3 != 2}
		if i%3 == 1 {
			actual[i].Value = (values[i] + 1) % PlaintextModulus
		}
	}
	for _, k := range []int{2, 3} {
		key, shares := sharesFixture(t, values, k)
		chk, err := NewShareChecker(key.PublicKey())
		if err != nil {
			t.Fatal(err)
		}
		for challenge := range k {
			var cts [][]byte
			for _, cs := range shares {
				combined, _ := openAllBut(t, chk, cs, challenge)
				cts = append(cts, combined)
			}
			answers, err := Evaluate(key.PublicKey(), cts, actual)
			if err != nil {
				t.Fatal(err)
			}
			m, err := key.Client().DecryptMatches(answers, n)
			if err != nil {
				t.Fatal(err)
			}
			for i := range m {
				if m[i] != (i%3 == 0) {
					t.Fatalf("K=%d challenge %d: check %d matched %v", k, challenge, i, m[i])
				}
			}
		}
	}
}

func TestEveryShareIsAFreshEncryptionWithHonestNoise(t *testing.T) {
	key, shares := sharesFixture(t, []uint64{1, 2, 3}, 3)
	p := mustParameters()
	dec := bgv.NewDecryptor(p, key.Client().sk)
	ecd := bgv.NewEncoder(p)
	sum := make([]uint64, Slots)
	for i, b := range shares[0].Ciphertexts {
		ct, err := unmarshalCiphertext(p, kindClaims, b)
		if err != nil {
			t.Fatalf("share %d is not a valid claims ciphertext: %v", i, err)
		}
		pt := dec.DecryptNew(ct)
		slots := make([]uint64, Slots)
		if err := ecd.Decode(pt, slots); err != nil {
			t.Fatal(err)
		}
		for j := range sum {
			sum[j] = (sum[j] + slots[j]) % PlaintextModulus
		}
		// Public-key encryption noise u·e + e0 + e1·s: worst case N·19·2 + 19 ≈ 2^18.3; typically
		// about 2^10. Far below the 2^69 the flood hides.
		if nl := noiseLog2(t, key.Client(), ct); nl > 18.3 {
			t.Fatalf("share %d: noise 2^%.1f", i, nl)
		}
	}
	if sum[0] != 1 || sum[1] != 2 || sum[2] != 3 || sum[3] != 0 {
		t.Fatalf("the shares sum to %v…, want the claims 1 2 3 0", sum[:4])
	}
}

// noiseLog2 is log2 of the largest decrypted noise coefficient (crypto_test.go's noisePoly).
func noiseLog2(t testing.TB, c *Client, ct *rlwe.Ciphertext) float64 {
	t.Helper()
	return maxLog2(noisePoly(c, ct))
}

// TestOversizedNoiseShareIsCaughtWhenOpened: docs/he.md's second attack, a claims ciphertext
// whose noise is a large constant (here 2^62, between the 2^69 the flood hides and what still
// decrypts), sent as one share. Its commitment is the crafted ciphertext; opened with the
// honest seed and errors, it does not rebuild; opened with its real error, that error is far
// above the Gaussian's bound (and does not even fit an opening's int8).
func TestOversizedNoiseShareIsCaughtWhenOpened(t *testing.T) {
	key, shares := sharesFixture(t, []uint64{7}, 2)
	chk, err := NewShareChecker(key.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	p := mustParameters()
	for bad := range 2 {
		ct, err := unmarshalCiphertext(p, kindClaims, shares[0].Ciphertexts[bad])
		if err != nil {
			t.Fatal(err)
		}
		k := new(big.Int).Lsh(big.NewInt(1), 62)
		for i, q := range p.RingQ().ModuliChain() {
			kq := new(big.Int).Mod(k, new(big.Int).SetUint64(q)).Uint64()
			for j := range ct.Value[0].Coeffs[i] {
				ct.Value[0].Coeffs[i][j] = (ct.Value[0].Coeffs[i][j] + kq) % q
			}
		}
		if nl := noiseLog2(t, key.Client(), ct); nl < 60 {
			t.Fatalf("the crafted share's noise is 2^%.1f: the attack is not built", nl)
		}
		crafted := claimsFrom(t, ct)
		digests := shares[0].Digests()
		digests[bad] = Digest(crafted)
		_, err = chk.Open(shares[0].Openings[bad], digests[bad])
		if !errors.Is(err, ErrOpeningMismatch) {
			t.Fatalf("share %d: the oversized-noise share opened: %v", bad, err)
		}
		// Left closed (probability 1/K), it is evaluated: the honest other share opens.
		if _, err := chk.Open(shares[0].Openings[1-bad], digests[1-bad]); err != nil {
			t.Fatalf("the honest share does not open: %v", err)
		}
	}
}

// TestOpenedSharesAreUniformWhateverTheClaims: with K = 2 and every claim the same value,
// the share the challenge opens — either one — has plaintext values spread over Z_t: opening
// K−1 shares tells nothing about the claims. (16 equal ranges within 6σ over 8,192 values:
// an honest run fails with probability below 10^-7.)
func TestOpenedSharesAreUniformWhateverTheClaims(t *testing.T) {
	values := make([]uint64, Slots)
	for i := range values {
		values[i] = Encode("3")
	}
	key, shares := sharesFixture(t, values, 2)
	chk, err := NewShareChecker(key.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	for challenge := range 2 {
		_, pts := openAllBut(t, chk, shares[0], challenge)
		var counts [16]int
		for _, v := range pts[0] {
			counts[v*16/PlaintextModulus]++
			if v == values[0] {
				t.Fatalf("challenge %d: an opened share holds the claim's encoding", challenge)
			}
		}
		n := float64(Slots)
		sd := math.Sqrt(n / 16 * 15 / 16)
		for b, c := range counts {
			if math.Abs(float64(c)-n/16) > 6*sd {
				t.Fatalf("challenge %d: range %d holds %d of %d values", challenge, b, c, Slots)
			}
		}
	}
}

func TestShareOpeningsRefuseMalformedInput(t *testing.T) {
	key, shares := sharesFixture(t, []uint64{1}, 2)
	chk, err := NewShareChecker(key.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	d := shares[0].Digests()
	seedOpening, explicit := shares[0].Openings[0], shares[0].Openings[1]
	outOfZt := append([]byte(nil), explicit...)
	for i := len(outOfZt) - 8; i < len(outOfZt); i++ {
		outOfZt[i] = 0xff
	}
	bigErr := append([]byte(nil), seedOpening...)
	bigErr[headerSize+SeedSize+1+3] = 0x7f
	cases := []struct {
		name    string
		opening []byte
		digest  string
		want    error
	}{
		{"honest, from seed", seedOpening, d[0], nil},
		{"honest, explicit", explicit, d[1], nil},
		{"swapped digests", seedOpening, d[1], ErrOpeningMismatch},
		{"error above bound", bigErr, d[0], ErrOpeningMismatch},
		{"plaintext outside Z_t", outOfZt, d[1], ErrMalformedOpening},
		{"explicit mode without plaintext", withByte(seedOpening, headerSize+SeedSize, plaintextExplicit), d[0], ErrMalformedOpening},
		{"unknown mode", withByte(seedOpening, headerSize+SeedSize, 9), d[0], ErrMalformedOpening},
		{"key opening kind", withByte(seedOpening, 5, byte(kindKeyOpening)), d[0], ErrMalformedOpening},
		{"truncated", seedOpening[:headerSize+10], d[0], ErrMalformedOpening},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := chk.Open(c.opening, c.digest)
			if c.want == nil && err != nil || c.want != nil && !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
		})
	}
	if _, err := chk.Combine(shares[0].Ciphertexts[0][:100], nil); !errors.Is(err, ErrMalformedCiphertext) {
		t.Fatalf("combining a malformed share: %v", err)
	}
	if _, err := GenerateKeyCandidates(1); !errors.Is(err, ErrCandidateCount) {
		t.Fatalf("one candidate: %v", err)
	}
	if _, err := key.Client().EncryptClaimShares([]uint64{1}, MaxCandidates+1); !errors.Is(err, ErrCandidateCount) {
		t.Fatalf("too many shares: %v", err)
	}
}

// FuzzOpenings feeds arbitrary openings to both checkers: no panic, and every error is one
// of the sentinels (never a lattigo message). Seeds: honest key and share openings and edits.
func FuzzOpenings(f *testing.F) {
	key, err := NewKeyCandidate(fixedSeed(50))
	if err != nil {
		f.Fatal(err)
	}
	shares, err := key.Client().EncryptClaimShares([]uint64{1}, 2)
	if err != nil {
		f.Fatal(err)
	}
	chk, err := NewShareChecker(key.PublicKey())
	if err != nil {
		f.Fatal(err)
	}
	d := shares[0].Digests()
	f.Add(key.Opening(), 0)
	f.Add(shares[0].Openings[0], 1)
	f.Add(shares[0].Openings[1], 1)
	f.Add([]byte("crhv\x01\x05\x01\x00"), 0)
	f.Add([]byte{}, 1)
	f.Fuzz(func(t *testing.T, b []byte, which int) {
		var err error
		if which%2 == 0 {
			err = CheckKeyOpening(b, key.Digest)
		} else {
			_, err = chk.Open(b, d[0])
		}
		if err == nil {
			return
		}
		for _, s := range []error{ErrMalformedOpening, ErrOpeningMismatch} {
			if errors.Is(err, s) {
				return
			}
		}
		t.Fatalf("unexpected error %v", err)
	})
}
