package bench

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test or benchmark leaves a goroutine
// behind. hystrix-go, which heimdall's breaker uses, starts two metrics
// goroutines per command that never end, by design; only those are ignored.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreTopFunction("github.com/afex/hystrix-go/hystrix.(*metricExchange).Monitor"),
		goleak.IgnoreTopFunction("github.com/afex/hystrix-go/hystrix.(*poolMetrics).Monitor"),
	)
}
