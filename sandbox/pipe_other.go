//go:build !unix

package sandbox

import (
	"errors"
	"os"
	"runtime"
)

// takeEnginePipe refuses: without moving the pipe off stdout, anything a library printed would
// corrupt the protocol, so the worker does not run here.
func takeEnginePipe() (*os.File, error) {
	return nil, errors.New("sandbox: the worker cannot make its pipe private on " + runtime.GOOS)
}
