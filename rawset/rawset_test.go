package rawset

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

var testKey = []byte("0123456789abcdef0123456789abcdef")

func TestFoldNormalisesFullWidthCaseAndSpaces(t *testing.T) {
	cases := []struct{ in, want string }{
		{"abc123", "ABC123"},
		{"ABC 123", "ABC 123"}, // unchanged: no allocation path
		{"１３８１２３４５６７８", "13812345678"},
		{"ｚｈａｎｇ＠ｅｘａｍｐｌｅ．ｃｏｍ", "ZHANG@EXAMPLE.COM"},
		{"１１０１０５１９４９１２３１００２ｘ", "11010519491231002X"},
		{"138\u3000 1234\u00a05678", "138  1234 5678"},
		{"138\u20141234\u22125678", "138-1234-5678"},
		{"客户ａ", "客户A"},
		{"\xff\xfe", "\ufffd\ufffd"}, // invalid UTF-8 becomes replacement characters
	}
	for _, c := range cases {
		if got := Fold(c.in); got != c.want {
			t.Errorf("Fold(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestMergeDigitSeparatorsJoinsDigitGroupsOnly(t *testing.T) {
	cases := []struct {
		in, want string
		merged   bool
	}{
		{"138 1234 5678", "13812345678", true},
		{"138-1234-5678", "13812345678", true},
		{"138 - 1234 - 5678", "13812345678", true},
		{"138    1234", "138    1234", false}, // four separators: not one number
		{"ABC-123", "ABC-123", false},         // a letter before the hyphen
		{"12 AB 34", "12 AB 34", false},
		{"tel: 138 1234", "tel: 1381234", true},
		{"1 2 3", "123", true},
		{"-1 ", "-1 ", false},
		{"", "", false},
	}
	for _, c := range cases {
		got, merged := MergeDigitSeparators(c.in)
		if got != c.want || merged != c.merged {
			t.Errorf("MergeDigitSeparators(%q) = %q, %v; want %q, %v", c.in, got, merged, c.want, c.merged)
		}
	}
}

func TestCanonicalForms(t *testing.T) {
	str := []struct{ in, want string }{
		{"  Zhang San ", "ZHANG SAN"},
		{"ｚｈａｎｇ\u3000", "ZHANG"},
		{"13800000000", "13800000000"},
	}
	for _, c := range str {
		if got := CanonicalString(c.in); got != c.want {
			t.Errorf("CanonicalString(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	nums := []struct {
		in   float64
		want string
	}{
		{1.38e10, "13800000000"},
		{13800000000.0, "13800000000"},
		{1234.5, "1234.5"},
		{0.1, "0.1"},
		{-7, "-7"},
		{math.Copysign(0, -1), "0"},
		{math.NaN(), ""},
		{math.Inf(-1), ""},
	}
	for _, c := range nums {
		if got := CanonicalNumber(c.in); got != c.want {
			t.Errorf("CanonicalNumber(%v) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestKeyedHashIsTruncatedHMAC(t *testing.T) {
	if _, err := NewKeyer(testKey[:31]); !errors.Is(err, ErrShortKey) {
		t.Errorf("31-byte key: err = %v, want ErrShortKey", err)
	}
	if _, err := KeyedHash(nil, "x"); !errors.Is(err, ErrShortKey) {
		t.Errorf("nil key: err = %v, want ErrShortKey", err)
	}
	m := hmac.New(sha256.New, testKey)
	m.Write([]byte("13800000000"))
	want := binary.BigEndian.Uint64(m.Sum(nil))
	got, err := KeyedHash(testKey, "13800000000")
	if err != nil || got != want {
		t.Fatalf("KeyedHash = %x, %v; want %x", got, err, want)
	}
	k, _ := NewKeyer(testKey)
	if k.Hash("13800000000") != want {
		t.Error("Keyer.Hash differs from KeyedHash")
	}
	// Number and string forms of one value hash alike.
	if k.Hash(CanonicalNumber(1.38e10)) != k.Hash(CanonicalString(" 13800000000 ")) {
		t.Error("1.38e10 and \"13800000000\" hash differently")
	}
	other, _ := NewKeyer(bytes.Repeat([]byte{7}, 32))
	if other.ID() == k.ID() || other.Hash("13800000000") == want {
		t.Error("another key gives the same ID or hash")
	}
}

func TestAppendRawHashesForms(t *testing.T) {
	k, _ := NewKeyer(testKey)
	cases := []struct {
		in   string
		want []string
	}{
		{" zhang san ", []string{"ZHANG SAN"}},
		{"ab", nil},
		{"13812345678.0", []string{"13812345678.0", "13812345678"}},
		{"138-1234-5678", []string{"138-1234-5678", "13812345678"}},
		{"1.38e10", []string{"1.38E10", "13800000000"}},
		{"123456", []string{"123456"}},
	}
	for _, c := range cases {
		var want []uint64
		for _, w := range c.want {
			want = append(want, k.Hash(w))
		}
		if got := k.AppendRawHashes(nil, c.in); !slices.Equal(got, want) {
			t.Errorf("AppendRawHashes(%q) = %x, want %x (%q)", c.in, got, want, c.want)
		}
	}
}

func TestHashSetRoundTrip(t *testing.T) {
	k, _ := NewKeyer(testKey)
	s := k.NewHashSet([]uint64{5, 3, 9, 3, 1 << 63})
	if s.Len() != 4 || !s.Contains(3) || !s.Contains(1<<63) || s.Contains(4) {
		t.Fatalf("set %v: Len %d", s.hashes, s.Len())
	}
	var buf bytes.Buffer
	n, err := s.WriteTo(&buf)
	if err != nil || n != int64(buf.Len()) || n != hashSetHeader+4*8+4 {
		t.Fatalf("WriteTo = %d, %v; buffer %d", n, err, buf.Len())
	}
	got, err := ReadHashSet(bytes.NewReader(buf.Bytes()))
	if err != nil || !slices.Equal(got.hashes, s.hashes) || got.KeyID() != k.ID() {
		t.Fatalf("ReadHashSet = %v (key %x), %v", got, got.KeyID(), err)
	}
	empty := NewHashSet(nil)
	buf.Reset()
	if _, err := empty.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	if got, err := ReadHashSet(&buf); err != nil || got.Len() != 0 || got.KeyID() != 0 {
		t.Fatalf("empty set: %v, %v", got, err)
	}
}

func TestReadHashSetRefusesCorruption(t *testing.T) {
	var buf bytes.Buffer
	if _, err := NewHashSet([]uint64{1, 2, 3}).WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	good := buf.Bytes()
	corrupt := func(f func(b []byte) []byte) []byte { return f(slices.Clone(good)) }
	cases := map[string][]byte{
		"magic":     corrupt(func(b []byte) []byte { b[0] = 'X'; return b }),
		"version":   corrupt(func(b []byte) []byte { b[8] = 2; return b }),
		"reserved":  corrupt(func(b []byte) []byte { b[12] = 1; return b }),
		"unsorted":  corrupt(func(b []byte) []byte { b[hashSetHeader] = 9; return b }),
		"crc":       corrupt(func(b []byte) []byte { b[len(b)-1] ^= 1; return b }),
		"flipped":   corrupt(func(b []byte) []byte { b[hashSetHeader+16] ^= 0x40; return b }), // still ascending
		"truncated": good[:len(good)-5],
		"no crc":    good[:len(good)-4],
		"empty":     nil,
		"huge count": corrupt(func(b []byte) []byte {
			binary.LittleEndian.PutUint64(b[24:], 1<<62)
			return b
		}),
	}
	cases["count one short"] = corrupt(func(b []byte) []byte {
		binary.LittleEndian.PutUint64(b[24:], 2)
		return b
	})
	for name, b := range cases {
		if _, err := ReadHashSet(bytes.NewReader(b)); !errors.Is(err, ErrHashSetFormat) {
			t.Errorf("%s: err = %v, want ErrHashSetFormat", name, err)
		}
		// With the stream's length known, the same refusals (the count is checked against it).
		if _, err := ReadHashSetSize(bytes.NewReader(b), int64(len(b))); !errors.Is(err, ErrHashSetFormat) {
			t.Errorf("%s, sized: err = %v, want ErrHashSetFormat", name, err)
		}
	}
	if s, err := ReadHashSetSize(bytes.NewReader(good), int64(len(good))); err != nil || s.Len() != 3 || cap(s.hashes) != 3 {
		t.Fatalf("a sized read of a good set: %v, %v", s, err)
	}
	if _, err := ReadHashSetSize(bytes.NewReader(good), int64(len(good))+8); !errors.Is(err, ErrHashSetFormat) {
		t.Fatalf("a length that does not match the count: %v", err)
	}
}

func TestHashSetIndexedLookup(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	var in []uint64
	for range 5000 {
		in = append(in, rng.Uint64())
	}
	in = append(in, 0, math.MaxUint64, 1<<48-1, 1<<48, 0xFFFF<<48, 0xFFFF<<48-1)
	s := NewHashSet(in)
	if s.index == nil {
		t.Fatal("a 5000-entry set has no index")
	}
	var buf bytes.Buffer
	if _, err := s.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	read, err := ReadHashSet(&buf)
	if err != nil {
		t.Fatal(err)
	}
	in2 := map[uint64]bool{}
	for _, h := range in {
		in2[h] = true
		if !s.Contains(h) || !read.Contains(h) {
			t.Fatalf("member %x not found", h)
		}
	}
	for range 20000 {
		h := rng.Uint64()
		if !in2[h] && (s.Contains(h) || read.Contains(h)) {
			t.Fatalf("non-member %x found", h)
		}
	}
	for _, h := range []uint64{1, math.MaxUint64 - 1, 1<<48 + 1} {
		if !in2[h] && s.Contains(h) {
			t.Fatalf("non-member %x found", h)
		}
	}
}

func TestUnionContainsWhatAnyMemberContains(t *testing.T) {
	k, _ := NewKeyer(testKey)
	other, _ := NewKeyer(bytes.Repeat([]byte{7}, 32))
	a, b := k.NewHashSet([]uint64{1, 5}), k.NewHashSet([]uint64{5, 9})
	cases := []struct {
		name    string
		sets    []*HashSet
		want    []uint64
		notWant []uint64
		keyID   uint64
		err     error
	}{
		{"two sets", []*HashSet{a, b}, []uint64{1, 5, 9}, []uint64{0, 2, 10}, k.ID(), nil},
		{"one set", []*HashSet{b}, []uint64{5, 9}, []uint64{1}, k.ID(), nil},
		{"none", nil, nil, []uint64{1, 5}, 0, nil},
		{"with a set of no recorded key", []*HashSet{NewHashSet([]uint64{2}), a}, []uint64{1, 2}, []uint64{3}, k.ID(), nil},
		{"two keys", []*HashSet{a, other.NewHashSet([]uint64{3})}, nil, nil, 0, ErrKeyMismatch},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			u, err := NewUnion(c.sets...)
			if !errors.Is(err, c.err) {
				t.Fatalf("NewUnion: err = %v, want %v", err, c.err)
			}
			if err != nil {
				return
			}
			for _, h := range c.want {
				if !u.Contains(h) {
					t.Errorf("Contains(%d) = false", h)
				}
			}
			for _, h := range c.notWant {
				if u.Contains(h) {
					t.Errorf("Contains(%d) = true", h)
				}
			}
			if u.KeyID() != c.keyID {
				t.Errorf("KeyID = %x, want %x", u.KeyID(), c.keyID)
			}
		})
	}
}

// The key never reaches a log or an error message through fmt or slog, whatever the verb,
// alone or inside a struct.
func TestKeyAndKeyerPrintRedacted(t *testing.T) {
	key := Key("a secret key of at least 32 bytes, never printed")
	k, err := NewKeyer(key)
	if err != nil {
		t.Fatal(err)
	}
	type args struct{ Key Key }
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("register", "key", key, "args", args{key})
	slog.New(slog.NewTextHandler(&logged, nil)).Info("register", "key", key, "keyer", k)
	printed := logged.String()
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%X", "%d", "%q"} {
		printed += fmt.Sprintf(verb, key) + fmt.Sprintf(verb, args{key}) + fmt.Sprintf(verb, k) + fmt.Sprintf(verb, []any{k, key})
	}
	for _, leak := range []string{"secret", hex.EncodeToString(key[:8]), base64.StdEncoding.EncodeToString(key[:9]), "97 32 115"} {
		if strings.Contains(strings.ToLower(printed), leak) {
			t.Fatalf("printed forms reveal the key (%q): %s", leak, printed)
		}
	}
}
