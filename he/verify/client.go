package verify

import (
	"crypto/rand"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sync"

	"github.com/tuneinsight/lattigo/v6/core/rlwe"
	"github.com/tuneinsight/lattigo/v6/ring/ringqp"
	"github.com/tuneinsight/lattigo/v6/schemes/bgv"
	"github.com/tuneinsight/lattigo/v6/utils/sampling"
)

// Key file names in a key directory.
const (
	SecretKeyFile = "verify-secret.key"
	PublicKeyFile = "verify-public.key"
)

// maxPublicKeyNoiseLog2 bounds log2 of the standard deviation of p0 + p1·s for a secret and
// public key to be accepted as a pair (honest: log2 3.2 ≈ 1.7).
const maxPublicKeyNoiseLog2 = 4

// Client is the applicant's side: it holds the secret key, encrypts claims and decrypts the
// domain's answers. Client never sends the secret key anywhere and never writes it but to a
// file of mode 0600. A Client is safe for concurrent use.
type Client struct {
	params bgv.Parameters
	sk     *rlwe.SecretKey
	pk     []byte // serialized, validated public key
}

// GenerateKeys makes a fresh key pair from crypto/rand: the secret key from lattigo's
// ternary sampler (its PRNG keyed from crypto/rand), a 32-byte seed from crypto/rand, and
// the public key (−a·s + e, a) with a expanded from the seed.
func GenerateKeys() (*Client, error) {
	p, err := parameters()
	if err != nil {
		return nil, ErrInternal
	}
	seed := make([]byte, seedSize)
	if _, err := rand.Read(seed); err != nil {
		return nil, fmt.Errorf("verify: reading crypto/rand: %w", err)
	}
	sk := rlwe.NewKeyGenerator(p).GenSecretKeyNew()
	prng, err := sampling.NewKeyedPRNG(seed)
	if err != nil {
		return nil, ErrInternal
	}
	pk := rlwe.NewPublicKey(p)
	enc := rlwe.NewEncryptor(p, sk).WithPRNG(prng)
	if err := enc.EncryptZero(rlwe.Element[ringqp.Poly]{
		MetaData: &rlwe.MetaData{CiphertextMetaData: rlwe.CiphertextMetaData{IsNTT: true, IsMontgomery: true}},
		Value:    []ringqp.Poly(pk.Value),
	}); err != nil {
		return nil, ErrInternal
	}
	pkBytes, err := marshalPublicKey(seed, pk)
	if err != nil {
		return nil, err
	}
	// The key must pass the checks the domain runs on it.
	if _, err := unmarshalPublicKey(p, pkBytes); err != nil {
		return nil, ErrInternal
	}
	return &Client{params: p, sk: sk, pk: pkBytes}, nil
}

// LoadKeys reads a key directory written by Save. The secret key file must not be
// accessible to group or others (ErrKeyPermissions); both keys are validated and must form
// a pair (ErrMalformedKey).
func LoadKeys(dir string) (*Client, error) {
	p, err := parameters()
	if err != nil {
		return nil, ErrInternal
	}
	skBytes, err := readPrivate(filepath.Join(dir, SecretKeyFile))
	if err != nil {
		return nil, fmt.Errorf("verify: secret key: %w", err)
	}
	pkBytes, err := os.ReadFile(filepath.Join(dir, PublicKeyFile))
	if err != nil {
		return nil, fmt.Errorf("verify: public key: %w", err)
	}
	return newClient(p, skBytes, pkBytes)
}

// readPrivate reads a file that must not be accessible to group or others
// (ErrKeyPermissions, naming the path).
func readPrivate(path string) ([]byte, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if info.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%s: %w", path, ErrKeyPermissions)
	}
	return os.ReadFile(path)
}

// newClient validates a serialized key pair.
func newClient(p bgv.Parameters, skBytes, pkBytes []byte) (c *Client, err error) {
	defer func() {
		if recover() != nil {
			c, err = nil, fmt.Errorf("%w: does not decode", ErrMalformedKey)
		}
	}()
	sk, err := unmarshalSecretKey(p, skBytes)
	if err != nil {
		return nil, fmt.Errorf("secret key: %w", err)
	}
	pk, err := unmarshalPublicKey(p, pkBytes)
	if err != nil {
		return nil, fmt.Errorf("public key: %w", err)
	}
	if rlwe.NoisePublicKey(pk, sk, p.Parameters) > maxPublicKeyNoiseLog2 {
		return nil, fmt.Errorf("%w: the public key does not belong to the secret key", ErrMalformedKey)
	}
	return &Client{params: p, sk: sk, pk: append([]byte(nil), pkBytes...)}, nil
}

// Save writes the key pair into dir (created with mode 0700 if missing): the secret key with
// mode 0600, the public key with mode 0644, each through a temporary file and a rename.
func (c *Client) Save(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("verify: key directory: %w", err)
	}
	skBytes, err := marshalSecretKey(c.sk)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(dir, SecretKeyFile), skBytes, 0o600); err != nil {
		return fmt.Errorf("verify: secret key: %w", err)
	}
	if err := writeFileAtomic(filepath.Join(dir, PublicKeyFile), c.pk, 0o644); err != nil {
		return fmt.Errorf("verify: public key: %w", err)
	}
	return nil
}

// writeFileAtomic writes data to a new temporary file of the given mode next to path, syncs
// it and renames it over path.
func writeFileAtomic(path string, data []byte, mode fs.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err := f.Chmod(mode); err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	ok = true
	return nil
}

// PublicKey returns the serialized public key, for the domain's Evaluate.
func (c *Client) PublicKey() []byte { return append([]byte(nil), c.pk...) }

// CiphertextsFor returns the number of ciphertexts that carry n checks: ⌈n/Slots⌉.
func CiphertextsFor(n int) int { return (n + Slots - 1) / Slots }

// EncryptClaims encrypts claimed slot values (from Encode), Slots per ciphertext, in order;
// unused slots of the last ciphertext are zero. It uses secret-key encryption: only the key
// holder encrypts claims, and a fresh secret-key encryption has the smallest noise
// (|e| ≤ 19), which leaves the most room for the domain's flooding. Each ciphertext is a
// fresh encryption with its own uniform c1.
func (c *Client) EncryptClaims(values []uint64) ([][]byte, error) {
	if len(values) > MaxChecks {
		return nil, ErrTooManyChecks
	}
	for i, v := range values {
		if v >= PlaintextModulus {
			return nil, fmt.Errorf("claim %d: %w", i, ErrValueOutOfRange)
		}
	}
	n := CiphertextsFor(len(values))
	out := make([][]byte, n)
	err := parallel(n, func() func(i int) error {
		ecd := bgv.NewEncoder(c.params)
		enc := bgv.NewEncryptor(c.params, c.sk)
		slot := make([]uint64, Slots)
		return func(i int) error {
			clear(slot)
			copy(slot, values[i*Slots:min(len(values), (i+1)*Slots)])
			pt := bgv.NewPlaintext(c.params, c.params.MaxLevel())
			if err := ecd.Encode(slot, pt); err != nil {
				return ErrInternal
			}
			ct, err := enc.EncryptNew(pt)
			if err != nil {
				return ErrInternal
			}
			out[i], err = marshalCiphertext(kindClaims, ct)
			return err
		}
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// DecryptMatches decrypts the domain's answers to n checks: result i is true when slot i
// decrypts to zero (the claim matched), false otherwise (no match, or the subject is absent:
// the two are indistinguishable by design). A non-match decrypts to zero with probability
// 1/t < 2^-40.
func (c *Client) DecryptMatches(cts [][]byte, n int) ([]bool, error) {
	if n < 0 {
		return nil, ErrCheckCount
	}
	if n > MaxChecks {
		return nil, ErrTooManyChecks
	}
	if len(cts) != CiphertextsFor(n) {
		return nil, ErrCheckCount
	}
	out := make([]bool, n)
	err := parallel(len(cts), func() func(i int) error {
		ecd := bgv.NewEncoder(c.params)
		dec := bgv.NewDecryptor(c.params, c.sk)
		slot := make([]uint64, Slots)
		return func(i int) (err error) {
			defer func() {
				if recover() != nil {
					err = fmt.Errorf("answer %d: %w", i, ErrInternal)
				}
			}()
			ct, err := unmarshalCiphertext(c.params, kindAnswer, cts[i])
			if err != nil {
				return fmt.Errorf("answer %d: %w", i, err)
			}
			pt := dec.DecryptNew(ct)
			if err := ecd.Decode(pt, slot); err != nil {
				return fmt.Errorf("answer %d: %w", i, ErrInternal)
			}
			for j := i * Slots; j < min(n, (i+1)*Slots); j++ {
				out[j] = slot[j-i*Slots] == 0
			}
			return nil
		}
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// parallel runs job(i) for i in [0, n) on up to GOMAXPROCS workers, each with its own state
// from newWorker (lattigo encoders, encryptors and evaluators are not safe for concurrent
// use), and returns the error of the lowest failing index.
func parallel(n int, newWorker func() func(i int) error) error {
	workers := min(n, runtime.GOMAXPROCS(0))
	errs := make([]error, n)
	var wg sync.WaitGroup
	next := make(chan int)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			job := newWorker()
			for i := range next {
				errs[i] = job(i)
			}
		}()
	}
	for i := 0; i < n; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	return firstError(errs)
}

func firstError(errs []error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
