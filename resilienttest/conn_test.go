package resilienttest_test

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/resilient-go/resilient/resilienttest"
)

// Faults that shape the connection or the body's delivery.

func TestResetConn(t *testing.T) {
	forEachTarget(t, func(t *testing.T, start func(*testing.T, ...resilienttest.Fault) fake) {
		f := start(t, resilienttest.ResetConn())
		for range 5 {
			resp, err := f.client.Get(f.url)
			if resp != nil {
				resp.Body.Close()
				t.Fatalf("got a response %d, want none", resp.StatusCode)
			}
			if !errors.Is(err, syscall.ECONNRESET) {
				t.Fatalf("err = %v, want ECONNRESET", err)
			}
		}
	})
}

func TestResetMidBody(t *testing.T) {
	forEachTarget(t, func(t *testing.T, start func(*testing.T, ...resilienttest.Fault) fake) {
		f := start(t, resilienttest.ResetMidBody(4), resilienttest.Respond(200, "0123456789"))
		for range 20 {
			resp, err := f.client.Get(f.url)
			if err != nil {
				t.Fatalf("want a response, got %v", err)
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(b) != "0123" || !errors.Is(err, syscall.ECONNRESET) {
				t.Fatalf("read %q, %v; want \"0123\", ECONNRESET", b, err)
			}
		}
	})
}

func TestTruncate(t *testing.T) {
	forEachTarget(t, func(t *testing.T, start func(*testing.T, ...resilienttest.Fault) fake) {
		tests := []struct {
			body     string
			n        int
			wantRead string
			wantLen  int64
		}{
			{"0123456789", 4, "0123", 10},
			{"0123456789", 0, "", 10},
			{"OK", 10, "OK", 3}, // never complete
		}
		for _, tt := range tests {
			f := start(t, resilienttest.Truncate(tt.n), resilienttest.Respond(200, tt.body))
			resp, err := f.client.Get(f.url)
			if err != nil {
				t.Fatalf("want a response, got %v", err)
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(b) != tt.wantRead || !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Errorf("Truncate(%d) of %q: read %q, %v; want %q, io.ErrUnexpectedEOF", tt.n, tt.body, b, err, tt.wantRead)
			}
			if resp.ContentLength != tt.wantLen {
				t.Errorf("Truncate(%d) of %q: ContentLength %d, want %d", tt.n, tt.body, resp.ContentLength, tt.wantLen)
			}
		}
	})
}

func TestDrip(t *testing.T) {
	forEachTarget(t, func(t *testing.T, start func(*testing.T, ...resilienttest.Fault) fake) {
		const every = 20 * time.Millisecond
		f := start(t, resilienttest.Drip(3, every), resilienttest.Respond(200, "abcdefgh"))
		begin := time.Now()
		resp, err := f.client.Get(f.url)
		if err != nil {
			t.Fatal(err)
		}
		headers := time.Since(begin)
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || string(b) != "abcdefgh" {
			t.Errorf("read %q, %v", b, err)
		}
		// Three pieces, each after a wait; the header came before them.
		if el := time.Since(begin); el < 3*every {
			t.Errorf("body complete after %v, want at least %v", el, 3*every)
		}
		if headers >= time.Since(begin) {
			t.Errorf("header took %v, as long as the whole body", headers)
		}
	})
}

func TestDripPiecesInMemory(t *testing.T) {
	tr := resilienttest.NewTransport(resilienttest.Drip(3, 0), resilienttest.Respond(200, "abcdefgh"))
	resp, err := (&http.Client{Transport: tr}).Get("http://fake.test")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var sizes []int
	buf := make([]byte, 64)
	for range 10 {
		n, err := resp.Body.Read(buf)
		if n > 0 {
			sizes = append(sizes, n)
		}
		if err != nil {
			break
		}
	}
	if !equalInts(sizes, []int{3, 3, 2}) {
		t.Errorf("read pieces %v, want [3 3 2]", sizes)
	}
}

func TestDripStopsAtDeadline(t *testing.T) {
	forEachTarget(t, func(t *testing.T, start func(*testing.T, ...resilienttest.Fault) fake) {
		f := start(t, resilienttest.Drip(1, time.Hour))
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "GET", f.url, nil)
		resp, err := f.client.Do(req)
		if err != nil {
			t.Fatalf("want the header at once, got %v", err)
		}
		defer resp.Body.Close()
		begin := time.Now()
		_, err = io.ReadAll(resp.Body)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("err = %v, want context.DeadlineExceeded", err)
		}
		if el := time.Since(begin); el > 10*time.Second {
			t.Errorf("read ended after %v", el)
		}
	})
}

func TestDripThenCut(t *testing.T) {
	forEachTarget(t, func(t *testing.T, start func(*testing.T, ...resilienttest.Fault) fake) {
		for _, tt := range []struct {
			name string
			cut  resilienttest.Fault
			want error
		}{
			{"truncate", resilienttest.Truncate(5), io.ErrUnexpectedEOF},
			{"reset", resilienttest.ResetMidBody(5), syscall.ECONNRESET},
		} {
			f := start(t,
				resilienttest.Header("X-Shard", "7"),
				resilienttest.Drip(2, 5*time.Millisecond), tt.cut,
				resilienttest.Respond(200, "0123456789"))
			resp, err := f.client.Get(f.url)
			if err != nil {
				t.Fatalf("%s: %v", tt.name, err)
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(b) != "01234" || !errors.Is(err, tt.want) {
				t.Errorf("%s: read %q, %v; want \"01234\", %v", tt.name, b, err, tt.want)
			}
			if resp.Header.Get("X-Shard") != "7" || resp.ContentLength != 10 {
				t.Errorf("%s: header %v, ContentLength %d", tt.name, resp.Header, resp.ContentLength)
			}
		}
	})
}

func TestTLSServer(t *testing.T) {
	srv := resilienttest.NewTLSServer(t, resilienttest.FailFirst(1, http.StatusServiceUnavailable))
	if !strings.HasPrefix(srv.URL, "https://127.0.0.1:") {
		t.Fatalf("URL = %q, want https://127.0.0.1:port", srv.URL)
	}
	for i, want := range []int{503, 200} {
		resp, err := srv.Client().Get(srv.URL)
		if err != nil {
			t.Fatalf("request %d through the trusting client: %v", i+1, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body) // so the connection is reused
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("request %d: got %d, want %d", i+1, resp.StatusCode, want)
		}
	}

	// Any other client rejects the certificate: no request reaches the
	// script, but the connection is counted.
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	_, err := (&http.Client{Transport: tr}).Get(srv.URL)
	var verr *tls.CertificateVerificationError
	if !errors.As(err, &verr) {
		t.Fatalf("untrusting client got %v, want a *tls.CertificateVerificationError", err)
	}
	if srv.Count() != 2 {
		t.Errorf("Count() = %d, want 2: a failed handshake is no request", srv.Count())
	}
	if srv.Conns() != 2 {
		t.Errorf("Conns() = %d, want 2 (the trusting client's one and the failed handshake's)", srv.Conns())
	}
}
