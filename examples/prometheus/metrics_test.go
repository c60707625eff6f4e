package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/resilient-go/resilient/resilienttest"
)

// scrape drives a client against a host that always answers 503 (retries,
// then a breaker opening, then refusals and fallbacks), and returns what
// GET /metrics serves over 127.0.0.1.
func scrape(t *testing.T) string {
	t.Helper()
	mp, handler, err := newMetrics()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	down := resilienttest.NewServer(t, resilienttest.Status(http.StatusServiceUnavailable))
	client := newClient(mp)
	for i := range 4 {
		// A path and a query an operator must not find in a label.
		resp, err := client.Get(down.URL + "/v1/orders/8841?token=s3cr3t&n=" + string(rune('a'+i)))
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	metrics := httptest.NewServer(handler) // listens on 127.0.0.1
	defer metrics.Close()
	resp, err := metrics.Client().Get(metrics.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %d, %v", resp.StatusCode, err)
	}
	return string(b)
}

// series matches a sample line: name, then its labels.
var series = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? `)

// labelName matches the names in a label set.
var labelName = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="`)

// TestScrape finds what an operator needs on /metrics, with labels that
// name the host and nothing finer.
func TestScrape(t *testing.T) {
	out := scrape(t)
	for _, want := range []string{
		`http_client_request_duration_seconds_bucket{`,
		`resilient_client_retries_total{`,
		`resilient_client_rejections_total{`,
		`reason="circuit_open"`,
		`resilient_client_fallbacks_total{`,
		`resilient_client_breaker_state_ratio{`, // OTel unit "1" is "_ratio" in Prometheus
		`resilient_authority="http://127.0.0.1:`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("scrape lacks %s", want)
		}
	}
	for _, leak := range []string{"/v1/orders", "8841", "token", "s3cr3t"} {
		if strings.Contains(out, leak) {
			t.Errorf("scrape holds %q, a path or query", leak)
		}
	}
	// Every label of our series is one of a bounded set.
	bounded := []string{
		"reason", "resilient_authority", "server_address", "server_port", "http_request_method",
		"http_response_status_code", "error_type", "network_protocol_version", "le",
		"otel_scope_name", "otel_scope_version", "otel_scope_schema_url",
	}
	for _, line := range strings.Split(out, "\n") {
		m := series.FindStringSubmatch(line)
		if m == nil || !(strings.HasPrefix(m[1], "resilient_") || strings.HasPrefix(m[1], "http_client_")) {
			continue
		}
		for _, l := range labelName.FindAllStringSubmatch(m[2], -1) {
			if !slices.Contains(bounded, l[1]) {
				t.Errorf("label %s in %s: not one of the bounded set", l[1], line)
			}
		}
	}
	if t.Failed() {
		t.Logf("scrape:\n%s", out)
	}
}

// TestDashboardQueriesExist: every metric dashboard.json queries is in
// the scrape, so the dashboard cannot drift from the names.
func TestDashboardQueriesExist(t *testing.T) {
	b, err := os.ReadFile("dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatal(err)
	}
	out := scrape(t)
	name := regexp.MustCompile(`\b(resilient_client_[a-z_]+|http_client_[a-z_]+)\b`)
	n := 0
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			for _, m := range name.FindAllString(tg.Expr, -1) {
				n++
				if !regexp.MustCompile(`(?m)^` + m + `[{ ]`).MatchString(out) {
					t.Errorf("panel %q queries %s, which the scrape lacks", p.Title, m)
				}
			}
		}
	}
	if n == 0 {
		t.Fatal("dashboard.json queries no metric")
	}
}
