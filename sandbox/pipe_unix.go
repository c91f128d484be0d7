//go:build unix

package sandbox

import (
	"os"
	"syscall"
)

// takeEnginePipe makes the pipe to the engine private: it moves it off fd 1 (which then
// points at stderr) so nothing a library prints can corrupt the protocol, and returns it.
func takeEnginePipe() (*os.File, error) {
	protoFD, err := syscall.Dup(1)
	if err != nil {
		return nil, err
	}
	if err := syscall.Dup2(2, 1); err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(protoFD), "engine-pipe"), nil
}
