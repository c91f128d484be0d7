package verify_test

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/c1b99f93/cleanroom/he/verify"
)

// plainMatches is the baseline: the same checks as plaintext equality.
func plainMatches(b batch, out []bool) {
	for i, c := range b.claims {
		out[i] = b.actual[i].Present && b.actual[i].Value == c
	}
}

// plainNanos measures the plaintext baseline for a batch, in ns per batch, over at least
// 50 ms.
func plainNanos(b batch) float64 {
	out := make([]bool, len(b.claims))
	runs := 0
	start := time.Now()
	for time.Since(start) < 50*time.Millisecond {
		for range 100 {
			plainMatches(b, out)
		}
		runs += 100
	}
	return float64(time.Since(start).Nanoseconds()) / float64(runs)
}

// BenchmarkVerify times each step for batches of 1, 1k and 100k checks, and the plaintext
// equality check of the same batch in the same run; each reports checks/s and its ratio to
// the plaintext baseline (x-plaintext). Run with: go test -run XXX -bench . ./he/verify
func BenchmarkVerify(b *testing.B) {
	c := client(b)
	pk := c.PublicKey()
	for _, n := range []int{1, 1000, 100_000} {
		bt := newBatch(rand.New(rand.NewPCG(uint64(n), 1)), n)
		cts, err := c.EncryptClaims(bt.claims)
		if err != nil {
			b.Fatal(err)
		}
		answers, err := verify.Evaluate(pk, cts, bt.actual)
		if err != nil {
			b.Fatal(err)
		}
		plain := plainNanos(bt)
		report := func(b *testing.B) {
			perOp := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
			b.ReportMetric(float64(n)/(perOp/1e9), "checks/s")
			b.ReportMetric(perOp/plain, "x-plaintext")
		}
		steps := []struct {
			name string
			f    func() error
		}{
			{"encrypt", func() error { _, err := c.EncryptClaims(bt.claims); return err }},
			{"evaluate", func() error { _, err := verify.Evaluate(pk, cts, bt.actual); return err }},
			{"decrypt", func() error { _, err := c.DecryptMatches(answers, n); return err }},
			{"end-to-end", func() error {
				cts, err := c.EncryptClaims(bt.claims)
				if err != nil {
					return err
				}
				answers, err := verify.Evaluate(pk, cts, bt.actual)
				if err != nil {
					return err
				}
				_, err = c.DecryptMatches(answers, n)
				return err
			}},
		}
		for _, s := range steps {
			b.Run(fmt.Sprintf("checks=%d/%s", n, s.name), func(b *testing.B) {
				for b.Loop() {
					if err := s.f(); err != nil {
						b.Fatal(err)
					}
				}
				report(b)
			})
		}
		b.Run(fmt.Sprintf("checks=%d/plaintext", n), func(b *testing.B) {
			out := make([]bool, n)
			for b.Loop() {
				plainMatches(bt, out)
			}
			report(b)
		})
	}
}
