package verify

import (
	"errors"
	"sync"
	"testing"

	"github.com/tuneinsight/lattigo/v6/core/rlwe"
	"github.com/tuneinsight/lattigo/v6/schemes/bgv"
)

// fixture is one valid key and claims ciphertext (one check), built once.
type fixture struct {
	c     *Client
	pk    []byte
	claim []byte
}

var (
	fixtureOnce sync.Once
	fixtureVal  fixture
	fixtureErr  error
)

func getFixture(t testing.TB) fixture {
	t.Helper()
	fixtureOnce.Do(func() {
		c, err := GenerateKeys()
		if err != nil {
			fixtureErr = err
			return
		}
		cts, err := c.EncryptClaims([]uint64{Encode("3")})
		if err != nil {
			fixtureErr = err
			return
		}
		fixtureVal = fixture{c: c, pk: c.PublicKey(), claim: cts[0]}
	})
	if fixtureErr != nil {
		t.Fatal(fixtureErr)
	}
	return fixtureVal
}

// withHeader returns a copy of b whose header byte at off is v.
func withByte(b []byte, off int, v byte) []byte {
	out := append([]byte(nil), b...)
	out[off] = v
	return out
}

// claimsFrom marshals a lattigo ciphertext as claims, whatever its shape.
func claimsFrom(t testing.TB, ct *rlwe.Ciphertext) []byte {
	t.Helper()
	b, err := marshalCiphertext(kindClaims, ct)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// badCase is one malformed input to Evaluate and the sentinel errors it must match.
type badCase struct {
	name   string
	pk     []byte
	cts    [][]byte
	actual []Actual
	want   []error
}

// badCases is the one list of malformed inputs: it drives TestMalformedInputGivesSentinel
// Errors and seeds FuzzEvaluate.
func badCases(t testing.TB) []badCase {
	f := getFixture(t)
	p := mustParameters()
	one := []Actual{{Value: Encode("3"), Present: true}}
	claimCt, err := unmarshalCiphertext(p, kindClaims, f.claim)
	if err != nil {
		t.Fatal(err)
	}

	degree2 := bgv.NewCiphertext(p, 2, p.MaxLevel())
	level2 := bgv.NewCiphertext(p, 1, p.MaxLevel()-1)
	unreduced := claimCt.CopyNew()
	unreduced.Value[1].Coeffs[0][17] = p.Q()[0]
	notNTT := claimCt.CopyNew()
	notNTT.IsNTT = false
	answer, err := marshalCiphertext(kindAnswer, claimCt)
	if err != nil {
		t.Fatal(err)
	}

	zeroKey := append(header(kindPublicKey), make([]byte, seedSize)...)
	zeroPK := rlwe.NewPublicKey(p)
	zb, _ := zeroPK.MarshalBinary()
	zeroKey = append(zeroKey, zb...)
	// A key whose p1 is the seed's expansion but whose p0 is zero.
	seed := f.pk[headerSize : headerSize+seedSize]
	a, err := expandSeed(p, seed)
	if err != nil {
		t.Fatal(err)
	}
	zeroP0 := rlwe.NewPublicKey(p)
	zeroP0.Value[1].Q.Copy(a.Q)
	zeroP0Key, err := marshalPublicKey(seed, zeroP0)
	if err != nil {
		t.Fatal(err)
	}
	otherSeed := withByte(f.pk, headerSize, f.pk[headerSize]^1)

	ct, key := [][]byte{f.claim}, f.pk
	mc, mk := ErrMalformedCiphertext, ErrMalformedKey
	return []badCase{
		{"empty ciphertext", key, [][]byte{{}}, one, []error{mc}},
		{"truncated ciphertext", key, [][]byte{f.claim[:len(f.claim)/2]}, one, []error{mc}},
		{"ciphertext with a byte too many", key, [][]byte{append(append([]byte(nil), f.claim...), 0)}, one, []error{mc}},
		{"ciphertext without header", key, [][]byte{f.claim[headerSize:]}, one, []error{mc}},
		{"ciphertext of another parameter set", key, [][]byte{withByte(f.claim, 6, 2)}, one, []error{mc, ErrParameterSet}},
		{"ciphertext of another format version", key, [][]byte{withByte(f.claim, 4, 9)}, one, []error{mc, ErrParameterSet}},
		{"an answer passed as claims", key, [][]byte{answer}, one, []error{mc}},
		{"ciphertext of degree 2", key, [][]byte{claimsFrom(t, degree2)}, one, []error{mc}},
		{"ciphertext below the top level", key, [][]byte{claimsFrom(t, level2)}, one, []error{mc}},
		{"ciphertext with an unreduced coefficient", key, [][]byte{claimsFrom(t, unreduced)}, one, []error{mc}},
		{"ciphertext outside the NTT domain", key, [][]byte{claimsFrom(t, notNTT)}, one, []error{mc}},
		{"too few ciphertexts", key, nil, one, []error{ErrCheckCount}},
		{"too many ciphertexts", key, [][]byte{f.claim, f.claim}, one, []error{ErrCheckCount}},
		{"too many checks", key, ct, make([]Actual, MaxChecks+1), []error{ErrTooManyChecks}},
		{"actual value outside Z_t", key, ct, []Actual{{Value: PlaintextModulus, Present: true}}, []error{ErrValueOutOfRange}},
		{"empty key", nil, ct, one, []error{mk}},
		{"truncated key", f.pk[:len(f.pk)-1], ct, one, []error{mk}},
		{"key of another parameter set", withByte(f.pk, 6, 7), ct, one, []error{mk, ErrParameterSet}},
		{"ciphertext passed as key", f.claim, ct, one, []error{mk}},
		{"zero key", zeroKey, ct, one, []error{mk}},
		{"key with zero p0", zeroP0Key, ct, one, []error{mk}},
		{"key whose p1 is not its seed's expansion", otherSeed, ct, one, []error{mk}},
	}
}

func TestMalformedInputGivesSentinelErrors(t *testing.T) {
	for _, c := range badCases(t) {
		t.Run(c.name, func(t *testing.T) {
			out, err := Evaluate(c.pk, c.cts, c.actual)
			if err == nil || out != nil {
				t.Fatalf("Evaluate accepted it")
			}
			for _, want := range c.want {
				if !errors.Is(err, want) {
					t.Errorf("error %q does not match %q", err, want)
				}
			}
			// CheckClaims refuses the same input, except a bad actual value (it reads none).
			if errors.Is(err, ErrValueOutOfRange) {
				return
			}
			err = CheckClaims(c.pk, c.cts, len(c.actual))
			for _, want := range c.want {
				if !errors.Is(err, want) {
					t.Errorf("CheckClaims: error %q does not match %q", err, want)
				}
			}
		})
	}
	f := getFixture(t)
	if err := CheckClaims(f.pk, [][]byte{f.claim}, 1); err != nil {
		t.Fatalf("CheckClaims refused a valid claim: %v", err)
	}
}

func TestClientRefusesMalformedAnswersAndCounts(t *testing.T) {
	f := getFixture(t)
	answers, err := Evaluate(f.pk, [][]byte{f.claim}, []Actual{{Value: 1, Present: true}})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		cts  [][]byte
		n    int
		want error
	}{
		{"claims passed as an answer", [][]byte{f.claim}, 1, ErrMalformedCiphertext},
		{"truncated answer", [][]byte{answers[0][:100]}, 1, ErrMalformedCiphertext},
		{"more checks than the answers carry", answers, Slots + 1, ErrCheckCount},
		{"negative count", answers, -1, ErrCheckCount},
		{"too many checks", answers, MaxChecks + 1, ErrTooManyChecks},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := f.c.DecryptMatches(c.cts, c.n); !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
		})
	}
	if _, err := f.c.EncryptClaims([]uint64{PlaintextModulus}); !errors.Is(err, ErrValueOutOfRange) {
		t.Fatalf("EncryptClaims of a value outside Z_t: %v", err)
	}
	if _, err := f.c.EncryptClaims(make([]uint64, MaxChecks+1)); !errors.Is(err, ErrTooManyChecks) {
		t.Fatalf("EncryptClaims of too many: %v", err)
	}
}

// TestNoErrorCarriesAValue: error texts are built from fixed strings and indices only.
func TestNoErrorCarriesAValue(t *testing.T) {
	for _, c := range badCases(t) {
		_, err := Evaluate(c.pk, c.cts, c.actual)
		if err == nil {
			continue
		}
		msg := err.Error()
		for _, bad := range []string{"0x", "len(", "%!", "lattigo", "Q[", "cannot"} {
			if contains(msg, bad) {
				t.Errorf("%s: error %q contains %q", c.name, msg, bad)
			}
		}
	}
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

// FuzzEvaluate feeds arbitrary key and ciphertext bytes to Evaluate for one check: it must
// never panic, and must either succeed or return one of the sentinel errors. The seed
// corpus is the valid fixture and every malformed case above.
func FuzzEvaluate(f *testing.F) {
	fx := getFixture(f)
	f.Add(fx.pk, fx.claim, true)
	for _, c := range badCases(f) {
		if len(c.cts) == 1 {
			f.Add(c.pk, c.cts[0], true)
		}
	}
	f.Add([]byte("crhv\x01\x02\x01\x00"), []byte("crhv\x01\x03\x01\x00"), false)
	f.Fuzz(func(t *testing.T, pk, ct []byte, present bool) {
		out, err := Evaluate(pk, [][]byte{ct}, []Actual{{Value: 42, Present: present}})
		if err == nil {
			if len(out) != 1 {
				t.Fatalf("success with %d answers", len(out))
			}
			return
		}
		for _, s := range []error{ErrMalformedCiphertext, ErrMalformedKey} {
			if errors.Is(err, s) {
				return
			}
		}
		t.Fatalf("unexpected error: %v", err)
	})
}

// TestForgedLengthFieldsAreRefusedBeforeDecoding: lattigo's decoders trust the length
// fields in their input, and a forged one made a decoder allocate terabytes (found by
// FuzzEvaluate). Every byte of a key or ciphertext that is not coefficient data is now
// checked against the expected layout first: forging any of them is a sentinel error.
func TestForgedLengthFieldsAreRefusedBeforeDecoding(t *testing.T) {
	f := getFixture(t)
	p := mustParameters()
	one := []Actual{{Value: 1, Present: true}}
	prepared, err := NewEvaluator(f.pk)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name  string
		k     kind
		bytes []byte
		skip  int // bytes before the lattigo payload
		want  error
		eval  func(b []byte) error
	}{
		{"claims", kindClaims, f.claim, headerSize, ErrMalformedCiphertext, func(b []byte) error {
			_, err := prepared.Evaluate([][]byte{b}, one)
			return err
		}},
		{"public key", kindPublicKey, f.pk, headerSize + seedSize, ErrMalformedKey, func(b []byte) error {
			_, err := Evaluate(b, [][]byte{f.claim}, one)
			return err
		}},
	} {
		l, err := layoutFor(p, c.k)
		if err != nil {
			t.Fatal(err)
		}
		forged := 0
		for i, isCoeff := range l.coeff {
			if isCoeff {
				continue
			}
			for _, v := range []byte{0xff, 0x7f, l.fixed[i] ^ 1} {
				b := append([]byte(nil), c.bytes...)
				b[c.skip+i] = v
				if v == c.bytes[c.skip+i] {
					continue
				}
				if err := c.eval(b); !errors.Is(err, c.want) {
					t.Fatalf("%s: byte %d forged to %#x: got %v, want %v", c.name, i, v, err, c.want)
				}
				forged++
			}
		}
		t.Logf("%s: %d forgeries of %d layout bytes refused", c.name, forged, len(l.fixed))
	}
}

// FuzzEvaluateEdits fuzzes small edits of a valid key and claims ciphertext (the go fuzzer
// makes little progress mutating FuzzEvaluate's 500 KB inputs): overwrite up to 8 bytes at
// an offset of either input, or truncate it there. Evaluate must not panic and must either
// succeed or return a sentinel error.
func FuzzEvaluateEdits(f *testing.F) {
	fx := getFixture(f)
	f.Add(uint32(0), []byte{0xff}, false, false)
	f.Add(uint32(headerSize+3), []byte{0xff, 0xff, 0xff, 0xff}, false, false)
	f.Add(uint32(headerSize+seedSize+3), []byte{0xff, 0xff}, true, false)
	f.Add(uint32(headerSize+40), []byte{}, false, true)
	f.Fuzz(func(t *testing.T, off uint32, edit []byte, key, truncate bool) {
		pk := append([]byte(nil), fx.pk...)
		ct := append([]byte(nil), fx.claim...)
		target := &ct
		if key {
			target = &pk
		}
		o := int(off % uint32(len(*target)))
		if truncate {
			*target = (*target)[:o]
		} else {
			copy((*target)[o:], edit[:min(len(edit), 8)])
		}
		_, err := Evaluate(pk, [][]byte{ct}, []Actual{{Value: 7, Present: true}})
		if err != nil && !errors.Is(err, ErrMalformedCiphertext) && !errors.Is(err, ErrMalformedKey) {
			t.Fatalf("unexpected error: %v", err)
		}
	})
}
