//go:build escape

package main

import (
	"net"
	"os"
)

// compute tries to reach the host: read files, list and create them, dial a socket, read the
// environment and the arguments. Element 0 has bit i set when attempt i succeeded (the
// sandbox must make it 0); element 1 is 1, so a test can tell the module ran. (The working
// directory is not checked: WASI preview 1 has no call for it, the guest's is its own.)
func compute([]byte) []float64 {
	got, bit := 0.0, 1.0
	ok := func() { got += bit; bit *= 2 }
	no := func() { bit *= 2 }
	for _, p := range []string{"/etc/passwd", "/proc/self/environ", ".", "/"} {
		if f, err := os.Open(p); err == nil {
			f.Close()
			ok()
		} else {
			no()
		}
	}
	if _, err := os.ReadDir("/"); err == nil {
		ok()
	} else {
		no()
	}
	if f, err := os.Create("/tmp/cleanroom-escape"); err == nil {
		f.Close()
		ok()
	} else {
		no()
	}
	if c, err := net.Dial("tcp", "127.0.0.1:80"); err == nil {
		c.Close()
		ok()
	} else {
		no()
	}
	if len(os.Environ()) > 0 {
		ok()
	} else {
		no()
	}
	if _, found := os.LookupEnv("HOME"); found {
		ok()
	} else {
		no()
	}
	if len(os.Args) > 1 {
		ok()
	} else {
		no()
	}
	return []float64{got, 1}
}
