package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/c1b99f93/cleanroom/server/tlstest"
)

// TestServeTLSWithTheCLITrustingAPrivateCA: `cleanroom serve --tls-cert --tls-key` answers
// HTTPS, and the client commands reach it with --ca (or CLEANROOM_CA) naming the private CA;
// without it they fail on the certificate.
func TestServeTLSWithTheCLITrustingAPrivateCA(t *testing.T) {
	dir := t.TempDir()
	tlstest.WritePKI(t, dir)
	principals := filepath.Join(dir, "principals.yaml")
	if err := os.WriteFile(principals, []byte("principals:\n  - {name: aud-1, role: auditor, org: audit-office, token: \"aud-1-token-0123456789\"}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		cmd := newRootCmd()
		cmd.SetOut(&bytes.Buffer{})
		cmd.SetErr(&bytes.Buffer{})
		cmd.SetArgs([]string{"serve", "--data-dir", filepath.Join(dir, "data"), "--principals", principals, "--listen", addr,
			"--tls-cert", filepath.Join(dir, "server.pem"), "--tls-key", filepath.Join(dir, "server.key")})
		done <- cmd.ExecuteContext(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	t.Setenv(envServer, "https://"+addr)
	t.Setenv(envToken, "aud-1-token-0123456789")
	ca := filepath.Join(dir, "ca.pem")
	var out string
	deadline := time.Now().Add(60 * time.Second)
	for {
		out, err = run(t, "dataset", "list", "--ca", ca, "-o", "json")
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("dataset list over TLS with --ca: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !strings.Contains(out, "datasets") {
		t.Fatalf("dataset list over TLS: %s", out)
	}
	t.Setenv(envCA, ca)
	if _, err := run(t, "dataset", "list"); err != nil {
		t.Fatalf("dataset list with %s: %v", envCA, err)
	}
	t.Setenv(envCA, "")
	if _, err := run(t, "dataset", "list"); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("dataset list without the CA: %v, want a certificate error", err)
	}
}

// TestServeRefusesACertificateWithoutItsKey: --tls-cert alone is refused before anything starts.
func TestServeRefusesACertificateWithoutItsKey(t *testing.T) {
	dir := t.TempDir()
	_, err := run(t, "serve", "--data-dir", dir, "--principals", filepath.Join(dir, "p.yaml"), "--tls-cert", filepath.Join(dir, "c.pem"))
	if err == nil || !strings.Contains(err.Error(), "--tls-key") {
		t.Fatalf("got %v, want a refusal naming --tls-key", err)
	}
}
