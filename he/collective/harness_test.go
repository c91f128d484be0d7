package collective_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/c1b99f93/cleanroom/he/collective"
)

// world is an in-process deployment: N domains, the platform's aggregator and a receiver, with
// every byte each party sends or receives recorded in its transcript.
type world struct {
	domains  []string
	keys     map[string]ed25519.PrivateKey
	dir      collective.Directory
	parties  map[string]*collective.Party
	agg      *collective.Aggregator
	recv     *collective.Receiver
	keyMsg   *collective.Message
	mu       sync.Mutex
	scripts  map[string]*bytes.Buffer
	ceremony string
}

const platform = "platform"

func domainNames(n int) []string {
	base := []string{"medical-insurance", "health-commission", "civil-affairs", "statistics"}
	out := make([]string, n)
	for i := range out {
		if i < len(base) {
			out[i] = base[i]
		} else {
			out[i] = fmt.Sprintf("domain-%d", i)
		}
	}
	return out
}

func config(w *world, name string) collective.Config {
	return collective.Config{Name: name, SigningKey: w.keys[name], Directory: w.dir, Domains: w.domains, Aggregator: platform}
}

// newWorld builds N parties and runs the key ceremony through the in-memory transport.
func newWorld(tb testing.TB, n int) *world {
	tb.Helper()
	w := &world{domains: domainNames(n), keys: map[string]ed25519.PrivateKey{}, dir: collective.Directory{},
		parties: map[string]*collective.Party{}, scripts: map[string]*bytes.Buffer{}, ceremony: "ceremony-1"}
	for _, name := range append([]string{platform}, w.domains...) {
		pub, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			tb.Fatal(err)
		}
		w.keys[name], w.dir[name] = priv, pub
		w.scripts[name] = &bytes.Buffer{}
	}
	w.scripts["receiver"] = &bytes.Buffer{}
	var err error
	if w.agg, err = collective.NewAggregator(config(w, platform)); err != nil {
		tb.Fatal(err)
	}
	for _, d := range w.domains {
		if w.parties[d], err = collective.NewParty(config(w, d)); err != nil {
			tb.Fatal(err)
		}
	}
	if w.recv, err = collective.NewReceiver(config(w, "")); err != nil {
		tb.Fatal(err)
	}
	inbox := make(collective.MemoryInbox, n)
	for _, d := range w.domains {
		m, err := w.parties[d].KeyGen(w.ceremony)
		if err != nil {
			tb.Fatal(err)
		}
		w.send(d, platform, m, inbox)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if w.keyMsg, err = w.agg.CollectKeyGen(ctx, w.ceremony, inbox); err != nil {
		tb.Fatal(err)
	}
	for _, d := range w.domains {
		if err := w.parties[d].AcceptPublicKey(w.deliver(platform, d, w.keyMsg)); err != nil {
			tb.Fatal(err)
		}
	}
	return w
}

// send encodes m, records it in both transcripts and puts it in the inbox.
func (w *world) send(from, to string, m *collective.Message, inbox collective.MemoryInbox) {
	b := m.Encode()
	w.record(from, to, b)
	inbox.Send(b)
}

// deliver encodes m, records it, and decodes it on the receiving side.
func (w *world) deliver(from, to string, m *collective.Message) *collective.Message {
	b := m.Encode()
	w.record(from, to, b)
	out, err := collective.DecodeMessage(b)
	if err != nil {
		panic(err)
	}
	return out
}

func (w *world) record(from, to string, b []byte) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.scripts[from].Write(b)
	w.scripts[to].Write(b)
}

func (w *world) job(tb testing.TB, id string, partitions int, budget collective.Budget) collective.Job {
	tb.Helper()
	noise, err := collective.NoiseShares(budget, len(w.domains))
	if err != nil {
		tb.Fatal(err)
	}
	return collective.Job{ID: id, Key: w.agg.KeyID(), Partitions: partitions, Receiver: w.recv.KeyDigest(), Noise: noise}
}

var defaultBudget = collective.Budget{Epsilon: 1, Delta: 1e-6, L0: 1, LInf: 1}

// run executes rounds 3–6 for one job and returns the receiver's totals.
func (w *world) run(tb testing.TB, job collective.Job, data map[string][]int64) ([]int64, error) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	inbox := make(collective.MemoryInbox, len(w.domains))
	for _, d := range w.domains {
		m, err := w.parties[d].Encrypt(job, data[d])
		if err != nil {
			return nil, err
		}
		w.send(d, platform, m, inbox)
	}
	sum, err := w.agg.CollectInputs(ctx, job, w.recv.PublicKey(), inbox)
	if err != nil {
		return nil, err
	}
	ks := make(collective.MemoryInbox, len(w.domains))
	for _, d := range w.domains {
		m, err := w.parties[d].KeySwitch(job, w.deliver(platform, d, sum))
		if err != nil {
			return nil, err
		}
		w.send(d, platform, m, ks)
	}
	res, err := w.agg.CollectKeySwitch(ctx, job, sum, ks)
	if err != nil {
		return nil, err
	}
	return w.recv.Open(job, w.deliver(platform, "receiver", res))
}

// dataset returns per-domain aggregate vectors with values in [lo, hi) and their exact totals.
func dataset(domains []string, partitions int, lo, hi int64, seed uint64) (map[string][]int64, []int64) {
	data := map[string][]int64{}
	totals := make([]int64, partitions)
	x := seed
	for _, d := range domains {
		v := make([]int64, partitions)
		for i := range v {
			x ^= x << 13
			x ^= x >> 7
			x ^= x << 17
			v[i] = lo + int64(x%uint64(hi-lo))
			totals[i] += v[i]
		}
		data[d] = v
	}
	return data, totals
}

func noiseOff(t testing.TB) {
	restore := collective.SetNoiseForTest(func(x int64, _ collective.ShareNoise) (int64, error) { return x, nil })
	t.Cleanup(restore)
}
