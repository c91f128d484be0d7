package rawset

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"iter"
	"log/slog"
	"sync"
)

// MinKeyLen is the least key length NewKeyer accepts: 32 bytes, HMAC-SHA256's block of
// security.
const MinKeyLen = 32

// KeySize is the length of the raw-value key the engine generates (crypto/rand).
const KeySize = 32

// ErrShortKey is returned for a key shorter than MinKeyLen.
var ErrShortKey = errors.New("rawset: the raw-value key must be at least 32 bytes")

// Key is a raw-value key. It crosses the pipe to the worker as JSON (base64), and nowhere
// else: every fmt verb and slog print it redacted, so a Key (or a struct holding one) that
// reaches a log or an error message by mistake does not disclose it.
type Key []byte

const redacted = "rawset.Key(redacted)"

// Format redacts the key for every verb, %x and %d included.
func (Key) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, redacted) }

// LogValue redacts the key in slog output.
func (Key) LogValue() slog.Value { return slog.StringValue(redacted) }

// Keyer hashes canonical forms under a secret key: HMAC-SHA256 truncated to its first 64
// bits (big-endian). The key must stay inside the platform; whoever holds it can test
// guesses against a set. A Keyer is safe for concurrent use.
type Keyer struct {
	key  Key
	id   uint64
	pool sync.Pool
}

// NewKeyer returns a Keyer for key, which must be at least MinKeyLen bytes. The key is
// copied.
func NewKeyer(key []byte) (*Keyer, error) {
	if len(key) < MinKeyLen {
		return nil, ErrShortKey
	}
	k := &Keyer{key: append(Key(nil), key...)}
	k.pool.New = func() any { return k.Hasher() }
	// The key ID hashes a lower-case text, which no canonical form (always upper-case) equals.
	k.id = k.Hash("cleanroom reviewer key id")
	if k.id == 0 {
		k.id = 1
	}
	return k, nil
}

// Format prints the Keyer by its ID only: fmt would otherwise print the key's bytes through
// the unexported field.
func (k *Keyer) Format(f fmt.State, _ rune) { _, _ = fmt.Fprintf(f, "rawset.Keyer(id %016x)", k.id) }

// ID identifies the key without revealing it; HashSet records it, so a set is not used
// with another key by mistake (every lookup would miss).
func (k *Keyer) ID() uint64 { return k.id }

// Hash returns the keyed hash of canonical, which the caller has canonicalised
// (CanonicalString, CanonicalNumber).
func (k *Keyer) Hash(canonical string) uint64 {
	h := k.pool.Get().(*Hasher)
	defer k.pool.Put(h)
	return h.Hash(canonical)
}

// KeyedHash returns the keyed hash of canonical under key: HMAC-SHA256(key, canonical)
// truncated to 64 bits. Use a Keyer to hash many values.
func KeyedHash(key []byte, canonical string) (uint64, error) {
	k, err := NewKeyer(key)
	if err != nil {
		return 0, err
	}
	return k.Hash(canonical), nil
}

// AppendRawHashes appends the hashes a HashSet holds for one raw value (see
// Hasher.AppendRawHashes).
func (k *Keyer) AppendRawHashes(dst []uint64, value string) []uint64 {
	h := k.pool.Get().(*Hasher)
	defer k.pool.Put(h)
	return h.AppendRawHashes(dst, value)
}

// NewHashSet returns a set of hashes made with k; it records k's ID.
func (k *Keyer) NewHashSet(hashes []uint64) *HashSet {
	s := NewHashSet(hashes)
	s.keyID = k.id
	return s
}

// BuildHashSet hashes every value with key (see Hasher.AppendRawHashes) into a HashSet.
func BuildHashSet(key []byte, values iter.Seq[string]) (*HashSet, error) {
	k, err := NewKeyer(key)
	if err != nil {
		return nil, err
	}
	h := k.Hasher()
	var hashes []uint64
	for v := range values {
		hashes = h.AppendRawHashes(hashes, v)
	}
	return k.NewHashSet(hashes), nil
}

// Hasher is one HMAC state of a Keyer, reused across values: Reset restores the keyed state
// without rehashing the key, which halves the cost of a short value. It is not safe for
// concurrent use; a worker streaming a column, or one review, takes its own.
type Hasher struct {
	h   hash.Hash
	buf []byte
	sum [sha256.Size]byte
}

// Hasher returns a new Hasher under k's key.
func (k *Keyer) Hasher() *Hasher { return &Hasher{h: hmac.New(sha256.New, k.key)} }

// Hash returns the keyed hash of canonical.
func (h *Hasher) Hash(canonical string) uint64 {
	h.h.Reset()
	h.buf = append(h.buf[:0], canonical...)
	h.h.Write(h.buf)
	return binary.BigEndian.Uint64(h.h.Sum(h.sum[:0]))
}

// AppendRawHashes appends the hashes a HashSet holds for one raw value: its CanonicalString
// form; that form without the spaces and hyphens between digits, if it has any; and its
// CanonicalNumber form, if it parses as a number (so a number written as text, "1500.50" or
// "1.38E10", matches the numeric cell 1500.5 or 13800000000). Forms shorter than MinRawLength
// are left out.
func (h *Hasher) AppendRawHashes(dst []uint64, value string) []uint64 {
	c := CanonicalString(value)
	if len(c) >= MinRawLength {
		dst = append(dst, h.Hash(c))
	}
	if m, ok := MergeDigitSeparators(c); ok && len(m) >= MinRawLength {
		dst = append(dst, h.Hash(m))
	}
	if f, ok := ParseNumber(c); ok {
		if n := CanonicalNumber(f); n != c && len(n) >= MinRawLength {
			dst = append(dst, h.Hash(n))
		}
	}
	return dst
}
