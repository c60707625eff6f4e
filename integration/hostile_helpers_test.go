package integration

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// hostileWriteTimeout bounds every write of a hostile server, so a client
// that stops reading without closing cannot hold it.
const hostileWriteTimeout = 5 * time.Second

// countedConn counts the bytes read from and written to a connection:
// what actually crossed the wire, whatever was buffered above it.
type countedConn struct {
	net.Conn
	read, written *atomic.Int64
}

func (c countedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.read.Add(int64(n))
	return n, err
}

func (c countedConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.written.Add(int64(n))
	return n, err
}

// hostileCountingListener counts the connections it accepts and the bytes
// written to them.
type hostileCountingListener struct {
	net.Listener
	written *atomic.Int64
	conns   *atomic.Int64
}

func (l hostileCountingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.conns.Add(1)
	return countedConn{c, new(atomic.Int64), l.written}, nil
}

// readCountingTransport is an http.Transport that counts the bytes the
// client reads from each connection it dials, in dial order: what the
// client took off the wire, whatever the server managed to send.
type readCountingTransport struct {
	*http.Transport
	mu    sync.Mutex
	reads []*atomic.Int64 // guarded by mu
}

func newReadCountingTransport() *readCountingTransport {
	t := &readCountingTransport{}
	var d net.Dialer
	t.Transport = &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		n := new(atomic.Int64)
		t.mu.Lock()
		t.reads = append(t.reads, n)
		t.mu.Unlock()
		return countedConn{c, n, new(atomic.Int64)}, nil
	}}
	return t
}

// perConn returns the bytes read from each connection so far.
func (t *readCountingTransport) perConn() []int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]int64, len(t.reads))
	for i, n := range t.reads {
		out[i] = n.Load()
	}
	return out
}

// hostileServer is an httptest server on 127.0.0.1 that counts what it
// writes and the handlers still running.
type hostileServer struct {
	URL     string
	written atomic.Int64
	conns   atomic.Int64
	active  sync.WaitGroup
	stop    chan struct{} // closed at cleanup: running handlers return
}

func newHostileServer(t *testing.T, h func(s *hostileServer, w http.ResponseWriter, r *http.Request)) *hostileServer {
	t.Helper()
	s := &hostileServer{stop: make(chan struct{})}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.active.Add(1)
		defer s.active.Done()
		h(s, w, r)
	}))
	srv.Listener = hostileCountingListener{srv.Listener, &s.written, &s.conns}
	srv.Start()
	s.URL = srv.URL
	t.Cleanup(func() {
		close(s.stop)
		srv.Close()
	})
	return s
}

// awaitHandlers waits up to limit for every handler to return and reports
// whether they did.
func (s *hostileServer) awaitHandlers(limit time.Duration) bool {
	done := make(chan struct{})
	go func() {
		s.active.Wait()
		close(done)
	}()
	select {
	case <-done:
		return true
	case <-time.After(limit):
		return false
	}
}

// stream writes n bytes of filler to w in 32 KiB pieces, stopping at the
// first failed write: the client went away.
func (s *hostileServer) stream(w http.ResponseWriter, r *http.Request, n int64) {
	piece := []byte(strings.Repeat("x", 32<<10))
	rc := http.NewResponseController(w)
	for sent := int64(0); sent < n; sent += int64(len(piece)) {
		select {
		case <-s.stop:
			return
		case <-r.Context().Done():
			return
		default:
		}
		_ = rc.SetWriteDeadline(time.Now().Add(hostileWriteTimeout))
		if _, err := w.Write(piece[:min(int64(len(piece)), n-sent)]); err != nil {
			return
		}
	}
}

// headerFlood is a raw TCP server on 127.0.0.1 that answers every
// connection with a status line and then header lines, never ending them:
// one every pace, or as fast as the client takes them when pace is zero.
type headerFlood struct {
	addr    string
	written atomic.Int64
	conns   atomic.Int64
}

func startHeaderFlood(t *testing.T, pace time.Duration) *headerFlood {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &headerFlood{addr: ln.Addr().String()}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var open []net.Conn
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			f.conns.Add(1)
			mu.Lock()
			open = append(open, c)
			mu.Unlock()
			wg.Go(func() { f.serve(c, pace, stop) })
		}
	})
	t.Cleanup(func() {
		close(stop)
		_ = ln.Close()
		mu.Lock()
		for _, c := range open {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return f
}

func (f *headerFlood) serve(c net.Conn, pace time.Duration, stop <-chan struct{}) {
	defer c.Close()
	line := []byte("X-Flood: " + strings.Repeat("a", 1000) + "\r\n")
	write := func(p []byte) bool {
		_ = c.SetWriteDeadline(time.Now().Add(hostileWriteTimeout))
		n, err := c.Write(p)
		f.written.Add(int64(n))
		return err == nil
	}
	// Answer only after the request head, or the client takes the bytes
	// for an unsolicited response on an idle connection.
	_ = c.SetReadDeadline(time.Now().Add(hostileWriteTimeout))
	r := bufio.NewReader(c)
	for {
		l, err := r.ReadString('\n')
		if err != nil {
			return
		}
		if l == "\r\n" {
			break
		}
	}
	if !write([]byte("HTTP/1.1 200 OK\r\n")) {
		return
	}
	var tick <-chan time.Time
	if pace > 0 {
		t := time.NewTicker(pace)
		defer t.Stop()
		tick = t.C
	}
	for {
		if tick != nil {
			select {
			case <-tick:
			case <-stop:
				return
			}
		} else {
			select {
			case <-stop:
				return
			default:
			}
		}
		if !write(line) {
			return
		}
	}
}

// heapWatch samples the heap in use every few milliseconds while a call
// runs, so a transient bloat shows up even if it is freed by the end.
type heapWatch struct {
	base uint64
	peak atomic.Uint64
	stop chan struct{}
	done chan struct{}
}

// heapInUse returns HeapInuse after a GC: what is live, not what awaits
// collection.
func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

func watchHeap() *heapWatch {
	h := &heapWatch{base: heapInUse(), stop: make(chan struct{}), done: make(chan struct{})}
	h.peak.Store(h.base)
	go func() {
		defer close(h.done)
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		var m runtime.MemStats
		for {
			select {
			case <-h.stop:
				return
			case <-t.C:
			}
			runtime.ReadMemStats(&m)
			if m.HeapInuse > h.peak.Load() {
				h.peak.Store(m.HeapInuse)
			}
		}
	}()
	return h
}

// growth stops the watch and returns the peak above the baseline.
func (h *heapWatch) growth() uint64 {
	close(h.stop)
	<-h.done
	return h.peak.Load() - h.base
}

// lazyBody is a request body made on the fly, n bytes of filler, that
// counts what was read from it; it has no GetBody, so it cannot be replayed.
type lazyBody struct {
	left int64
	read atomic.Int64
}

func (b *lazyBody) Read(p []byte) (int, error) {
	if b.left == 0 {
		return 0, io.EOF
	}
	n := int(min(int64(len(p)), b.left))
	for off := 0; off < n; {
		off += copy(p[off:n], lazyFiller)
	}
	b.left -= int64(n)
	b.read.Add(int64(n))
	return n, nil
}

var lazyFiller = []byte(strings.Repeat("b", 32<<10))

func mib(n uint64) float64 { return float64(n) / (1 << 20) }
