package server

import (
	"log"
	"log/slog"
	"net"
	"net/http"
	"sync"

	"github.com/c1b99f93/cleanroom/errcode"
)

// connLimiter caps the connections the API serves, in total and per client IP address. A
// connection over a cap is not refused silently: it goes to the overflow pool, whose own small
// server reads one request under a short deadline and answers GET /healthz as usual and
// anything else 503 unavailable, then closes it. The pool is bounded and, when full, closes its
// oldest connection for the newcomer, so idle connections cannot fill it for long: a health
// check, which sends its request at once, is answered whatever a flood holds.
type connLimiter struct {
	net.Listener
	maxTotal, maxPerAddr int
	overflow             *overflowPool

	mu      sync.Mutex
	total   int
	perAddr map[string]int
}

func newConnLimiter(ln net.Listener, maxTotal, maxPerAddr, overflow int) *connLimiter {
	return &connLimiter{Listener: ln, maxTotal: maxTotal, maxPerAddr: maxPerAddr,
		overflow: newOverflowPool(ln.Addr(), overflow), perAddr: map[string]int{}}
}

// Accept returns the next connection within the caps; those over a cap go to the overflow pool.
func (l *connLimiter) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		addr := hostOf(c.RemoteAddr().String())
		if l.take(addr) {
			return &limitedConn{Conn: c, release: func() { l.give(addr) }}, nil
		}
		l.overflow.add(c)
	}
}

// Close closes the listener and the overflow pool.
func (l *connLimiter) Close() error {
	err := l.Listener.Close()
	l.overflow.Close()
	return err
}

func (l *connLimiter) take(addr string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.total >= l.maxTotal || l.perAddr[addr] >= l.maxPerAddr {
		return false
	}
	l.total++
	l.perAddr[addr]++
	return true
}

func (l *connLimiter) give(addr string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.total--
	if l.perAddr[addr]--; l.perAddr[addr] <= 0 {
		delete(l.perAddr, addr)
	}
}

// hostOf is the IP address of a remote address (the whole string when it has no port).
func hostOf(addr string) string {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	return host
}

// limitedConn gives its place back once, when closed.
type limitedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// overflowPool is a net.Listener of the connections over the caps, for the overflow server.
// It holds at most max connections, accepted by that server or still waiting to be; a
// newcomer always gets in, and the oldest gives way.
type overflowPool struct {
	addr   net.Addr
	max    int
	ready  chan struct{} // a connection may be waiting to be accepted
	done   chan struct{}
	closed sync.Once

	mu   sync.Mutex
	live []*overflowConn // oldest first
}

func newOverflowPool(addr net.Addr, max int) *overflowPool {
	return &overflowPool{addr: addr, max: max, ready: make(chan struct{}, 1), done: make(chan struct{})}
}

// add takes c into the pool, closing the pool's oldest connection when it is full. It never
// blocks.
func (p *overflowPool) add(c net.Conn) {
	oc := &overflowConn{Conn: c, pool: p}
	p.mu.Lock()
	var evict *overflowConn
	if len(p.live) >= p.max {
		evict, p.live = p.live[0], p.live[1:]
	}
	p.live = append(p.live, oc)
	p.mu.Unlock()
	if evict != nil {
		evict.Close()
	}
	p.signal()
}

func (p *overflowPool) signal() {
	select {
	case p.ready <- struct{}{}:
	default:
	}
}

func (p *overflowPool) remove(oc *overflowConn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, c := range p.live {
		if c == oc {
			p.live = append(p.live[:i], p.live[i+1:]...)
			return
		}
	}
}

// Accept returns the oldest connection of the pool not yet accepted.
func (p *overflowPool) Accept() (net.Conn, error) {
	for {
		p.mu.Lock()
		var next *overflowConn
		waiting := 0
		for _, c := range p.live {
			if !c.accepted {
				if next == nil {
					next = c
				}
				waiting++
			}
		}
		if next != nil {
			next.accepted = true
		}
		p.mu.Unlock()
		if next != nil {
			if waiting > 1 {
				p.signal()
			}
			return next, nil
		}
		select {
		case <-p.ready:
		case <-p.done:
			return nil, net.ErrClosed
		}
	}
}

// Close stops the pool and closes what it holds.
func (p *overflowPool) Close() error {
	p.closed.Do(func() { close(p.done) })
	p.mu.Lock()
	live := p.live
	p.live = nil
	p.mu.Unlock()
	for _, c := range live {
		c.Conn.Close()
	}
	return nil
}

func (p *overflowPool) Addr() net.Addr { return p.addr }

type overflowConn struct {
	net.Conn
	pool     *overflowPool
	once     sync.Once
	accepted bool // guarded by pool.mu
}

func (c *overflowConn) Close() error {
	c.once.Do(func() { c.pool.remove(c) })
	return c.Conn.Close()
}

// overflowServer answers the connections over the caps: /healthz as usual, everything else
// 503 unavailable with a retry hint; one request per connection, under short deadlines.
func (s *Server) overflowServer() *http.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", s.health)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "1")
		w.Header().Set("Connection", "close")
		s.writeError(w, r, errcode.New(errcode.Unavailable, "the server is at its connection limit for this address or in total; retry shortly"))
	})
	t := s.limits.OverflowTimeout
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: t, ReadTimeout: t, WriteTimeout: t, IdleTimeout: t,
		MaxHeaderBytes: 8 << 10, ErrorLog: s.quietLog()}
	hs.SetKeepAlivesEnabled(false)
	return hs
}

// quietLog is the overflow server's error log: what a flood provokes (handshakes cut off,
// connections closed for newcomers) is expected there and logged at debug level only.
func (s *Server) quietLog() *log.Logger { return slog.NewLogLogger(s.log.Handler(), slog.LevelDebug) }
