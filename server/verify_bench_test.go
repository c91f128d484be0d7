package server_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/c1b99f93/cleanroom/catalog"
	"github.com/c1b99f93/cleanroom/policy/bundletest"
	"github.com/c1b99f93/cleanroom/sandbox"
	"github.com/c1b99f93/cleanroom/server"
	"github.com/c1b99f93/cleanroom/server/api"
	"github.com/c1b99f93/cleanroom/server/client"
)

// benchVerifyPlatform serves a platform with residents registered and a verify grant, under a
// copy of the default policy whose limits per fact and per grant day are lifted (a benchmark
// asks the same facts again and again; the limits are tested elsewhere). It returns the
// insurer's client and the grant.
func benchVerifyPlatform(b *testing.B) (*client.Client, string) {
	b.Helper()
	ctx := context.Background()
	policyDir := bundletest.Copy(b, bundletest.Replace(`"verify_checks_per_fact": 1,`, `"verify_checks_per_fact": 1000000000,`,
		`"verify_checks_per_grant_per_day": 300000,`, `"verify_checks_per_grant_per_day": 1000000000,`))
	root := b.TempDir()
	datasets, _ := filepath.Abs(filepath.Join("..", "testdata", "datasets"))
	parquet, err := os.ReadFile(filepath.Join(datasets, "public-security-bureau", "residents.parquet"))
	if err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "residents.parquet"), parquet, 0o600); err != nil {
		b.Fatal(err)
	}
	ps, err := server.ParsePrincipals([]byte(principalsYAML))
	if err != nil {
		b.Fatal(err)
	}
	dataDir := b.TempDir()
	srv, err := server.New(ctx, server.Config{DataDir: dataDir, Principals: ps, PolicyDir: policyDir,
		ImportRoots: map[string]string{"public-security-bureau": root}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		WorkerDB: sandbox.DBLimits{MemoryLimit: "2GB"}})
	if err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(sctx, ln) }()
	b.Cleanup(func() { cancel(); <-done; srv.Close() })
	base := "http://" + ln.Addr().String()
	as := func(who string) *client.Client {
		c, err := client.New(base, token(who))
		if err != nil {
			b.Fatal(err)
		}
		return c
	}
	spec, err := catalog.LoadFile(filepath.Join(datasets, "residents.yaml"))
	if err != nil {
		b.Fatal(err)
	}
	spec.Source.Path = "residents.parquet"
	if _, err := as("psb-1").RegisterDataset(ctx, spec); err != nil {
		b.Fatal(err)
	}
	app, err := as("insurer-1").CreateApplication(ctx, api.ApplicationRequest{Purpose: "underwriting", Scenario: "declared income checks",
		Datasets: []string{"residents"}, Start: "2026-01-01", End: "2099-12-31", Epsilon: 1, Delta: 1e-8, JobKinds: []string{"verify"}})
	if err != nil {
		b.Fatal(err)
	}
	ok, err := as("op-1").ApproveApplication(ctx, app.ID, api.ApproveRequest{})
	if err != nil {
		b.Fatal(err)
	}
	return as("insurer-1"), ok.GrantID
}

// BenchmarkVerifyOverHTTP times a verification end to end — encrypt, submit, queue, the
// worker's lookups and answers, the completion quantum, the long poll, decrypt — for batches
// of 1, 1,000 and 100,000 claims (a tenth about persons the register holds), beside the
// plaintext equality check of the same batch in the same run (x-plaintext: end to end over
// plaintext). The 100,000 claims go as two jobs of 65,536 at most. Each job runs the claims
// cut-and-choose with the policy's K_c = 2 shares: commit, challenge, openings checked and
// combined by the platform; the key is pinned once beforehand (16 candidates).
func BenchmarkVerifyOverHTTP(b *testing.B) {
	c, g := benchVerifyPlatform(b)
	ids, truth := residentsTruth(b)
	keys := pinned(b, c, g)
	for _, n := range []int{1, 1000, 100_000} {
		claims := make([]client.Claim, n)
		for i := range claims {
			subject := fmt.Sprintf("53999919990101%06d", i)
			if i%10 == 0 {
				subject = ids[i/10%len(ids)]
			}
			claims[i] = client.Claim{Dataset: "residents", Subject: subject, Attribute: "income_band", Claimed: "middle", Consent: "bench"}
		}
		var plain float64
		b.Run(fmt.Sprintf("checks=%d/plaintext", n), func(b *testing.B) {
			matched := 0
			for b.Loop() {
				for _, cl := range claims {
					if truth[cl.Subject] == cl.Claimed {
						matched++
					}
				}
			}
			plain = float64(b.Elapsed().Nanoseconds()) / float64(b.N)
		})
		b.Run(fmt.Sprintf("checks=%d/verify", n), func(b *testing.B) {
			for b.Loop() {
				if _, err := c.Verify(context.Background(), g, keys, claims, 0); err != nil {
					b.Fatal(err)
				}
			}
			per := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
			b.ReportMetric(float64(n)/(per/1e9), "checks/s")
			if plain > 0 {
				b.ReportMetric(per/plain, "x-plaintext")
			}
		})
	}
}
