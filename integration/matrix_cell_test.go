package integration

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"hash/fnv"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/resilient-go/resilient"
	"github.com/resilient-go/resilient/resilienttest"
)

// callerKey is the Idempotency-Key of the requests whose caller sets one.
const callerKey = "matrix-caller-key"

// matrixPath is the path every cell calls.
const matrixPath = "/matrix"

// warmPath is the path a warm cell's first request goes to, to leave a
// keep-alive connection in the pool for the call.
const warmPath = "/warm"

// runCell runs one cell under its goroutine label, then checks that every
// goroutine the cell started has ended.
func runCell(t *testing.T, id string, f fault, k reqKind) {
	want := f.once
	if mayResend(k, f.class) {
		want = f.resent
	}
	finished := false
	withCellLabel(id, func() {
		c := &cell{t: t, id: id, kind: k, class: f.class, want: want, keepsConns: f.keepsConns, warm: f.warm}
		c.run(f.start)
		finished = true
	})
	if finished {
		// Client connections, servers, proxy, relay: all stopped by now.
		awaitNoGoroutines(t, id, "goroutines the cell started")
	}
}

type cell struct {
	t          *testing.T
	id         string
	kind       reqKind
	class      failClass
	want       outcome
	keepsConns bool // see fault
	warm       bool // see fault
}

// run makes the cell's call through a pipeline of its own, around a fresh
// *http.Transport, and checks:
//   - what the caller gets: status and body, or the class of error;
//   - how often the pipeline tried, and how many requests arrived;
//   - that every request body that arrived is complete and identical to
//     the one sent (nothing re-sent empty or cut), that a request the class
//     table does not let go again (a POST without a key unless not sent, a
//     POST with the pipeline's key after an ambiguous failure, a body
//     without GetBody) arrived at most once, and that all copies of a call
//     share one key;
//   - for a warm cell, that the first attempt went out on the warmed,
//     reused connection;
//   - that the caller's request was not modified;
//   - where the server keeps its connections, that the client closed none
//     during the call (discarded responses drained, pool not flushed);
//   - leaks: after CloseIdleConnections every connection the transport
//     dialed is closed, every response body the pipeline got is closed,
//     every request body is closed, and the server's connections and
//     handlers have ended (runCell then checks every goroutine).
func (c *cell) run(start startTarget) {
	t := c.t
	tgt := start(t, c.id)
	stopped := false
	defer func() {
		if !stopped {
			tgt.close(t)
		}
	}()

	tr := newTracker()
	base := &http.Transport{
		DialContext: tr.dial,
		// Trust no certificate: the untrusted one is untrusted whatever
		// the machine's roots, and no cell pays for loading them.
		TLSClientConfig: &tls.Config{RootCAs: x509.NewCertPool()},
		// Room for every connection a cell may dial, so that none is
		// closed for want of an idle slot.
		MaxIdleConnsPerHost: 8,
	}
	opts := []resilient.Option{
		resilient.WithAttemptTimeout(attemptTimeout),
		resilient.WithTotalTimeout(totalTimeout),
		resilient.WithRetry(retryPolicy),
	}
	if c.kind.stageOff {
		opts = append(opts, resilient.Without(resilient.StageIdempotencyKey))
	}
	if c.kind.dedup {
		opts = append(opts, resilient.WithIdempotencyKey(resilient.IdempotencyPolicy{ServerDeduplicates: true}))
	}
	client := &http.Client{Transport: resilient.NewTransport(&countingTransport{base: base, tr: tr}, opts...)}
	if c.warm {
		warmUp(t, base, tgt.url+warmPath)
	}

	sent := payload(t.Name(), 16<<10)
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	req := c.kind.request(ctx, tgt.url+matrixPath, sent, tr)
	header := req.Header.Clone()

	begin := time.Now()
	resp, err := client.Do(req)
	took := time.Since(begin)
	t.Logf("call returned after %v", took)
	c.checkCall(resp, err, took)
	if !reflect.DeepEqual(req.Header, header) {
		t.Errorf("the caller's request headers changed: %v, were %v", req.Header, header)
	}
	if n := tr.closed("conn"); c.keepsConns && n > 0 {
		t.Errorf("%d connections closed during the call, though the server kept them open: "+
			"a discarded response was not drained, or the pool was flushed", n)
	}

	client.CloseIdleConnections()
	tr.awaitClosed(t)
	awaitNoGoroutines(t, c.id, "server connections or handlers", "net/http.(*conn).serve")
	stopped = true
	tgt.close(t)

	c.checkArrivals(tgt.requests(), sent)
	if got := int(tr.attempts.Load()); got != c.want.attempts {
		t.Errorf("attempts = %d, want %d", got, c.want.attempts)
	}
	if c.warm && tr.firstConn.Load() != connReused {
		t.Errorf("the first attempt did not go out on the warmed keep-alive connection (%d): the cell tests nothing",
			tr.firstConn.Load())
	}
	if tgt.handshakes != nil {
		if got := tgt.handshakes(); got != c.want.handshakes {
			t.Errorf("TLS handshakes = %d, want %d", got, c.want.handshakes)
		}
	}
}

// checkCall checks what the caller got, reading and closing the body.
func (c *cell) checkCall(resp *http.Response, err error, took time.Duration) {
	t, w := c.t, c.want
	if took >= guard {
		t.Errorf("the call took %v: the pipeline did not bound it", took)
	}
	if w.atLeast > 0 && took < w.atLeast {
		t.Errorf("the call took %v, want at least %v", took, w.atLeast)
	}
	if w.atMost > 0 && took > w.atMost {
		t.Errorf("the call took %v, want at most %v", took, w.atMost)
	}
	if errors.Is(err, resilient.ErrCircuitOpen) || errors.Is(err, resilient.ErrBulkheadFull) {
		t.Errorf("err = %v: no breaker or bulkhead rejection expected in a one-call cell", err)
	}

	if w.status == 0 {
		if err == nil {
			resp.Body.Close()
			t.Errorf("got %s, want an error (%s)", resp.Status, w.err)
			return
		}
		if !w.err.matches(err) {
			t.Errorf("err = %v, want %s", err, w.err)
		}
		return
	}
	if err != nil {
		t.Errorf("err = %v, want a %d response", err, w.status)
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode != w.status {
		t.Errorf("status = %d, want %d", resp.StatusCode, w.status)
	}
	got, rerr := io.ReadAll(resp.Body)
	if w.err == none {
		if rerr != nil || string(got) != w.body {
			t.Errorf("body read: %d bytes, err %v; want the complete %d-byte body (equal: %v)",
				len(got), rerr, len(w.body), string(got) == w.body)
		}
		return
	}
	if !w.err.matches(rerr) {
		t.Errorf("body read err = %v, want %s", rerr, w.err)
	}
	if len(got) >= len(w.body) || !strings.HasPrefix(w.body, string(got)) {
		t.Errorf("body read %d bytes before failing, want a strict prefix of the %d-byte body", len(got), len(w.body))
	}
}

// checkArrivals checks the requests the server received.
func (c *cell) checkArrivals(all []resilienttest.Request, sent []byte) {
	t, k := c.t, c.kind
	var reqs []resilienttest.Request
	warms := 0
	for _, r := range all {
		if r.URL.Path == warmPath {
			warms++
			continue
		}
		reqs = append(reqs, r)
	}
	if want := map[bool]int{true: 1}[c.warm]; warms != want {
		t.Errorf("%d warm-up requests arrived, want %d", warms, want)
	}
	if len(reqs) != c.want.arrivals {
		t.Errorf("the server received %d requests, want %d", len(reqs), c.want.arrivals)
	}
	if !mayResend(k, c.class) && len(reqs) > 1 {
		t.Errorf("a request that may not be sent again after a %s failure arrived %d times", c.class, len(reqs))
	}
	want := sent
	if k.body == noBody {
		want = nil
	}
	var keys []string
	for _, r := range reqs {
		if r.Method != k.method || r.URL.Path != matrixPath {
			t.Errorf("request %d: %s %s, want %s %s", r.N, r.Method, r.URL.Path, k.method, matrixPath)
		}
		switch {
		case len(r.Body) == 0 && len(want) > 0:
			t.Errorf("request %d arrived with an empty body: re-sent empty", r.N)
		case r.BodyTruncated || !bytes.Equal(r.Body, want):
			t.Errorf("request %d arrived with %d body bytes (prefix of the sent: %v), want the %d sent",
				r.N, len(r.Body), bytes.HasPrefix(want, r.Body), len(want))
		}
		vals, has := r.Header["Idempotency-Key"]
		switch {
		case k.callerKey && (len(vals) != 1 || vals[0] != callerKey):
			t.Errorf("request %d: Idempotency-Key %q, want the caller's %q", r.N, vals, callerKey)
		case k.keyed() && (len(vals) != 1 || vals[0] == ""):
			t.Errorf("request %d: Idempotency-Key %q, want one key from the pipeline", r.N, vals)
		case !k.keyed() && has:
			t.Errorf("request %d: Idempotency-Key %q, want none", r.N, vals)
		}
		keys = append(keys, r.Header.Get("Idempotency-Key"))
	}
	for i := 1; i < len(keys); i++ {
		if keys[i] != keys[0] {
			t.Errorf("the copies of one call carry different keys: %q", keys)
			break
		}
	}
}

// request builds the call; its bodies are tracked by tr.
func (k reqKind) request(ctx context.Context, url string, sent []byte, tr *tracker) *http.Request {
	req, err := http.NewRequestWithContext(ctx, k.method, url, nil)
	if err != nil {
		panic(err) // the URL is ours
	}
	switch k.body {
	case rewindable:
		req.Body = tr.body(bytes.NewReader(sent))
		req.GetBody = func() (io.ReadCloser, error) { return tr.body(bytes.NewReader(sent)), nil }
		req.ContentLength = int64(len(sent))
	case streaming:
		req.Body = tr.body(&trickle{rest: sent})
		req.ContentLength = -1 // unknown: sent chunked, as a stream is
	}
	if k.callerKey {
		req.Header.Set("Idempotency-Key", callerKey)
	}
	return req
}

// warmUp sends a GET to url straight to base and reads its response
// whole, which leaves the connection idle in base's pool: net/http puts it
// back before the body's read returns io.EOF.
func warmUp(t *testing.T, base *http.Transport, url string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := base.RoundTrip(req)
	if err != nil {
		t.Fatalf("warm-up: %v", err)
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("warm-up: %s, body read: %v", resp.Status, err)
	}
}

// trickle yields its bytes a kilobyte at a time, as a stream would.
type trickle struct{ rest []byte }

func (r *trickle) Read(p []byte) (int, error) {
	if len(r.rest) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), 1<<10)], r.rest)
	r.rest = r.rest[n:]
	return n, nil
}

// payload returns n printable bytes determined by seed: every cell sends a
// body of its own, so no cell can mistake another's for its own.
func payload(seed string, n int) []byte {
	h := fnv.New64a()
	h.Write([]byte(seed))
	r := rand.New(rand.NewPCG(h.Sum64(), 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = 'a' + byte(r.IntN(26))
	}
	return b
}

// errClass is the kind of error a cell expects.
type errClass int

const (
	none       errClass = iota
	errTimeout          // a timeout: context.DeadlineExceeded and net.Error.Timeout
	errReset            // syscall.ECONNRESET
	errRefused          // syscall.ECONNREFUSED
	errCert             // *tls.CertificateVerificationError
)

func (e errClass) String() string {
	return [...]string{"no error", "a timeout", "ECONNRESET", "ECONNREFUSED", "a certificate error"}[e]
}

// matches reports whether err is of class e, and, unless e is a timeout,
// not a timeout: a fault that fails fast must not end by the clock.
func (e errClass) matches(err error) bool {
	if err == nil {
		return e == none
	}
	var ne net.Error
	timeout := errors.Is(err, context.DeadlineExceeded) && errors.As(err, &ne) && ne.Timeout()
	switch e {
	case errTimeout:
		return timeout
	case errReset:
		return !timeout && errors.Is(err, syscall.ECONNRESET)
	case errRefused:
		return !timeout && errors.Is(err, syscall.ECONNREFUSED)
	case errCert:
		var ce *tls.CertificateVerificationError
		return !timeout && errors.As(err, &ce)
	}
	return false
}
