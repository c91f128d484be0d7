package rawset

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"iter"
	"math"
	"slices"
)

// HashSet is a set of keyed hashes (Keyer) of raw values: sorted, distinct, searched by
// bisection (8 bytes per entry, about 20 comparisons per lookup in a 1M-entry set). It holds
// no values. It is immutable and safe for concurrent use.
type HashSet struct {
	keyID  uint64
	hashes []uint64
	// index[b] is the position of the first hash whose top 16 bits are ≥ b, so a lookup
	// bisects one bucket (about 15 entries in a 1M-entry set, one or two cache lines)
	// instead of the whole array.
	index []uint32
}

// NewHashSet returns a set of the given hashes (copied, sorted, duplicates dropped). It
// records no key ID; Keyer.NewHashSet and BuildHashSet do.
func NewHashSet(hashes []uint64) *HashSet {
	h := slices.Clone(hashes)
	slices.Sort(h)
	s := &HashSet{hashes: slices.Compact(h)}
	s.buildIndex()
	return s
}

const indexBits = 16

func (s *HashSet) buildIndex() {
	if len(s.hashes) < 1<<10 || len(s.hashes) > math.MaxUint32 {
		return // small sets bisect the array directly
	}
	s.index = make([]uint32, 1<<indexBits+1)
	i := 0
	for b := range 1 << indexBits {
		for i < len(s.hashes) && s.hashes[i]>>(64-indexBits) < uint64(b) {
			i++
		}
		s.index[b] = uint32(i)
	}
	s.index[1<<indexBits] = uint32(len(s.hashes))
}

// Contains reports whether h is in the set.
func (s *HashSet) Contains(h uint64) bool {
	hs := s.hashes
	if s.index != nil {
		b := h >> (64 - indexBits)
		hs = hs[s.index[b]:s.index[b+1]]
	}
	_, ok := slices.BinarySearch(hs, h)
	return ok
}

// Len returns the number of hashes.
func (s *HashSet) Len() int { return len(s.hashes) }

// KeyID returns the ID of the key the set was built with (Keyer.ID), or 0 if not recorded.
func (s *HashSet) KeyID() uint64 { return s.keyID }

// The persisted form, all integers little-endian:
//
//	magic    8 bytes  "CRRAWSET"
//	version  uint32   1
//	reserved uint32   0
//	key ID   uint64
//	count    uint64
//	hashes   count × uint64, strictly ascending
//	crc      uint32   CRC-32C of everything before it
const (
	hashSetMagic   = "CRRAWSET"
	hashSetVersion = 1
	hashSetHeader  = 8 + 4 + 4 + 8 + 8
)

// ErrHashSetFormat is returned by ReadHashSet for data that is not a valid persisted set.
var ErrHashSetFormat = errors.New("rawset: malformed raw-value set")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// WriteTo writes the set in its persisted form.
func (s *HashSet) WriteTo(w io.Writer) (int64, error) {
	return writeHashSet(w, s.keyID, uint64(len(s.hashes)), slices.Values(s.hashes), func() error { return nil })
}

// writeHashSet writes count ascending distinct hashes in the persisted form. hashes may stop
// early on an error, which errOf then returns; a stream that is not count hashes long is not
// finished with its checksum.
func writeHashSet(w io.Writer, keyID, count uint64, hashes iter.Seq[uint64], errOf func() error) (int64, error) {
	crc := crc32.New(castagnoli)
	bw := bufio.NewWriterSize(io.MultiWriter(w, crc), 64<<10)
	var hdr [hashSetHeader]byte
	copy(hdr[:8], hashSetMagic)
	binary.LittleEndian.PutUint32(hdr[8:], hashSetVersion)
	binary.LittleEndian.PutUint64(hdr[16:], keyID)
	binary.LittleEndian.PutUint64(hdr[24:], count)
	n := int64(0)
	m, err := bw.Write(hdr[:])
	n += int64(m)
	if err != nil {
		return n, err
	}
	var b [8]byte
	written := uint64(0)
	for h := range hashes {
		binary.LittleEndian.PutUint64(b[:], h)
		m, err := bw.Write(b[:])
		n += int64(m)
		if err != nil {
			return n, err
		}
		written++
	}
	if err := errOf(); err != nil {
		return n, err
	}
	if written != count {
		return n, fmt.Errorf("rawset: %d hashes written where the header states %d", written, count)
	}
	if err := bw.Flush(); err != nil {
		return n, err
	}
	binary.LittleEndian.PutUint32(b[:4], crc.Sum32())
	m, err = w.Write(b[:4])
	return n + int64(m), err
}

// ReadHashSet reads a set written by WriteTo. It refuses (ErrHashSetFormat) a wrong magic or
// version, hashes out of order, a bad checksum or a truncated stream; the count in the header
// is not trusted for allocation.
func ReadHashSet(r io.Reader) (*HashSet, error) { return ReadHashSetSize(r, -1) }

// ReadHashSetSize is ReadHashSet of a stream of known length size (a file's): a header whose
// count does not match the length is refused, and one that does sizes the set's memory once —
// a 1e8-row snapshot's set is about a gigabyte, which growing by appends would need about
// twice of while it is read. A negative size is unknown.
func ReadHashSetSize(r io.Reader, size int64) (*HashSet, error) {
	crc := crc32.New(castagnoli)
	br := bufio.NewReaderSize(r, 64<<10)
	tr := io.TeeReader(br, crc)
	var hdr [hashSetHeader]byte
	if _, err := io.ReadFull(tr, hdr[:]); err != nil {
		return nil, formatErr(err)
	}
	if string(hdr[:8]) != hashSetMagic || binary.LittleEndian.Uint32(hdr[8:]) != hashSetVersion || binary.LittleEndian.Uint32(hdr[12:]) != 0 {
		return nil, ErrHashSetFormat
	}
	s := &HashSet{keyID: binary.LittleEndian.Uint64(hdr[16:])}
	count := binary.LittleEndian.Uint64(hdr[24:])
	capacity := min(count, 1<<20)
	if size >= 0 {
		if size < hashSetHeader+4 || uint64(size-hashSetHeader-4) != count*8 || count > math.MaxInt64/8 {
			return nil, ErrHashSetFormat
		}
		capacity = count
	}
	s.hashes = make([]uint64, 0, capacity)
	var b [8]byte
	for i := uint64(0); i < count; i++ {
		if _, err := io.ReadFull(tr, b[:]); err != nil {
			return nil, formatErr(err)
		}
		h := binary.LittleEndian.Uint64(b[:])
		if i > 0 && h <= s.hashes[i-1] {
			return nil, ErrHashSetFormat
		}
		s.hashes = append(s.hashes, h)
	}
	s.buildIndex()
	want := crc.Sum32()
	if _, err := io.ReadFull(br, b[:4]); err != nil {
		return nil, formatErr(err)
	}
	if binary.LittleEndian.Uint32(b[:4]) != want {
		return nil, ErrHashSetFormat
	}
	return s, nil
}

func formatErr(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return ErrHashSetFormat
	}
	return err
}

// ErrKeyMismatch is returned by NewUnion for sets built under different keys: a lookup hashes
// a value under one key, so the sets of the other would silently never match.
var ErrKeyMismatch = errors.New("rawset: the sets were built under different keys")

// Union answers Contains over several sets built under one key: the raw values of every
// dataset a job touched. It is immutable and safe for concurrent use.
type Union struct {
	sets  []*HashSet
	keyID uint64
}

// NewUnion returns the union of sets. Sets that record a key ID must all record the same one
// (ErrKeyMismatch); the union reports it as its own.
func NewUnion(sets ...*HashSet) (*Union, error) {
	u := &Union{sets: slices.Clone(sets)}
	for _, s := range sets {
		switch id := s.KeyID(); {
		case id == 0:
		case u.keyID == 0:
			u.keyID = id
		case id != u.keyID:
			return nil, ErrKeyMismatch
		}
	}
	return u, nil
}

// Contains reports whether h is in any of the sets.
func (u *Union) Contains(h uint64) bool {
	for _, s := range u.sets {
		if s.Contains(h) {
			return true
		}
	}
	return false
}

// Len returns the number of hashes over all sets (a hash in two sets counts twice).
func (u *Union) Len() int {
	n := 0
	for _, s := range u.sets {
		n += s.Len()
	}
	return n
}

// KeyID returns the ID of the key the sets were built with, or 0 if none records one.
func (u *Union) KeyID() uint64 { return u.keyID }
