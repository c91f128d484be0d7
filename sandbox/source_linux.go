//go:build linux

package sandbox

import (
	"encoding/binary"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// A provider's source crosses to the worker as an open file descriptor, never as a path: the
// server opens it under the provider's import root (without following symbolic links) and
// sends the descriptor with SCM_RIGHTS over a SOCK_SEQPACKET socket pair whose worker end is
// the worker's file descriptor sourceFD. Each message carries the register request's id (8
// bytes, big-endian) and exactly one descriptor. The client sends the message before the
// request frame and under the same lock, so messages queue in the order of register requests,
// and the worker takes one (checking the id) when it reads a register request. The worker
// therefore never resolves a provider's path: nothing between the server's check and the
// worker's read can redirect it.

// sourceFD is the worker's end of the source socket (the first of exec.Cmd.ExtraFiles).
const sourceFD = 3

// newSourceSocket returns the client's and the worker's ends of a fresh source socket.
func newSourceSocket() (parent, child *os.File, err error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("sandbox: source socket: %w", err)
	}
	return os.NewFile(uintptr(fds[0]), "source-socket"), os.NewFile(uintptr(fds[1]), "source-socket-worker"), nil
}

// sendSource sends src's descriptor for request id. The caller keeps src (the kernel
// duplicates the descriptor into the message) and closes it when it likes.
func sendSource(sock *os.File, id uint64, src *os.File) error {
	var msg [8]byte
	binary.BigEndian.PutUint64(msg[:], id)
	raw, err := src.SyscallConn()
	if err != nil {
		return err
	}
	sc, err := sock.SyscallConn()
	if err != nil {
		return err
	}
	var sendErr error
	err = raw.Control(func(fd uintptr) {
		rights := unix.UnixRights(int(fd))
		if cerr := sc.Control(func(s uintptr) {
			sendErr = unix.Sendmsg(int(s), msg[:], rights, nil, unix.MSG_NOSIGNAL)
		}); cerr != nil {
			sendErr = cerr
		}
	})
	if err != nil {
		return err
	}
	return sendErr
}

// receiveSource takes the next descriptor from the source socket and checks that it was sent
// for request id. Any mismatch is a broken protocol: the worker must stop rather than read
// another request's file.
func receiveSource(sock int, id uint64, name string) (*os.File, error) {
	var msg [8]byte
	oob := make([]byte, unix.CmsgSpace(4*4)) // room to notice (and close) surplus descriptors
	n, oobn, flags, _, err := unix.Recvmsg(sock, msg[:], oob, unix.MSG_CMSG_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("sandbox: receive source: %w", err)
	}
	var fds []int
	if oobn > 0 {
		cmsgs, err := unix.ParseSocketControlMessage(oob[:oobn])
		if err != nil {
			return nil, fmt.Errorf("sandbox: receive source: %w", err)
		}
		for _, c := range cmsgs {
			got, err := unix.ParseUnixRights(&c)
			if err != nil {
				continue
			}
			fds = append(fds, got...)
		}
	}
	if n != len(msg) || len(fds) != 1 || flags&(unix.MSG_TRUNC|unix.MSG_CTRUNC) != 0 || binary.BigEndian.Uint64(msg[:]) != id {
		for _, fd := range fds {
			unix.Close(fd)
		}
		return nil, fmt.Errorf("sandbox: source socket out of step (request %d: %d bytes, %d descriptors)", id, n, len(fds))
	}
	return os.NewFile(uintptr(fds[0]), name), nil
}
