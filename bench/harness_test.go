package bench

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// memTransport answers from memory with a small response of the given
// status, like a fast real transport: it gives up if the request's context
// has ended. It isolates what a library itself costs.
type memTransport struct{ status int }

func (t memTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		req.Body.Close()
	}
	if err := req.Context().Err(); err != nil {
		return nil, err
	}
	return &http.Response{
		StatusCode:    t.status,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        http.Header{},
		Body:          io.NopCloser(strings.NewReader("ok")),
		ContentLength: 2,
		Request:       req,
	}, nil
}

// server is a loopback httptest server that counts the requests it sees
// and the TCP connections opened to it.
type server struct {
	*httptest.Server
	requests atomic.Int64
	conns    atomic.Int64
	// client is a fresh pooled transport to it, so that one library's
	// connections never serve another.
	client *http.Transport
}

// serverOpts shapes a server's answers.
type serverOpts struct {
	status int // 0 means 200
	// stallEvery, when positive, stalls every stallEvery-th request for
	// stall (or until the client gives up on it) before answering.
	stallEvery int64
	stall      time.Duration
}

func newServer(tb testing.TB, o serverOpts) *server {
	tb.Helper()
	if o.status == 0 {
		o.status = http.StatusOK
	}
	s := &server{}
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := s.requests.Add(1)
		if o.stallEvery > 0 && n%o.stallEvery == 0 {
			t := time.NewTimer(o.stall)
			select {
			case <-t.C:
			case <-r.Context().Done():
				t.Stop()
				return
			}
		}
		w.Header().Set("Content-Length", "2")
		w.WriteHeader(o.status)
		_, _ = io.WriteString(w, "ok")
	}))
	s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			s.conns.Add(1)
		}
	}
	s.Start()
	s.client = http.DefaultTransport.(*http.Transport).Clone()
	// Room for every parallel caller's connection to stay pooled.
	s.client.MaxIdleConnsPerHost = 64
	tb.Cleanup(func() {
		s.client.CloseIdleConnections()
		s.Close()
	})
	return s
}

// do makes one call through rt and reads and closes what comes back.
func do(rt http.RoundTripper, req *http.Request) (int, error) {
	resp, err := rt.RoundTrip(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

func newGet(tb testing.TB, url string) *http.Request {
	tb.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		tb.Fatal(err)
	}
	return req
}

// setGoroutines makes b.RunParallel run n goroutines (rounded up to a
// multiple of GOMAXPROCS, which is what SetParallelism multiplies).
func setGoroutines(b *testing.B, n int) {
	p := runtime.GOMAXPROCS(0)
	b.SetParallelism((n + p - 1) / p)
}

// percentile returns the p-th percentile (0 < p ≤ 100) of d, nearest rank.
// It sorts d.
func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	slices.Sort(d)
	i := int(float64(len(d))*p/100+0.999999) - 1
	return d[max(0, min(i, len(d)-1))]
}

// perCall reports n per operation as metric unit.
func perCall(b *testing.B, n int64, unit string) {
	b.ReportMetric(float64(n)/float64(b.N), unit)
}
