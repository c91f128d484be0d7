package engine

import (
	"encoding/json"
	"os"
	"path/filepath"
	_ "unsafe" // go:linkname

	"github.com/c1b99f93/cleanroom/he/collective"
	"github.com/c1b99f93/cleanroom/sandbox"
)

// collectiveAddNoise is he/collective's noise draw. Only this test binary links to it: in a
// worker started from it (sandbox.Start runs this binary as the worker), a marker file in the
// domain's directory switches the domain's noise off — the test-only seam for exact totals.
//
//go:linkname collectiveAddNoise github.com/c1b99f93/cleanroom/he/collective.addNoise
var collectiveAddNoise func(int64, collective.ShareNoise) (int64, error)

const noiseOffMarker = "collective-noise-off-for-test"

func init() {
	if !sandbox.IsWorkerInvocation(os.Args) {
		return
	}
	var cfg sandbox.WorkerConfig
	if json.Unmarshal([]byte(os.Getenv("CLEANROOM_SANDBOX_CONFIG")), &cfg) != nil {
		return
	}
	if _, err := os.Stat(filepath.Join(cfg.Dir, noiseOffMarker)); err == nil {
		collectiveAddNoise = func(x int64, _ collective.ShareNoise) (int64, error) { return x, nil }
	}
}
