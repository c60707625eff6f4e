package resilient

import "net/http"

// Middleware is one stage of a pipeline: it wraps the RoundTripper below it.
type Middleware func(next http.RoundTripper) http.RoundTripper

// Chain stacks stages around base, the first stage outermost:
// Chain(base, a, b, c) is a(b(c(base))). A nil base means
// http.DefaultTransport. Nil stages are skipped, which makes switching a
// stage off a matter of passing nil.
func Chain(base http.RoundTripper, stages ...Middleware) http.RoundTripper {
	rt := base
	if rt == nil {
		rt = http.DefaultTransport
	}
	for i := len(stages) - 1; i >= 0; i-- {
		if stages[i] != nil {
			rt = stages[i](rt)
		}
	}
	return rt
}
