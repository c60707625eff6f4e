package resilient

import (
	"fmt"
	"strings"
	"time"
	"unicode"
)

// fieldError is a policy field out of range, named as in Go
// ("RetryPolicy.MaxAttempts"). The policies' check methods return it, so
// each rule is written once: the stage constructors and With... options
// panic with its text (a bad policy in code is the programmer's mistake,
// found at construction), and Config.Options returns it under the field's
// config name (a config file is input, and input gets an error).
type fieldError struct {
	field string // "RetryPolicy.MaxAttempts"
	msg   string // "must not be negative, got -2"
}

func (e *fieldError) Error() string { return "resilient: " + e.field + " " + e.msg }

// mustValid panics with err's text, a string as the policies always have.
func mustValid(err error) {
	if err != nil {
		panic(err.Error())
	}
}

func firstError(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func notNegative[T int | time.Duration](field string, v T) error {
	if v < 0 {
		return &fieldError{field, fmt.Sprint("must not be negative, got ", v)}
	}
	return nil
}

// Config is the standard pipeline's settings as data, for a config file:
// decode it from JSON or YAML, then pass Options() to NewClient or
// NewTransport. Names are the snake_case names of the options and policy
// fields; durations are Go duration strings ("250ms", "1m30s"); a zero
// or absent field means the default, as in the policies. Settings that
// are code (funcs, providers, a fallback) stay options: append them to
// Options() — a later option wins.
//
// A section (retry, breaker, ...) that is present switches its stage on,
// as its With... option does; hedge replaces retry, so a config may set
// one of the two unless the other is disabled. Disable lists stages to
// switch off by section name (attempt_timeout, total_timeout, retry,
// hedge, breaker, bulkhead, idempotency, tracing, fallback, rate_limit); it wins over
// a section, so a stage can be switched off without deleting its
// settings.
//
// Decode with unknown fields refused, so that a misspelt name is an error
// and not a silent default: json.Decoder.DisallowUnknownFields, or
// KnownFields(true) on a go.yaml.in/yaml/v3 Decoder. See
// examples/config for a documented file.
type Config struct {
	AttemptTimeout Duration           `json:"attempt_timeout,omitempty" yaml:"attempt_timeout,omitempty"`
	TotalTimeout   Duration           `json:"total_timeout,omitempty" yaml:"total_timeout,omitempty"`
	Retry          *RetryConfig       `json:"retry,omitempty" yaml:"retry,omitempty"`
	Hedge          *HedgeConfig       `json:"hedge,omitempty" yaml:"hedge,omitempty"`
	Breaker        *BreakerConfig     `json:"breaker,omitempty" yaml:"breaker,omitempty"`
	Bulkhead       *BulkheadConfig    `json:"bulkhead,omitempty" yaml:"bulkhead,omitempty"`
	Idempotency    *IdempotencyConfig `json:"idempotency,omitempty" yaml:"idempotency,omitempty"`
	RateLimit      *RateLimitConfig   `json:"rate_limit,omitempty" yaml:"rate_limit,omitempty"`
	Disable        []string           `json:"disable,omitempty" yaml:"disable,omitempty"`
}

// RetryConfig is RetryPolicy's data fields; see RetryPolicy for each.
type RetryConfig struct {
	MaxAttempts   int           `json:"max_attempts,omitempty" yaml:"max_attempts,omitempty"`
	InitialDelay  Duration      `json:"initial_delay,omitempty" yaml:"initial_delay,omitempty"`
	MaxDelay      Duration      `json:"max_delay,omitempty" yaml:"max_delay,omitempty"`
	MaxRetryAfter Duration      `json:"max_retry_after,omitempty" yaml:"max_retry_after,omitempty"`
	Budget        *BudgetConfig `json:"budget,omitempty" yaml:"budget,omitempty"`
}

// BudgetConfig is RetryBudget's fields; absent means the stage's own
// default budget.
type BudgetConfig struct {
	Ratio        float64  `json:"ratio,omitempty" yaml:"ratio,omitempty"`
	Window       Duration `json:"window,omitempty" yaml:"window,omitempty"`
	MinPerSecond int      `json:"min_per_second,omitempty" yaml:"min_per_second,omitempty"`
	Unlimited    bool     `json:"unlimited,omitempty" yaml:"unlimited,omitempty"`
}

// HedgeConfig is HedgePolicy's data fields; see HedgePolicy for each.
type HedgeConfig struct {
	Delay     Duration      `json:"delay,omitempty" yaml:"delay,omitempty"`
	MaxHedges int           `json:"max_hedges,omitempty" yaml:"max_hedges,omitempty"`
	Budget    *BudgetConfig `json:"budget,omitempty" yaml:"budget,omitempty"`
}

// BreakerConfig is BreakerPolicy's data fields; see BreakerPolicy for each.
type BreakerConfig struct {
	ConsecutiveFailures int      `json:"consecutive_failures,omitempty" yaml:"consecutive_failures,omitempty"`
	FailureRatio        float64  `json:"failure_ratio,omitempty" yaml:"failure_ratio,omitempty"`
	MinRequests         int      `json:"min_requests,omitempty" yaml:"min_requests,omitempty"`
	Window              Duration `json:"window,omitempty" yaml:"window,omitempty"`
	OpenTimeout         Duration `json:"open_timeout,omitempty" yaml:"open_timeout,omitempty"`
	HalfOpenRequests    int      `json:"half_open_requests,omitempty" yaml:"half_open_requests,omitempty"`
	MaxKeys             int      `json:"max_keys,omitempty" yaml:"max_keys,omitempty"`
	FirstOpenTimeout    Duration `json:"first_open_timeout,omitempty" yaml:"first_open_timeout,omitempty"`
	SlowCallThreshold   Duration `json:"slow_call_threshold,omitempty" yaml:"slow_call_threshold,omitempty"`
	DisableSlowCalls    bool     `json:"disable_slow_calls,omitempty" yaml:"disable_slow_calls,omitempty"`
}

// BulkheadConfig is BulkheadPolicy's data fields; see BulkheadPolicy.
type BulkheadConfig struct {
	MaxConcurrent int      `json:"max_concurrent,omitempty" yaml:"max_concurrent,omitempty"`
	MaxWait       Duration `json:"max_wait,omitempty" yaml:"max_wait,omitempty"`
	MaxQueue      int      `json:"max_queue,omitempty" yaml:"max_queue,omitempty"`
	MaxKeys       int      `json:"max_keys,omitempty" yaml:"max_keys,omitempty"`

	DisableAdaptive   bool     `json:"disable_adaptive,omitempty" yaml:"disable_adaptive,omitempty"`
	InitialConcurrent int      `json:"initial_concurrent,omitempty" yaml:"initial_concurrent,omitempty"`
	MinConcurrent     int      `json:"min_concurrent,omitempty" yaml:"min_concurrent,omitempty"`
	LatencyTolerance  float64  `json:"latency_tolerance,omitempty" yaml:"latency_tolerance,omitempty"`
	AdaptiveMaxWait   Duration `json:"adaptive_max_wait,omitempty" yaml:"adaptive_max_wait,omitempty"`
}

// RateLimitConfig is RateLimitPolicy's data fields; see RateLimitPolicy.
type RateLimitConfig struct {
	Rate             float64  `json:"rate,omitempty" yaml:"rate,omitempty"`
	Burst            int      `json:"burst,omitempty" yaml:"burst,omitempty"`
	MaxWait          Duration `json:"max_wait,omitempty" yaml:"max_wait,omitempty"`
	MaxCoolDown      Duration `json:"max_cool_down,omitempty" yaml:"max_cool_down,omitempty"`
	IgnoreRetryAfter bool     `json:"ignore_retry_after,omitempty" yaml:"ignore_retry_after,omitempty"`
	MaxKeys          int      `json:"max_keys,omitempty" yaml:"max_keys,omitempty"`
}

// IdempotencyConfig is IdempotencyPolicy's data fields; see
// IdempotencyPolicy.
type IdempotencyConfig struct {
	Header  string   `json:"header,omitempty" yaml:"header,omitempty"`
	Methods []string `json:"methods,omitempty" yaml:"methods,omitempty"`
	Quoted  bool     `json:"quoted,omitempty" yaml:"quoted,omitempty"`

	ServerDeduplicates bool `json:"server_deduplicates,omitempty" yaml:"server_deduplicates,omitempty"`
}

// Duration is a time.Duration written as a Go duration string ("250ms",
// "1m30s"). It implements encoding.TextMarshaler and TextUnmarshaler,
// which encoding/json and the YAML libraries (go.yaml.in/yaml/v3,
// gopkg.in/yaml.v3) use, so this package needs no YAML dependency. A
// number without a unit is refused: 250 could mean seconds or
// milliseconds.
type Duration time.Duration

// MarshalText writes d as time.Duration.String does.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText reads a Go duration string. The decoders do not say which
// field failed, so the error quotes the text.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		s := string(b)
		if len(s) > 40 {
			s = s[:37] + "..."
		}
		return fmt.Errorf("resilient: config: %q is not a duration; want a Go duration such as \"250ms\" or \"1m30s\"", s)
	}
	*d = Duration(v)
	return nil
}

// configStages are the names Disable takes.
var configStages = map[string]Stage{
	"attempt_timeout": StageAttemptTimeout,
	"total_timeout":   StageTotalTimeout,
	"retry":           StageRetry,
	"hedge":           StageHedge,
	"breaker":         StageBreaker,
	"bulkhead":        StageBulkhead,
	"idempotency":     StageIdempotencyKey,
	"tracing":         StageTracing,
	"fallback":        StageFallback,
	"rate_limit":      StageRateLimit,
}

// Options returns the options c describes, for NewClient or NewTransport.
// A field out of range is an error naming it by its config name, e.g.
// "resilient: config retry.max_attempts: must not be negative, got -2";
// Options never panics. It checks each policy with the policy's own rules
// (the ones its With... option panics on) before building the option, so
// that no option it returns can panic.
func (c Config) Options() ([]Option, error) {
	var opts []Option
	off := map[Stage]bool{}
	// A disabled stage's section is checked but not applied: WithHedge
	// would switch retry off even though hedging is disabled.
	add := func(s Stage, o Option) {
		if !off[s] {
			opts = append(opts, o)
		}
	}
	for i, name := range c.Disable {
		s, ok := configStages[name]
		if !ok {
			return nil, fmt.Errorf("resilient: config disable[%d]: unknown stage %q; want one of "+
				"attempt_timeout, total_timeout, retry, hedge, breaker, bulkhead, idempotency, tracing, fallback, rate_limit", i, name)
		}
		off[s] = true
	}
	for _, t := range []struct {
		d      Duration
		stage  Stage
		option string
		name   string
		with   func(time.Duration) Option
	}{
		{c.AttemptTimeout, StageAttemptTimeout, "WithAttemptTimeout", "attempt_timeout", WithAttemptTimeout},
		{c.TotalTimeout, StageTotalTimeout, "WithTotalTimeout", "total_timeout", WithTotalTimeout},
	} {
		if t.d == 0 {
			continue
		}
		if err := positive(t.option, time.Duration(t.d)); err != nil {
			return nil, configError(err, t.option, t.name)
		}
		add(t.stage, t.with(time.Duration(t.d)))
	}
	if c.Retry != nil && c.Hedge != nil && !off[StageRetry] && !off[StageHedge] {
		return nil, fmt.Errorf("resilient: config hedge: retry and hedge are alternatives in the standard pipeline " +
			"(see WithHedge); set one, or disable the other")
	}
	if r := c.Retry; r != nil {
		p := RetryPolicy{MaxAttempts: r.MaxAttempts, InitialDelay: time.Duration(r.InitialDelay),
			MaxDelay: time.Duration(r.MaxDelay), MaxRetryAfter: time.Duration(r.MaxRetryAfter), Budget: r.Budget.budget()}
		if err := p.check(); err != nil {
			return nil, configError(err, "RetryPolicy.", "retry.", "RetryBudget.", "retry.budget.")
		}
		add(StageRetry, WithRetry(p))
	}
	if h := c.Hedge; h != nil {
		p := HedgePolicy{Delay: time.Duration(h.Delay), MaxHedges: h.MaxHedges, Budget: h.Budget.budget()}
		if err := p.check(); err != nil {
			return nil, configError(err, "HedgePolicy.", "hedge.", "RetryBudget.", "hedge.budget.")
		}
		add(StageHedge, WithHedge(p))
	}
	if b := c.Breaker; b != nil {
		p := BreakerPolicy{ConsecutiveFailures: b.ConsecutiveFailures, FailureRatio: b.FailureRatio,
			MinRequests: b.MinRequests, Window: time.Duration(b.Window), OpenTimeout: time.Duration(b.OpenTimeout),
			HalfOpenRequests: b.HalfOpenRequests, MaxKeys: b.MaxKeys, FirstOpenTimeout: time.Duration(b.FirstOpenTimeout),
			SlowCallThreshold: time.Duration(b.SlowCallThreshold), DisableSlowCalls: b.DisableSlowCalls}
		if err := p.check(); err != nil {
			return nil, configError(err, "BreakerPolicy.", "breaker.")
		}
		add(StageBreaker, WithBreaker(p))
	}
	if b := c.Bulkhead; b != nil {
		p := BulkheadPolicy{MaxConcurrent: b.MaxConcurrent, MaxWait: time.Duration(b.MaxWait),
			MaxQueue: b.MaxQueue, MaxKeys: b.MaxKeys, DisableAdaptive: b.DisableAdaptive,
			InitialConcurrent: b.InitialConcurrent, MinConcurrent: b.MinConcurrent,
			LatencyTolerance: b.LatencyTolerance, AdaptiveMaxWait: time.Duration(b.AdaptiveMaxWait)}
		if err := p.check(); err != nil {
			return nil, configError(err, "BulkheadPolicy.", "bulkhead.")
		}
		add(StageBulkhead, WithBulkhead(p))
	}
	if k := c.Idempotency; k != nil {
		p := IdempotencyPolicy{Header: k.Header, Methods: k.Methods, Quoted: k.Quoted, ServerDeduplicates: k.ServerDeduplicates}
		if err := p.check(); err != nil {
			return nil, configError(err, "IdempotencyPolicy.", "idempotency.")
		}
		add(StageIdempotencyKey, WithIdempotencyKey(p))
	}
	if r := c.RateLimit; r != nil {
		p := RateLimitPolicy{Rate: r.Rate, Burst: r.Burst, MaxWait: time.Duration(r.MaxWait),
			MaxCoolDown: time.Duration(r.MaxCoolDown), IgnoreRetryAfter: r.IgnoreRetryAfter, MaxKeys: r.MaxKeys}
		if err := p.check(); err != nil {
			return nil, configError(err, "RateLimitPolicy.", "rate_limit.")
		}
		add(StageRateLimit, WithRateLimit(p))
	}
	if len(off) > 0 {
		stages := make([]Stage, 0, len(off))
		for s := range off {
			stages = append(stages, s)
		}
		opts = append(opts, Without(stages...))
	}
	return opts, nil
}

func (b *BudgetConfig) budget() *RetryBudget {
	if b == nil {
		return nil
	}
	return &RetryBudget{Ratio: b.Ratio, Window: time.Duration(b.Window), MinPerSecond: b.MinPerSecond, Unlimited: b.Unlimited}
}

// configError renames a policy's *fieldError for a config: renames holds
// pairs of a Go prefix ("RetryPolicy.") and its config prefix ("retry."),
// and the rest of the Go name turns to snake_case ("MaxAttempts" ->
// "max_attempts"), which is how Config's names mirror the policies'.
func configError(err error, renames ...string) error {
	fe, ok := err.(*fieldError)
	if !ok {
		return fmt.Errorf("resilient: config: %w", err)
	}
	name := fe.field
	for i := 0; i+1 < len(renames); i += 2 {
		if rest, found := strings.CutPrefix(fe.field, renames[i]); found {
			name = renames[i+1] + snake(rest)
			break
		}
	}
	return fmt.Errorf("resilient: config %s: %s", name, fe.msg)
}

// snake turns a Go field name into its config name: MaxRetryAfter ->
// max_retry_after.
func snake(s string) string {
	var b strings.Builder
	for i, r := range s {
		if unicode.IsUpper(r) {
			if i > 0 {
				b.WriteByte('_')
			}
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}
