// Command sdk puts resilient around an SDK's own transport.
//
// The payments package stands for a third-party SDK: it builds its own
// *http.Client whose transport adds an API key to every request. One line
// wraps that transport with resilient's standard pipeline:
//
//	sdk.HTTPClient.Transport = resilient.NewTransport(sdk.HTTPClient.Transport, ...)
//
// The SDK's transport stays innermost, so every attempt, retries included,
// is authenticated; the pipeline gives each POST an idempotency key, which
// makes it safe to retry. The program runs the SDK against a local flaky
// server from resilienttest and prints what the client saw and what the
// server received:
//
//	go run ./examples/sdk
package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/resilient-go/resilient"
	"github.com/resilient-go/resilient/examples/sdk/payments"
	"github.com/resilient-go/resilient/resilienttest"
)

const apiKey = "sk_test_51HxQ3example"

// flakyAPI is how the fake payments API misbehaves: the first two requests
// get 503, the fourth hangs, the others succeed.
func flakyAPI() []resilienttest.Fault {
	return []resilienttest.Fault{
		resilienttest.OnRequests(1, 2, resilienttest.Status(http.StatusServiceUnavailable)),
		resilienttest.OnRequests(4, 4, resilienttest.Hang()),
		resilienttest.Respond(http.StatusOK, `{"id":"ch_1","amount":500,"currency":"eur","status":"succeeded"}`),
	}
}

func main() {
	srv := resilienttest.StartServer(flakyAPI()...)
	defer srv.Close()
	if err := run(os.Stdout, srv); err != nil {
		fmt.Fprintln(os.Stderr, "sdk:", err)
		os.Exit(1)
	}
}

// run creates a charge and reads it back through the SDK, wrapped in
// resilient, against srv, and reports to w.
func run(w io.Writer, srv *resilienttest.Server) error {
	sdk := payments.New(srv.URL, apiKey)
	sdk.HTTPClient.Transport = resilient.NewTransport(sdk.HTTPClient.Transport,
		// The payments API answers in milliseconds; an attempt still
		// waiting after 300 ms is stuck, and retrying it is faster.
		resilient.WithAttemptTimeout(300*time.Millisecond),
		resilient.WithTotalTimeout(5*time.Second),
		resilient.WithRetry(resilient.RetryPolicy{
			OnRetry: func(req *http.Request, attempt int, _ time.Duration, resp *http.Response, err error) {
				fmt.Fprintf(w, "  %s %s: attempt %d failed (%s), retrying\n", req.Method, req.URL.Path, attempt, failure(resp, err))
			},
		}),
	)
	defer sdk.HTTPClient.CloseIdleConnections() // reaches the SDK's transport through the pipeline

	ctx := context.Background()
	fmt.Fprintln(w, "the client:")
	charge, err := sdk.CreateCharge(ctx, 500, "eur")
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "  created %s: %d %s, %s\n", charge.ID, charge.Amount, charge.Currency, charge.Status)
	charge, err = sdk.GetCharge(ctx, charge.ID)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "  fetched %s: %d %s, %s\n", charge.ID, charge.Amount, charge.Currency, charge.Status)

	fmt.Fprintln(w, "the server received:")
	keys := map[string]string{} // idempotency key -> a short stable name
	for _, r := range srv.Requests() {
		key := "-"
		if k := r.Header.Get("Idempotency-Key"); k != "" {
			if keys[k] == "" {
				keys[k] = fmt.Sprintf("key-%d", len(keys)+1)
			}
			key = keys[k]
		}
		fmt.Fprintf(w, "  #%d %-4s %-18s Authorization: %-14s Idempotency-Key: %s\n",
			r.N, r.Method, r.URL.Path, masked(r.Header.Get("Authorization")), key)
	}
	return nil
}

// failure names a failed attempt's outcome.
func failure(resp *http.Response, err error) string {
	if err != nil {
		return err.Error()
	}
	return resp.Status
}

// masked shows a credential's scheme and first characters only.
func masked(auth string) string {
	if auth == "" {
		return "none"
	}
	scheme, cred, _ := strings.Cut(auth, " ")
	return scheme + " " + cred[:min(len(cred), 4)] + "…"
}
