//go:build !linux

package sandbox

import (
	"errors"
	"os"
	"runtime"
)

// Outside Linux there is no source socket (it needs SOCK_SEQPACKET and SCM_RIGHTS, see
// source_linux.go): the worker starts and answers queries over snapshots it already holds, but
// registering a source fails with errNoSourceSocket rather than fall back to sending a path.

// sourceFD is -1: the worker has no source socket and refuses register requests.
const sourceFD = -1

// errNoSourceSocket is returned when a source would be sent to a worker outside Linux.
var errNoSourceSocket = errors.New("sandbox: registering a source needs the Linux source socket, not available on " + runtime.GOOS)

// newSourceSocket returns no socket: both ends are nil.
func newSourceSocket() (parent, child *os.File, err error) { return nil, nil, nil }

func sendSource(*os.File, uint64, *os.File) error { return errNoSourceSocket }

func receiveSource(int, uint64, string) (*os.File, error) { return nil, errNoSourceSocket }
