package resilient

import (
	"net/http"

	"github.com/resilient-go/resilient/internal/httpx"
	"github.com/resilient-go/resilient/internal/registry"
)

// compartmentKey names the breaker or pool a request belongs to: its
// authority, or the user's key when the policy has a Key func. It is
// comparable and built without allocating.
type compartmentKey struct {
	auth   httpx.Authority
	custom string
	keyed  bool
}

// lookup returns the value of req's compartment in reg. Without a Key func
// the key is a function of the URL's scheme and host alone (or req.Host),
// so a request with the same raw strings as the last skips building it.
func lookup[V any](reg *registry.Map[compartmentKey, V], keyFunc func(*http.Request) string, req *http.Request) V {
	if keyFunc != nil {
		return reg.Get(keyOf(keyFunc, req))
	}
	host := req.URL.Host
	if host == "" {
		host = req.Host
	}
	return reg.GetHinted(req.URL.Scheme, host, func() compartmentKey { return keyOf(nil, req) })
}

func keyOf(keyFunc func(*http.Request) string, req *http.Request) compartmentKey {
	if keyFunc != nil {
		return compartmentKey{custom: keyFunc(req), keyed: true}
	}
	return compartmentKey{auth: httpx.AuthorityOf(req)}
}

// String is the name users see in errors, callbacks and metrics.
func (k compartmentKey) String() string {
	if k.keyed {
		return k.custom
	}
	return k.auth.String()
}
