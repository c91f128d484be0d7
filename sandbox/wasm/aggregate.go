package wasm

import (
	"context"
	"math"
	"sync"
	"time"

	"github.com/c1b99f93/cleanroom/errcode"
	"github.com/c1b99f93/cleanroom/sandbox/wire"
)

func float64frombits(b uint64) float64 { return math.Float64frombits(b) }

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// Aggregate runs the module once per block (each an Arrow IPC stream of that block's rows)
// and returns the element-wise average over the blocks of their outputs clamped to
// out.Bounds, a failed block counting as out.Default. Changing one privacy unit changes one
// block, so element i of the average moves by at most (hi_i − lo_i)/len(blocks): that is the
// sensitivity the engine's noise is calibrated to.
//
// It fails only for a shape out.Validate refuses (checked before anything runs) or when ctx
// is canceled; no block's behaviour can make it fail, and nothing it returns says which
// blocks failed.
func (m *Module) Aggregate(ctx context.Context, blocks [][]byte, out wire.WasmOutput, deadline time.Duration) ([]float64, error) {
	runs, err := m.aggregate(ctx, blocks, out, deadline)
	if err != nil {
		return nil, err
	}
	return mean(runs, out), nil
}

// aggregate runs every block (at most Config.Parallel at once) and returns each run.
func (m *Module) aggregate(ctx context.Context, blocks [][]byte, out wire.WasmOutput, deadline time.Duration) ([]blockRun, error) {
	if err := out.Validate(); err != nil {
		return nil, errcode.Wrap(errcode.InvalidOptions, err, "the declared output is not valid: %s", err.Error())
	}
	if len(blocks) < 1 || deadline <= 0 {
		return nil, errcode.New(errcode.InvalidOptions, "a custom model needs at least one block and a positive deadline")
	}
	runs := make([]blockRun, len(blocks))
	sem := make(chan struct{}, m.r.cfg.Parallel)
	var wg sync.WaitGroup
	for i, b := range blocks {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			runs[i] = m.runBlock(ctx, b, out.Length, deadline)
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		// The job was canceled from outside (never by a block): nothing is returned.
		return nil, errcode.Wrap(errcode.Canceled, err, "the custom model job was canceled")
	}
	return runs, nil
}

// mean clamps each run's vector (or takes the default) and averages over the runs, summing
// in block order so the result does not depend on which block finished first.
func mean(runs []blockRun, out wire.WasmOutput) []float64 {
	sum := make([]float64, out.Length)
	for _, r := range runs {
		v := r.vec
		if v == nil {
			v = out.Default
		}
		for i, x := range v {
			sum[i] += min(max(x, out.Bounds[i][0]), out.Bounds[i][1])
		}
	}
	for i := range sum {
		sum[i] /= float64(len(runs))
	}
	return sum
}
