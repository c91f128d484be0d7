package rawset

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"iter"
	"os"
	"slices"
)

// Builder collects keyed hashes into a set in bounded memory, for sets larger than a
// process should hold twice (a unique identifier column at 1e8 rows gives 1e8 hashes, and
// NewHashSet holds them and their sorted copy). It keeps at most about limit hashes; a full
// buffer is sorted, made distinct and, unless that freed half of it, written to a temporary
// file as a run. Write merges the runs into the persisted form, byte for byte what
// HashSet.WriteTo writes for the same hashes.
//
// A run file is unlinked as soon as it is created (where the system allows), so a crash
// leaves nothing behind. A Builder is not safe for concurrent use; Close releases its runs.
type Builder struct {
	keyID uint64
	dir   string
	limit int
	buf   []uint64
	runs  []*os.File
	err   error
}

// NewBuilder returns a Builder of hashes made with k that spills runs to files in dir and
// holds about limit hashes (at least 1024) in memory.
func (k *Keyer) NewBuilder(dir string, limit int) *Builder {
	return &Builder{keyID: k.id, dir: dir, limit: max(limit, 1024)}
}

// AddHashes adds hashes made by Hashers of the Builder's Keyer (Hasher.AppendRawHashes), for a
// caller that hashes values on several goroutines; the set does not depend on the order in
// which hashes arrive. It fails only when a run cannot be written; the Builder then refuses
// everything after.
func (b *Builder) AddHashes(hashes []uint64) error {
	if b.err != nil {
		return b.err
	}
	b.buf = append(b.buf, hashes...)
	return b.compact()
}

// compact makes a full buffer sorted and distinct and, unless that freed half of it, spills
// it as a run.
func (b *Builder) compact() error {
	if len(b.buf) < b.limit {
		return nil
	}
	slices.Sort(b.buf)
	b.buf = slices.Compact(b.buf)
	if len(b.buf) > b.limit/2 {
		b.err = b.spill()
	}
	return b.err
}

// spill writes the buffer (sorted, distinct) as a run and empties it.
func (b *Builder) spill() error {
	f, err := os.CreateTemp(b.dir, "rawset-run-*")
	if err != nil {
		return fmt.Errorf("rawset: run file: %w", err)
	}
	_ = os.Remove(f.Name()) // unlinked while open; Close retries where this cannot be done
	b.runs = append(b.runs, f)
	bw := bufio.NewWriterSize(f, 1<<20)
	var x [8]byte
	for _, h := range b.buf {
		binary.LittleEndian.PutUint64(x[:], h)
		if _, err := bw.Write(x[:]); err != nil {
			return fmt.Errorf("rawset: run file: %w", err)
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("rawset: run file: %w", err)
	}
	b.buf = b.buf[:0]
	return nil
}

// Write writes the set of every hash added, in the persisted form (HashSet.WriteTo), and
// returns its number of hashes. With runs on disk it merges them twice: once to count the
// distinct hashes the header states, once to write them.
func (b *Builder) Write(w io.Writer) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	slices.Sort(b.buf)
	b.buf = slices.Compact(b.buf)
	if len(b.runs) == 0 {
		_, err := writeHashSet(w, b.keyID, uint64(len(b.buf)), slices.Values(b.buf), func() error { return nil })
		return len(b.buf), err
	}
	count := 0
	m, err := b.merge()
	if err != nil {
		return 0, err
	}
	for range m.all() {
		count++
	}
	if m.err != nil {
		return 0, m.err
	}
	if m, err = b.merge(); err != nil {
		return 0, err
	}
	_, err = writeHashSet(w, b.keyID, uint64(count), m.all(), func() error { return m.err })
	return count, err
}

// Close releases the runs' files.
func (b *Builder) Close() error {
	var errs []error
	for _, f := range b.runs {
		errs = append(errs, f.Close())
		if err := os.Remove(f.Name()); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	b.runs, b.buf = nil, nil
	return errors.Join(errs...)
}

// merger yields the distinct hashes of the runs and the buffer in ascending order, through a
// binary heap of the sources' heads.
type merger struct {
	heads []runHead
	err   error
}

type runHead struct {
	h    uint64
	next func() (uint64, bool, error)
}

func (b *Builder) merge() (*merger, error) {
	m := &merger{}
	for _, f := range b.runs {
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return nil, fmt.Errorf("rawset: run file: %w", err)
		}
		r := bufio.NewReaderSize(f, 1<<20)
		var x [8]byte
		m.push(func() (uint64, bool, error) {
			if _, err := io.ReadFull(r, x[:]); err != nil {
				if err == io.EOF {
					return 0, false, nil
				}
				return 0, false, fmt.Errorf("rawset: run file: %w", err)
			}
			return binary.LittleEndian.Uint64(x[:]), true, nil
		})
	}
	i := 0
	m.push(func() (uint64, bool, error) {
		if i == len(b.buf) {
			return 0, false, nil
		}
		i++
		return b.buf[i-1], true, nil
	})
	return m, m.err
}

// push adds a source at its first hash (none: it is dropped).
func (m *merger) push(next func() (uint64, bool, error)) {
	h, ok, err := next()
	if err != nil {
		m.err = err
	}
	if !ok {
		return
	}
	m.heads = append(m.heads, runHead{h, next})
	for i := len(m.heads) - 1; i > 0; {
		p := (i - 1) / 2
		if m.heads[p].h <= m.heads[i].h {
			break
		}
		m.heads[p], m.heads[i] = m.heads[i], m.heads[p]
		i = p
	}
}

// all yields each distinct hash once; a read error stops it and is left in m.err.
func (m *merger) all() iter.Seq[uint64] {
	return func(yield func(uint64) bool) {
		first, last := true, uint64(0)
		for len(m.heads) > 0 && m.err == nil {
			top := &m.heads[0]
			if h := top.h; first || h != last {
				if !yield(h) {
					return
				}
				first, last = false, h
			}
			h, ok, err := top.next()
			switch {
			case err != nil:
				m.err = err
				return
			case ok:
				top.h = h
			default:
				n := len(m.heads) - 1
				m.heads[0] = m.heads[n]
				m.heads = m.heads[:n]
			}
			m.down()
		}
	}
}

// down restores the heap after its root changed.
func (m *merger) down() {
	for i := 0; ; {
		l, s := 2*i+1, i
		if l < len(m.heads) && m.heads[l].h < m.heads[s].h {
			s = l
		}
		if r := l + 1; r < len(m.heads) && m.heads[r].h < m.heads[s].h {
			s = r
		}
		if s == i {
			return
		}
		m.heads[i], m.heads[s] = m.heads[s], m.heads[i]
		i = s
	}
}
