package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writePKI writes a private CA and a server certificate it issued for 127.0.0.1 into dir:
// ca.pem, server.pem, server.key.
func writePKI(t *testing.T, dir string) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "cli test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string]*pem.Block{"ca.pem": {Type: "CERTIFICATE", Bytes: caDER},
		"server.pem": {Type: "CERTIFICATE", Bytes: der}, "server.key": {Type: "EC PRIVATE KEY", Bytes: keyDER}} {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(b), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// TestServeTLSWithTheCLITrustingAPrivateCA: `cleanroom serve --tls-cert --tls-key` answers
// HTTPS, and the client commands reach it with --ca (or CLEANROOM_CA) naming the private CA;
// without it they fail on the certificate.
func TestServeTLSWithTheCLITrustingAPrivateCA(t *testing.T) {
	dir := t.TempDir()
	writePKI(t, dir)
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
