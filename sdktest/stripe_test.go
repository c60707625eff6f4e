package sdktest

import (
	"context"
	"net/http"

	"github.com/stripe/stripe-go/v85"

	"github.com/resilient-go/resilient/resilienttest"
)

// stripeClient talks to u through rt with stripe-go's own retries off
// (MaxNetworkRetries 0): our Retry stage is the one retry layer, and
// stripe-go's key, set on every POST, is what it re-sends.
func stripeClient(u string, rt http.RoundTripper) *stripe.Client {
	return stripeClientRetries(u, rt, 0)
}

func stripeClientRetries(u string, rt http.RoundTripper, retries int64) *stripe.Client {
	cfg := &stripe.BackendConfig{
		HTTPClient:        &http.Client{Transport: rt},
		URL:               stripe.String(u),
		MaxNetworkRetries: stripe.Int64(retries),
		EnableTelemetry:   stripe.Bool(false),
		LeveledLogger:     &stripe.LeveledLogger{Level: stripe.LevelNull},
	}
	return stripe.NewClient("sk_test_123", stripe.WithBackends(stripe.NewBackendsWithConfig(cfg)))
}

const stripeCustomer = `{"id":"cus_1","object":"customer","email":"a@example.com"}`

func stripeSDK() sdk {
	return sdk{
		name:   "stripe-go",
		ownKey: "Idempotency-Key",
		write: func(ctx context.Context, u string, rt http.RoundTripper) error {
			c, err := stripeClient(u, rt).V1Customers.Create(ctx, &stripe.CustomerCreateParams{Email: stripe.String("a@example.com")})
			if err == nil && c.ID != "cus_1" {
				return errUnexpected("customer", c.ID)
			}
			return err
		},
		read: func(ctx context.Context, u string, rt http.RoundTripper) error {
			_, err := stripeClient(u, rt).V1Customers.Retrieve(ctx, "cus_1", nil)
			return err
		},
		ok: []resilienttest.Fault{
			resilienttest.Header("Content-Type", "application/json"),
			resilienttest.Respond(http.StatusOK, stripeCustomer),
		},
	}
}
