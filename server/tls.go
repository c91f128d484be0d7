package server

import (
	"crypto/tls"
	"errors"
	"fmt"
)

// loadTLS reads the API's certificate and key (PEM). Neither given: plain HTTP (nil). One
// without the other is refused, as is a pair that does not load or match.
//
// TLS here covers the API: clients to server. The sandbox workers are the server's own child
// processes speaking over their stdin/stdout pipes and a socket pair, never over a network, so
// there is no server-to-worker connection to authenticate with mutual TLS.
func loadTLS(certFile, keyFile string) (*tls.Config, error) {
	switch {
	case certFile == "" && keyFile == "":
		return nil, nil
	case certFile == "" || keyFile == "":
		return nil, errors.New("server: a TLS certificate and its key are given together (--tls-cert and --tls-key)")
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("server: the TLS certificate or key does not load: %w", err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}
