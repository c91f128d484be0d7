package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	_ "github.com/apache/beam/sdks/v2/go/pkg/beam/io/filesystem/local" // local paths for textio and parquetio
	"github.com/apache/beam/sdks/v2/go/pkg/beam/io/parquetio"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/io/textio"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"
	_ "github.com/apache/beam/sdks/v2/go/pkg/beam/runners/direct" // registers "direct"
	_ "github.com/apache/beam/sdks/v2/go/pkg/beam/runners/prism"  // registers "prism"
	"github.com/google/differential-privacy/privacy-on-beam/v3/pbeam"
)

func init() {
	register.Function2x2(formatCount)
	register.Function2x2(formatFloat)
	register.Function1x2(splitPartValue)
}

// release is one released partition, as the pipeline writes it.
type release struct {
	Partition string  `json:"p"`
	Value     float64 `json:"v"`
}

func formatCount(p string, v int64) (string, error) { return formatFloat(p, float64(v)) }

func formatFloat(p string, v float64) (string, error) {
	b, err := json.Marshal(release{p, v})
	return string(b), err
}

func splitPartValue(pv partValue) (string, float64) { return pv.Partition, pv.Value }

// result is one run of the pipeline.
type result struct {
	rows    int64
	seconds float64
	values  map[string]float64 // released value per partition
}

// runOnce builds and runs the pipeline once: read, DP aggregate, write the released partitions
// to a temporary file and read them back. The time covers all of it, pipeline construction
// included, as the user of Privacy on Beam would wait for it.
func runOnce(ctx context.Context, c config, in input) (result, error) {
	dir, err := os.MkdirTemp("", "beam-bench-")
	if err != nil {
		return result{}, err
	}
	defer os.RemoveAll(dir)
	outPath := filepath.Join(dir, "released.jsonl")

	start := time.Now()
	p, err := buildPipeline(c, in, outPath)
	if err != nil {
		return result{}, err
	}
	pr, err := beam.Run(ctx, c.runner, p)
	if err != nil {
		return result{}, fmt.Errorf("pipeline: %w", err)
	}
	values, err := readReleased(outPath)
	if err != nil {
		return result{}, err
	}
	res := result{seconds: time.Since(start).Seconds(), values: values}
	if pr != nil {
		for _, cr := range pr.Metrics().AllMetrics().Counters() {
			if cr.Namespace() == "beam-bench" && cr.Name() == "rows" {
				res.rows += cr.Result()
			}
		}
	}
	return res, nil
}

// buildPipeline is the Privacy on Beam program a user would write for the workload, with the
// same bounds as the DP SQL job: MaxPartitionsContributed is L0, and
//   - count: at most maxContributions rows of a unit per partition (CountParams.MaxValue);
//   - sum: Privacy on Beam clamps a unit's per-partition total, so its bounds are the unit's
//     range maxContributions·[min, max] widened to include 0, the sensitivity cleanroom's sum uses;
//   - mean: at most maxContributions rows per unit and partition, each clamped to [min, max].
//
// Noise is Laplace for delta 0 and Gaussian otherwise, as in cleanroom.
func buildPipeline(c config, in input, outPath string) (p *beam.Pipeline, err error) {
	// Beam reports construction errors by panicking; turn them into an error.
	defer func() {
		if r := recover(); r != nil {
			p, err = nil, fmt.Errorf("pipeline construction: %v", r)
		}
	}()
	spec, err := pbeam.NewPrivacySpec(pbeam.PrivacySpecParams{AggregationEpsilon: c.epsilon, AggregationDelta: c.delta})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errUsage, err)
	}
	var noise pbeam.NoiseKind = pbeam.LaplaceNoise{}
	if c.delta > 0 {
		noise = pbeam.GaussianNoise{}
	}
	p, s := beam.NewPipelineWithRoot()
	count := c.workload == workloadCount
	var rows beam.PCollection // KV<unit, partition> for count, KV<unit, partValue> otherwise
	switch {
	case c.reader == readerCSV && count:
		rows = beam.ParDo(s, &csvCountFn{csvFields{in.header, in.unitCol, in.partCol, -1}}, textio.Read(s, c.csvPath))
	case c.reader == readerCSV:
		rows = beam.ParDo(s, &csvValueFn{csvFields{in.header, in.unitCol, in.partCol, in.vCol}}, textio.Read(s, c.csvPath))
	case count:
		rows = beam.ParDo(s, &parquetCountFn{}, parquetio.Read(s, c.parquetPath, in.rowType))
	default:
		rows = beam.ParDo(s, &parquetValueFn{}, parquetio.Read(s, c.parquetPath, in.rowType))
	}
	private := pbeam.MakePrivate(s, rows, spec)

	var lines beam.PCollection
	switch c.workload {
	case workloadCount:
		out := pbeam.Count(s, private, pbeam.CountParams{
			NoiseKind:                noise,
			MaxPartitionsContributed: c.maxPartitions,
			MaxValue:                 c.maxContributions,
			PublicPartitions:         c.partitions,
		})
		lines = beam.ParDo(s, formatCount, out)
	case workloadSum:
		n := float64(c.maxContributions)
		out := pbeam.SumPerKey(s, pbeam.ParDo(s, splitPartValue, private), pbeam.SumParams{
			NoiseKind:                noise,
			MaxPartitionsContributed: c.maxPartitions,
			MinValue:                 min(0, n*c.lower),
			MaxValue:                 max(0, n*c.upper),
			PublicPartitions:         c.partitions,
		})
		lines = beam.ParDo(s, formatFloat, out)
	case workloadMean:
		out := pbeam.MeanPerKey(s, pbeam.ParDo(s, splitPartValue, private), pbeam.MeanParams{
			NoiseKind:                    noise,
			MaxPartitionsContributed:     c.maxPartitions,
			MaxContributionsPerPartition: c.maxContributions,
			MinValue:                     c.lower,
			MaxValue:                     c.upper,
			PublicPartitions:             c.partitions,
		})
		lines = beam.ParDo(s, formatFloat, out)
	}
	textio.Write(s, outPath, lines)
	return p, nil
}

// readReleased reads the pipeline's output file back.
func readReleased(path string) (map[string]float64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("pipeline output: %w", err)
	}
	defer f.Close()
	values := map[string]float64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r release
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return nil, fmt.Errorf("pipeline output: %w", err)
		}
		if _, dup := values[r.Partition]; dup {
			return nil, fmt.Errorf("pipeline output: a partition is released twice")
		}
		values[r.Partition] = r.Value
	}
	return values, sc.Err()
}
