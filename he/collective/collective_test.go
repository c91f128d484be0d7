package collective_test

import (
	"context"
	"encoding/binary"
	"errors"
	"math"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/c1b99f93/cleanroom/he/collective"
	"github.com/tuneinsight/lattigo/v6/ring"
)

// The parameter set meets the HomomorphicEncryption.org standard's 128-bit classical bound for its
// ring degree (ternary secret, σ = 3.2), holds 1k partitions, decrypts exactly after key switching
// with the maximum number of domains, and floods with 40 bits of statistical margin.
func TestParamsMeet128BitSecurityAndHoldTheRange(t *testing.T) {
	p, err := collective.DefaultParams()
	if err != nil {
		t.Fatal(err)
	}
	bound, ok := collective.StandardMaxLogQP[p.LogN()]
	if !ok || bound != 218 || p.LogN() != 13 {
		t.Fatalf("no standard bound pinned for logN %d", p.LogN())
	}
	if p.LogQP() > float64(bound) {
		t.Fatalf("log2(QP) = %.1f exceeds the standard's %d for 128-bit security", p.LogQP(), bound)
	}
	b := p.BGV()
	if xs, ok := b.Xs().(ring.Ternary); !ok || xs.P != 2.0/3.0 || xs.H != 0 {
		t.Fatalf("secret is not uniform ternary")
	}
	if b.NoiseFreshSK() != 3.2 {
		t.Fatalf("error distribution is not the standard's σ = 3.2")
	}
	if p.Slots() < 1024 {
		t.Fatalf("%d slots cannot hold 1k partitions", p.Slots())
	}
	tt := new(big.Int).SetUint64(p.T())
	if !tt.ProbablyPrime(40) || (p.T()-1)%uint64(2<<p.LogN()) != 0 {
		t.Fatalf("t is not an NTT-friendly prime")
	}
	if m := p.CorrectnessMarginBits(collective.MaxParties); m < 20 {
		t.Fatalf("decryption margin %.1f bits is too thin", m)
	}
	// Statistical distance ≤ ‖e‖₂/(2σ) for Gaussian flooding.
	if d := math.Log2(p.FloodSigma()) + 1 - math.Log2(p.CiphertextNoiseL2(collective.MaxParties)); d < 40 {
		t.Fatalf("smudging gives only %.1f bits of statistical security", d)
	}
	if p.MaxTotal() < 1<<53 {
		t.Fatalf("totals below 2^53 must fit")
	}
}

func TestThreeDomainsReleaseTotalsWithinTheConfidenceInterval(t *testing.T) {
	// Noise: the library draws from crypto randomness and cannot be seeded, so the band is wide
	// enough never to flake: each total is checked against its interval at alpha = 1e-12
	// (z ≈ 7.1), so a failure among 1000 partitions has probability below 1e-9.
	w := newWorld(t, 3)
	const partitions = 1000
	data, totals := dataset(w.domains, partitions, 0, 5000, 20260602)
	job := w.job(t, "job-ci", partitions, defaultBudget)
	got, err := w.run(t, job, data)
	if err != nil {
		t.Fatal(err)
	}
	var sq float64
	differ := 0
	for i, v := range got {
		ci, err := collective.CI(v, job.Noise, 1e-12)
		if err != nil {
			t.Fatal(err)
		}
		if totals[i] < ci.Lower || totals[i] > ci.Upper {
			t.Fatalf("partition %d: exact total outside the released value's interval", i)
		}
		d := float64(v - totals[i])
		sq += d * d
		if v != totals[i] {
			differ++
		}
	}
	// The noise is really there and has the advertised spread: the empirical standard deviation of
	// 1000 draws is within ±20% of TotalSigma (±9 standard errors).
	sd := math.Sqrt(sq / partitions)
	if sd < 0.8*job.Noise.TotalSigma || sd > 1.2*job.Noise.TotalSigma || differ < partitions/2 {
		t.Fatalf("noise spread %.2f, advertised %.2f", sd, job.Noise.TotalSigma)
	}
}

func TestWithNoiseOffTotalsAreExact(t *testing.T) {
	noiseOff(t)
	w := newWorld(t, 3)
	for _, tc := range []struct {
		name       string
		partitions int
		lo, hi     int64
	}{
		{"counts 1k partitions", 1000, 0, 1 << 20},
		{"signed clamped sums", 1000, -1 << 40, 1 << 40},
		{"every slot", collective.MaxPartitions, 0, 100},
		{"one partition", 1, 5, 6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data, totals := dataset(w.domains, tc.partitions, tc.lo, tc.hi, 7)
			got, err := w.run(t, w.job(t, "job-exact-"+strings.ReplaceAll(tc.name, " ", "-"), tc.partitions, defaultBudget), data)
			if err != nil {
				t.Fatal(err)
			}
			for i := range totals {
				if got[i] != totals[i] {
					t.Fatalf("partition %d differs", i)
				}
			}
		})
	}
}

func TestTotalsAtTheRangeEdgeAreExactAndBeyondAreRefused(t *testing.T) {
	noiseOff(t)
	w := newWorld(t, 3)
	p, _ := collective.DefaultParams()
	max := p.MaxInput(3)
	data := map[string][]int64{}
	for _, d := range w.domains {
		data[d] = []int64{max, -max, 1}
	}
	got, err := w.run(t, w.job(t, "job-edge", 3, defaultBudget), data)
	if err != nil {
		t.Fatal(err)
	}
	if got[0] != 3*max || got[1] != -3*max || got[2] != 3 {
		t.Fatalf("edge totals differ")
	}
	over := w.job(t, "job-over", 1, defaultBudget)
	if _, err := w.parties[w.domains[0]].Encrypt(over, []int64{max + 1}); !errors.Is(err, collective.ErrOutOfRange) {
		t.Fatalf("got %v, want ErrOutOfRange", err)
	}
}

// No transcript holds another domain's aggregate vector in clear. With noise off, each domain's
// encrypted vector is exactly its aggregates: distinct random 52-bit values whose 8-byte big- and
// little-endian encodings are searched for in every other party's transcript (a chance match in a
// few MB has probability about 2^-40).
func TestTranscriptsHoldNoOtherDomainsAggregate(t *testing.T) {
	noiseOff(t)
	w := newWorld(t, 3)
	const partitions = 1000
	data, _ := dataset(w.domains, partitions, 1<<51, 1<<52, 99)
	if _, err := w.run(t, w.job(t, "job-transcript", partitions, defaultBudget), data); err != nil {
		t.Fatal(err)
	}
	for owner, vals := range data {
		needles := map[[8]byte]bool{}
		for _, v := range vals {
			var be, le [8]byte
			binary.BigEndian.PutUint64(be[:], uint64(v))
			binary.LittleEndian.PutUint64(le[:], uint64(v))
			needles[be], needles[le] = true, true
		}
		for party, script := range w.scripts {
			if party == owner {
				continue
			}
			s := script.Bytes()
			if len(s) == 0 {
				t.Fatalf("%s has an empty transcript", party)
			}
			var win [8]byte
			for i := 0; i+8 <= len(s); i++ {
				copy(win[:], s[i:i+8])
				if needles[win] {
					t.Fatalf("%s's transcript contains a value of %s's aggregate", party, owner)
				}
			}
		}
	}
}

// Without one domain's key-switch share the receiver decrypts garbage: fewer than 1% of totals
// come out right (a chance match has probability about 1000/2^55).
func TestFewerThanAllSharesCannotDecrypt(t *testing.T) {
	noiseOff(t)
	w := newWorld(t, 3)
	const partitions = 1000
	data, totals := dataset(w.domains, partitions, 0, 1000, 3)
	job := w.job(t, "job-n-minus-1", partitions, defaultBudget)
	inbox := make(collective.MemoryInbox, 3)
	for _, d := range w.domains {
		m, err := w.parties[d].Encrypt(job, data[d])
		if err != nil {
			t.Fatal(err)
		}
		inbox.Send(m.Encode())
	}
	ctx := context.Background()
	sum, err := w.agg.CollectInputs(ctx, job, w.recv.PublicKey(), inbox)
	if err != nil {
		t.Fatal(err)
	}
	ks := make(collective.MemoryInbox, 3)
	for _, d := range w.domains {
		m, err := w.parties[d].KeySwitch(job, sum)
		if err != nil {
			t.Fatal(err)
		}
		ks.Send(m.Encode())
	}
	res, err := w.agg.CollectKeySwitch(ctx, job, sum, ks)
	if err != nil {
		t.Fatal(err)
	}
	for _, skip := range w.domains {
		got, err := w.recv.DecryptWithoutForTest(res, skip)
		if err != nil {
			t.Fatal(err)
		}
		right := 0
		for i := range got {
			if got[i] == totals[i] {
				right++
			}
		}
		if right > partitions/100 {
			t.Fatalf("without %s's share %d totals decrypt correctly", skip, right)
		}
	}
	// And the receiver's checked path refuses a result lacking a share.
	res.Included = res.Included[1:]
	res.SignForTest(w.keys[platform])
	if _, err := w.recv.Open(job, res); !errors.Is(err, collective.ErrMissingParty) {
		t.Fatalf("got %v, want ErrMissingParty", err)
	}
	// With all shares, the same result decrypts exactly.
	if all, err := w.recv.DecryptWithoutForTest(sumResult(t, w, job, sum), ""); err != nil || all[0] != totals[0] {
		t.Fatalf("full decryption failed: %v", err)
	}
}

// sumResult re-collects the key-switch shares already produced for sum (parties answer again
// with the same share).
func sumResult(t *testing.T, w *world, job collective.Job, sum *collective.Message) *collective.Message {
	t.Helper()
	ks := make(collective.MemoryInbox, len(w.domains))
	for _, d := range w.domains {
		m, err := w.parties[d].KeySwitch(job, sum)
		if err != nil {
			t.Fatal(err)
		}
		ks.Send(m.Encode())
	}
	res, err := w.agg.CollectKeySwitch(context.Background(), job, sum, ks)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestNoiseSharesMeetTheTargetWithOneDomainColluding(t *testing.T) {
	for _, n := range []int{2, 3, 5, collective.MaxParties} {
		for _, b := range []collective.Budget{defaultBudget, {Epsilon: 0.1, Delta: 1e-9, L0: 4, LInf: 1000}, {Epsilon: 5, Delta: 1e-5, L0: 1, LInf: 3}} {
			s, err := collective.NoiseShares(b, n)
			if err != nil {
				t.Fatal(err)
			}
			rest := s.ShareSigma * math.Sqrt(float64(n-1))
			if rest < s.TargetSigma*(1-1e-9) || rest > s.TargetSigma*1.001 {
				t.Fatalf("n=%d: n−1 shares give σ %.4f, target %.4f", n, rest, s.TargetSigma)
			}
			if s.Epsilon < b.Epsilon {
				t.Fatalf("per-share epsilon below the job's")
			}
			want := math.Sqrt(float64(n) / float64(n-1))
			if r := s.TotalSigma / s.TargetSigma; math.Abs(r-want) > 0.002 {
				t.Fatalf("n=%d: accuracy cost %.4f, want %.4f", n, r, want)
			}
		}
	}
	for _, tc := range []struct {
		name string
		b    collective.Budget
		n    int
	}{
		{"one party", defaultBudget, 1},
		{"too many", defaultBudget, collective.MaxParties + 1},
		{"zero epsilon", collective.Budget{Epsilon: 0, Delta: 1e-6, L0: 1, LInf: 1}, 3},
		{"zero delta", collective.Budget{Epsilon: 1, Delta: 0, L0: 1, LInf: 1}, 3},
		{"NaN epsilon", collective.Budget{Epsilon: math.NaN(), Delta: 1e-6, L0: 1, LInf: 1}, 3},
		{"zero L0", collective.Budget{Epsilon: 1, Delta: 1e-6, L0: 0, LInf: 1}, 3},
	} {
		if _, err := collective.NoiseShares(tc.b, tc.n); !errors.Is(err, collective.ErrConfig) {
			t.Errorf("%s: got %v, want ErrConfig", tc.name, err)
		}
	}
}

func TestCIIsTheSummedGaussiansQuantile(t *testing.T) {
	s, err := collective.NoiseShares(defaultBudget, 3)
	if err != nil {
		t.Fatal(err)
	}
	ci, err := collective.CI(100, s, 0.05)
	if err != nil {
		t.Fatal(err)
	}
	half := math.Ceil(1.959963984540054 * s.TotalSigma)
	if float64(100-ci.Lower) != half || float64(ci.Upper-100) != half {
		t.Fatalf("95%% interval half-width %d, want %.0f", ci.Upper-100, half)
	}
	for _, a := range []float64{0, 1, -1, math.NaN()} {
		if _, err := collective.CI(0, s, a); !errors.Is(err, collective.ErrConfig) {
			t.Errorf("alpha %v: got %v", a, err)
		}
	}
}

// A job whose noise parameters were edited to draw less noise than its budget needs is refused.
func TestDomainRefusesWeakenedNoise(t *testing.T) {
	w := newWorld(t, 3)
	job := w.job(t, "job-weak", 4, defaultBudget)
	job.Noise.Epsilon *= 10
	if _, err := w.parties[w.domains[0]].Encrypt(job, make([]int64, 4)); !errors.Is(err, collective.ErrConfig) {
		t.Fatalf("got %v, want ErrConfig", err)
	}
}

func TestDeadlineWithoutADomainEndsTheRound(t *testing.T) {
	w := newWorld(t, 3)
	job := w.job(t, "job-offline", 10, defaultBudget)
	inbox := make(collective.MemoryInbox, 3)
	for _, d := range w.domains[:2] {
		m, err := w.parties[d].Encrypt(job, make([]int64, 10))
		if err != nil {
			t.Fatal(err)
		}
		inbox.Send(m.Encode())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	sum, err := w.agg.CollectInputs(ctx, job, w.recv.PublicKey(), inbox)
	if !errors.Is(err, collective.ErrMissingParty) || !errors.Is(err, context.DeadlineExceeded) || sum != nil {
		t.Fatalf("got %v, want ErrMissingParty after the deadline and no sum", err)
	}
}

// Two jobs run at once through one aggregator and the same domains; each gets its own totals.
func TestConcurrentJobsDoNotMix(t *testing.T) {
	noiseOff(t)
	w := newWorld(t, 3)
	const parts = 20
	errs := make(chan error, 2)
	results := make([][]int64, 2)
	wants := make([][]int64, 2)
	for k := 0; k < 2; k++ {
		data, totals := dataset(w.domains, parts, 0, 1000, uint64(100+k))
		wants[k] = totals
		job := w.job(t, "job-concurrent-"+string(rune('a'+k)), parts, defaultBudget)
		go func(k int) {
			var err error
			results[k], err = w.run(t, job, data)
			errs <- err
		}(k)
	}
	for k := 0; k < 2; k++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	for k := range results {
		for i := range wants[k] {
			if results[k][i] != wants[k][i] {
				t.Fatalf("job %d partition %d differs", k, i)
			}
		}
	}
}
