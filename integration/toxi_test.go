package integration

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/Shopify/toxiproxy/v2"
	"github.com/rs/zerolog"
)

// A toxic is one Toxiproxy toxic: its type ("latency", "bandwidth",
// "slicer", "timeout", ...), its stream ("upstream" is client to server,
// "downstream" server to client) and its attributes as Toxiproxy's API
// takes them.
type toxic struct {
	kind   string
	stream string
	attrs  map[string]any
}

// toxicProxy is a Toxiproxy proxy run inside the test process, listening on
// 127.0.0.1, with a draining relay in front of it (see relay).
type toxicProxy struct {
	proxy *toxiproxy.Proxy
	relay *relay
	// Addr is where clients connect: the relay's address.
	Addr string
}

// startToxicProxy starts a proxy to upstream with toxics, and its relay.
// The toxics are in place before the first connection, so every
// connection gets all of them.
func startToxicProxy(t *testing.T, name, upstream string, toxics ...toxic) *toxicProxy {
	t.Helper()
	srv := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(nil), zerolog.Nop())
	p := toxiproxy.NewProxy(srv, name, "127.0.0.1:0", upstream)
	if err := p.Start(); err != nil {
		t.Fatalf("toxiproxy: start %s: %v", name, err)
	}
	for i, tx := range toxics {
		js, err := json.Marshal(map[string]any{
			"name":       tx.kind + "_" + tx.stream + "_" + strconv.Itoa(i),
			"type":       tx.kind,
			"stream":     tx.stream,
			"toxicity":   1.0,
			"attributes": tx.attrs,
		})
		if err == nil {
			_, err = p.Toxics.AddToxicJson(bytes.NewReader(js))
		}
		if err != nil {
			p.Stop()
			t.Fatalf("toxiproxy: add %s toxic: %v", tx.kind, err)
		}
	}
	r, err := startRelay(p.Listen)
	if err != nil {
		p.Stop()
		t.Fatalf("relay: %v", err)
	}
	return &toxicProxy{proxy: p, relay: r, Addr: r.Addr()}
}

// Close waits (up to settle) for every relayed connection to end by itself,
// failing t if one does not, then stops the proxy and the relay.
func (p *toxicProxy) Close(t *testing.T) {
	t.Helper()
	if !poll(func() bool { return p.relay.Active() == 0 }) {
		t.Errorf("leak: %d proxied connections still open %v after the cell", p.relay.Active(), settle)
	}
	p.proxy.Stop()
	p.relay.Close()
}

// relay forwards TCP connections from clients to a Toxiproxy proxy, and
// keeps reading what the proxy sends after the client has gone, until the
// proxy closes. Toxiproxy 2.5.0 leaks a link's goroutines when a client
// goes away while a toxic still holds data: its writer stops at the first
// failed write and the toxic blocks forever sending to it. A reader that
// never stops lets every link drain and end. Resets from the proxy are
// passed on to the client as resets; the client's end, however abrupt, is
// passed on as a half-close, so the proxy is never cut off mid-write.
type relay struct {
	ln     net.Listener
	target string
	active atomic.Int64 // client connections being relayed
	wg     sync.WaitGroup

	mu    sync.Mutex
	conns map[net.Conn]struct{} // guarded by mu
}

func startRelay(target string) (*relay, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &relay{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	r.wg.Add(1)
	go r.accept()
	return r, nil
}

// Addr is the relay's listening address.
func (r *relay) Addr() string { return r.ln.Addr().String() }

// Active reports how many client connections are being relayed.
func (r *relay) Active() int64 { return r.active.Load() }

// Close stops accepting, cuts the connections still open and waits for
// the relay's goroutines.
func (r *relay) Close() {
	_ = r.ln.Close()
	r.mu.Lock()
	for c := range r.conns {
		_ = c.Close()
	}
	r.mu.Unlock()
	r.wg.Wait()
}

func (r *relay) track(c net.Conn, on bool) {
	r.mu.Lock()
	if on {
		r.conns[c] = struct{}{}
	} else {
		delete(r.conns, c)
	}
	r.mu.Unlock()
}

func (r *relay) accept() {
	defer r.wg.Done()
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return
		}
		r.active.Add(1)
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			defer r.active.Add(-1)
			r.serve(c.(*net.TCPConn))
		}()
	}
}

func (r *relay) serve(client *net.TCPConn) {
	defer client.Close()
	up, err := net.Dial("tcp", r.target)
	if err != nil {
		resetConn(client)
		return
	}
	upstream := up.(*net.TCPConn)
	defer upstream.Close()
	r.track(client, true)
	r.track(upstream, true)
	defer r.track(client, false)
	defer r.track(upstream, false)

	// Client to proxy: whatever ends the client's side, half-close.
	toProxy := make(chan struct{})
	go func() {
		defer close(toProxy)
		_, _ = io.Copy(upstream, client)
		_ = upstream.CloseWrite()
	}()

	// Proxy to client: to the end, even when the client is gone.
	buf := make([]byte, 32<<10)
	clientGone := false
	for {
		n, err := upstream.Read(buf)
		if n > 0 && !clientGone {
			if _, werr := client.Write(buf[:n]); werr != nil {
				clientGone = true
			}
		}
		if err != nil {
			if errors.Is(err, syscall.ECONNRESET) {
				resetConn(client)
			}
			break
		}
	}
	_ = client.Close() // ends the copy above if the client is still there
	<-toProxy
}

// resetConn closes c with SO_LINGER 0, which sends a TCP RST.
func resetConn(c *net.TCPConn) {
	_ = c.SetLinger(0)
	_ = c.Close()
}
