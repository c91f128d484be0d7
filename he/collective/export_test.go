package collective

import (
	"crypto/ed25519"

	"github.com/tuneinsight/lattigo/v6/multiparty"
)

// SetNoiseForTest replaces the DP noise draw (the test-only seam: production code cannot reach
// it) and returns a function restoring the library's draw.
func SetNoiseForTest(f func(x int64, s ShareNoise) (int64, error)) (restore func()) {
	prev := addNoise
	addNoise = f
	return func() { addNoise = prev }
}

// SignForTest re-signs a message (tests forge messages with a party's own key).
func (m *Message) SignForTest(k ed25519.PrivateKey) { m.sign(k) }

// DecryptWithoutForTest combines the key-switch shares of a result except skip's and decrypts,
// skipping every signature and completeness check: what a receiver holding N−1 shares gets.
func (r *Receiver) DecryptWithoutForTest(res *Message, skip string) ([]int64, error) {
	ct, err := decodeCiphertext(r.params, res.Payload)
	if err != nil {
		return nil, err
	}
	var shares []multiparty.PublicKeySwitchShare
	for _, in := range res.Included {
		if in.Sender == skip {
			continue
		}
		s, err := decodePCKSShare(r.params, in.Payload)
		if err != nil {
			return nil, err
		}
		shares = append(shares, s)
	}
	vals, err := r.decryptUnchecked(ct, shares)
	if err != nil {
		return nil, err
	}
	return vals[:res.Partitions], nil
}
