package collective_test

import (
	"context"
	"testing"
	"time"

	"github.com/c1b99f93/cleanroom/he/collective"
	"github.com/google/differential-privacy/go/v3/noise"
)

// BenchmarkKeyGen is the key ceremony for three domains (reported apart from a job).
func BenchmarkKeyGen(b *testing.B) {
	for i := 0; i < b.N; i++ {
		newWorld(b, 3)
	}
}

// BenchmarkThreeDomains1kPartitions is one release end to end after key generation: three
// domains add noise and encrypt 1000 partitions, the aggregator checks and adds, the domains check
// the sum and key-switch, the aggregator collects, and the receiver checks and decrypts. It
// reports the ratio to the plaintext sum of the same vectors in the same run and the message sizes.
func BenchmarkThreeDomains1kPartitions(b *testing.B) {
	w := newWorld(b, 3)
	const partitions = 1000
	data, _ := dataset(w.domains, partitions, 0, 1<<20, 11)

	// Two plaintext baselines: the bare sum of the three vectors, and the sum released centrally
	// with the library's Gaussian noise once per partition (what one trusted party would do).
	const reps = 50
	start := time.Now()
	for r := 0; r < reps; r++ {
		total := make([]int64, partitions)
		for _, d := range w.domains {
			for i, v := range data[d] {
				total[i] += v
			}
		}
		_ = total
	}
	plain := time.Since(start) / reps
	start = time.Now()
	for r := 0; r < reps; r++ {
		total := make([]int64, partitions)
		for _, d := range w.domains {
			for i, v := range data[d] {
				total[i] += v
			}
		}
		for i := range total {
			if _, err := noise.Gaussian().AddNoiseInt64(total[i], 1, 1, 1, 1e-6); err != nil {
				b.Fatal(err)
			}
		}
	}
	plainDP := time.Since(start) / reps

	var sizes [4]int
	var phase [4]time.Duration // encrypt (3 domains), aggregate, key-switch (3 domains), collect+open
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		job := w.job(b, "job-bench-"+itoa(i), partitions, defaultBudget)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		inbox := make(collective.MemoryInbox, 3)
		t0 := time.Now()
		for _, d := range w.domains {
			m, err := w.parties[d].Encrypt(job, data[d])
			if err != nil {
				b.Fatal(err)
			}
			sizes[0] = len(m.Encode())
			inbox.Send(m.Encode())
		}
		t1 := time.Now()
		sum, err := w.agg.CollectInputs(ctx, job, w.recv.PublicKey(), inbox)
		if err != nil {
			b.Fatal(err)
		}
		t2 := time.Now()
		sumBytes := sum.Encode()
		sizes[1] = len(sumBytes)
		ks := make(collective.MemoryInbox, 3)
		for _, d := range w.domains {
			got, err := collective.DecodeMessage(sumBytes)
			if err != nil {
				b.Fatal(err)
			}
			m, err := w.parties[d].KeySwitch(job, got)
			if err != nil {
				b.Fatal(err)
			}
			sizes[2] = len(m.Encode())
			ks.Send(m.Encode())
		}
		t3 := time.Now()
		res, err := w.agg.CollectKeySwitch(ctx, job, sum, ks)
		if err != nil {
			b.Fatal(err)
		}
		resBytes := res.Encode()
		sizes[3] = len(resBytes)
		got, err := collective.DecodeMessage(resBytes)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := w.recv.Open(job, got); err != nil {
			b.Fatal(err)
		}
		t4 := time.Now()
		phase[0] += t1.Sub(t0)
		phase[1] += t2.Sub(t1)
		phase[2] += t3.Sub(t2)
		phase[3] += t4.Sub(t3)
		cancel()
	}
	b.StopTimer()
	per := b.Elapsed() / time.Duration(b.N)
	b.ReportMetric(float64(per)/float64(plain), "x-plaintext")
	b.ReportMetric(float64(per)/float64(plainDP), "x-plaintext-dp")
	b.ReportMetric(float64(plain.Nanoseconds()), "plaintext-ns")
	b.ReportMetric(float64(plainDP.Nanoseconds()), "plaintext-dp-ns")
	for i, name := range []string{"encrypt-ms", "aggregate-ms", "keyswitch-ms", "result-open-ms"} {
		b.ReportMetric(float64(phase[i].Microseconds())/1000/float64(b.N), name)
	}
	b.ReportMetric(float64(sizes[0]), "input-bytes")
	b.ReportMetric(float64(sizes[1]), "sum-bytes")
	b.ReportMetric(float64(sizes[2]), "keyswitch-bytes")
	b.ReportMetric(float64(sizes[3]), "result-bytes")
}

func itoa(i int) string {
	const digits = "0123456789"
	if i == 0 {
		return "0"
	}
	var s []byte
	for ; i > 0; i /= 10 {
		s = append([]byte{digits[i%10]}, s...)
	}
	return string(s)
}
