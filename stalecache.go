package resilient

import (
	"bytes"
	"container/list"
	"errors"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/resilient-go/resilient/internal/clock"
	"github.com/resilient-go/resilient/internal/httpx"
)

// StaleHeader marks a response served by a StaleCache; its value is the
// age of the stored response in whole seconds.
const StaleHeader = "X-Resilient-Stale"

// StaleCachePolicy bounds a StaleCache. The zero value is the default.
type StaleCachePolicy struct {
	// MaxEntries bounds how many responses are kept; the least recently
	// used goes first. Zero means 1024.
	MaxEntries int

	// MaxBytes bounds the memory the entries take (bodies, headers, keys).
	// Zero means 32 MiB.
	MaxBytes int64

	// MaxEntryBytes bounds one body: a bigger one passes through
	// unrecorded. Zero means 1 MiB; it is never more than MaxBytes.
	MaxEntryBytes int64

	// MaxAge is how long a response may be served after it was received.
	// Zero means one hour.
	MaxAge time.Duration

	// Key names the entry for a request; "" means do not cache it. Nil
	// means the request URL. Unless Private is set, the cache adds a hash
	// of the request's Authorization, Cookie and Proxy-Authorization to
	// what Key returns, so Key need not (and cannot forget to) name the
	// user. The request fields a stored response's Vary lists select it
	// too, whatever Key says.
	Key func(req *http.Request) string

	// Private makes it a private cache, for a client that acts as one
	// identity: credentials are left out of the key, responses marked
	// Cache-Control: private are stored, and s-maxage and proxy-revalidate
	// (which bind shared caches only) are ignored. False, the default, is
	// a shared cache, safe for a client that calls on behalf of many users.
	Private bool
}

// StaleCache is a stale-if-error cache: it remembers the last good
// response to each GET and serves it, marked with StaleHeader and with its
// original Date, when the dependency fails. It is safe for concurrent use.
//
// By default it behaves as RFC 9111 asks of a shared cache: it keeps
// users apart by their credentials and by the fields a response's Vary
// names, and honours no-store, no-cache, private, must-revalidate,
// proxy-revalidate and s-maxage (the README has the table). It records 2xx
// responses (except 206) to GET requests without a Range header, never
// with their Set-Cookie. A body is recorded as the caller reads it, never
// ahead of the caller and never allocated ahead of the bytes received,
// and kept only if the caller reads it to EOF within MaxEntryBytes. One
// response is kept per URL and identity: the last one read.
//
// With Chain, Middleware records and serves in one stage. The standard
// pipeline takes the two halves: Record around the base transport and
// Fallback as the FallbackFunc:
//
//	rt := resilient.NewTransport(cache.Record(base), resilient.WithFallback(cache.Fallback))
type StaleCache struct {
	maxEntries int
	maxBytes   int64
	maxEntry   int64
	maxAge     time.Duration
	key        func(*http.Request) string
	private    bool
	clk        clock.Clock

	mu      sync.Mutex
	lru     list.List                // guarded by mu; of *staleEntry, most recent first
	entries map[string]*list.Element // guarded by mu
	bytes   int64                    // guarded by mu
}

// staleEntry is one stored response. It is never changed once stored, so
// it can be read outside the lock.
type staleEntry struct {
	key      string
	status   int
	header   http.Header
	body     []byte
	received time.Duration // clock offset at which the headers arrived
	vary     []string      // request fields that select this response
	varyHash string        // fieldsHash of vary in the request it answered
	limited  bool          // not served past until
	until    time.Duration
	size     int64
}

// NewStaleCache returns an empty cache bounded by p. It panics if a bound
// is negative.
func NewStaleCache(p StaleCachePolicy) *StaleCache {
	switch {
	case p.MaxEntries < 0:
		panic("resilient: StaleCachePolicy.MaxEntries must not be negative, got " + strconv.Itoa(p.MaxEntries))
	case p.MaxBytes < 0:
		panic("resilient: StaleCachePolicy.MaxBytes must not be negative, got " + strconv.FormatInt(p.MaxBytes, 10))
	case p.MaxEntryBytes < 0:
		panic("resilient: StaleCachePolicy.MaxEntryBytes must not be negative, got " + strconv.FormatInt(p.MaxEntryBytes, 10))
	case p.MaxAge < 0:
		panic("resilient: StaleCachePolicy.MaxAge must not be negative, got " + p.MaxAge.String())
	}
	c := &StaleCache{
		maxEntries: staleDefault(p.MaxEntries, 1024),
		maxBytes:   staleDefault(p.MaxBytes, 32<<20),
		maxEntry:   staleDefault(p.MaxEntryBytes, 1<<20),
		maxAge:     staleDefault(p.MaxAge, time.Hour),
		key:        p.Key,
		private:    p.Private,
		clk:        clock.Real,
		entries:    make(map[string]*list.Element),
	}
	c.maxEntry = min(c.maxEntry, c.maxBytes)
	return c
}

func staleDefault[T int | int64 | time.Duration](v, def T) T {
	if v == 0 {
		return def
	}
	return v
}

// Middleware returns a stage that records good GET responses and serves
// them when the call below fails: Fallback(c.Fallback) around c.Record.
func (c *StaleCache) Middleware() Middleware {
	serve := Fallback(c.Fallback)
	return func(next http.RoundTripper) http.RoundTripper {
		return serve(c.Record(next))
	}
}

// Record wraps next (nil means http.DefaultTransport) so that the good GET
// responses it returns are stored as their bodies are read. It has the
// shape of a Middleware.
func (c *StaleCache) Record(next http.RoundTripper) http.RoundTripper {
	return &staleRecorder{next: httpx.OrDefault(next), c: c}
}

// Fallback is a FallbackFunc: it serves the stored response for req if
// there is one younger than MaxAge, and otherwise returns resp and err as
// they are.
func (c *StaleCache) Fallback(req *http.Request, resp *http.Response, err error) (*http.Response, error) {
	if _, serve := requestRules(req); !serve {
		return resp, err
	}
	key := c.keyOf(req)
	if key == "" {
		return resp, err
	}
	e, age, ok := c.lookup(key, c.clk.Now())
	if !ok || e.vary != nil && fieldsHash(req.Header, e.vary, true) != e.varyHash {
		return resp, err
	}
	h := e.header.Clone()
	if h == nil {
		h = http.Header{}
	}
	h[StaleHeader] = []string{strconv.FormatInt(int64(age/time.Second), 10)}
	h[FallbackHeader] = []string{"stale"}
	return &http.Response{
		Status:        strconv.Itoa(e.status) + " " + http.StatusText(e.status),
		StatusCode:    e.status,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        h,
		Body:          io.NopCloser(bytes.NewReader(e.body)),
		ContentLength: int64(len(e.body)),
		Request:       req,
	}, nil
}

// keyOf names the entry for req: Key's name (or the URL), and in a shared
// cache a hash of the credentials, if any.
func (c *StaleCache) keyOf(req *http.Request) string {
	k := req.URL.String()
	if c.key != nil {
		k = c.key(req)
	}
	if k == "" || c.private || !hasCredentials(req.Header) {
		return k
	}
	return k + "\x00" + fieldsHash(req.Header, credentialFields, false)
}

func (c *StaleCache) lookup(key string, now time.Duration) (*staleEntry, time.Duration, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.entries[key]
	if !ok {
		return nil, 0, false
	}
	e := el.Value.(*staleEntry)
	age := max(now-e.received, 0)
	if age > c.maxAge || e.limited && now > e.until {
		c.removeLocked(el)
		return nil, 0, false
	}
	c.lru.MoveToFront(el)
	return e, age, true
}

// store keeps e as the entry for e.key, evicting the least recently used
// entries past the bounds.
func (c *StaleCache) store(e *staleEntry) {
	e.size = int64(len(e.key) + cap(e.body) + len(e.varyHash))
	for _, k := range e.vary {
		e.size += int64(len(k))
	}
	for k, vs := range e.header {
		e.size += int64(len(k))
		for _, v := range vs {
			e.size += int64(len(v))
		}
	}
	if e.size > c.maxBytes {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.entries[e.key]; ok {
		c.removeLocked(el)
	}
	c.entries[e.key] = c.lru.PushFront(e)
	c.bytes += e.size
	for c.lru.Len() > c.maxEntries || c.bytes > c.maxBytes {
		c.removeLocked(c.lru.Back())
	}
}

// removeLocked drops an entry. Requires c.mu held.
func (c *StaleCache) removeLocked(el *list.Element) {
	e := c.lru.Remove(el).(*staleEntry)
	delete(c.entries, e.key)
	c.bytes -= e.size
}

type staleRecorder struct {
	next http.RoundTripper
	c    *StaleCache
}

var _ http.RoundTripper = (*staleRecorder)(nil)

func (r *staleRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := r.next.RoundTrip(req)
	if err != nil {
		return resp, err
	}
	if store, _ := requestRules(req); !store {
		return resp, nil
	}
	now := r.c.clk.Now()
	vary, until, limited, ok := r.c.responseRules(resp, now)
	if !ok {
		return resp, nil
	}
	key := r.c.keyOf(req)
	if key == "" {
		return resp, nil
	}
	e := &staleEntry{key: key, status: resp.StatusCode, header: storedHeader(resp.Header),
		received: now, vary: vary, limited: limited, until: until}
	if vary != nil {
		e.varyHash = fieldsHash(req.Header, vary, true)
	}
	if resp.Body == nil || resp.Body == http.NoBody {
		r.c.store(e)
		return resp, nil
	}
	resp.Body = &staleTee{rc: resp.Body, c: r.c, e: e, max: r.c.maxEntry, declared: resp.ContentLength}
	return resp, nil
}

// CloseIdleConnections forwards to the next transport.
func (r *staleRecorder) CloseIdleConnections() { httpx.CloseIdle(r.next) }

// staleTee copies a body into its entry as the caller reads it, and stores
// the entry when the caller reaches EOF. Reads are the caller's; nothing is
// read ahead. Close only closes: a body not read to its end is not stored.
type staleTee struct {
	rc       io.ReadCloser
	c        *StaleCache
	e        *staleEntry // nil once stored or given up
	buf      []byte
	max      int64
	declared int64 // Content-Length, or -1: a hint to size buf, never trusted ahead of the bytes
}

func (t *staleTee) Read(p []byte) (int, error) {
	n, err := t.rc.Read(p)
	if t.e == nil {
		return n, err
	}
	if int64(len(t.buf)+n) > t.max {
		t.e, t.buf = nil, nil
		return n, err
	}
	t.grow(n)
	t.buf = append(t.buf, p[:n]...)
	switch {
	case errors.Is(err, io.EOF):
		if cap(t.buf)-len(t.buf) > len(t.buf)/8 {
			t.buf = bytes.Clone(t.buf) // what is kept is what the bounds count
		}
		t.e.body = t.buf
		t.c.store(t.e)
		t.e, t.buf = nil, nil
	case err != nil:
		t.e, t.buf = nil, nil
	}
	return n, err
}

func (t *staleTee) Close() error { return t.rc.Close() }

// grow makes room for n more bytes, at most doubling what has arrived (and
// 512 bytes to start), so a hostile Content-Length costs nothing. The
// declared length caps a step: an honest body ends in a buffer that fits.
func (t *staleTee) grow(n int) {
	need := len(t.buf) + n
	if need <= cap(t.buf) {
		return
	}
	c := int64(max(2*cap(t.buf), need, 512))
	if t.declared >= int64(need) {
		c = min(c, t.declared)
	}
	c = max(min(c, t.max), int64(need))
	nb := make([]byte, len(t.buf), c)
	copy(nb, t.buf)
	t.buf = nb
}
