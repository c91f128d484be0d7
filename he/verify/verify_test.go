package verify_test

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/c1b99f93/cleanroom/he/verify"
)

// One key pair serves the tests that do not need their own (key generation is ~50 ms).
var (
	sharedOnce   sync.Once
	sharedClient *verify.Client
	sharedErr    error
)

func client(t testing.TB) *verify.Client {
	t.Helper()
	sharedOnce.Do(func() { sharedClient, sharedErr = verify.GenerateKeys() })
	if sharedErr != nil {
		t.Fatal(sharedErr)
	}
	return sharedClient
}

// batch is a random verification batch: claims, the domain's records and the expected
// answers. About a third of the checks match, a tenth of the subjects are absent (some of
// those with a claim equal to the value the domain does not have).
type batch struct {
	claims []uint64
	actual []verify.Actual
	want   []bool
}

func newBatch(rng *rand.Rand, n int) batch {
	b := batch{claims: make([]uint64, n), actual: make([]verify.Actual, n), want: make([]bool, n)}
	for i := range n {
		b.claims[i] = verify.Encode(string(rune('a' + rng.IntN(26))))
		actual := b.claims[i]
		if rng.IntN(3) != 0 {
			actual = rng.Uint64N(verify.PlaintextModulus)
		}
		present := rng.IntN(10) != 0
		b.actual[i] = verify.Actual{Value: actual, Present: present}
		b.want[i] = present && actual == b.claims[i]
	}
	return b
}

func run(t testing.TB, c *verify.Client, b batch) []bool {
	t.Helper()
	cts, err := c.EncryptClaims(b.claims)
	if err != nil {
		t.Fatal(err)
	}
	answers, err := verify.Evaluate(c.PublicKey(), cts, b.actual)
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.DecryptMatches(answers, len(b.claims))
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func TestMatchesAreExactOverThousandsOfChecksWithAbsentSubjectsAndPadding(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	c := client(t)
	for _, n := range []int{1, 7, verify.Slots, 3*verify.Slots - 123} {
		b := newBatch(rng, n)
		got := run(t, c, b)
		for i := range got {
			if got[i] != b.want[i] {
				t.Fatalf("n=%d: check %d: got match=%v, want %v", n, i, got[i], b.want[i])
			}
		}
	}
}

func TestAnAbsentSubjectNeverMatchesEvenWithTheRightClaim(t *testing.T) {
	c := client(t)
	v := verify.Encode("3")
	got := run(t, c, batch{
		claims: []uint64{v, v},
		actual: []verify.Actual{{Value: v, Present: false}, {Value: v, Present: true}},
	})
	if got[0] || !got[1] {
		t.Fatalf("got %v, want [false true]", got)
	}
}

func TestEmptyBatchHasNoCiphertexts(t *testing.T) {
	c := client(t)
	cts, err := c.EncryptClaims(nil)
	if err != nil || len(cts) != 0 {
		t.Fatalf("EncryptClaims(nil) = %d ciphertexts, %v", len(cts), err)
	}
	answers, err := verify.Evaluate(c.PublicKey(), nil, nil)
	if err != nil || len(answers) != 0 {
		t.Fatalf("Evaluate of nothing = %d, %v", len(answers), err)
	}
	got, err := c.DecryptMatches(nil, 0)
	if err != nil || len(got) != 0 {
		t.Fatalf("DecryptMatches of nothing = %v, %v", got, err)
	}
}

func TestAnotherSecretKeyCannotReadTheMatches(t *testing.T) {
	owner := client(t)
	other, err := verify.GenerateKeys()
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	b := newBatch(rng, verify.Slots)
	cts, err := owner.EncryptClaims(b.claims)
	if err != nil {
		t.Fatal(err)
	}
	answers, err := verify.Evaluate(owner.PublicKey(), cts, b.actual)
	if err != nil {
		t.Fatal(err)
	}
	got, err := other.DecryptMatches(answers, len(b.claims))
	if err != nil {
		t.Fatal(err)
	}
	matches, wantMatches := 0, 0
	for i := range got {
		if got[i] {
			matches++
		}
		if b.want[i] {
			wantMatches++
		}
	}
	// Under the wrong key every slot decrypts to a value that looks uniform in Z_t: a zero
	// (a "match") turns up with probability 2^-40 per slot.
	if matches != 0 || wantMatches < verify.Slots/5 {
		t.Fatalf("wrong key reported %d matches (true matches: %d)", matches, wantMatches)
	}
}

func TestKeysRoundTripThroughAKeyDirectory(t *testing.T) {
	c := client(t)
	dir := filepath.Join(t.TempDir(), "keys")
	if err := c.Save(dir); err != nil {
		t.Fatal(err)
	}
	for file, mode := range map[string]os.FileMode{verify.SecretKeyFile: 0o600, verify.PublicKeyFile: 0o644} {
		info, err := os.Stat(filepath.Join(dir, file))
		if err != nil {
			t.Fatal(err)
		}
		if info.Mode().Perm() != mode {
			t.Errorf("%s has mode %v, want %v", file, info.Mode().Perm(), mode)
		}
	}
	loaded, err := verify.LoadKeys(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(loaded.PublicKey(), c.PublicKey()) {
		t.Fatal("the loaded public key differs")
	}
	// Claims encrypted by the original decrypt with the loaded key, and vice versa.
	b := newBatch(rand.New(rand.NewPCG(5, 6)), 100)
	cts, err := c.EncryptClaims(b.claims)
	if err != nil {
		t.Fatal(err)
	}
	answers, err := verify.Evaluate(loaded.PublicKey(), cts, b.actual)
	if err != nil {
		t.Fatal(err)
	}
	got, err := loaded.DecryptMatches(answers, len(b.claims))
	if err != nil {
		t.Fatal(err)
	}
	for i := range got {
		if got[i] != b.want[i] {
			t.Fatalf("check %d: got %v, want %v", i, got[i], b.want[i])
		}
	}
}

func TestLoadKeysRefusesASecretKeyOthersCanRead(t *testing.T) {
	dir := t.TempDir()
	if err := client(t).Save(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(dir, verify.SecretKeyFile), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := verify.LoadKeys(dir); !errors.Is(err, verify.ErrKeyPermissions) {
		t.Fatalf("got %v, want ErrKeyPermissions", err)
	}
}

func TestLoadKeysRefusesKeysThatAreNotAPair(t *testing.T) {
	other, err := verify.GenerateKeys()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := client(t).Save(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, verify.PublicKeyFile), other.PublicKey(), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := verify.LoadKeys(dir); !errors.Is(err, verify.ErrMalformedKey) {
		t.Fatalf("got %v, want ErrMalformedKey", err)
	}
	if err := os.WriteFile(filepath.Join(dir, verify.SecretKeyFile), []byte("crhv\x01\x01\x01\x00short"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := verify.LoadKeys(dir); !errors.Is(err, verify.ErrMalformedKey) {
		t.Fatalf("got %v, want ErrMalformedKey", err)
	}
}

func TestEncodeCanonicalisesBothSidesAlike(t *testing.T) {
	same := [][2]string{
		{"3", " 3\n"},
		{"3", "+3"},
		{"3", "003"},
		{"0", "-0"},
		{"0", "000"},
		{"-12", "-012"},
		{"ACME Ltd", "  ACME Ltd\t"},
	}
	for _, p := range same {
		if verify.Encode(p[0]) != verify.Encode(p[1]) {
			t.Errorf("Encode(%q) != Encode(%q)", p[0], p[1])
		}
	}
	different := [][2]string{
		{"3", "4"},
		{"1.5", "1.50"},
		{"ACME Ltd", "acme ltd"},
		{"", "0"},
		{"-3", "3"},
		{"1 2", "12"},
	}
	for _, p := range different {
		if verify.Encode(p[0]) == verify.Encode(p[1]) {
			t.Errorf("Encode(%q) == Encode(%q)", p[0], p[1])
		}
	}
	for _, s := range []string{"", "x", "3", "a long value with spaces"} {
		if v := verify.Encode(s); v >= verify.PlaintextModulus {
			t.Errorf("Encode(%q) = %d, not in Z_t", s, v)
		}
	}
}

func TestCanonicalForms(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{" 007 ", "7"}, {"+0", "0"}, {"-0000", "0"}, {"-10", "-10"}, {"1e3", "1e3"},
		{"+", "+"}, {"-", "-"}, {" x y ", "x y"}, {"١٢", "١٢"}, // Arabic-Indic digits are not ASCII digits
	} {
		if got := verify.Canonical(c.in); got != c.want {
			t.Errorf("Canonical(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestBandOfTurnsARangeIntoALabel(t *testing.T) {
	nan := func() float64 { var z float64; return z / z }()
	edges := []float64{1e5, 1e6, 1e7}
	for _, c := range []struct {
		edges []float64
		v     float64
		want  string
	}{
		{edges, 0, "0"},
		{edges, 99999.99, "0"},
		{edges, 1e5, "1"},
		{edges, 999999, "1"},
		{edges, 1e6, "2"},
		{edges, 5e7, "3"},
		{[]float64{1e6}, 2e6, "1"}, // "registered capital ≥ 1M" is band "1"
		{nil, 42, "0"},
		{edges, nan, ""},
		{[]float64{1, 1}, 0, ""},
		{[]float64{2, 1}, 0, ""},
		{[]float64{1, nan}, 0, ""},
	} {
		if got := verify.BandOf(c.edges, c.v); got != c.want {
			t.Errorf("BandOf(%v, %v) = %q, want %q", c.edges, c.v, got, c.want)
		}
	}
}

func TestDigestIsSHA256Hex(t *testing.T) {
	if got := verify.Digest([]byte("abc")); got != "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" {
		t.Fatalf("Digest(abc) = %s", got)
	}
}
