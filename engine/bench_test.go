package engine_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/duckdb/duckdb-go/v2"

	"github.com/c1b99f93/cleanroom/catalog"
	"github.com/c1b99f93/cleanroom/connectors/synth"
	"github.com/c1b99f93/cleanroom/engine"
	"github.com/c1b99f93/cleanroom/engine/plan"
	"github.com/c1b99f93/cleanroom/sandbox"
)

// benchData generates medical_visits of about rows rows (5 visits per person) once per size,
// under testdata/generated (git-ignored), and returns its catalog spec.
func benchData(b *testing.B, rows int) *catalog.Spec {
	b.Helper()
	persons := rows / 5
	dir, err := filepath.Abs(filepath.Join("..", "testdata", "generated", "persons-"+strconv.Itoa(persons)))
	if err != nil {
		b.Fatal(err)
	}
	path := filepath.Join(dir, "medical_visits.parquet")
	if _, err := os.Stat(path); err != nil {
		start := time.Now()
		if _, err := synth.Generate(context.Background(), synth.Options{Persons: persons, Seed: 1, OutDir: dir}); err != nil {
			b.Fatal(err)
		}
		b.Logf("generated %d persons in %v", persons, time.Since(start).Round(time.Millisecond))
	}
	spec, err := catalog.LoadFile(filepath.Join("..", "testdata", "datasets", "medical_visits.yaml"))
	if err != nil {
		b.Fatal(err)
	}
	spec.Source.Path = path
	return spec
}

// rawDuckDB loads the same Parquet into an in-memory table in this process (2 threads, as the
// worker) and returns a function running the query raw.
func rawDuckDB(b *testing.B, path, query string) func() {
	b.Helper()
	db := rawDB(b, path)
	return func() {
		rows, err := db.Query(query)
		if err != nil {
			b.Fatal(err)
		}
		for rows.Next() {
		}
		if err := rows.Err(); err != nil {
			b.Fatal(err)
		}
		rows.Close()
	}
}

// BenchmarkDPAggregates runs each aggregate kind end to end (gate, plan, policy, ledger, worker
// process, bounding, noise, provenance) and, in the same process, the same SQL raw in DuckDB,
// and reports the ratio. Every iteration runs on a fresh grant: an identical query on one grant
// would be answered from its first release without computing.
func BenchmarkDPAggregates(b *testing.B) {
	// Explicit bounds (one group, five rows per person: the defaults before bounds were chosen
	// automatically), so the ratio measures the same work as before; count_sum_auto adds the
	// choose_bounds stage's histogram pass (automatic bounds), reported on its own.
	fixed := plan.Options{Epsilon: 1, MaxGroupsContributed: 1, MaxContributionsPerGroup: 5}
	kinds := []struct {
		name, query string
		opts        plan.Options
	}{
		{"count_sum", "SELECT district, COUNT(*) AS visits, SUM(cost) AS total_cost FROM medical_visits GROUP BY district", fixed},
		{"count_sum_auto", "SELECT district, COUNT(*) AS visits, SUM(cost) AS total_cost FROM medical_visits GROUP BY district", plan.Options{Epsilon: 1}},
		{"count_distinct", "SELECT district, COUNT(DISTINCT person_id) AS persons FROM medical_visits GROUP BY district", fixed},
		{"avg", "SELECT district, AVG(cost) AS mean_cost FROM medical_visits GROUP BY district", fixed},
		{"variance", "SELECT district, VAR_POP(cost) AS var_cost FROM medical_visits GROUP BY district", fixed},
		{"quantiles", "SELECT district, MEDIAN(cost) AS median_cost, QUANTILE_CONT(cost, 0.9) AS p90 FROM medical_visits GROUP BY district", fixed},
	}
	for _, rows := range []int{1_000_000, 10_000_000} {
		b.Run(fmt.Sprintf("rows=%dM", rows/1_000_000), func(b *testing.B) {
			spec := benchData(b, rows)
			spec.Budget.Epsilon = 1e6 // many jobs on one dataset; the dataset cap is not what is measured
			e, err := engine.Open(context.Background(), engine.Config{DataDir: b.TempDir(), WorkerDB: sandbox.DBLimits{MemoryLimit: "8GB", Threads: 2}})
			if err != nil {
				b.Fatal(err)
			}
			defer e.Close()
			start := time.Now()
			d, err := e.RegisterDataset(context.Background(), spec, openSource(b, spec.Source.Path))
			if err != nil {
				b.Fatal(err)
			}
			b.Logf("registered %d rows (%d units) in %v", d.Snapshot.Rows, d.Snapshot.Units, time.Since(start).Round(time.Millisecond))
			grants := 0
			run := func(query string, o plan.Options) {
				grants++
				g := fmt.Sprintf("bench-%d", grants)
				if err := e.OpenGrant(context.Background(), g, ledgerBudget(1e6)); err != nil {
					b.Fatal(err)
				}
				if _, err := submit(e, g, query, o); err != nil {
					b.Fatal(err)
				}
			}
			for _, k := range kinds {
				b.Run(k.name, func(b *testing.B) {
					raw := rawDuckDB(b, spec.Source.Path, k.query)
					raw() // warm
					const rawReps = 10
					t0 := time.Now()
					for range rawReps {
						raw()
					}
					rawPer := time.Since(t0) / rawReps
					run(k.query, k.opts) // warm
					b.ResetTimer()
					for range b.N {
						run(k.query, k.opts)
					}
					b.StopTimer()
					dpPer := b.Elapsed() / time.Duration(b.N)
					b.ReportMetric(float64(rawPer.Microseconds())/1000, "raw-ms")
					b.ReportMetric(float64(dpPer.Microseconds())/1000, "dp-ms")
					b.ReportMetric(float64(dpPer)/float64(rawPer), "x-raw")
				})
			}
		})
	}
}

// BenchmarkFailingRowTiming measures the timing channel that totality leaves (sandbox/total.go,
// docs/threat-model.md): an expression that fails only on rows matching a predicate no longer
// fails the job, but DuckDB's try() re-evaluates a failing vector row by row, so the job runs
// longer when some row matches. Each sub-benchmark runs the same job shape with a predicate
// matching no row, one row, or some forty rows of 1M; compare their dp-ms, and see the
// server's completion quantum for what an applicant can observe of the difference.
func BenchmarkFailingRowTiming(b *testing.B) {
	spec := benchData(b, 1_000_000)
	spec.Budget.Epsilon = 1e6
	raw := rawDB(b, spec.Source.Path)
	costWith := func(rows int) string {
		var c float64
		q := fmt.Sprintf("SELECT cost FROM medical_visits GROUP BY cost HAVING count(*) >= %d ORDER BY count(*), cost LIMIT 1", rows)
		if err := raw.QueryRow(q).Scan(&c); err != nil {
			b.Fatalf("no cost value occurs %d times: %v", rows, err)
		}
		return strconv.FormatFloat(c, 'f', -1, 64)
	}
	e, err := engine.Open(context.Background(), engine.Config{DataDir: b.TempDir(), WorkerDB: sandbox.DBLimits{MemoryLimit: "8GB", Threads: 2}})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	if _, err := e.RegisterDataset(context.Background(), spec, openSource(b, spec.Source.Path)); err != nil {
		b.Fatal(err)
	}
	grants := 0
	for _, c := range []struct{ name, pred string }{
		{"matches=0", "cost < 0"},
		{"matches=1", "cost = " + costWith(1)},
		{"matches=2", "cost = " + costWith(2)},
		{"matches=40+", "cost = " + costWith(40)},
	} {
		q := fmt.Sprintf("SELECT district, COUNT(*) FROM medical_visits WHERE CASE WHEN %s THEN 9223372036854775807 + year(visit_date) ELSE 0 END > 0 GROUP BY district", c.pred)
		b.Run(c.name, func(b *testing.B) {
			run := func() {
				grants++
				g := fmt.Sprintf("timing-%d", grants)
				if err := e.OpenGrant(context.Background(), g, ledgerBudget(1e6)); err != nil {
					b.Fatal(err)
				}
				if _, err := submit(e, g, q, plan.Options{Epsilon: 1}); err != nil {
					b.Fatal(err)
				}
			}
			run() // warm
			b.ResetTimer()
			for range b.N {
				run()
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "dp-ms")
		})
	}
}

// rawDB loads the Parquet into an in-memory DuckDB table named medical_visits in this process.
func rawDB(b *testing.B, path string) *sql.DB {
	b.Helper()
	conn, err := duckdb.NewConnector("?threads=2", nil)
	if err != nil {
		b.Fatal(err)
	}
	db := sql.OpenDB(conn)
	b.Cleanup(func() { db.Close() })
	if _, err := db.Exec(fmt.Sprintf("CREATE TABLE medical_visits AS SELECT * FROM read_parquet('%s')", path)); err != nil {
		b.Fatal(err)
	}
	return db
}

// BenchmarkSmallJob is the engine's share of a small query's latency over HTTP (cleanroom
// bench's http_query and http_repeat rows, without the server's store and completion quantum):
// a new DP query on the committed medical_visits (52,121 rows), and the same query repeated on
// its grant, answered from its release.
func BenchmarkSmallJob(b *testing.B) {
	e, _ := openVisitsEngine(b)
	grant(b, e, "small", 1e6)
	const q = "SELECT district, COUNT(*) AS visits FROM medical_visits GROUP BY district"
	n := 0
	b.Run("new", func(b *testing.B) {
		for range b.N {
			n++
			if _, err := submit(e, "small", q, plan.Options{Epsilon: 0.01 + float64(n)*1e-5}); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/job")
	})
	b.Run("repeat", func(b *testing.B) {
		for range b.N {
			if _, err := submit(e, "small", q, plan.Options{Epsilon: 0.05}); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/job")
	})
}

// BenchmarkJobAsTheLedgerFills times a small new DP job (the HTTP rows' query on the committed
// medical_visits) on an engine whose ledger already holds 0, 10,000 or 100,000 debited jobs
// on the same grant and dataset (engineAsTheLedgerFills), against the empty ledger in the same
// run (x-0): issue 19's "control plane as it fills", the engine's side (the server's store has
// BenchmarkJobAsTheStoreFills).
func BenchmarkJobAsTheLedgerFills(b *testing.B) {
	engineAsTheLedgerFills(b, func(e *engine.Engine, k int) error {
		_, err := submit(e, "g", fillQuery, plan.Options{Epsilon: 0.01 + float64(k)*1e-5})
		return err
	})
}

// BenchmarkExplainAsTheLedgerFills times explaining that query (a dry run that reads the
// grant's and the dataset's balances), as above.
func BenchmarkExplainAsTheLedgerFills(b *testing.B) {
	engineAsTheLedgerFills(b, func(e *engine.Engine, k int) error {
		_, err := e.Explain(context.Background(), engine.Job{Principal: applicant, Grant: "g", SQL: fillQuery, Options: plan.Options{Epsilon: 0.01 + float64(k)*1e-5}})
		return err
	})
}

// fillQuery is the fill benchmarks' small query, the HTTP rows' query.
const fillQuery = "SELECT district, COUNT(*) AS visits FROM medical_visits GROUP BY district"

// engineAsTheLedgerFills times op (given a counter, to vary the query) on an engine whose
// ledger holds 0, 10,000 and 100,000 debited jobs on grant g and the medical_visits dataset
// (written into the closed engine's database before the timer, then one job run, as a
// long-lived grant leaves them), and reports each against the empty ledger (x-0).
func engineAsTheLedgerFills(b *testing.B, op func(e *engine.Engine, k int) error) {
	ctx := context.Background()
	spec, err := catalog.LoadFile(filepath.Join("..", "testdata", "datasets", "medical_visits.yaml"))
	if err != nil {
		b.Fatal(err)
	}
	spec.Budget.Epsilon = 1e6
	var base time.Duration
	for _, n := range []int{0, 10_000, 100_000} {
		b.Run(fmt.Sprintf("jobs=%d", n), func(b *testing.B) {
			cfg := engine.Config{DataDir: b.TempDir(), PolicyDir: testPolicy(b), WorkerDB: sandbox.DBLimits{MemoryLimit: "2GB"}}
			e, err := engine.Open(ctx, cfg)
			if err != nil {
				b.Fatal(err)
			}
			register(b, e, spec)
			grant(b, e, "g", 1e6)
			if err := e.Close(); err != nil {
				b.Fatal(err)
			}
			db, err := sql.Open("sqlite", filepath.Join(cfg.DataDir, "control.db"))
			if err != nil {
				b.Fatal(err)
			}
			tx, err := db.BeginTx(ctx, nil)
			if err != nil {
				b.Fatal(err)
			}
			for i := range n {
				job := fmt.Sprintf("old-%d", i)
				if _, err := tx.ExecContext(ctx, `INSERT INTO ledger_jobs (job, state, epsilon_pico, delta_atto, created_at, updated_at)
					VALUES (?, 'debited', 1000000, 0, 'then', 'then')`, job); err != nil {
					b.Fatal(err)
				}
				for _, a := range []string{engine.DatasetAccount(spec.Name), engine.GrantAccount("g")} {
					if _, err := tx.ExecContext(ctx, `INSERT INTO ledger_entries (job, account) VALUES (?, ?)`, job, a); err != nil {
						b.Fatal(err)
					}
				}
			}
			if err := errors.Join(tx.Commit(), db.Close()); err != nil {
				b.Fatal(err)
			}
			if e, err = engine.Open(ctx, cfg); err != nil {
				b.Fatal(err)
			}
			defer e.Close()
			// Warm: the worker, and the ledger's first sum of the history (a job's reservation
			// keeps it, as the last job on a long-lived grant did).
			if _, err := submit(e, "g", fillQuery, plan.Options{Epsilon: 0.009}); err != nil {
				b.Fatal(err)
			}
			k := 0
			b.ResetTimer()
			for range b.N {
				k++
				if err := op(e, k); err != nil {
					b.Fatal(err)
				}
			}
			per := b.Elapsed() / time.Duration(b.N)
			if n == 0 {
				base = per
			}
			b.ReportMetric(float64(per.Microseconds())/1000, "ms/op")
			if base > 0 {
				b.ReportMetric(float64(per)/float64(base), "x-0")
			}
		})
	}
}
