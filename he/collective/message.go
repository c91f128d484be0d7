package collective

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"unicode/utf8"
)

// Round says which step of the protocol a message belongs to.
type Round uint8

// The protocol's rounds, in order.
const (
	// RoundKeyGen: a domain's collective-public-key-generation (CKG) share, domain → aggregator.
	RoundKeyGen Round = 1
	// RoundPublicKey: the collective public key, aggregator → domains; carries every domain's
	// signed RoundKeyGen message so each domain recomputes the key and finds its own share in it.
	RoundPublicKey Round = 2
	// RoundInput: a domain's noisy aggregate vector encrypted under the collective key,
	// domain → aggregator.
	RoundInput Round = 3
	// RoundSum: the sum of the inputs and the receiver's public key, aggregator → domains; carries
	// every domain's signed RoundInput message so each domain recomputes the sum.
	RoundSum Round = 4
	// RoundKeySwitch: a domain's public-key-switch (PCKS) share of the sum towards the receiver's
	// key, domain → aggregator.
	RoundKeySwitch Round = 5
	// RoundResult: the sum and every domain's signed RoundKeySwitch message, aggregator → receiver.
	RoundResult Round = 6
)

func (r Round) valid() bool { return r >= RoundKeyGen && r <= RoundResult }

// Message is every message of the protocol. Which fields a round uses is fixed (see shape); a
// message with a field its round does not use, or without one it needs, is ErrMalformed.
//
// The signature covers a domain-separated SHA-256 digest of every other field, nested messages
// included byte for byte (see Digest).
type Message struct {
	Params string // parameter set name, ParamSetName
	Job    string // job id (for RoundKeyGen/RoundPublicKey: the key ceremony id)
	Round  Round
	Sender string // the sending domain, or the aggregator's name

	KeyID      [32]byte // rounds 3–6: SHA-256 of the collective public key
	Partitions uint32   // rounds 3–6: the length of the aggregate vector
	Receiver   [32]byte // rounds 4–6: SHA-256 of the receiver's public key
	Subject    [32]byte // round 5: SHA-256 of the summed ciphertext that was key-switched

	// Payload is the lattigo MarshalBinary of the round's object: CKG share (1), collective
	// public key (2), ciphertext (3), summed ciphertext (4, 6), PCKS share (5).
	Payload []byte
	// ReceiverKey is the receiver's public key (round 4 only).
	ReceiverKey []byte
	// Included are the signed messages an aggregator message combines (rounds 2, 4, 6), one per
	// domain; they may not include messages themselves.
	Included []*Message

	Signature []byte // ed25519 over Digest()
}

// Limits of the encoding; anything beyond is ErrMalformed before any allocation of that size.
const (
	maxName     = 128
	maxBlob     = 4 << 20 // one ciphertext is about 393 KB
	maxIncluded = MaxParties
	magic       = "CRHC\x01"
	sigContext  = "cleanroom/he/collective/v1/message-signature\x00"
)

// Encode returns the message's binary encoding:
//
//	"CRHC" 0x01 | round u8 | params, job, sender (u16 length, bytes) | keyID, receiver, subject
//	(32 bytes each) | partitions u32 | payload, receiverKey (u32 length, bytes) | included count
//	u16, each (u32 length, encoded message) | signature (u16 length, bytes)
func (m *Message) Encode() []byte {
	var b bytes.Buffer
	m.writeBody(&b)
	putBytes16(&b, m.Signature)
	return b.Bytes()
}

func (m *Message) writeBody(b *bytes.Buffer) {
	b.WriteString(magic)
	b.WriteByte(byte(m.Round))
	putBytes16(b, []byte(m.Params))
	putBytes16(b, []byte(m.Job))
	putBytes16(b, []byte(m.Sender))
	b.Write(m.KeyID[:])
	b.Write(m.Receiver[:])
	b.Write(m.Subject[:])
	var u [4]byte
	binary.BigEndian.PutUint32(u[:], m.Partitions)
	b.Write(u[:])
	putBytes32(b, m.Payload)
	putBytes32(b, m.ReceiverKey)
	var c [2]byte
	binary.BigEndian.PutUint16(c[:], uint16(len(m.Included)))
	b.Write(c[:])
	for _, in := range m.Included {
		if in == nil {
			putBytes32(b, nil) // refused by shape checks; encoded so that Encode never panics
			continue
		}
		putBytes32(b, in.Encode())
	}
}

// Digest is the SHA-256 of a fixed context string and every field but the signature. The context
// separates these signatures from any other use of the same ed25519 keys.
func (m *Message) Digest() [32]byte {
	var b bytes.Buffer
	b.WriteString(sigContext)
	m.writeBody(&b)
	return sha256.Sum256(b.Bytes())
}

// sign sets the signature.
func (m *Message) sign(key ed25519.PrivateKey) {
	d := m.Digest()
	m.Signature = ed25519.Sign(key, d[:])
}

func putBytes16(b *bytes.Buffer, p []byte) {
	var n [2]byte
	binary.BigEndian.PutUint16(n[:], uint16(len(p)))
	b.Write(n[:])
	b.Write(p)
}

func putBytes32(b *bytes.Buffer, p []byte) {
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(p)))
	b.Write(n[:])
	b.Write(p)
}

// DecodeMessage parses an encoded message. It checks only the encoding (lengths, limits, names,
// the round's shape); signatures and cryptographic shapes are checked by the receiving party.
// It never panics; every failure is ErrMalformed.
func DecodeMessage(p []byte) (*Message, error) {
	return decode(p, true)
}

func decode(p []byte, allowIncluded bool) (*Message, error) {
	r := reader{p: p}
	if string(r.next(len(magic))) != magic {
		return nil, fmt.Errorf("%w: bad header", ErrMalformed)
	}
	m := &Message{}
	m.Round = Round(r.byte())
	m.Params = r.name()
	m.Job = r.name()
	m.Sender = r.name()
	copy(m.KeyID[:], r.next(32))
	copy(m.Receiver[:], r.next(32))
	copy(m.Subject[:], r.next(32))
	m.Partitions = r.u32()
	m.Payload = r.blob()
	m.ReceiverKey = r.blob()
	n := int(r.u16())
	if r.err == nil && n > 0 {
		if !allowIncluded || n > maxIncluded {
			return nil, fmt.Errorf("%w: nested messages", ErrMalformed)
		}
		m.Included = make([]*Message, 0, n)
		for i := 0; i < n && r.err == nil; i++ {
			in, err := decode(r.blob(), false)
			if err != nil {
				return nil, err
			}
			m.Included = append(m.Included, in)
		}
	}
	sl := int(r.u16())
	m.Signature = r.next(sl)
	if r.err != nil {
		return nil, fmt.Errorf("%w: truncated", ErrMalformed)
	}
	if len(r.p) != 0 {
		return nil, fmt.Errorf("%w: trailing bytes", ErrMalformed)
	}
	if err := m.shape(); err != nil {
		return nil, err
	}
	return m, nil
}

// shape checks the fields a round needs and forbids the others.
func (m *Message) shape() error {
	bad := func(what string) error { return fmt.Errorf("%w: %s", ErrMalformed, what) }
	if !m.Round.valid() {
		return bad("round")
	}
	if len(m.Signature) != ed25519.SignatureSize {
		return bad("signature length")
	}
	if m.Job == "" || m.Sender == "" || m.Params == "" {
		return bad("empty header field")
	}
	if len(m.Payload) == 0 {
		return bad("empty payload")
	}
	var zero [32]byte
	keyed := m.Round >= RoundInput
	if keyed != (m.KeyID != zero) || keyed != (m.Partitions != 0) {
		return bad("key id or partitions")
	}
	if (m.Round >= RoundSum) != (m.Receiver != zero) {
		return bad("receiver")
	}
	if (m.Round == RoundKeySwitch) != (m.Subject != zero) {
		return bad("subject")
	}
	if (m.Round == RoundSum) != (len(m.ReceiverKey) != 0) {
		return bad("receiver key")
	}
	combined := m.Round == RoundPublicKey || m.Round == RoundSum || m.Round == RoundResult
	if combined != (len(m.Included) != 0) {
		return bad("included messages")
	}
	if int(m.Partitions) > MaxPartitions {
		return bad("partitions")
	}
	return nil
}

type reader struct {
	p   []byte
	err error
}

func (r *reader) next(n int) []byte {
	if r.err != nil || n < 0 || n > len(r.p) {
		r.err = ErrMalformed
		return nil
	}
	out := r.p[:n:n]
	r.p = r.p[n:]
	return out
}

func (r *reader) byte() byte {
	b := r.next(1)
	if b == nil {
		return 0
	}
	return b[0]
}

func (r *reader) u16() uint16 {
	b := r.next(2)
	if b == nil {
		return 0
	}
	return binary.BigEndian.Uint16(b)
}

func (r *reader) u32() uint32 {
	b := r.next(4)
	if b == nil {
		return 0
	}
	return binary.BigEndian.Uint32(b)
}

func (r *reader) name() string {
	n := int(r.u16())
	if n > maxName {
		r.err = ErrMalformed
		return ""
	}
	b := r.next(n)
	if !validName(b) {
		r.err = ErrMalformed
		return ""
	}
	return string(b)
}

func (r *reader) blob() []byte {
	n := r.u32()
	if n > maxBlob*uint32(maxIncluded+2) {
		r.err = ErrMalformed
		return nil
	}
	b := r.next(int(n))
	if len(b) == 0 {
		return nil
	}
	return b
}

// validName accepts printable UTF-8 without control characters or spaces, so a name can appear
// in a log line without escaping.
func validName(b []byte) bool {
	if !utf8.Valid(b) {
		return false
	}
	for _, c := range string(b) {
		if c <= ' ' || c == 0x7f || (c >= 0x80 && c < 0xa0) {
			return false
		}
	}
	return true
}
