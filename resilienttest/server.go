package resilienttest

import (
	"bufio"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Server is an HTTP/1.1 server on 127.0.0.1 that runs a script of faults
// for every request and records what it received. It is safe for
// concurrent use.
type Server struct {
	// URL is the server's base URL, "http://127.0.0.1:port" (https for a
	// TLS server).
	URL string

	srv     *httptest.Server
	faults  []Fault
	rec     recorder
	conns   atomic.Int64
	closing chan struct{}
	once    sync.Once
	wg      sync.WaitGroup // handlers, including those past a hijack
}

// NewServer starts a Server running faults in order and closes it when the
// test ends. With no faults every request gets 200 "OK". It panics if a
// fault can never run (see Fault).
func NewServer(t testing.TB, faults ...Fault) *Server {
	t.Helper()
	s := start("NewServer", false, faults)
	t.Cleanup(s.Close)
	return s
}

// NewTLSServer is NewServer over HTTPS, with a certificate for 127.0.0.1
// that only the server's Client trusts: any other client fails the
// handshake with a certificate error, which is how to test one.
func NewTLSServer(t testing.TB, faults ...Fault) *Server {
	t.Helper()
	s := start("NewTLSServer", true, faults)
	t.Cleanup(s.Close)
	return s
}

// StartServer is NewServer for code without a testing.TB, such as examples
// and demo programs: the caller must call Close.
func StartServer(faults ...Fault) *Server { return start("StartServer", false, faults) }

// StartTLSServer is NewTLSServer for code without a testing.TB: the caller
// must call Close.
func StartTLSServer(faults ...Fault) *Server { return start("StartTLSServer", true, faults) }

func start(fn string, tls bool, faults []Fault) *Server {
	faults = append([]Fault(nil), faults...)
	checkScript(fn, faults)
	s := &Server{faults: faults, closing: make(chan struct{})}
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(s.serveHTTP))
	s.srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			s.conns.Add(1)
		}
	}
	if tls {
		// A handshake a client refuses is the point of a TLS fake, not
		// news: keep net/http from logging each one.
		s.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
		s.srv.StartTLS()
	} else {
		s.srv.Start()
	}
	s.URL = s.srv.URL
	return s
}

// Client returns an http.Client for the server whose idle connections are
// closed with the server; for a TLS server it trusts the certificate.
func (s *Server) Client() *http.Client { return s.srv.Client() }

// Close releases every held request, shuts the server down and waits for
// its handlers to return. It may be called more than once.
func (s *Server) Close() {
	s.once.Do(func() {
		close(s.closing)
		s.srv.Close()
		s.wg.Wait()
	})
}

// Requests returns a copy of the requests received so far, in order of
// arrival (at most MaxRecorded).
func (s *Server) Requests() []Request { return s.rec.requests() }

// Count reports how many requests the server has received.
func (s *Server) Count() int { return s.rec.count() }

// InFlight reports how many requests the server is handling now: received
// and not yet answered in full, counting those a fault holds (Hang,
// Latency, Drip, Stall).
func (s *Server) InFlight() int { return s.rec.inFlightNow() }

// PeakInFlight reports the most requests the server has handled at once,
// as InFlight counts them: what a test of a concurrency limit checks.
func (s *Server) PeakInFlight() int { return s.rec.peakInFlight() }

// Conns reports how many TCP connections the server has accepted (since
// ResetCounts).
func (s *Server) Conns() int { return int(s.conns.Load()) }

// ResetCounts starts a new phase of a test: the server forgets the
// requests it received, numbers the next one 1 (so FailFirst, OnRequests,
// After, Every and FailFraction apply again as to a fresh server), and
// counts Conns and PeakInFlight from now. Requests in flight keep their
// numbers and still count in InFlight; a Hang's counts and open
// connections are untouched.
func (s *Server) ResetCounts() {
	s.rec.reset()
	s.conns.Store(0)
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	s.wg.Add(1)
	defer s.wg.Done()
	c := s.rec.start(r, false, r.Context().Done(), s.closing)
	// The request stops counting in flight as its last bytes go out, so a
	// client holding its whole response never sees it counted.
	delivered := sync.OnceFunc(s.rec.end)
	defer delivered()
	runScript(c, s.faults)
	if c.abandoned {
		// Drop the connection without a response; net/http stays quiet.
		panic(http.ErrAbortHandler)
	}
	c.finish()
	if c.reset || (c.cut >= 0 && !c.stall) {
		s.cutConn(w, c, delivered)
		return
	}

	body, length := c.sent()
	h := w.Header()
	for k, v := range c.header {
		h[k] = v
	}
	if bodyAllowed(r.Method, c.status) {
		h.Set("Content-Length", strconv.Itoa(length))
	}
	w.WriteHeader(c.status)
	f, _ := w.(http.Flusher)
	flush := func() {
		if f != nil {
			f.Flush()
		}
	}
	if c.dripN == 0 {
		if !c.stall {
			delivered()
		}
		_, _ = w.Write(body)
	} else {
		flush()
		for len(body) > 0 {
			if !c.sleep(c.dripEvery) {
				panic(http.ErrAbortHandler)
			}
			n := min(c.dripN, len(body))
			if n == len(body) && !c.stall {
				delivered()
			}
			if _, err := w.Write(body[:n]); err != nil {
				return
			}
			flush()
			body = body[n:]
		}
	}
	if c.stall {
		flush()
		c.wait(nil, nil)
		// The body is short of its Content-Length: drop the connection.
		panic(http.ErrAbortHandler)
	}
}

// writeTimeout bounds every raw write, so a client that stops reading
// cannot hold a handler past it.
const writeTimeout = 30 * time.Second

// cutConn takes the connection over and ends it the way c asks: a reset
// before any byte, or a header and part of the body followed by a reset or
// a clean close. It calls delivered just before the close.
func (s *Server) cutConn(w http.ResponseWriter, c *call, delivered func()) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic(http.ErrAbortHandler)
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	defer func() {
		if c.reset || c.rst {
			// SO_LINGER 0 turns close into a TCP RST.
			if l, ok := conn.(interface{ SetLinger(int) error }); ok {
				_ = l.SetLinger(0)
			}
		}
		delivered()
		_ = conn.Close()
	}()
	if c.reset {
		return
	}
	_ = conn.SetWriteDeadline(time.Now().Add(writeTimeout))

	body, length := c.sent()
	bw := bufio.NewWriter(conn)
	_, _ = bw.WriteString("HTTP/1.1 " + strconv.Itoa(c.status) + " " + http.StatusText(c.status) + "\r\n")
	c.header.Set("Content-Length", strconv.Itoa(length))
	_ = c.header.Write(bw)
	_, _ = bw.WriteString("\r\n")
	if c.dripN == 0 {
		_, _ = bw.Write(body)
		_ = bw.Flush()
		return
	}
	if bw.Flush() != nil {
		return
	}
	for len(body) > 0 {
		if !c.sleep(c.dripEvery) {
			return
		}
		n := min(c.dripN, len(body))
		if _, err := conn.Write(body[:n]); err != nil {
			return
		}
		body = body[n:]
	}
}
