package resilient

import (
	"io"
	"net/http"
	"net/textproto"
	"strings"
	"testing"
)

// TestStaleCacheKeepsNoCredentialInClear looks through everything the
// cache holds for a credential it was given, in the key or a Vary'd field.
func TestStaleCacheKeepsNoCredentialInClear(t *testing.T) {
	const secret = "alice-s3cret"
	for _, p := range []StaleCachePolicy{{}, {Private: true}} {
		c := NewStaleCache(p)
		rt := c.Record(roundTripFunc(func(r *http.Request) (*http.Response, error) {
			h := http.Header{"Vary": {"Authorization, Cookie"}, "Set-Cookie": {"s=" + secret}}
			return &http.Response{StatusCode: 200, Header: h, Body: io.NopCloser(strings.NewReader("b")), ContentLength: 1, Request: r}, nil
		}))
		req, _ := http.NewRequest(http.MethodGet, "http://127.0.0.1/", nil)
		req.Header = http.Header{"Authorization": {"Bearer " + secret}, "Cookie": {"c=" + secret}, "Proxy-Authorization": {secret}}
		resp, err := rt.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if len(c.entries) != 1 {
			t.Fatalf("private %v: %d entries, want 1", p.Private, len(c.entries))
		}
		for k, el := range c.entries {
			e := el.Value.(*staleEntry)
			held := k + e.varyHash + strings.Join(e.vary, ",")
			for name, vs := range e.header {
				held += name + strings.Join(vs, ",")
			}
			if strings.Contains(held, secret) {
				t.Errorf("private %v: the cache holds %q in clear", p.Private, secret)
			}
		}
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// naiveDirectives splits v on every comma: with no quotes in v it is
// exactly the directive list, so it is an oracle for the parser there.
func naiveDirectives(v string) map[string]string {
	m := map[string]string{}
	for _, d := range strings.Split(v, ",") {
		name, arg, _ := strings.Cut(d, "=")
		name = strings.ToLower(strings.Trim(name, " \t"))
		if _, seen := m[name]; !seen {
			m[name] = strings.Trim(arg, " \t")
		}
	}
	return m
}

func FuzzCacheControl(f *testing.F) {
	for _, s := range []string{"no-store", "max-age=0, NO-STORE", `private="no-store"`, `no-cache="a,\"b", no-store`,
		" no-store ", "no-store=1", "no-storex", `"`, `a="\`, ",,", "max-age=60, must-revalidate", `s-maxage="10"`,
		"max-age=-1", "max-age=99999999999999999999", "max-age=5, max-age=3", "Proxy-Revalidate, Private", "no-cache,max-age=1x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		cc := parseCacheControl(http.Header{"Cache-Control": {v}})
		for _, a := range []int64{cc.maxAge, cc.sMaxAge} {
			if a < -1 || a > maxDeltaSeconds {
				t.Fatalf("%q: age %d out of range", v, a)
			}
		}
		if strings.Contains(v, `"`) {
			return
		}
		m := naiveDirectives(v)
		flags := map[string]bool{"no-store": cc.noStore, "no-cache": cc.noCache, "private": cc.private,
			"must-revalidate": cc.mustRevalidate, "proxy-revalidate": cc.proxyRevalidate}
		for name, got := range flags {
			if _, want := m[name]; got != want {
				t.Fatalf("%q: %s = %v, plain split says %v", v, name, got, want)
			}
		}
		if _, ok := m["max-age"]; ok != (cc.maxAge >= 0) {
			t.Fatalf("%q: max-age %d, plain split found it: %v", v, cc.maxAge, ok)
		}
		if cc.maxAge > 0 && !strings.Contains(v, "=") {
			t.Fatalf("%q: max-age %d from no argument", v, cc.maxAge)
		}
	})
}

func FuzzVary(f *testing.F) {
	for _, s := range []string{"Accept-Language", "accept-language , Accept-Encoding", "*", "Cookie, *", ",,", " \t", "a,,b", "X-Ä"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		names, star := parseVary(http.Header{"Vary": {v}})
		wantStar, elems := false, 0
		for _, e := range strings.Split(v, ",") {
			switch strings.Trim(e, " \t") {
			case "":
			case "*":
				wantStar = true
			default:
				elems++
			}
		}
		if star != wantStar || len(names) != elems {
			t.Fatalf("%q: %q star %v, want %d names star %v", v, names, star, elems, wantStar)
		}
		for _, n := range names {
			if n == "" || n == "*" || strings.ContainsRune(n, ',') || strings.Trim(n, " \t") != n || textproto.CanonicalMIMEHeaderKey(n) != n {
				t.Fatalf("%q: bad name %q", v, n)
			}
		}
		// A Vary'd value matches itself however it is spaced.
		h1 := http.Header{}
		h2 := http.Header{}
		for _, n := range names {
			h1[n] = []string{"a,b"}
			h2[n] = []string{" a ", "b"}
		}
		if fieldsHash(h1, names, true) != fieldsHash(h2, names, true) {
			t.Fatalf("%q: one value, two hashes", v)
		}
	})
}
