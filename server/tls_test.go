package server_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/c1b99f93/cleanroom/server"
	"github.com/c1b99f93/cleanroom/server/client"
	"github.com/c1b99f93/cleanroom/server/tlstest"
)

// TestTLSHandshakeThroughTheClient: serve --tls-cert/--tls-key answers HTTPS; the Go client
// trusting the private CA (WithCA) completes a real handshake and authenticates; without the
// CA the handshake is refused, and plain HTTP to the port gets no API answer.
func TestTLSHandshakeThroughTheClient(t *testing.T) {
	caFile, certFile, keyFile := tlstest.WritePKI(t, t.TempDir())
	p := startLimited(t, func(c *server.Config) { c.TLSCertFile, c.TLSKeyFile = certFile, keyFile })
	url := "https://" + p.addr()
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	c, err := client.New(url, token("insurer-1"), client.WithCA(caPEM))
	if err != nil {
		t.Fatal(err)
	}
	who, err := c.WhoAmI(ctx)
	if err != nil {
		t.Fatalf("whoami over TLS: %v", err)
	}
	if who.Name != "insurer-1" {
		t.Fatalf("whoami over TLS: %+v", who)
	}
	if h, err := c.Health(ctx); err != nil || h.Status != "ok" {
		t.Fatalf("healthz over TLS: %+v, %v", h, err)
	}

	plain, err := client.New(url, token("insurer-1"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = plain.WhoAmI(ctx)
	var unknown x509.UnknownAuthorityError
	if !errors.As(err, &unknown) {
		t.Fatalf("a client without the CA: %v, want an unknown-authority error", err)
	}
	resp, err := http.Get("http://" + p.addr() + "/healthz")
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Fatal("plain HTTP to the TLS port was answered 200")
		}
	}
	if _, err := client.New(url, "t", client.WithCA([]byte("not a certificate"))); err == nil {
		t.Fatal("WithCA accepted a file with no certificate")
	}
}

// TestServerRefusesHalfATLSPair: a certificate without its key (or the reverse) is refused
// at start.
func TestServerRefusesHalfATLSPair(t *testing.T) {
	_, certFile, _ := tlstest.WritePKI(t, t.TempDir())
	ps, err := server.ParsePrincipals([]byte(principalsYAML))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := server.New(context.Background(), server.Config{DataDir: t.TempDir(), Principals: ps, TLSCertFile: certFile}); err == nil {
		t.Fatal("a certificate without a key was accepted")
	}
}

// syncBuffer is a log sink safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestTokensNeverInLogs: a server logging at debug level, over TLS, gets authenticated,
// denied, rate-limited, unauthenticated and malformed requests; neither its log nor any file
// of its data directory (provenance log, control store) holds a token, valid or not.
func TestTokensNeverInLogs(t *testing.T) {
	caFile, certFile, keyFile := tlstest.WritePKI(t, t.TempDir())
	logs := &syncBuffer{}
	p := startLimited(t, func(c *server.Config) {
		c.TLSCertFile, c.TLSKeyFile = certFile, keyFile
		c.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		c.Stderr = logs
		c.Limits.DeniedBurst = 3
		c.Limits.AuthFailuresFree = 2
		c.Limits.AuthBackoffMax = time.Hour
	})
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	url := "https://" + p.addr()
	ctx := context.Background()
	wrong := "wrong-token-ZZZZ-0123456789"
	for _, tok := range []string{token("insurer-1"), token("aud-1")} {
		c, err := client.New(url, tok, client.WithCA(caPEM))
		if err != nil {
			t.Fatal(err)
		}
		_, _ = c.WhoAmI(ctx)
		for range 5 { // insurer-1: denied, then rate-limited
			_, _ = c.VerifyAudit(ctx)
		}
		_, _ = c.Job(ctx, "job-does-not-exist", 0)
	}
	bad, err := client.New(url, wrong, client.WithCA(caPEM))
	if err != nil {
		t.Fatal(err)
	}
	for range 4 { // unauthenticated, then backed off
		_, _ = bad.WhoAmI(ctx)
	}
	// A plain-HTTP request carrying a token to the TLS port (the server logs the failed
	// handshake).
	req, _ := http.NewRequest("GET", "http://"+p.addr()+"/v1/whoami", nil)
	req.Header.Set("Authorization", "Bearer "+token("rev-1"))
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
	}
	p.stop()

	secrets := []string{wrong}
	for _, name := range []string{"insurer-1", "aud-1", "rev-1"} {
		secrets = append(secrets, token(name))
	}
	out := logs.String()
	if !strings.Contains(out, "level=") {
		t.Fatal("the server logged nothing: the scan would prove nothing")
	}
	for _, s := range secrets {
		if strings.Contains(out, s) {
			t.Errorf("the server log holds a token")
		}
	}
	scanned := 0
	err = filepath.WalkDir(p.dataDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		scanned++
		for _, s := range secrets {
			if bytes.Contains(b, []byte(s)) {
				t.Errorf("%s holds a token", strings.TrimPrefix(path, p.dataDir))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, sums := deniedRecords(t, p.dataDir); len(sums) == 0 || scanned == 0 {
		t.Fatalf("the provenance log holds no denial summary (%d files scanned): the scan would prove nothing", scanned)
	}
}
