//go:build unix

package provenance

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// lockFile takes an exclusive, non-blocking flock on f. The kernel drops it when the descriptor
// is closed or the process dies, so a crashed writer never leaves the log locked.
func lockFile(f *os.File) error {
	err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return fmt.Errorf("provenance: %s: %w", f.Name(), ErrLocked)
	}
	if err != nil {
		return fmt.Errorf("provenance: lock %s: %w", f.Name(), err)
	}
	return nil
}
