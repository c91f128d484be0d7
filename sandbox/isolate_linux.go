//go:build linux

package sandbox

import (
	"fmt"
	"log/slog"
	"net"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/c1b99f93/cleanroom/sandbox/wire"
)

// newNetNSAttr asks the kernel to start the worker in a fresh network namespace (only a down
// loopback), and to kill it if the parent dies.
func newNetNSAttr(netns bool) *syscall.SysProcAttr {
	a := &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if netns {
		a.Cloneflags = syscall.CLONE_NEWNET
	}
	return a
}

// applyIsolation is the worker's first act: it forbids gaining privileges, core dumps (they
// would hold raw rows) and ptrace by others of its uid, and caps address space and CPU time.
// Each step that fails becomes a warning in the report instead of a silent gap.
func applyIsolation(cfg WorkerConfig, log *slog.Logger) wire.Isolation {
	iso := wire.Isolation{}
	warn := func(format string, args ...any) {
		msg := fmt.Sprintf(format, args...)
		iso.Warnings = append(iso.Warnings, msg)
		log.Warn("sandbox isolation incomplete", "detail", msg)
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		warn("no_new_privs could not be set: %v", err)
	} else {
		iso.NoNewPrivs = true
	}
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		warn("dumpable flag could not be cleared: %v", err)
	}
	if err := unix.Setrlimit(unix.RLIMIT_CORE, &unix.Rlimit{}); err != nil {
		warn("core dumps could not be disabled: %v", err)
		iso.CoreDumps = true
	}
	as := cfg.AddressSpace
	if as == 0 {
		as = 32 << 30
	}
	if err := unix.Setrlimit(unix.RLIMIT_AS, &unix.Rlimit{Cur: as, Max: as}); err != nil {
		warn("address-space limit could not be set: %v", err)
	} else {
		iso.AddressSpace = as
	}
	cpu := cfg.CPUSeconds
	if cpu == 0 {
		cpu = 24 * 3600
	}
	if err := unix.Setrlimit(unix.RLIMIT_CPU, &unix.Rlimit{Cur: cpu, Max: cpu}); err != nil {
		warn("CPU-time limit could not be set: %v", err)
	} else {
		iso.CPUSeconds = cpu
	}
	ifaces, err := net.Interfaces()
	onlyLoopback := err == nil
	for _, i := range ifaces {
		iso.Interfaces = append(iso.Interfaces, i.Name)
		if i.Flags&net.FlagLoopback == 0 {
			onlyLoopback = false
		}
	}
	iso.NetworkNamespace = cfg.NetworkNamespace && onlyLoopback
	if !iso.NetworkNamespace {
		warn("the worker shares the host network namespace (creating one needs root or CAP_SYS_ADMIN); it can open network connections")
	}
	return iso
}
