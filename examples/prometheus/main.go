// Command prometheus serves the metrics of a resilient client on
// /metrics for Prometheus to scrape, through the OpenTelemetry Prometheus
// exporter. It calls a local flaky server from resilienttest now and then
// so that the metrics move:
//
//	go run . -addr 127.0.0.1:9464
//	curl -s 127.0.0.1:9464/metrics | grep -E '^(resilient|http_client)'
//
// What an operator gets (dashboard.json charts them in Grafana):
//
//	http_client_request_duration_seconds  each attempt, by server and status
//	resilient_client_retries_total        retries scheduled
//	resilient_client_rejections_total     refusals, by reason (circuit_open, bulkhead_full, retry_budget, rate_limited)
//	resilient_client_fallbacks_total      calls a fallback answered
//	resilient_client_breaker_state_ratio  per authority: 0 closed, 1 half-open, 2 open
//	resilient_client_bulkhead_in_use      per authority: slots held
//
// (The exporter names a gauge of OTel unit "1" with "_ratio", as the
// Prometheus conventions ask; the breaker state is the one.)
//
// Labels name the server (server_address, server_port, or
// resilient_authority: scheme://host:port), never a path or a query, so a
// client calling a million URLs of one host makes one series per host.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/signal"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/resilient-go/resilient"
	"github.com/resilient-go/resilient/resilienttest"
)

// newMetrics returns a MeterProvider whose metrics the handler serves in
// the Prometheus text format, from a registry of its own.
func newMetrics() (*sdkmetric.MeterProvider, http.Handler, error) {
	reg := prometheus.NewRegistry()
	exp, err := otelprom.New(otelprom.WithRegisterer(reg))
	if err != nil {
		return nil, nil, err
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp))
	return mp, promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), nil
}

// newClient is the standard pipeline reporting to mp, with a fallback so
// that the fallback counter has something to count.
func newClient(mp *sdkmetric.MeterProvider) *http.Client {
	return resilient.NewClient(
		resilient.WithMeterProvider(mp),
		resilient.WithRetry(resilient.RetryPolicy{InitialDelay: 10 * time.Millisecond, MaxDelay: 50 * time.Millisecond}),
		resilient.WithBreaker(resilient.BreakerPolicy{ConsecutiveFailures: 3, OpenTimeout: 2 * time.Second}),
		resilient.WithFallback(resilient.StaticFallback(http.StatusOK, nil, "{}")),
	)
}

func main() {
	addr := flag.String("addr", "127.0.0.1:9464", "where to serve /metrics")
	flag.Parse()
	if err := run(*addr); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run(addr string) error {
	mp, handler, err := newMetrics()
	if err != nil {
		return err
	}
	defer mp.Shutdown(context.Background())
	flaky := resilienttest.StartServer(resilienttest.FailFraction(0.3, http.StatusServiceUnavailable, 1))
	defer flaky.Close()
	client := newClient(mp)

	mux := http.NewServeMux()
	mux.Handle("/metrics", handler)
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	go func() {
		<-ctx.Done()
		_ = srv.Shutdown(context.Background())
	}()
	go func() {
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			if resp, err := client.Get(fmt.Sprintf("%s/orders/%d", flaky.URL, i)); err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}
	}()
	log.Printf("serving metrics on http://%s/metrics", addr)
	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
