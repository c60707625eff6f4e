// Package payments stands for a third-party SDK: code you call but do not
// change. Like many SDKs it builds its own *http.Client, with a transport
// that authenticates every request, and exposes that client so callers can
// tune it. That exposed client is where resilient goes in.
package payments

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
)

// Client calls the payments API.
type Client struct {
	// HTTPClient sends every request. Replace its Transport to change how
	// requests are sent; keep the one New puts there, or requests go out
	// unauthenticated.
	HTTPClient *http.Client

	baseURL string
}

// New returns a client for the API at baseURL that authenticates with
// apiKey.
func New(baseURL, apiKey string) *Client {
	return &Client{
		HTTPClient: &http.Client{Transport: &Transport{APIKey: apiKey}},
		baseURL:    baseURL,
	}
}

// Charge is a payment.
type Charge struct {
	ID       string `json:"id"`
	Amount   int    `json:"amount"`
	Currency string `json:"currency"`
	Status   string `json:"status"`
}

// CreateCharge charges amount (in the currency's smallest unit).
func (c *Client) CreateCharge(ctx context.Context, amount int, currency string) (*Charge, error) {
	body, err := json.Marshal(map[string]any{"amount": amount, "currency": currency})
	if err != nil {
		return nil, err
	}
	// A bytes.Reader body lets net/http set GetBody, so the request can be
	// sent again.
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.baseURL+"/v1/charges", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	return c.do(req)
}

// GetCharge fetches the charge with the given ID.
func (c *Client) GetCharge(ctx context.Context, id string) (*Charge, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.baseURL+"/v1/charges/"+url.PathEscape(id), nil)
	if err != nil {
		return nil, err
	}
	return c.do(req)
}

func (c *Client) do(req *http.Request) (*Charge, error) {
	resp, err := c.HTTPClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("payments: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return nil, fmt.Errorf("payments: %s %s: %s", req.Method, req.URL.Path, resp.Status)
	}
	var ch Charge
	if err := json.NewDecoder(resp.Body).Decode(&ch); err != nil {
		return nil, fmt.Errorf("payments: decoding the charge: %w", err)
	}
	return &ch, nil
}

// Transport authenticates requests with an API key, in the style of
// oauth2.Transport: it sends a clone of each request with an Authorization
// header and never modifies the caller's.
type Transport struct {
	APIKey string
	// Base sends the authenticated request; nil means
	// http.DefaultTransport.
	Base http.RoundTripper
}

// RoundTrip sends req with "Authorization: Bearer <APIKey>".
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	r := req.Clone(req.Context())
	r.Header.Set("Authorization", "Bearer "+t.APIKey)
	return t.base().RoundTrip(r)
}

// CloseIdleConnections closes the base transport's idle connections.
func (t *Transport) CloseIdleConnections() {
	if c, ok := t.base().(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

func (t *Transport) base() http.RoundTripper {
	if t.Base != nil {
		return t.Base
	}
	return http.DefaultTransport
}
