package telemetry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestLogSinkRedacts: user info and credential parameters go from the url
// attribute and from error texts, a *url.Error's and a plain wrapped one's.
func TestLogSinkRedacts(t *testing.T) {
	const raw = "https://alice:pw-s3cr3t@api.example.com/v1?access_token=s3cr3t&q=1"
	req, err := http.NewRequest(http.MethodGet, raw, nil)
	if err != nil {
		t.Fatal(err)
	}
	for name, cause := range map[string]error{
		"url.Error": &url.Error{Op: "Get", URL: raw, Err: errors.New("boom")},
		"wrapped":   fmt.Errorf("calling %s: boom", raw),
		"query":     fmt.Errorf("bad query %s", req.URL.RawQuery),
	} {
		var buf bytes.Buffer
		s := NewLogSink(slog.New(slog.NewTextHandler(&buf, nil)), discard{})
		s.Record(context.Background(), Event{Kind: Retry, Attempt: 1, Err: cause, Request: req})
		out := buf.String()
		if strings.Contains(out, "s3cr3t") || !strings.Contains(out, "authority=https://api.example.com:443") {
			t.Errorf("%s: %s", name, out)
		}
	}
}

// TestLogSinkPassesOn: the next sink gets every event, whatever the level.
func TestLogSinkPassesOn(t *testing.T) {
	var next counting
	s := NewLogSink(slog.New(slog.NewTextHandler(&bytes.Buffer{}, &slog.HandlerOptions{Level: slog.LevelError})), &next)
	s.Record(context.Background(), Event{Kind: Hedge})
	if next != 1 {
		t.Errorf("next got %d events, want 1", next)
	}
}

type discard struct{}

func (discard) Record(context.Context, Event) {}

type counting int

func (c *counting) Record(context.Context, Event) { *c++ }

// TestLogReasonMatchesMetric: every rejection's log line carries the reason
// the rejections counter counts it under, and a message of its own. The
// adaptive limit's had neither once: the log and the metric kept separate
// tables, and the newer Kind was only in one.
func TestLogReasonMatchesMetric(t *testing.T) {
	for k, r := range map[Kind]string{
		BreakerRejected:  ReasonCircuitOpen,
		BulkheadRejected: ReasonBulkheadFull,
		BudgetExhausted:  ReasonRetryBudget,
		RateLimited:      ReasonRateLimited,
		AdaptiveRejected: ReasonAdaptive,
	} {
		var buf bytes.Buffer
		s := NewLogSink(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})), discard{})
		s.Record(context.Background(), Event{Kind: k, Authority: "http://127.0.0.1:80"})
		out := buf.String()
		if !strings.Contains(out, "reason="+r) || strings.Contains(out, `msg="resilient: resilient.`) {
			t.Errorf("%s: %s; want reason=%s and a message of its own", k.Name(), out, r)
		}
	}
}
