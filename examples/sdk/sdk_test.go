package main

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/resilient-go/resilient/examples/sdk/payments"
	"github.com/resilient-go/resilient/resilienttest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// The wrapped SDK rides out the flaky API: the POST is retried under one
// idempotency key, the hung GET is cut off and retried, and every attempt
// carries the SDK's credentials.
func TestWrappedSDK(t *testing.T) {
	srv := resilienttest.NewServer(t, flakyAPI()...)
	var out strings.Builder
	if err := run(&out, srv); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	t.Log("\n" + out.String())

	reqs := srv.Requests()
	wantPaths := []string{"POST /v1/charges", "POST /v1/charges", "POST /v1/charges", "GET /v1/charges/ch_1", "GET /v1/charges/ch_1"}
	if len(reqs) != len(wantPaths) {
		t.Fatalf("server received %d requests, want %d", len(reqs), len(wantPaths))
	}
	for i, r := range reqs {
		if got := r.Method + " " + r.URL.Path; got != wantPaths[i] {
			t.Errorf("request #%d: %s, want %s", r.N, got, wantPaths[i])
		}
		if got := r.Header.Get("Authorization"); got != "Bearer "+apiKey {
			t.Errorf("request #%d: Authorization %q, want the SDK's key", r.N, got)
		}
		if got := string(r.Body); r.Method == http.MethodPost && got != `{"amount":500,"currency":"eur"}` {
			t.Errorf("request #%d: body %q, want the charge replayed in full", r.N, got)
		}
	}
	key := reqs[0].Header.Get("Idempotency-Key")
	if key == "" {
		t.Fatal("the POST carried no Idempotency-Key")
	}
	for _, r := range reqs[1:3] {
		if got := r.Header.Get("Idempotency-Key"); got != key {
			t.Errorf("request #%d: Idempotency-Key %q, want %q as on the first attempt", r.N, got, key)
		}
	}
	if strings.Count(out.String(), "retrying") != 3 {
		t.Errorf("want 3 retries reported, got:\n%s", out.String())
	}
}

// Without resilient, the same SDK fails on the API's first 503: that is
// what the wrapping buys.
func TestBareSDKFails(t *testing.T) {
	srv := resilienttest.NewServer(t, flakyAPI()...)
	sdk := payments.New(srv.URL, apiKey)
	defer sdk.HTTPClient.CloseIdleConnections()

	_, err := sdk.CreateCharge(context.Background(), 500, "eur")
	if err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("CreateCharge: err = %v, want the 503", err)
	}
	if n := srv.Count(); n != 1 {
		t.Errorf("server received %d requests, want 1", n)
	}
}
