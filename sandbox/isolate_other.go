//go:build !linux

package sandbox

import (
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"syscall"

	"github.com/c1b99f93/cleanroom/sandbox/wire"
)

// newNetNSAttr asks for nothing: outside Linux the worker gets no network namespace and is not
// killed with its parent. applyIsolation reports both.
func newNetNSAttr(bool) *syscall.SysProcAttr { return nil }

// applyIsolation outside Linux applies nothing and says so: no network namespace, no
// no_new_privs, core dumps possible, no address-space or CPU-time limit. The report never
// pretends — whatever the parent asked for, every protection is reported absent, each with a
// warning — so the engine and `cleanroom demo` show that isolation is unavailable here.
func applyIsolation(_ WorkerConfig, log *slog.Logger) wire.Isolation {
	iso := wire.Isolation{CoreDumps: true}
	warn := func(format string, args ...any) {
		msg := fmt.Sprintf(format, args...)
		iso.Warnings = append(iso.Warnings, msg)
		log.Warn("sandbox isolation unavailable", "detail", msg)
	}
	warn("sandbox isolation is not available on %s: the worker runs as an ordinary process", runtime.GOOS)
	warn("the worker shares the host network namespace; it can open network connections")
	warn("no_new_privs, the dumpable flag, core-dump, address-space and CPU-time limits are not set")
	warn("the worker is not killed when its parent dies")
	if ifaces, err := net.Interfaces(); err == nil {
		for _, i := range ifaces {
			iso.Interfaces = append(iso.Interfaces, i.Name)
		}
	}
	return iso
}
