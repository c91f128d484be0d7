package collective_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/c1b99f93/cleanroom/he/collective"
)

// assertSafe checks that an error's text names no party, job or value.
func assertSafe(t *testing.T, err error, w *world, jobs ...string) {
	t.Helper()
	s := err.Error()
	for _, n := range append(append([]string{"intruder", "ceremony-1"}, w.domains...), jobs...) {
		if strings.Contains(s, n) {
			t.Fatalf("error text quotes a name or id: %q", s)
		}
	}
}

func clone(t *testing.T, m *collective.Message) *collective.Message {
	t.Helper()
	c, err := collective.DecodeMessage(m.Encode())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// The aggregator ends the round, with a sentinel error and no sum, on the first message that is
// malformed, mis-signed, from an unknown party, or replayed from another job, round or key.
func TestAggregatorRefusesBadInputs(t *testing.T) {
	w := newWorld(t, 3)
	const parts = 8
	earlier := w.job(t, "job-earlier", parts, defaultBudget)
	old, err := w.parties[w.domains[0]].Encrypt(earlier, make([]int64, parts))
	if err != nil {
		t.Fatal(err)
	}
	job := w.job(t, "job-now", parts, defaultBudget)
	valid := map[string]*collective.Message{}
	for _, d := range w.domains {
		if valid[d], err = w.parties[d].Encrypt(job, make([]int64, parts)); err != nil {
			t.Fatal(err)
		}
	}
	d0 := w.domains[0]
	_, stranger, _ := ed25519.GenerateKey(rand.Reader)
	resign := func(f func(m *collective.Message)) func() []byte {
		return func() []byte {
			m := clone(t, valid[d0])
			f(m)
			m.SignForTest(w.keys[m.Sender])
			return m.Encode()
		}
	}
	for _, tc := range []struct {
		name  string
		first func() []byte // replaces d0's message
		dup   bool          // send d0's valid message first, then this one
		want  error
	}{
		{"truncated bytes", func() []byte { b := valid[d0].Encode(); return b[:len(b)-100] }, false, collective.ErrMalformed},
		{"random bytes", func() []byte { b := make([]byte, 512); rand.Read(b); return b }, false, collective.ErrMalformed},
		{"ciphertext too short, re-signed", resign(func(m *collective.Message) { m.Payload = m.Payload[:len(m.Payload)-8] }), false, collective.ErrMalformed},
		{"ciphertext metadata altered, re-signed", resign(func(m *collective.Message) { m.Payload[0] ^= 1 }), false, collective.ErrMalformed},
		{"coefficient not reduced, re-signed", resign(func(m *collective.Message) {
			for i := len(m.Payload) - 8; i < len(m.Payload); i++ {
				m.Payload[i] = 0xff
			}
		}), false, collective.ErrMalformed},
		{"signature flipped", func() []byte { m := clone(t, valid[d0]); m.Signature[3] ^= 1; return m.Encode() }, false, collective.ErrBadSignature},
		{"signed by another domain", func() []byte { m := clone(t, valid[d0]); m.SignForTest(w.keys[w.domains[1]]); return m.Encode() }, false, collective.ErrBadSignature},
		{"payload changed after signing", func() []byte { m := clone(t, valid[d0]); m.Payload[len(m.Payload)-1] ^= 1; return m.Encode() }, false, collective.ErrBadSignature},
		{"unknown sender", func() []byte {
			m := clone(t, valid[d0])
			m.Sender = "intruder"
			m.SignForTest(stranger)
			return m.Encode()
		}, false, collective.ErrUnknownDomain},
		{"the platform posing as a domain", func() []byte {
			m := clone(t, valid[d0])
			m.Sender = platform
			m.SignForTest(w.keys[platform])
			return m.Encode()
		}, false, collective.ErrUnknownDomain},
		{"replayed from another job", func() []byte { return old.Encode() }, false, collective.ErrWrongJob},
		{"another parameter set", resign(func(m *collective.Message) { m.Params = "bgv-other" }), false, collective.ErrWrongParams},
		{"another round", func() []byte { return w.keyMsg.Included[0].Encode() }, false, collective.ErrWrongRound},
		{"another collective key", resign(func(m *collective.Message) { m.KeyID[0] ^= 1 }), false, collective.ErrWrongJob},
		{"another partition count", resign(func(m *collective.Message) { m.Partitions = parts + 1 }), false, collective.ErrWrongJob},
		{"two different messages from one domain", resign(func(m *collective.Message) { m.Payload[len(m.Payload)-1] ^= 1 }), true, collective.ErrDuplicate},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inbox := make(collective.MemoryInbox, 4)
			if tc.dup {
				inbox.Send(valid[d0].Encode())
			}
			inbox.Send(tc.first())
			for _, d := range w.domains[1:] {
				inbox.Send(valid[d].Encode())
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			sum, err := w.agg.CollectInputs(ctx, job, w.recv.PublicKey(), inbox)
			if !errors.Is(err, tc.want) || sum != nil {
				t.Fatalf("got %v, want %v and no sum", err, tc.want)
			}
			assertSafe(t, err, w, job.ID, earlier.ID)
		})
	}
	// An exact re-delivery is harmless, and the untouched messages still aggregate.
	inbox := make(collective.MemoryInbox, 4)
	inbox.Send(valid[d0].Encode())
	for _, d := range w.domains {
		inbox.Send(valid[d].Encode())
	}
	if _, err := w.agg.CollectInputs(context.Background(), job, w.recv.PublicKey(), inbox); err != nil {
		t.Fatal(err)
	}
}

// A domain key-switches only a sum it can recompute from one signed input per domain, its own
// unchanged, towards the job's receiver; anything else is refused and it sends nothing.
func TestDomainRefusesATamperedSum(t *testing.T) {
	w := newWorld(t, 3)
	const parts = 8
	other := w.job(t, "job-other", parts, defaultBudget)
	data, _ := dataset(w.domains, parts, 0, 10, 1)
	otherSum := sumFor(t, w, other, data)
	job := w.job(t, "job-sum", parts, defaultBudget)
	sum := sumFor(t, w, job, data)
	d0 := w.domains[0]
	stranger, err := collective.NewReceiver(config(w, ""))
	if err != nil {
		t.Fatal(err)
	}
	forged := func(f func(m *collective.Message)) func() *collective.Message {
		return func() *collective.Message {
			m := clone(t, sum)
			f(m)
			m.SignForTest(w.keys[m.Sender])
			return m
		}
	}
	for _, tc := range []struct {
		name string
		msg  func() *collective.Message
		want error
	}{
		{"sum altered", forged(func(m *collective.Message) { m.Payload[len(m.Payload)-1] ^= 1 }), collective.ErrTampered},
		{"own input replaced by a forgery", forged(func(m *collective.Message) {
			in := clone(t, m.Included[0])
			in.Payload = m.Included[1].Payload
			in.SignForTest(w.keys[in.Sender])
			m.Included[0] = in
		}), collective.ErrTampered},
		{"receiver key substituted", forged(func(m *collective.Message) {
			m.ReceiverKey = stranger.PublicKey()
		}), collective.ErrTampered},
		{"receiver key and digest substituted", forged(func(m *collective.Message) {
			m.ReceiverKey, m.Receiver = stranger.PublicKey(), stranger.KeyDigest()
		}), collective.ErrTampered},
		{"an input missing", forged(func(m *collective.Message) { m.Included = m.Included[1:] }), collective.ErrMissingParty},
		{"an input twice", forged(func(m *collective.Message) { m.Included[2] = m.Included[1] }), collective.ErrDuplicate},
		{"sent by a domain", forged(func(m *collective.Message) { m.Sender = w.domains[1] }), collective.ErrUnknownDomain},
		{"signature flipped", func() *collective.Message { m := clone(t, sum); m.Signature[0] ^= 1; return m }, collective.ErrBadSignature},
		{"sum of another job", func() *collective.Message { return otherSum }, collective.ErrWrongJob},
		{"nil", func() *collective.Message { return nil }, collective.ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := w.parties[d0].KeySwitch(job, tc.msg())
			if !errors.Is(err, tc.want) || m != nil {
				t.Fatalf("got %v, want %v and no share", err, tc.want)
			}
			assertSafe(t, err, w, job.ID, other.ID)
		})
	}
	// The genuine sum is still accepted, once: the same share again, never a fresh one.
	a, err := w.parties[d0].KeySwitch(job, sum)
	if err != nil {
		t.Fatal(err)
	}
	b, err := w.parties[d0].KeySwitch(job, sum)
	if err != nil || string(a.Encode()) != string(b.Encode()) {
		t.Fatalf("a second key switch of one sum must return the same share: %v", err)
	}
	if _, err := w.parties[d0].Encrypt(job, make([]int64, parts)); !errors.Is(err, collective.ErrState) {
		t.Fatalf("a second input for one job: got %v, want ErrState", err)
	}
}

func sumFor(t *testing.T, w *world, job collective.Job, data map[string][]int64) *collective.Message {
	t.Helper()
	inbox := make(collective.MemoryInbox, len(w.domains))
	for _, d := range w.domains {
		m, err := w.parties[d].Encrypt(job, data[d])
		if err != nil {
			t.Fatal(err)
		}
		inbox.Send(m.Encode())
	}
	sum, err := w.agg.CollectInputs(context.Background(), job, w.recv.PublicKey(), inbox)
	if err != nil {
		t.Fatal(err)
	}
	return sum
}

// The receiver decrypts only a result for its own key carrying every domain's signed share of
// exactly this sum.
func TestReceiverRefusesABadResult(t *testing.T) {
	w := newWorld(t, 3)
	const parts = 4
	job := w.job(t, "job-result", parts, defaultBudget)
	data, _ := dataset(w.domains, parts, 0, 10, 2)
	sum := sumFor(t, w, job, data)
	res := sumResult(t, w, job, sum)
	stranger, err := collective.NewReceiver(config(w, ""))
	if err != nil {
		t.Fatal(err)
	}
	forged := func(f func(m *collective.Message)) *collective.Message {
		m := clone(t, res)
		f(m)
		m.SignForTest(w.keys[platform])
		return m
	}
	for _, tc := range []struct {
		name string
		msg  *collective.Message
		job  collective.Job
		want error
	}{
		{"a share's signature flipped", forged(func(m *collective.Message) { m.Included[1].Signature[5] ^= 1 }), job, collective.ErrBadSignature},
		{"a share missing", forged(func(m *collective.Message) { m.Included = m.Included[:2] }), job, collective.ErrMissingParty},
		{"sum swapped", forged(func(m *collective.Message) { m.Payload = m.Included[0].Payload[:0] }), job, collective.ErrMalformed},
		{"result signature flipped", func() *collective.Message { m := clone(t, res); m.Signature[1] ^= 1; return m }(), job, collective.ErrBadSignature},
		{"another job id", res, func() collective.Job { j := job; j.ID = "job-else"; return j }(), collective.ErrWrongJob},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := w.recv.Open(tc.job, tc.msg)
			if !errors.Is(err, tc.want) || got != nil {
				t.Fatalf("got %v, want %v and no totals", err, tc.want)
			}
		})
	}
	j := job
	j.Receiver = stranger.KeyDigest()
	if got, err := stranger.Open(j, res); !errors.Is(err, collective.ErrWrongJob) || got != nil {
		t.Fatalf("another receiver: got %v, want ErrWrongJob", err)
	}
	if _, err := w.recv.Open(job, res); err != nil {
		t.Fatal(err)
	}
}

// A domain accepts a collective key only if it is the sum of every domain's signed share with its
// own unchanged: a platform that substitutes a key it could decrypt under is caught.
func TestDomainRefusesASubstitutedCollectiveKey(t *testing.T) {
	w := newWorld(t, 3)
	fresh, err := collective.NewParty(config(w, w.domains[0]))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fresh.KeyGen(w.ceremony); err != nil {
		t.Fatal(err)
	}
	m := clone(t, w.keyMsg)
	m.Payload = w.recv.PublicKey() // a key whose secret someone else holds
	m.SignForTest(w.keys[platform])
	if err := fresh.AcceptPublicKey(m); !errors.Is(err, collective.ErrTampered) {
		t.Fatalf("got %v, want ErrTampered", err)
	}
	// The genuine key message of the first ceremony does not carry the fresh party's share.
	if err := fresh.AcceptPublicKey(w.keyMsg); !errors.Is(err, collective.ErrTampered) {
		t.Fatalf("got %v, want ErrTampered", err)
	}
}
