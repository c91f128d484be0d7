package collective

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"testing"
)

// fuzzSeeds are small messages of every round's shape plus broken ones; FuzzMessageDecode checks
// that decoding never panics, that what decodes re-encodes to the same bytes, and that the lattigo
// boundary (the decode* functions) never panics on any payload.
func fuzzSeeds() [][]byte {
	key := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, 32))
	id := sha256.Sum256([]byte("key"))
	var seeds [][]byte
	inner := &Message{Params: ParamSetName, Job: "ceremony", Round: RoundKeyGen, Sender: "a", Payload: []byte{1, 2, 3}}
	inner.sign(key)
	for _, m := range []*Message{
		inner,
		{Params: ParamSetName, Job: "ceremony", Round: RoundPublicKey, Sender: "platform", Payload: []byte{9}, Included: []*Message{inner}},
		{Params: ParamSetName, Job: "job", Round: RoundInput, Sender: "a", KeyID: id, Partitions: 3, Payload: []byte{4}},
		{Params: ParamSetName, Job: "job", Round: RoundSum, Sender: "platform", KeyID: id, Partitions: 3, Receiver: id, Payload: []byte{5}, ReceiverKey: []byte{6}, Included: []*Message{inner}},
		{Params: ParamSetName, Job: "job", Round: RoundKeySwitch, Sender: "b", KeyID: id, Partitions: 3, Receiver: id, Subject: id, Payload: []byte{7}},
		{Params: ParamSetName, Job: "job", Round: RoundResult, Sender: "platform", KeyID: id, Partitions: 3, Receiver: id, Payload: []byte{8}, Included: []*Message{inner}},
	} {
		if m.Signature == nil {
			m.sign(key)
		}
		b := m.Encode()
		seeds = append(seeds, b, b[:len(b)/2], append(append([]byte{}, b...), 0))
	}
	return append(seeds, nil, []byte(magic), []byte("CRHC\x01\x07"), bytes.Repeat([]byte{0xff}, 64))
}

func FuzzMessageDecode(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s)
	}
	p, err := DefaultParams()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeMessage(b)
		if err == nil {
			if !bytes.Equal(m.Encode(), b) {
				t.Fatalf("decoded message does not re-encode to its bytes")
			}
			b = m.Payload
		}
		// The lattigo boundary sees arbitrary payloads without panicking.
		_, _ = decodeCKGShare(p, b)
		_, _ = decodePublicKey(p, b)
		_, _ = decodeCiphertext(p, b)
		_, _ = decodePCKSShare(p, b)
		_, _ = decodeSecretKey(p, b)
	})
}

// Objects of the right length with corrupted bytes (structural or coefficient) never make lattigo
// panic: each either is refused as ErrMalformed or decodes to a well-formed object. Positions are
// drawn from a fixed-seed generator, 500 corruptions per object kind.
func TestLatticeBoundaryNeverPanicsOnCorruptedObjects(t *testing.T) {
	p, err := DefaultParams()
	if err != nil {
		t.Fatal(err)
	}
	s, err := templates(p)
	if err != nil {
		t.Fatal(err)
	}
	x := uint64(88172645463325252)
	rnd := func(n int) int {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		return int(x % uint64(n))
	}
	for _, tc := range []struct {
		name   string
		ref    []byte
		decode func([]byte) error
	}{
		{"ckg share", s.ckgShare.ref, func(b []byte) error { _, err := decodeCKGShare(p, b); return err }},
		{"public key", s.publicKey.ref, func(b []byte) error { _, err := decodePublicKey(p, b); return err }},
		{"ciphertext", s.ciphertext.ref, func(b []byte) error { _, err := decodeCiphertext(p, b); return err }},
		{"pcks share", s.pcksShare.ref, func(b []byte) error { _, err := decodePCKSShare(p, b); return err }},
		{"secret key", s.secretKey.ref, func(b []byte) error { _, err := decodeSecretKey(p, b); return err }},
	} {
		if err := tc.decode(tc.ref); err != nil {
			t.Fatalf("%s: the template itself is refused: %v", tc.name, err)
		}
		for i := 0; i < 500; i++ {
			b := append([]byte(nil), tc.ref...)
			// Half the corruptions hit the first 64 bytes, where lengths and metadata live.
			pos := rnd(len(b))
			if i%2 == 0 {
				pos = rnd(64)
			}
			b[pos] ^= byte(1 + rnd(255))
			func() {
				defer func() {
					if r := recover(); r != nil {
						t.Fatalf("%s: panic on corrupted byte %d", tc.name, pos)
					}
				}()
				_ = tc.decode(b)
			}()
		}
	}
}
