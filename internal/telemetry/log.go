package telemetry

import (
	"context"
	"log/slog"
	"net/http"
	"strings"

	"github.com/resilient-go/resilient/internal/httpx"
)

// logSink logs each event to a *slog.Logger and passes it on. It is
// immutable after NewLogSink.
type logSink struct {
	l    *slog.Logger
	next Sink // nil: the default sink
}

// NewLogSink returns a Sink that logs each event to l and then hands it to
// next (nil: the default sink, spans and the global meters), so a stage
// keeps one sink and needs no call site of its own for logging. Events are
// only emitted off the happy path, so a pipeline without a logger pays
// nothing for this. Records never carry header values; URLs and the URLs
// in error texts are redacted as url.full is.
func NewLogSink(l *slog.Logger, next Sink) Sink {
	return &logSink{l: l, next: next}
}

// Record implements Sink.
func (s *logSink) Record(ctx context.Context, ev Event) {
	Emit(ctx, s.next, ev)
	level, msg := logLine(ev)
	if !s.l.Enabled(ctx, level) {
		return
	}
	s.l.LogAttrs(ctx, level, msg, LogAttrs(ev)...)
}

// logLine is the level and message of ev. Levels follow what an operator
// must act on: a breaker opening and a saturated bulkhead or exhausted
// budget are warnings; retries, fallbacks and cool-downs are the library
// doing its job (info); a refusal by an open breaker is debug, since the
// warning on opening already said so and an open breaker refuses every
// call, which at info would flood the log.
func logLine(ev Event) (slog.Level, string) {
	switch ev.Kind {
	case Retry:
		return slog.LevelInfo, "resilient: retrying"
	case RetryAfter:
		return slog.LevelInfo, "resilient: waiting as Retry-After asks"
	case BudgetExhausted:
		return slog.LevelWarn, "resilient: retry refused: budget exhausted"
	case BreakerRejected:
		return slog.LevelDebug, "resilient: call refused: circuit open"
	case BreakerStateChange:
		switch ev.To {
		case "open":
			return slog.LevelWarn, "resilient: circuit breaker opened"
		case "closed":
			return slog.LevelInfo, "resilient: circuit breaker closed"
		}
		return slog.LevelInfo, "resilient: circuit breaker half-open"
	case BulkheadRejected:
		return slog.LevelWarn, "resilient: call refused: bulkhead full"
	case AdaptiveRejected:
		return slog.LevelWarn, "resilient: call refused: adaptive limit"
	case Hedge:
		return slog.LevelDebug, "resilient: hedging"
	case Fallback:
		return slog.LevelInfo, "resilient: fallback answered"
	case RateLimited:
		return slog.LevelInfo, "resilient: call refused: rate limited"
	case RateLimitWait:
		return slog.LevelDebug, "resilient: waited for rate limit"
	case CoolDown:
		return slog.LevelInfo, "resilient: host cool-down"
	}
	return slog.LevelInfo, "resilient: " + ev.Kind.Name()
}

// LogAttrs describes ev as log attributes: authority, method and redacted
// url (when the event has its request), attempt, delay, status, error
// (redacted), reason, and breaker states.
func LogAttrs(ev Event) []slog.Attr {
	attrs := make([]slog.Attr, 0, 9)
	authority := ev.Authority
	if r := ev.Request; r != nil {
		if authority == "" {
			authority = httpx.AuthorityOf(r).String()
		}
		attrs = append(attrs, slog.String("authority", authority),
			slog.String("method", r.Method), slog.String("url", RedactURL(r.URL)))
	} else if authority != "" {
		attrs = append(attrs, slog.String("authority", authority))
	}
	if ev.Attempt > 0 {
		attrs = append(attrs, slog.Int("attempt", ev.Attempt))
	}
	if ev.Delay > 0 {
		attrs = append(attrs, slog.Duration("delay", ev.Delay))
	}
	if ev.Status > 0 {
		attrs = append(attrs, slog.Int("status", ev.Status))
	}
	if ev.Err != nil {
		attrs = append(attrs, slog.String("error", redactErrorFor(ev.Err, ev.Request)))
	}
	if r := reasonOf(ev.Kind); r != "" {
		attrs = append(attrs, slog.String("reason", r))
	}
	if ev.From != "" || ev.To != "" {
		attrs = append(attrs, slog.String("from", ev.From), slog.String("to", ev.To))
	}
	return attrs
}

// redactErrorFor is RedactError, and also redacts req's URL wherever the
// text quotes it outside a *url.Error (an error wrapped with fmt, say).
func redactErrorFor(err error, req *http.Request) string {
	msg := RedactError(err)
	if req == nil || req.URL == nil {
		return msg
	}
	raw := req.URL.String()
	if r := RedactURL(req.URL); r != raw {
		msg = strings.ReplaceAll(msg, raw, r)
	}
	if q := req.URL.RawQuery; q != "" {
		if r := RedactQuery(q); r != q {
			msg = strings.ReplaceAll(msg, q, r)
		}
	}
	return msg
}
