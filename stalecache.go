package resilient

import (
	"bytes"
	"container/list"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

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
	// means the request URL. The URL alone is right for a client that acts
	// as one identity; one that sends requests on behalf of several users
	// (different Authorization or Cookie headers) must put the user in the
	// key, or it will serve one user's data to another.
	Key func(req *http.Request) string
}

// StaleCache is a stale-if-error cache: it remembers the last good
// response to each GET and serves it, marked with StaleHeader and with its
// original Date, when the dependency fails. It is safe for concurrent use.
//
// It records 2xx responses (except 206) to GET requests without a Range
// header, unless the request or response says Cache-Control: no-store. A
// body is recorded as the caller reads it, never ahead of the caller, and
// kept only if the caller reads it to EOF within MaxEntryBytes.
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
	now        func() time.Time

	mu      sync.Mutex
	lru     list.List                // guarded by mu; of *staleEntry, most recent first
	entries map[string]*list.Element // guarded by mu
	bytes   int64                    // guarded by mu
}

// staleEntry is one stored response. It is never changed once stored, so
// it can be read outside the lock.
type staleEntry struct {
	key    string
	status int
	header http.Header
	body   []byte
	stored time.Time
	size   int64
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
		now:        time.Now,
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
	if !staleEligible(req) {
		return resp, err
	}
	key := c.keyOf(req)
	if key == "" {
		return resp, err
	}
	e, age, ok := c.lookup(key, c.now())
	if !ok {
		return resp, err
	}
	h := e.header.Clone()
	if h == nil {
		h = http.Header{}
	}
	h[StaleHeader] = []string{strconv.FormatInt(int64(age/time.Second), 10)}
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

func (c *StaleCache) keyOf(req *http.Request) string {
	if c.key != nil {
		return c.key(req)
	}
	return req.URL.String()
}

// staleEligible reports whether req is one the cache may answer: a GET
// for a whole representation that allows storing.
func staleEligible(req *http.Request) bool {
	if req.Method != http.MethodGet && req.Method != "" {
		return false
	}
	if _, ok := req.Header["Range"]; ok {
		return false
	}
	return !hasCacheDirective(req.Header, "no-store")
}

func (c *StaleCache) lookup(key string, now time.Time) (*staleEntry, time.Duration, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.entries[key]
	if !ok {
		return nil, 0, false
	}
	e := el.Value.(*staleEntry)
	age := max(now.Sub(e.stored), 0)
	if age > c.maxAge {
		c.removeLocked(el)
		return nil, 0, false
	}
	c.lru.MoveToFront(el)
	return e, age, true
}

// store keeps e as the entry for e.key, evicting the least recently used
// entries past the bounds.
func (c *StaleCache) store(e *staleEntry) {
	e.size = int64(len(e.key) + len(e.body))
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
	if err != nil || !r.c.recordable(req, resp) {
		return resp, err
	}
	key := r.c.keyOf(req)
	if key == "" {
		return resp, nil
	}
	e := &staleEntry{key: key, status: resp.StatusCode, header: resp.Header.Clone()}
	if resp.Body == nil || resp.Body == http.NoBody {
		e.stored = r.c.now()
		r.c.store(e)
		return resp, nil
	}
	t := &staleTee{rc: resp.Body, c: r.c, e: e, max: r.c.maxEntry}
	if resp.ContentLength > 0 {
		t.buf = make([]byte, 0, resp.ContentLength)
	}
	resp.Body = t
	return resp, nil
}

// CloseIdleConnections forwards to the next transport.
func (r *staleRecorder) CloseIdleConnections() { httpx.CloseIdle(r.next) }

func (c *StaleCache) recordable(req *http.Request, resp *http.Response) bool {
	return resp.StatusCode >= 200 && resp.StatusCode <= 299 &&
		resp.StatusCode != http.StatusPartialContent &&
		resp.ContentLength <= c.maxEntry &&
		staleEligible(req) &&
		!hasCacheDirective(resp.Header, "no-store")
}

// staleTee copies a body into its entry as the caller reads it, and stores
// the entry when the caller reaches EOF. Reads are the caller's; nothing is
// read ahead. Close only closes: a body not read to its end is not stored.
type staleTee struct {
	rc  io.ReadCloser
	c   *StaleCache
	e   *staleEntry // nil once stored or given up
	buf []byte
	max int64
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
	t.buf = append(t.buf, p[:n]...)
	switch {
	case errors.Is(err, io.EOF):
		t.e.body, t.e.stored = t.buf, t.c.now()
		t.c.store(t.e)
		t.e, t.buf = nil, nil
	case err != nil:
		t.e, t.buf = nil, nil
	}
	return n, err
}

func (t *staleTee) Close() error { return t.rc.Close() }

// hasCacheDirective reports whether the Cache-Control header in h holds
// directive (lowercase), by name, ignoring case and any argument. Commas
// inside a quoted argument do not split directives.
func hasCacheDirective(h http.Header, directive string) bool {
	for _, v := range h["Cache-Control"] {
		for v != "" {
			var d string
			d, v = nextCacheDirective(v)
			if strings.EqualFold(d, directive) {
				return true
			}
		}
	}
	return false
}

// nextCacheDirective returns the name of the first directive in v and the
// rest of v after its comma.
func nextCacheDirective(v string) (name, rest string) {
	i, quoted := 0, false
	end := -1 // end of the name
	for ; i < len(v); i++ {
		c := v[i]
		switch {
		case quoted && c == '\\':
			i++
		case c == '"':
			quoted = !quoted
		case quoted:
		case c == '=' && end < 0:
			end = i
		case c == ',':
			if end < 0 {
				end = i
			}
			return strings.Trim(v[:end], " \t"), v[i+1:]
		}
	}
	if end < 0 {
		end = len(v)
	}
	return strings.Trim(v[:end], " \t"), ""
}
