package resilient

import (
	"crypto/sha256"
	"encoding/binary"
	"hash"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
	"time"
)

// This file holds the stale cache's rules: what it stores, what it serves,
// and what its key includes. The README's table says the same in prose.

// credentialFields are the request fields that say who is asking. A shared
// cache keys by them so that one user's stored response never answers
// another's request.
var credentialFields = []string{"Authorization", "Cookie", "Proxy-Authorization"}

// requestRules says whether a response to req may be stored, and whether
// req may be answered from the cache: only a GET for a whole
// representation; no-store forbids both, no-cache forbids an answer that
// the origin has not validated (RFC 9111 §5.2.1.4, .5).
func requestRules(req *http.Request) (store, serve bool) {
	if req.Method != http.MethodGet && req.Method != "" {
		return false, false
	}
	if _, ok := req.Header["Range"]; ok {
		return false, false
	}
	cc := parseCacheControl(req.Header)
	return !cc.noStore, !cc.noStore && !cc.noCache
}

// responseRules says whether resp may be stored and, if so, which request
// fields select it (its Vary) and until when it may be served: limited
// means a copy past its freshness must not be served without validation
// (must-revalidate, and in a shared cache proxy-revalidate and s-maxage:
// RFC 9111 §5.2.2.2, .8, .10), which a stale-if-error cache cannot do.
// received is the clock offset at which the headers arrived.
func (c *StaleCache) responseRules(resp *http.Response, received time.Duration) (vary []string, until time.Duration, limited, ok bool) {
	if resp.StatusCode < 200 || resp.StatusCode > 299 || resp.StatusCode == http.StatusPartialContent ||
		resp.ContentLength > c.maxEntry {
		return nil, 0, false, false
	}
	cc := parseCacheControl(resp.Header)
	// no-cache, even with field names, is never served unvalidated: storing
	// it would be for nothing. A shared cache must not store private.
	if cc.noStore || cc.noCache || cc.private && !c.private {
		return nil, 0, false, false
	}
	vary, star := parseVary(resp.Header)
	if star {
		return nil, 0, false, false // varies on what no request can show
	}
	limited = cc.mustRevalidate || !c.private && (cc.proxyRevalidate || cc.sMaxAge >= 0)
	if limited {
		until = received + freshness(resp.Header, cc, !c.private)
	}
	return vary, until, limited, true
}

// freshness is the response's remaining freshness lifetime when it was
// received (RFC 9111 §4.2.1, §4.2.3): s-maxage for a shared cache, else
// max-age, else Expires minus Date, less the Age the response came with.
// No explicit lifetime is none: we compute no heuristic one.
func freshness(h http.Header, cc cacheControl, shared bool) time.Duration {
	var life int64
	switch {
	case shared && cc.sMaxAge >= 0:
		life = cc.sMaxAge
	case cc.maxAge >= 0:
		life = cc.maxAge
	default:
		exp, err1 := http.ParseTime(h.Get("Expires"))
		date, err2 := http.ParseTime(h.Get("Date"))
		if err1 != nil || err2 != nil {
			return 0
		}
		return max(exp.Sub(date), 0)
	}
	age := deltaSeconds(h.Get("Age"))
	return time.Duration(max(life-age, 0)) * time.Second
}

// storedHeader is the header a stored copy keeps: Set-Cookie belongs to
// the session of the caller who got it first, never to a later one.
func storedHeader(h http.Header) http.Header {
	h = h.Clone()
	delete(h, "Set-Cookie")
	return h
}

// cacheControl is what the stale cache reads from a Cache-Control field.
type cacheControl struct {
	noStore, noCache, private, mustRevalidate, proxyRevalidate bool
	maxAge, sMaxAge                                            int64 // seconds; -1 when absent
}

// parseCacheControl reads the Cache-Control fields of h. Names match
// ignoring case; a directive given twice keeps its smaller value (a cache
// may treat conflicting freshness as stale, RFC 9111 §4.2.1).
func parseCacheControl(h http.Header) cacheControl {
	cc := cacheControl{maxAge: -1, sMaxAge: -1}
	for _, v := range h["Cache-Control"] {
		for v != "" {
			var name, arg string
			name, arg, v = nextCacheDirective(v)
			switch strings.ToLower(name) {
			case "no-store":
				cc.noStore = true
			case "no-cache":
				cc.noCache = true
			case "private":
				cc.private = true
			case "must-revalidate":
				cc.mustRevalidate = true
			case "proxy-revalidate":
				cc.proxyRevalidate = true
			case "max-age":
				cc.maxAge = minSeconds(cc.maxAge, deltaSeconds(arg))
			case "s-maxage":
				cc.sMaxAge = minSeconds(cc.sMaxAge, deltaSeconds(arg))
			}
		}
	}
	return cc
}

func minSeconds(old, v int64) int64 {
	if old < 0 {
		return v
	}
	return min(old, v)
}

// maxDeltaSeconds is where RFC 9111 §1.2.2 caps a delta-seconds value.
const maxDeltaSeconds = 1 << 31

// deltaSeconds parses a delta-seconds value, quoted or not; an invalid one
// is 0, which makes the response stale (RFC 9111 §4.2.1).
func deltaSeconds(s string) int64 {
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		s = s[1 : len(s)-1]
	}
	if s == "" || strings.TrimLeft(s, "0123456789") != "" {
		return 0
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n > maxDeltaSeconds {
		return maxDeltaSeconds // only overflow fails once the digits check passed
	}
	return n
}

// nextCacheDirective returns the name and the argument (as written, quotes
// kept) of the first directive in v, and the rest of v after its comma.
// Commas inside a quoted argument do not split directives.
func nextCacheDirective(v string) (name, arg, rest string) {
	quoted := false
	eq := -1 // index of the '=' ending the name
	end := len(v)
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case quoted && c == '\\':
			i++
		case c == '"':
			quoted = !quoted
		case quoted:
		case c == '=' && eq < 0:
			eq = i
		case c == ',':
			end, rest = i, v[i+1:]
			i = len(v)
		}
	}
	if eq < 0 {
		return strings.Trim(v[:end], " \t"), "", rest
	}
	return strings.Trim(v[:eq], " \t"), strings.Trim(v[eq+1:end], " \t"), rest
}

// parseVary returns the field names the Vary fields of h list, in
// canonical form, and whether one is "*".
func parseVary(h http.Header) (names []string, star bool) {
	for _, v := range h["Vary"] {
		for e := range strings.SplitSeq(v, ",") {
			e = strings.Trim(e, " \t")
			switch e {
			case "":
			case "*":
				star = true
			default:
				names = append(names, textproto.CanonicalMIMEHeaderKey(e))
			}
		}
	}
	return names, star
}

// fieldsHash is a SHA-256 of the named fields of h, so that the key can
// tell credentials and Vary'd values apart without holding them in clear.
// Each value is length-prefixed, and an absent field differs from an empty
// one. comma splits values into their list elements, trimmed: the
// normalisation RFC 9111 §4.1 allows when comparing Vary'd fields.
func fieldsHash(h http.Header, names []string, comma bool) string {
	d := sha256.New()
	for _, n := range names {
		writeLen(d, n)
		vs, ok := h[n]
		if !ok {
			d.Write([]byte{0})
			continue
		}
		d.Write([]byte{1})
		for _, v := range vs {
			if !comma {
				writeLen(d, v)
				continue
			}
			for e := range strings.SplitSeq(v, ",") {
				writeLen(d, strings.Trim(e, " \t"))
			}
		}
	}
	return string(d.Sum(nil))
}

func writeLen(d hash.Hash, s string) {
	d.Write(binary.AppendUvarint(nil, uint64(len(s))))
	d.Write([]byte(s))
}

// hasCredentials reports whether h carries one of credentialFields.
func hasCredentials(h http.Header) bool {
	for _, n := range credentialFields {
		if _, ok := h[n]; ok {
			return true
		}
	}
	return false
}
