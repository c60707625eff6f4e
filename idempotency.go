package resilient

import (
	"crypto/rand"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/resilient-go/resilient/internal/httpx"
)

// DefaultIdempotencyHeader is the header IdempotencyKey sets unless told
// otherwise, as the IETF draft (draft-ietf-httpapi-idempotency-key-header)
// and Stripe name it.
const DefaultIdempotencyHeader = "Idempotency-Key"

// IdempotencyPolicy configures the IdempotencyKey stage. The zero value is
// the default: POST and PATCH requests without a key get a bare UUIDv4 in
// Idempotency-Key.
type IdempotencyPolicy struct {
	// Header is the header that carries the key. Zero means
	// "Idempotency-Key". Whatever it is, a request that already carries
	// Idempotency-Key or X-Idempotency-Key is left alone too, since those are
	// what net/http treats as a key. Retry and Hedge below treat a key in
	// Header as a key too. Hop-by-hop and framing headers (Connection,
	// Keep-Alive, Proxy-Connection, Te, Trailer, Transfer-Encoding,
	// Upgrade, Host, Content-Length) are refused: net/http drops or
	// rewrites them, and HTTP/2 rejects the request.
	Header string

	// ServerDeduplicates says the servers this pipeline calls deduplicate
	// requests by the key (Stripe does; GitHub, Kubernetes, Elasticsearch
	// and OpenAI ignore it). Only then may a POST or PATCH with a key the
	// stage made be sent again after a failure that left it unknown
	// whether the server acted (a timeout or a connection lost after the
	// request was written, a 500, 502, 504 or 408), or be hedged. False,
	// the default, never risks a duplicate write: such a call is re-sent
	// only when nothing reached the server or the server declined it (429,
	// 503). A key the caller set is always trusted.
	ServerDeduplicates bool

	// Methods are the methods that get a key, matched exactly (HTTP methods
	// are case-sensitive). Nil or empty means POST and PATCH: GET, HEAD,
	// PUT, DELETE, OPTIONS and TRACE are idempotent already.
	Methods []string

	// NewKey makes a key. Nil means a random UUIDv4 (RFC 9562) from
	// crypto/rand. It must be safe for concurrent use and return a
	// non-empty header value without control characters or surrounding
	// spaces; a call that gets anything else fails with an error.
	NewKey func() string

	// Quoted sends the key as a structured-field string ("…", RFC 8941),
	// the form the IETF draft specifies. It is off by default because the
	// APIs that deployed idempotency keys first (Stripe, and those modelled
	// on it) take the bare value: some validate it as a UUID or token and
	// reject the quotes, others keep the quotes as part of the key.
	Quoted bool
}

// IdempotencyKey gives each POST and PATCH call (or p.Methods) that has no
// idempotency key a fresh one, so that the Retry and Hedge stages below may
// send it more than once and the server can tell the copies apart from new
// calls. Place it outside Retry and Hedge: one key per logical call, reused
// by every attempt.
//
// A key the caller set, in p.Header, Idempotency-Key or X-Idempotency-Key,
// is never replaced, even if empty or nil (net/http's convention for "treat
// as idempotent, send nothing"). The caller's request is never modified: the
// stage clones it before adding the header. Other methods pass through
// untouched and at no cost.
//
// IdempotencyKey panics if p.Header or one of p.Methods is not a valid HTTP
// token.
func IdempotencyKey(p IdempotencyPolicy) Middleware {
	t := newIdempotency(p)
	return func(next http.RoundTripper) http.RoundTripper {
		s := *t
		s.next = httpx.OrDefault(next)
		return &s
	}
}

// WithIdempotencyKey configures the standard pipeline's IdempotencyKey
// stage, which is on by default with the zero policy. Use
// Without(StageIdempotencyKey) to switch it off. It panics on the same
// policies as IdempotencyKey.
func WithIdempotencyKey(p IdempotencyPolicy) Option {
	newIdempotency(p) // validate now, where the mistake is
	p.Methods = append([]string(nil), p.Methods...)
	return stageOption(StageIdempotencyKey, func(c *config) { c.idempotency = p })
}

type idempotencyTransport struct {
	next    http.RoundTripper
	header  string   // canonical form
	methods []string // never empty
	newKey  func() string
	quoted  bool
	made    httpx.Key // what a key the stage makes proves
}

var _ http.RoundTripper = (*idempotencyTransport)(nil)

// check returns a *fieldError for the first field out of range.
func (p IdempotencyPolicy) check() error {
	if p.Header != "" && !httpx.Token(p.Header) {
		return &fieldError{"IdempotencyPolicy.Header", strconv.Quote(p.Header) + " is not a valid header name"}
	}
	if p.Header != "" && httpx.HopByHop(http.CanonicalHeaderKey(p.Header)) {
		return &fieldError{"IdempotencyPolicy.Header", strconv.Quote(p.Header) + " cannot carry a key: net/http drops or rewrites it, and HTTP/2 refuses it"}
	}
	for _, m := range p.Methods {
		if !httpx.Token(m) {
			return &fieldError{"IdempotencyPolicy.Methods", "has " + strconv.Quote(m) + ", which is not a valid method"}
		}
	}
	return nil
}

func newIdempotency(p IdempotencyPolicy) *idempotencyTransport {
	mustValid(p.check())
	t := &idempotencyTransport{header: DefaultIdempotencyHeader, newKey: p.NewKey, quoted: p.Quoted, made: httpx.PipelineKey}
	if p.ServerDeduplicates {
		t.made = httpx.TrustedKey
	}
	if p.Header != "" {
		t.header = http.CanonicalHeaderKey(p.Header)
	}
	if len(p.Methods) == 0 {
		t.methods = []string{http.MethodPost, http.MethodPatch}
	} else {
		t.methods = append([]string(nil), p.Methods...)
	}
	return t
}

func (t *idempotencyTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if !t.applies(req.Method) {
		return t.next.RoundTrip(req)
	}
	if hasIdempotencyKey(req.Header, t.header) {
		if httpx.KeyOf(req) != httpx.TrustedKey {
			// The caller's key is in our custom Header: tell Retry and
			// Hedge, which know only the standard names by themselves.
			req = req.WithContext(httpx.WithKey(req.Context(), t.header, httpx.TrustedKey))
		}
		return t.next.RoundTrip(req)
	}
	key, err := t.key()
	if err != nil {
		httpx.CloseRequestBody(req)
		return nil, err
	}
	r := req.Clone(httpx.WithKey(req.Context(), t.header, t.made))
	if r.Header == nil {
		r.Header = make(http.Header, 1)
	}
	r.Header[t.header] = []string{key}
	return t.next.RoundTrip(r)
}

// CloseIdleConnections forwards to the next transport.
func (t *idempotencyTransport) CloseIdleConnections() { httpx.CloseIdle(t.next) }

func (t *idempotencyTransport) applies(method string) bool {
	if method == "" {
		method = http.MethodGet
	}
	for _, m := range t.methods {
		if m == method {
			return true
		}
	}
	return false
}

// key returns the header value for a new key.
func (t *idempotencyTransport) key() (string, error) {
	if t.newKey == nil {
		return newUUIDv4(t.quoted), nil
	}
	return formatIdempotencyKey(t.newKey(), t.quoted)
}

// hasIdempotencyKey reports whether h already carries a key in header (in
// canonical form) or in one of the names net/http recognises.
func hasIdempotencyKey(h http.Header, header string) bool {
	if len(h) == 0 {
		return false
	}
	if _, ok := h[header]; ok {
		return true
	}
	for _, name := range httpx.IdempotencyHeaders {
		if _, ok := h[name]; ok {
			return true
		}
	}
	// A header put into the map directly keeps its spelling and is sent as
	// such; adding a canonical twin would send two keys.
	for k := range h {
		if strings.EqualFold(k, header) {
			return true
		}
		for _, name := range httpx.IdempotencyHeaders {
			if strings.EqualFold(k, name) {
				return true
			}
		}
	}
	return false
}

const uuidHex = "0123456789abcdef"

// newUUIDv4 returns a random RFC 9562 version 4 UUID in its lowercase
// 8-4-4-4-12 form, quoted as an sf-string if asked. The one allocation is
// the string itself.
func newUUIDv4(quoted bool) string {
	var u [16]byte
	_, _ = rand.Read(u[:])  // never fails (Go 1.24+ crashes instead)
	u[6] = u[6]&0x0f | 0x40 // version 4
	u[8] = u[8]&0x3f | 0x80 // variant 10
	var buf [38]byte
	b := buf[:0]
	if quoted {
		b = append(b, '"')
	}
	for i, x := range u {
		switch i {
		case 4, 6, 8, 10:
			b = append(b, '-')
		}
		b = append(b, uuidHex[x>>4], uuidHex[x&0x0f])
	}
	if quoted {
		b = append(b, '"')
	}
	return string(b)
}

var (
	errKeyEmpty   = errors.New("resilient: IdempotencyPolicy.NewKey returned an empty key")
	errKeyInvalid = errors.New("resilient: IdempotencyPolicy.NewKey returned a key with control characters or surrounding spaces")
	errKeyNotSF   = errors.New("resilient: IdempotencyPolicy.NewKey returned a key that is not printable ASCII, which a quoted (sf-string) key must be")
)

// formatIdempotencyKey checks a key from NewKey and returns it as a header
// value: bare, or as an sf-string with '"' and '\' escaped.
func formatIdempotencyKey(key string, quoted bool) (string, error) {
	if key == "" {
		return "", errKeyEmpty
	}
	if !quoted {
		if key[0] == ' ' || key[0] == '\t' || key[len(key)-1] == ' ' || key[len(key)-1] == '\t' {
			return "", errKeyInvalid
		}
		for i := 0; i < len(key); i++ {
			if c := key[i]; (c < 0x20 && c != '\t') || c == 0x7f {
				return "", errKeyInvalid
			}
		}
		return key, nil
	}
	escapes := 0
	for i := 0; i < len(key); i++ {
		c := key[i]
		if c < 0x20 || c > 0x7e {
			return "", errKeyNotSF
		}
		if c == '"' || c == '\\' {
			escapes++
		}
	}
	var b strings.Builder
	b.Grow(len(key) + escapes + 2)
	b.WriteByte('"')
	for i := 0; i < len(key); i++ {
		if c := key[i]; c == '"' || c == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(key[i])
	}
	b.WriteByte('"')
	return b.String(), nil
}
