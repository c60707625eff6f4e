package resilient

import (
	"cmp"
	"context"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"time"
	"weak"

	"github.com/resilient-go/resilient/internal/httpx"
)

// BreakerControl is an operator's hand on the breakers of the
// CircuitBreaker stages whose policy names it (BreakerPolicy.Control):
// during an incident, Isolate takes a host out of service, Reset puts it
// back, and Snapshot shows every breaker. The zero value is ready to use,
// and it is safe for concurrent use.
//
// A key is what the stage keys its breakers by, as errors, callbacks and
// metrics show it: the authority "http://api.example.com:80" (scheme,
// lower-case host, port always written), or BreakerPolicy.Key's result.
// An authority may also be given without its default port
// ("https://api.example.com") or with a trailing "/".
//
// One Control may serve several stages (each pipeline of a program, say).
// Keys do not belong to a stage: Isolate and Reset act on the key in every
// stage served, and Snapshot lists each stage's breakers, so a key two
// stages keep appears twice. A stage that is garbage collected drops out.
type BreakerControl struct {
	mu       sync.Mutex
	stages   []weak.Pointer[breakerTransport] // guarded by mu
	isolated map[string]bool                  // guarded by mu: canonical keys held open
}

// BreakerSnapshot is one breaker's state at one moment.
type BreakerSnapshot struct {
	Key   string // as in CircuitOpenError.Key
	State State
	// ConsecutiveFailures is the current run of failures while closed.
	ConsecutiveFailures int
	// Failures and Successes are the calls counted in the breaker's
	// Window while closed.
	Failures, Successes int
	// ProbeIn is the time until an open breaker lets a probe through;
	// zero otherwise, and while isolated.
	ProbeIn time.Duration
	// Isolated is set while Isolate holds the breaker open.
	Isolated bool
}

// attach makes c serve t.
func (c *BreakerControl) attach(t *breakerTransport) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stages = append(c.live(), weak.Make(t))
}

// live drops the stages that are gone and returns the rest. Requires mu
// held.
func (c *BreakerControl) live() []weak.Pointer[breakerTransport] {
	return slices.DeleteFunc(c.stages, func(w weak.Pointer[breakerTransport]) bool { return w.Value() == nil })
}

// served returns the stages c serves now.
func (c *BreakerControl) served() []*breakerTransport {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stages = c.live()
	out := make([]*breakerTransport, 0, len(c.stages))
	for _, w := range c.stages {
		if t := w.Value(); t != nil {
			out = append(out, t)
		}
	}
	return out
}

// Isolate holds key's breaker open until Reset, in every stage c serves:
// calls fail at once with a *CircuitOpenError (Isolated set), and no probe
// goes. A key no call has used yet is isolated too: its breaker is made
// open, and one made later (for a stage built later, or after the stage
// forgot an idle key) starts open.
func (c *BreakerControl) Isolate(key string) {
	ck := controlKey(key)
	c.mu.Lock()
	if c.isolated == nil {
		c.isolated = map[string]bool{}
	}
	c.isolated[ck] = true
	c.mu.Unlock()
	for _, t := range c.served() {
		if k, ok := t.compartment(key); ok {
			b := t.reg.Get(k)
			b.Isolate()
			t.flushCtx(context.Background(), b)
		}
	}
}

// Reset closes key's breaker and clears its counts, in every stage c
// serves, ending an Isolate.
func (c *BreakerControl) Reset(key string) {
	ck := controlKey(key)
	c.mu.Lock()
	delete(c.isolated, ck)
	c.mu.Unlock()
	for _, t := range c.served() {
		t.reg.Range(func(_ compartmentKey, b *keyedBreaker) bool {
			if controlKey(b.key) != ck {
				return true
			}
			b.Reset()
			t.flushCtx(context.Background(), b)
			return false
		})
	}
}

// Snapshot lists every breaker the stages c serves keep, by stage in the
// order they were built, then by key; and a key isolated with no breaker
// yet, as open. Reading changes nothing: an open breaker past its timeout
// reads as half-open.
func (c *BreakerControl) Snapshot() []BreakerSnapshot {
	var out []BreakerSnapshot
	seen := map[string]bool{}
	for _, t := range c.served() {
		n := len(out)
		t.reg.Range(func(_ compartmentKey, b *keyedBreaker) bool {
			s := b.Snapshot()
			out = append(out, BreakerSnapshot{
				Key: b.key, State: State(s.State), ConsecutiveFailures: int(s.ConsecutiveFailures),
				Failures: int(s.Failures), Successes: int(s.Successes), ProbeIn: s.ProbeIn, Isolated: s.Isolated,
			})
			seen[controlKey(b.key)] = true
			return true
		})
		slices.SortFunc(out[n:], func(a, b BreakerSnapshot) int { return cmp.Compare(a.Key, b.Key) })
	}
	c.mu.Lock()
	var pending []BreakerSnapshot
	for k := range c.isolated {
		if !seen[k] {
			pending = append(pending, BreakerSnapshot{Key: k, State: StateOpen, Isolated: true})
		}
	}
	c.mu.Unlock()
	slices.SortFunc(pending, func(a, b BreakerSnapshot) int { return cmp.Compare(a.Key, b.Key) })
	return append(out, pending...)
}

// isolatedKey reports whether key is isolated. It runs under the stage's
// registry lock, and takes only c's.
func (c *BreakerControl) isolatedKey(key string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.isolated) > 0 && c.isolated[controlKey(key)]
}

// compartment is the registry key t keeps key's breaker under, and false
// when key cannot be one of t's (not an authority, for a stage keyed by
// authority).
func (t *breakerTransport) compartment(key string) (compartmentKey, bool) {
	if t.p.Key != nil {
		return compartmentKey{custom: key, keyed: true}, true
	}
	u, ok := authorityURL(key)
	if !ok {
		return compartmentKey{}, false
	}
	return compartmentKey{auth: httpx.AuthorityOf(&http.Request{URL: u})}, true
}

// controlKey writes an authority as a stage keyed by authority does
// ("https://API.example.com" is "https://api.example.com:443"), so that
// the forms an operator may type name one breaker; other keys are kept.
func controlKey(key string) string {
	if u, ok := authorityURL(key); ok {
		return httpx.AuthorityOf(&http.Request{URL: u}).String()
	}
	return key
}

// authorityURL parses key as scheme://host[:port][/].
func authorityURL(key string) (*url.URL, bool) {
	u, err := url.Parse(key)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return nil, false
	}
	return u, true
}
