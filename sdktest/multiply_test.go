package sdktest

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/resilient-go/resilient"
	"github.com/resilient-go/resilient/resilienttest"
)

// With both retry layers on, each SDK attempt is a whole call to the
// pipeline, so a server that always fails sees their product.
func TestRetryLayersMultiply(t *testing.T) {
	for _, c := range []struct {
		name   string
		faults []resilienttest.Fault
		call   func(ctx context.Context, u string, rt http.RoundTripper) error
		want   int
	}{
		// ES: 1 + 3 retries on 503, no wait between.
		{"go-elasticsearch 4x3", []resilienttest.Fault{resilienttest.Status(http.StatusServiceUnavailable)},
			func(ctx context.Context, u string, rt http.RoundTripper) error {
				return esIndex(ctx, esClientRetries(u, rt, 3), strings.NewReader(`{"title":"x"}`))
			}, 12},
		// client-go: 1 + 10 retries, only because Retry-After is there;
		// "0" keeps the test fast. Default rate limiter kept.
		{"client-go 11x3", []resilienttest.Fault{resilienttest.RetryAfter(0), resilienttest.Status(http.StatusServiceUnavailable)},
			func(ctx context.Context, u string, rt http.RoundTripper) error {
				return kubeCreate(ctx, kubeClientLimited(u, rt))
			}, 33},
		// openai-go: 1 + 2 retries; Retry-After-Ms: 1 shortens its waits.
		{"openai-go 3x3", []resilienttest.Fault{resilienttest.Header("Retry-After-Ms", "1"), resilienttest.Status(http.StatusServiceUnavailable)},
			func(ctx context.Context, u string, rt http.RoundTripper) error {
				c := openai.NewClient(option.WithBaseURL(u+"/"), option.WithAPIKey("sk-test"),
					option.WithHTTPClient(&http.Client{Transport: rt}), option.WithMaxRetries(2))
				_, err := c.Models.Get(ctx, "m1")
				return err
			}, 9},
		// AWS (DynamoDB's default 4 attempts): ours cannot replay a
		// smithy-go body, so it is 4x1, not 4x3.
		{"aws-sdk-go-v2 4x1", []resilienttest.Fault{resilienttest.Status(http.StatusServiceUnavailable)},
			func(ctx context.Context, u string, rt http.RoundTripper) error {
				return dynamoPut(ctx, dynamoClient(u, rt, 4))
			}, 4},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			// The breaker off, to see the raw product; with the default
			// breaker (5 failures in a row) the host is cut off at 5.
			for _, b := range []struct {
				name string
				opts []resilient.Option
				want int
			}{{"no breaker", []resilient.Option{resilient.Without(resilient.StageBreaker)}, c.want}, {"default breaker", nil, min(c.want, 5)}} {
				srv := resilienttest.NewServer(t, c.faults...)
				start := time.Now()
				if err := c.call(callCtx(t), srv.URL, pipeline(t, b.opts...)); err == nil {
					t.Fatalf("%s: call succeeded against a server that always fails", b.name)
				}
				if n := srv.Count(); n != b.want {
					t.Errorf("%s: server saw %d requests, want %d", b.name, n, b.want)
				}
				t.Logf("%s: %d arrivals in %v", b.name, srv.Count(), time.Since(start).Round(time.Millisecond))
			}
		})
	}
}

// With DisableRetry the ES transport no longer buffers the body: a body
// net/http cannot rewind (no GetBody) is sent once by our Retry, never
// re-sent empty.
func TestElasticsearchOpaqueBodyIsSentOnce(t *testing.T) {
	t.Parallel()
	srv := resilienttest.NewServer(t, append([]resilienttest.Fault{resilienttest.FailFirst(1, http.StatusServiceUnavailable)}, elasticSDK().ok...)...)
	opaque := struct{ io.Reader }{strings.NewReader(`{"title":"x"}`)}
	if err := esIndex(callCtx(t), esClient(srv.URL, pipeline(t)), opaque); err == nil {
		t.Fatal("index succeeded; want the 503, as the body cannot be re-sent")
	}
	checkArrivals(t, srv.Requests(), 1, true, resilient.DefaultIdempotencyHeader)
}

// With the AWS SDK's retries off, ours cannot re-send a DynamoDB call:
// smithy-go gives the request a body but no GetBody.
func TestAWSBodyNotReplayableByUs(t *testing.T) {
	t.Parallel()
	srv := resilienttest.NewServer(t, append([]resilienttest.Fault{resilienttest.FailFirst(1, http.StatusServiceUnavailable)}, awsSDK().ok...)...)
	if err := dynamoPut(callCtx(t), dynamoNoRetry(srv.URL, pipeline(t))); err == nil {
		t.Fatal("PutItem succeeded; want the 503, as our Retry cannot rewind the body")
	}
	checkArrivals(t, srv.Requests(), 1, true, "")
}
