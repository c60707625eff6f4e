package sdktest

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/elastic/go-elasticsearch/v8"

	"github.com/resilient-go/resilient/resilienttest"
)

// esClient talks to u through rt with the ES transport's retries off
// (DisableRetry). It then no longer buffers request bodies: our Retry can
// re-send a body only if net/http could set GetBody, that is if the caller
// passed a *bytes.Reader, *bytes.Buffer or *strings.Reader (see
// TestElasticsearchOpaqueBodyIsSentOnce).
func esClient(u string, rt http.RoundTripper) *elasticsearch.Client {
	return esClientRetries(u, rt, 0)
}

// esClientRetries keeps the ES transport's retries when retries > 0: that
// many, on 502, 503, 504 and on any transport error, with no wait between.
func esClientRetries(u string, rt http.RoundTripper, retries int) *elasticsearch.Client {
	cfg := elasticsearch.Config{Addresses: []string{u}, Transport: rt, DisableRetry: retries == 0, MaxRetries: retries}
	c, err := elasticsearch.NewClient(cfg)
	if err != nil {
		panic(err)
	}
	return c
}

// esStatus turns an ES response into an error: esapi returns 4xx and 5xx
// as a response, not an error.
func esStatus(res interface {
	IsError() bool
	String() string
}, body io.ReadCloser, err error) error {
	if err != nil {
		return err
	}
	defer body.Close()
	if res.IsError() {
		return fmt.Errorf("elasticsearch: %s", res.String())
	}
	_, err = io.Copy(io.Discard, body)
	return err
}

func esIndex(ctx context.Context, c *elasticsearch.Client, body io.Reader) error {
	res, err := c.Index("idx", body, c.Index.WithContext(ctx))
	if err != nil {
		return err
	}
	return esStatus(res, res.Body, nil)
}

func elasticSDK() sdk {
	return sdk{
		name: "go-elasticsearch",
		write: func(ctx context.Context, u string, rt http.RoundTripper) error {
			return esIndex(ctx, esClient(u, rt), strings.NewReader(`{"title":"flaky"}`))
		},
		read: func(ctx context.Context, u string, rt http.RoundTripper) error {
			c := esClient(u, rt)
			res, err := c.Get("idx", "1", c.Get.WithContext(ctx))
			if err != nil {
				return err
			}
			return esStatus(res, res.Body, nil)
		},
		ok: []resilienttest.Fault{
			// The client refuses a 2xx without it (its "product check").
			resilienttest.Header("X-Elastic-Product", "Elasticsearch"),
			resilienttest.Header("Content-Type", "application/json"),
			resilienttest.OnMethod(http.MethodPost, resilienttest.Respond(http.StatusCreated, `{"_index":"idx","_id":"1","result":"created"}`)),
			resilienttest.Respond(http.StatusOK, `{"_index":"idx","_id":"1","found":true,"_source":{}}`),
		},
	}
}
