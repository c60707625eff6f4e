package resilient_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/resilient-go/resilient"
	"github.com/resilient-go/resilient/internal/httpx"
	"github.com/resilient-go/resilient/resilienttest"
)

// fbRoundTrip is an in-memory transport for this file and fallback_test.go.
type fbRoundTrip func(*http.Request) (*http.Response, error)

func (f fbRoundTrip) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// keyRecorder is a base transport that records the requests it gets and
// reads their bodies. Ad hoc: unlike the kit's Transport it keeps the
// *http.Request itself, for tests that check it is the caller's, untouched.
type keyRecorder struct {
	mu     sync.Mutex
	reqs   []*http.Request
	bodies []string
}

func (k *keyRecorder) RoundTrip(r *http.Request) (*http.Response, error) {
	var b []byte
	if r.Body != nil {
		b, _ = io.ReadAll(r.Body)
		r.Body.Close()
	}
	k.mu.Lock()
	k.reqs = append(k.reqs, r)
	k.bodies = append(k.bodies, string(b))
	k.mu.Unlock()
	return &http.Response{StatusCode: 200, Header: http.Header{}, Body: http.NoBody, Request: r}, nil
}

func (k *keyRecorder) last(t *testing.T) *http.Request {
	t.Helper()
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(k.reqs) == 0 {
		t.Fatal("no request reached the base transport")
	}
	return k.reqs[len(k.reqs)-1]
}

// lastSent returns the last request tr received.
func lastSent(t *testing.T, tr *resilienttest.Transport) resilienttest.Request {
	t.Helper()
	reqs := tr.Requests()
	if len(reqs) == 0 {
		t.Fatal("no request reached the base transport")
	}
	return reqs[len(reqs)-1]
}

var uuidV4 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestIdempotencyKeyMethods(t *testing.T) {
	for _, tc := range []struct {
		method string
		want   bool
	}{
		{http.MethodPost, true},
		{http.MethodPatch, true},
		{http.MethodGet, false},
		{"", false},
		{http.MethodHead, false},
		{http.MethodPut, false},
		{http.MethodDelete, false},
		{http.MethodOptions, false},
		{"post", false}, // methods are case-sensitive
	} {
		t.Run(tc.method, func(t *testing.T) {
			base := &keyRecorder{}
			rt := resilient.Chain(base, resilient.IdempotencyKey(resilient.IdempotencyPolicy{}))
			req, _ := http.NewRequest(tc.method, "http://example.test/", strings.NewReader("x"))
			resp, err := rt.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			got := base.last(t)
			key := got.Header.Get("Idempotency-Key")
			if tc.want != (key != "") {
				t.Fatalf("%s: Idempotency-Key = %q, want present=%v", tc.method, key, tc.want)
			}
			if tc.want && !uuidV4.MatchString(key) {
				t.Errorf("key %q is not an RFC 9562 UUIDv4", key)
			}
			if !tc.want && got != req {
				t.Errorf("%s: the request was copied; it should pass through", tc.method)
			}
		})
	}
}

func TestIdempotencyKeyKeepsCallersKey(t *testing.T) {
	for _, tc := range []struct {
		name   string
		header string // as put into the map, spelling kept
		value  []string
		policy resilient.IdempotencyPolicy
	}{
		{"canonical", "Idempotency-Key", []string{"mine"}, resilient.IdempotencyPolicy{}},
		{"x-prefixed", "X-Idempotency-Key", []string{"mine"}, resilient.IdempotencyPolicy{}},
		{"lower-case in map", "idempotency-key", []string{"mine"}, resilient.IdempotencyPolicy{}},
		{"empty value", "Idempotency-Key", []string{""}, resilient.IdempotencyPolicy{}},
		{"nil means send none", "Idempotency-Key", nil, resilient.IdempotencyPolicy{}},
		{"configured header", "Request-Id", []string{"mine"}, resilient.IdempotencyPolicy{Header: "request-id"}},
		{"standard header with custom configured", "Idempotency-Key", []string{"mine"}, resilient.IdempotencyPolicy{Header: "Request-Id"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := &keyRecorder{}
			rt := resilient.Chain(base, resilient.IdempotencyKey(tc.policy))
			req, _ := http.NewRequest(http.MethodPost, "http://example.test/", nil)
			req.Header[tc.header] = tc.value
			if _, err := rt.RoundTrip(req); err != nil {
				t.Fatal(err)
			}
			got := base.last(t)
			if got.URL != req.URL || got.Body != req.Body {
				t.Fatal("a request with a key was cloned; it should pass through, its context marked at most")
			}
			if len(got.Header) != 1 || len(req.Header) != 1 {
				t.Errorf("headers = %v, want only the caller's", got.Header)
			}
			if httpx.KeyOf(got) != httpx.TrustedKey {
				t.Error("Retry and Hedge below would not take the caller's key for a key")
			}
		})
	}
}

func TestIdempotencyKeyLeavesCallersRequestAlone(t *testing.T) {
	base := &keyRecorder{}
	rt := resilient.Chain(base, resilient.IdempotencyKey(resilient.IdempotencyPolicy{}))
	req, _ := http.NewRequest(http.MethodPost, "http://example.test/", strings.NewReader(`{"a":1}`))
	req.Header.Set("Content-Type", "application/json")
	before := req.Header.Clone()

	if _, err := rt.RoundTrip(req); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(req.Header) != fmt.Sprint(before) {
		t.Errorf("caller's headers changed: %v, was %v", req.Header, before)
	}
	got := base.last(t)
	if got == req {
		t.Fatal("the key was set on the caller's request")
	}
	if got.Header.Get("Content-Type") != "application/json" || got.Header.Get("Idempotency-Key") == "" {
		t.Errorf("sent headers = %v, want the caller's plus a key", got.Header)
	}
	if base.bodies[0] != `{"a":1}` {
		t.Errorf("sent body %q", base.bodies[0])
	}
	if got.GetBody == nil {
		t.Error("GetBody lost: a retry below could not replay the body")
	}
}

func TestIdempotencyKeysUnique(t *testing.T) {
	base := resilienttest.NewTransport()
	rt := resilient.Chain(base, resilient.IdempotencyKey(resilient.IdempotencyPolicy{}))
	for range 500 {
		req, _ := http.NewRequest(http.MethodPost, "http://example.test/", nil)
		resp, err := rt.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	seen := make(map[string]bool)
	reqs := base.Requests()
	if len(reqs) != 500 {
		t.Fatalf("%d requests reached the base, want 500", len(reqs))
	}
	for _, r := range reqs {
		key := r.Header.Get("Idempotency-Key")
		if len(key) < 16 || !uuidV4.MatchString(key) {
			t.Fatalf("key %q: want a UUIDv4 of 36 characters", key)
		}
		if seen[key] {
			t.Fatalf("key %q repeated", key)
		}
		seen[key] = true
	}
}

// A fake retry: one call, two attempts, as the Retry stage below would send.
func twoAttempts(next http.RoundTripper) http.RoundTripper {
	return fbRoundTrip(func(r *http.Request) (*http.Response, error) {
		resp, err := next.RoundTrip(r)
		if err != nil {
			return nil, err
		}
		resp.Body.Close()
		r2 := r.Clone(r.Context())
		r2.Body, _ = r.GetBody()
		return next.RoundTrip(r2)
	})
}

func TestIdempotencyKeyOneKeyPerCall(t *testing.T) {
	base := resilienttest.NewTransport()
	rt := resilient.Chain(base, resilient.IdempotencyKey(resilient.IdempotencyPolicy{}), twoAttempts)
	for range 2 {
		req, _ := http.NewRequest(http.MethodPost, "http://example.test/", strings.NewReader("body"))
		resp, err := rt.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	reqs := base.Requests()
	if len(reqs) != 4 {
		t.Fatalf("%d requests reached the base, want 2 calls of 2 attempts", len(reqs))
	}
	k := func(i int) string { return reqs[i].Header.Get("Idempotency-Key") }
	if k(0) == "" || k(0) != k(1) {
		t.Errorf("attempts of one call carry %q and %q, want one key", k(0), k(1))
	}
	if k(2) == k(0) || k(2) != k(3) {
		t.Errorf("second call keys %q, %q; first %q: want a new key shared by its attempts", k(2), k(3), k(0))
	}
	for _, r := range reqs {
		if string(r.Body) != "body" {
			t.Errorf("request %d sent %q", r.N, r.Body)
		}
	}
}

func TestIdempotencyKeyCustomHeaderOverTheWire(t *testing.T) {
	srv := resilienttest.NewServer(t)
	c := clientWith(resilient.IdempotencyKey(resilient.IdempotencyPolicy{Header: "x-request-key"}))
	defer c.CloseIdleConnections()

	resp, err := c.Post(srv.URL, "text/plain", strings.NewReader("hi"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	reqs := srv.Requests()
	if len(reqs) != 1 {
		t.Fatalf("server got %d requests, want 1", len(reqs))
	}
	h := reqs[0].Header
	if !uuidV4.MatchString(h.Get("X-Request-Key")) {
		t.Errorf("X-Request-Key = %q, want a UUIDv4", h.Get("X-Request-Key"))
	}
	if v := h.Values("Idempotency-Key"); v != nil {
		t.Errorf("Idempotency-Key = %q, want none with a custom header", v)
	}
}

func TestIdempotencyKeyFormats(t *testing.T) {
	quotedUUID := regexp.MustCompile(`^"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"$`)
	for _, tc := range []struct {
		name    string
		policy  resilient.IdempotencyPolicy
		check   func(string) bool
		wantErr bool
	}{
		{"quoted uuid", resilient.IdempotencyPolicy{Quoted: true}, quotedUUID.MatchString, false},
		{"custom bare", resilient.IdempotencyPolicy{NewKey: func() string { return "k-1" }},
			func(s string) bool { return s == "k-1" }, false},
		{"custom quoted escapes", resilient.IdempotencyPolicy{Quoted: true, NewKey: func() string { return `a"b\c` }},
			func(s string) bool { return s == `"a\"b\\c"` }, false},
		{"custom empty", resilient.IdempotencyPolicy{NewKey: func() string { return "" }}, nil, true},
		{"custom newline", resilient.IdempotencyPolicy{NewKey: func() string { return "a\r\nX-Evil: 1" }}, nil, true},
		{"custom trailing space", resilient.IdempotencyPolicy{NewKey: func() string { return "a " }}, nil, true},
		{"quoted non-ASCII", resilient.IdempotencyPolicy{Quoted: true, NewKey: func() string { return "ключ" }}, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := resilienttest.NewTransport()
			rt := resilient.Chain(base, resilient.IdempotencyKey(tc.policy))
			body := &closeSpy{Reader: strings.NewReader("x")}
			req, _ := http.NewRequest(http.MethodPost, "http://example.test/", body)
			_, err := rt.RoundTrip(req)
			if tc.wantErr {
				if err == nil || !strings.HasPrefix(err.Error(), "resilient: IdempotencyPolicy.NewKey") {
					t.Fatalf("err = %v, want one naming IdempotencyPolicy.NewKey", err)
				}
				if !body.closed || base.Count() != 0 {
					t.Errorf("request body closed on the error path: %v; %d requests sent, want none", body.closed, base.Count())
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if key := lastSent(t, base).Header.Get("Idempotency-Key"); !tc.check(key) {
				t.Errorf("key = %s", key)
			}
		})
	}
}

type closeSpy struct {
	io.Reader
	closed bool
}

func (c *closeSpy) Close() error { c.closed = true; return nil }

func TestIdempotencyKeyCustomMethods(t *testing.T) {
	base := resilienttest.NewTransport()
	rt := resilient.Chain(base, resilient.IdempotencyKey(resilient.IdempotencyPolicy{Methods: []string{"PUT"}}))
	for _, m := range []string{"PUT", "POST"} {
		req, _ := http.NewRequest(m, "http://example.test/", nil)
		if _, err := rt.RoundTrip(req); err != nil {
			t.Fatal(err)
		}
		sent := lastSent(t, base)
		if sent.Method != m {
			t.Fatalf("the base got a %s, want %s", sent.Method, m)
		}
		has := sent.Header.Get("Idempotency-Key") != ""
		if has != (m == "PUT") {
			t.Errorf("%s got a key: %v", m, has)
		}
	}
}

func TestIdempotencyPolicyPanics(t *testing.T) {
	for _, tc := range []struct {
		name string
		p    resilient.IdempotencyPolicy
		want string
	}{
		{"header with space", resilient.IdempotencyPolicy{Header: "Idem Key"}, "IdempotencyPolicy.Header"},
		{"header with colon", resilient.IdempotencyPolicy{Header: "Key:"}, "IdempotencyPolicy.Header"},
		{"empty method", resilient.IdempotencyPolicy{Methods: []string{""}}, "IdempotencyPolicy.Methods"},
		{"method with space", resilient.IdempotencyPolicy{Methods: []string{"PO ST"}}, "IdempotencyPolicy.Methods"},
	} {
		for _, build := range []func(){
			func() { resilient.IdempotencyKey(tc.p) },
			func() { resilient.WithIdempotencyKey(tc.p) },
		} {
			func() {
				defer func() {
					if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), tc.want) {
						t.Errorf("%s: panic %v, want one naming %s", tc.name, r, tc.want)
					}
				}()
				build()
			}()
		}
	}
}

func TestIdempotencyKeyInStandardPipeline(t *testing.T) {
	base := resilienttest.NewTransport()
	for _, tc := range []struct {
		name string
		opts []resilient.Option
		want string // header that must carry a key, "" for none
	}{
		{"default", nil, "Idempotency-Key"},
		{"configured", []resilient.Option{resilient.WithIdempotencyKey(resilient.IdempotencyPolicy{Header: "X-Key"})}, "X-Key"},
		{"off", []resilient.Option{resilient.Without(resilient.StageIdempotencyKey)}, ""},
	} {
		rt := resilient.NewTransport(base, tc.opts...)
		req, _ := http.NewRequest(http.MethodPost, "http://example.test/", nil)
		resp, err := rt.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		h := lastSent(t, base).Header
		if tc.want == "" {
			if len(h) != 0 {
				t.Errorf("%s: headers %v, want none", tc.name, h)
			}
			continue
		}
		if !uuidV4.MatchString(h.Get(tc.want)) {
			t.Errorf("%s: %s = %q, want a UUIDv4", tc.name, tc.want, h.Get(tc.want))
		}
	}
}

func TestIdempotencyKeyStandardClientRetriesPOST(t *testing.T) {
	srv := resilienttest.NewServer(t, resilienttest.FailFirst(2, http.StatusServiceUnavailable), resilienttest.Respond(http.StatusOK, "done"))
	c := &http.Client{Transport: resilient.NewTransport(&http.Transport{})}
	defer c.CloseIdleConnections()

	resp, err := c.Post(srv.URL, "text/plain", bytes.NewReader([]byte("payload")))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(got) != "done" {
		t.Fatalf("got %d %q, want 200 done after two 503s", resp.StatusCode, got)
	}
	var keys []string
	for _, r := range srv.Requests() {
		keys = append(keys, r.Header.Get("Idempotency-Key"))
		if string(r.Body) != "payload" {
			t.Errorf("attempt %d sent %q", r.N, r.Body)
		}
	}
	if len(keys) != 3 || keys[0] == "" || keys[0] != keys[1] || keys[1] != keys[2] {
		t.Errorf("keys %q: want three attempts with one key", keys)
	}
}

func FuzzIdempotencyKeyFormat(f *testing.F) {
	for _, s := range []string{"k", `a"b\c`, "a\r\nb", " a", "a\t", "ключ", "\x7f", ""} {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, key string, quoted bool) {
		base := resilienttest.NewTransport()
		rt := resilient.Chain(base, resilient.IdempotencyKey(resilient.IdempotencyPolicy{
			NewKey: func() string { return key }, Quoted: quoted,
		}))
		req, _ := http.NewRequest(http.MethodPost, "http://example.test/", nil)
		if _, err := rt.RoundTrip(req); err != nil {
			if base.Count() != 0 {
				t.Fatalf("key %q refused with %v, yet the request was sent", key, err)
			}
			return
		}
		v := lastSent(t, base).Header.Get("Idempotency-Key")
		for i := 0; i < len(v); i++ {
			if c := v[i]; (c < 0x20 && c != '\t') || c == 0x7f {
				t.Fatalf("header value %q has control byte %#x", v, c)
			}
		}
		if v == "" || strings.Trim(v, " \t") != v && !quoted {
			t.Fatalf("header value %q for key %q", v, key)
		}
		if !quoted {
			if v != key {
				t.Fatalf("bare key %q sent as %q", key, v)
			}
			return
		}
		if got, ok := unquoteSF(v); !ok || got != key {
			t.Fatalf("key %q sent as %q, which unquotes to %q (ok=%v)", key, v, got, ok)
		}
	})
}

// unquoteSF parses an RFC 8941 sf-string.
func unquoteSF(v string) (string, bool) {
	if len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
		return "", false
	}
	var b strings.Builder
	for i := 1; i < len(v)-1; i++ {
		c := v[i]
		switch {
		case c == '\\':
			i++
			if i == len(v)-1 || (v[i] != '"' && v[i] != '\\') {
				return "", false
			}
			b.WriteByte(v[i])
		case c == '"' || c < 0x20 || c > 0x7e:
			return "", false
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), true
}

func FuzzIdempotencyKeyHeaders(f *testing.F) {
	f.Add("POST", "Idempotency-Key", "k", "")
	f.Add("PATCH", "x-idempotency-key", "", "X-Key")
	f.Add("GET", "Accept", "*/*", "")
	f.Add("POST", "x-key", "v", "X-Key")
	f.Add("", "Content-Type", "a", "")
	f.Fuzz(func(t *testing.T, method, name, value, configured string) {
		p := resilient.IdempotencyPolicy{Header: configured}
		var rt http.RoundTripper
		base := resilienttest.NewTransport()
		func() {
			defer func() {
				if recover() != nil {
					rt = nil // an invalid header name is refused at construction
				}
			}()
			rt = resilient.Chain(base, resilient.IdempotencyKey(p))
		}()
		if rt == nil {
			return
		}
		req := &http.Request{Method: method, URL: mustURL(t), Header: http.Header{name: {value}}}
		before := fmt.Sprintf("%q", req.Header)
		if _, err := rt.RoundTrip(req); err != nil {
			t.Fatal(err)
		}
		if after := fmt.Sprintf("%q", req.Header); after != before {
			t.Fatalf("caller's header changed from %s to %s", before, after)
		}
		sent := lastSent(t, base).Header
		callerHadKey := strings.EqualFold(name, "Idempotency-Key") || strings.EqualFold(name, "X-Idempotency-Key") ||
			(configured != "" && strings.EqualFold(name, configured))
		wantKey := (method == "POST" || method == "PATCH") && !callerHadKey
		if !wantKey {
			if fmt.Sprintf("%q", sent) != before {
				t.Fatalf("%s with header %q: sent %q, want the caller's headers", method, name, sent)
			}
			return
		}
		h := configured
		if h == "" {
			h = "Idempotency-Key"
		}
		if len(sent) != 2 && !(len(sent) == 1 && strings.EqualFold(name, h)) {
			t.Fatalf("sent %q: want the caller's header plus one key", sent)
		}
		if v := sent[http.CanonicalHeaderKey(h)]; len(v) != 1 || !uuidV4.MatchString(v[0]) {
			t.Fatalf("sent %q: want one UUIDv4 in %s", sent, h)
		}
	})
}

func mustURL(t *testing.T) *url.URL {
	t.Helper()
	u, err := url.Parse("http://example.test/")
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func ExampleIdempotencyKey() {
	srv := resilienttest.StartServer()
	defer srv.Close()
	client := &http.Client{Transport: resilient.Chain(nil, resilient.IdempotencyKey(resilient.IdempotencyPolicy{}))}
	defer client.CloseIdleConnections()

	for _, method := range []string{http.MethodPost, http.MethodGet} {
		req, _ := http.NewRequest(method, srv.URL, nil)
		resp, err := client.Do(req)
		if err != nil {
			fmt.Println(err)
			return
		}
		resp.Body.Close()
	}
	for _, r := range srv.Requests() {
		key := r.Header.Get("Idempotency-Key")
		fmt.Printf("%s: key present: %v, 36 characters: %v\n", r.Method, key != "", len(key) == 36)
	}
	// Output:
	// POST: key present: true, 36 characters: true
	// GET: key present: false, 36 characters: false
}

var sinkResp *http.Response

func BenchmarkIdempotencyKey(b *testing.B) {
	resp := &http.Response{StatusCode: 200, Header: http.Header{}, Body: http.NoBody}
	base := fbRoundTrip(func(*http.Request) (*http.Response, error) { return resp, nil })
	rt := resilient.Chain(base, resilient.IdempotencyKey(resilient.IdempotencyPolicy{}))
	for _, method := range []string{http.MethodGet, http.MethodPost} {
		b.Run(method, func(b *testing.B) {
			req, _ := http.NewRequest(method, "http://example.test/", nil)
			b.ReportAllocs()
			for b.Loop() {
				sinkResp, _ = rt.RoundTrip(req)
			}
		})
	}
}
