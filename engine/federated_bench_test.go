package engine

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/c1b99f93/cleanroom/catalog"
	"github.com/c1b99f93/cleanroom/engine/ledger"
	"github.com/c1b99f93/cleanroom/engine/plan"
	"github.com/c1b99f93/cleanroom/policy"
	"github.com/c1b99f93/cleanroom/sandbox"
	"github.com/c1b99f93/cleanroom/server/api"
)

// BenchmarkFederatedThreeDomains1kPartitions runs a federated COUNT by a key with 1000 public
// values over three domains (three workers, 3000 persons each) end to end through the engine
// — gate, plan, policy, ledger, bounding in each worker, noise, encryption, aggregation, key
// switching, opening, release and receipt — and, in the same run, the plain central DP SQL
// job over one of the datasets (same SQL, same engine). It reports both and their ratio.
// Target: the federated job under 5 s.
func BenchmarkFederatedThreeDomains1kPartitions(b *testing.B) {
	ctx := context.Background()
	dir := b.TempDir()
	e, err := Open(ctx, Config{DataDir: dir, PolicyDir: fedPolicy(b), WorkerDB: sandbox.DBLimits{MemoryLimit: "1GB"}})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	buckets := make([]string, 1000)
	for i := range buckets {
		buckets[i] = strconv.Itoa(i)
	}
	var names []string
	for d := range 3 {
		name := fmt.Sprintf("visits_d%d", d)
		names = append(names, name)
		var sb strings.Builder
		sb.WriteString("person_id,bucket\n")
		for p := range 3000 {
			fmt.Fprintf(&sb, "D%dP%05d,%d\n", d, p, (p*7+d)%1000)
		}
		path := filepath.Join(b.TempDir(), name+".csv")
		if err := os.WriteFile(path, []byte(sb.String()), 0o600); err != nil {
			b.Fatal(err)
		}
		spec := &catalog.Spec{Name: name, Provider: "p", Grade: catalog.GradeL2, PrivacyUnit: "person_id", Domain: fmt.Sprintf("bureau_%d", d),
			Source: catalog.Source{Kind: catalog.SourceCSV, Path: path}, Budget: catalog.Budget{Epsilon: 1e6, Delta: 0.5},
			Columns: map[string]catalog.Column{
				"person_id": {Tags: []catalog.Tag{catalog.TagIdentifier}},
				"bucket":    {Tags: []catalog.Tag{catalog.TagQuasiIdentifier}, Domain: buckets},
			}}
		src, err := os.Open(path)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := e.RegisterDataset(ctx, spec, src); err != nil {
			b.Fatal(err)
		}
		src.Close()
	}
	if err := e.OpenGrant(ctx, "g1", ledger.Budget{Epsilon: 1e6, Delta: 0.5}); err != nil {
		b.Fatal(err)
	}
	const sql = "SELECT bucket, COUNT(*) AS n FROM visits_d0 GROUP BY bucket"
	opts := plan.Options{Epsilon: 1, Delta: 1e-6, DeltaSet: true, MaxGroupsContributed: 1, MaxContributionsPerGroup: 1}
	who := policy.Principal{Name: "analyst-1", Role: "applicant", Org: "research-institute"}
	// The first job makes the collective key (reported apart, not in the loop).
	start := time.Now()
	if _, err := e.Run(ctx, Job{Principal: who, Grant: "g1", Kind: KindFederated, SQL: sql, Federated: &api.FederatedRequest{Datasets: names}, Options: opts}); err != nil {
		b.Fatal(err)
	}
	b.Logf("first job, with the key ceremony: %v", time.Since(start))
	var fed, central time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		out, err := e.Run(ctx, Job{Principal: who, Grant: "g1", Kind: KindFederated, SQL: sql, Federated: &api.FederatedRequest{Datasets: names}, Options: opts})
		if err != nil {
			b.Fatal(err)
		}
		if len(out.Result.Rows) != 1000 {
			b.Fatalf("%d rows", len(out.Result.Rows))
		}
		fed += time.Since(t0)
		// The central job must not be answered from an earlier release: vary its epsilon.
		o := opts
		o.Epsilon = 1 + float64(i+1)*1e-6
		o.MinUnitsPerGroup = 0
		t1 := time.Now()
		if _, err := e.Run(ctx, Job{Principal: who, Grant: "g1", Kind: KindSQL, SQL: sql, Options: o}); err != nil {
			b.Fatal(err)
		}
		central += time.Since(t1)
	}
	b.StopTimer()
	b.ReportMetric(float64(fed.Milliseconds())/float64(b.N), "federated-ms/job")
	b.ReportMetric(float64(central.Milliseconds())/float64(b.N), "central-sql-ms/job")
	b.ReportMetric(float64(fed)/float64(central), "ratio")
}
