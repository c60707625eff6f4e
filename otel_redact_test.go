package resilient_test

import (
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/resilient-go/resilient"
)

// TestTracingRedactsCredentialNames sends each credential query name, in
// the case it is listed in and in two others, and looks for its value in
// url.full and in the span status of a failed attempt.
func TestTracingRedactsCredentialNames(t *testing.T) {
	names := []string{"access_token", "token", "api_key", "apikey", "key", "client_secret",
		"password", "sig", "signature", "X-Amz-Date", "X-Amz-SignedHeaders", "X-Goog-Credential", "X-Goog-Expires"}
	for _, name := range names {
		for _, n := range []string{name, strings.ToUpper(name), strings.ToUpper(name[:1]) + strings.ToLower(name[1:])} {
			t.Run(n, func(t *testing.T) {
				k := newOtelKit(t)
				fail := false
				base := fbRoundTrip(func(r *http.Request) (*http.Response, error) {
					if fail {
						return nil, &url.Error{Op: "Get", URL: r.URL.String(), Err: errors.New("refused")}
					}
					return &http.Response{StatusCode: 200, Body: io.NopCloser(strings.NewReader("")), Request: r}, nil
				})
				rt := resilient.Chain(base, resilient.Tracing(k.policy()))
				req, _ := http.NewRequest(http.MethodGet, "http://127.0.0.1/p?a=1&"+n+"=s3cr3t-v4lue&b=2", nil)
				resp, err := rt.RoundTrip(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				fail = true
				if _, err := rt.RoundTrip(req); err == nil || !strings.Contains(err.Error(), "s3cr3t") {
					t.Fatalf("the caller's own error %v should be untouched", err)
				}
				spans := k.rec.Ended()
				if len(spans) != 2 {
					t.Fatalf("%d spans, want 2", len(spans))
				}
				full, _ := attrOf(spans[0], "url.full")
				if want := "http://127.0.0.1/p?a=1&" + n + "=REDACTED&b=2"; full.AsString() != want {
					t.Errorf("url.full = %q, want %q", full.AsString(), want)
				}
				if d := spans[1].Status().Description; strings.Contains(d, "s3cr3t") || !strings.Contains(d, n+"=REDACTED") {
					t.Errorf("span status %q, want the URL redacted", d)
				}
			})
		}
	}
}
