// Package inventory is a client for a stock service, written the way an
// application would write one: its calls go through resilient, and when the
// service fails it answers with the last stock level it saw.
//
// The package is an example of testing such code. Its tests,
// inventory_test.go, script a failing stock service with resilienttest and
// check what the client does: retries, idempotency keys, timeouts, the
// fallback and the breaker. Read them as the documentation.
package inventory

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/resilient-go/resilient"
)

// ErrOutOfStock is returned by Reserve when the service has too few items.
var ErrOutOfStock = errors.New("inventory: out of stock")

// ErrUnavailable is returned when the service could not answer: a server
// error after retries, a timeout, or an open circuit breaker.
var ErrUnavailable = errors.New("inventory: service unavailable")

// Client calls the stock service. It is safe for concurrent use.
type Client struct {
	baseURL string
	http    *http.Client
}

// New returns a client for the service at baseURL, sending through base
// (nil means http.DefaultTransport). opts are applied after the client's
// own settings, so callers, tests above all, can change them: a test can
// shorten the timeouts or switch the breaker off.
func New(baseURL string, base http.RoundTripper, opts ...resilient.Option) *Client {
	cache := resilient.NewStaleCache(resilient.StaleCachePolicy{MaxAge: 10 * time.Minute})
	settings := []resilient.Option{
		// Stock lookups take tens of milliseconds; 2 s is stuck.
		resilient.WithAttemptTimeout(2 * time.Second),
		resilient.WithTotalTimeout(5 * time.Second),
		// A stock level a few minutes old beats no product page.
		resilient.WithFallback(cache.Fallback),
	}
	if base == nil {
		base = http.DefaultTransport
	}
	rt := resilient.NewTransport(cache.Record(base), append(settings, opts...)...)
	return &Client{baseURL: strings.TrimSuffix(baseURL, "/"), http: &http.Client{Transport: rt}}
}

// Close closes idle connections.
func (c *Client) Close() { c.http.CloseIdleConnections() }

// Level is the stock of one item.
type Level struct {
	SKU       string `json:"sku"`
	Available int    `json:"available"`
	// Stale is set when the service failed and Level is the last one it
	// reported.
	Stale bool `json:"-"`
}

// Stock returns the stock level of sku.
func (c *Client) Stock(ctx context.Context, sku string) (Level, error) {
	var lvl Level
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.baseURL+"/stock/"+url.PathEscape(sku), nil)
	if err != nil {
		return lvl, err
	}
	resp, err := c.send(req, http.StatusOK, &lvl)
	if err != nil {
		return lvl, err
	}
	lvl.Stale = resp.Header.Get(resilient.StaleHeader) != ""
	return lvl, nil
}

// Reservation holds items for an order.
type Reservation struct {
	ID       string `json:"id"`
	SKU      string `json:"sku"`
	Quantity int    `json:"quantity"`
}

// Reserve holds quantity items of sku. The request is a POST: the client
// gives it an idempotency key, so it may be retried without reserving twice.
func (c *Client) Reserve(ctx context.Context, sku string, quantity int) (Reservation, error) {
	var r Reservation
	body, err := json.Marshal(map[string]any{"sku": sku, "quantity": quantity})
	if err != nil {
		return r, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.baseURL+"/reservations", bytes.NewReader(body))
	if err != nil {
		return r, err
	}
	req.Header.Set("Content-Type", "application/json")
	_, err = c.send(req, http.StatusCreated, &r)
	return r, err
}

// maxBody bounds a response body; the service's are a few hundred bytes.
const maxBody = 1 << 20

// send sends req and decodes a want response into out.
func (c *Client) send(req *http.Request, want int, out any) (*http.Response, error) {
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == want:
	case resp.StatusCode == http.StatusConflict:
		return nil, ErrOutOfStock
	case resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests:
		return nil, fmt.Errorf("%w: %s %s: %s", ErrUnavailable, req.Method, req.URL.Path, resp.Status)
	default:
		return nil, fmt.Errorf("inventory: %s %s: %s", req.Method, req.URL.Path, resp.Status)
	}
	// Read the whole body: the stale cache keeps only bodies read to the end.
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return nil, fmt.Errorf("%w: reading %s: %w", ErrUnavailable, req.URL.Path, err)
	}
	if err := json.Unmarshal(body, out); err != nil {
		return nil, fmt.Errorf("inventory: decoding %s: %w", req.URL.Path, err)
	}
	return resp, nil
}
