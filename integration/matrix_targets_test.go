package integration

import (
	"crypto/tls"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/resilient-go/resilient/resilienttest"
)

// A target is what a cell's client calls: a server, possibly behind a
// Toxiproxy proxy, or an address that fails on its own. Everything it
// starts is started in the cell's goroutine, so it carries the cell label.
type target struct {
	url string
	// requests returns the HTTP requests the server received.
	requests func() []resilienttest.Request
	// handshakes, for TLS targets, counts the TLS handshakes begun.
	handshakes func() int
	// close stops the target; it may fail t if something did not end.
	close func(t *testing.T)
}

// startTarget starts one kind of target for a cell.
type startTarget func(t *testing.T, name string) *target

// kit serves with a resilienttest server scripted by faults.
func kit(faults ...resilienttest.Fault) startTarget {
	return func(t *testing.T, _ string) *target {
		s := resilienttest.StartServer(faults...)
		return &target{url: s.URL, requests: s.Requests, close: func(*testing.T) { s.Close() }}
	}
}

// toxicKit serves with a resilienttest server scripted by faults, behind a
// Toxiproxy proxy with toxics.
func toxicKit(toxics []toxic, faults ...resilienttest.Fault) startTarget {
	return func(t *testing.T, name string) *target {
		s := resilienttest.StartServer(faults...)
		t.Cleanup(s.Close) // if the proxy fails to start; Close is idempotent
		p := startToxicProxy(t, name, s.URL[len("http://"):], toxics...)
		return &target{
			url:      "http://" + p.Addr,
			requests: s.Requests,
			close: func(t *testing.T) {
				p.Close(t)
				s.Close()
			},
		}
	}
}

// untrustedTLS serves HTTPS with httptest's self-signed certificate, which
// the cell's client (no roots at all) does not trust.
func untrustedTLS(t *testing.T, _ string) *target {
	var (
		handshakes atomic.Int64
		mu         sync.Mutex
		reqs       []resilienttest.Request
	)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		reqs = append(reqs, resilienttest.Request{N: len(reqs) + 1, Method: r.Method, URL: r.URL, Header: r.Header.Clone(), Body: body})
		mu.Unlock()
	}))
	// The failed handshakes are the point; keep them out of the test log.
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.TLS = &tls.Config{GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
		handshakes.Add(1)
		return nil, nil
	}}
	srv.StartTLS()
	return &target{
		url: srv.URL,
		requests: func() []resilienttest.Request {
			mu.Lock()
			defer mu.Unlock()
			return append([]resilienttest.Request(nil), reqs...)
		},
		handshakes: func() int { return int(handshakes.Load()) },
		close:      func(*testing.T) { srv.Close() },
	}
}

// resetInHandshake listens for TLS and resets every connection once the
// client's hello has begun to arrive: the handshake fails with a reset.
func resetInHandshake(t *testing.T, _ string) *target {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		handshakes atomic.Int64
		wg         sync.WaitGroup
	)
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			// A TLS record header: the ClientHello is on its way.
			_ = c.SetReadDeadline(time.Now().Add(settle))
			if _, err := io.ReadFull(c, make([]byte, 5)); err == nil {
				handshakes.Add(1)
			}
			resetConn(c.(*net.TCPConn))
		}
	})
	return &target{
		url:        "https://" + ln.Addr().String(),
		requests:   func() []resilienttest.Request { return nil }, // no HTTP server behind it
		handshakes: func() int { return int(handshakes.Load()) },
		close: func(*testing.T) {
			_ = ln.Close()
			wg.Wait()
		},
	}
}

// refused is an address where nothing listens, held for the cell so that
// no other cell can take the port.
func refused(t *testing.T, _ string) *target {
	addr, release := refusedAddr(t)
	return &target{
		url:      "http://" + addr,
		requests: func() []resilienttest.Request { return nil },
		close:    func(*testing.T) { release() },
	}
}
