package server

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/c1b99f93/cleanroom/errcode"
)

// Limits bound what one client can hold of the server: time to send a request, bytes of a
// body, connections, failed authentications and denied requests. A zero field takes its
// default (DefaultLimits); docs/reliability.md ("Hostile clients") says what each defends.
type Limits struct {
	// ReadHeaderTimeout bounds reading a request's headers.
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds reading a whole request, body included, from its first byte: a client
	// that sends half a body is cut off when it ends.
	ReadTimeout time.Duration
	// WriteTimeout bounds a request from the end of its headers to the end of its answer. It
	// must exceed the longest long-poll (maxWait, 60 s); jobs run asynchronously.
	WriteTimeout time.Duration
	// LongWriteTimeout replaces WriteTimeout for the routes that work synchronously on data of
	// unbounded size: dataset registration (a snapshot), audit verify, an audit job's proofs
	// and replay.
	LongWriteTimeout time.Duration
	// IdleTimeout closes a keep-alive connection that sends no next request.
	IdleTimeout time.Duration
	// MaxBodyBytes bounds a request body (request_too_large, 413); MaxJobBodyBytes replaces it
	// for a job submission (POST /v1/jobs), which may carry a verification's ciphertexts.
	MaxBodyBytes    int64
	MaxJobBodyBytes int64
	// MaxConns caps the connections served at once; MaxConnsPerAddr caps them per client IP
	// address. A connection over either cap is answered by the overflow pool.
	MaxConns        int
	MaxConnsPerAddr int
	// OverflowConns is the overflow pool's size: a connection over the caps gets one request,
	// read within OverflowTimeout, answered GET /healthz as usual and anything else 503
	// unavailable, then closed. When the pool is full its oldest connection is closed to make
	// room, so a flood of idle connections cannot keep /healthz from being answered.
	OverflowConns   int
	OverflowTimeout time.Duration
	// AuthFailuresFree is how many failed authentications one address may make before each
	// further one is followed by a backoff: AuthBackoff, doubling up to AuthBackoffMax, during
	// which every authenticated route answers that address 429 rate_limited with Retry-After.
	// The count is forgotten after AuthBackoffMax without a failure.
	AuthFailuresFree int
	AuthBackoff      time.Duration
	AuthBackoffMax   time.Duration
	// DeniedBurst and DeniedPerMinute are a token bucket per principal over requests the
	// policy denies. With the bucket empty, every request of that principal is answered 429
	// rate_limited (with Retry-After) until a token comes back.
	DeniedBurst     int
	DeniedPerMinute int
	// DeniedWindow is the window of the requests_denied summaries: at most one provenance
	// record per principal per window, written when the window ends and at shutdown.
	DeniedWindow time.Duration
	// MaxTrackedAddrs bounds the addresses whose authentication failures are remembered; over
	// it the oldest quiet entries are dropped first.
	MaxTrackedAddrs int
}

// DefaultLimits returns the limits a zero Limits field takes.
func DefaultLimits() Limits {
	return Limits{
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      2 * time.Minute,
		LongWriteTimeout:  30 * time.Minute,
		IdleTimeout:       2 * time.Minute,
		MaxBodyBytes:      maxBody,
		MaxJobBodyBytes:   maxJobBody,
		MaxConns:          1024,
		MaxConnsPerAddr:   64,
		OverflowConns:     16,
		OverflowTimeout:   2 * time.Second,
		AuthFailuresFree:  10,
		AuthBackoff:       time.Second,
		AuthBackoffMax:    5 * time.Minute,
		DeniedBurst:       120,
		DeniedPerMinute:   60,
		DeniedWindow:      time.Minute,
		MaxTrackedAddrs:   100000,
	}
}

// withDefaults fills zero fields from DefaultLimits and refuses negative ones.
func (l Limits) withDefaults() (Limits, error) {
	d := DefaultLimits()
	durs := []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"read header timeout", &l.ReadHeaderTimeout, d.ReadHeaderTimeout},
		{"read timeout", &l.ReadTimeout, d.ReadTimeout},
		{"write timeout", &l.WriteTimeout, d.WriteTimeout},
		{"long write timeout", &l.LongWriteTimeout, d.LongWriteTimeout},
		{"idle timeout", &l.IdleTimeout, d.IdleTimeout},
		{"overflow timeout", &l.OverflowTimeout, d.OverflowTimeout},
		{"auth backoff", &l.AuthBackoff, d.AuthBackoff},
		{"auth backoff max", &l.AuthBackoffMax, d.AuthBackoffMax},
		{"denied window", &l.DeniedWindow, d.DeniedWindow},
	}
	for _, f := range durs {
		if *f.v < 0 {
			return l, fmt.Errorf("server: the %s may not be negative", f.name)
		}
		if *f.v == 0 {
			*f.v = f.def
		}
	}
	ints := []struct {
		name string
		v    *int
		def  int
	}{
		{"connection cap", &l.MaxConns, d.MaxConns},
		{"per-address connection cap", &l.MaxConnsPerAddr, d.MaxConnsPerAddr},
		{"overflow pool", &l.OverflowConns, d.OverflowConns},
		{"free authentication failures", &l.AuthFailuresFree, d.AuthFailuresFree},
		{"denied burst", &l.DeniedBurst, d.DeniedBurst},
		{"denied per minute", &l.DeniedPerMinute, d.DeniedPerMinute},
		{"tracked addresses", &l.MaxTrackedAddrs, d.MaxTrackedAddrs},
	}
	for _, f := range ints {
		if *f.v < 0 {
			return l, fmt.Errorf("server: the %s may not be negative", f.name)
		}
		if *f.v == 0 {
			*f.v = f.def
		}
	}
	if l.MaxBodyBytes < 0 || l.MaxJobBodyBytes < 0 {
		return l, errors.New("server: the body limit may not be negative")
	}
	if l.MaxBodyBytes == 0 {
		l.MaxBodyBytes = d.MaxBodyBytes
	}
	if l.MaxJobBodyBytes == 0 {
		l.MaxJobBodyBytes = max(d.MaxJobBodyBytes, l.MaxBodyBytes)
	}
	if l.WriteTimeout <= maxWait {
		return l, fmt.Errorf("server: the write timeout (%s) must exceed the longest long-poll (%s)", l.WriteTimeout, maxWait)
	}
	if l.MaxConnsPerAddr > l.MaxConns {
		l.MaxConnsPerAddr = l.MaxConns
	}
	return l, nil
}

// guard is the first thing every request meets: a body announced larger than the limit is
// refused before any of it is read, every body is read through http.MaxBytesReader, and an
// answer written before the body was read to its end closes the connection instead of
// draining the rest (so a 401 to a half-sent body holds nothing).
func (s *Server) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		limit := s.limits.MaxBodyBytes
		if r.Method == http.MethodPost && (r.URL.Path == "/v1/jobs" || r.URL.Path == "/v1/wasm/modules") {
			limit = s.limits.MaxJobBodyBytes
		}
		if r.ContentLength > limit {
			w.Header().Set("Connection", "close")
			s.writeError(w, r, errcode.New(errcode.RequestTooLarge, "the request body may be at most %d bytes", limit))
			return
		}
		if r.Body == nil || r.Body == http.NoBody {
			next.ServeHTTP(w, r)
			return
		}
		tb := &trackedBody{ReadCloser: http.MaxBytesReader(w, r.Body, limit)}
		r.Body = tb
		next.ServeHTTP(&guardWriter{ResponseWriter: w, body: tb}, r)
	})
}

// trackedBody notes whether its reader reached the end.
type trackedBody struct {
	io.ReadCloser
	eof bool
}

func (b *trackedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if errors.Is(err, io.EOF) {
		b.eof = true
	}
	return n, err
}

// guardWriter asks for the connection to be closed when the answer starts before the body
// was read to its end.
type guardWriter struct {
	http.ResponseWriter
	body    *trackedBody
	started bool
}

func (g *guardWriter) WriteHeader(status int) {
	if !g.started {
		g.started = true
		if !g.body.eof {
			g.Header().Set("Connection", "close")
		}
	}
	g.ResponseWriter.WriteHeader(status)
}

func (g *guardWriter) Write(p []byte) (int, error) {
	if !g.started {
		g.WriteHeader(http.StatusOK)
	}
	return g.ResponseWriter.Write(p)
}

// Unwrap lets http.ResponseController reach the connection (write deadlines, flushing).
func (g *guardWriter) Unwrap() http.ResponseWriter { return g.ResponseWriter }

// bodyError turns a body read error into a public error: request_too_large for a body over
// the limit, else invalid_request with problem.
func bodyError(err error, problem string) error {
	if mbe := (*http.MaxBytesError)(nil); errors.As(err, &mbe) {
		return errcode.Wrap(errcode.RequestTooLarge, err, "the request body may be at most %d bytes", mbe.Limit)
	}
	return errcode.Wrap(errcode.InvalidRequest, err, "%s", problem)
}
