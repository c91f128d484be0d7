package sandbox

import (
	"encoding/json"
	"os"
	"path/filepath"
	_ "unsafe" // go:linkname

	"github.com/c1b99f93/cleanroom/he/collective"
)

// collectiveAddNoise is he/collective's noise draw (its own tests' seam, SetNoiseForTest, is
// in its export_test.go and out of reach here). Only this test binary links to it: it is the
// test-only seam through which a worker started by a test draws no noise.
//
//go:linkname collectiveAddNoise github.com/c1b99f93/cleanroom/he/collective.addNoise
var collectiveAddNoise func(int64, collective.ShareNoise) (int64, error)

// noiseOffMarker, present in a test worker's directory, switches its noise off. The worker's
// environment carries nothing but its configuration, so the marker travels as a file.
const noiseOffMarker = "collective-noise-off-for-test"

// In a worker started from this test binary, a marker in its directory switches noise off.
func init() {
	if !IsWorkerInvocation(os.Args) {
		return
	}
	var cfg WorkerConfig
	if json.Unmarshal([]byte(os.Getenv(configEnv)), &cfg) != nil {
		return
	}
	if _, err := os.Stat(filepath.Join(cfg.Dir, noiseOffMarker)); err == nil {
		collectiveAddNoise = func(x int64, _ collective.ShareNoise) (int64, error) { return x, nil }
	}
}
