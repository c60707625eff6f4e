package resilient_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/resilient-go/resilient"
	"github.com/resilient-go/resilient/resilienttest"
)

// TestFallbackMarksWhatItMadeUp: a made-up answer says so; the dependency's
// own failure, passed on, does not. On the old code nothing told a static
// 200 from the dependency's.
func TestFallbackMarksWhatItMadeUp(t *testing.T) {
	own := func(req *http.Request, resp *http.Response, err error) (*http.Response, error) {
		return &http.Response{StatusCode: 200, Body: http.NoBody, Request: req}, nil
	}
	for _, tc := range []struct {
		name string
		f    resilient.FallbackFunc
		want string
	}{
		{"static", resilient.StaticFallback(200, nil, "{}"), "static"},
		{"caller's own", own, "true"},
	} {
		rt := resilient.Chain(resilienttest.NewTransport(resilienttest.Status(503)), resilient.Fallback(tc.f))
		resp, err := rt.RoundTrip(mustGet(t, "http://api.test/"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := resp.Header.Get(resilient.FallbackHeader); got != tc.want {
			t.Errorf("%s: %s = %q, want %q", tc.name, resilient.FallbackHeader, got, tc.want)
		}
	}
}

// TestStaticFallbackLeavesWritesAlone: a failed POST /orders is not
// answered "200, order placed" unless asked for. On the old code it was.
func TestStaticFallbackLeavesWritesAlone(t *testing.T) {
	for _, tc := range []struct {
		name string
		f    resilient.FallbackFunc
		want int
	}{
		{"StaticFallback", resilient.StaticFallback(200, nil, `{"items":[]}`), 503},
		{"StaticFallbackAnyMethod", resilient.StaticFallbackAnyMethod(200, nil, `{"items":[]}`), 200},
	} {
		rt := resilient.Chain(resilienttest.NewTransport(resilienttest.Status(503)), resilient.Fallback(tc.f))
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, "http://api.test/orders", strings.NewReader("{}"))
		resp, err := rt.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s: a failed POST got %d, want %d", tc.name, resp.StatusCode, tc.want)
		}
	}
}
